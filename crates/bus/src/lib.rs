//! bus: the event bus every service uses. This page is the guide for service authors:
//! how to publish and how to listen, and what the bus guarantees.
//!
//! - The event types ([`Event`], [`Envelope`], one type per subject), generated from
//!   `wit/events.wit` into the `contract` crate, re-exported here.
//! - Publish: [`Bus::transaction`] gives a [`Tx`]; [`Tx::publish`] writes the event to
//!   the service's `outbox` in that transaction, and after `COMMIT` it is relayed to the
//!   stream `events:<subject>` and rung on the channel `<subject>`.
//! - Consume: a [`Listener`] holds one handler per subject. The Redis trigger calls
//!   [`Listener::on_doorbell`] for a doorbell and [`Listener::on_tick`] for the bus's
//!   tick ([`tick`]). Each stream entry is applied in one transaction with its `inbox`
//!   row, then acked. HTTP requests do no bus work but relaying their own events.
//!
//! # Using it
//!
//! How a service publishes and listens, and what the bus guarantees. Why it is built
//! this way is in docs/design.md, section 4: in short, Redis pub/sub alone loses messages,
//! so the events live in Redis streams with one consumer group per service, and pub/sub
//! only rings doorbells. A service never touches Redis itself.
//!
//! **Declare the service.** Its schema starts with the bus's tables and ends with the
//! bus's second version (claims and relay numbers), and one `Bus` names it (the events'
//! `source`, its consumer group) and its database:
//!
//! ```rust,ignore
//! pub const MIGRATIONS: Migrations =
//!     &[bus::TABLES, &[/* tickets' own tables */], bus::RELAY_CLAIMS];
//! pub const BUS: Bus = Bus { service: "tickets", database: "tickets", migrations: MIGRATIONS };
//! ```
//!
//! **Publish** inside the transaction of the change: the event is a row of `outbox` in
//! that transaction, so it goes out exactly when the change commits.
//!
//! ```rust,ignore
//! BUS.transaction(&conn, |tx| {
//!     db::insert_ticket(tx, &ticket)?;            // tx derefs to the Connection
//!     tx.publish(TicketCreated { id, version: 0, title, price, user_id })?;
//!     Ok(ticket)
//! })?;
//! ```
//!
//! The row is written claimed by the invocation that wrote it (`claimed_until_ms`, 5 s).
//! After `COMMIT` that invocation relays its rows in one round trip, a Lua script that
//! does `XADD events:<subject> MAXLEN ~ 100000 * e <envelope>` for each, takes the next
//! number of the service's counter `bus:relay-seq:<service>` for each, `PUBLISH`es one
//! doorbell per subject of the batch (the subject's last envelope: a doorbell only says
//! "read the stream"), and arms the ticks (below); then the rows are marked relayed with
//! their numbers. That relay is the only bus work an HTTP request does. If Redis is down
//! the request still succeeds: the rows stay unrelayed, their claims are given up, and
//! the next tick relays them.
//!
//! **Listen** with one handler per subject, named after it, in `events.rs`:
//!
//! ```rust,ignore
//! fn listener() -> Listener {
//!     BUS.listener().on(crate::events::on_order_created).on(crate::events::on_order_cancelled)
//! }
//! #[redis_component]
//! fn on_message(payload: Bytes) -> anyhow::Result<()> {
//!     listener().on_message(&payload).map(drop)   // a doorbell, or the bus's tick
//! }
//!
//! pub fn on_order_created(tx: &Tx, event: Received<OrderCreated>) -> Result<(), ApiError> {
//!     db::reserve(tx, &event.data.ticket.id, &event.data.id)?;
//!     tx.publish(TicketUpdated { /* … */ })       // relayed after the commit
//! }
//! ```
//!
//! `on_message` answers `Wake::Doorbell`, `Wake::Tick` or `Wake::Other`, for a service
//! with work of its own on a wake (payments settles abandoned charges and refunds,
//! expiration sweeps). The
//! component needs, in `spin.toml`: the Redis trigger on each subject's channel and on
//! `__keyevent@0__:expired` (the tick), the variables `redis_url` (and optionally
//! `event_ack_wait_ms`, default 30000, and `event_max_deliveries`, default 10), its
//! database, and `allowed_outbound_hosts` for Redis.
//!
//! **The tick.** Spin has no timers, so the bus's clock is Redis: keys
//! `bus:tick:<slot>` set to expire at the start of every 5-second slot (`PXAT`), armed 24
//! slots (two minutes) ahead by every relay and every tick (one `EXISTS` when they are
//! armed already) and by expiration's health route. With `notify-keyspace-events Ex`
//! Redis publishes each key's name on `__keyevent@0__:expired` when it expires, and every
//! listening service is invoked: it relays leftovers (rows nobody holds a claim on,
//! claimed by one invocation at a time with `UPDATE … RETURNING`), notices a Redis that
//! lost writes (below), and drains every stream. Because the ticks are armed ahead, they
//! keep coming through a Redis restart that keeps its data (append-only file), with no
//! request arriving; after a Redis that lost everything, the first write or health probe
//! starts them again.
//!
//! What the bus guarantees, and how (each is a test in `crates/bus/tests/bus.rs`):
//! - **Nothing lost, nothing invented.** A failed transaction publishes nothing; an event
//!   committed while Redis was down is relayed within a tick or two of its return, with
//!   no request arriving.
//! - **Relayed once per row, not raced.** A row is relayed by the invocation that claims
//!   it; sixteen invocations relaying leftovers at once put each event on its stream once.
//!   A row is relayed again only if its relay did not finish within the claim, or Redis
//!   lost it.
//! - **A Redis that lost acknowledged writes loses no event.** Redis can come back
//!   without writes it had acknowledged: a crash with `appendfsync everysec` (the last
//!   second), a failover to a replica that lagged. Each row keeps the number the
//!   service's relay counter gave it; when the counter reads below the highest number
//!   the outbox holds, everything numbered above it is gone from Redis, and those rows
//!   are relayed again (consumers skip what they applied, by the event id). The newest
//!   1,000 relayed rows are kept for this: a service that relays more than 1,000 events
//!   within the window Redis loses can still lose the oldest of them.
//! - **Each event applied once per service**, whatever the replica count: one consumer
//!   group per service (`XREADGROUP GROUP <service>`), and each entry applied in one
//!   transaction with an `inbox` row keyed by the event id, so a second delivery (a
//!   relay repeated, a crash between commit and `XACK`) is skipped and acked.
//! - **In order per subject.** One invocation at a time drains a stream for a service:
//!   it holds a lease (`bus:<service>:lease:<subject>` = `<Redis run id>:<token>`, `NX
//!   PX 15000`, renewed per batch). An invocation that finds it taken leaves a note
//!   (`bus:…:again:…`) and returns at once, without opening the database; the holder
//!   drains once more before letting go, so no doorbell is lost. A lease taken on an
//!   earlier run of the Redis server is taken over at once: its holder's release may
//!   never have arrived, and a Redis back from its append-only file brings it back. The exception is an event whose handler failed:
//!   its successors go on, and it is applied when retried. Replicas (orders' ticket copy)
//!   use versions for that.
//! - **Failures are retried, poison is set aside.** A failing handler's entry stays
//!   pending (and the ticks are armed for its retry); a drain reclaims entries idle
//!   longer than the ack wait (`XAUTOCLAIM`) and applies them again. An entry delivered
//!   `event_max_deliveries` times (but one waiting for the version before it, or whose
//!   handler crashed without a word, not before it is 5 minutes old: a predecessor held
//!   up by an outage still comes), or one that is not an envelope of its stream's
//!   subject, is added to `events:dead` (fields `e`, `stream`, `group`, `entry`,
//!   `deliveries`, `error`), acked and logged. `cargo xtask bus --dead` lists them;
//!   `--replay <id>` hands one back to its group once the cause is fixed.
//! - **The infrastructure failing is retried soon.** A drain that fails on Redis or on
//!   the database (locked past SQLite's 5 s, an I/O error) tries again after 0.2, 1 and
//!   3 s; the entries it could not settle are made due for the next drain at once
//!   (`XCLAIM … IDLE <ack wait> JUSTID`) rather than after the ack wait.
//! - **History replays for a new service.** The group is created at `0` (with
//!   `MKSTREAM`) on first use. Streams keep about 100,000 entries each; a group that falls
//!   further behind loses the oldest (logged when reclaimed).
//! - **Backlogs are applied without a doorbell.** Doorbells rung while no listener was
//!   subscribed are lost (pub/sub); the next tick drains every stream.
//!
//! Spin's Redis trigger handles the messages of one Redis address one at a time (a
//! message's components run side by side; the next message waits for them), and so does
//! the host: a burst of doorbells queues instead of starting an instance each, and a
//! listener never races itself within one process.
//!
//! Each applied (or skipped, failed, dead) entry logs one line: `event <subject> <entry>
//! (id <event id> from <source>) -> applied in 1.2 ms`. `cargo xtask bus` tails the
//! streams.

