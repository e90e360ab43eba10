//! Reads an OTLP `ExportTraceServiceRequest` back, for tests: the encoder's unit tests
//! and `tests/traces.rs` (which includes this file) check what was exported without a
//! protobuf crate.
//!
//! The field numbers here are written out from opentelemetry-proto's files again rather
//! than shared with the encoder, so a wrong number on one side fails the tests.

// The integration test reads only some of what is decoded.
#![allow(dead_code)]

/// An attribute's value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Text(String),
    Int(i64),
    /// A kind of value the host never writes (bool, double, array, ...).
    Other,
}

#[derive(Debug, Default)]
pub struct Request {
    /// The first resource's attributes.
    pub resource: Vec<(String, Value)>,
    /// The first scope's name.
    pub scope: String,
    /// Every span of every resource and scope, in order.
    pub spans: Vec<Span>,
}

#[derive(Debug, Default, Clone)]
pub struct Span {
    pub trace_id: Vec<u8>,
    pub span_id: Vec<u8>,
    pub trace_state: String,
    pub parent_span_id: Vec<u8>,
    pub flags: u32,
    pub name: String,
    pub kind: u64,
    pub start_unix_nanos: u64,
    pub end_unix_nanos: u64,
    pub attributes: Vec<(String, Value)>,
    pub status_code: u64,
    pub status_message: String,
}

impl Span {
    pub fn attribute(&self, key: &str) -> Option<&Value> {
        self.attributes
            .iter()
            .find(|(known, _)| known == key)
            .map(|(_, value)| value)
    }
}

/// A field's payload, by wire type.
enum Field<'a> {
    Varint(u64),
    Fixed64(u64),
    Bytes(&'a [u8]),
    Fixed32(u32),
}

impl Field<'_> {
    fn bytes(&self) -> Result<&[u8], String> {
        match self {
            Field::Bytes(bytes) => Ok(bytes),
            _ => Err("expected a length-delimited field".to_owned()),
        }
    }

    fn text(&self) -> Result<String, String> {
        String::from_utf8(self.bytes()?.to_vec()).map_err(|err| err.to_string())
    }

    fn varint(&self) -> Result<u64, String> {
        match self {
            Field::Varint(value) => Ok(*value),
            _ => Err("expected a varint".to_owned()),
        }
    }
}

/// Every (field number, payload) of one message, in order.
fn fields(mut bytes: &[u8]) -> Result<Vec<(u32, Field<'_>)>, String> {
    fn varint(bytes: &mut &[u8]) -> Result<u64, String> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = bytes.split_first().ok_or("a varint runs off the end")?;
            *bytes = rest;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("a varint longer than 10 bytes".to_owned())
    }
    fn take<'a>(bytes: &mut &'a [u8], n: usize) -> Result<&'a [u8], String> {
        if bytes.len() < n {
            return Err(format!("{n} bytes wanted, {} left", bytes.len()));
        }
        let (taken, rest) = bytes.split_at(n);
        *bytes = rest;
        Ok(taken)
    }
    let mut fields = Vec::new();
    while !bytes.is_empty() {
        let tag = varint(&mut bytes)?;
        let number = u32::try_from(tag >> 3).map_err(|_| "a field number over u32")?;
        let field = match tag & 7 {
            0 => Field::Varint(varint(&mut bytes)?),
            1 => Field::Fixed64(u64::from_le_bytes(
                take(&mut bytes, 8)?.try_into().expect("8 bytes"),
            )),
            2 => {
                let length = varint(&mut bytes)?;
                let length = usize::try_from(length).map_err(|_| "a length over usize")?;
                Field::Bytes(take(&mut bytes, length)?)
            }
            5 => Field::Fixed32(u32::from_le_bytes(
                take(&mut bytes, 4)?.try_into().expect("4 bytes"),
            )),
            other => return Err(format!("wire type {other} is not used by OTLP")),
        };
        fields.push((number, field));
    }
    Ok(fields)
}

/// Decodes an `ExportTraceServiceRequest`.
pub fn export_request(body: &[u8]) -> Result<Request, String> {
    let mut request = Request::default();
    let mut first_resource = true;
    // opentelemetry/proto/collector/trace/v1/trace_service.proto:
    // ExportTraceServiceRequest.resource_spans = 1.
    for (number, resource_spans) in fields(body)? {
        if number != 1 {
            continue;
        }
        // opentelemetry/proto/trace/v1/trace.proto:
        // ResourceSpans.resource = 1, .scope_spans = 2.
        for (number, field) in fields(resource_spans.bytes()?)? {
            match number {
                1 if first_resource => {
                    // opentelemetry/proto/resource/v1/resource.proto: Resource.attributes = 1.
                    for (number, attribute) in fields(field.bytes()?)? {
                        if number == 1 {
                            request.resource.push(key_value(attribute.bytes()?)?);
                        }
                    }
                }
                2 => scope_spans(field.bytes()?, &mut request)?,
                _ => {}
            }
        }
        first_resource = false;
    }
    Ok(request)
}

fn scope_spans(bytes: &[u8], request: &mut Request) -> Result<(), String> {
    // ScopeSpans.scope = 1 (InstrumentationScope.name = 1, in common.proto),
    // ScopeSpans.spans = 2.
    for (number, field) in fields(bytes)? {
        match number {
            1 if request.scope.is_empty() => {
                for (number, scope) in fields(field.bytes()?)? {
                    if number == 1 {
                        request.scope = scope.text()?;
                    }
                }
            }
            2 => request.spans.push(span(field.bytes()?)?),
            _ => {}
        }
    }
    Ok(())
}

fn span(bytes: &[u8]) -> Result<Span, String> {
    let mut span = Span::default();
    // trace.proto, message Span.
    for (number, field) in fields(bytes)? {
        match (number, &field) {
            (1, _) => span.trace_id = field.bytes()?.to_vec(),
            (2, _) => span.span_id = field.bytes()?.to_vec(),
            (3, _) => span.trace_state = field.text()?,
            (4, _) => span.parent_span_id = field.bytes()?.to_vec(),
            (5, _) => span.name = field.text()?,
            (6, _) => span.kind = field.varint()?,
            (7, Field::Fixed64(nanos)) => span.start_unix_nanos = *nanos,
            (8, Field::Fixed64(nanos)) => span.end_unix_nanos = *nanos,
            (9, _) => span.attributes.push(key_value(field.bytes()?)?),
            (15, _) => {
                // Status.message = 2, Status.code = 3.
                for (number, status) in fields(field.bytes()?)? {
                    match number {
                        2 => span.status_message = status.text()?,
                        3 => span.status_code = status.varint()?,
                        _ => {}
                    }
                }
            }
            (16, Field::Fixed32(flags)) => span.flags = *flags,
            (7 | 8 | 16, _) => return Err(format!("field {number} has the wrong wire type")),
            _ => {}
        }
    }
    Ok(span)
}

/// common.proto: KeyValue.key = 1, .value = 2; AnyValue.string_value = 1,
/// .int_value = 3.
fn key_value(bytes: &[u8]) -> Result<(String, Value), String> {
    let mut key = String::new();
    let mut value = Value::Other;
    for (number, field) in fields(bytes)? {
        match number {
            1 => key = field.text()?,
            2 => {
                for (number, any) in fields(field.bytes()?)? {
                    value = match number {
                        1 => Value::Text(any.text()?),
                        3 => Value::Int(any.varint()? as i64),
                        _ => Value::Other,
                    };
                }
            }
            _ => {}
        }
    }
    Ok((key, value))
}
