//! The event bus seen from Redis: the envelopes on a stream, waiting until every
//! service has applied everything published so far, and the dead letters.

use std::collections::BTreeSet;
use std::time::Duration;

use harness::{App, Redis};
use serde_json::Value;

use crate::Report;

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

/// The dead letters a scenario starts with. A group that gave up on an event acks it
/// (after moving it to `events:dead`), so [`behind`] and [`settle`] count it as caught
/// up: every scenario but *handler failures* checks that `events:dead` gained nothing.
pub struct DeadLetters {
    before: BTreeSet<String>,
}

impl DeadLetters {
    pub fn watch(redis: &Redis) -> DeadLetters {
        DeadLetters {
            before: redis.dead_letters().into_iter().map(|(id, _)| id).collect(),
        }
    }

    /// How many events went to `events:dead` since [`DeadLetters::watch`]; a failure
    /// of `report` (naming the first: its group, stream and error) unless none.
    pub fn check(&self, redis: &Redis, report: &mut Report) -> usize {
        let gained: Vec<Vec<(String, String)>> = redis
            .dead_letters()
            .into_iter()
            .filter(|(id, _)| !self.before.contains(id))
            .map(|(_, fields)| fields)
            .collect();
        report.check(gained.is_empty(), || {
            let field = |name: &str| {
                gained[0]
                    .iter()
                    .find(|(field, _)| field == name)
                    .map_or("?", |(_, value)| value.as_str())
                    .to_owned()
            };
            format!(
                "{} events dead-lettered (events:dead), first: group {} on {} after {} \
                 deliveries: {}",
                gained.len(),
                field("group"),
                field("stream"),
                field("deliveries"),
                field("error")
            )
        });
        gained.len()
    }
}
