//! Component tests of tickets in spin-test's format (crates/spin-test-sdk): a
//! reservation and a release delivered as Redis messages, as the bus delivers them,
//! whatever order they come in (docs/API.md, "Events": consumer rules).

use component_test_support::{app_with_bus, envelope, publish, published, sign_up};
use serde_json::{Value, json};
use spin_test_sdk::{Request, spin_test};

/// A ticket for sale, put up by a new seller.
fn ticket_for_sale() -> Value {
    let (session, _) = sign_up("seller@example.com");
    let response = Request::post("/api/tickets")
        .header("cookie", &session)
        .json(&json!({"title": "Concert", "price": 20}))
        .send();
    assert_eq!(response.status(), 201, "{}", response.text());
    response.json()
}

fn ticket(id: &str) -> Value {
    let response = Request::get(&format!("/api/tickets/{id}")).send();
    assert_eq!(response.status(), 200, "{}", response.text());
    response.json()
}

fn order_created(order: &str, ticket: &str, occurred_at: &str) -> Value {
    let mut event = envelope(
        &format!("created-{order}"),
        "order:created",
        "orders",
        json!({
            "id": order,
            "version": 0,
            "status": "created",
            "userId": "buyer",
            "expiresAt": "2099-01-01T00:00:00.000Z",
            "ticket": {"id": ticket, "price": 20},
        }),
    );
    event["occurredAt"] = json!(occurred_at);
    event
}

fn order_cancelled(order: &str, ticket: &str) -> Value {
    envelope(
        &format!("cancelled-{order}"),
        "order:cancelled",
        "orders",
        json!({"id": order, "version": 1, "ticket": {"id": ticket}}),
    )
}

/// `order:created` reserves the ticket (its `orderId`, version + 1, `ticket:updated`
/// published); `order:cancelled` releases it (version + 1 again).
#[spin_test]
fn a_reservation_and_a_release_arrive_as_redis_messages() {
    app_with_bus();
    let id = ticket_for_sale()["id"].as_str().unwrap().to_owned();

    publish(
        "tickets-events",
        &order_created("o1", &id, "2026-12-01T10:00:00.000Z"),
    )
    .expect("tickets takes the order");
    let reserved = ticket(&id);
    assert_eq!(reserved["orderId"], "o1", "{reserved}");
    assert_eq!(reserved["version"], 1);
    let listed = Request::get("/api/tickets").send().json();
    assert_eq!(listed, json!([]), "a reserved ticket is not for sale");

    publish("tickets-events", &order_cancelled("o1", &id)).expect("tickets takes the cancel");
    let released = ticket(&id);
    assert_eq!(released.get("orderId"), None, "{released}");
    assert_eq!(released["version"], 2);

    let updates: Vec<Value> = published("ticket:updated")
        .into_iter()
        .map(|event| event["data"].clone())
        .collect();
    assert_eq!(updates.len(), 2, "{updates:?}");
    assert_eq!(updates[0]["orderId"], "o1");
    assert_eq!(updates[0]["version"], 1);
    assert_eq!(updates[1].get("orderId"), None);
    assert_eq!(updates[1]["version"], 2);
}

/// The cancel of an order can come before its creation (they travel on different
/// streams): the ticket is not reserved for a cancelled order, whatever the order.
#[spin_test]
fn a_cancel_that_comes_first_leaves_the_ticket_for_sale() {
    app_with_bus();
    let id = ticket_for_sale()["id"].as_str().unwrap().to_owned();
    publish("tickets-events", &order_cancelled("o1", &id)).expect("tickets takes the cancel");
    publish(
        "tickets-events",
        &order_created("o1", &id, "2026-12-01T10:00:00.000Z"),
    )
    .expect("tickets takes the order");
    let after = ticket(&id);
    assert_eq!(after.get("orderId"), None, "{after}");
}

/// The same event delivered twice (a redelivery) is applied once.
#[spin_test]
fn a_duplicate_event_is_applied_once() {
    app_with_bus();
    let id = ticket_for_sale()["id"].as_str().unwrap().to_owned();
    let created = order_created("o1", &id, "2026-12-01T10:00:00.000Z");
    publish("tickets-events", &created).expect("tickets takes the order");
    publish("tickets-events", &created).expect("tickets takes it again");
    assert_eq!(ticket(&id)["version"], 1);
    assert_eq!(published("ticket:updated").len(), 1);
}

/// Of two live orders for one ticket, the one created last holds it, whichever
/// `order:created` arrives last.
#[spin_test]
fn the_latest_created_order_holds_the_ticket() {
    app_with_bus();
    let id = ticket_for_sale()["id"].as_str().unwrap().to_owned();
    publish(
        "tickets-events",
        &order_created("later", &id, "2026-12-01T10:05:00.000Z"),
    )
    .expect("tickets takes the later order");
    publish(
        "tickets-events",
        &order_created("earlier", &id, "2026-12-01T10:00:00.000Z"),
    )
    .expect("tickets takes the earlier order");
    assert_eq!(ticket(&id)["orderId"], "later");
}
