//! What expiration does on the events it listens to.

use ::events::{OrderCreated, Received, Tx};
use common::ApiError;

use crate::db;

/// `order:created`: schedules the order's expiry at its `expiresAt`.
pub fn on_order_created(tx: &Tx, event: Received<OrderCreated>) -> Result<(), ApiError> {
    let order = &event.data;
    let expires = humantime::parse_rfc3339(&order.expires_at).map_err(|err| {
        anyhow::anyhow!(
            "order {}: expiresAt `{}`: {err}",
            order.id,
            order.expires_at
        )
    })?;
    let expires_ms = expires
        .duration_since(std::time::UNIX_EPOCH)
        .map(|since| i64::try_from(since.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    db::schedule(tx, &order.id, expires_ms)
}
