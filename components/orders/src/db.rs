//! Every SQL statement of orders, and its schema.

use bus::{Bus, OrderStatus};
use common::ApiError;
use common::clock::Time;
use common::db::Migrations;
use contract::price::Price;
use spin_sdk::sqlite::{Connection, Row, Value};

use crate::domain::{Order, TicketCopy};

pub const DATABASE: &str = "orders";

pub const MIGRATIONS: Migrations = &[
    // 1: the bus's outbox and inbox.
    bus::TABLES,
    // 2: the replica of tickets, and the orders.
    &[
        "CREATE TABLE tickets (
            id TEXT PRIMARY KEY,
            title TEXT NOT NULL,
            price_cents INTEGER NOT NULL CHECK (price_cents > 0),
            version INTEGER NOT NULL
        ) STRICT, WITHOUT ROWID",
        "CREATE TABLE orders (
            seq INTEGER PRIMARY KEY,
            id TEXT NOT NULL UNIQUE,
            user_id TEXT NOT NULL,
            status TEXT NOT NULL,
            expires_at TEXT NOT NULL,
            version INTEGER NOT NULL,
            ticket_id TEXT NOT NULL REFERENCES tickets (id)
        ) STRICT",
        // The reservation: at most one order that is not cancelled per ticket, decided
        // by the database, whatever the number of concurrent requests.
        "CREATE UNIQUE INDEX one_live_order_per_ticket ON orders (ticket_id)
            WHERE status != 'cancelled'",
        "CREATE INDEX orders_of_user ON orders (user_id, seq)",
    ],
    // 3: outbox rows claimed by one relay at a time, with their relay numbers.
    bus::RELAY_CLAIMS,
];

/// orders on the event bus: its events' source, its consumer group, its database.
pub const BUS: Bus = Bus {
    service: "orders",
    database: DATABASE,
    migrations: MIGRATIONS,
};

pub fn open() -> Result<Connection, ApiError> {
    BUS.open()
}

pub fn find_ticket(conn: &Connection, id: &str) -> Result<Option<TicketCopy>, ApiError> {
    let result = conn.execute(
        "SELECT id, title, price_cents, version FROM tickets WHERE id = ?",
        &[Value::Text(id.to_owned())],
    )?;
    result.rows().next().map(|row| ticket(&row, "")).transpose()
}

/// Stores a ticket first heard of; `false` if it was known already.
pub fn insert_ticket(conn: &Connection, ticket: &TicketCopy) -> Result<bool, ApiError> {
    let result = conn.execute(
        "INSERT INTO tickets (id, title, price_cents, version) VALUES (?, ?, ?, ?)
         ON CONFLICT (id) DO NOTHING RETURNING id",
        &[
            Value::Text(ticket.id.clone()),
            Value::Text(ticket.title.clone()),
            Value::Integer(ticket.price.cents()),
            Value::Integer(i64::from(ticket.version)),
        ],
    )?;
    Ok(!result.rows.is_empty())
}

/// Applies a ticket's version v on top of v-1; `false` when the copy is not at v-1.
pub fn update_ticket(conn: &Connection, ticket: &TicketCopy) -> Result<bool, ApiError> {
    let result = conn.execute(
        "UPDATE tickets SET title = ?2, price_cents = ?3, version = ?4
         WHERE id = ?1 AND version = ?4 - 1 RETURNING id",
        &[
            Value::Text(ticket.id.clone()),
            Value::Text(ticket.title.clone()),
            Value::Integer(ticket.price.cents()),
            Value::Integer(i64::from(ticket.version)),
        ],
    )?;
    Ok(!result.rows.is_empty())
}

/// Inserts the order unless its ticket is held by another order that is not cancelled
/// (then `false`): the partial unique index decides.
pub fn insert_order(conn: &Connection, order: &Order) -> Result<bool, ApiError> {
    let result = conn.execute(
        "INSERT INTO orders (id, user_id, status, expires_at, version, ticket_id)
         VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT DO NOTHING RETURNING id",
        &[
            Value::Text(order.id().to_owned()),
            Value::Text(order.user_id().to_owned()),
            Value::Text(order.status().as_str().to_owned()),
            Value::Text(order.expires_at().to_string()),
            Value::Integer(i64::from(order.version())),
            Value::Text(order.ticket().id.clone()),
        ],
    )?;
    Ok(!result.rows.is_empty())
}

