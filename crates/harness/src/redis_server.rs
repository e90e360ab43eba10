//! A real `redis-server` for one test: its own port and data directory, stopped (by
//! its PID) on drop.

use std::collections::BTreeMap;
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;

use crate::{eventually, free_port};

pub struct Redis {
    port: u16,
    dir: TempDir,
    child: Option<Child>,
    /// Append-only file on: a restart keeps the streams, groups and keys.
    is_persistent: bool,
}

impl Redis {
    /// Starts a server on a free port, with keyspace notifications for expired keys
    /// on (the expiration service relies on them) and no persistence.
    pub fn start() -> Redis {
        Redis::start_with(false)
    }

    /// The same with the append-only file on (as the Kubernetes deployment runs it):
    /// `restart` brings back every stream, consumer group and key written before.
    /// Redis writes the file before it answers, so even `stop`'s SIGKILL loses nothing
    /// that was acknowledged.
    pub fn start_persistent() -> Redis {
        Redis::start_with(true)
    }

    fn start_with(is_persistent: bool) -> Redis {
        let mut redis = Redis {
            port: 0,
            dir: tempfile::tempdir().expect("a temporary directory"),
            child: None,
            is_persistent,
        };
        // A port can be taken between choosing and binding it: try a few.
        for _ in 0..5 {
            redis.port = free_port();
            if redis.try_run() {
                return redis;
            }
        }
        panic!("redis-server did not start (is it installed? `cargo xtask setup` installs it)");
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// A new connection to this server.
    pub fn connection(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .and_then(|client| client.get_connection())
            .expect("the test's redis-server accepts connections")
    }

    /// How many times Redis has run each command since it started (`INFO
    /// commandstats`), leaving out the ones tests send to look (`INFO`, `CONFIG`,
    /// `PING`).
    pub fn command_counts(&self) -> BTreeMap<String, u64> {
        let info: String = redis::cmd("INFO")
            .arg("commandstats")
            .query(&mut self.connection())
            .expect("INFO commandstats");
        info.lines()
            .filter_map(|line| {
                let (name, stats) = line.strip_prefix("cmdstat_")?.split_once(':')?;
                let calls = stats
                    .split(',')
                    .find_map(|stat| stat.strip_prefix("calls="))?;
                Some((name.to_owned(), calls.parse().ok()?))
            })
            .filter(|(name, _)| !matches!(name.as_str(), "info" | "config" | "ping"))
            .collect()
    }

    /// Sets which keyspace events Redis announces (`CONFIG SET notify-keyspace-events`):
    /// `""` silences key expiries, and with them the bus's ticks; `"Ex"` is how the
    /// harness starts Redis.
    pub fn notify_keyspace_events(&self, events: &str) {
        let _: () = redis::cmd("CONFIG")
            .arg("SET")
            .arg("notify-keyspace-events")
            .arg(events)
            .query(&mut self.connection())
            .expect("CONFIG SET notify-keyspace-events");
    }

    /// Waits until `channel` has at least `count` subscribers: an app's Redis trigger
    /// subscribes after the app starts serving HTTP (on Spin, shortly after), and a
    /// message published before then reaches nobody.
    pub fn wait_for_subscribers(&self, channel: &str, count: i64) {
        let mut connection = self.connection();
        eventually(
            &format!("{count} subscribers on `{channel}`"),
            Duration::from_secs(20),
            || {
                let reply: (String, i64) = redis::cmd("PUBSUB")
                    .arg("NUMSUB")
                    .arg(channel)
                    .query(&mut connection)
                    .ok()?;
                (reply.1 >= count).then_some(())
            },
        );
    }

    /// The entries of a stream, oldest first: each id with its field/value pairs.
    pub fn stream(&self, stream: &str) -> Vec<(String, Vec<(String, String)>)> {
        let entries: Vec<(String, Vec<String>)> = redis::cmd("XRANGE")
            .arg(stream)
            .arg("-")
            .arg("+")
            .query(&mut self.connection())
            .expect("XRANGE");
        entries
            .into_iter()
            .map(|(id, fields)| {
                let pairs = fields
                    .chunks(2)
                    .map(|pair| (pair[0].clone(), pair.get(1).cloned().unwrap_or_default()))
                    .collect();
                (id, pairs)
            })
            .collect()
    }

    /// Whether the consumer group `group` has acked every entry of `stream` (so the
    /// service applied them, or gave up on them): none pending, none left to read.
    /// An entry the service gave up on is acked too, after it went to `events:dead`:
    /// a test that means "applied" also checks [`Redis::dead_letters`].
    pub fn group_caught_up(&self, stream: &str, group: &str) -> bool {
        self.groups(stream).is_none_or(|groups| {
            groups
                .iter()
                .any(|(name, caught_up)| name == group && *caught_up)
        })
    }

    /// Whether every consumer group of every stream of the bus (`events:*`) has caught
    /// up, as [`Redis::group_caught_up`] means it: the services have applied everything
    /// published so far, and a load's backlog is no longer running.
    pub fn every_group_caught_up(&self) -> bool {
        let streams: Vec<String> = redis::cmd("KEYS")
            .arg("events:*")
            .query(&mut self.connection())
            .expect("KEYS");
        streams.iter().all(|stream| {
            self.groups(stream)
                .is_none_or(|groups| groups.iter().all(|(_, caught_up)| *caught_up))
        })
    }

    /// The consumer groups of `stream`, each with whether it has acked every entry
    /// (none pending, and it has read up to the last); `None` when the stream has no
    /// entries, so there is nothing to catch up on.
    fn groups(&self, stream: &str) -> Option<Vec<(String, bool)>> {
        let mut connection = self.connection();
        let last: Vec<(String, Vec<String>)> = redis::cmd("XREVRANGE")
            .arg(stream)
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(1)
            .query(&mut connection)
            .expect("XREVRANGE");
        let (last_id, _) = last.into_iter().next()?;
        let groups: Vec<std::collections::HashMap<String, redis::Value>> = redis::cmd("XINFO")
            .arg("GROUPS")
            .arg(stream)
            .query(&mut connection)
            .expect("XINFO GROUPS");
        let groups = groups
            .iter()
            .map(|info| {
                let text = |key: &str| match info.get(key) {
                    Some(redis::Value::BulkString(bytes)) => {
                        String::from_utf8_lossy(bytes).into_owned()
                    }
                    Some(redis::Value::SimpleString(text)) => text.clone(),
                    Some(redis::Value::Int(number)) => number.to_string(),
                    _ => String::new(),
                };
                let caught_up = text("pending") == "0" && text("last-delivered-id") == last_id;
                (text("name"), caught_up)
            })
            .collect();
        Some(groups)
    }

    /// The entries of `events:dead`, oldest first: what a consumer group gave up on
    /// (fields `e`, `stream`, `group`, `entry`, `deliveries`, `error`), acked and so
    /// counted as caught up by [`Redis::group_caught_up`].
    pub fn dead_letters(&self) -> Vec<(String, Vec<(String, String)>)> {
        self.stream("events:dead")
    }

    /// Adds an entry whose single field `e` is `envelope`, as the bus writes events.
    pub fn add_event(&self, stream: &str, envelope: &str) {
        let _: String = redis::cmd("XADD")
            .arg(stream)
            .arg("*")
            .arg("e")
            .arg(envelope)
            .query(&mut self.connection())
            .expect("XADD");
    }

    /// The event envelopes on the stream of `subject` (`events:<subject>`, field `e`),
    /// oldest first.
    pub fn envelopes(&self, subject: &str) -> Vec<serde_json::Value> {
        self.stream(&format!("events:{subject}"))
            .into_iter()
            .map(|(id, fields)| {
                let envelope = fields
                    .iter()
                    .find(|(field, _)| field == "e")
                    .unwrap_or_else(|| panic!("entry {id} of events:{subject} has no field e"));
                serde_json::from_str(&envelope.1)
                    .unwrap_or_else(|err| panic!("entry {id} of events:{subject}: {err}"))
            })
            .collect()
    }

    /// Publishes an envelope as another service's bus would: on the stream
    /// `events:<subject>`, then the doorbell on the channel `<subject>`.
    pub fn publish_event(&self, envelope: &serde_json::Value) {
        let subject = envelope["subject"]
            .as_str()
            .expect("an envelope has a subject");
        let text = envelope.to_string();
        self.add_event(&format!("events:{subject}"), &text);
        let _: i64 = redis::cmd("PUBLISH")
            .arg(subject)
            .arg(&text)
            .query(&mut self.connection())
            .expect("PUBLISH");
    }

    /// Stops the server (Redis "goes away").
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Where the append-only file ends now (a persistent server only): see
    /// [`Redis::restart_without_writes_since`].
    pub fn aof_mark(&self) -> AofMark {
        let file = self.incremental_aof();
        let length = std::fs::metadata(&file)
            .unwrap_or_else(|err| panic!("{}: {err}", file.display()))
            .len();
        AofMark { file, length }
    }

    /// Stops the server and starts it again from its append-only file cut back to
    /// `mark`: Redis comes back without the writes it acknowledged since, as after a
    /// crash with `appendfsync everysec`, or a failover to a replica that lagged.
    pub fn restart_without_writes_since(&mut self, mark: &AofMark) {
        self.stop();
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&mark.file)
            .unwrap_or_else(|err| panic!("{}: {err}", mark.file.display()));
        file.set_len(mark.length)
            .expect("truncating the append-only file");
        drop(file);
        assert!(
            self.try_run(),
            "redis-server did not restart on port {}",
            self.port
        );
    }

