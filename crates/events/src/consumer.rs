//! Consuming: a service's consumer group on each stream it listens to.
//!
//! A drain of one stream, for one service:
//! 1. takes the service's lease on the stream (`SET … NX PX`), so that one invocation
//!    at a time, across every replica, applies its entries: in stream order. An
//!    invocation that finds the lease taken leaves a note (`again`) and returns; the
//!    holder drains once more before it lets go, so nothing rung meanwhile is missed;
//! 2. retries entries pending longer than the ack wait (`XAUTOCLAIM`): their handler
//!    failed, or their invocation died. Past the maximum deliveries they go to
//!    `events:dead`;
//! 3. reads new entries (`XREADGROUP … >`; the group is created at `0` with `MKSTREAM`
//!    on first use, so a new service replays the whole stream).
//!
//! Each entry is applied in one SQLite transaction together with its `inbox` row (a
//! second delivery of the same event id is skipped), and acked (`XACK`) after commit.

use std::time::Instant;

use anyhow::{Context, Result, anyhow};
use common::ApiError;
use serde::Deserialize;
use spin_sdk::redis::RedisResult;
use spin_sdk::sqlite::{Connection, Value};

use crate::redis::{Redis, is_busy_group, is_no_group};
use crate::reply::{self, Entry};
use crate::settings::Settings;
use crate::{Bus, DEAD_LETTERS, Envelope, EventData, Tx, now_ms, outbox, stream};

/// Entries read per command.
const BATCH: usize = 32;
/// Pending entries listed at most when looking up the delivery counts of a batch.
const PENDING_RANGE: usize = 1_000;
/// How long a lease lasts unless renewed (after every batch): the longest a stream
/// waits when its drainer dies.
const LEASE_MS: u64 = 15_000;
/// HTTP invocations catch up (relay leftovers, drain every stream) at most this often
/// per service, across replicas.
pub const CATCH_UP_EVERY_MS: u64 = 5_000;

/// An event as a handler receives it.
#[derive(Debug, Clone)]
pub struct Received<T> {
    /// The event's id (the inbox key).
    pub id: String,
    pub occurred_at: String,
    /// The service that published it.
    pub source: String,
    pub data: T,
}

type Handler = Box<dyn Fn(&Tx, Envelope) -> Result<(), ApiError>>;

/// A service's handlers, one per subject it listens to.
pub struct Listener {
    bus: Bus,
    handlers: Vec<(&'static str, Handler)>,
}

impl Listener {
    pub(crate) fn new(bus: Bus) -> Listener {
        Listener {
            bus,
            handlers: Vec::new(),
        }
    }

    /// Listens to `T`'s subject with `handler`. The handler runs inside the transaction
    /// that records the event in the inbox: what it writes (and publishes) commits with
    /// it, or not at all. An error leaves the event pending: it is delivered again after
    /// the ack wait.
    pub fn on<T: EventData + 'static>(
        mut self,
        handler: impl Fn(&Tx, Received<T>) -> Result<(), ApiError> + 'static,
    ) -> Listener {
        let subject = T::SUBJECT;
        self.handlers.push((
            subject,
            Box::new(move |tx, envelope: Envelope| {
                let data = T::from_event(envelope.event).ok_or_else(|| {
                    anyhow!("the handler of `{subject}` was given another subject")
                })?;
                handler(
                    tx,
                    Received {
                        id: envelope.id,
                        occurred_at: envelope.occurred_at,
                        source: envelope.source,
                        data,
                    },
                )
            }),
        ));
        self
    }

