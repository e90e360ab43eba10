//! Component tests of orders in spin-test's format (crates/spin-test-sdk): its copy of
//! tickets follows the version rules whatever order the events come in, and the
//! events that settle an order, delivered as Redis messages (docs/API.md, "Events").

use component_test_support::{app_with_bus, envelope, publish, published, sign_up};
use serde_json::{Value, json};
use spin_test_sdk::{Request, set_variable, spin_test};

fn ticket_event(subject: &str, version: u32, title: &str) -> Value {
    envelope(
        &format!("{subject}-t1-{version}"),
        subject,
        "tickets",
        json!({"id": "t1", "version": version, "title": title, "price": 20, "userId": "seller"}),
    )
}

/// The ticket as an order of it shows it (orders' copy).
fn ordered_ticket(session: &str) -> Value {
    let response = Request::post("/api/orders")
        .header("cookie", session)
        .json(&json!({"ticketId": "t1"}))
        .send();
    assert_eq!(response.status(), 201, "{}", response.text());
    response.json()
}

/// An update that comes before its predecessor waits (it fails, and is delivered
/// again); once the predecessor is in, it applies on top.
#[spin_test]
fn an_early_update_waits_for_the_version_before_it() {
    app_with_bus();
    // A failed event is due again at once, not after 30 s.
    set_variable("event_ack_wait_ms", "1");
    publish("orders-events", &ticket_event("ticket:created", 0, "v0")).unwrap();
    publish("orders-events", &ticket_event("ticket:updated", 2, "v2")).unwrap();
    let (session, _) = sign_up("buyer@example.com");
    let order = ordered_ticket(&session);
    assert_eq!(
        order["ticket"]["version"], 0,
        "v2 applied before v1: {order}"
    );
    assert_eq!(order["ticket"]["title"], "v0");

    // Cancel it, so the ticket can be ordered again below.
    let id = order["id"].as_str().unwrap();
    let cancel = Request::delete(&format!("/api/orders/{id}"))
        .header("cookie", &session)
        .send();
    assert_eq!(cancel.status(), 204, "{}", cancel.text());

    publish("orders-events", &ticket_event("ticket:updated", 1, "v1")).unwrap();
    // The next wake retries the waiting v2.
    publish("orders-events", &ticket_event("ticket:updated", 1, "v1")).unwrap();
    let order = ordered_ticket(&session);
    assert_eq!(order["ticket"]["version"], 2, "{order}");
    assert_eq!(order["ticket"]["title"], "v2");
}

/// A stale update (a version already applied) changes nothing.
#[spin_test]
fn a_stale_update_changes_nothing() {
    app_with_bus();
    publish("orders-events", &ticket_event("ticket:created", 0, "v0")).unwrap();
    publish("orders-events", &ticket_event("ticket:updated", 1, "v1")).unwrap();
    let mut stale = ticket_event("ticket:updated", 1, "stale");
    stale["id"] = json!("another event id, same version");
    publish("orders-events", &stale).unwrap();
    let (session, _) = sign_up("buyer@example.com");
    let order = ordered_ticket(&session);
    assert_eq!(order["ticket"]["title"], "v1", "{order}");
}

/// `expiration:complete` cancels an order still awaiting payment, and says so with
/// `order:cancelled`; a paid one (`payment:created`) stays complete.
#[spin_test]
fn expiry_cancels_an_unpaid_order_but_not_a_paid_one() {
    app_with_bus();
    publish("orders-events", &ticket_event("ticket:created", 0, "t")).unwrap();
    let (session, _) = sign_up("buyer@example.com");
    let order = ordered_ticket(&session);
    let id = order["id"].as_str().unwrap().to_owned();

    let paid = envelope(
        "paid",
        "payment:created",
        "payments",
        json!({"id": "p1", "orderId": id, "stripeId": "ch_1"}),
    );
    publish("orders-events", &paid).unwrap();
    let expired = envelope(
        "expired",
        "expiration:complete",
        "expiration",
        json!({"orderId": id}),
    );
    publish("orders-events", &expired).unwrap();
    let shown = Request::get(&format!("/api/orders/{id}"))
        .header("cookie", &session)
        .send()
        .json();
    assert_eq!(shown["status"], "complete", "{shown}");
    assert!(published("order:cancelled").is_empty());
}

#[spin_test]
fn expiry_cancels_an_order_awaiting_payment() {
    app_with_bus();
    publish("orders-events", &ticket_event("ticket:created", 0, "t")).unwrap();
    let (session, _) = sign_up("buyer@example.com");
    let id = ordered_ticket(&session)["id"].as_str().unwrap().to_owned();
    let expired = envelope(
        "expired",
        "expiration:complete",
        "expiration",
        json!({"orderId": id}),
    );
    publish("orders-events", &expired).unwrap();
    let shown = Request::get(&format!("/api/orders/{id}"))
        .header("cookie", &session)
        .send()
        .json();
    assert_eq!(shown["status"], "cancelled", "{shown}");
    let cancelled = published("order:cancelled");
    assert_eq!(cancelled.len(), 1, "{cancelled:?}");
    assert_eq!(cancelled[0]["data"]["id"], id.as_str());
    assert_eq!(cancelled[0]["data"]["version"], 1);
}
