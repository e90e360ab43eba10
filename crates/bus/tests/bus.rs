//! The event bus through the real host (and real Spin, where installed), a real
//! `redis-server` and real SQLite: the bus-probe app (crates/bus/probe) publishes
//! ticket events over HTTP and applies them through its own listener.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use harness::{App, Redis, Runtime, eventually, on_every_runtime};
use serde_json::{Value, json};

const PROBE: &str = "crates/bus/probe/spin.toml";
/// Long enough for a test to wait out, short enough to wait out often.
const ACK_WAIT_MS: u64 = 400;
const WAIT: Duration = Duration::from_secs(20);
/// Where Redis announces expired keys, the bus's ticks among them.
const TICKS: &str = "__keyevent@0__:expired";
/// The bus's promise for a backlog no doorbell announced: a tick (every 5 s) applies it.
const TICK_PROMISE: Duration = Duration::from_secs(10);

fn spawn_with(runtime: Runtime, redis: Redis, max_deliveries: u64) -> App {
    spawn_waiting(runtime, redis, ACK_WAIT_MS, max_deliveries)
}

fn spawn_waiting(runtime: Runtime, redis: Redis, ack_wait_ms: u64, max_deliveries: u64) -> App {
    let app = App::builder(harness::workspace_root().join(PROBE))
        .runtime(runtime)
        .with_redis(redis)
        .variable("event_ack_wait_ms", &ack_wait_ms.to_string())
        .variable("event_max_deliveries", &max_deliveries.to_string())
        .start();
    wait_for_listeners(&app, 1);
    app
}

/// Until `count` processes listen on both channels and the tick's (doorbells rung before
/// are missed: the bus would apply those events only at its next tick).
fn wait_for_listeners(app: &App, count: i64) {
    for channel in ["ticket:created", "ticket:updated", TICKS] {
        app.redis().wait_for_subscribers(channel, count);
    }
}

