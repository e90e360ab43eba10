//! Every SQL statement of tickets, and its schema.

use bus::Bus;
use common::ApiError;
use common::db::Migrations;
use spin_sdk::sqlite::{Connection, Row, Value};

use crate::domain::{Price, Ticket};

pub const DATABASE: &str = "tickets";

pub const MIGRATIONS: Migrations = &[
    // 1: the bus's outbox and inbox.
    bus::TABLES,
    // 2: tickets, and the orders tickets has heard of (for events that arrive out of
    // order: a cancellation applied before its creation must win).
    &[
        "CREATE TABLE tickets (
            seq INTEGER PRIMARY KEY,
            id TEXT NOT NULL UNIQUE,
            title TEXT NOT NULL,
            price_cents INTEGER NOT NULL CHECK (price_cents > 0),
            user_id TEXT NOT NULL,
            version INTEGER NOT NULL,
            order_id TEXT
        ) STRICT",
        // The list of tickets for sale, in the order they were listed, without a scan
        // of the reserved ones.
        "CREATE INDEX tickets_for_sale ON tickets (seq) WHERE order_id IS NULL",
        "CREATE TABLE orders_seen (
            order_id TEXT PRIMARY KEY,
            ticket_id TEXT NOT NULL,
            is_cancelled INTEGER NOT NULL
        ) STRICT, WITHOUT ROWID",
    ],
    // 3: outbox rows claimed by one relay at a time, with their relay numbers.
    bus::RELAY_CLAIMS,
    // 4: when each order was created (its `order:created`'s `occurredAt`, unknown until
    // that arrives): of the orders of a ticket not known to be cancelled, the latest
    // holds it.
    &[
        "ALTER TABLE orders_seen ADD COLUMN created_ms INTEGER",
        "CREATE INDEX orders_seen_live ON orders_seen (ticket_id, created_ms)
            WHERE is_cancelled = 0",
    ],
];

/// tickets on the event bus: its events' source, its consumer group, its database.
pub const BUS: Bus = Bus {
    service: "tickets",
    database: DATABASE,
    migrations: MIGRATIONS,
};

pub fn open() -> Result<Connection, ApiError> {
    BUS.open()
}

const COLUMNS: &str = "id, title, price_cents, user_id, version, order_id";

pub fn insert_ticket(conn: &Connection, ticket: &Ticket) -> Result<(), ApiError> {
    conn.execute(
        "INSERT INTO tickets (id, title, price_cents, user_id, version, order_id)
         VALUES (?, ?, ?, ?, ?, ?)",
        &values(ticket),
    )?;
    Ok(())
}

pub fn find_ticket(conn: &Connection, id: &str) -> Result<Option<Ticket>, ApiError> {
    let result = conn.execute(
        &format!("SELECT {COLUMNS} FROM tickets WHERE id = ?"),
        &[Value::Text(id.to_owned())],
    )?;
    result.rows().next().map(ticket).transpose()
}

/// Tickets not reserved, oldest listing first, as the list's JSON body: an array of
/// tickets exactly as `Ticket`'s `Serialize` writes them (`{id, title, price, userId,
/// version}`, no `orderId` since none is reserved; whole-dollar prices as integers),
/// byte for byte, which the tickets API tests check against each ticket's own page.
///
/// SQLite writes the JSON and the guest passes it on as one string. The rows would
/// otherwise cross into the guest's memory one value at a time and be turned into
/// tickets and then JSON there: several times the pages written, and the runtime
/// resets every page an instance wrote when its slot is reused, for later requests
/// too (docs/performance.md). `json_group_array(… ORDER BY …)` needs SQLite 3.44 or
/// later; Spin bundles a later one.
pub fn tickets_for_sale_json(conn: &Connection) -> Result<String, ApiError> {
    let result = conn.execute(
        "SELECT json_group_array(json_object(
             'id', id,
             'title', title,
             'price', CASE WHEN price_cents % 100 = 0 THEN price_cents / 100
                           ELSE price_cents / 100.0 END,
             'userId', user_id,
             'version', version
         ) ORDER BY seq)
         FROM tickets WHERE order_id IS NULL",
        &[],
    )?;
    let json = result
        .rows
        .into_iter()
        .next()
        .and_then(|row| row.values.into_iter().next());
    match json {
        Some(Value::Text(json)) => Ok(json),
        _ => Err(anyhow::anyhow!("the list of tickets for sale is not text").into()),
    }
}

