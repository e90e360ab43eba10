//! Consuming: a service's consumer group on each stream it listens to.
//!
//! A listener is woken by the Redis trigger: a doorbell (the envelope of an event just
//! relayed, on its subject's channel) drains that subject's stream; the bus's tick
//! (`crate::tick`) relays leftover events and drains every stream. Nothing else wakes
//! it: HTTP requests do no bus work.
//!
//! A drain of one stream, for one service:
//! 1. takes the service's lease on the stream (`SET … NX PX`) before anything else, so
//!    that one invocation at a time, across every replica, applies its entries, in
//!    stream order. An invocation that finds the lease taken leaves a note (`again`)
//!    and returns at once; the holder drains once more before it lets go, so nothing
//!    rung meanwhile is missed;
//! 2. retries entries pending longer than the ack wait (`XAUTOCLAIM`): their handler
//!    failed, or their invocation died. Past the maximum deliveries they go to
//!    `events:dead`;
//! 3. reads new entries (`XREADGROUP … >`; the group is created at `0` with `MKSTREAM`
//!    on first use, so a new service replays the whole stream).
//!
//! Each entry is applied in one SQLite transaction together with its `inbox` row (a
//! second delivery of the same event id is skipped), and acked (`XACK`) after commit.
//! A drain that fails on the infrastructure (Redis drops, the database stays locked)
//! is tried again after a pause, up to [`DRAIN_RETRY_MS`]; the entries it could not
//! settle are made due at once for the next drain instead of after the ack wait.

use std::cell::OnceCell;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use common::ApiError;
use common::clock::now_ms;
use common::trace::{self, TraceContext};
use serde::Deserialize;
use spin_sdk::redis::RedisResult;
use spin_sdk::sqlite::{Connection, Value};

use crate::redis::{Redis, is_busy_group, is_no_group};
use crate::reply::{self, Entry};
use crate::settings::Settings;
use crate::{Bus, DEAD_LETTERS, Envelope, EventData, Tx, outbox, stream, tick};

/// Entries read per command.
const BATCH: usize = 32;
/// Pending entries listed at most when looking up the delivery counts of a batch.
const PENDING_RANGE: usize = 1_000;
/// How long a lease lasts unless renewed (after every batch): the longest a stream
/// waits when its drainer dies.
const LEASE_MS: u64 = 15_000;
/// An event given up on after `event_max_deliveries` is kept longer if its handler was
/// waiting for the version before it (or crashed without a word): until it is this old
/// (by its entry id), since a predecessor held up by an outage still comes.
const GIVE_UP_AFTER_MS: i64 = 300_000;
/// The pauses before a failed drain is tried again.
pub const DRAIN_RETRY_MS: [u64; 3] = [200, 1_000, 3_000];

/// An event as a handler receives it.
#[derive(Debug, Clone)]
pub struct Received<T> {
    /// The event's id (the inbox key).
    pub id: String,
    pub occurred_at: String,
    /// The service that published it.
    pub source: String,
    /// Its trace context (current while the handler runs, so what the handler
    /// publishes carries it on); None for an envelope without one.
    pub trace: Option<TraceContext>,
    pub data: T,
}

