//! Handler failures, on the bus's test service (crates/bus/probe): events whose
//! handler fails its first three deliveries end applied exactly once; poison events
//! (a handler that always fails) end in `events:dead` after the last delivery; the
//! healthy events around them are applied once each, undisturbed.

use std::collections::BTreeMap;

use harness::{App, Redis};
use serde_json::json;

use crate::{Logbook, Report, Size, WAIT};

const PROBE: &str = "crates/bus/probe/spin.toml";
const MAX_DELIVERIES: usize = 5;

pub fn run(size: Size, logbook: &Logbook) -> Report {
    let failing = size.pick(20, 4);
    let poison = size.pick(5, 2);
    let healthy = size.pick(50, 10);
    let app = App::builder(harness::workspace_root().join(PROBE))
        .with_redis(Redis::start())
        .variable("event_ack_wait_ms", "300")
        .variable("event_max_deliveries", &MAX_DELIVERIES.to_string())
        .start();
    for channel in ["ticket:created", "ticket:updated"] {
        app.redis().wait_for_subscribers(channel, 1);
    }
    let mut report = Report::default();

    // Interleaved, so the failures sit between healthy events on the stream.
    let mut titles = Vec::new();
    for n in 0..failing.max(poison).max(healthy) {
        if n < failing {
            titles.push(format!("fail-3-{n}"));
        }
        if n < poison {
            titles.push("poison".to_owned());
        }
        if n < healthy {
            titles.push(format!("healthy-{n}"));
        }
    }
    let published = app.post_json(
        "/publish",
        &json!({"subject": "ticket:created", "titles": titles}),
    );
    report.check(published.status == 201, || {
        format!("publishing answered {}", published.status)
    });

    let applied_count = |app: &App| {
        app.get("/applied")
            .json()
            .as_array()
            .map_or(0, |applied| applied.len())
    };
    let finished = crate::poll_until(WAIT, || {
        // A tick reclaims entries idle longer than the ack wait: the retries. (The
        // bus's own ticks come every 5 s; asking for one now keeps the run short.)
        app.post_json("/tick", &json!({}));
        applied_count(&app) >= failing + healthy
            && app.redis().stream("events:dead").len() >= poison
            && app
                .redis()
                .group_caught_up("events:ticket:created", "probe")
    });
    report.check(finished, || {
        format!(
            "not finished within {WAIT:?}: {} applied",
            applied_count(&app)
        )
    });

    let mut applied: BTreeMap<String, usize> = BTreeMap::new();
    for event in app.get("/applied").json().as_array().into_iter().flatten() {
        let title = event["title"].as_str().unwrap_or_default().to_owned();
        *applied.entry(title).or_default() += 1;
    }
    let once = |prefix: &str| {
        applied
            .iter()
            .filter(|(title, count)| title.starts_with(prefix) && **count == 1)
            .count()
    };
    let (failing_once, healthy_once) = (once("fail-3-"), once("healthy-"));
    let poison_applied = applied.get("poison").copied().unwrap_or(0);
    report.check(failing_once == failing, || {
        format!("{failing_once} of {failing} failing events applied once")
    });
    report.check(healthy_once == healthy, || {
        format!("{healthy_once} of {healthy} healthy events applied once")
    });
    report.check(poison_applied == 0, || {
        format!("a poison event applied {poison_applied} times")
    });
    report.check(applied.values().sum::<usize>() == failing + healthy, || {
        format!("{} applications in all", applied.values().sum::<usize>())
    });

    // Dead letters: the poison events, after every delivery, and nothing else.
    let dead = app.redis().stream("events:dead");
    let field = |fields: &[(String, String)], name: &str| {
        fields
            .iter()
            .find(|(field, _)| field == name)
            .map(|(_, value)| value.clone())
            .unwrap_or_default()
    };
    let dead_poison = dead
        .iter()
        .filter(|(_, fields)| {
            field(fields, "e").contains("\"title\":\"poison\"")
                && field(fields, "deliveries") == MAX_DELIVERIES.to_string()
        })
        .count();
    report.check(dead_poison == poison && dead.len() == poison, || {
        format!(
            "events:dead holds {} entries, {dead_poison} of them the {poison} poison events \
             after {MAX_DELIVERIES} deliveries",
            dead.len()
        )
    });
    // Each failing event was delivered exactly four times: three failures, one success.
    let mut connection = app.redis().connection();
    let attempts: Vec<i64> = redis::cmd("KEYS")
        .arg("probe:attempts:*")
        .query::<Vec<String>>(&mut connection)
        .unwrap_or_default()
        .iter()
        .map(|key| {
            redis::cmd("GET")
                .arg(key)
                .query::<i64>(&mut connection)
                .unwrap_or(0)
        })
        .collect();
    let four = attempts.iter().filter(|attempts| **attempts == 4).count();
    report.check(four == failing && attempts.len() == failing, || {
        format!("delivery counts of the failing events: {attempts:?}")
    });

    report.figures = format!(
        "{failing} events failing their first 3 deliveries: {failing_once} applied once \
         (on delivery 4); {poison} poison events: {dead_poison} in events:dead after \
         {MAX_DELIVERIES} deliveries, applied {poison_applied} times; {healthy} healthy \
         events around them: {healthy_once} applied once",
    );
    logbook.keep(&app);
    report
}
