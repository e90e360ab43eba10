//! The event pipeline: from sending `POST /api/orders` to the ticket showing the
//! order's id in the tickets database (orders commits, relays `order:created`, the
//! doorbell wakes tickets' listener, which applies it in its own transaction).

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use harness::{App, Client};
use rusqlite::OptionalExtension;
use serde_json::json;

use crate::market;

/// Orders one ticket at a time (so each figure is one order's path, not a queue's),
/// each on a ticket orders already knows; the sorted durations.
pub fn measure(app: &App, buyer: &Client, tickets: &[String]) -> Result<Vec<Duration>> {
    let db = market::read_only(&app.sqlite_path("tickets"))?;
    let mut durations = Vec::with_capacity(tickets.len());
    for ticket in tickets {
        let sent = Instant::now();
        let reply = buyer.post_json("/api/orders", &json!({"ticketId": ticket}));
        if reply.status != 201 {
            bail!("ordering answered {}: {}", reply.status, reply.text());
        }
        let order = reply.json()["id"]
            .as_str()
            .context("an order id")?
            .to_owned();
        let deadline = sent + Duration::from_secs(10);
        loop {
            let reserved: Option<Option<String>> = db
                .query_row(
                    "SELECT order_id FROM tickets WHERE id = ?",
                    [ticket],
                    |row| row.get(0),
                )
                .optional()?;
            if reserved.flatten().as_deref() == Some(order.as_str()) {
                durations.push(sent.elapsed());
                break;
            }
            if Instant::now() > deadline {
                bail!("ticket {ticket} did not show order {order} within 10 s");
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    durations.sort_unstable();
    Ok(durations)
}