pub mod alarm;
mod consumer;
mod outbox;
mod redis;
mod reply;
mod settings;
pub mod tick;

use common::ApiError;
use common::clock;
use common::db::Migrations;
use common::trace;
use spin_sdk::sqlite::Connection;
use std::cell::RefCell;
use std::ops::Deref;

pub use consumer::{Listener, Received, Wake};
pub use contract::events::*;
pub use settings::{DEFAULT_ACK_WAIT_MS, DEFAULT_MAX_DELIVERIES};

/// The bus's tables, the first schema version of every service that uses the bus:
/// `MIGRATIONS = &[bus::TABLES, &[/* the service's own tables */]]`.
pub const TABLES: &[&str] = &[
    // Events written with the state change that caused them; `relayed_ms` is set once
    // the event is on its stream. The newest relayed rows are kept for inspection.
    "CREATE TABLE outbox (
        seq INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        subject TEXT NOT NULL,
        envelope TEXT NOT NULL,
        created_ms INTEGER NOT NULL,
        relayed_ms INTEGER
    ) STRICT",
    "CREATE INDEX outbox_unrelayed ON outbox (seq) WHERE relayed_ms IS NULL",
    // One row per event applied: a second delivery of the same id is skipped.
    "CREATE TABLE inbox (
        id TEXT PRIMARY KEY,
        subject TEXT NOT NULL,
        applied_ms INTEGER NOT NULL
    ) STRICT, WITHOUT ROWID",
];

