//! Traces as a developer reads them: a local OTLP/HTTP receiver that collects the spans
//! a runtime exports (Spin, or the project's host, with `OTEL_EXPORTER_OTLP_ENDPOINT`
//! pointing at it), and a trace printed as a tree with durations.
//!
//! The receiver is PyPI's `oteltap` ([`OTELTAP`]): it listens on 127.0.0.1 for OTLP
//! over HTTP with protobuf bodies (`POST /v1/traces`, the protocol Spin exports by
//! default), decodes them with the OpenTelemetry project's own Python bindings, and
//! prints each span as one JSON line, which [`Receiver`] reads. It is installed once,
//! with `python3 -m pip`, into a directory of the caller's choosing ([`install`]).
//! Decoding with a published implementation, not one of ours, is the point: what it
//! reads is what Jaeger or Tempo would.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value;

/// The receiver, pinned: its JSON lines are what [`Span::from_json`] reads.
pub const OTELTAP: &str = "oteltap==1.0.0";

/// Installs [`OTELTAP`] (with its dependencies) under `dir` unless it is there, and
/// returns the directory to put on `PYTHONPATH`. Installs into a directory of its own
/// first, renamed into place when complete, so an interrupted or concurrent install
/// never leaves half of one.
pub fn install(dir: &Path) -> Result<PathBuf> {
    let python_path = dir.join("python");
    if python_path.join("oteltap").is_dir() {
        return Ok(python_path);
    }
    std::fs::create_dir_all(dir)?;
    let partial = dir.join(format!("python.partial-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&partial);
    let output = Command::new("python3")
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--target",
        ])
        .arg(&partial)
        .arg(OTELTAP)
        .env("PIP_ROOT_USER_ACTION", "ignore")
        .output()
        .context("running `python3 -m pip` (python3 and pip are needed for traces)")?;
    if !output.status.success() {
        bail!(
            "`python3 -m pip install {OTELTAP}` failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    if std::fs::rename(&partial, &python_path).is_err() {
        // Another install finished first: keep that one.
        let _ = std::fs::remove_dir_all(&partial);
    }
    if !python_path.join("oteltap").is_dir() {
        bail!(
            "{OTELTAP} was installed, but {} has no oteltap",
            python_path.display()
        );
    }
    Ok(python_path)
}

/// What a span is, as OTLP numbers it (`Span.SpanKind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Unspecified,
    Internal,
    Server,
    Client,
    Producer,
    Consumer,
}

/// One exported span.
#[derive(Debug, Clone, PartialEq)]
pub struct Span {
    pub trace_id: String,
    pub span_id: String,
    /// None for a root span.
    pub parent_id: Option<String>,
    pub name: String,
    pub kind: Kind,
    pub start_ns: u64,
    pub end_ns: u64,
    /// Attribute values as text (`"201"` for an integer).
    pub attributes: BTreeMap<String, String>,
    pub is_error: bool,
}

impl Span {
    /// A span from one of oteltap's JSON lines (OTLP's JSON mapping, ids in hex); None
    /// for a line that is no span.
    pub fn from_json(line: &str) -> Option<Span> {
        let json: Value = serde_json::from_str(line).ok()?;
        let text = |key: &str| json.get(key).and_then(Value::as_str).map(str::to_owned);
        let nanos = |key: &str| {
            json.get(key).and_then(|value| match value {
                Value::String(text) => text.parse().ok(),
                other => other.as_u64(),
            })
        };
        let kind = match json.get("kind").and_then(Value::as_u64) {
            Some(1) => Kind::Internal,
            Some(2) => Kind::Server,
            Some(3) => Kind::Client,
            Some(4) => Kind::Producer,
            Some(5) => Kind::Consumer,
            _ => Kind::Unspecified,
        };
        let attributes = json
            .get("attributes")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|attribute| {
                let key = attribute.get("key")?.as_str()?.to_owned();
                let value = attribute.get("value")?.as_object()?.values().next()?;
                let value = match value {
                    Value::String(text) => text.clone(),
                    other => other.to_string(),
                };
                Some((key, value))
            })
            .collect();
        // `status.code`: 2 (or "STATUS_CODE_ERROR") is an error.
        let is_error = json
            .get("status")
            .and_then(|status| status.get("code"))
            .is_some_and(|code| {
                code.as_u64() == Some(2) || code.as_str() == Some("STATUS_CODE_ERROR")
            });
        Some(Span {
            trace_id: text("traceId").filter(|id| !id.is_empty())?,
            span_id: text("spanId").filter(|id| !id.is_empty())?,
            parent_id: text("parentSpanId").filter(|id| !id.is_empty()),
            name: text("name").unwrap_or_default(),
            kind,
            start_ns: nanos("startTimeUnixNano")?,
            end_ns: nanos("endTimeUnixNano")?,
            attributes,
            is_error,
        })
    }

    pub fn duration(&self) -> Duration {
        Duration::from_nanos(self.end_ns.saturating_sub(self.start_ns))
    }
}

