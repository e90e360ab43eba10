//! The real Redis server of a `host test` run: started on first use, on a free loopback
//! port, without persistence; each test that asks gets a database of its own on it.
//! Stopped, by its PID, when the run ends.

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};

/// How many databases the server has: one per test that asks, in one run.
const DATABASES: u32 = 10_000;

#[derive(Default)]
pub struct RedisServer {
    running: Mutex<Option<Running>>,
    next_database: AtomicU32,
}

struct Running {
    child: Child,
    port: u16,
    /// Its working directory (where it would write), removed with it.
    _dir: tempfile::TempDir,
}

impl RedisServer {
    /// `redis://127.0.0.1:<port>/<db>`: a database no other test of the run uses.
    pub fn new_database_url(&self) -> Result<String> {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        if running.is_none() {
            *running = Some(start().context("cannot start redis-server for the test")?);
        }
        let port = running.as_ref().expect("started above").port;
        let database = self.next_database.fetch_add(1, Ordering::Relaxed);
        if database >= DATABASES {
            bail!("more than {DATABASES} tests asked for a Redis database in one run");
        }
        Ok(format!("redis://127.0.0.1:{port}/{database}"))
    }

    /// Stops the server, if it was started.
    pub fn stop(&self) {
        if let Some(mut running) = self
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            let _ = running.child.kill();
            let _ = running.child.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn start() -> Result<Running> {
    let dir = tempfile::Builder::new()
        .prefix("host-test-redis-")
        .tempdir()?;
    // A port can be taken between choosing and binding it: try a few.
    for _ in 0..5 {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let mut child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no"])
            .args(["--databases", &DATABASES.to_string()])
            .args(["--notify-keyspace-events", "Ex"])
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("is redis-server installed (apt install redis-server)?")?;
        for _ in 0..300 {
            if child.try_wait()?.is_some() {
                break;
            }
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(Running {
                    child,
                    port,
                    _dir: dir,
                });
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    bail!("redis-server did not start")
}
