//! What orders does on the events it listens to: keep its copy of tickets (in version
//! order), and expire or complete orders.

use bus::{ExpirationComplete, PaymentCreated, Received, TicketCreated, TicketUpdated, Tx};
use common::ApiError;

use crate::db;
use crate::domain::TicketCopy;

/// `ticket:created`: the ticket joins the copy (once).
pub fn on_ticket_created(tx: &Tx, event: Received<TicketCreated>) -> Result<(), ApiError> {
    let ticket = &event.data;
    db::insert_ticket(
        tx,
        &TicketCopy {
            id: ticket.id.clone(),
            title: ticket.title.clone(),
            price: ticket.price,
            version: ticket.version,
        },
    )?;
    Ok(())
}

/// `ticket:updated` version v: applied only on top of v-1. An older version is one
/// already applied; a newer one waits (the event fails and is delivered again) until
/// its predecessors have arrived.
pub fn on_ticket_updated(tx: &Tx, event: Received<TicketUpdated>) -> Result<(), ApiError> {
    let ticket = &event.data;
    let copy = TicketCopy {
        id: ticket.id.clone(),
        title: ticket.title.clone(),
        price: ticket.price,
        version: ticket.version,
    };
    if db::update_ticket(tx, &copy)? {
        return Ok(());
    }
    let held = db::find_ticket(tx, &ticket.id)?.map(|held| held.version);
    bus::not_on_top("ticket", &ticket.id, ticket.version, held)
}

/// `expiration:complete`: the order is cancelled (and `order:cancelled` published)
/// unless it is complete or cancelled already.
pub fn on_expiration_complete(
    tx: &Tx,
    event: Received<ExpirationComplete>,
) -> Result<(), ApiError> {
    let Some(mut order) = db::find_order(tx, &event.data.order_id)? else {
        return Err(anyhow::anyhow!("expiration of unknown order {}", event.data.order_id).into());
    };
    if order.cancel().is_err() {
        return Ok(()); // paid in time, or cancelled by the buyer
    }
    db::update_order(tx, &order)?;
    tx.publish(order.cancelled_event())
}

/// `payment:created`: the order is complete, unless it was cancelled meanwhile (then
/// payments refunds the charge).
pub fn on_payment_created(tx: &Tx, event: Received<PaymentCreated>) -> Result<(), ApiError> {
    let Some(mut order) = db::find_order(tx, &event.data.order_id)? else {
        return Err(anyhow::anyhow!("payment for unknown order {}", event.data.order_id).into());
    };
    if order.complete().is_err() {
        return Ok(());
    }
    db::update_order(tx, &order)
}
