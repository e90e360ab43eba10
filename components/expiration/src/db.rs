//! Every SQL statement of expiration, and its schema.

use bus::Bus;
use common::ApiError;
use common::db::Migrations;
use common::trace::TraceContext;
use spin_sdk::sqlite::{Connection, Value};

pub const DATABASE: &str = "expiration";

pub const MIGRATIONS: Migrations = &[
    // 1: the bus's outbox and inbox.
    bus::TABLES,
    // 2: the schedule: one row per order, `expired_ms` set once its expiry is published.
    &[
        "CREATE TABLE expirations (
            order_id TEXT PRIMARY KEY,
            expires_ms INTEGER NOT NULL,
            expired_ms INTEGER
        ) STRICT, WITHOUT ROWID",
        "CREATE INDEX expirations_pending ON expirations (expires_ms) WHERE expired_ms IS NULL",
    ],
    // 3: outbox rows claimed by one relay at a time, with their relay numbers.
    bus::RELAY_CLAIMS,
    // 4: the trace context of the order's `order:created`, which its
    // `expiration:complete` carries on (NULL for expiries scheduled before).
    &[
        "ALTER TABLE expirations ADD COLUMN traceparent TEXT",
        "ALTER TABLE expirations ADD COLUMN tracestate TEXT",
    ],
];

/// expiration on the event bus.
pub const BUS: Bus = Bus {
    service: "expiration",
    database: DATABASE,
    migrations: MIGRATIONS,
};

pub fn open() -> Result<Connection, ApiError> {
    BUS.open()
}

/// Schedules an order's expiry, with the trace it belongs to (once: a second
/// `order:created` changes nothing).
pub fn schedule(
    conn: &Connection,
    order_id: &str,
    expires_ms: i64,
    trace: Option<&TraceContext>,
) -> Result<(), ApiError> {
    let text =
        |value: Option<&str>| value.map_or(Value::Null, |value| Value::Text(value.to_owned()));
    conn.execute(
        "INSERT INTO expirations (order_id, expires_ms, traceparent, tracestate)
         VALUES (?, ?, ?, ?)
         ON CONFLICT (order_id) DO NOTHING",
        &[
            Value::Text(order_id.to_owned()),
            Value::Integer(expires_ms),
            text(trace.map(TraceContext::traceparent)),
            text(trace.and_then(TraceContext::tracestate)),
        ],
    )?;
    Ok(())
}

/// An expiry that fell due: the order, and the trace its expiry belongs to.
pub struct Due {
    pub order_id: String,
    pub trace: Option<TraceContext>,
}

/// Marks every expiry due at `now_ms` as expired and returns them.
pub fn take_due(conn: &Connection, now_ms: i64) -> Result<Vec<Due>, ApiError> {
    let result = conn.execute(
        "UPDATE expirations SET expired_ms = ?1
         WHERE expired_ms IS NULL AND expires_ms <= ?1
         RETURNING order_id, traceparent, tracestate",
        &[Value::Integer(now_ms)],
    )?;
    Ok(result
        .rows()
        .filter_map(|row| {
            let trace = row
                .get::<&str>("traceparent")
                .and_then(|parent| TraceContext::parse(parent, row.get::<&str>("tracestate")));
            row.get::<&str>("order_id").map(|order_id| Due {
                order_id: order_id.to_owned(),
                trace,
            })
        })
        .collect())
}

/// The earliest pending expiry, and how many are pending.
pub fn pending(conn: &Connection) -> Result<(Option<i64>, i64), ApiError> {
    let result = conn.execute(
        "SELECT min(expires_ms) AS next, count(*) AS pending FROM expirations
         WHERE expired_ms IS NULL",
        &[],
    )?;
    let row = result.rows().next();
    Ok((
        row.as_ref().and_then(|row| row.get::<i64>("next")),
        row.as_ref()
            .and_then(|row| row.get::<i64>("pending"))
            .unwrap_or(0),
    ))
}