    /// The subjects this listener handles.
    pub fn subjects(&self) -> Vec<&'static str> {
        self.handlers.iter().map(|(subject, _)| *subject).collect()
    }

    /// The Redis trigger's entry point: a doorbell rang on a subject's channel (its
    /// payload is the envelope). Relays the service's leftover events, then drains the
    /// stream of that subject (every stream, if the payload names no subject we handle).
    pub fn on_doorbell(&self, payload: &[u8]) -> Result<()> {
        let subjects = match doorbell_subject(payload) {
            Some(subject) if self.handles(&subject) => vec![self.subject(&subject)],
            Some(subject) => {
                eprintln!("bus: doorbell for `{subject}`, which no handler takes: ignored");
                return Ok(());
            }
            None => {
                eprintln!("bus: a doorbell without a readable subject: draining every stream");
                self.subjects()
            }
        };
        Session::open(self)?.catch_up(&subjects)
    }

    /// The HTTP entry point, called before each request is handled: at most once per
    /// [`CATCH_UP_EVERY_MS`] per service, relays leftover events and drains every
    /// stream, so a backlog is applied even when no doorbell rings. Never fails the
    /// request: problems are logged. `false` when another invocation had this period's
    /// turn: a service with follow-up work of its own does it when this is `true`.
    pub fn catch_up(&self) -> bool {
        match self.try_catch_up() {
            Ok(turn) => turn,
            Err(err) => {
                eprintln!("bus: {}: catch-up failed: {err:#}", self.bus.service);
                true
            }
        }
    }

    fn try_catch_up(&self) -> Result<bool> {
        let settings = Settings::load()?;
        let redis = Redis::open(&settings.redis_url)?;
        let key = format!("bus:{}:catch-up", self.bus.service);
        let every = CATCH_UP_EVERY_MS.to_string();
        let reply = redis.run("SET", &[&key, "1", "NX", "PX", &every])?;
        if !reply::is_ok(&reply) {
            return Ok(false);
        }
        Session::with(self, settings, redis)?.catch_up(&self.subjects())?;
        Ok(true)
    }

    /// Relays leftovers and drains every stream now, unthrottled.
    pub fn drain_all(&self) -> Result<()> {
        Session::open(self)?.catch_up(&self.subjects())
    }

    fn handles(&self, subject: &str) -> bool {
        self.handlers.iter().any(|(known, _)| *known == subject)
    }

    fn subject(&self, subject: &str) -> &'static str {
        self.handlers
            .iter()
            .map(|(known, _)| *known)
            .find(|known| *known == subject)
            .expect("checked by handles()")
    }

    fn handler(&self, subject: &str) -> Option<&Handler> {
        self.handlers
            .iter()
            .find(|(known, _)| *known == subject)
            .map(|(_, handler)| handler)
    }
}

/// The subject named by a doorbell's envelope, without parsing the rest.
fn doorbell_subject(payload: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct Doorbell {
        subject: String,
    }
    serde_json::from_slice::<Doorbell>(payload)
        .ok()
        .map(|doorbell| doorbell.subject)
}

/// One invocation's connections to Redis and to the service's database.
struct Session<'a> {
    listener: &'a Listener,
    settings: Settings,
    redis: Redis,
    conn: Connection,
}

/// What became of one delivered entry.
enum Outcome {
    Applied,
    Duplicate,
    /// The handler failed; the entry stays pending.
    Failed(ApiError),
    /// It can never be applied (not an envelope of this stream's subject, or delivered
    /// too often): straight to the dead letters.
    Poison(String),
}

