//! OpenTelemetry traces, exported as Spin 3.6 exports them: the same environment
//! variables, OTLP over HTTP with protobuf bodies, the same span names and kinds.
//!
//! Off unless `OTEL_EXPORTER_OTLP_ENDPOINT` (or `..._TRACES_ENDPOINT`) is set
//! ([`config`]). Off, nothing of this runs: the app holds `None` where a [`Tracer`]
//! would be, and every instance `None` where its [`Span`] would be, so a request or a
//! host call reads no clock, allocates nothing and touches no header for it.
//!
//! On, every span is recorded when its last holder drops it (a parent is held by its
//! children, so it ends after them, as a `tracing` span does in Spin) and handed to a
//! bounded queue; a background task ([`export`]) batches the queue into OTLP requests.
//! Nothing on a request's path waits for the collector: a full queue drops spans, and
//! says so once.
//!
//! The spans (names as Spin's `otel.name`, kinds, attributes):
//!
//! - `http.rs`: `{METHOD} {route}` (the route as written in spin.toml; the method
//!   alone when no route matched), SERVER, the child of the request's `traceparent`;
//!   under it `execute_wasm_component {component}`, INTERNAL.
//! - `redis_trigger.rs`: `{channel} receive`, CONSUMER; under it one
//!   `execute_wasm_component {component}` per component the message runs.
//! - host calls, CLIENT, under the instance's `execute_wasm_component`: SQLite
//!   (`spin_sqlite.open`, the statement's text for `execute`), key-value
//!   (`spin_key_value.open`, `.get`, `.set`, `.delete`, `.exists`, `.get_keys`), Redis
//!   (`spin_outbound_redis.open_connection`, `PUBLISH {channel}`, `GET {key}`,
//!   `SET {key}`, `INCRBY {key} 1`, `DEL {keys}`, `SADD ..`, `SMEMBERS {key}`,
//!   `SREM ..`, and the command's name for `execute`), outbound HTTP (the method; the
//!   request carries the span's `traceparent`, as Spin injects it).
//! - an error sets the span's status to ERROR, with the error's text.
//!
//! Where the host deliberately differs from Spin (host/README.md lists these too):
//!
//! - A Redis message that is a JSON object with a top-level `traceparent` (and
//!   `tracestate`), as the app's event envelopes are, continues that trace: the
//!   `receive` span is its child. Spin reads no context from a message, so every
//!   message starts a trace of its own.
//! - Spin has no span per component under a Redis message; without one, the components
//!   of one channel could not be told apart.
//! - The request a component receives carries the host's own context: its
//!   `traceparent` header names the `execute_wasm_component` span (its `tracestate` is
//!   the client's), so a component that writes the context into the events it
//!   publishes links them to its own span. Spin hands the client's header through.
//! - Not exported: the attributes `tracing-opentelemetry` adds to every span in Spin
//!   (`code.*`, `busy_ns`, `idle_ns`), `sqlite.backend`, `kv.backend`, and the Redis
//!   `execute` arguments (the payload of every event).

mod config;
mod context;
#[cfg(test)]
pub mod decode;
mod export;
mod otlp;

use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, oneshot};

pub use context::{SpanContext, SpanId};

use crate::console::log;
use context::IdGenerator;
use export::Message;

/// Spans held for export at most; past it, spans are dropped (and that said once).
const QUEUE_CAPACITY: usize = 8192;

/// What a span describes, as OpenTelemetry's `SpanKind` says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Internal,
    Server,
    Client,
    Consumer,
}

/// An attribute's value: Spin's attributes are text or integers.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Text(Cow<'static, str>),
    Int(i64),
}

impl From<&'static str> for Value {
    fn from(text: &'static str) -> Value {
        Value::Text(Cow::Borrowed(text))
    }
}

impl From<String> for Value {
    fn from(text: String) -> Value {
        Value::Text(Cow::Owned(text))
    }
}

impl From<i64> for Value {
    fn from(int: i64) -> Value {
        Value::Int(int)
    }
}

impl From<u16> for Value {
    fn from(int: u16) -> Value {
        Value::Int(i64::from(int))
    }
}

/// A span's parent, as exported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parent {
    pub span_id: SpanId,
    /// It is another process's (a `traceparent` that came in).
    pub is_remote: bool,
}

/// A finished span, as the exporter writes it.
#[derive(Debug, Clone)]
pub struct SpanRecord {
    pub context: SpanContext,
    pub parent: Option<Parent>,
    pub name: String,
    pub kind: Kind,
    pub start_unix_nanos: u64,
    pub end_unix_nanos: u64,
    pub attributes: Vec<(&'static str, Value)>,
    /// Some: the status is ERROR, with this message.
    pub error: Option<String>,
}

fn now_unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_nanos() as u64)
}

/// Starts spans and hands the finished ones to the exporter. One per app, cloned
/// cheaply; exists only when traces are exported.
#[derive(Clone)]
pub struct Tracer(Arc<Shared>);