/// What a Redis trigger message was, for a service with work of its own to do on a
/// wake (payments settles refunds, expiration sweeps).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// A doorbell of a subject the listener handles: its stream was drained.
    Doorbell,
    /// The bus's tick: leftovers relayed, every stream drained.
    Tick,
    /// Anything else (another service's subject, another key expiring): ignored.
    Other,
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
                        trace: trace::current(),
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

    /// The Redis trigger's entry point, for every channel of the service: a doorbell
    /// (an envelope) drains its subject's stream; a tick (the name of an expired tick
    /// key on `__keyevent@0__:expired`) relays leftovers and drains every stream;
    /// anything else is ignored.
    pub fn on_message(&self, payload: &[u8]) -> Result<Wake> {
        if tick::is_tick(payload) {
            self.on_tick()?;
            return Ok(Wake::Tick);
        }
        if !payload.starts_with(b"{") {
            // Another key expiring (an alarm, a lease that lapsed): not for the bus.
            return Ok(Wake::Other);
        }
        match doorbell_subject(payload) {
            Some(subject) if self.handles(&subject) => {
                self.drain(self.subject(&subject))?;
                Ok(Wake::Doorbell)
            }
            Some(subject) => {
                common::log!("bus: doorbell for `{subject}`, which no handler takes: ignored");
                Ok(Wake::Other)
            }
            None => {
                common::log!("bus: a message that is no envelope: ignored (the next tick drains)");
                Ok(Wake::Other)
            }
        }
    }

    /// The bus's tick: relays the service's leftover events (and relays again what a
    /// Redis that lost writes lost), then drains every stream. Also what a test or an
    /// operator runs to catch up now.
    pub fn on_tick(&self) -> Result<()> {
        Session::open(self)?.relay_leftovers();
        let mut failure = None;
        for subject in self.subjects() {
            if let Err(err) = self.drain(subject) {
                common::log!("bus: {}: {err:#}", self.bus.service);
                failure = Some(err);
            }
        }
        failure.map_or(Ok(()), Err)
    }

    /// Drains `subject`'s stream, unless another invocation is draining it (it then
    /// drains once more for us). A failure of the infrastructure is tried again after
    /// each pause of [`DRAIN_RETRY_MS`].
    fn drain(&self, subject: &'static str) -> Result<()> {
        let mut pauses = DRAIN_RETRY_MS.iter();
        loop {
            let outcome = Session::open(self).and_then(|session| session.drain(subject));
            let err = match outcome {
                Ok(()) => return Ok(()),
                Err(err) => err,
            };
            let Some(&pause) = pauses.next() else {
                return Err(err.context(format!(
                    "draining {} for {} failed {} times",
                    stream(subject),
                    self.bus.service,
                    DRAIN_RETRY_MS.len() + 1
                )));
            };
            common::log!(
                "bus: {}: draining {} failed, trying again in {pause} ms: {err:#}",
                self.bus.service,
                stream(subject)
            );
            std::thread::sleep(Duration::from_millis(pause));
        }
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

/// One invocation's connection to Redis, and to the service's database once needed (a
/// listener that finds the stream taken never opens it).
struct Session<'a> {
    listener: &'a Listener,
    settings: Settings,
    redis: Redis,
    conn: OnceCell<Connection>,
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
        Ok(Session {
            listener,
            settings,
            redis,
            conn: OnceCell::new(),
        })
    }

    fn conn(&self) -> Result<&Connection> {
        if let Some(conn) = self.conn.get() {
            return Ok(conn);
        }
        let conn = self
            .listener
            .bus
            .open()
            .map_err(|err| anyhow!("opening the database: {err}"))?;
        Ok(self.conn.get_or_init(|| conn))
    }

    fn group(&self) -> &'static str {
        self.listener.bus.service
    }

    fn relay_leftovers(&self) {
        let bus = &self.listener.bus;
        let outcome = self
            .conn()
            .and_then(|conn| outbox::relay_leftovers(bus, &self.redis, conn));
        match outcome {
            Ok(0) => {}
            Ok(count) => common::log!("bus: {}: relayed {count} leftover events", bus.service),
            Err(err) => outbox::log_relay_failure(bus, &err),
        }
    }

    /// Applies what is waiting on `subject`'s stream, unless another invocation holds
    /// the lease (then that one does it).
    fn drain(&self, subject: &'static str) -> Result<()> {
        let lease = Lease::new(&self.redis, self.group(), subject)?;
        if !lease.acquire()? {
            return Ok(());
        }
        loop {
            let outcome = self.drain_holding(subject, &lease);
            let rang_meanwhile = lease.release();
            outcome?;
            // Someone rang while we held the lease: one more round, if it is free.
            if !rang_meanwhile? || !lease.acquire()? {
                return Ok(());
            }
        }
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
            self.deliver_all(&stream, subject, &entries, |_| 1)?;
            if !lease.renew()? {
                common::log!("bus: lost the lease on {stream}; another invocation goes on");
                return Ok(());
            }
        }
    }

    /// Delivers `entries` in order. When the infrastructure fails on one, it and the
    /// ones after it are made due for the next drain at once (not after the ack wait),
    /// and the drain stops with the error.
    fn deliver_all(
        &self,
        stream: &str,
        subject: &str,
        entries: &[Entry],
        deliveries: impl Fn(&Entry) -> u64,
    ) -> Result<()> {
        for (index, entry) in entries.iter().enumerate() {
            if let Err(err) = self.deliver(stream, subject, entry, deliveries(entry)) {
                let unsettled: Vec<&str> = entries[index..]
                    .iter()
                    .map(|entry| entry.id.as_str())
                    .collect();
                if let Err(also) = self.make_due(stream, &unsettled) {
                    common::log!("bus: {stream}: {also:#}");
                }
                self.arm_ticks();
                return Err(err);
            }
        }
        Ok(())
    }

    /// Makes sure the bus's ticks come (the wake that retries what stays pending).
    fn arm_ticks(&self) {
        if let Err(err) = tick::arm_with(&self.redis) {
            common::log!("bus: {}: arming the ticks failed: {err:#}", self.group());
        }
    }

    /// Marks pending entries idle for the ack wait already, so that the next drain's
    /// `XAUTOCLAIM` takes them (`JUSTID`: without counting a delivery).
    fn make_due(&self, stream: &str, ids: &[&str]) -> Result<()> {
        let ack_wait = self.settings.ack_wait_ms.to_string();
        let mut args = vec![stream, self.group(), self.group(), "0"];
        args.extend_from_slice(ids);
        args.extend(["IDLE", &ack_wait, "JUSTID"]);
        self.redis
            .run("XCLAIM", &args)
            .context("making unsettled entries due again")?;
        Ok(())
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
            common::log!(
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
        self.deliver_all(stream, subject, &claimed.entries, |entry| {
            counts
                .iter()
                .find(|(id, _)| *id == entry.id)
                .map_or(1, |(_, count)| *count)
        })
    }

    /// Applies one entry and settles it: acked when applied or a duplicate, left
    /// pending when its handler failed, moved to the dead letters when it never can be.
    /// An error: the infrastructure failed (the entry is not settled).
    fn deliver(&self, stream: &str, subject: &str, entry: &Entry, deliveries: u64) -> Result<()> {
        let started = Instant::now();
        let (outcome, about) = self.apply(subject, entry, deliveries)?;
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
            Outcome::Failed(err) if is_infrastructure(&err) => {
                common::log!(
                    "event {subject} {} ({about}) -> not applied, the database failed: {err}",
                    entry.id
                );
                return Err(anyhow!("applying {stream} entry {}: {err}", entry.id));
            }
            Outcome::Failed(err)
                if deliveries >= max
                    && (!is_waiting(&err) || entry_age_ms(&entry.id) >= GIVE_UP_AFTER_MS) =>
            {
                let error = err.to_string();
                self.dead_letter(stream, entry, deliveries, &error)?;
                format!(
                    "failed on delivery {deliveries} of {max}: moved to {DEAD_LETTERS}: {error}"
                )
            }
            Outcome::Failed(err) => {
                // Its retry needs a wake after the ack wait even if nothing else happens.
                self.arm_ticks();
                format!(
                    "failed on delivery {deliveries} of {max}, retried after {} ms: {err}",
                    self.settings.ack_wait_ms
                )
            }
            Outcome::Poison(error) => {
                self.dead_letter(stream, entry, deliveries, &error)?;
                format!("moved to {DEAD_LETTERS}: {error}")
            }
        };
        common::log!(
            "event {subject} {} ({about}) -> {verdict} in {:.1} ms",
            entry.id,
            started.elapsed().as_secs_f64() * 1000.0
        );
        Ok(())
    }

    /// The outcome, and a few words about the event for the log line.
    fn apply(&self, subject: &str, entry: &Entry, deliveries: u64) -> Result<(Outcome, String)> {
        let Some(json) = entry.field("e") else {
            return Ok((
                Outcome::Poison("the entry has no field `e`".into()),
                "unreadable".into(),
            ));
        };
        let envelope: Envelope = match serde_json::from_slice(json) {
            Ok(envelope) => envelope,
            Err(err) => {
                return Ok((
                    Outcome::Poison(format!("not an event envelope: {err}")),
                    "unreadable".into(),
                ));
            }
        };
        // The handler's work, and the events it publishes, carry on the event's trace.
        let context = envelope
            .traceparent
            .as_deref()
            .and_then(|parent| TraceContext::parse(parent, envelope.tracestate.as_deref()));
        let about = match &context {
            Some(context) => format!(
                "id {} from {} trace {}",
                envelope.id,
                envelope.source,
                context.trace_id()
            ),
            None => format!("id {} from {}", envelope.id, envelope.source),
        };
        if envelope.event.subject() != subject {
            let error = format!(
                "a `{}` event on the stream of `{subject}`",
                envelope.event.subject()
            );
            return Ok((Outcome::Poison(error), about));
        }
        if deliveries > self.settings.max_deliveries && entry_age_ms(&entry.id) >= GIVE_UP_AFTER_MS
        {
            let error = format!(
                "delivered {deliveries} times without being acknowledged (its handler crashed or timed out)"
            );
            return Ok((Outcome::Poison(error), about));
        }
        let Some(handler) = self.listener.handler(subject) else {
            return Ok((
                Outcome::Poison(format!("no handler for `{subject}`")),
                about,
            ));
        };
        let conn = self.conn()?;
        let event_id = envelope.id.clone();
        let _context = trace::enter(context);
        let outcome = self.listener.bus.commit(conn, |tx| {
            if !record_in_inbox(tx, &event_id, subject)? {
                return Ok(Outcome::Duplicate);
            }
            handler(tx, envelope)?;
            Ok(Outcome::Applied)
        });
        Ok(match outcome {
            Ok((outcome, published)) => {
                // What the handler published goes out on this session's connection.
                outbox::relay_on(&self.listener.bus, &self.redis, conn, &published);
                (outcome, about)
            }
            Err(err) => (Outcome::Failed(err), about),
        })
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
                    Ok(_) => common::log!(
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

/// Whether a handler failed waiting for the version before the event's (`not_on_top`).
fn is_waiting(err: &ApiError) -> bool {
    err.to_string().contains(" waits for version ")
}

/// How old a stream entry is, by its id (`<milliseconds>-<sequence>`).
fn entry_age_ms(id: &str) -> i64 {
    let added = id
        .split('-')
        .next()
        .and_then(|millis| millis.parse::<i64>().ok())
        .unwrap_or(0);
    now_ms() - added
}

/// Whether a handler's failure is the database's (locked past the busy timeout, an I/O
/// error) rather than the handler's own: tried again soon, not after the ack wait.
fn is_infrastructure(err: &ApiError) -> bool {
    let ApiError::Internal(detail) = err else {
        return false;
    };
    // `sqlite: Error::Io("database is locked")`, as `ApiError` writes Spin's error.
    let text = format!("{detail:#}");
    text.contains("sqlite: ") && text.contains("Io(\"")
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
    /// The lease's value while we hold it: `<Redis run id>:<token>`.
    held: std::cell::RefCell<String>,
}

/// Takes the lease: `SET … NX PX`, or over a lease taken on an earlier run of the Redis
/// server (its run id differs: the server restarted since, its holder's release may
/// never have arrived, and a server back from its append-only file brings such a lease
/// back for up to its whole duration). Returns the value set, or nil.
const TAKE: &str = "local run = string.match(redis.call('INFO', 'server'), 'run_id:(%w+)') \
    local mine = run .. ':' .. ARGV[1] \
    if redis.call('SET', KEYS[1], mine, 'NX', 'PX', ARGV[2]) then return mine end \
    local held = redis.call('GET', KEYS[1]) \
    if held and string.sub(held, 1, string.len(run) + 1) ~= run .. ':' then \
      redis.call('SET', KEYS[1], mine, 'PX', ARGV[2]) return mine end \
    return false";

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
            held: std::cell::RefCell::new(String::new()),
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
            "EVAL",
            &[TAKE, "1", &self.key, &self.token, &LEASE_MS.to_string()],
        )?;
        match reply.as_slice() {
            [RedisResult::Binary(value)] => {
                *self.held.borrow_mut() = String::from_utf8_lossy(value).into_owned();
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// `false` when the lease expired and someone else holds it now.
    fn renew(&self) -> Result<bool> {
        let held = self.held.borrow().clone();
        let reply = self.redis.run(
            "EVAL",
            &[RENEW, "1", &self.key, &held, &LEASE_MS.to_string()],
        )?;
        Ok(matches!(reply.as_slice(), [RedisResult::Int64(1)]))
    }

    /// Lets go; `true` when someone rang while we held it.
    fn release(&self) -> Result<bool> {
        let held = self.held.borrow().clone();
        let reply = self
            .redis
            .run("EVAL", &[RELEASE, "2", &self.key, &self.again, &held])
            .context("releasing the lease")?;
        Ok(!matches!(reply.as_slice(), [] | [RedisResult::Nil]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_locked_database_is_the_infrastructure_a_handler_error_is_not() {
        let locked = ApiError::from(spin_sdk::sqlite::Error::Io("database is locked".into()));
        assert!(is_infrastructure(&locked));
        let gap = crate::not_on_top("order", "o1", 3, Some(1)).unwrap_err();
        assert!(!is_infrastructure(&gap));
        assert!(!is_infrastructure(&ApiError::BadRequest("no".into())));
    }

    #[test]
    fn waiting_for_a_version_is_told_apart_and_entries_age_by_their_id() {
        let gap = crate::not_on_top("order", "o1", 3, Some(1)).unwrap_err();
        assert!(is_waiting(&gap));
        assert!(!is_waiting(&ApiError::Internal(anyhow!("poison"))));
        let old = format!("{}-0", now_ms() - 400_000);
        assert!(entry_age_ms(&old) >= GIVE_UP_AFTER_MS);
        assert!(entry_age_ms(&format!("{}-3", now_ms())) < 1_000);
    }

    #[test]
    fn a_doorbell_names_its_subject() {
        let payload = br#"{"id":"e1","subject":"order:created","data":{}}"#;
        assert_eq!(doorbell_subject(payload).as_deref(), Some("order:created"));
        assert_eq!(doorbell_subject(b"orders-key-expired"), None);
        assert_eq!(doorbell_subject(b""), None);
    }
}
