//! A Redis for local runs: the one at `redis_url` if it answers, else a `redis-server`
//! started here (data under `.spin/redis/`) and stopped when xtask exits.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::{Project, step};

/// A Redis server this process started; stopped (by its PID) on drop.
pub struct LocalRedis {
    child: Option<Child>,
}

impl Drop for LocalRedis {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            eprintln!("stopping redis-server (pid {})", child.id());
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub fn ensure(project: &Project, url: &str) -> Result<LocalRedis> {
    let (host, port) = host_and_port(url)?;
    step(&format!("Redis at {url}"));
    if answers_ping(&host, port) {
        eprintln!("it answers PING; using it");
        ensure_expiry_notifications(url);
        return Ok(LocalRedis { child: None });
    }
    if !matches!(host.as_str(), "127.0.0.1" | "localhost") {
        bail!("Redis at {url} does not answer, and it is not on this machine to start it");
    }
    let dir = project.root.join(".spin").join("redis");
    std::fs::create_dir_all(&dir)?;
    let port_arg = port.to_string();
    let args = [
        "--bind",
        "127.0.0.1",
        "--port",
        &port_arg,
        "--dir",
        dir.to_str().context("the project path is not UTF-8")?,
        "--logfile",
        "redis.log",
        // Streams hold the event history: keep them across restarts.
        "--appendonly",
        "yes",
        "--save",
        "",
        // The expiration service is woken by key expiry (components/expiration/src/lib.rs).
        "--notify-keyspace-events",
        "Ex",
    ];
    eprintln!("$ redis-server {}", args.join(" "));
    let child = Command::new("redis-server")
        .args(args)
        .stdin(Stdio::null())
        .spawn()
        .context("starting redis-server (cargo xtask setup installs it)")?;
    let redis = LocalRedis { child: Some(child) };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !answers_ping(&host, port) {
        if Instant::now() > deadline {
            bail!(
                "redis-server did not answer within 10 s; see {}",
                dir.join("redis.log").display()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!("started; data and log in {}", dir.display());
    Ok(redis)
}

/// The expiration service is woken by expired keys: turn their notifications on in a
/// Redis that was already running, or say how to.
fn ensure_expiry_notifications(url: &str) {
    let outcome = (|| -> redis::RedisResult<Option<String>> {
        let mut conn = redis::Client::open(url)?.get_connection()?;
        let (_, flags): (String, String) = redis::cmd("CONFIG")
            .arg("GET")
            .arg("notify-keyspace-events")
            .query(&mut conn)?;
        if flags.contains('E') && (flags.contains('x') || flags.contains('A')) {
            return Ok(None);
        }
        let wanted = format!("{flags}Ex");
        redis::cmd("CONFIG")
            .arg("SET")
            .arg("notify-keyspace-events")
            .arg(&wanted)
            .query::<()>(&mut conn)?;
        Ok(Some(wanted))
    })();
    match outcome {
        Ok(None) => eprintln!("keyspace notifications for expired keys are on"),
        Ok(Some(flags)) => eprintln!(
            "turned on keyspace notifications for expired keys (CONFIG SET \
             notify-keyspace-events {flags}); orders expire through them. Until Redis \
             restarts: to keep it, put `notify-keyspace-events Ex` in its redis.conf"
        ),
        Err(err) => eprintln!(
            "warning: could not check or turn on keyspace notifications ({err}): orders \
             expire only when /api/expiration/health is called until you run \
             `redis-cli CONFIG SET notify-keyspace-events Ex` on that Redis"
        ),
    }
}

/// `redis://[user:password@]host[:port][/db]` → (host, port).
fn host_and_port(url: &str) -> Result<(String, u16)> {
    let rest = url
        .strip_prefix("redis://")
        .with_context(|| format!("`{url}` is not a redis:// URL"))?;
    let authority = rest.split('/').next().unwrap_or_default();
    let host_port = authority.rsplit('@').next().unwrap_or_default();
    let (host, port) = match host_port.rsplit_once(':') {
        Some((host, port)) => (host, port.parse().context("bad port in redis_url")?),
        None => (host_port, 6379),
    };
    Ok((host.to_owned(), port))
}

fn answers_ping(host: &str, port: u16) -> bool {
    let ping = || -> std::io::Result<bool> {
        let addr = (host, port)
            .to_socket_addrs()?
            .next()
            .ok_or(std::io::ErrorKind::NotFound)?;
        let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(500))?;
        stream.set_read_timeout(Some(Duration::from_millis(500)))?;
        stream.write_all(b"PING\r\n")?;
        let mut line = String::new();
        BufReader::new(stream).read_line(&mut line)?;
        // A password-protected Redis answers -NOAUTH: it is there all the same.
        Ok(line.starts_with("+PONG") || line.starts_with("-NOAUTH"))
    };
    ping().unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_urls_give_host_and_port() {
        let cases = [
            ("redis://127.0.0.1:6379", ("127.0.0.1", 6379)),
            ("redis://localhost", ("localhost", 6379)),
            ("redis://user:secret@10.0.0.5:7000/2", ("10.0.0.5", 7000)),
        ];
        for (url, (host, port)) in cases {
            assert_eq!(host_and_port(url).unwrap(), (host.to_owned(), port));
        }
        assert!(host_and_port("http://127.0.0.1").is_err());
    }
}
