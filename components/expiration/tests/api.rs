//! expiration through the real host (and real Spin, where installed): the whole app
//! with a payment window of a few seconds, a real Redis with keyspace notifications,
//! SQLite behind.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use harness::{App, Client, Runtime, eventually, on_every_runtime};
use serde_json::{Value, json};

/// The payment window of these tests.
const WINDOW_SECONDS: u64 = 2;
const WAIT: Duration = Duration::from_secs(30);

/// The whole app with a payment window of `window` seconds, once its listeners listen.
fn spawn_with(runtime: Runtime, window: u64) -> App {
    let app = harness::spawn_app_with(runtime, |app| {
        app.variable("order_expiration_seconds", &window.to_string())
    });
    wait_for_listeners(&app);
    app
}

fn spawn(runtime: Runtime) -> App {
    spawn_with(runtime, WINDOW_SECONDS)
}

fn wait_for_listeners(app: &App) {
    app.wait_for_listeners(&["ticket:created", "order:created", "__keyevent@0__:expired"]);
}

/// A fresh ticket of `seller`, ordered by `buyer` (retrying while orders has not heard
/// of the ticket yet).
fn order_a_ticket(seller: &Client, buyer: &Client, title: &str) -> (Value, Value) {
    let reply = seller.post_json("/api/tickets", &json!({"title": title, "price": 15}));
    assert_eq!(reply.status, 201, "{}", reply.text());
    let ticket = reply.json();
    let reply = eventually("the ticket to be orderable", WAIT, || {
        let reply = buyer.post_json("/api/orders", &json!({"ticketId": ticket["id"]}));
        (reply.status != 404).then_some(reply)
    });
    assert_eq!(reply.status, 201, "{}", reply.text());
    (ticket, reply.json())
}

fn order_now(buyer: &Client, order: &Value) -> Value {
    buyer
        .get(&format!("/api/orders/{}", order["id"].as_str().unwrap()))
        .json()
}

fn wait_for_status(buyer: &Client, order: &Value, status: &str) -> Value {
    eventually(&format!("the order to be {status}"), WAIT, || {
        let now = order_now(buyer, order);
        (now["status"] == status).then_some(now)
    })
}

/// `expiration:complete` entries by order id: (how many, the time of the first entry).
fn expirations(app: &App) -> BTreeMap<String, (usize, u64)> {
    let mut found: BTreeMap<String, (usize, u64)> = BTreeMap::new();
    for (id, fields) in app.redis().stream("events:expiration:complete") {
        let envelope: Value = serde_json::from_str(&fields[0].1).unwrap();
        let order_id = envelope["data"]["orderId"].as_str().unwrap().to_owned();
        let added_ms: u64 = id.split('-').next().unwrap().parse().unwrap();
        let entry = found.entry(order_id).or_insert((0, added_ms));
        entry.0 += 1;
    }
    found
}

