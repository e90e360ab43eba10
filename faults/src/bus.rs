//! The event bus seen from Redis: the envelopes on a stream, and waiting until every
//! service has applied everything published so far.

use std::time::Duration;

use harness::{App, Redis};
use serde_json::Value;

/// Who consumes each subject (API.md, Events).
pub const CONSUMERS: &[(&str, &[&str])] = &[
    ("ticket:created", &["orders"]),
    ("ticket:updated", &["orders"]),
    ("order:created", &["tickets", "payments", "expiration"]),
    ("order:cancelled", &["tickets", "payments"]),
    ("expiration:complete", &["orders"]),
    ("payment:created", &["orders"]),
];

/// Every envelope on `events:<subject>`, oldest first (entries that are not JSON are
/// left out: the bus dead-letters those).
pub fn envelopes(redis: &Redis, subject: &str) -> Vec<Value> {
    redis
        .stream(&format!("events:{subject}"))
        .into_iter()
        .filter_map(|(_, fields)| {
            fields
                .into_iter()
                .find(|(name, _)| name == "e")
                .and_then(|(_, e)| serde_json::from_str(&e).ok())
        })
        .collect()
}

/// The services' consumer groups that have not applied every entry of their streams.
pub fn behind(redis: &Redis) -> Vec<String> {
    CONSUMERS
        .iter()
        .flat_map(|(subject, groups)| {
            groups.iter().filter_map(move |group| {
                let stream = format!("events:{subject}");
                (!redis.group_caught_up(&stream, group)).then(|| format!("{group} on {stream}"))
            })
        })
        .collect()
}

/// Waits until every service has applied every event published so far; whether they
/// did within `within`. What a lost doorbell left behind is applied by the bus's next
/// tick (every 5 s); each poll also calls expiration's health route, as Kubernetes'
/// probe does, which sweeps and arms the ticks.
/// `redis` is the app's (a process started by `start_replica` does not hold it).
pub fn settle(app: &App, redis: &Redis, within: Duration) -> bool {
    crate::poll_until(within, || {
        app.get("/api/expiration/health");
        behind(redis).is_empty()
    })
}