/// The bus's second schema version, which every service appends to its own versions
/// (`MIGRATIONS = &[bus::TABLES, &[/* its tables */], bus::RELAY_CLAIMS]`): an
/// outbox row is claimed by one relay at a time (until `claimed_until_ms`), and keeps
/// the number Redis's relay counter gave it (`relay_seq`), to notice a Redis that
/// came back without it.
pub const RELAY_CLAIMS: &[&str] = &[
    "ALTER TABLE outbox ADD COLUMN claimed_until_ms INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE outbox ADD COLUMN relay_seq INTEGER",
    "CREATE INDEX outbox_relay_seq ON outbox (relay_seq) WHERE relay_seq IS NOT NULL",
];

/// The stream of a subject.
pub fn stream(subject: &str) -> String {
    format!("events:{subject}")
}

/// Where entries go that could not be applied (with the error, the stream and the group).
pub const DEAD_LETTERS: &str = "events:dead";

/// One service on the bus.
#[derive(Debug, Clone, Copy)]
pub struct Bus {
    /// The service: the events' `source` and its consumer group on every stream.
    pub service: &'static str,
    /// Its SQLite database (granted in spin.toml): the outbox and the inbox live there.
    pub database: &'static str,
    /// Its schema, starting with [`TABLES`].
    pub migrations: Migrations,
}

impl Bus {
    /// Opens the service's database at its latest schema.
    pub fn open(&self) -> Result<Connection, ApiError> {
        common::db::open(self.database, self.migrations)
    }

    /// Runs `read`, statements that only read, on the service's database, which is
    /// migrated only if `read` fails on an older schema (`common::db::read`): a read
    /// request makes no statement of its own for the schema.
    pub fn read<T>(
        &self,
        read: impl Fn(&Connection) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        common::db::read(self.database, self.migrations, read)
    }

