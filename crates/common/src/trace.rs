//! The trace context of what this invocation is doing: the W3C `traceparent` (and
//! `tracestate`) it came with, which the events it publishes carry on (docs/API.md,
//! "Events").
//!
//! A component records no spans itself (that needs `wasi:otel`, which SpinKube's shim
//! does not offer); it only passes the context on, so that the runtime's spans of every
//! service that touches an order share one trace id:
//! - an HTTP request's context is its `traceparent` header (`serve` enters it);
//! - an event's is the one in its envelope (the consumer enters it around the handler);
//! - an invocation with none starts a trace of its own at its first event, so that its
//!   events still share one id, written in its log lines.
//!
//! The current context is per invocation: every request and message runs in a fresh
//! instance, so a thread-local is what "the work in hand" means here, as OpenTelemetry's
//! own `Context::current` is.

use std::cell::RefCell;

use crate::ApiError;

/// A valid W3C trace context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    traceparent: String,
    tracestate: Option<String>,
}

/// The most of a `tracestate` that is passed on (the W3C limit is 32 members of at most
/// 256 characters; 512 is what W3C says a vendor must at least propagate).
const MAX_TRACESTATE: usize = 512;

impl TraceContext {
    /// The context in a `traceparent` (and `tracestate`), if it is one: version `00`,
    /// lowercase hex, ids not all zero. A malformed `tracestate` is dropped (the W3C
    /// rule: the parent still counts).
    pub fn parse(traceparent: &str, tracestate: Option<&str>) -> Option<TraceContext> {
        if !is_traceparent(traceparent) {
            return None;
        }
        let tracestate = tracestate
            .map(str::trim)
            .filter(|state| !state.is_empty() && state.len() <= MAX_TRACESTATE)
            .filter(|state| state.bytes().all(|byte| (0x20..0x7f).contains(&byte)))
            .map(str::to_owned);
        Some(TraceContext {
            traceparent: traceparent.to_owned(),
            tracestate,
        })
    }

    /// A new trace: random trace and parent ids, sampled.
    pub fn start() -> Result<TraceContext, ApiError> {
        let mut ids = [0u8; 24];
        getrandom::fill(&mut ids).map_err(|err| anyhow::anyhow!("no randomness: {err}"))?;
        // All-zero ids are invalid; 2^-64 odds, but an id must never be.
        ids[15] |= 1;
        ids[23] |= 1;
        let hex = |bytes: &[u8]| -> String { bytes.iter().map(|b| format!("{b:02x}")).collect() };
        Ok(TraceContext {
            traceparent: format!("00-{}-{}-01", hex(&ids[..16]), hex(&ids[16..])),
            tracestate: None,
        })
    }

    pub fn traceparent(&self) -> &str {
        &self.traceparent
    }

    pub fn tracestate(&self) -> Option<&str> {
        self.tracestate.as_deref()
    }

    /// The trace id: 32 hex digits, what log lines show.
    pub fn trace_id(&self) -> &str {
        &self.traceparent[3..35]
    }
}

/// `00-<32 hex>-<16 hex>-<2 hex>`, lowercase, with non-zero ids.
fn is_traceparent(text: &str) -> bool {
    let bytes = text.as_bytes();
    let is_hex = |range: std::ops::Range<usize>| {
        bytes[range]
            .iter()
            .all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(byte))
    };
    let is_zero = |range: std::ops::Range<usize>| bytes[range].iter().all(|&byte| byte == b'0');
    bytes.len() == 55
        && text.starts_with("00-")
        && bytes[35] == b'-'
        && bytes[52] == b'-'
        && is_hex(3..35)
        && is_hex(36..52)
        && is_hex(53..55)
        && !is_zero(3..35)
        && !is_zero(36..52)
}

thread_local! {
    static CURRENT: RefCell<Option<TraceContext>> = const { RefCell::new(None) };
}

/// Makes `context` the current one until the returned guard is dropped, which puts
/// back the one before.
#[must_use = "the context is current only while the guard lives"]
pub fn enter(context: Option<TraceContext>) -> Entered {
    Entered(CURRENT.with(|current| current.replace(context)))
}

/// Restores the context that was current before [`enter`].
pub struct Entered(Option<TraceContext>);

impl Drop for Entered {
    fn drop(&mut self) {
        let before = self.0.take();
        CURRENT.with(|current| *current.borrow_mut() = before);
    }
}

/// The current context, if any.
pub fn current() -> Option<TraceContext> {
    CURRENT.with(|current| current.borrow().clone())
}

/// The current context, or a new trace that becomes current (so every event of this
/// work shares it).
pub fn current_or_start() -> Result<TraceContext, ApiError> {
    if let Some(context) = current() {
        return Ok(context);
    }
    let started = TraceContext::start()?;
    CURRENT.with(|current| *current.borrow_mut() = Some(started.clone()));
    Ok(started)
}

/// " trace <id>" for a log line, when there is a current context.
pub fn log_suffix() -> String {
    CURRENT.with(|current| {
        current
            .borrow()
            .as_ref()
            .map_or_else(String::new, |context| {
                format!(" trace {}", context.trace_id())
            })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_w3c_traceparent_is_taken_with_its_tracestate() {
        let context = TraceContext::parse(VALID, Some("congo=t61rcWkgMzE")).unwrap();
        assert_eq!(context.traceparent(), VALID);
        assert_eq!(context.tracestate(), Some("congo=t61rcWkgMzE"));
        assert_eq!(context.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
    }

    #[test]
    fn malformed_traceparents_are_refused() {
        for bad in [
            "",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-011",
            "00-4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
        ] {
            assert_eq!(TraceContext::parse(bad, None), None, "{bad}");
        }
    }

    #[test]
    fn a_malformed_tracestate_is_dropped_but_the_parent_kept() {
        let long = format!("a={}", "b".repeat(MAX_TRACESTATE));
        for bad in ["", "  ", "a=\u{7f}", long.as_str()] {
            let context = TraceContext::parse(VALID, Some(bad)).unwrap();
            assert_eq!(context.tracestate(), None, "{bad:?}");
        }
    }

    #[test]
    fn a_started_trace_is_a_valid_sampled_traceparent_each_time_new() {
        let first = TraceContext::start().unwrap();
        let second = TraceContext::start().unwrap();
        assert!(is_traceparent(first.traceparent()), "{first:?}");
        assert!(first.traceparent().ends_with("-01"));
        assert_ne!(first.trace_id(), second.trace_id());
    }

    #[test]
    fn entering_a_context_lasts_until_the_guard_drops() {
        let outer = TraceContext::parse(VALID, None);
        let _outer = enter(outer.clone());
        {
            let _inner = enter(None);
            assert_eq!(current(), None);
            let started = current_or_start().unwrap();
            assert_eq!(
                current(),
                Some(started.clone()),
                "the started trace is current"
            );
            assert_eq!(current_or_start().unwrap(), started, "and stays it");
        }
        assert_eq!(current(), outer);
        assert_eq!(
            log_suffix(),
            " trace 4bf92f3577b34da6a3ce929d0e0e4736".to_owned()
        );
    }
}
