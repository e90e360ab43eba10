//! The body of an OTLP/HTTP export: an `ExportTraceServiceRequest` in protobuf, written
//! by hand (a protobuf crate would add minutes to every build for a dozen fields).
//!
//! Field numbers are opentelemetry-proto's (v1), from the files named at each group.
//! Every nested message is written in place and its length put before it afterwards,
//! so a batch is one buffer.

use super::{Kind, SpanRecord, Value};

// opentelemetry/proto/collector/trace/v1/trace_service.proto
const EXPORT_TRACE_SERVICE_REQUEST_RESOURCE_SPANS: u32 = 1;

// opentelemetry/proto/trace/v1/trace.proto
const RESOURCE_SPANS_RESOURCE: u32 = 1;
const RESOURCE_SPANS_SCOPE_SPANS: u32 = 2;
const SCOPE_SPANS_SCOPE: u32 = 1;
const SCOPE_SPANS_SPANS: u32 = 2;
const SPAN_TRACE_ID: u32 = 1;
const SPAN_SPAN_ID: u32 = 2;
const SPAN_TRACE_STATE: u32 = 3;
const SPAN_PARENT_SPAN_ID: u32 = 4;
const SPAN_NAME: u32 = 5;
const SPAN_KIND: u32 = 6;
const SPAN_START_TIME_UNIX_NANO: u32 = 7;
const SPAN_END_TIME_UNIX_NANO: u32 = 8;
const SPAN_ATTRIBUTES: u32 = 9;
const SPAN_STATUS: u32 = 15;
const SPAN_FLAGS: u32 = 16;
const STATUS_MESSAGE: u32 = 2;
const STATUS_CODE: u32 = 3;
/// `Status.StatusCode.STATUS_CODE_ERROR`.
const STATUS_CODE_ERROR: u64 = 2;
/// `SpanFlags`: the span's flags say whether its parent is remote (bit 8), and then
/// that it is (bit 9).
const SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK: u32 = 0x100;
const SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK: u32 = 0x200;

// opentelemetry/proto/resource/v1/resource.proto
const RESOURCE_ATTRIBUTES: u32 = 1;

// opentelemetry/proto/common/v1/common.proto
const INSTRUMENTATION_SCOPE_NAME: u32 = 1;
const INSTRUMENTATION_SCOPE_VERSION: u32 = 2;
const KEY_VALUE_KEY: u32 = 1;
const KEY_VALUE_VALUE: u32 = 2;
const ANY_VALUE_STRING_VALUE: u32 = 1;
const ANY_VALUE_INT_VALUE: u32 = 3;

/// The instrumentation scope of every span: Spin's tracer is named `spin`, and queries
/// written against Spin's traces then find the host's.
pub const SCOPE_NAME: &str = "spin";

impl Kind {
    /// `Span.SpanKind`.
    fn number(self) -> u64 {
        match self {
            Kind::Internal => 1,
            Kind::Server => 2,
            Kind::Client => 3,
            Kind::Consumer => 5,
        }
    }
}

/// One request carrying `spans`, all from the one resource.
pub fn export_request(resource: &[(String, String)], spans: &[SpanRecord]) -> Vec<u8> {
    let mut out = Writer::default();
    out.message(EXPORT_TRACE_SERVICE_REQUEST_RESOURCE_SPANS, |out| {
        out.message(RESOURCE_SPANS_RESOURCE, |out| {
            for (key, value) in resource {
                out.key_value(RESOURCE_ATTRIBUTES, key, &Value::Text(value.clone().into()));
            }
        });
        out.message(RESOURCE_SPANS_SCOPE_SPANS, |out| {
            out.message(SCOPE_SPANS_SCOPE, |out| {
                out.string(INSTRUMENTATION_SCOPE_NAME, SCOPE_NAME);
                out.string(INSTRUMENTATION_SCOPE_VERSION, env!("CARGO_PKG_VERSION"));
            });
            for span in spans {
                out.message(SCOPE_SPANS_SPANS, |out| out.span(span));
            }
        });
    });
    out.0
}

/// Protobuf's wire format, the parts OTLP traces use.
#[derive(Default)]
struct Writer(Vec<u8>);

