//! What tickets does on the events it listens to. Both handlers run in the transaction
//! that records the event in the inbox, and give the same end whatever order the events
//! arrive in (the two subjects are separate streams, and a retried or relayed-again
//! event comes after later ones): each remembers what it says of its order, and the
//! ticket is then held by the order that should hold it, `db::holder`.

use bus::{OrderCancelled, OrderCreated, Received, Tx};
use common::ApiError;
use common::clock::Time;

use crate::db;
use crate::domain::Ticket;

/// `order:created`: the order is remembered with its creation time, and the ticket
/// is held by the latest order not known to be cancelled.
pub fn on_order_created(tx: &Tx, event: Received<OrderCreated>) -> Result<(), ApiError> {
    let order = &event.data;
    let created_ms = Time::parse(&event.occurred_at).map(Time::as_ms);
    let created_ms = created_ms.ok_or_else(|| {
        anyhow::anyhow!(
            "order:created {}: occurredAt `{}` is not a timestamp",
            order.id,
            event.occurred_at
        )
    })?;
    db::remember_order(tx, &order.id, &order.ticket.id, Some(created_ms), false)?;
    let Some(ticket) = db::find_ticket(tx, &order.ticket.id)? else {
        // Orders only knows tickets it heard of from us: retried, and dead-lettered
        // if it never appears.
        return Err(anyhow::anyhow!(
            "order {} reserves ticket {}, which does not exist here",
            order.id,
            order.ticket.id
        )
        .into());
    };
    settle_ticket(tx, ticket)
}

/// `order:cancelled`: the order is remembered as cancelled, and the ticket is held by
/// the latest order not known to be cancelled (none: it is for sale again).
pub fn on_order_cancelled(tx: &Tx, event: Received<OrderCancelled>) -> Result<(), ApiError> {
    let order = &event.data;
    db::remember_order(tx, &order.id, &order.ticket.id, None, true)?;
    match db::find_ticket(tx, &order.ticket.id)? {
        Some(ticket) => settle_ticket(tx, ticket),
        None => Ok(()),
    }
}

/// Gives the ticket to its holder if another order (or none) has it: reserved, handed
/// over or released, at the next version, and `ticket:updated` published.
fn settle_ticket(tx: &Tx, mut ticket: Ticket) -> Result<(), ApiError> {
    let holder = db::holder(tx, ticket.id())?;
    if ticket.order_id() == holder.as_deref() {
        return Ok(());
    }
    let changed = match holder {
        Some(order_id) if ticket.is_reserved() => ticket.hand_over(order_id),
        Some(order_id) => ticket.reserve(order_id),
        None => ticket.release(),
    };
    changed.map_err(|refused| {
        anyhow::anyhow!("ticket {} refused its holder: {refused:?}", ticket.id())
    })?;
    db::update_ticket(tx, &ticket)?;
    tx.publish(ticket.updated_event())
}
