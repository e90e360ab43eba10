//! Component stdout/stderr on the host's console, every line prefixed with the
//! component id (`[auth] ...`), so interleaved output of several components reads.
//!
//! Lines are written whole: a guest's `eprintln!` reaches the host as several writes
//! (Rust's stderr is unbuffered, one write per piece of the format), and two instances
//! running at once would otherwise interleave their pieces within one line. A partial
//! line waits for its newline, or for the stream to close.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

pub use crate::console::Console;

/// The stream factory WASI asks for each `get-stdout`/`get-stderr`.
#[derive(Clone)]
pub struct PrefixedOutput {
    prefix: Arc<str>,
    sink: Sink,
}

/// Where the lines go.
#[derive(Clone)]
pub enum Sink {
    Console(Console),
    /// A buffer (a component test's, shown when the test fails).
    Buffer(Arc<Mutex<Vec<u8>>>),
}

impl PrefixedOutput {
    pub fn new(component_id: &str, sink: Sink) -> PrefixedOutput {
        PrefixedOutput {
            prefix: format!("[{component_id}] ").into(),
            sink,
        }
    }
}

impl IsTerminal for PrefixedOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for PrefixedOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.writer())
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.writer())
    }
}

impl PrefixedOutput {
    fn writer(&self) -> PrefixedWriter {
        PrefixedWriter {
            prefix: self.prefix.clone(),
            sink: self.sink.clone(),
            at_line_start: true,
            pending: Vec::new(),
        }
    }
}

/// A line longer than this is written in pieces rather than held.
const LONGEST_HELD_LINE: usize = 64 * 1024;

/// Writes whole lines through to the console, with the prefix at the start of each.
struct PrefixedWriter {
    prefix: Arc<str>,
    sink: Sink,
    at_line_start: bool,
    /// Bytes after the last newline written so far.
    pending: Vec<u8>,
}

impl PrefixedWriter {
    fn write_prefixed(&mut self, bytes: &[u8]) {
        if let Some(lines) = whole_lines(&mut self.pending, bytes) {
            self.write_console(&lines);
        }
    }

    /// Writes what is held, newline or not (the stream is closing).
    fn write_pending(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let mut rest = std::mem::take(&mut self.pending);
        if !rest.ends_with(b"\n") {
            rest.push(b'\n');
        }
        self.write_console(&rest);
    }

    /// Hands the lines to the console, which writes them by itself about 2 ms later
    /// (a flush has nothing to do), and cannot fail.
    fn write_console(&mut self, bytes: &[u8]) {
        let text = prefix_lines(&self.prefix, bytes, &mut self.at_line_start);
        match &self.sink {
            Sink::Console(console) => crate::console::write(*console, &text),
            Sink::Buffer(buffer) => buffer
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .extend_from_slice(&text),
        }
    }
}

impl Drop for PrefixedWriter {
    fn drop(&mut self) {
        self.write_pending();
    }
}

/// Adds `bytes` to what is held; the whole lines to write now, if any (a line over
/// [`LONGEST_HELD_LINE`] counts as whole).
fn whole_lines(pending: &mut Vec<u8>, bytes: &[u8]) -> Option<Vec<u8>> {
    pending.extend_from_slice(bytes);
    let end = match pending.iter().rposition(|&byte| byte == b'\n') {
        Some(last_newline) => last_newline + 1,
        None if pending.len() > LONGEST_HELD_LINE => pending.len(),
        None => return None,
    };
    Some(pending.drain(..end).collect())
}

/// `bytes` with `prefix` before each line that starts in them.
fn prefix_lines(prefix: &str, bytes: &[u8], at_line_start: &mut bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + prefix.len());
    for line in bytes.split_inclusive(|&b| b == b'\n') {
        if *at_line_start {
            out.extend_from_slice(prefix.as_bytes());
        }
        out.extend_from_slice(line);
        *at_line_start = line.ends_with(b"\n");
    }
    out
}

impl OutputStream for PrefixedWriter {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.write_prefixed(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 * 1024)
    }
}

#[async_trait::async_trait]
impl Pollable for PrefixedWriter {
    async fn ready(&mut self) {}
}

impl AsyncWrite for PrefixedWriter {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.write_prefixed(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_of_a_line_are_held_until_its_newline() {
        let mut held = Vec::new();
        assert_eq!(whole_lines(&mut held, b"event "), None);
        assert_eq!(whole_lines(&mut held, b"order:created"), None);
        assert_eq!(
            whole_lines(&mut held, b" -> applied\nnext").as_deref(),
            Some(&b"event order:created -> applied\n"[..])
        );
        assert_eq!(held, b"next", "the rest waits for its newline");
        let long = vec![b'x'; LONGEST_HELD_LINE];
        assert_eq!(
            whole_lines(&mut held, &long).map(|out| out.len()),
            Some(LONGEST_HELD_LINE + 4)
        );
        assert!(held.is_empty(), "an overlong line is not held");
    }

    #[test]
    fn every_line_gets_the_prefix_once() {
        let mut at_start = true;
        let mut out = prefix_lines("[a] ", b"one\ntw", &mut at_start);
        out.extend(prefix_lines("[a] ", b"o\nthree\n", &mut at_start));
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "[a] one\n[a] two\n[a] three\n"
        );
        assert!(at_start);
    }
}