/// A running oteltap on 127.0.0.1, and the spans it has received; stopped when dropped.
pub struct Receiver {
    child: Child,
    port: u16,
    spans: Arc<Mutex<Vec<Span>>>,
}

/// How long oteltap may take to listen (Python starting and importing protobuf).
const START_TIMEOUT: Duration = Duration::from_secs(60);

impl Receiver {
    /// Starts oteltap (from `python_path`, see [`install`]) on `port` and waits until it
    /// listens.
    pub fn start(python_path: &Path, port: u16) -> Result<Receiver> {
        let mut child = Command::new("python3")
            .args(["-u", "-m", "oteltap", "--port", &port.to_string()])
            .env("PYTHONPATH", python_path)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting `python3 -m oteltap`")?;
        let spans = Arc::new(Mutex::new(Vec::new()));
        let (listening, is_listening) = mpsc::channel();
        let stdout = child.stdout.take().expect("stdout is piped");
        let collected = spans.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if line.starts_with("Listening for OTLP") {
                    let _ = listening.send(());
                } else if let Some(span) = Span::from_json(&line) {
                    collected.lock().expect("no holder panics").push(span);
                }
            }
        });
        let mut stderr = child.stderr.take().expect("stderr is piped");
        let errors = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        let started = Instant::now();
        loop {
            if is_listening
                .recv_timeout(Duration::from_millis(100))
                .is_ok()
            {
                return Ok(Receiver { child, port, spans });
            }
            if let Ok(Some(status)) = child.try_wait() {
                let errors = errors.join().unwrap_or_default();
                bail!(
                    "oteltap exited ({status}) before listening on port {port}: {}",
                    errors.trim()
                );
            }
            if started.elapsed() > START_TIMEOUT {
                let _ = child.kill();
                bail!("oteltap did not listen on port {port} within {START_TIMEOUT:?}");
            }
        }
    }

    /// What to set `OTEL_EXPORTER_OTLP_ENDPOINT` to.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Every span received so far, in arrival order.
    pub fn spans(&self) -> Vec<Span> {
        self.spans.lock().expect("no holder panics").clone()
    }

    /// The spans of one trace received so far.
    pub fn trace(&self, trace_id: &str) -> Vec<Span> {
        let spans = self.spans.lock().expect("no holder panics");
        spans
            .iter()
            .filter(|span| span.trace_id == trace_id)
            .cloned()
            .collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A trace as a tree: one line per span, children under their parent in the order they
/// started, each with when it started (after the trace's first span) and how long it
/// took. The host calls under a span (CLIENT spans: SQLite, Redis, key-value, HTTP)
/// are summed up in one line unless `with_host_calls`. A span whose parent was not
/// exported (the client's, say) is shown at the top, with that said.
pub fn render(spans: &[Span], with_host_calls: bool) -> String {
    let Some(first) = spans.iter().map(|span| span.start_ns).min() else {
        return "(no spans)\n".to_owned();
    };
    let last = spans.iter().map(|span| span.end_ns).max().unwrap_or(first);
    let ids: HashMap<&str, &Span> = spans
        .iter()
        .map(|span| (span.span_id.as_str(), span))
        .collect();
    let mut children: HashMap<&str, Vec<&Span>> = HashMap::new();
    let mut roots = Vec::new();
    for span in spans {
        match span.parent_id.as_deref() {
            Some(parent) if ids.contains_key(parent) => {
                children.entry(parent).or_default().push(span);
            }
            _ => roots.push(span),
        }
    }
    for list in children.values_mut() {
        list.sort_by_key(|span| span.start_ns);
    }
    roots.sort_by_key(|span| span.start_ns);

    let mut out = String::new();
    let _ = writeln!(
        out,
        "trace {} · {} spans · {}",
        spans[0].trace_id,
        spans.len(),
        format_duration(Duration::from_nanos(last - first))
    );
    let tree = Tree {
        children,
        first,
        with_host_calls,
    };
    for root in roots {
        tree.write(&mut out, root, "", "", true);
    }
    out
}

struct Tree<'a> {
    children: HashMap<&'a str, Vec<&'a Span>>,
    first: u64,
    with_host_calls: bool,
}

