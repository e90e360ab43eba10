//! What tickets does on the events it listens to. Both handlers run in the transaction
//! that records the event in the inbox, and give the same end whatever order the events
//! arrive in (the two subjects are separate streams, and a retried or relayed-again
//! event comes after later ones): each remembers what it says of its order, and the
//! ticket is then held by the order that should hold it, `db::holder`.

use bus::{OrderCancelled, OrderCreated, Received, Tx, parse_timestamp};
use common::ApiError;

use crate::db;

/// `order:created`: the order is remembered with its creation time, and the ticket
/// is held by the latest order not known to be cancelled.
pub fn on_order_created(tx: &Tx, event: Received<OrderCreated>) -> Result<(), ApiError> {
    let order = &event.data;
    let created_ms = parse_timestamp(&event.occurred_at).ok_or_else(|| {
        anyhow::anyhow!(
            "order:created {}: occurredAt `{}` is not a timestamp",
            order.id,
            event.occurred_at
        )
    })?;
    db::remember_order(tx, &order.id, &order.ticket.id, Some(created_ms), false)?;
    if !settle_ticket(tx, &order.ticket.id)? {
        // Orders only knows tickets it heard of from us: retried, and dead-lettered
        // if it never appears.
        return Err(anyhow::anyhow!(
            "order {} reserves ticket {}, which does not exist here",
            order.id,
            order.ticket.id
        )
        .into());
    }
    Ok(())
}

/// `order:cancelled`: the order is remembered as cancelled, and the ticket is held by
/// the latest order not known to be cancelled (none: it is for sale again).
pub fn on_order_cancelled(tx: &Tx, event: Received<OrderCancelled>) -> Result<(), ApiError> {
    let order = &event.data;
    db::remember_order(tx, &order.id, &order.ticket.id, None, true)?;
    settle_ticket(tx, &order.ticket.id)?;
    Ok(())
}

/// Gives the ticket to its holder if another order (or none) has it: `orderId` set or
/// cleared, version + 1, `ticket:updated` published. `false` when there is no such
/// ticket here.
fn settle_ticket(tx: &Tx, ticket_id: &str) -> Result<bool, ApiError> {
    let Some(mut ticket) = db::find_ticket(tx, ticket_id)? else {
        return Ok(false);
    };
    let holder = db::holder(tx, ticket_id)?;
    if ticket.order_id == holder {
        return Ok(true);
    }
    ticket.order_id = holder;
    ticket.version += 1;
    db::update_ticket(tx, &ticket)?;
    tx.publish(ticket.updated_event())?;
    Ok(true)
}
