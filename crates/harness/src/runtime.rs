//! Which runtime runs the app under test: the project's host, or real Spin where it
//! is installed (the same tests then prove both behave alike), and the record of which
//! tests ran the app on which runtime, for `cargo xtask test`'s summary.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Once, OnceLock};

/// The variable that names the Spin binary the tests run on.
const SPIN_VARIABLE: &str = "TICKETING_SPIN";
/// The file (set by `cargo xtask test`) each start of an app appends `<runtime>\t<test>`
/// to: test binaries run one after another, and only a file sees them all.
const TALLY_VARIABLE: &str = "TICKETING_RUNTIME_TALLY";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Runtime {
    /// The project's host (`host/`).
    Host,
    /// A real Spin CLI, 3.6 or newer.
    Spin(PathBuf),
}

impl Runtime {
    /// The host, plus real Spin when one is found (see [`Runtime::spin`]).
    pub fn all() -> Vec<Runtime> {
        let mut runtimes = vec![Runtime::Host];
        match Runtime::spin() {
            Some(spin) => runtimes.push(spin),
            // Under `cargo xtask test` the run ends by saying it, once, with the counts.
            None if std::env::var_os(TALLY_VARIABLE).is_none() => {
                static NOTE: Once = Once::new();
                NOTE.call_once(|| {
                    eprintln!(
                        "note: real Spin (>= 3.6) not found ({SPIN_VARIABLE} or `spin` on \
                         PATH): these tests ran on the project's host only"
                    );
                });
            }
            None => {}
        }
        runtimes
    }

    /// Real Spin, 3.6 or newer: the binary `TICKETING_SPIN` names, else `spin` on PATH
    /// when it is one. Spin is optional, but a `TICKETING_SPIN` that names no usable
    /// Spin is a mistake that would quietly test less: it panics with the reason.
    pub fn spin() -> Option<Runtime> {
        static FOUND: OnceLock<Result<Option<PathBuf>, String>> = OnceLock::new();
        match FOUND.get_or_init(find_spin) {
            Ok(spin) => spin.clone().map(Runtime::Spin),
            Err(reason) => panic!("{reason}"),
        }
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

fn find_spin() -> Result<Option<PathBuf>, String> {
    match std::env::var_os(SPIN_VARIABLE).filter(|value| !value.is_empty()) {
        Some(named) => {
            let spin = PathBuf::from(named);
            spin_version::check(&spin)
                .map(|_| Some(spin.clone()))
                .map_err(|why| format!("{SPIN_VARIABLE}={}: {why}", spin.display()))
        }
        None => Ok(spin_version::check("spin")
            .ok()
            .map(|_| PathBuf::from("spin"))),
    }
}

/// Notes that the running test started an app on `runtime`, in the file
/// `TICKETING_RUNTIME_TALLY` names (nothing when it is unset: a plain `cargo test`).
pub(crate) fn record(runtime: &Runtime) {
    let Some(tally) = std::env::var_os(TALLY_VARIABLE) else {
        return;
    };
    // libtest runs each test on a thread named after it; the binary tells two test
    // files' tests of the same name apart.
    let binary = std::env::current_exe()
        .ok()
        .and_then(|exe| {
            exe.file_name()
                .map(|name| name.to_string_lossy().into_owned())
        })
        .unwrap_or_default();
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("unnamed");
    // One short write in append mode: lines of tests running side by side stay whole.
    let line = format!("{}\t{binary}::{test}\n", runtime.name());
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&tally)
        .and_then(|mut file| file.write_all(line.as_bytes()));
    if let Err(err) = written {
        panic!(
            "cannot record the runtime in {}: {err}",
            Path::new(&tally).display()
        );
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
