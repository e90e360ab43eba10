//! expiration: orders expire on time, without cron (docs/design.md, section 5).
//! It keeps each order's `expiresAt` from `order:created`; a sweep publishes
//! `expiration:complete` for every expiry that is due and arms a Redis alarm for the
//! next one. Sweeps run on every wake: the alarm ringing, an `order:created` doorbell,
//! and the health route that Kubernetes probes.
//!
//! # How
//!
//! Spin has no timers and SpinKube's shim runs no cron trigger, so expiration is woken by
//! Redis and made reliable by its own schedule in SQLite:
//!
//! 1. `order:created` stores `{orderId, expiresAt}` in `expirations`, in the transaction
//!    of its inbox row.
//! 2. A **sweep** runs on every wake: in one transaction it marks every expiry with
//!    `expires_ms <= now` expired and publishes `expiration:complete {orderId}` for each
//!    (so racing sweeps, on two replicas or two wakes, publish each expiry once, and none
//!    before its time); then it arms the **alarm** for the earliest pending expiry: the key
//!    `expiration:alarm` with `PXAT <that time>`, set by a small Lua script only if it is
//!    not already set to ring earlier (`bus::alarm`). An expiry that falls due during
//!    the sweep is swept at once (up to 10 rounds); after that the alarm is armed a
//!    millisecond ahead, never in the past and never skipped: a sweep that leaves an
//!    expiry pending always leaves the alarm armed, since in a quiet app it is the only
//!    wake.
//! 3. Redis, with `notify-keyspace-events Ex`, publishes the key's name on
//!    `__keyevent@0__:expired` when it expires; that channel is a Redis trigger of
//!    expiration, so the alarm wakes a sweep (other keys expiring on that channel are
//!    ignored, but for the bus's tick). Wakes are the alarm, every `order:created`
//!    doorbell, the bus's tick (every 5 s), and `GET /api/expiration/health`, which
//!    sweeps, arms the bus's ticks and answers `{status, pending, published,
//!    keyspaceNotifications}`.
//!
//! What happens when things are down:
//! - **expiration was down when the alarm rang**: the notification is lost (pub/sub), the
//!   expiry stays pending in SQLite, and the next wake publishes it: the next tick, any
//!   `order:created`, or the health route, which SpinKube's probes call every few seconds.
//!   It is late by about a tick, never lost.
//! - **Redis restarted** (without persistence the alarm key is gone): the schedule is in
//!   SQLite; the first sweep after the restart re-arms the alarm.
//! - **Keyspace notifications are off**: neither the alarm nor the bus's tick rings; only
//!   `order:created` and the health route wake a sweep, and leftover events wait for the
//!   next write. The health route says `keyspaceNotifications: false` and logs, at most
//!   once an hour, how to turn them on.
//!
//! On a managed Redis, set `notify-keyspace-events` to include `Ex` in its settings (a
//! parameter group on AWS ElastiCache, a setting on Azure Cache for Redis, `CONFIG SET
//! notify-keyspace-events Ex` where `CONFIG` is allowed), and use database 0 (the channel
//! names the database). `cargo xtask up` starts its own Redis with `Ex`, and turns it on
//! in a running local one (or says how). How late an expiry is published is measured by
//! `cargo xtask bench` (docs/benchmarks.md, "The event pipeline").

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
