//! A real Redis server for one test: started when the test first asks for it, on a
//! free loopback port, without persistence; stopped, by its PID, with the test.
//! (A server per test rather than a database each on one server: an app names its
//! Redis in `allowed_outbound_hosts`, where Spin takes no database path.)

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};

pub struct RedisServer {
    child: Child,
    port: u16,
    /// Its working directory (where it would write), removed with it.
    _dir: tempfile::TempDir,
}

impl RedisServer {
    pub fn start() -> Result<RedisServer> {
        start().context("cannot start redis-server for the test")
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start() -> Result<RedisServer> {
    let dir = tempfile::Builder::new()
        .prefix("host-test-redis-")
        .tempdir()?;
    // A port can be taken between choosing and binding it: try a few.
    for _ in 0..5 {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let mut child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no"])
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
                return Ok(RedisServer {
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
