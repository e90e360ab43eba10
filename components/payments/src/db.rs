//! Every SQL statement of payments, and its schema.

use bus::{Bus, OrderStatus};
use common::ApiError;
use common::db::Migrations;
use contract::price::Price;
use spin_sdk::sqlite::{Connection, Row, Value};

use crate::domain::{OrderCopy, Payment, PaymentStatus};

pub const DATABASE: &str = "payments";

pub const MIGRATIONS: Migrations = &[
    // 1: the bus's outbox and inbox.
    bus::TABLES,
    // 2: the replica of orders, and the payments.
    &[
        "CREATE TABLE orders (
            id TEXT PRIMARY KEY,
            user_id TEXT NOT NULL,
            price_cents INTEGER NOT NULL CHECK (price_cents > 0),
            status TEXT NOT NULL,
            expires_ms INTEGER NOT NULL,
            version INTEGER NOT NULL
        ) STRICT, WITHOUT ROWID",
        "CREATE TABLE payments (
            id TEXT PRIMARY KEY,
            order_id TEXT NOT NULL REFERENCES orders (id),
            status TEXT NOT NULL
                CHECK (status IN ('pending', 'succeeded', 'refund_due', 'refunded')),
            amount_cents INTEGER NOT NULL CHECK (amount_cents > 0),
            token TEXT CHECK (token IS NULL OR status = 'pending'),
            busy_until_ms INTEGER NOT NULL,
            stripe_id TEXT CHECK ((stripe_id IS NULL) = (status = 'pending')),
            refund_id TEXT,
            created_ms INTEGER NOT NULL,
            updated_ms INTEGER NOT NULL
        ) STRICT, WITHOUT ROWID",
        // One payment per order, decided by the database: a second attempt can only
        // start once a declined one was deleted.
        "CREATE UNIQUE INDEX one_payment_per_order ON payments (order_id)",
        "CREATE INDEX payments_refund_due ON payments (id) WHERE status = 'refund_due'",
    ],
    // 3: outbox rows claimed by one relay at a time, with their relay numbers.
    bus::RELAY_CLAIMS,
    // 4: when each warning was last logged: every request is a fresh instance, and a
    // warning on each of them would bury the log.
    &["CREATE TABLE warnings (
        name TEXT PRIMARY KEY,
        warned_ms INTEGER NOT NULL
    ) STRICT, WITHOUT ROWID"],
    // 5: every wake of the bus looks for attempts whose answer was lost.
    &["CREATE INDEX payments_pending ON payments (updated_ms) WHERE status = 'pending'"],
];

/// payments on the event bus: its events' source, its consumer group, its database.
pub const BUS: Bus = Bus {
    service: "payments",
    database: DATABASE,
    migrations: MIGRATIONS,
};

pub fn open() -> Result<Connection, ApiError> {
    BUS.open()
}

/// Stores an order first heard of; `false` if it was known already.
pub fn insert_order(conn: &Connection, order: &OrderCopy) -> Result<bool, ApiError> {
    let result = conn.execute(
        "INSERT INTO orders (id, user_id, price_cents, status, expires_ms, version)
         VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT (id) DO NOTHING RETURNING id",
        &[
            Value::Text(order.id.clone()),
            Value::Text(order.user_id.clone()),
            Value::Integer(order.price.cents()),
            Value::Text(order.status.as_str().to_owned()),
            Value::Integer(order.expires_ms),
            Value::Integer(i64::from(order.version)),
        ],
    )?;
    Ok(!result.rows.is_empty())
}

pub fn find_order(conn: &Connection, id: &str) -> Result<Option<OrderCopy>, ApiError> {
    let result = conn.execute(
        "SELECT id, user_id, price_cents, status, expires_ms, version FROM orders WHERE id = ?",
        &[Value::Text(id.to_owned())],
    )?;
    result.rows().next().map(|row| order(&row)).transpose()
}

/// Cancels the order at `version`, on top of version-1; `false` when the copy is not
/// at version-1.
pub fn cancel_order(conn: &Connection, id: &str, version: u32) -> Result<bool, ApiError> {
    let result = conn.execute(
        "UPDATE orders SET status = 'cancelled', version = ?2
         WHERE id = ?1 AND version = ?2 - 1 RETURNING id",
        &[
            Value::Text(id.to_owned()),
            Value::Integer(i64::from(version)),
        ],
    )?;
    Ok(!result.rows.is_empty())
}

