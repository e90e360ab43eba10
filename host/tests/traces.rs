//! The host exports OpenTelemetry traces when `OTEL_EXPORTER_OTLP_ENDPOINT` names a
//! collector: the probe app runs on the host with the endpoint pointing at a small
//! OTLP/HTTP receiver of this test's, and the spans it receives are decoded and checked
//! (names, kinds, trace ids and parent links).

#[path = "../src/traces/decode.rs"]
mod decode;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use harness::{App, Method, Redis, eventually};
use serde_json::json;

/// Span kinds, as OTLP numbers them.
const SERVER: u64 = 2;
const INTERNAL: u64 = 1;
const CLIENT: u64 = 3;
const CONSUMER: u64 = 5;

/// One export request the collector received.
struct Export {
    path: String,
    content_type: String,
    body: Vec<u8>,
}

/// An OTLP/HTTP receiver on a free loopback port, shared by the tests of this file:
/// it keeps every request and answers 200. Each test finds its own spans by trace id.
struct Collector {
    port: u16,
    exports: Arc<Mutex<Vec<Export>>>,
}

/// Started by the first test that asks.
fn collector() -> &'static Collector {
    static COLLECTOR: OnceLock<Collector> = OnceLock::new();
    COLLECTOR.get_or_init(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let exports = Arc::new(Mutex::new(Vec::new()));
        let kept = exports.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().map_while(Result::ok) {
                let kept = kept.clone();
                std::thread::spawn(move || receive(stream, &kept));
            }
        });
        Collector { port, exports }
    })
}

/// Reads HTTP/1.1 requests off one kept-alive connection (bodies with a
/// Content-Length, as the host sends them) and answers each with 200.
fn receive(stream: TcpStream, exports: &Mutex<Vec<Export>>) {
    let Ok(mut answers) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let path = request_line
            .split_whitespace()
            .nth(1)
            .unwrap_or_default()
            .to_owned();
        let (mut length, mut content_type) = (0, String::new());
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).unwrap_or(0) == 0 {
                return;
            }
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                match name.trim().to_ascii_lowercase().as_str() {
                    "content-length" => length = value.trim().parse().unwrap_or(0),
                    "content-type" => content_type = value.trim().to_owned(),
                    _ => {}
                }
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        exports.lock().unwrap().push(Export {
            path,
            content_type,
            body,
        });
        if answers
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
            .is_err()
        {
            return;
        }
    }
}

impl Collector {
    /// Every span received so far, of the trace `trace_id` (hex).
    fn spans_of(&self, trace_id: &str) -> Vec<decode::Span> {
        let exports = self.exports.lock().unwrap();
        let mut spans = Vec::new();
        for export in exports.iter() {
            assert_eq!(export.path, "/v1/traces");
            assert_eq!(export.content_type, "application/x-protobuf");
            let request = decode::export_request(&export.body).unwrap();
            assert_eq!(
                request.resource.first(),
                Some(&(
                    "service.name".to_owned(),
                    decode::Value::Text("spin".to_owned())
                ))
            );
            spans.extend(
                request
                    .spans
                    .into_iter()
                    .filter(|span| hex(&span.trace_id) == trace_id),
            );
        }
        spans
    }

    /// Waits until the trace has `count` spans, and returns them.
    fn wait_for_spans(&self, trace_id: &str, count: usize) -> Vec<decode::Span> {
        eventually(
            &format!("{count} spans of trace {trace_id}"),
            Duration::from_secs(20),
            || {
                let spans = self.spans_of(trace_id);
                (spans.len() >= count).then_some(spans)
            },
        )
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// The one span of `spans` named `name`, shown with all of them when it is not there.
fn named<'a>(spans: &'a [decode::Span], name: &str) -> &'a decode::Span {
    let found: Vec<&decode::Span> = spans.iter().filter(|span| span.name == name).collect();
    assert_eq!(
        found.len(),
        1,
        "one span `{name}` among {:#?}",
        names(spans)
    );
    found[0]
}

fn names(spans: &[decode::Span]) -> Vec<(&str, String, String)> {
    spans
        .iter()
        .map(|span| {
            (
                span.name.as_str(),
                hex(&span.span_id),
                hex(&span.parent_span_id),
            )
        })
        .collect()
}

/// A text attribute's value.
fn text<'a>(span: &'a decode::Span, key: &str) -> Option<&'a str> {
    match span.attribute(key)? {
        decode::Value::Text(text) => Some(text),
        _ => None,
    }
}

fn is_child(child: &decode::Span, parent: &decode::Span) -> bool {
    child.parent_span_id == parent.span_id && child.trace_id == parent.trace_id
}

fn start_probe(collector: &Collector) -> App {
    App::builder(harness::workspace_root().join("host/probe/spin.toml"))
        .env(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            &format!("http://127.0.0.1:{}", collector.port),
        )
        .with_redis(Redis::start())
        .variable("secret_word", "sesame")
        .start()
}