/// Stores the ticket's new state, on top of the version before it: a concurrent change
/// in between is an error, never a lost update.
pub fn update_ticket(conn: &Connection, ticket: &Ticket) -> Result<(), ApiError> {
    let mut params = values(ticket);
    params.push(Value::Integer(i64::from(ticket.version()) - 1));
    let result = conn.execute(
        "UPDATE tickets SET title = ?2, price_cents = ?3, user_id = ?4, version = ?5,
             order_id = ?6
         WHERE id = ?1 AND version = ?7
         RETURNING id",
        &params,
    )?;
    if result.rows.is_empty() {
        return Err(anyhow::anyhow!(
            "ticket {} changed under version {}",
            ticket.id(),
            ticket.version()
        )
        .into());
    }
    Ok(())
}

/// Remembers an order of a ticket: its creation time once `order:created` says it
/// (`created_ms`), and that it was cancelled, which is never undone.
pub fn remember_order(
    conn: &Connection,
    order_id: &str,
    ticket_id: &str,
    created_ms: Option<i64>,
    is_cancelled: bool,
) -> Result<(), ApiError> {
    conn.execute(
        "INSERT INTO orders_seen (order_id, ticket_id, created_ms, is_cancelled)
         VALUES (?, ?, ?, ?)
         ON CONFLICT (order_id) DO UPDATE SET
             created_ms = coalesce(excluded.created_ms, created_ms),
             is_cancelled = max(is_cancelled, excluded.is_cancelled)",
        &[
            Value::Text(order_id.to_owned()),
            Value::Text(ticket_id.to_owned()),
            created_ms.map_or(Value::Null, Value::Integer),
            Value::Integer(i64::from(is_cancelled)),
        ],
    )?;
    Ok(())
}

/// The order that holds the ticket: of its orders not known to be cancelled, the one
/// created last. Orders never has two live orders of a ticket, and creates a new one
/// only after the one before was cancelled: an older order not yet known to be
/// cancelled is one whose `order:cancelled` is still on its way.
pub fn holder(conn: &Connection, ticket_id: &str) -> Result<Option<String>, ApiError> {
    let result = conn.execute(
        "SELECT order_id FROM orders_seen WHERE ticket_id = ? AND is_cancelled = 0
         ORDER BY created_ms DESC LIMIT 1",
        &[Value::Text(ticket_id.to_owned())],
    )?;
    Ok(result
        .rows()
        .next()
        .and_then(|row| row.get::<&str>("order_id").map(str::to_owned)))
}

fn values(ticket: &Ticket) -> Vec<Value> {
    vec![
        Value::Text(ticket.id().to_owned()),
        Value::Text(ticket.title().to_owned()),
        Value::Integer(ticket.price().cents()),
        Value::Text(ticket.user_id().to_owned()),
        Value::Integer(i64::from(ticket.version())),
        ticket
            .order_id()
            .map_or(Value::Null, |order_id| Value::Text(order_id.to_owned())),
    ]
}

fn ticket(row: Row<'_>) -> Result<Ticket, ApiError> {
    let text = |column: &str| {
        row.get::<&str>(column)
            .map(str::to_owned)
            .ok_or_else(|| anyhow::anyhow!("tickets.{column} is not text"))
    };
    let price = row
        .get::<i64>("price_cents")
        .and_then(Price::from_cents)
        .ok_or_else(|| anyhow::anyhow!("tickets.price_cents is not a price"))?;
    let version = row
        .get::<i64>("version")
        .and_then(|version| u32::try_from(version).ok())
        .ok_or_else(|| anyhow::anyhow!("tickets.version is not a version"))?;
    Ok(Ticket::stored(
        text("id")?,
        text("title")?,
        price,
        text("user_id")?,
        version,
        row.get::<&str>("order_id").map(str::to_owned),
    ))
}