const WIRE_VARINT: u32 = 0;
const WIRE_FIXED64: u32 = 1;
const WIRE_LENGTH_DELIMITED: u32 = 2;
const WIRE_FIXED32: u32 = 5;

impl Writer {
    fn varint(&mut self, mut value: u64) {
        while value >= 0x80 {
            self.0.push(value as u8 | 0x80);
            value >>= 7;
        }
        self.0.push(value as u8);
    }

    fn tag(&mut self, field: u32, wire_type: u32) {
        self.varint(u64::from(field << 3 | wire_type));
    }

    fn bytes(&mut self, field: u32, bytes: &[u8]) {
        self.tag(field, WIRE_LENGTH_DELIMITED);
        self.varint(bytes.len() as u64);
        self.0.extend_from_slice(bytes);
    }

    fn string(&mut self, field: u32, text: &str) {
        self.bytes(field, text.as_bytes());
    }

    fn uint(&mut self, field: u32, value: u64) {
        self.tag(field, WIRE_VARINT);
        self.varint(value);
    }

    fn fixed64(&mut self, field: u32, value: u64) {
        self.tag(field, WIRE_FIXED64);
        self.0.extend_from_slice(&value.to_le_bytes());
    }

    fn fixed32(&mut self, field: u32, value: u32) {
        self.tag(field, WIRE_FIXED32);
        self.0.extend_from_slice(&value.to_le_bytes());
    }

    /// A nested message: written after its tag, then its length is put in between.
    fn message(&mut self, field: u32, write: impl FnOnce(&mut Writer)) {
        self.tag(field, WIRE_LENGTH_DELIMITED);
        let start = self.0.len();
        write(self);
        let mut length = Writer::default();
        length.varint((self.0.len() - start) as u64);
        self.0.splice(start..start, length.0);
    }

    fn key_value(&mut self, field: u32, key: &str, value: &Value) {
        self.message(field, |out| {
            out.string(KEY_VALUE_KEY, key);
            out.message(KEY_VALUE_VALUE, |out| match value {
                Value::Text(text) => out.string(ANY_VALUE_STRING_VALUE, text),
                // int64 is written as its two's complement, as protobuf does.
                Value::Int(int) => out.uint(ANY_VALUE_INT_VALUE, *int as u64),
            });
        });
    }

