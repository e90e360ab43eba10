//! tickets: list, create, show and edit tickets (API.md, "tickets"); reserved and
//! released by `order:created` / `order:cancelled`.

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
    router.post("/api/tickets", api::create);
    router.get("/api/tickets", api::list);
    router.get("/api/tickets/:id", api::show);
    router.put("/api/tickets/:id", api::update);
    router.any("/*", common::not_found);
    router
}

fn listener() -> Listener {
    db::BUS
        .listener()
        .on(crate::events::on_order_created)
        .on(crate::events::on_order_cancelled)
}