struct Shared {
    ids: IdGenerator,
    queue: mpsc::Sender<Message>,
    /// The queue was found full once (said then, not again).
    has_dropped: AtomicBool,
}

impl Tracer {
    /// The tracer the environment asks for, its exporter started on the current tokio
    /// runtime; None when traces are off, or asked for in a way this host does not
    /// export (said here, once). Err where Spin refuses to start too.
    pub fn from_env() -> anyhow::Result<Option<Tracer>> {
        let setup = config::from_env(|name| std::env::var(name).ok())
            .map_err(|why| anyhow::anyhow!("failed to initialize otel tracing: {why}"))?;
        match setup {
            config::Setup::Off => Ok(None),
            config::Setup::Unsupported(why) => {
                log!("traces: not exported: {why}");
                Ok(None)
            }
            config::Setup::On(config) => {
                for warning in &config.warnings {
                    log!("traces: {warning}");
                }
                log!("traces: exporting to {} (OTLP/HTTP)", config.endpoint);
                Ok(Some(Tracer::start(config)))
            }
        }
    }

    fn start(config: config::Config) -> Tracer {
        let (queue, receiver) = mpsc::channel(QUEUE_CAPACITY);
        tokio::spawn(export::run(config, receiver));
        Tracer(Arc::new(Shared {
            ids: IdGenerator::new(),
            queue,
            has_dropped: AtomicBool::new(false),
        }))
    }

    /// A span that starts a trace, or continues one that came from elsewhere
    /// (`remote`, read from a `traceparent`).
    pub fn root(&self, name: String, kind: Kind, remote: Option<SpanContext>) -> Span {
        let (trace_id, flags, state, parent) = match remote {
            Some(remote) => (
                remote.trace_id,
                remote.flags,
                remote.state,
                Some(Parent {
                    span_id: remote.span_id,
                    is_remote: true,
                }),
            ),
            None => (self.0.ids.trace_id(), context::SAMPLED, None, None),
        };
        self.span(
            SpanContext {
                trace_id,
                span_id: self.0.ids.span_id(),
                flags,
                state,
            },
            parent,
            None,
            name,
            kind,
        )
    }

    fn span(
        &self,
        context: SpanContext,
        parent: Option<Parent>,
        holds: Option<Span>,
        name: String,
        kind: Kind,
    ) -> Span {
        Span(Arc::new(Active {
            tracer: self.clone(),
            context: context.clone(),
            _parent: holds,
            record: Mutex::new(SpanRecord {
                context,
                parent,
                name,
                kind,
                start_unix_nanos: now_unix_nanos(),
                end_unix_nanos: 0,
                attributes: Vec::new(),
                error: None,
            }),
        }))
    }

    fn record(&self, span: SpanRecord) {
        match self.0.queue.try_send(Message::Span(span)) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                if !self.0.has_dropped.swap(true, Ordering::Relaxed) {
                    log!(
                        "traces: more than {QUEUE_CAPACITY} spans wait for export (the \
                         collector is slow or unreachable); spans are dropped until it \
                         catches up (said once)"
                    );
                }
            }
            // The exporter is gone: the host is stopping.
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }

    /// Exports what has been recorded so far, waiting at most `within` (the host is
    /// stopping: spans still open then are lost).
    pub async fn flush(&self, within: Duration) {
        let (done, exported) = oneshot::channel();
        let flushing = async {
            if self.0.queue.send(Message::Flush(done)).await.is_ok() {
                let _ = exported.await;
            }
        };
        if tokio::time::timeout(within, flushing).await.is_err() {
            log!(
                "traces: the last spans were not exported within {} s",
                within.as_secs()
            );
        }
    }
}

/// An open span. Clones share it; it ends, and is recorded, when the last one is
/// dropped. A child holds its parent, so a parent never ends before its children.
#[derive(Clone)]
pub struct Span(Arc<Active>);

struct Active {
    tracer: Tracer,
    context: SpanContext,
    _parent: Option<Span>,
    record: Mutex<SpanRecord>,
}

impl Drop for Active {
    fn drop(&mut self) {
        // Parent-based sampling, as Spin's default sampler: a trace its caller does not
        // record is not recorded here either (its context is still passed on).
        if !self.context.is_sampled() {
            return;
        }
        let record = self
            .record
            .get_mut()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut record = std::mem::replace(
            record,
            SpanRecord {
                context: self.context.clone(),
                parent: None,
                name: String::new(),
                kind: Kind::Internal,
                start_unix_nanos: 0,
                end_unix_nanos: 0,
                attributes: Vec::new(),
                error: None,
            },
        );
        record.end_unix_nanos = now_unix_nanos();
        self.tracer.record(record);
    }
}

impl Span {
    /// A span under this one.
    pub fn child(&self, name: String, kind: Kind) -> Span {
        let tracer = &self.0.tracer;
        let context = SpanContext {
            span_id: tracer.0.ids.span_id(),
            ..self.0.context.clone()
        };
        let parent = Parent {
            span_id: self.0.context.span_id,
            is_remote: false,
        };
        tracer.span(context, Some(parent), Some(self.clone()), name, kind)
    }