impl<'a> Session<'a> {
    fn open(listener: &'a Listener) -> Result<Session<'a>> {
        let settings = Settings::load()?;
        let redis = Redis::open(&settings.redis_url)?;
        Session::with(listener, settings, redis)
    }

    fn with(listener: &'a Listener, settings: Settings, redis: Redis) -> Result<Session<'a>> {
        let conn = listener
            .bus
            .open()
            .map_err(|err| anyhow!("opening the database: {err}"))?;
        Ok(Session {
            listener,
            settings,
            redis,
            conn,
        })
    }

    fn group(&self) -> &'static str {
        self.listener.bus.service
    }

    /// Relays the service's leftover events, then drains each subject's stream.
    fn catch_up(&self, subjects: &[&'static str]) -> Result<()> {
        self.relay_leftovers();
        for &subject in subjects {
            self.drain(subject)?;
        }
        Ok(())
    }

    fn relay_leftovers(&self) {
        match outbox::relay_with(&self.redis, &self.conn, &[]) {
            Ok(0) => {}
            Ok(count) => eprintln!("bus: relayed {count} leftover events from the outbox"),
            Err(err) => eprintln!("bus: relaying leftover events failed: {err:#}"),
        }
    }

    /// Applies what is waiting on `subject`'s stream, unless another invocation holds
    /// the lease (then that one does it).
    fn drain(&self, subject: &'static str) -> Result<()> {
        let lease = Lease::new(&self.redis, self.group(), subject)?;
        if !lease.acquire()? {
            return Ok(());
        }
        let outcome = self.drain_holding(subject, &lease);
        let rang_meanwhile = lease.release();
        outcome?;
        if rang_meanwhile? {
            // Someone rang while we held the lease: one more round, if the lease is free.
            return self.drain(subject);
        }
        Ok(())
    }

    fn drain_holding(&self, subject: &'static str, lease: &Lease) -> Result<()> {
        let stream = stream(subject);
        self.retry_idle(&stream, subject)?;
        loop {
            let reply = self.group_command(&stream, || {
                self.redis.run(
                    "XREADGROUP",
                    &[
                        "GROUP",
                        self.group(),
                        self.group(),
                        "COUNT",
                        &BATCH.to_string(),
                        "STREAMS",
                        &stream,
                        ">",
                    ],
                )
            })?;
            let entries = reply::read_group(&reply)?;
            if entries.is_empty() {
                return Ok(());
            }
            for entry in &entries {
                self.deliver(&stream, subject, entry, 1)?;
            }
            if !lease.renew()? {
                eprintln!("bus: lost the lease on {stream}; another invocation goes on");
                return Ok(());
            }
        }
    }

    /// Entries pending longer than the ack wait, delivered again (oldest first).
    fn retry_idle(&self, stream: &str, subject: &'static str) -> Result<()> {
        let ack_wait = self.settings.ack_wait_ms.to_string();
        let reply = self.group_command(stream, || {
            self.redis.run(
                "XAUTOCLAIM",
                &[
                    stream,
                    self.group(),
                    self.group(),
                    &ack_wait,
                    "0-0",
                    "COUNT",
                    &BATCH.to_string(),
                ],
            )
        })?;
        let claimed = reply::auto_claim(&reply)?;
        for id in &claimed.deleted {
            eprintln!(
                "bus: {stream} entry {id} was trimmed from the stream before {} applied it: lost",
                self.group()
            );
            self.ack(stream, id)?;
        }
        let (Some(first), Some(last)) = (claimed.entries.first(), claimed.entries.last()) else {
            return Ok(());
        };
        // The range may also hold entries pending for less than the ack wait.
        let reply = self.redis.run(
            "XPENDING",
            &[
                stream,
                self.group(),
                &first.id,
                &last.id,
                &PENDING_RANGE.to_string(),
            ],
        )?;
        let counts = reply::delivery_counts(&reply)?;
        for entry in &claimed.entries {
            let deliveries = counts
                .iter()
                .find(|(id, _)| *id == entry.id)
                .map_or(1, |(_, count)| *count);
            self.deliver(stream, subject, entry, deliveries)?;
        }
        Ok(())
    }

    /// Applies one entry and settles it: acked when applied or a duplicate, left
    /// pending when its handler failed, moved to the dead letters when it never can be.
    fn deliver(&self, stream: &str, subject: &str, entry: &Entry, deliveries: u64) -> Result<()> {
        let started = Instant::now();
        let (outcome, about) = self.apply(subject, entry, deliveries);
        let max = self.settings.max_deliveries;
        let verdict = match outcome {
            Outcome::Applied => {
                self.ack(stream, &entry.id)?;
                "applied".to_owned()
            }
            Outcome::Duplicate => {
                self.ack(stream, &entry.id)?;
                "a duplicate, skipped".to_owned()
            }
            Outcome::Failed(err) if deliveries >= max => {
                let error = err.to_string();
                self.dead_letter(stream, entry, deliveries, &error)?;
                format!(
                    "failed on delivery {deliveries} of {max}: moved to {DEAD_LETTERS}: {error}"
                )
            }
            Outcome::Failed(err) => format!(
                "failed on delivery {deliveries} of {max}, retried after {} ms: {err}",
                self.settings.ack_wait_ms
            ),
            Outcome::Poison(error) => {
                self.dead_letter(stream, entry, deliveries, &error)?;
                format!("moved to {DEAD_LETTERS}: {error}")
            }
        };
        eprintln!(
            "event {subject} {} ({about}) -> {verdict} in {:.1} ms",
            entry.id,
            started.elapsed().as_secs_f64() * 1000.0
        );
        Ok(())
    }

    /// The outcome, and a few words about the event for the log line.
    fn apply(&self, subject: &str, entry: &Entry, deliveries: u64) -> (Outcome, String) {
        let Some(json) = entry.field("e") else {
            return (
                Outcome::Poison("the entry has no field `e`".into()),
                "unreadable".into(),
            );
        };
        let envelope: Envelope = match serde_json::from_slice(json) {
            Ok(envelope) => envelope,
            Err(err) => {
                return (
                    Outcome::Poison(format!("not an event envelope: {err}")),
                    "unreadable".into(),
                );
            }
        };
        let about = format!("id {} from {}", envelope.id, envelope.source);
        if envelope.event.subject() != subject {
            let error = format!(
                "a `{}` event on the stream of `{subject}`",
                envelope.event.subject()
            );
            return (Outcome::Poison(error), about);
        }
        if deliveries > self.settings.max_deliveries {
            let error = format!(
                "delivered {deliveries} times without being acknowledged (its handler crashed or timed out)"
            );
            return (Outcome::Poison(error), about);
        }
        let Some(handler) = self.listener.handler(subject) else {
            return (
                Outcome::Poison(format!("no handler for `{subject}`")),
                about,
            );
        };
        let event_id = envelope.id.clone();
        let outcome = self.listener.bus.commit(&self.conn, |tx| {
            if !record_in_inbox(tx, &event_id, subject)? {
                return Ok(Outcome::Duplicate);
            }
            handler(tx, envelope)?;
            Ok(Outcome::Applied)
        });
        match outcome {
            Ok((outcome, published)) => {
                // What the handler published goes out on this session's connection.
                if !published.is_empty()
                    && let Err(err) = outbox::relay_with(&self.redis, &self.conn, &published)
                {
                    outbox::log_relay_failure(&self.listener.bus, &err);
                }
                (outcome, about)
            }
            Err(err) => (Outcome::Failed(err), about),
        }
    }

    fn ack(&self, stream: &str, id: &str) -> Result<()> {
        self.redis.run("XACK", &[stream, self.group(), id])?;
        Ok(())
    }

    /// Moves an entry to `events:dead` with why, then acks it.
    fn dead_letter(&self, stream: &str, entry: &Entry, deliveries: u64, error: &str) -> Result<()> {
        let raw = String::from_utf8_lossy(entry.field("e").unwrap_or_default()).into_owned();
        self.redis.run(
            "XADD",
            &[
                DEAD_LETTERS,
                "MAXLEN",
                "~",
                "100000",
                "*",
                "e",
                &raw,
                "stream",
                stream,
                "group",
                self.group(),
                "entry",
                &entry.id,
                "deliveries",
                &deliveries.to_string(),
                "error",
                error,
            ],
        )?;
        self.ack(stream, &entry.id)
    }

    /// Runs a command that needs the group; creates the group (at `0`, with the stream
    /// if missing) when Redis says it does not exist, and runs the command again.
    fn group_command(
        &self,
        stream: &str,
        command: impl Fn() -> Result<Vec<RedisResult>>,
    ) -> Result<Vec<RedisResult>> {
        match command() {
            Err(err) if is_no_group(&err) => {
                match self
                    .redis
                    .run("XGROUP", &["CREATE", stream, self.group(), "0", "MKSTREAM"])
                {
                    Ok(_) => eprintln!(
                        "bus: created consumer group {} on {stream} (from the first entry)",
                        self.group()
                    ),
                    Err(err) if is_busy_group(&err) => {}
                    Err(err) => return Err(err),
                }
                command()
            }
            other => other,
        }
    }
}

/// Records the event as applied; `false` when it was already (a duplicate delivery).
fn record_in_inbox(conn: &Connection, id: &str, subject: &str) -> Result<bool, ApiError> {
    let result = conn.execute(
        "INSERT INTO inbox (id, subject, applied_ms) VALUES (?, ?, ?)
         ON CONFLICT (id) DO NOTHING RETURNING id",
        &[
            Value::Text(id.to_owned()),
            Value::Text(subject.to_owned()),
            Value::Integer(now_ms()),
        ],
    )?;
    Ok(!result.rows.is_empty())
}

/// The right to drain one stream for one group.
struct Lease<'a> {
    redis: &'a Redis,
    key: String,
    again: String,
    token: String,
}

/// Extends the lease if it is still ours.
const RENEW: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then \
    return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end";
/// Lets go of the lease if it is still ours, and says whether someone rang meanwhile.
const RELEASE: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then \
    redis.call('DEL', KEYS[1]) end return redis.call('GETDEL', KEYS[2])";

impl<'a> Lease<'a> {
    fn new(redis: &'a Redis, group: &str, subject: &str) -> Result<Lease<'a>> {
        Ok(Lease {
            redis,
            key: format!("bus:{group}:lease:{subject}"),
            again: format!("bus:{group}:again:{subject}"),
            token: common::new_id().map_err(|err| anyhow!("{err}"))?,
        })
    }

    /// Takes the lease, or leaves a note for its holder and tries once more (the holder
    /// may have let go in between, without seeing the note).
    fn acquire(&self) -> Result<bool> {
        if self.try_take()? {
            return Ok(true);
        }
        self.redis
            .run("SET", &[&self.again, "1", "PX", &LEASE_MS.to_string()])?;
        self.try_take()
    }

    fn try_take(&self) -> Result<bool> {
        let reply = self.redis.run(
            "SET",
            &[&self.key, &self.token, "NX", "PX", &LEASE_MS.to_string()],
        )?;
        Ok(reply::is_ok(&reply))
    }

    /// `false` when the lease expired and someone else holds it now.
    fn renew(&self) -> Result<bool> {
        let reply = self.redis.run(
            "EVAL",
            &[RENEW, "1", &self.key, &self.token, &LEASE_MS.to_string()],
        )?;
        Ok(matches!(reply.as_slice(), [RedisResult::Int64(1)]))
    }

    /// Lets go; `true` when someone rang while we held it.
    fn release(&self) -> Result<bool> {
        let reply = self
            .redis
            .run("EVAL", &[RELEASE, "2", &self.key, &self.again, &self.token])
            .context("releasing the lease")?;
        Ok(!matches!(reply.as_slice(), [] | [RedisResult::Nil]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_doorbell_names_its_subject() {
        let payload = br#"{"id":"e1","subject":"order:created","data":{}}"#;
        assert_eq!(doorbell_subject(payload).as_deref(), Some("order:created"));
        assert_eq!(doorbell_subject(b"orders-key-expired"), None);
        assert_eq!(doorbell_subject(b""), None);
    }
}