impl Tree<'_> {
    fn write(&self, out: &mut String, span: &Span, lead: &str, branch: &str, is_root: bool) {
        let children = self
            .children
            .get(span.span_id.as_str())
            .map_or(&[][..], Vec::as_slice);
        let (calls, shown): (Vec<&Span>, Vec<&Span>) = children
            .iter()
            .partition(|child| child.kind == Kind::Client && !self.with_host_calls);
        let mut notes = Vec::new();
        if let Some(status) = span.attributes.get("http.response.status_code") {
            notes.push(status.clone());
        }
        if span.is_error {
            notes.push("ERROR".to_owned());
        }
        if is_root && let Some(parent) = &span.parent_id {
            notes.push(format!("parent {parent} not exported"));
        }
        if !calls.is_empty() {
            notes.push(summarize(&calls));
        }
        let _ = writeln!(
            out,
            "{:>12}  {lead}{branch}{}  {}{}",
            format!(
                "+{}",
                format_duration(Duration::from_nanos(span.start_ns - self.first))
            ),
            span.name,
            format_duration(span.duration()),
            notes
                .iter()
                .map(|note| format!(" · {note}"))
                .collect::<String>()
        );
        let lead = format!(
            "{lead}{}",
            match branch {
                "" => "",
                "└─ " => "   ",
                _ => "│  ",
            }
        );
        for (index, child) in shown.iter().enumerate() {
            let branch = if index + 1 == shown.len() {
                "└─ "
            } else {
                "├─ "
            };
            self.write(out, child, &lead, branch, false);
        }
    }
}

/// "9 host calls (sqlite 7, redis 2) 1.2 ms".
fn summarize(calls: &[&Span]) -> String {
    let mut by_system: BTreeMap<&str, usize> = BTreeMap::new();
    for call in calls {
        let system = call
            .attributes
            .get("db.system")
            .map(String::as_str)
            .unwrap_or(if call.attributes.contains_key("url.full") {
                "http"
            } else {
                "other"
            });
        *by_system.entry(system).or_default() += 1;
    }
    let total: Duration = calls.iter().map(|call| call.duration()).sum();
    format!(
        "{} host calls ({}) {}",
        calls.len(),
        by_system
            .iter()
            .map(|(system, count)| format!("{system} {count}"))
            .collect::<Vec<_>>()
            .join(", "),
        format_duration(total)
    )
}