    pub fn context(&self) -> &SpanContext {
        &self.0.context
    }

    fn with_record(&self, change: impl FnOnce(&mut SpanRecord)) {
        let mut record = self
            .0
            .record
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        change(&mut record);
    }

    pub fn set_name(&self, name: String) {
        self.with_record(|record| record.name = name);
    }

    pub fn set_attribute(&self, key: &'static str, value: impl Into<Value>) {
        let value = value.into();
        self.with_record(
            |record| match record.attributes.iter_mut().find(|(k, _)| *k == key) {
                Some((_, known)) => *known = value,
                None => record.attributes.push((key, value)),
            },
        );
    }

    /// Marks the span as failed (status ERROR), saying why.
    pub fn set_error(&self, message: String) {
        self.with_record(|record| record.error = Some(message));
    }

    /// Ends `span` (when it is the last holder), marked failed if `result` is an error:
    /// how a host call closes its span.
    pub fn end<T, E: std::fmt::Debug>(span: Option<Span>, result: &Result<T, E>) {
        if let (Some(span), Err(err)) = (span, result) {
            span.set_error(format!("{err:?}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tracer() -> (Tracer, mpsc::Receiver<Message>) {
        let (queue, receiver) = mpsc::channel(4);
        let tracer = Tracer(Arc::new(Shared {
            ids: IdGenerator::with_seed(42),
            queue,
            has_dropped: AtomicBool::new(false),
        }));
        (tracer, receiver)
    }

    fn recorded(receiver: &mut mpsc::Receiver<Message>) -> Vec<SpanRecord> {
        let mut spans = Vec::new();
        while let Ok(Message::Span(span)) = receiver.try_recv() {
            spans.push(span);
        }
        spans
    }

    #[test]
    fn a_parent_is_recorded_after_its_children_with_their_links() {
        let (tracer, mut receiver) = tracer();
        let remote = SpanContext::from_traceparent(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            Some("vendor=1"),
        );
        let root = tracer.root("GET /".to_owned(), Kind::Server, remote.clone());
        let child = root.child("execute_wasm_component web".to_owned(), Kind::Internal);
        let call = child.child("spin_sqlite.open".to_owned(), Kind::Client);
        Span::end(Some(call), &Err::<(), _>("no such database"));
        drop(root);
        assert_eq!(recorded(&mut receiver).len(), 1, "only the call has ended");
        drop(child);
        let spans = recorded(&mut receiver);
        let names: Vec<&str> = spans.iter().map(|span| span.name.as_str()).collect();
        assert_eq!(names, ["execute_wasm_component web", "GET /"]);

        let remote = remote.unwrap();
        let (execute, request) = (&spans[0], &spans[1]);
        assert_eq!(request.context.trace_id, remote.trace_id);
        assert_eq!(
            request.parent,
            Some(Parent {
                span_id: remote.span_id,
                is_remote: true
            })
        );
        assert_eq!(request.context.state.as_deref(), Some("vendor=1"));
        assert_eq!(execute.context.trace_id, remote.trace_id);
        assert_eq!(
            execute.parent.as_ref().map(|parent| parent.span_id),
            Some(request.context.span_id)
        );
        assert!(request.end_unix_nanos >= execute.end_unix_nanos);
    }

    #[test]
    fn a_failed_call_is_marked_and_a_root_starts_a_new_sampled_trace() {
        let (tracer, mut receiver) = tracer();
        let root = tracer.root("probe:in receive".to_owned(), Kind::Consumer, None);
        assert!(root.context().is_sampled());
        root.set_attribute("messaging.system", "redis");
        root.set_attribute("messaging.system", "redis");
        Span::end(Some(root), &Err::<(), _>("boom"));
        let spans = recorded(&mut receiver);
        assert_eq!(spans.len(), 1);
        assert_eq!(spans[0].parent, None);
        assert_eq!(spans[0].error.as_deref(), Some("\"boom\""));
        assert_eq!(spans[0].attributes.len(), 1);
    }

    #[test]
    fn an_unsampled_trace_is_passed_on_but_not_recorded() {
        let (tracer, mut receiver) = tracer();
        let remote = SpanContext::from_traceparent(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
            None,
        );
        let root = tracer.root("GET /".to_owned(), Kind::Server, remote);
        let child = root.child("execute_wasm_component web".to_owned(), Kind::Internal);
        assert!(child.context().traceparent().ends_with("-00"));
        drop((root, child));
        assert!(recorded(&mut receiver).is_empty());
    }

    #[test]
    fn a_full_queue_drops_spans_instead_of_waiting() {
        let (tracer, mut receiver) = tracer();
        for _ in 0..10 {
            drop(tracer.root("GET /".to_owned(), Kind::Server, None));
        }
        assert_eq!(recorded(&mut receiver).len(), 4);
        assert!(tracer.0.has_dropped.load(Ordering::Relaxed));
    }
}
