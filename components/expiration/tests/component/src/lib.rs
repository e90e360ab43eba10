//! Component tests of expiration in spin-test's format (crates/spin-test-sdk): with
//! the app's clock set around an order's `expiresAt`, a sweep publishes
//! `expiration:complete` at that time and never before (docs/API.md, "Events").

use component_test_support::{app_with_bus, envelope, publish, published};
use serde_json::json;
use spin_test_sdk::host::{deliver_redis_message, set_wall_clock};
use spin_test_sdk::{Request, spin_test};

/// 2030-01-01T00:00:00Z.
const EXPIRES_AT: u64 = 1_893_456_000;

fn order_created(order: &str) {
    let event = envelope(
        &format!("created-{order}"),
        "order:created",
        "orders",
        json!({
            "id": order,
            "version": 0,
            "status": "created",
            "userId": "buyer",
            "expiresAt": "2030-01-01T00:00:00.000Z",
            "ticket": {"id": "t1", "price": 20},
        }),
    );
    publish("expiration-events", &event).expect("expiration takes the order");
}

/// The alarm ringing: its key's name on the expired-keys channel.
fn ring_the_alarm() {
    deliver_redis_message(
        "expiration-events",
        "__keyevent@0__:expired",
        b"expiration:alarm",
    )
    .expect("a sweep");
}

#[spin_test]
fn an_order_expires_at_its_time_and_not_before() {
    app_with_bus();
    set_wall_clock(EXPIRES_AT - 60);
    order_created("o1");
    ring_the_alarm();
    assert!(
        published("expiration:complete").is_empty(),
        "published early"
    );

    set_wall_clock(EXPIRES_AT + 1);
    ring_the_alarm();
    let complete = published("expiration:complete");
    assert_eq!(complete.len(), 1, "{complete:?}");
    assert_eq!(complete[0]["data"], json!({"orderId": "o1"}));

    // A second sweep publishes nothing more.
    ring_the_alarm();
    assert_eq!(published("expiration:complete").len(), 1);
}

/// The health route Kubernetes probes sweeps too: an app that missed its alarm
/// catches up on the next probe.
#[spin_test]
fn the_health_probe_sweeps_too() {
    app_with_bus();
    set_wall_clock(EXPIRES_AT - 60);
    order_created("o1");
    set_wall_clock(EXPIRES_AT + 3_600);
    let response = Request::get("/api/expiration/health").send();
    assert_eq!(response.status(), 200, "{}", response.text());
    assert_eq!(published("expiration:complete").len(), 1);
}
