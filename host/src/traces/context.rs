//! Trace context: trace and span ids, how new ones are made, and the W3C `traceparent`
//! header that carries them between processes.

use std::fmt::Write as _;
use std::hash::{BuildHasher, RandomState};
use std::io::Read as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// A trace's id: 16 bytes, never all zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceId(pub [u8; 16]);

/// A span's id: 8 bytes, never all zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SpanId(pub [u8; 8]);

/// The W3C `sampled` trace flag: the caller records this trace. Spin's sampler
/// (OpenTelemetry's default, parent-based) records a span whose parent says so, and
/// drops the whole subtree of one that does not.
pub const SAMPLED: u8 = 0x01;

/// Where a span sits in its trace, as it is passed on to children and other processes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpanContext {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    /// W3C trace flags (bit 0: sampled).
    pub flags: u8,
    /// The `tracestate` that came with the trace, passed on unchanged.
    pub state: Option<Arc<str>>,
}

impl SpanContext {
    /// Reads a W3C `traceparent` (version `00`: `00-<32 hex>-<16 hex>-<2 hex>`, lower
    /// case), and the `tracestate` that came with it. None for anything else, as the
    /// W3C spec says: a trace context that does not parse is ignored, not repaired.
    /// Other versions are refused too: `00` is the only one there is.
    pub fn from_traceparent(traceparent: &str, tracestate: Option<&str>) -> Option<SpanContext> {
        let mut parts = traceparent.split('-');
        let (version, trace_id, span_id, flags) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || version != "00" {
            return None;
        }
        let trace_id = TraceId(hex::<16>(trace_id)?);
        let span_id = SpanId(hex::<8>(span_id)?);
        let [flags] = hex::<1>(flags)?;
        if trace_id.0 == [0; 16] || span_id.0 == [0; 8] {
            return None;
        }
        Some(SpanContext {
            trace_id,
            span_id,
            flags,
            state: tracestate
                .map(str::trim)
                .filter(|state| is_valid_tracestate(state))
                .map(Arc::from),
        })
    }

    /// The `traceparent` header that names this span as the parent.
    pub fn traceparent(&self) -> String {
        let mut text = String::with_capacity(55);
        text.push_str("00-");
        push_hex(&mut text, &self.trace_id.0);
        text.push('-');
        push_hex(&mut text, &self.span_id.0);
        text.push('-');
        push_hex(&mut text, &[self.flags]);
        text
    }

    pub fn is_sampled(&self) -> bool {
        self.flags & SAMPLED != 0
    }
}