    fn span(&mut self, span: &SpanRecord) {
        self.bytes(SPAN_TRACE_ID, &span.context.trace_id.0);
        self.bytes(SPAN_SPAN_ID, &span.context.span_id.0);
        if let Some(state) = &span.context.state {
            self.string(SPAN_TRACE_STATE, state);
        }
        let mut flags = u32::from(span.context.flags) | SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK;
        if let Some(parent) = &span.parent {
            self.bytes(SPAN_PARENT_SPAN_ID, &parent.span_id.0);
            if parent.is_remote {
                flags |= SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK;
            }
        }
        self.fixed32(SPAN_FLAGS, flags);
        self.string(SPAN_NAME, &span.name);
        self.uint(SPAN_KIND, span.kind.number());
        self.fixed64(SPAN_START_TIME_UNIX_NANO, span.start_unix_nanos);
        self.fixed64(SPAN_END_TIME_UNIX_NANO, span.end_unix_nanos);
        for (key, value) in &span.attributes {
            self.key_value(SPAN_ATTRIBUTES, key, value);
        }
        if let Some(message) = &span.error {
            self.message(SPAN_STATUS, |out| {
                out.string(STATUS_MESSAGE, message);
                out.uint(STATUS_CODE, STATUS_CODE_ERROR);
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::context::TraceId;
    use super::super::decode;
    use super::super::{Parent, SpanContext, SpanId};
    use super::*;

    #[test]
    fn a_key_value_is_the_bytes_derived_by_hand() {
        // KeyValue { key: "a", value: AnyValue { string_value: "b" } }:
        // field 1 (key), length-delimited: tag 1<<3|2 = 0x0a, length 1, "a" (0x61);
        // field 2 (value), length-delimited: tag 0x12, length 3, and inside it
        // field 1 (string_value): 0x0a, 1, "b" (0x62).
        let mut out = Writer::default();
        out.message(9, |out| {
            out.string(KEY_VALUE_KEY, "a");
            out.message(KEY_VALUE_VALUE, |out| {
                out.string(ANY_VALUE_STRING_VALUE, "b")
            });
        });
        // Field 9, length-delimited: tag 9<<3|2 = 0x4a, then the 8 bytes.
        assert_eq!(out.0, [0x4a, 8, 0x0a, 1, 0x61, 0x12, 3, 0x0a, 1, 0x62]);
        // An int64 of -1 is ten bytes of varint; 300 is 0xac 0x02.
        let mut out = Writer::default();
        out.uint(3, -1i64 as u64);
        assert_eq!(out.0.len(), 1 + 10);
        let mut out = Writer::default();
        out.varint(300);
        assert_eq!(out.0, [0xac, 0x02]);
    }

    #[test]
    fn a_nested_message_over_127_bytes_gets_a_two_byte_length() {
        let mut out = Writer::default();
        let long = "x".repeat(200);
        out.message(1, |out| out.string(1, &long));
        // Outer: tag, length 203 (0xcb 0x01); inner: tag, length 200 (0xc8 0x01).
        assert_eq!(out.0[..5], [0x0a, 0xcb, 0x01, 0x0a, 0xc8]);
        assert_eq!(out.0.len(), 1 + 2 + 203);
    }

    fn span(parent: Option<Parent>, error: Option<&str>) -> SpanRecord {
        SpanRecord {
            context: SpanContext {
                trace_id: TraceId([7; 16]),
                span_id: SpanId([8; 8]),
                flags: 1,
                state: Some("vendor=x".into()),
            },
            parent,
            name: "GET /api/tickets/:id".to_owned(),
            kind: Kind::Server,
            start_unix_nanos: 1_700_000_000_000_000_000,
            end_unix_nanos: 1_700_000_000_001_000_000,
            attributes: vec![
                ("http.request.method", Value::Text("GET".into())),
                ("http.response.status_code", Value::Int(200)),
                ("negative", Value::Int(-5)),
            ],
            error: error.map(str::to_owned),
        }
    }

    #[test]
    fn what_is_encoded_decodes_to_the_same_spans() {
        let resource = vec![("service.name".to_owned(), "spin".to_owned())];
        let spans = [
            span(
                Some(Parent {
                    span_id: SpanId([9; 8]),
                    is_remote: true,
                }),
                None,
            ),
            span(None, Some("the component trapped")),
        ];
        let body = export_request(&resource, &spans);
        let decoded = decode::export_request(&body).unwrap();
        assert_eq!(
            decoded.resource,
            [(
                "service.name".to_owned(),
                decode::Value::Text("spin".to_owned())
            )]
        );
        assert_eq!(decoded.scope, SCOPE_NAME);
        assert_eq!(decoded.spans.len(), 2);

        let first = &decoded.spans[0];
        assert_eq!(first.trace_id, [7; 16]);
        assert_eq!(first.span_id, [8; 8]);
        assert_eq!(first.parent_span_id, [9; 8]);
        assert_eq!(first.trace_state, "vendor=x");
        assert_eq!(first.flags, 0x301);
        assert_eq!(first.name, "GET /api/tickets/:id");
        assert_eq!(first.kind, 2);
        assert_eq!(first.start_unix_nanos, 1_700_000_000_000_000_000);
        assert_eq!(first.end_unix_nanos, 1_700_000_000_001_000_000);
        assert_eq!(
            first.attribute("http.request.method"),
            Some(&decode::Value::Text("GET".into()))
        );
        assert_eq!(
            first.attribute("http.response.status_code"),
            Some(&decode::Value::Int(200))
        );
        assert_eq!(first.attribute("negative"), Some(&decode::Value::Int(-5)));
        assert_eq!(first.status_code, 0);

        let second = &decoded.spans[1];
        assert!(second.parent_span_id.is_empty());
        assert_eq!(second.flags, 0x101);
        assert_eq!(second.status_code, 2);
        assert_eq!(second.status_message, "the component trapped");
    }
}
