//! The event bus through the real host (and real Spin, where installed), a real
//! `redis-server` and real SQLite: the bus-probe app (crates/events/probe) publishes
//! ticket events over HTTP and applies them through its own listener.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use harness::{App, Redis, Runtime, eventually};
use serde_json::{Value, json};

const PROBE: &str = "crates/events/probe/spin.toml";
/// Long enough for a test to wait out, short enough to wait out often.
const ACK_WAIT_MS: u64 = 400;
const WAIT: Duration = Duration::from_secs(20);

fn spawn_with(runtime: Runtime, redis: Redis, max_deliveries: u64) -> App {
    let app = App::builder(harness::workspace_root().join(PROBE))
        .runtime(runtime)
        .with_redis(redis)
        .variable("event_ack_wait_ms", &ACK_WAIT_MS.to_string())
        .variable("event_max_deliveries", &max_deliveries.to_string())
        .start();
    wait_for_listeners(&app, 1);
    app
}

/// Until `count` processes listen on both channels (doorbells rung before are missed:
/// the bus would apply those events only at its next catch-up).
fn wait_for_listeners(app: &App, count: i64) {
    for channel in ["ticket:created", "ticket:updated"] {
        app.redis().wait_for_subscribers(channel, count);
    }
}

fn spawn(runtime: Runtime) -> App {
    spawn_with(runtime, Redis::start(), 10)
}

/// Every test runs on the host, and on real Spin when it is installed.
fn on_every_runtime(test: impl Fn(Runtime)) {
    for runtime in Runtime::all() {
        eprintln!("on {}", runtime.name());
        test(runtime);
    }
}

fn publish(app: &App, subject: &str, titles: &[&str]) {
    let reply = app.post_json("/publish", &json!({ "subject": subject, "titles": titles }));
    assert_eq!(reply.status, 201, "{}", reply.text());
}

/// The titles the probe applied, in the order it applied them.
fn applied(app: &App) -> Vec<String> {
    let reply = app.get("/applied");
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply
        .json()
        .as_array()
        .expect("a list")
        .iter()
        .map(|event| event["title"].as_str().expect("a title").to_owned())
        .collect()
}

/// Waits until the probe applied `count` events, and returns their titles.
fn wait_for_applied(app: &App, count: usize) -> Vec<String> {
    eventually(&format!("{count} events applied"), WAIT, || {
        let titles = applied(app);
        (titles.len() >= count).then_some(titles)
    })
}

/// The entries of a stream: (entry id, the `e` field as JSON), and each entry's field names.
fn stream_entries(redis: &Redis, stream: &str) -> Vec<(String, Vec<String>, Value)> {
    redis
        .stream(stream)
        .into_iter()
        .map(|(id, fields)| {
            let names = fields.iter().map(|(name, _)| name.clone()).collect();
            let e = fields
                .iter()
                .find(|(name, _)| name == "e")
                .map(|(_, value)| {
                    serde_json::from_str(value).unwrap_or(Value::String(value.clone()))
                })
                .unwrap_or(Value::Null);
            (id, names, e)
        })
        .collect()
}

