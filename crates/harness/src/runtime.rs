//! Which runtime runs the app under test: the project's host, or real Spin where it
//! is installed (the same tests then prove both behave alike).

use std::path::PathBuf;
use std::process::Command;
use std::sync::Once;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Runtime {
    /// The project's host (`host/`).
    Host,
    /// A real Spin CLI, 3.6 or newer.
    Spin(PathBuf),
}

impl Runtime {
    /// The host, plus real Spin when one is found: `TICKETING_SPIN` (a path), else
    /// `spin` on PATH. Spin is never required; without it a note says what was skipped.
    pub fn all() -> Vec<Runtime> {
        let mut runtimes = vec![Runtime::Host];
        match Runtime::spin() {
            Some(spin) => runtimes.push(spin),
            None => {
                static NOTE: Once = Once::new();
                NOTE.call_once(|| {
                    eprintln!(
                        "note: real Spin (>= 3.6) not found (TICKETING_SPIN or `spin` on PATH): \
                         these tests ran on the project's host only"
                    );
                });
            }
        }
        runtimes
    }

    /// Real Spin, when one of version 3.6 or newer is found.
    pub fn spin() -> Option<Runtime> {
        let candidate = std::env::var_os("TICKETING_SPIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("spin"));
        let output = Command::new(&candidate).arg("--version").output().ok()?;
        // "spin 3.6.3 (88d51cf1 2026-04-09)"
        let text = String::from_utf8_lossy(&output.stdout);
        let mut version = text.split_whitespace().nth(1)?.split('.');
        let major: u32 = version.next()?.parse().ok()?;
        let minor: u32 = version.next()?.parse().ok()?;
        ((major, minor) >= (3, 6)).then_some(Runtime::Spin(candidate))
    }

    pub fn is_spin(&self) -> bool {
        matches!(self, Runtime::Spin(_))
    }

    /// `host` or `spin`, for messages.
    pub fn name(&self) -> &'static str {
        match self {
            Runtime::Host => "host",
            Runtime::Spin(_) => "spin",
        }
    }
}

/// The host binary: `TICKETING_HOST_BIN`, else `host` in the directory cargo built
/// this binary into (`target/<profile>/`: a test's own directory is its `deps/`).
pub(crate) fn host_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("TICKETING_HOST_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("a binary knows its path");
    let dir = exe.parent().expect("a binary lives in a directory");
    let host = [dir.join("host"), dir.join("../host")]
        .into_iter()
        .find(|host| host.is_file())
        .unwrap_or_else(|| dir.join("../host"));
    assert!(
        host.is_file(),
        "the host binary is missing at {}: run the tests through `cargo xtask test`, \
         or build it first (`cargo build -p host` with the same profile as the tests)",
        host.display()
    );
    host
}
