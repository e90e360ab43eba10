//! The steps of the marketplace every service's tests take: list a ticket, order it,
//! know who is signed in. Each waits for what the event bus has not delivered yet.

use std::time::Duration;

use serde_json::{Value, json};

use crate::{Client, eventually};

/// How long a step waits for an event to reach the service it talks to.
const EVENTS_ARRIVE_WITHIN: Duration = Duration::from_secs(20);

impl Client {
    /// Lists a ticket (201 asserted); the ticket's JSON.
    pub fn sell(&self, title: &str, price: f64) -> Value {
        let reply = self.post_json("/api/tickets", &json!({"title": title, "price": price}));
        assert_eq!(reply.status, 201, "listing {title}: {}", reply.text());
        reply.json()
    }

    /// Orders `ticket` (201 asserted), retrying while orders has not heard of it yet
    /// (404); the order's JSON.
    pub fn order(&self, ticket: &Value) -> Value {
        let reply = eventually("the ticket to be orderable", EVENTS_ARRIVE_WITHIN, || {
            let reply = self.post_json("/api/orders", &json!({"ticketId": ticket["id"]}));
            (reply.status != 404).then_some(reply)
        });
        assert_eq!(
            reply.status,
            201,
            "ordering {}: {}",
            ticket["id"],
            reply.text()
        );
        reply.json()
    }

    /// The order as it is now (200 asserted).
    pub fn order_now(&self, order: &Value) -> Value {
        let id = order["id"].as_str().expect("an order has an id");
        let reply = self.get(&format!("/api/orders/{id}"));
        assert_eq!(reply.status, 200, "{}", reply.text());
        reply.json()
    }

    /// Waits until the order has `status`; the order.
    pub fn wait_for_order_status(&self, order: &Value, status: &str) -> Value {
        eventually(
            &format!("order {} to be {status}", order["id"]),
            EVENTS_ARRIVE_WITHIN,
            || {
                let now = self.order_now(order);
                (now["status"] == status).then_some(now)
            },
        )
    }

    /// The signed-in user's id.
    pub fn user_id(&self) -> Value {
        let reply = self.get("/api/users/currentuser");
        reply.json()["currentUser"]["id"].clone()
    }
}
