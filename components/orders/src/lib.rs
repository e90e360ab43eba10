//! orders: reserve a ticket for the payment window, list, show and cancel orders
//! (API.md, "orders"); keeps a replica of tickets from `ticket:*` events, and
//! completes or expires orders on `payment:created` / `expiration:complete`.

mod api;
mod db;
mod domain;
mod events;

use bus::Listener;
use spin_sdk::http::{IncomingRequest, Response, Router};

// The exports only exist in the wasm build: their symbol names cannot be linked
// natively, where unit tests run.
#[cfg_attr(target_arch = "wasm32", spin_sdk::http_component)]
pub async fn handle(req: IncomingRequest) -> Response {
    common::serve(req, &router()).await
}

#[cfg_attr(target_arch = "wasm32", spin_sdk::redis_component)]
pub fn on_message(payload: bytes::Bytes) -> anyhow::Result<()> {
    listener().on_message(&payload).map(drop)
}

fn router() -> Router {
    let mut router = Router::new();
    router.post("/api/orders", api::create);
    router.get("/api/orders", api::list);
    router.get("/api/orders/:id", api::show);
    router.delete("/api/orders/:id", api::cancel);
    router.any("/*", common::not_found);
    router
}

fn listener() -> Listener {
    db::BUS
        .listener()
        .on(crate::events::on_ticket_created)
        .on(crate::events::on_ticket_updated)
        .on(crate::events::on_expiration_complete)
        .on(crate::events::on_payment_created)
}
