//! What expiration does on the events it listens to.

use bus::{OrderCreated, Received, Tx};
use common::ApiError;

use crate::db;

/// `order:created`: schedules the order's expiry at its `expiresAt`, in the order's
/// trace (which its `expiration:complete` carries on).
pub fn on_order_created(tx: &Tx, event: Received<OrderCreated>) -> Result<(), ApiError> {
    let order = &event.data;
    let expires_ms = bus::expires_ms(order)?;
    db::schedule(tx, &order.id, expires_ms, event.trace.as_ref())
}
