//! What payments does on the events it listens to: keep its copy of orders (in version
//! order), and mark a paid order's charge due back when the order is cancelled.

use bus::{OrderCancelled, OrderCreated, Received, Tx};
use common::ApiError;

use crate::db;
use crate::domain::OrderCopy;

/// `order:created`: the order joins the copy (once).
pub fn on_order_created(tx: &Tx, event: Received<OrderCreated>) -> Result<(), ApiError> {
    let order = &event.data;
    let expires_ms = bus::expires_ms(order)?;
    db::insert_order(
        tx,
        &OrderCopy {
            id: order.id.clone(),
            user_id: order.user_id.clone(),
            price: order.ticket.price,
            status: order.status,
            expires_ms,
            version: order.version,
        },
    )?;
    Ok(())
}

/// `order:cancelled` version v: applied only on top of v-1 (an older version is one
/// already applied; an order not heard of yet waits: the event fails and is delivered
/// again). A charge the order had is then due back; it is refunded after the commit.
pub fn on_order_cancelled(tx: &Tx, event: Received<OrderCancelled>) -> Result<(), ApiError> {
    let cancelled = &event.data;
    if !db::cancel_order(tx, &cancelled.id, cancelled.version)? {
        let held = db::find_order(tx, &cancelled.id)?.map(|held| held.version);
        return bus::not_on_top("order", &cancelled.id, cancelled.version, held);
    }
    if db::refund_due(tx, &cancelled.id, common::clock::now_ms())? {
        common::log!(
            "payments: order {} was cancelled after it was paid: its charge is due back",
            cancelled.id
        );
    }
    Ok(())
}
