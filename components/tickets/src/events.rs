//! What tickets does on the events it listens to. Both handlers run in the transaction
//! that records the event in the inbox, and work whatever order the two subjects'
//! events arrive in: a cancellation applied before its order's creation wins.

use ::events::{OrderCancelled, OrderCreated, Received, Tx};
use common::ApiError;

use crate::db;

/// `order:created`: the ticket is reserved by the order (`orderId` set, version + 1,
/// `ticket:updated` published), unless that order was already cancelled.
pub fn on_order_created(tx: &Tx, event: Received<OrderCreated>) -> Result<(), ApiError> {
    let order = &event.data;
    if db::order_seen(tx, &order.id)? == Some(true) {
        return Ok(());
    }
    db::remember_order(tx, &order.id, &order.ticket.id, false)?;
    let Some(mut ticket) = db::find_ticket(tx, &order.ticket.id)? else {
        // Orders only knows tickets it heard of from us: retried, and dead-lettered
        // if it never appears.
        return Err(anyhow::anyhow!(
            "order {} reserves ticket {}, which does not exist here",
            order.id,
            order.ticket.id
        )
        .into());
    };
    if ticket.order_id.as_deref() == Some(order.id.as_str()) {
        return Ok(());
    }
    ticket.order_id = Some(order.id.clone());
    ticket.version += 1;
    db::update_ticket(tx, &ticket)?;
    tx.publish(ticket.updated_event())
}

/// `order:cancelled`: the ticket is released (`orderId` cleared, version + 1,
/// `ticket:updated` published) if this order holds it.
pub fn on_order_cancelled(tx: &Tx, event: Received<OrderCancelled>) -> Result<(), ApiError> {
    let order = &event.data;
    db::remember_order(tx, &order.id, &order.ticket.id, true)?;
    let Some(mut ticket) = db::find_ticket(tx, &order.ticket.id)? else {
        return Ok(());
    };
    if ticket.order_id.as_deref() != Some(order.id.as_str()) {
        return Ok(());
    }
    ticket.order_id = None;
    ticket.version += 1;
    db::update_ticket(tx, &ticket)?;
    tx.publish(ticket.updated_event())
}
