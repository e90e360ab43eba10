//! expiration: orders expire on time, without cron (ARCHITECTURE.md, "Expiry without
//! cron").
//! It keeps each order's `expiresAt` from `order:created`; a sweep publishes
//! `expiration:complete` for every expiry that is due and arms a Redis alarm for the
//! next one. Sweeps run on every wake: the alarm ringing, an `order:created` doorbell,
//! and the health route that Kubernetes probes.

mod api;
mod db;
mod events;
mod sweep;

use bus::{Listener, Wake};
use spin_sdk::http::{IncomingRequest, Response, Router};

// The exports only exist in the wasm build: their symbol names cannot be linked
// natively, where unit tests run.
#[cfg_attr(target_arch = "wasm32", spin_sdk::http_component)]
pub async fn handle(req: IncomingRequest) -> Response {
    common::serve(req, &router()).await
}

/// Two channels end here: `order:created` (an envelope) and `__keyevent@0__:expired`
/// (the name of any key that expired: the alarm, and the bus's tick, concern us).
#[cfg_attr(target_arch = "wasm32", spin_sdk::redis_component)]
pub fn on_message(payload: bytes::Bytes) -> anyhow::Result<()> {
    if sweep::ALARM.is_ringing(&payload) || listener().on_message(&payload)? != Wake::Other {
        return sweep::run_logged();
    }
    Ok(())
}

fn router() -> Router {
    let mut router = Router::new();
    router.get("/api/expiration/health", api::health);
    router.any("/*", common::not_found);
    router
}

fn listener() -> Listener {
    db::BUS.listener().on(crate::events::on_order_created)
}