    /// Runs `change` in one transaction (`BEGIN IMMEDIATE` … `COMMIT`, as
    /// `common::db::transaction`); the events it publishes are written in it, and relayed
    /// after the commit. A change that fails publishes nothing.
    pub fn transaction<T>(
        &self,
        conn: &Connection,
        change: impl FnOnce(&Tx) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        let (value, published) = self.commit(conn, change)?;
        if !published.is_empty() {
            outbox::relay(self, conn, &published);
        }
        Ok(value)
    }

    /// The transaction alone: its value and the ids of the events it wrote, for a
    /// caller that relays them on a Redis connection it holds already.
    pub(crate) fn commit<T>(
        &self,
        conn: &Connection,
        change: impl FnOnce(&Tx) -> Result<T, ApiError>,
    ) -> Result<(T, Vec<String>), ApiError> {
        common::db::transaction(conn, |conn| {
            let tx = Tx {
                conn,
                bus: self,
                published: RefCell::new(Vec::new()),
            };
            let value = change(&tx)?;
            Ok((value, tx.published.into_inner()))
        })
    }

    /// The service's listener, without handlers yet.
    pub fn listener(&self) -> Listener {
        Listener::new(*self)
    }
}

/// A transaction of the service's database that can publish events.
pub struct Tx<'a> {
    conn: &'a Connection,
    bus: &'a Bus,
    /// Ids of the events written in this transaction, relayed after it commits.
    published: RefCell<Vec<String>>,
}

impl Tx<'_> {
    /// Writes `data` to the outbox as a new event from this service, with the current
    /// trace context (`common::trace`: the request's, or the handled event's; a new
    /// trace when there is none); it goes out only if the transaction commits.
    pub fn publish(&self, data: impl EventData) -> Result<(), ApiError> {
        let context = trace::current_or_start()?;
        let envelope = Envelope {
            id: common::new_id()?,
            occurred_at: clock::Time::now().to_string(),
            source: self.bus.service.to_owned(),
            event: data.into_event(),
            traceparent: Some(context.traceparent().to_owned()),
            tracestate: context.tracestate().map(str::to_owned),
        };
        outbox::write(self.conn, &envelope)?;
        self.published.borrow_mut().push(envelope.id);
        Ok(())
    }
}

impl Deref for Tx<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        self.conn
    }
}

/// The version rule (a replica applies version v of a record only on top of v-1), for
/// an event of `version` that did not apply: nothing to do if the copy holds that
/// version or a later one already (a redelivery); otherwise the event fails, and is
/// delivered again after the ack wait, until its predecessors have been applied.
pub fn not_on_top(what: &str, id: &str, version: u32, held: Option<u32>) -> Result<(), ApiError> {
    match held {
        Some(held) if held >= version => Ok(()),
        held => Err(anyhow::anyhow!(
            "{what} {id} version {version} waits for version {} (held: {})",
            version.saturating_sub(1),
            held.map_or("none".to_owned(), |held| held.to_string())
        )
        .into()),
    }
}

/// The order's `expiresAt` in milliseconds since the epoch (an error names the order
/// when it is not a timestamp).
pub fn expires_ms(order: &OrderCreated) -> Result<i64, ApiError> {
    clock::Time::parse(&order.expires_at)
        .map(clock::Time::as_ms)
        .ok_or_else(|| {
            anyhow::anyhow!(
                "order {}: expiresAt `{}` is not a timestamp",
                order.id,
                order.expires_at
            )
            .into()
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_subject_has_its_stream() {
        assert_eq!(stream(TicketUpdated::SUBJECT), "events:ticket:updated");
    }

    #[test]
    fn the_version_rule_skips_what_it_holds_and_waits_for_gaps() {
        assert!(not_on_top("order", "o1", 1, Some(1)).is_ok());
        assert!(not_on_top("order", "o1", 1, Some(2)).is_ok());
        let gap = not_on_top("order", "o1", 3, Some(1)).unwrap_err();
        assert_eq!(
            gap.to_string(),
            "order o1 version 3 waits for version 2 (held: 1)"
        );
        let unknown = not_on_top("order", "o1", 1, None).unwrap_err();
        assert_eq!(
            unknown.to_string(),
            "order o1 version 1 waits for version 0 (held: none)"
        );
    }
}
