//! bus: the event bus every service uses (ARCHITECTURE.md, "The event bus", says
//! how to publish and how to listen, and what the bus guarantees).
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
    /// Writes `data` to the outbox as a new event from this service; it goes out only
    /// if the transaction commits.
    pub fn publish(&self, data: impl EventData) -> Result<(), ApiError> {
        let envelope = Envelope {
            id: common::new_id()?,
            occurred_at: clock::Time::now().to_string(),
            source: self.bus.service.to_owned(),
            event: data.into_event(),
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
