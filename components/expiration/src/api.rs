//! The health route: Kubernetes probes it, and each call sweeps, so an expiry whose
//! alarm was missed (service or Redis down when it rang) is published within a probe
//! period; it also arms the bus's tick, which a Redis that lost its keys forgets.

use bus::{alarm, tick};
use common::{ApiError, json_response, respond};
use serde_json::json;
use spin_sdk::http::{Params, Request, Response};

use crate::sweep;

/// How often the warning about keyspace notifications may be logged.
const WARN_EVERY_MS: u64 = 60 * 60 * 1000;

/// `GET /api/expiration/health`: sweeps, arms the bus's tick; 200 `{status, pending, published,
/// keyspaceNotifications}` (the last `null` when Redis does not say).
pub fn health(_req: Request, _params: Params) -> Response {
    respond(try_health())
}

fn try_health() -> Result<Response, ApiError> {
    let swept = sweep::run()?;
    tick::arm()?;
    let notifications = alarm::expiry_notifications_on()?;
    if notifications == Some(false)
        && alarm::once_per("expiration:warned", WARN_EVERY_MS).unwrap_or(true)
    {
        common::log!(
            "warning: Redis does not publish expired keys, so expiries are only published \
             when this route is called, and the event bus's tick does not run (leftover \
             events wait for the next write). Turn it on: `redis-cli CONFIG SET \
             notify-keyspace-events Ex` (or `notify-keyspace-events Ex` in redis.conf; on a \
             managed Redis, its parameter group or settings)"
        );
    }
    Ok(json_response(
        200,
        &json!({
            "status": "ok",
            "pending": swept.pending,
            "published": swept.published,
            "keyspaceNotifications": notifications,
        }),
    ))
}