fn titles_on_stream(redis: &Redis, stream: &str) -> Vec<String> {
    stream_entries(redis, stream)
        .into_iter()
        .map(|(_, _, e)| e["data"]["title"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn pending_count(redis: &Redis, stream: &str) -> i64 {
    let mut conn = redis.connection();
    let summary: redis::Value = redis::cmd("XPENDING")
        .arg(stream)
        .arg("probe")
        .query(&mut conn)
        .expect("XPENDING");
    match summary {
        redis::Value::Array(items) => match items.first() {
            Some(redis::Value::Int(count)) => *count,
            _ => panic!("unexpected XPENDING reply"),
        },
        other => panic!("unexpected XPENDING reply {other:?}"),
    }
}

/// An envelope as another service would publish it.
fn foreign_envelope(id: &str, title: &str, version: u32) -> String {
    json!({
        "id": id,
        "subject": "ticket:created",
        "occurredAt": "2026-12-01T12:00:00.000Z",
        "source": "tickets",
        "data": {"id": format!("t-{id}"), "version": version, "title": title, "price": 12.5, "userId": "u9"}
    })
    .to_string()
}

fn xadd(redis: &Redis, stream: &str, e: &str) {
    redis.add_event(stream, e);
}

#[test]
fn a_published_event_is_one_stream_entry_and_a_doorbell_with_the_envelope() {
    on_every_runtime(|runtime| {
        let app = spawn(runtime);
        let mut subscriber = app.redis().connection();
        let mut pubsub = subscriber.as_pubsub();
        pubsub.subscribe("ticket:created").expect("SUBSCRIBE");
        pubsub.set_read_timeout(Some(WAIT)).expect("a read timeout");

        publish(&app, "ticket:created", &["concert"]);

        let doorbell: String = pubsub
            .get_message()
            .expect("the doorbell")
            .get_payload()
            .expect("a text payload");
        let entries = stream_entries(app.redis(), "events:ticket:created");
        assert_eq!(entries.len(), 1);
        let (_, fields, envelope) = &entries[0];
        assert_eq!(fields, &["e"], "one field per entry");
        assert_eq!(&serde_json::from_str::<Value>(&doorbell).unwrap(), envelope);
        assert_eq!(envelope["subject"], "ticket:created");
        assert_eq!(envelope["source"], "probe");
        assert_eq!(
            envelope["data"],
            json!({"id": "t0", "version": 0, "title": "concert", "price": 10.0, "userId": "u1"})
        );
        let id = envelope["id"].as_str().expect("an id");
        assert_eq!(id.len(), 32, "{id}");
        let occurred_at = envelope["occurredAt"].as_str().expect("occurredAt");
        assert!(
            occurred_at.len() == 24 && occurred_at.ends_with('Z') && occurred_at.contains('T'),
            "{occurred_at}"
        );

        wait_for_applied(&app, 1);
        let applied = app.get("/applied").json();
        assert_eq!(applied[0]["eventId"], *id);
        assert_eq!(applied[0]["source"], "probe");
        assert_eq!(app.get("/outbox").json()["unrelayed"], 0);
    });
}

#[test]
fn a_failed_transaction_publishes_nothing() {
    on_every_runtime(|runtime| {
        let app = spawn(runtime);
        let reply = app.post_json(
            "/publish",
            &json!({"subject": "ticket:created", "titles": ["lost-1", "lost-2"], "fail": true}),
        );
        assert_eq!(reply.status, 500, "{}", reply.text());
        assert_eq!(app.get("/outbox").json()["unrelayed"], 0);

        publish(&app, "ticket:created", &["kept"]);
        assert_eq!(wait_for_applied(&app, 1), ["kept"]);
        assert_eq!(
            titles_on_stream(app.redis(), "events:ticket:created"),
            ["kept"]
        );
    });
}

#[test]
fn an_event_published_while_redis_is_down_is_relayed_after_it_returns() {
    // Host only: real Spin exits when its Redis trigger loses the connection.
    let mut app = spawn(Runtime::Host);
    publish(&app, "ticket:created", &["before"]);
    wait_for_applied(&app, 1);

    app.redis_mut().stop();
    publish(&app, "ticket:created", &["while-down"]);
    assert_eq!(app.get("/outbox").json()["unrelayed"], 1);
    app.wait_for_log("the relay failure", |line| line.contains("relay failed"));

    // A restarted Redis without persistence: the streams and the group start over.
    app.redis_mut().restart();
    let titles = eventually("the outbox to be relayed and applied", WAIT, || {
        let titles = applied(&app);
        titles.contains(&"while-down".to_owned()).then_some(titles)
    });
    assert_eq!(titles, ["before", "while-down"]);
    assert_eq!(app.get("/outbox").json()["unrelayed"], 0);
    assert_eq!(
        titles_on_stream(app.redis(), "events:ticket:created"),
        ["while-down"]
    );
}

#[test]
fn a_duplicate_delivery_is_applied_once() {
    on_every_runtime(|runtime| {
        let app = spawn(runtime);
        publish(&app, "ticket:created", &["once"]);
        wait_for_applied(&app, 1);

        // The same event again, as an at-least-once relay may add it.
        let (_, _, envelope) = stream_entries(app.redis(), "events:ticket:created").remove(0);
        xadd(app.redis(), "events:ticket:created", &envelope.to_string());
        publish(&app, "ticket:created", &["after"]);

        assert_eq!(wait_for_applied(&app, 2), ["once", "after"]);
        app.wait_for_log("the duplicate skipped", |line| {
            line.contains("a duplicate, skipped")
        });
        assert_eq!(applied(&app), ["once", "after"]);
        assert_eq!(pending_count(app.redis(), "events:ticket:created"), 0);
    });
}

#[test]
fn a_failing_handlers_event_is_redelivered_after_the_ack_wait() {
    on_every_runtime(|runtime| {
        let app = spawn(runtime);
        let published = Instant::now();
        publish(&app, "ticket:created", &["fail-2-then-fine"]);
        app.wait_for_log("the first failure", |line| {
            line.contains("failed on delivery 1 of 10")
        });
        assert!(applied(&app).is_empty());

        // Every drain before the ack wait leaves it alone; after it, it is retried.
        let titles = eventually(
            "the event to be applied on its third delivery",
            WAIT,
            || {
                let reply = app.post_json("/drain", &json!({}));
                assert_eq!(reply.status, 200, "{}", reply.text());
                let titles = applied(&app);
                (!titles.is_empty()).then_some(titles)
            },
        );
        assert!(
            published.elapsed() >= Duration::from_millis(2 * ACK_WAIT_MS),
            "applied after {:?}, before two ack waits",
            published.elapsed()
        );
        assert_eq!(titles, ["fail-2-then-fine"]);
        assert!(
            app.logs()
                .iter()
                .any(|line| line.contains("failed on delivery 2 of 10")),
            "the second delivery failed too"
        );
        assert_eq!(pending_count(app.redis(), "events:ticket:created"), 0);
    });
}

#[test]
fn a_poison_event_ends_in_events_dead() {
    on_every_runtime(|runtime| {
        let app = spawn_with(runtime, Redis::start(), 3);
        publish(&app, "ticket:created", &["poison"]);
        // Not an envelope at all: dead at once, without retries.
        xadd(app.redis(), "events:ticket:created", "{not json");
        publish(&app, "ticket:created", &["healthy"]);

        let dead = eventually("two dead letters", WAIT, || {
            app.post_json("/drain", &json!({}));
            let dead = app.redis().stream("events:dead");
            (dead.len() >= 2).then_some(dead)
        });
        let field = |fields: &[(String, String)], name: &str| -> String {
            fields
                .iter()
                .find(|(field, _)| field == name)
                .map(|(_, value)| value.clone())
                .unwrap_or_else(|| panic!("no field {name} in {fields:?}"))
        };
        let (garbage, poison) = if field(&dead[0].1, "e") == "{not json" {
            (&dead[0].1, &dead[1].1)
        } else {
            (&dead[1].1, &dead[0].1)
        };
        assert_eq!(field(garbage, "deliveries"), "1");
        assert!(field(garbage, "error").contains("not an event envelope"));
        let envelope: Value = serde_json::from_str(&field(poison, "e")).unwrap();
        assert_eq!(envelope["data"]["title"], "poison");
        assert_eq!(field(poison, "stream"), "events:ticket:created");
        assert_eq!(field(poison, "group"), "probe");
        assert_eq!(field(poison, "deliveries"), "3");
        assert!(field(poison, "error").contains("this handler always fails"));

        assert_eq!(applied(&app), ["healthy"]);
        assert_eq!(pending_count(app.redis(), "events:ticket:created"), 0);
        app.wait_for_log("the dead letter logged", |line| {
            line.contains("moved to events:dead")
        });
    });
}

#[test]
fn events_of_one_subject_are_applied_in_stream_order() {
    on_every_runtime(|runtime| {
        let app = spawn(runtime);
        // Twenty events in one transaction ring twenty doorbells at once, and four
        // clients publish at the same time: concurrent invocations, one order.
        let titles: Vec<String> = (0..20).map(|n| format!("batch-{n:02}")).collect();
        let titles: Vec<&str> = titles.iter().map(String::as_str).collect();
        publish(&app, "ticket:updated", &titles);
        std::thread::scope(|scope| {
            for client in 0..4 {
                let app = &app;
                scope.spawn(move || {
                    for n in 0..10 {
                        let title = format!("client-{client}-{n}");
                        publish(app, "ticket:updated", &[&title]);
                    }
                });
            }
        });
        let applied = wait_for_applied(&app, 60);
        assert_eq!(
            applied,
            titles_on_stream(app.redis(), "events:ticket:updated")
        );
        assert_eq!(&applied[..20], &titles[..]);
    });
}

#[test]
fn two_replicas_of_one_consumer_apply_each_event_once() {
    on_every_runtime(|runtime| {
        let app = spawn(runtime);
        let replica = app.start_replica();
        wait_for_listeners(&app, 2);
        let applied_any = |instance: &App| {
            instance
                .logs()
                .iter()
                .any(|line| line.contains("-> applied"))
        };
        // Which replica wins a doorbell is up to the scheduler: on a busy machine one
        // can drain every batch. Publish in rounds until both have applied something
        // (a few rounds at most), then check that every event was applied once.
        let mut published = 0;
        for round in 0..10 {
            std::thread::scope(|scope| {
                for (index, instance) in [&app, &replica].into_iter().enumerate() {
                    scope.spawn(move || {
                        for n in 0..25 {
                            let title = format!("round-{round}-replica-{index}-{n}");
                            publish(instance, "ticket:created", &[&title]);
                        }
                    });
                }
            });
            published += 50;
            wait_for_applied(&app, published);
            if applied_any(&app) && applied_any(&replica) {
                break;
            }
        }
        let applied = wait_for_applied(&app, published);
        let distinct: BTreeSet<&String> = applied.iter().collect();
        assert_eq!(applied.len(), published, "each event once: {applied:?}");
        assert_eq!(distinct.len(), published, "each event once: {applied:?}");
        assert_eq!(
            applied,
            titles_on_stream(app.redis(), "events:ticket:created")
        );
        for (name, instance) in [("first", &app), ("second", &replica)] {
            assert!(
                applied_any(instance),
                "the {name} replica applied nothing in {published} events"
            );
        }
        drop(replica);
    });
}

#[test]
fn a_new_consumer_group_replays_history() {
    on_every_runtime(|runtime| {
        // Events another service published before the probe ever ran.
        let redis = Redis::start();
        for (n, title) in ["first", "second", "third"].into_iter().enumerate() {
            xadd(
                &redis,
                "events:ticket:created",
                &foreign_envelope(&format!("old-{n}"), title, 0),
            );
        }
        let app = spawn_with(runtime, redis, 10);
        // No doorbell rings: the first HTTP invocation catches up.
        assert_eq!(wait_for_applied(&app, 3), ["first", "second", "third"]);
        assert_eq!(app.get("/applied").json()[0]["source"], "tickets");
    });
}

#[test]
fn a_backlog_is_applied_when_no_doorbell_rings() {
    on_every_runtime(|runtime| {
        let app = spawn(runtime);
        publish(&app, "ticket:created", &["rung"]);
        wait_for_applied(&app, 1);
        // On the stream without a doorbell (as if the listener was down when it rang).
        xadd(
            app.redis(),
            "events:ticket:created",
            &foreign_envelope("silent", "silent", 1),
        );
        // HTTP invocations catch up at most every 5 s: keep asking.
        let titles = eventually("the backlog applied by an HTTP invocation", WAIT, || {
            let titles = applied(&app);
            (titles.len() == 2).then_some(titles)
        });
        assert_eq!(titles, ["rung", "silent"]);
    });
}