const ORDER_COLUMNS: &str = "o.id, o.user_id, o.status, o.expires_at, o.version,
    t.id AS ticket_id, t.title AS ticket_title, t.price_cents AS ticket_price_cents,
    t.version AS ticket_version";

pub fn find_order(conn: &Connection, id: &str) -> Result<Option<Order>, ApiError> {
    let result = conn.execute(
        &format!(
            "SELECT {ORDER_COLUMNS} FROM orders o JOIN tickets t ON t.id = o.ticket_id
             WHERE o.id = ?"
        ),
        &[Value::Text(id.to_owned())],
    )?;
    result.rows().next().map(|row| order(&row)).transpose()
}

/// A user's orders, oldest first.
pub fn orders_of(conn: &Connection, user_id: &str) -> Result<Vec<Order>, ApiError> {
    let result = conn.execute(
        &format!(
            "SELECT {ORDER_COLUMNS} FROM orders o JOIN tickets t ON t.id = o.ticket_id
             WHERE o.user_id = ? ORDER BY o.seq"
        ),
        &[Value::Text(user_id.to_owned())],
    )?;
    result.rows().map(|row| order(&row)).collect()
}

/// Stores the order's new status and version, on top of the version before it.
pub fn update_order(conn: &Connection, order: &Order) -> Result<(), ApiError> {
    let result = conn.execute(
        "UPDATE orders SET status = ?2, version = ?3 WHERE id = ?1 AND version = ?3 - 1
         RETURNING id",
        &[
            Value::Text(order.id().to_owned()),
            Value::Text(order.status().as_str().to_owned()),
            Value::Integer(i64::from(order.version())),
        ],
    )?;
    if result.rows.is_empty() {
        return Err(anyhow::anyhow!(
            "order {} changed under version {}",
            order.id(),
            order.version()
        )
        .into());
    }
    Ok(())
}

fn order(row: &Row<'_>) -> Result<Order, ApiError> {
    let text = |column: &str| {
        row.get::<&str>(column)
            .map(str::to_owned)
            .ok_or_else(|| anyhow::anyhow!("orders.{column} is not text"))
    };
    let status = row
        .get::<&str>("status")
        .and_then(OrderStatus::parse)
        .ok_or_else(|| anyhow::anyhow!("orders.status is not a status"))?;
    let expires_at = row
        .get::<&str>("expires_at")
        .and_then(Time::parse)
        .ok_or_else(|| anyhow::anyhow!("orders.expires_at is not a timestamp"))?;
    Ok(Order::stored(
        text("id")?,
        text("user_id")?,
        status,
        expires_at,
        version(row, "version")?,
        ticket(row, "ticket_")?,
    ))
}

/// The ticket's columns, named with `prefix` (`ticket_` when joined to an order).
fn ticket(row: &Row<'_>, prefix: &str) -> Result<TicketCopy, ApiError> {
    let column = |name: &str| format!("{prefix}{name}");
    let text = |name: &str| {
        row.get::<&str>(name)
            .map(str::to_owned)
            .ok_or_else(|| anyhow::anyhow!("tickets.{name} is not text"))
    };
    let price = row
        .get::<i64>(&column("price_cents"))
        .and_then(Price::from_cents)
        .ok_or_else(|| anyhow::anyhow!("tickets.price_cents is not a price"))?;
    Ok(TicketCopy {
        id: text(&column("id"))?,
        title: text(&column("title"))?,
        price,
        version: version(row, &column("version"))?,
    })
}

fn version(row: &Row<'_>, column: &str) -> Result<u32, ApiError> {
    row.get::<i64>(column)
        .and_then(|version| u32::try_from(version).ok())
        .ok_or_else(|| anyhow::anyhow!("{column} is not a version").into())
}