fn ms_of(timestamp: &Value) -> u64 {
    let time = humantime::parse_rfc3339(timestamp.as_str().unwrap()).unwrap();
    time.duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// Polls until the clock passes `ms` (tests wait with a deadline, not a sleep).
fn wait_until(ms: u64) {
    eventually("the time to pass", WAIT, || (now_ms() > ms).then_some(()));
}

#[test]
fn an_unpaid_order_is_cancelled_after_the_window_never_before() {
    on_every_runtime(spawn, |app| {
        let seller = app.signed_up("seller");
        let buyer = app.signed_up("buyer");
        let (ticket, order) = order_a_ticket(&seller, &buyer, "concert");
        let expires_ms = ms_of(&order["expiresAt"]);
        let cancelled = wait_for_status(&buyer, &order, "cancelled");
        assert_eq!(cancelled["version"], 1);

        let expired = expirations(app);
        let (count, published_ms) = expired[order["id"].as_str().unwrap()];
        assert_eq!(count, 1);
        assert!(
            published_ms >= expires_ms,
            "published {} ms early",
            expires_ms - published_ms
        );
        // The ticket is for sale again.
        eventually("the ticket to be listed again", WAIT, || {
            let for_sale = app.get("/api/tickets").json();
            for_sale
                .as_array()
                .unwrap()
                .iter()
                .any(|listed| listed["id"] == ticket["id"])
                .then_some(())
        });
        let health = app.get("/api/expiration/health");
        assert_eq!(health.status, 200);
        assert_eq!(
            health.json(),
            json!({"status": "ok", "pending": 0, "published": 0, "keyspaceNotifications": true})
        );
    });
}

#[test]
fn an_expiry_goes_out_in_the_trace_of_its_order() {
    on_every_runtime(spawn, |app| {
        let seller = app.signed_up("seller");
        let buyer = app.signed_up("buyer");
        let reply = seller.post_json("/api/tickets", &json!({"title": "concert", "price": 15}));
        assert_eq!(reply.status, 201, "{}", reply.text());
        let ticket = reply.json();
        let placed_in = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let reply = eventually("the ticket to be orderable", WAIT, || {
            let reply = buyer.post_json_with(
                "/api/orders",
                &json!({"ticketId": ticket["id"]}),
                &[
                    ("traceparent", placed_in),
                    ("tracestate", "congo=t61rcWkgMzE"),
                ],
            );
            (reply.status != 404).then_some(reply)
        });
        assert_eq!(reply.status, 201, "{}", reply.text());
        let order = reply.json();
        wait_for_status(&buyer, &order, "cancelled");
        let expiry = app
            .redis()
            .envelopes("expiration:complete")
            .into_iter()
            .find(|envelope| envelope["data"]["orderId"] == order["id"])
            .expect("the order's expiration:complete");
        assert_eq!(expiry["traceparent"], placed_in);
        assert_eq!(expiry["tracestate"], "congo=t61rcWkgMzE");
    });
}

#[test]
fn a_paid_or_cancelled_order_is_not_cancelled_by_its_expiry() {
    on_every_runtime(spawn, |app| {
        let seller = app.signed_up("seller");
        let buyer = app.signed_up("buyer");
        let (_, paid) = order_a_ticket(&seller, &buyer, "paid");
        let (_, cancelled) = order_a_ticket(&seller, &buyer, "cancelled");
        app.redis().publish_event(&json!({
            "id": "payment-1", "subject": "payment:created", "occurredAt": "2026-12-03T12:00:00.000Z",
            "source": "test", "data": {"id": "p1", "orderId": paid["id"], "stripeId": "ch_1"}
        }));
        wait_for_status(&buyer, &paid, "complete");
        let path = format!("/api/orders/{}", cancelled["id"].as_str().unwrap());
        assert_eq!(buyer.delete(&path).status, 204);

        eventually("both expiries published", WAIT, || {
            (expirations(app).len() == 2).then_some(())
        });
        app.wait_for_log("the expiries applied by orders", |line| {
            line.contains("event expiration:complete") && line.contains("-> applied")
        });
        eventually("orders to apply both expiries", WAIT, || {
            let applied = app
                .logs()
                .iter()
                .filter(|line| {
                    line.contains("event expiration:complete") && line.contains("-> applied")
                })
                .count();
            (applied >= 2).then_some(())
        });
        assert_eq!(order_now(&buyer, &paid)["status"], "complete");
        let still = order_now(&buyer, &cancelled);
        assert_eq!(still["status"], "cancelled");
        assert_eq!(still["version"], 1, "not cancelled a second time");
        assert_eq!(app.redis().stream("events:order:cancelled").len(), 1);
    });
}

#[test]
fn an_expiry_missed_while_the_service_was_down_is_published_by_the_next_sweep() {
    for runtime in Runtime::all() {
        let mut app = spawn_with(runtime, WINDOW_SECONDS);
        let seller = app.signed_up("seller");
        let buyer = app.signed_up("buyer");
        let (_, order) = order_a_ticket(&seller, &buyer, "concert");
        let expires_ms = ms_of(&order["expiresAt"]);
        eventually("the expiry to be scheduled", WAIT, || {
            let health = app.get("/api/expiration/health").json();
            (health["pending"] == 1).then_some(())
        });
        // Nobody listens when the alarm rings.
        app.terminate();
        wait_until(expires_ms + 1000);
        assert!(expirations(&app).is_empty());

        // The next process (same database and Redis) publishes it at its first sweep.
        let next = app.start_replica();
        wait_for_listeners(&app);
        let health = next.get("/api/expiration/health").json();
        assert_eq!(health["published"], 1, "{health}");
        assert_eq!(health["pending"], 0, "{health}");
        let (count, published_ms) = expirations(&app)[order["id"].as_str().unwrap()];
        assert_eq!(count, 1);
        assert!(published_ms >= expires_ms);
        eventually("orders to cancel it", WAIT, || {
            let cancelled = app
                .redis()
                .stream("events:order:cancelled")
                .iter()
                .any(|(_, fields)| fields[0].1.contains(order["id"].as_str().unwrap()));
            cancelled.then_some(())
        });
    }
}

#[test]
fn a_redis_restart_loses_no_pending_expiry() {
    // Host only: real Spin exits when its Redis trigger loses the connection.
    let mut app = spawn_with(Runtime::Host, 4);
    let seller = app.signed_up("seller");
    let buyer = app.signed_up("buyer");
    let (_, order) = order_a_ticket(&seller, &buyer, "concert");
    let expires_ms = ms_of(&order["expiresAt"]);
    eventually("the expiry to be scheduled", WAIT, || {
        let health = app.get("/api/expiration/health").json();
        (health["pending"] == 1).then_some(())
    });
    // Without persistence: the alarm, the streams and the groups are gone.
    app.redis_mut().restart();
    wait_for_listeners(&app);
    // One sweep re-arms the alarm from the schedule in SQLite; the alarm does the rest.
    let health = app.get("/api/expiration/health").json();
    assert_eq!(health["pending"], 1, "{health}");
    let expired = eventually("the expiry published after the restart", WAIT, || {
        let expired = expirations(&app);
        expired.get(order["id"].as_str().unwrap()).copied()
    });
    assert_eq!(expired.0, 1);
    assert!(expired.1 >= expires_ms);
    wait_for_status(&buyer, &order, "cancelled");
}

#[test]
fn concurrent_sweeps_publish_each_expiry_once() {
    on_every_runtime(spawn, |app| {
        let seller = app.signed_up("seller");
        let buyer = app.signed_up("buyer");
        let orders: Vec<Value> = (0..5)
            .map(|n| order_a_ticket(&seller, &buyer, &format!("ticket {n}")).1)
            .collect();
        let last_ms = orders
            .iter()
            .map(|order| ms_of(&order["expiresAt"]))
            .max()
            .unwrap();
        wait_until(last_ms);
        // Ten sweeps at once through the health route, racing the alarm's own.
        std::thread::scope(|scope| {
            for _ in 0..10 {
                scope.spawn(|| {
                    assert_eq!(app.get("/api/expiration/health").status, 200);
                });
            }
        });
        let expired = eventually("every expiry published", WAIT, || {
            let expired = expirations(app);
            (expired.len() == orders.len()).then_some(expired)
        });
        for order in &orders {
            assert_eq!(expired[order["id"].as_str().unwrap()].0, 1, "{order}");
            wait_for_status(&buyer, order, "cancelled");
        }
    });
}