/// "0.8 ms", "12 ms", "2.31 s", "15 min 0.2 s".
pub fn format_duration(duration: Duration) -> String {
    let ms = duration.as_secs_f64() * 1000.0;
    if ms < 10.0 {
        format!("{ms:.1} ms")
    } else if ms < 1000.0 {
        format!("{ms:.0} ms")
    } else if ms < 60_000.0 {
        format!("{:.2} s", ms / 1000.0)
    } else {
        let minutes = (ms / 60_000.0).floor();
        format!(
            "{minutes:.0} min {:.1} s",
            (ms - minutes * 60_000.0) / 1000.0
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(
        id: &str,
        parent: Option<&str>,
        name: &str,
        kind: Kind,
        start_ms: u64,
        ms: u64,
    ) -> Span {
        Span {
            trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".into(),
            span_id: id.into(),
            parent_id: parent.map(str::to_owned),
            name: name.into(),
            kind,
            start_ns: start_ms * 1_000_000,
            end_ns: (start_ms + ms) * 1_000_000,
            attributes: BTreeMap::new(),
            is_error: false,
        }
    }

    #[test]
    fn an_oteltap_line_is_a_span() {
        let line = r#"{"traceId":"4bf92f3577b34da6a3ce929d0e0e4736","spanId":"00f067aa0ba902b7","traceState":"","parentSpanId":"1111111111111111","flags":0,"name":"POST /api/orders","kind":2,"startTimeUnixNano":"1765000000000000000","endTimeUnixNano":"1765000000005000000","attributes":[{"key":"http.response.status_code","value":{"intValue":"201"}}],"droppedAttributesCount":0,"events":[],"droppedEventsCount":0,"links":[],"droppedLinksCount":0,"status":null}"#;
        let span = Span::from_json(line).unwrap();
        assert_eq!(span.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(span.span_id, "00f067aa0ba902b7");
        assert_eq!(span.parent_id.as_deref(), Some("1111111111111111"));
        assert_eq!(span.name, "POST /api/orders");
        assert_eq!(span.kind, Kind::Server);
        assert_eq!(span.duration(), Duration::from_millis(5));
        assert_eq!(span.attributes["http.response.status_code"], "201");
        assert!(!span.is_error);
        let root = line
            .replace("1111111111111111", "")
            .replace("\"status\":null", "\"status\":{\"code\":2}");
        let root = Span::from_json(&root).unwrap();
        assert_eq!(root.parent_id, None);
        assert!(root.is_error);
        assert_eq!(
            Span::from_json("Listening for OTLP/HTTP telemetry on port 4318"),
            None
        );
    }

    #[test]
    fn a_trace_renders_as_a_tree_with_host_calls_summed_up() {
        let mut query = span("c1", Some("e1"), "SELECT 1", Kind::Client, 2, 1);
        query.attributes.insert("db.system".into(), "sqlite".into());
        let spans = [
            span(
                "h1",
                Some("client"),
                "POST /api/orders",
                Kind::Server,
                0,
                10,
            ),
            span(
                "e1",
                Some("h1"),
                "execute_wasm_component orders-api",
                Kind::Internal,
                1,
                8,
            ),
            query,
            span(
                "r1",
                Some("e1"),
                "order:created receive",
                Kind::Consumer,
                20,
                5,
            ),
            span(
                "x1",
                Some("r1"),
                "execute_wasm_component tickets-events",
                Kind::Internal,
                21,
                3,
            ),
        ];
        let text = render(&spans, false);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "trace 4bf92f3577b34da6a3ce929d0e0e4736 · 5 spans · 25 ms"
        );
        assert!(
            lines[1].ends_with("POST /api/orders  10 ms · parent client not exported"),
            "{text}"
        );
        assert!(
            lines[2].ends_with(
                "└─ execute_wasm_component orders-api  8.0 ms · 1 host calls (sqlite 1) 1.0 ms"
            ),
            "{text}"
        );
        assert!(
            lines[3].ends_with("   └─ order:created receive  5.0 ms"),
            "{text}"
        );
        assert!(lines[3].trim_start().starts_with("+20 ms"), "{text}");
        assert!(
            lines[4].ends_with("      └─ execute_wasm_component tickets-events  3.0 ms"),
            "{text}"
        );
        assert_eq!(lines.len(), 5);
        assert_eq!(render(&spans, true).lines().count(), 6);
    }

    #[test]
    fn durations_read_at_every_scale() {
        assert_eq!(format_duration(Duration::from_micros(800)), "0.8 ms");
        assert_eq!(format_duration(Duration::from_millis(12)), "12 ms");
        assert_eq!(format_duration(Duration::from_millis(2310)), "2.31 s");
        assert_eq!(
            format_duration(Duration::from_millis(900_200)),
            "15 min 0.2 s"
        );
    }
}
