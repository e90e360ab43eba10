//! The host's stdout and stderr: whole lines, written in batches by one thread.
//!
//! Every request and every Redis message leaves a line (the host's own, and the
//! component's). Written one `write` each they cost a system call per line on the
//! serving threads, a tenth of the host's time on a cheap route. Here a line is
//! appended to a buffer under a lock, and a writer thread, woken by the first line,
//! lets lines gather for 2 ms and writes them in one call: under load many lines share
//! a write, and an idle host shows a line 2 ms late. Lines of one stream keep their
//! order; [`flush`] writes what is held (before the process exits).

use std::io::Write;
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Console {
    Stdout,
    Stderr,
}

/// `eprintln!` through the stderr buffer.
macro_rules! log {
    ($($arg:tt)*) => {
        $crate::console::line($crate::console::Console::Stderr, format!($($arg)*))
    };
}
pub(crate) use log;

/// `println!` through the stdout buffer.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::console::line($crate::console::Console::Stdout, format!($($arg)*))
    };
}
pub(crate) use out;

/// Appends `text` and a newline to the console's buffer.
pub fn line(console: Console, text: String) {
    let mut bytes = text.into_bytes();
    bytes.push(b'\n');
    write(console, &bytes);
}

/// Appends `bytes` (whole lines) to the console's buffer.
pub fn write(console: Console, bytes: &[u8]) {
    let held = buffer(console);
    let mut pending = held
        .pending
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let was_empty = pending.is_empty();
    pending.extend_from_slice(bytes);
    drop(pending);
    if was_empty {
        held.gathered.notify_one();
    }
}

/// Writes everything held, on the calling thread.
pub fn flush() {
    for console in [Console::Stdout, Console::Stderr] {
        if let Some(held) = held(console).get() {
            let mut pending = held
                .pending
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            write_out(console, &std::mem::take(&mut *pending));
        }
    }
}

struct Held {
    pending: Mutex<Vec<u8>>,
    gathered: Condvar,
}

fn held(console: Console) -> &'static OnceLock<Held> {
    static STDOUT: OnceLock<Held> = OnceLock::new();
    static STDERR: OnceLock<Held> = OnceLock::new();
    match console {
        Console::Stdout => &STDOUT,
        Console::Stderr => &STDERR,
    }
}

/// The console's buffer, with its writer thread started on first use.
fn buffer(console: Console) -> &'static Held {
    let cell = held(console);
    if let Some(held) = cell.get() {
        return held;
    }
    let mut started = false;
    let held = cell.get_or_init(|| {
        started = true;
        Held {
            pending: Mutex::new(Vec::new()),
            gathered: Condvar::new(),
        }
    });
    if started {
        std::thread::Builder::new()
            .name(format!("{console:?}").to_lowercase())
            .spawn(move || writer(console, held))
            .expect("cannot start the console's writer thread");
    }
    held
}

/// How long the writer lets lines gather after the first one arrives: under load the
/// lines of hundreds of requests share one write (and one wake-up of this thread); a
/// person or a test reading the log sees a line this much later.
const GATHER: Duration = Duration::from_millis(2);

fn writer(console: Console, held: &'static Held) {
    let mut bytes = Vec::new();
    loop {
        {
            let mut pending = held
                .pending
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            while pending.is_empty() {
                pending = held
                    .gathered
                    .wait(pending)
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
            }
            drop(pending);
            std::thread::sleep(GATHER);
            let mut pending = held
                .pending
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            // Swap, so writers go on appending while this thread writes; take the
            // console first, so a `flush` cannot write later lines before these.
            std::mem::swap(&mut *pending, &mut bytes);
            let mut out = locked(console);
            drop(pending);
            // A console that is gone (a closed pipe) is no reason to stop serving.
            let _ = out.write_all(&bytes);
        }
        bytes.clear();
    }
}

fn write_out(console: Console, bytes: &[u8]) {
    if !bytes.is_empty() {
        let _ = locked(console).write_all(bytes);
    }
}

fn locked(console: Console) -> Box<dyn Write> {
    match console {
        Console::Stdout => Box::new(std::io::stdout().lock()),
        Console::Stderr => Box::new(std::io::stderr().lock()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flush_leaves_nothing_held() {
        line(Console::Stdout, "one".to_owned());
        line(Console::Stdout, "two".to_owned());
        flush();
        let held = held(Console::Stdout)
            .get()
            .expect("started by the first line");
        assert!(held.pending.lock().unwrap().is_empty());
    }
}