const PAYMENT_COLUMNS: &str = "id, order_id, status, amount_cents, token, busy_until_ms, stripe_id";

pub fn payment_of(conn: &Connection, order_id: &str) -> Result<Option<Payment>, ApiError> {
    let result = conn.execute(
        &format!("SELECT {PAYMENT_COLUMNS} FROM payments WHERE order_id = ?"),
        &[Value::Text(order_id.to_owned())],
    )?;
    result.rows().next().map(|row| payment(&row)).transpose()
}

/// Stores a new pending payment unless the order has one (then `false`).
pub fn insert_payment(conn: &Connection, payment: &Payment, now_ms: i64) -> Result<bool, ApiError> {
    let result = conn.execute(
        "INSERT INTO payments (id, order_id, status, amount_cents, token, busy_until_ms,
             stripe_id, created_ms, updated_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)
         ON CONFLICT DO NOTHING RETURNING id",
        &[
            Value::Text(payment.id.clone()),
            Value::Text(payment.order_id.clone()),
            Value::Text(payment.status.as_str().to_owned()),
            Value::Integer(payment.amount.cents()),
            payment.token.clone().map_or(Value::Null, Value::Text),
            Value::Integer(payment.busy_until_ms),
            payment.stripe_id.clone().map_or(Value::Null, Value::Text),
            Value::Integer(now_ms),
        ],
    )?;
    Ok(!result.rows.is_empty())
}

/// Claims a pending attempt for one sender: marks it busy until `until_ms`, unless it
/// is busy already (a request or a wake is waiting for its answer); `false` then. One
/// statement, so of senders racing for it one wins.
pub fn claim(conn: &Connection, id: &str, until_ms: i64, now_ms: i64) -> Result<bool, ApiError> {
    let result = conn.execute(
        "UPDATE payments SET busy_until_ms = ?2, updated_ms = ?3
         WHERE id = ?1 AND status = 'pending' AND busy_until_ms <= ?3 RETURNING id",
        &[
            Value::Text(id.to_owned()),
            Value::Integer(until_ms),
            Value::Integer(now_ms),
        ],
    )?;
    Ok(!result.rows.is_empty())
}

/// Gives up a claim: the pending attempt may be sent again at once.
pub fn release(conn: &Connection, id: &str, now_ms: i64) -> Result<(), ApiError> {
    conn.execute(
        "UPDATE payments SET busy_until_ms = 0, updated_ms = ?2
         WHERE id = ?1 AND status = 'pending'",
        &[Value::Text(id.to_owned()), Value::Integer(now_ms)],
    )?;
    Ok(())
}

/// Every pending attempt nobody is sending (its answer was lost, or its sender died),
/// the longest untried first.
pub fn abandoned(conn: &Connection, now_ms: i64) -> Result<Vec<Payment>, ApiError> {
    let result = conn.execute(
        &format!(
            "SELECT {PAYMENT_COLUMNS} FROM payments
             WHERE status = 'pending' AND busy_until_ms <= ? ORDER BY updated_ms"
        ),
        &[Value::Integer(now_ms)],
    )?;
    result.rows().map(|row| payment(&row)).collect()
}

/// Records the charge of a pending payment (and forgets its token); `false` if the
/// payment was no longer pending.
pub fn record_charge(
    conn: &Connection,
    id: &str,
    stripe_id: &str,
    status: PaymentStatus,
    now_ms: i64,
) -> Result<bool, ApiError> {
    let result = conn.execute(
        "UPDATE payments SET status = ?2, stripe_id = ?3, token = NULL, busy_until_ms = 0,
             updated_ms = ?4
         WHERE id = ?1 AND status = 'pending' RETURNING id",
        &[
            Value::Text(id.to_owned()),
            Value::Text(status.as_str().to_owned()),
            Value::Text(stripe_id.to_owned()),
            Value::Integer(now_ms),
        ],
    )?;
    Ok(!result.rows.is_empty())
}

/// Deletes a pending payment the provider declined: nothing was charged.
pub fn delete_pending(conn: &Connection, id: &str) -> Result<(), ApiError> {
    conn.execute(
        "DELETE FROM payments WHERE id = ? AND status = 'pending'",
        &[Value::Text(id.to_owned())],
    )?;
    Ok(())
}