/// `N` bytes from exactly `2 * N` lower-case hex digits.
fn hex<const N: usize>(text: &str) -> Option<[u8; N]> {
    let digits = text.as_bytes();
    if digits.len() != 2 * N {
        return None;
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let mut bytes = [0; N];
    for (byte, pair) in bytes.iter_mut().zip(digits.chunks_exact(2)) {
        *byte = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(bytes)
}

pub fn push_hex(text: &mut String, bytes: &[u8]) {
    for byte in bytes {
        let _ = write!(text, "{byte:02x}");
    }
}

/// What W3C allows a `tracestate` to be, roughly: at most 512 printable ASCII
/// characters. Its list members are not checked one by one: it is passed on, never
/// read.
fn is_valid_tracestate(state: &str) -> bool {
    !state.is_empty() && state.len() <= 512 && state.bytes().all(|c| (b' '..=b'~').contains(&c))
}

/// Makes trace and span ids: unique within the process, unpredictable across
/// processes (replicas of the app export to the same collector).
///
/// SplitMix64 over a counter: its mix is a bijection, and the counter's states differ
/// for 2^64 draws, so no two draws of one process are equal. The seed, from
/// `/dev/urandom` (or, failing that, std's randomly keyed hasher), keeps processes
/// apart. Ids need to be unique, not secret, so nothing cryptographic is needed.
pub struct IdGenerator {
    seed: u64,
    counter: AtomicU64,
}

impl IdGenerator {
    pub fn new() -> IdGenerator {
        let mut seed = [0; 8];
        let seed = match std::fs::File::open("/dev/urandom")
            .and_then(|mut random| random.read_exact(&mut seed))
        {
            Ok(()) => u64::from_le_bytes(seed),
            Err(_) => RandomState::new().hash_one(std::process::id()),
        };
        IdGenerator::with_seed(seed)
    }

    pub fn with_seed(seed: u64) -> IdGenerator {
        IdGenerator {
            seed,
            counter: AtomicU64::new(0),
        }
    }

    fn next(&self) -> u64 {
        const GOLDEN: u64 = 0x9e37_79b9_7f4a_7c15;
        let count = self.counter.fetch_add(1, Ordering::Relaxed);
        let mut z = self
            .seed
            .wrapping_add(count.wrapping_add(1).wrapping_mul(GOLDEN));
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn span_id(&self) -> SpanId {
        loop {
            let id = self.next();
            if id != 0 {
                return SpanId(id.to_be_bytes());
            }
        }
    }

    pub fn trace_id(&self) -> TraceId {
        // The first half is a draw of its own, so trace ids are unique too; the second
        // is never zero, so neither is the id.
        let high = self.next();
        let low = self.span_id().0;
        let mut id = [0; 16];
        id[..8].copy_from_slice(&high.to_be_bytes());
        id[8..].copy_from_slice(&low);
        TraceId(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_valid_traceparent_is_read_and_written_back_the_same() {
        let context = SpanContext::from_traceparent(VALID, Some("congo=t61rcWkgMzE")).unwrap();
        assert_eq!(
            context.trace_id.0,
            [
                0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e,
                0x47, 0x36
            ]
        );
        assert_eq!(
            context.span_id.0,
            [0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7]
        );
        assert!(context.is_sampled());
        assert_eq!(context.state.as_deref(), Some("congo=t61rcWkgMzE"));
        assert_eq!(context.traceparent(), VALID);

        let unsampled = VALID.replace("-01", "-00");
        let context = SpanContext::from_traceparent(&unsampled, None).unwrap();
        assert!(!context.is_sampled());
        assert_eq!(context.traceparent(), unsampled);
    }

    #[test]
    fn an_invalid_traceparent_is_ignored() {
        let cases = [
            ("wrong version", VALID.replacen("00", "01", 1)),
            ("version ff", VALID.replacen("00", "ff", 1)),
            ("upper case", VALID.to_uppercase()),
            (
                "upper-case trace id",
                VALID.replace("4bf92f3577b34da6", "4BF92F3577B34DA6"),
            ),
            (
                "zero trace id",
                VALID.replace("4bf92f3577b34da6a3ce929d0e0e4736", &"0".repeat(32)),
            ),
            (
                "zero span id",
                VALID.replace("00f067aa0ba902b7", &"0".repeat(16)),
            ),
            (
                "short trace id",
                VALID.replace("4bf92f3577b34da6a3ce929d0e0e4736", "4bf92f3577b34da6"),
            ),
            (
                "long span id",
                VALID.replace("00f067aa0ba902b7", "00f067aa0ba902b700"),
            ),
            ("one-digit flags", VALID.replace("-01", "-1")),
            ("a part more", format!("{VALID}-00")),
            ("a part less", VALID.replace("-01", "")),
            ("not hex", VALID.replace("4bf9", "4bg9")),
            ("empty", String::new()),
            ("spaces", format!(" {VALID}")),
        ];
        for (what, traceparent) in cases {
            assert_eq!(
                SpanContext::from_traceparent(&traceparent, None),
                None,
                "{what}: {traceparent}"
            );
        }
    }

    #[test]
    fn a_tracestate_that_is_not_printable_ascii_is_dropped() {
        for state in ["", "a=\u{7f}", "ünïcode=1", &"a".repeat(513)] {
            let context = SpanContext::from_traceparent(VALID, Some(state)).unwrap();
            assert_eq!(context.state, None, "{state:?}");
        }
    }

    #[test]
    fn ids_do_not_repeat_and_are_never_zero() {
        // Seed 0 and a seed next to it: the sequences must not overlap either.
        let mut seen = std::collections::HashSet::new();
        for seed in [0, 1] {
            let ids = IdGenerator::with_seed(seed);
            for _ in 0..10_000 {
                let span = ids.span_id();
                assert_ne!(span.0, [0; 8]);
                assert!(seen.insert(span.0.to_vec()), "{span:?} repeated");
            }
        }
        let ids = IdGenerator::new();
        let (first, second) = (ids.trace_id(), ids.trace_id());
        assert_ne!(first, second);
        assert_ne!(first.0, [0; 16]);
    }
}
