//! payments: charge an order through the payment provider exactly once (API.md,
//! "payments"); keeps a replica of orders from `order:*` events, and refunds the charge
//! of a paid order that was cancelled anyway.

mod api;
mod charges;
mod db;
mod domain;
mod events;
mod provider;
mod refunds;

use bus::{Listener, Wake};
use spin_sdk::http::{IncomingRequest, Response, Router};

// The exports only exist in the wasm build: their symbol names cannot be linked
// natively, where unit tests run.
#[cfg_attr(target_arch = "wasm32", spin_sdk::http_component)]
pub async fn handle(req: IncomingRequest) -> Response {
    common::serve(req, &router()).await
}

/// Doorbells of `order:*`, and the bus's tick: each settles the charges whose answer
/// was lost, then the refunds that are due (a charge for a cancelled order among them).
#[cfg_attr(target_arch = "wasm32", spin_sdk::redis_component)]
pub fn on_message(payload: bytes::Bytes) -> anyhow::Result<()> {
    if listener().on_message(&payload)? != Wake::Other {
        charges::settle_logged();
        refunds::settle_logged();
    }
    Ok(())
}

fn router() -> Router {
    let mut router = Router::new();
    router.post("/api/payments", api::create);
    router.get("/api/payments/config", api::config);
    router.any("/*", common::not_found);
    router
}

fn listener() -> Listener {
    db::BUS
        .listener()
        .on(crate::events::on_order_created)
        .on(crate::events::on_order_cancelled)
}
