//! Every SQL statement of expiration, and its schema.

use bus::Bus;
use common::ApiError;
use common::db::Migrations;
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

/// Schedules an order's expiry (once: a second `order:created` changes nothing).
pub fn schedule(conn: &Connection, order_id: &str, expires_ms: i64) -> Result<(), ApiError> {
    conn.execute(
        "INSERT INTO expirations (order_id, expires_ms) VALUES (?, ?)
         ON CONFLICT (order_id) DO NOTHING",
        &[Value::Text(order_id.to_owned()), Value::Integer(expires_ms)],
    )?;
    Ok(())
}

/// Marks every expiry due at `now_ms` as expired and returns their orders.
pub fn take_due(conn: &Connection, now_ms: i64) -> Result<Vec<String>, ApiError> {
    let result = conn.execute(
        "UPDATE expirations SET expired_ms = ?1
         WHERE expired_ms IS NULL AND expires_ms <= ?1
         RETURNING order_id",
        &[Value::Integer(now_ms)],
    )?;
    Ok(result
        .rows()
        .filter_map(|row| row.get::<&str>("order_id").map(str::to_owned))
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