fn spawn(runtime: Runtime) -> App {
    spawn_with(runtime, Redis::start(), 10)
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

/// The Redis server's run id (it changes at every restart).
fn run_id(redis: &Redis) -> String {
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query(&mut redis.connection())
        .expect("INFO");
    info.lines()
        .find_map(|line| line.strip_prefix("run_id:"))
        .expect("INFO server has run_id")
        .trim()
        .to_owned()
}

/// Takes the stream's lease for "someone else", a live holder on this run of Redis.
fn hold_lease(redis: &Redis, subject: &str, ttl_ms: Option<u64>) {
    let mut command = redis::cmd("SET");
    command
        .arg(format!("bus:probe:lease:{subject}"))
        .arg(format!("{}:someone-else", run_id(redis)));
    if let Some(ttl) = ttl_ms {
        command.arg("PX").arg(ttl);
    }
    let _: () = command.query(&mut redis.connection()).expect("SET");
}

fn xadd(redis: &Redis, stream: &str, e: &str) {
    redis.add_event(stream, e);
}

#[test]
fn a_published_event_is_one_stream_entry_and_a_doorbell_with_the_envelope() {
    on_every_runtime(spawn, |app| {
        let mut subscriber = app.redis().connection();
        let mut pubsub = subscriber.as_pubsub();
        pubsub.subscribe("ticket:created").expect("SUBSCRIBE");
        pubsub.set_read_timeout(Some(WAIT)).expect("a read timeout");

        publish(app, "ticket:created", &["concert"]);

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

        wait_for_applied(app, 1);
        let applied = app.get("/applied").json();
        assert_eq!(applied[0]["eventId"], *id);
        assert_eq!(applied[0]["source"], "probe");
        assert_eq!(app.get("/outbox").json()["unrelayed"], 0);
    });
}

#[test]
fn a_failed_transaction_publishes_nothing() {
    on_every_runtime(spawn, |app| {
        let reply = app.post_json(
            "/publish",
            &json!({"subject": "ticket:created", "titles": ["lost-1", "lost-2"], "fail": true}),
        );
        assert_eq!(reply.status, 500, "{}", reply.text());
        assert_eq!(app.get("/outbox").json()["unrelayed"], 0);

        publish(app, "ticket:created", &["kept"]);
        assert_eq!(wait_for_applied(app, 1), ["kept"]);
        assert_eq!(
            titles_on_stream(app.redis(), "events:ticket:created"),
            ["kept"]
        );
    });
}

#[test]
fn an_event_published_while_redis_is_down_goes_out_after_it_returns_with_no_request() {
    // Host only: real Spin exits when its Redis trigger loses the connection.
    let mut app = spawn_with(Runtime::Host, Redis::start_persistent(), 10);
    publish(&app, "ticket:created", &["before"]);
    wait_for_applied(&app, 1);

    app.redis_mut().stop();
    publish(&app, "ticket:created", &["while-down"]);
    assert_eq!(app.get("/outbox").json()["unrelayed"], 1);
    app.wait_for_log("the relay failure", |line| line.contains("relay failed"));

    // Redis comes back (from its append-only file, as deployed). Nothing is asked of
    // the app: the ticks armed before the outage wake it, it relays and applies.
    app.redis_mut().restart();
    let returned = Instant::now();
    let on_stream = eventually("the event on its stream", TICK_PROMISE, || {
        let titles = titles_on_stream(app.redis(), "events:ticket:created");
        (titles.len() == 2).then_some(titles)
    });
    assert!(
        returned.elapsed() <= TICK_PROMISE,
        "{:?}",
        returned.elapsed()
    );
    assert_eq!(on_stream, ["before", "while-down"]);
    assert_eq!(wait_for_applied(&app, 2), ["before", "while-down"]);
    assert_eq!(app.get("/outbox").json()["unrelayed"], 0);
}

#[test]
fn events_redis_lost_after_acknowledging_them_are_relayed_again() {
    // Host only: real Spin exits when its Redis trigger loses the connection.
    let mut app = spawn_with(Runtime::Host, Redis::start_persistent(), 10);
    publish(&app, "ticket:created", &["kept"]);
    wait_for_applied(&app, 1);
    let mark = app.redis().aof_mark();
    // Acknowledged by Redis, then lost with its last writes: hold the stream's lease
    // (as a busy replica would), so that no listener applies them before the loss.
    hold_lease(app.redis(), "ticket:created", None);
    publish(&app, "ticket:created", &["lost-1", "lost-2"]);
    assert_eq!(
        titles_on_stream(app.redis(), "events:ticket:created"),
        ["kept", "lost-1", "lost-2"]
    );
    assert_eq!(applied(&app), ["kept"]);

    app.redis_mut().restart_without_writes_since(&mark);
    assert_eq!(
        titles_on_stream(app.redis(), "events:ticket:created"),
        ["kept"]
    );
    // The next tick notices the relay counter below what the outbox holds.
    let titles = eventually("the lost events applied", TICK_PROMISE * 2, || {
        let titles = applied(&app);
        (titles.len() == 3).then_some(titles)
    });
    assert_eq!(titles, ["kept", "lost-1", "lost-2"]);
    assert_eq!(
        titles_on_stream(app.redis(), "events:ticket:created"),
        ["kept", "lost-1", "lost-2"]
    );
    app.wait_for_log("the loss noticed", |line| {
        line.contains("Redis came back without events it had acknowledged")
    });
}

#[test]
fn a_duplicate_delivery_is_applied_once() {
    on_every_runtime(spawn, |app| {
        publish(app, "ticket:created", &["once"]);
        wait_for_applied(app, 1);

        // The same event again, as an at-least-once relay may add it.
        let (_, _, envelope) = stream_entries(app.redis(), "events:ticket:created").remove(0);
        xadd(app.redis(), "events:ticket:created", &envelope.to_string());
        publish(app, "ticket:created", &["after"]);

        assert_eq!(wait_for_applied(app, 2), ["once", "after"]);
        app.wait_for_log("the duplicate skipped", |line| {
            line.contains("a duplicate, skipped")
        });
        assert_eq!(applied(app), ["once", "after"]);
        assert_eq!(pending_count(app.redis(), "events:ticket:created"), 0);
    });
}

#[test]
fn a_failing_handlers_event_is_redelivered_after_the_ack_wait() {
    on_every_runtime(spawn, |app| {
        let published = Instant::now();
        publish(app, "ticket:created", &["fail-2-then-fine"]);
        app.wait_for_log("the first failure", |line| {
            line.contains("failed on delivery 1 of 10")
        });
        assert!(applied(app).is_empty());

        // Every drain before the ack wait leaves it alone; after it, it is retried.
        let titles = eventually(
            "the event to be applied on its third delivery",
            WAIT,
            || {
                let reply = app.post_json("/tick", &json!({}));
                assert_eq!(reply.status, 200, "{}", reply.text());
                let titles = applied(app);
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
    let spawn = |runtime| spawn_with(runtime, Redis::start(), 3);
    on_every_runtime(spawn, |app| {
        publish(app, "ticket:created", &["poison"]);
        // Not an envelope at all: dead at once, without retries.
        xadd(app.redis(), "events:ticket:created", "{not json");
        publish(app, "ticket:created", &["healthy"]);

        let dead = eventually("two dead letters", WAIT, || {
            app.post_json("/tick", &json!({}));
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

        assert_eq!(applied(app), ["healthy"]);
        assert_eq!(pending_count(app.redis(), "events:ticket:created"), 0);
        app.wait_for_log("the dead letter logged", |line| {
            line.contains("moved to events:dead")
        });
    });
}

#[test]
fn events_of_one_subject_are_applied_in_stream_order() {
    on_every_runtime(spawn, |app| {
        // Twenty events in one transaction ring twenty doorbells at once, and four
        // clients publish at the same time: concurrent invocations, one order.
        let titles: Vec<String> = (0..20).map(|n| format!("batch-{n:02}")).collect();
        let titles: Vec<&str> = titles.iter().map(String::as_str).collect();
        publish(app, "ticket:updated", &titles);
        std::thread::scope(|scope| {
            for client in 0..4 {
                scope.spawn(move || {
                    for n in 0..10 {
                        let title = format!("client-{client}-{n}");
                        publish(app, "ticket:updated", &[&title]);
                    }
                });
            }
        });
        let applied = wait_for_applied(app, 60);
        assert_eq!(
            applied,
            titles_on_stream(app.redis(), "events:ticket:updated")
        );
        assert_eq!(&applied[..20], &titles[..]);
    });
}

#[test]
fn two_replicas_of_one_consumer_apply_each_event_once() {
    on_every_runtime(spawn, |app| {
        let replica = app.start_replica();
        wait_for_listeners(app, 2);
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
                for (index, instance) in [app, &replica].into_iter().enumerate() {
                    scope.spawn(move || {
                        for n in 0..25 {
                            let title = format!("round-{round}-replica-{index}-{n}");
                            publish(instance, "ticket:created", &[&title]);
                        }
                    });
                }
            });
            published += 50;
            wait_for_applied(app, published);
            if applied_any(app) && applied_any(&replica) {
                break;
            }
        }
        let applied = wait_for_applied(app, published);
        let distinct: BTreeSet<&String> = applied.iter().collect();
        assert_eq!(applied.len(), published, "each event once: {applied:?}");
        assert_eq!(distinct.len(), published, "each event once: {applied:?}");
        assert_eq!(
            applied,
            titles_on_stream(app.redis(), "events:ticket:created")
        );
        for (name, instance) in [("first", app), ("second", &replica)] {
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
    // Events another service published before the probe ever ran.
    let spawn = |runtime| {
        let redis = Redis::start();
        for (n, title) in ["first", "second", "third"].into_iter().enumerate() {
            xadd(
                &redis,
                "events:ticket:created",
                &foreign_envelope(&format!("old-{n}"), title, 0),
            );
        }
        spawn_with(runtime, redis, 10)
    };
    on_every_runtime(spawn, |app| {
        // No doorbell rings. What Kubernetes' probe of expiration's health route does
        // in the app (any write does it too): arm the bus's ticks. The first applies.
        assert_eq!(app.post_json("/arm-ticks", &json!({})).status, 200);
        assert_eq!(wait_for_applied(app, 3), ["first", "second", "third"]);
        assert_eq!(app.get("/applied").json()[0]["source"], "tickets");
    });
}

#[test]
fn a_backlog_is_applied_when_no_doorbell_rings() {
    on_every_runtime(spawn, |app| {
        publish(app, "ticket:created", &["rung"]);
        wait_for_applied(app, 1);
        // On the stream without a doorbell (as if the listener was down when it rang).
        xadd(
            app.redis(),
            "events:ticket:created",
            &foreign_envelope("silent", "silent", 1),
        );
        let added = Instant::now();
        // No request does bus work: the tick applies it.
        let titles = eventually("the backlog applied by a tick", TICK_PROMISE, || {
            let titles = applied(app);
            (titles.len() == 2).then_some(titles)
        });
        assert!(added.elapsed() <= TICK_PROMISE, "{:?}", added.elapsed());
        assert_eq!(titles, ["rung", "silent"]);
    });
}

#[test]
fn leftover_events_are_relayed_once_however_many_ticks_race() {
    // Host only: real Spin exits when its Redis trigger loses the connection.
    let mut app = spawn(Runtime::Host);
    app.redis_mut().stop();
    let titles: Vec<String> = (0..30).map(|n| format!("left-{n:02}")).collect();
    for title in &titles {
        publish(&app, "ticket:created", &[title]);
    }
    assert_eq!(app.get("/outbox").json()["unrelayed"], 30);
    app.redis_mut().restart();
    // Sixteen invocations at once each try to relay the leftovers (as ticks and
    // replicas would after an outage): each row is claimed by one of them.
    std::thread::scope(|scope| {
        for _ in 0..16 {
            let app = &app;
            scope.spawn(move || {
                let reply = app.post_json("/tick", &json!({}));
                assert_eq!(reply.status, 200, "{}", reply.text());
            });
        }
    });
    assert_eq!(app.get("/outbox").json()["unrelayed"], 0);
    assert_eq!(
        titles_on_stream(app.redis(), "events:ticket:created"),
        titles
    );
    assert_eq!(wait_for_applied(&app, 30), titles);
}

#[test]
fn a_batch_of_leftovers_rings_one_doorbell_per_subject() {
    // Host only: real Spin exits when its Redis trigger loses the connection.
    let mut app = spawn(Runtime::Host);
    app.redis_mut().stop();
    for n in 0..10 {
        publish(&app, "ticket:created", &[&format!("created-{n}")]);
        publish(&app, "ticket:updated", &[&format!("updated-{n}")]);
    }
    app.redis_mut().restart();
    let mut subscriber = app.redis().connection();
    let mut pubsub = subscriber.as_pubsub();
    pubsub.subscribe("ticket:created").expect("SUBSCRIBE");
    pubsub.subscribe("ticket:updated").expect("SUBSCRIBE");
    pubsub
        .set_read_timeout(Some(Duration::from_secs(2)))
        .expect("a read timeout");

    assert_eq!(app.post_json("/tick", &json!({})).status, 200);
    assert_eq!(app.get("/outbox").json()["unrelayed"], 0);
    let mut doorbells = Vec::new();
    while let Ok(message) = pubsub.get_message() {
        let envelope: Value =
            serde_json::from_str(&message.get_payload::<String>().expect("text")).unwrap();
        doorbells.push((message.get_channel_name().to_owned(), envelope));
    }
    // Twenty events, one batch: a doorbell per subject, with its last envelope.
    let rung: Vec<(&str, &str)> = doorbells
        .iter()
        .map(|(channel, envelope)| {
            (
                channel.as_str(),
                envelope["data"]["title"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        rung,
        [
            ("ticket:created", "created-9"),
            ("ticket:updated", "updated-9")
        ]
    );
    assert_eq!(
        titles_on_stream(app.redis(), "events:ticket:created").len(),
        10
    );
    assert_eq!(
        titles_on_stream(app.redis(), "events:ticket:updated").len(),
        10
    );
}

#[test]
fn a_listener_woken_while_its_stream_is_drained_returns_at_once() {
    // Host only: it reads the host's line for each Redis invocation.
    let app = spawn(Runtime::Host);
    publish(&app, "ticket:created", &["first"]);
    wait_for_applied(&app, 1);
    // Another invocation holds the stream's lease for a minute.
    hold_lease(app.redis(), "ticket:created", Some(60_000));
    let mut redis = app.redis().connection();
    let rung_before = app
        .logs()
        .iter()
        .filter(|line| line.starts_with("bus-probe redis ticket:created"))
        .count();
    publish(&app, "ticket:created", &["second"]);
    // The woken listener leaves a note for the holder and returns, long before the
    // lease lapses; it applies nothing.
    eventually("the woken listener to return", WAIT, || {
        let rung = app
            .logs()
            .iter()
            .filter(|line| line.starts_with("bus-probe redis ticket:created"))
            .filter(|line| line.contains("-> ok"))
            .count();
        (rung > rung_before).then_some(())
    });
    let note: Option<String> = redis::cmd("GET")
        .arg("bus:probe:again:ticket:created")
        .query(&mut redis)
        .expect("GET");
    assert_eq!(note.as_deref(), Some("1"), "a note for the lease's holder");
    assert_eq!(applied(&app), ["first"]);
    let lease_left: i64 = redis::cmd("PTTL")
        .arg("bus:probe:lease:ticket:created")
        .query(&mut redis)
        .expect("PTTL");
    assert!(
        lease_left > 30_000,
        "the listener waited for the lease: {lease_left} ms left"
    );

    // The holder vanishes without draining: the next tick does it.
    let _: () = redis::cmd("DEL")
        .arg("bus:probe:lease:ticket:created")
        .query(&mut redis)
        .expect("DEL");
    let titles = eventually("the tick to apply it", TICK_PROMISE, || {
        let titles = applied(&app);
        (titles.len() == 2).then_some(titles)
    });
    assert_eq!(titles, ["first", "second"]);
}

#[test]
fn a_drain_that_meets_a_locked_database_tries_again_soon() {
    // An ack wait far longer than the test: only the drain's own retries apply it.
    let spawn = |runtime| spawn_waiting(runtime, Redis::start(), 120_000, 10);
    on_every_runtime(spawn, |app| {
        publish(app, "ticket:created", &["before"]);
        wait_for_applied(app, 1);

        // Another process holds the database's write lock for 7 s, longer than a
        // writer waits (5 s): the first try of the drain fails on it.
        let database = app.sqlite_path("probe");
        let (locked, is_locked) = std::sync::mpsc::channel();
        let holder = std::thread::spawn(move || {
            let conn = rusqlite::Connection::open(&database).expect("the probe's database");
            conn.execute_batch("BEGIN IMMEDIATE")
                .expect("the write lock");
            locked.send(()).expect("the test waits");
            std::thread::sleep(Duration::from_secs(7));
            conn.execute_batch("COMMIT").expect("COMMIT");
        });
        is_locked.recv().expect("the lock taken");
        let published = Instant::now();
        app.redis().publish_event(
            &serde_json::from_str(&foreign_envelope("locked", "during-lock", 0)).unwrap(),
        );
        let titles = eventually("the event applied after the lock", WAIT, || {
            let titles = applied(app);
            (titles.len() == 2).then_some(titles)
        });
        holder.join().expect("the lock holder");
        assert_eq!(titles, ["before", "during-lock"]);
        app.wait_for_log("the drain trying again", |line| {
            line.contains("draining events:ticket:created failed, trying again in")
        });
        assert!(
            published.elapsed() < Duration::from_secs(20),
            "applied after {:?}: not by the drain's retries",
            published.elapsed()
        );
    });
}

#[test]
fn a_lease_from_before_a_redis_restart_is_taken_over() {
    // Host only: real Spin exits when its Redis trigger loses the connection.
    let mut app = spawn_with(Runtime::Host, Redis::start_persistent(), 10);
    publish(&app, "ticket:created", &["before"]);
    wait_for_applied(&app, 1);
    // A drainer held the lease when Redis went down; its release never arrived, and
    // Redis comes back from its append-only file with the lease for a minute more.
    hold_lease(app.redis(), "ticket:created", Some(60_000));
    app.redis_mut().restart();
    wait_for_listeners(&app, 1);
    publish(&app, "ticket:created", &["after"]);
    // The lease is from the server's earlier run: the doorbell's listener takes it over
    // instead of waiting out its minute.
    let titles = eventually("the event applied", TICK_PROMISE, || {
        let titles = applied(&app);
        (titles.len() == 2).then_some(titles)
    });
    assert_eq!(titles, ["before", "after"]);
}
