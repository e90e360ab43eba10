//! harness: black-box tests of the real app. Starts a real `redis-server` and the app
//! (the project's host, or real Spin) on free loopback ports, gives an HTTP client
//! with a cookie jar and a Redis connection, and stops everything on drop, also when
//! a test panics.
//!
//! ```no_run
//! let app = harness::spawn_app();
//! let reply = app.get("/api/users/currentuser");
//! assert_eq!(reply.status, 200);
//! ```
//!
//! The components must be built (`cargo xtask build`) and the host binary must sit
//! next to the test binary (`cargo test` builds it) or at `TICKETING_HOST_BIN`;
//! `cargo xtask test` does both.

mod app;
mod browser;
mod client;
mod redis_server;
mod runtime;
mod shop;
mod stripe_stub;
mod stub;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub use app::{App, AppBuilder, StartError, clock, is_verbose};
pub use browser::{Browser, DESKTOP};
pub use client::{Client, Reply};
pub use redis_server::{AofMark, Redis};
pub use reqwest::Method;
pub use runtime::Runtime;
pub use stripe_stub::{StripeStub, StubCharge, StubRefund, StubRequest};
pub use stub::HttpStub;

/// The repository root (where `spin.toml` is): above the package under test (`cargo
/// test` says where it is at run time), else above the harness's own directory at
/// compile time (a target directory shared by two checkouts may hold a harness
/// compiled in the other one).
pub fn workspace_root() -> PathBuf {
    let is_root = |dir: &Path| dir.join("spin.toml").is_file() && dir.join("xtask").is_dir();
    std::env::var_os("CARGO_MANIFEST_DIR")
        .and_then(|dir| {
            Path::new(&dir)
                .ancestors()
                .find(|dir| is_root(dir))
                .map(Path::to_path_buf)
        })
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .ancestors()
                .nth(2)
                .expect("the harness lives in crates/harness")
                .to_path_buf()
        })
}

/// The `jwt_key` of the apps the harness spawns (tests that forge a session sign
/// with it).
pub const JWT_KEY: &str = "the jwt_key of these tests";

/// The whole app of `spin.toml` on the project's host, with its own Redis and
/// [`JWT_KEY`].
pub fn spawn_app() -> App {
    spawn_app_on(Runtime::Host)
}

/// The whole app of `spin.toml` on `runtime`, with its own Redis and [`JWT_KEY`].
pub fn spawn_app_on(runtime: Runtime) -> App {
    spawn_app_with(runtime, |app| app)
}

/// The same with what `configure` adds (variables, say) to the builder.
pub fn spawn_app_with(runtime: Runtime, configure: impl FnOnce(AppBuilder) -> AppBuilder) -> App {
    let app = App::builder(workspace_root().join("spin.toml"))
        .runtime(runtime)
        .with_redis(Redis::start())
        .variable("jwt_key", JWT_KEY);
    configure(app).start()
}

/// Runs `test` on every runtime ([`Runtime::all`]: the host, and real Spin where it is
/// found), each time on a fresh app from `spawn`.
pub fn on_every_runtime(spawn: impl Fn(Runtime) -> App, test: impl Fn(&App)) {
    for runtime in Runtime::all() {
        let app = spawn(runtime);
        eprintln!("on {}", app.runtime.name());
        test(&app);
    }
}

/// Polls `check` until it gives a value, or panics after `timeout` saying `what`
/// was awaited. Tests wait with this, never with a fixed sleep.
pub fn eventually<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(5);
    loop {
        if let Some(value) = check() {
            return value;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

/// `bytes` random bytes, hex-encoded.
pub fn random_hex(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut random| std::io::Read::read_exact(&mut random, &mut buffer))
        .expect("/dev/urandom is readable");
    buffer.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("the loopback interface has free ports")
        .port()
}