#[test]
fn a_request_continues_the_callers_trace_down_to_its_host_calls() {
    let collector = collector();
    let app = start_probe(collector);
    let exporting = format!(
        "traces: exporting to http://127.0.0.1:{}/v1/traces",
        collector.port
    );
    app.wait_for_log("the line saying where traces go", |line| {
        line.starts_with(&exporting)
    });
    let (trace_id, caller) = (harness::random_hex(16), harness::random_hex(8));
    let traceparent = format!("00-{trace_id}-{caller}-01");
    let reply = app.send(
        app.request(Method::POST, "/sqlite?from=test")
            .header("traceparent", &traceparent)
            .json(&json!({ "db": "default", "statements": [{ "sql": "SELECT 1" }] })),
    );
    assert_eq!(reply.status, 200, "{}", reply.text());

    // The request, its component's execution, and the two SQLite calls.
    let spans = collector.wait_for_spans(&trace_id, 4);
    let request = named(&spans, "POST /...");
    assert_eq!(hex(&request.parent_span_id), caller);
    assert_eq!(request.kind, SERVER);
    assert_eq!(text(request, "http.route"), Some("/..."));
    assert_eq!(text(request, "http.request.method"), Some("POST"));
    assert_eq!(text(request, "url.path"), Some("/sqlite"));
    assert_eq!(text(request, "url.query"), Some("from=test"));
    assert_eq!(
        request.attribute("http.response.status_code"),
        Some(&decode::Value::Int(200))
    );
    // Remote parent: bits 8 and 9 of the flags, and the sampled flag passed on.
    assert_eq!(request.flags, 0x301);

    let execution = named(&spans, "execute_wasm_component probe");
    assert!(is_child(execution, request), "{:#?}", names(&spans));
    assert_eq!(execution.kind, INTERNAL);

    let open = named(&spans, "spin_sqlite.open");
    let select = named(&spans, "SELECT 1");
    for call in [open, select] {
        assert!(is_child(call, execution), "{:#?}", names(&spans));
        assert_eq!(call.kind, CLIENT);
        assert_eq!(text(call, "db.system"), Some("sqlite"));
        assert_eq!(call.status_code, 0, "{call:?}");
        assert!(call.start_unix_nanos >= execution.start_unix_nanos);
        assert!(call.end_unix_nanos <= execution.end_unix_nanos);
    }
    assert!(execution.end_unix_nanos <= request.end_unix_nanos);
}

#[test]
fn the_component_sees_its_own_span_as_the_parent_and_the_callers_tracestate() {
    let collector = collector();
    let app = start_probe(collector);
    let (trace_id, caller) = (harness::random_hex(16), harness::random_hex(8));
    let reply = app.send(
        app.request(Method::GET, "/routes/exact")
            .header("traceparent", format!("00-{trace_id}-{caller}-01"))
            .header("tracestate", "shop=1"),
    );
    assert_eq!(reply.status, 200, "{}", reply.text());
    let seen = reply.json();

    let spans = collector.wait_for_spans(&trace_id, 2);
    let request = named(&spans, "GET /routes/exact");
    let execution = named(&spans, "execute_wasm_component probe");
    assert!(is_child(execution, request), "{:#?}", names(&spans));
    assert_eq!(request.trace_state, "shop=1");
    assert_eq!(
        seen["headers"]["traceparent"],
        format!("00-{trace_id}-{}-01", hex(&execution.span_id)),
        "{seen}"
    );
    assert_eq!(seen["headers"]["tracestate"], "shop=1", "{seen}");
}

#[test]
fn a_redis_message_carrying_a_traceparent_continues_that_trace() {
    let collector = collector();
    let app = start_probe(collector);
    app.redis().wait_for_subscribers("probe:in", 1);
    let (trace_id, publisher) = (harness::random_hex(16), harness::random_hex(8));
    let envelope = json!({
        "id": "e1",
        "subject": "probe:tested",
        "data": {},
        "traceparent": format!("00-{trace_id}-{publisher}-01"),
    });
    let _: i64 = redis::cmd("PUBLISH")
        .arg("probe:in")
        .arg(envelope.to_string())
        .query(&mut app.redis().connection())
        .unwrap();

    // The message, and for each of its two components the execution, the connection
    // and the RPUSH that records the message.
    let spans = collector.wait_for_spans(&trace_id, 7);
    let message = named(&spans, "probe:in receive");
    assert_eq!(hex(&message.parent_span_id), publisher);
    assert_eq!(message.kind, CONSUMER);
    assert_eq!(text(message, "messaging.system"), Some("redis"));
    assert_eq!(text(message, "messaging.operation"), Some("receive"));
    for component in ["probe", "other"] {
        let execution = named(&spans, &format!("execute_wasm_component {component}"));
        assert!(is_child(execution, message), "{:#?}", names(&spans));
        let calls: Vec<&decode::Span> = spans
            .iter()
            .filter(|span| is_child(span, execution))
            .collect();
        let call_names: Vec<&str> = calls.iter().map(|span| span.name.as_str()).collect();
        assert_eq!(
            call_names,
            ["spin_outbound_redis.open_connection", "RPUSH"],
            "{component}"
        );
        assert!(
            calls
                .iter()
                .all(|call| call.kind == CLIENT && text(call, "db.system") == Some("redis"))
        );
    }

    // A message that names no trace starts one, as in Spin.
    let _: i64 = redis::cmd("PUBLISH")
        .arg("probe:in")
        .arg("plain")
        .query(&mut app.redis().connection())
        .unwrap();
    eventually(
        "a root span for the plain message",
        Duration::from_secs(20),
        || {
            let exports = collector.exports.lock().unwrap();
            exports.iter().find_map(|export| {
                decode::export_request(&export.body)
                    .unwrap()
                    .spans
                    .into_iter()
                    .find(|span| span.name == "probe:in receive" && span.parent_span_id.is_empty())
            })
        },
    );
}