    /// The append-only file Redis 7 appends to: the `incr` file its manifest names.
    fn incremental_aof(&self) -> std::path::PathBuf {
        assert!(
            self.is_persistent,
            "only a persistent server has an append-only file"
        );
        let dir = self.dir.path().join("appendonlydir");
        let manifest = std::fs::read_to_string(dir.join("appendonly.aof.manifest"))
            .expect("Redis 7's append-only manifest");
        let name = manifest
            .lines()
            .filter(|line| line.ends_with("type i"))
            .filter_map(|line| line.split_whitespace().nth(1))
            .next_back()
            .expect("an incremental append-only file in the manifest");
        dir.join(name)
    }

    /// Starts the server again on the same port.
    pub fn restart(&mut self) {
        self.stop();
        assert!(
            self.try_run(),
            "redis-server did not restart on port {}",
            self.port
        );
    }

    fn try_run(&mut self) -> bool {
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--save", ""])
            .args([
                "--appendonly",
                if self.is_persistent { "yes" } else { "no" },
            ])
            .args(["--notify-keyspace-events", "Ex"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let Ok(mut child) = child else {
            return false;
        };
        let port = self.port;
        let ready = (0..200).any(|_| {
            if matches!(child.try_wait(), Ok(Some(_))) {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        if !ready {
            let _ = child.kill();
            let _ = child.wait();
            return false;
        }
        self.child = Some(child);
        let url = self.url();
        eventually(
            "redis-server to answer PING",
            Duration::from_secs(5),
            || {
                let mut connection = redis::Client::open(url.as_str())
                    .ok()?
                    .get_connection()
                    .ok()?;
                redis::cmd("PING").query::<String>(&mut connection).ok()
            },
        );
        true
    }
}

/// A point in a server's append-only file.
#[derive(Debug, Clone)]
pub struct AofMark {
    file: std::path::PathBuf,
    length: u64,
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}