/// The order's charge is to be given back (its order was cancelled); `true` if it had
/// one that succeeded.
pub fn refund_due(conn: &Connection, order_id: &str, now_ms: i64) -> Result<bool, ApiError> {
    let result = conn.execute(
        "UPDATE payments SET status = 'refund_due', updated_ms = ?2
         WHERE order_id = ?1 AND status = 'succeeded' RETURNING id",
        &[Value::Text(order_id.to_owned()), Value::Integer(now_ms)],
    )?;
    Ok(!result.rows.is_empty())
}

/// Every payment whose charge is due back.
pub fn refunds_due(conn: &Connection) -> Result<Vec<Payment>, ApiError> {
    let result = conn.execute(
        &format!("SELECT {PAYMENT_COLUMNS} FROM payments WHERE status = 'refund_due'"),
        &[],
    )?;
    result.rows().map(|row| payment(&row)).collect()
}

/// Records a refund; `refund_id` is `None` when the provider had refunded it already.
pub fn record_refund(
    conn: &Connection,
    id: &str,
    refund_id: Option<&str>,
    now_ms: i64,
) -> Result<(), ApiError> {
    conn.execute(
        "UPDATE payments SET status = 'refunded', refund_id = ?2, updated_ms = ?3
         WHERE id = ?1 AND status = 'refund_due'",
        &[
            Value::Text(id.to_owned()),
            refund_id.map_or(Value::Null, |id| Value::Text(id.to_owned())),
            Value::Integer(now_ms),
        ],
    )?;
    Ok(())
}

/// Whether the warning `name` is due (not logged within `every_ms` before `now_ms`, or
/// noted in the future by a clock that went back); if so, it is noted as logged now. One
/// statement, so of instances racing on it one logs it.
pub fn warning_due(
    conn: &Connection,
    name: &str,
    now_ms: i64,
    every_ms: i64,
) -> Result<bool, ApiError> {
    let result = conn.execute(
        "INSERT INTO warnings (name, warned_ms) VALUES (?1, ?2)
         ON CONFLICT (name) DO UPDATE SET warned_ms = excluded.warned_ms
         WHERE warnings.warned_ms <= ?2 - ?3 OR warnings.warned_ms > ?2
         RETURNING name",
        &[
            Value::Text(name.to_owned()),
            Value::Integer(now_ms),
            Value::Integer(every_ms),
        ],
    )?;
    Ok(!result.rows.is_empty())
}

fn text(row: &Row<'_>, table: &str, column: &str) -> Result<String, ApiError> {
    row.get::<&str>(column)
        .map(str::to_owned)
        .ok_or_else(|| anyhow::anyhow!("{table}.{column} is not text").into())
}

fn cents(row: &Row<'_>, table: &str, column: &str) -> Result<Price, ApiError> {
    row.get::<i64>(column)
        .and_then(Price::from_cents)
        .ok_or_else(|| anyhow::anyhow!("{table}.{column} is not a price").into())
}

fn order(row: &Row<'_>) -> Result<OrderCopy, ApiError> {
    let status = row
        .get::<&str>("status")
        .and_then(OrderStatus::parse)
        .ok_or_else(|| anyhow::anyhow!("orders.status is not a status"))?;
    let version = row
        .get::<i64>("version")
        .and_then(|version| u32::try_from(version).ok())
        .ok_or_else(|| anyhow::anyhow!("orders.version is not a version"))?;
    Ok(OrderCopy {
        id: text(row, "orders", "id")?,
        user_id: text(row, "orders", "user_id")?,
        price: cents(row, "orders", "price_cents")?,
        status,
        expires_ms: row
            .get::<i64>("expires_ms")
            .ok_or_else(|| anyhow::anyhow!("orders.expires_ms is not a time"))?,
        version,
    })
}

fn payment(row: &Row<'_>) -> Result<Payment, ApiError> {
    let status = row
        .get::<&str>("status")
        .and_then(PaymentStatus::parse)
        .ok_or_else(|| anyhow::anyhow!("payments.status is not a status"))?;
    Ok(Payment {
        id: text(row, "payments", "id")?,
        order_id: text(row, "payments", "order_id")?,
        status,
        amount: cents(row, "payments", "amount_cents")?,
        token: row.get::<&str>("token").map(str::to_owned),
        busy_until_ms: row.get::<i64>("busy_until_ms").unwrap_or(0),
        stripe_id: row.get::<&str>("stripe_id").map(str::to_owned),
    })
}
