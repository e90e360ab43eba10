//! orders through the real host (and real Spin, where installed): the whole app
//! (auth signs users in, tickets publishes the tickets orders copies), SQLite and Redis
//! behind. One test per behaviour of API.md's orders section and of its listeners.

use std::time::Duration;

use harness::{App, Client, Reply, Runtime, eventually, on_every_runtime};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(20);

/// The whole app with a payment window of a minute and events delivered again after
/// 300 ms, once orders listens for tickets' events.
fn spawn(runtime: Runtime) -> App {
    let app = harness::spawn_app_with(runtime, |app| {
        app.variable("order_expiration_seconds", "60")
            .variable("event_ack_wait_ms", "300")
    });
    app.wait_for_listeners(&["ticket:created", "ticket:updated", "order:created"]);
    app
}

/// A ticket listed by `seller` (orders hears of it through `ticket:created`).
fn ticket_for_sale(seller: &Client, title: &str) -> Value {
    let reply = seller.post_json("/api/tickets", &json!({"title": title, "price": 20.5}));
    assert_eq!(reply.status, 201, "{}", reply.text());
    reply.json()
}

fn place_order(client: &Client, ticket: &Value) -> Reply {
    client.post_json("/api/orders", &json!({"ticketId": ticket["id"]}))
}

/// Orders the ticket, retrying while orders has not heard of it yet (404).
fn ordered(client: &Client, ticket: &Value) -> Value {
    let reply = eventually("the ticket to be orderable", WAIT, || {
        let reply = place_order(client, ticket);
        (reply.status != 404).then_some(reply)
    });
    assert_eq!(reply.status, 201, "{}", reply.text());
    reply.json()
}

fn show(client: &Client, id: &Value) -> Value {
    let reply = client.get(&format!("/api/orders/{}", id.as_str().unwrap()));
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply.json()
}

fn wait_for_status(client: &Client, id: &Value, status: &str) -> Value {
    eventually(&format!("order {id} to be {status}"), WAIT, || {
        let order = show(client, id);
        (order["status"] == status).then_some(order)
    })
}

fn ticket_now(app: &App, ticket: &Value) -> Value {
    app.get(&format!("/api/tickets/{}", ticket["id"].as_str().unwrap()))
        .json()
}

fn event(subject: &str, id: &str, data: Value) -> Value {
    json!({
        "id": id, "subject": subject, "occurredAt": "2026-12-03T12:00:00.000Z",
        "source": "test", "data": data
    })
}

#[test]
fn an_order_holds_the_ticket_until_it_is_cancelled() {
    on_every_runtime(spawn, |app| {
        let seller = app.signed_up("seller");
        let buyer = app.signed_up("buyer");
        let ticket = ticket_for_sale(&seller, "concert");
        let order = ordered(&buyer, &ticket);
        let buyer_id = buyer.get("/api/users/currentuser").json()["currentUser"]["id"].clone();
        assert_eq!(order["status"], "created");
        assert_eq!(order["version"], 0);
        assert_eq!(order["userId"], buyer_id);
        assert_eq!(
            order["ticket"],
            json!({"id": ticket["id"], "title": "concert", "price": 20.5, "version": 0})
        );
        let keys: Vec<&String> = order.as_object().unwrap().keys().collect();
        assert_eq!(keys.len(), 6, "{keys:?}");
        // expiresAt = now + order_expiration_seconds (60 here).
        let expires_at = order["expiresAt"].as_str().unwrap();
        assert!(
            expires_at.ends_with('Z') && expires_at.len() == 24,
            "{expires_at}"
        );
        let created = app.redis().envelopes("order:created");
        assert_eq!(created.len(), 1);
        assert_eq!(
            created[0]["data"],
            json!({
                "id": order["id"], "version": 0, "status": "created", "userId": buyer_id,
                "expiresAt": expires_at, "ticket": {"id": ticket["id"], "price": 20.5}
            })
        );

        // tickets hears of it: the ticket is reserved, and nobody else can order it.
        eventually("the ticket to show the order", WAIT, || {
            (ticket_now(app, &ticket)["orderId"] == order["id"]).then_some(())
        });
        let other = app.signed_up("other");
        let reply = place_order(&other, &ticket);
        assert_eq!(reply.status, 400);
        assert_eq!(
            reply.errors(),
            json!([{"message": "Ticket is already reserved"}])
        );

        // Cancelling frees it again.
        let path = format!("/api/orders/{}", order["id"].as_str().unwrap());
        assert_eq!(buyer.delete(&path).status, 204);
        let cancelled = show(&buyer, &order["id"]);
        assert_eq!(cancelled["status"], "cancelled");
        assert_eq!(cancelled["version"], 1);
        eventually("the ticket to be free", WAIT, || {
            ticket_now(app, &ticket)
                .get("orderId")
                .is_none()
                .then_some(())
        });
        assert_eq!(place_order(&other, &ticket).status, 201);
        // Cancelling again changes nothing and publishes nothing.
        assert_eq!(buyer.delete(&path).status, 204);
        assert_eq!(show(&buyer, &order["id"])["version"], 1);
        assert_eq!(app.redis().stream("events:order:cancelled").len(), 1);
    });
}

#[test]
fn orders_need_a_session_a_ticket_id_and_a_known_ticket() {
    on_every_runtime(spawn, |app| {
        let reply = app.post_json("/api/orders", &json!({"ticketId": "x"}));
        assert_eq!(reply.status, 401);
        assert_eq!(app.get("/api/orders").status, 401);
        assert_eq!(app.get("/api/orders/x").status, 401);
        assert_eq!(app.delete("/api/orders/x").status, 401);
        let buyer = app.signed_up("buyer");
        for body in [json!({}), json!({"ticketId": ""}), json!({"ticketId": 5})] {
            let reply = buyer.post_json("/api/orders", &body);
            assert_eq!(reply.status, 400, "{body}");
            assert_eq!(
                reply.errors(),
                json!([{"message": "TicketId must be provided", "field": "ticketId"}])
            );
        }
        let reply = buyer.post_json("/api/orders", &json!({"ticketId": "no-such-ticket"}));
        assert_eq!(reply.status, 404);
        assert_eq!(buyer.get("/api/orders/no-such-order").status, 404);
        assert_eq!(buyer.delete("/api/orders/no-such-order").status, 404);
    });
}

#[test]
fn each_user_sees_only_their_own_orders_oldest_first() {
    on_every_runtime(spawn, |app| {
        let seller = app.signed_up("seller");
        let buyer = app.signed_up("buyer");
        let other = app.signed_up("other");
        let first = ticket_for_sale(&seller, "first");
        let second = ticket_for_sale(&seller, "second");
        let third = ticket_for_sale(&seller, "third");
        let a = ordered(&buyer, &first);
        let b = ordered(&buyer, &second);
        let c = ordered(&other, &third);
        // The embedded ticket is orders' current copy (reserving raised its version).
        let ids = |client: &Client| -> Vec<Value> {
            let orders = client.get("/api/orders").json();
            orders
                .as_array()
                .unwrap()
                .iter()
                .map(|order| order["id"].clone())
                .collect()
        };
        assert_eq!(ids(&buyer), [a["id"].clone(), b["id"].clone()]);
        assert_eq!(ids(&other), [c["id"].clone()]);
        let mine = buyer.get("/api/orders").json();
        assert_eq!(mine[1]["ticket"]["title"], "second");
        let reply = other.get(&format!("/api/orders/{}", a["id"].as_str().unwrap()));
        assert_eq!(reply.status, 401);
        let reply = other.delete(&format!("/api/orders/{}", a["id"].as_str().unwrap()));
        assert_eq!(reply.status, 401);
        assert_eq!(show(&buyer, &a["id"])["status"], "created");
    });
}

#[test]
fn concurrent_orders_for_one_ticket_have_exactly_one_winner() {
    on_every_runtime(spawn, |app| {
        let seller = app.signed_up("seller");
        let buyers: Vec<Client> = (0..20)
            .map(|n| app.signed_up(&format!("buyer{n}")))
            .collect();
        for round in 0..3 {
            let ticket = ticket_for_sale(&seller, &format!("round {round}"));
            // Orders knows the ticket once one buyer's request is no longer a 404.
            let statuses: Vec<u16> = std::thread::scope(|scope| {
                let racers: Vec<_> = buyers
                    .iter()
                    .map(|buyer| {
                        let ticket = &ticket;
                        scope.spawn(move || {
                            eventually("an answer other than 404", WAIT, || {
                                let status = place_order(buyer, ticket).status;
                                (status != 404).then_some(status)
                            })
                        })
                    })
                    .collect();
                racers
                    .into_iter()
                    .map(|racer| racer.join().unwrap())
                    .collect()
            });
            let winners = statuses.iter().filter(|status| **status == 201).count();
            let losers = statuses.iter().filter(|status| **status == 400).count();
            assert_eq!((winners, losers), (1, 19), "round {round}: {statuses:?}");
        }
    });
}

#[test]
fn the_ticket_copy_applies_versions_in_order_even_when_they_arrive_out_of_order() {
    on_every_runtime(spawn, |app| {
        let seller = app.signed_up("seller");
        let buyer = app.signed_up("buyer");
        let ticket = ticket_for_sale(&seller, "concert");
        let update = |version: u32, title: &str| {
            event(
                "ticket:updated",
                &format!("update-{version}"),
                json!({
                    "id": ticket["id"], "version": version, "title": title,
                    "price": 30, "userId": ticket["userId"]
                }),
            )
        };
        // Version 2 before version 1: it waits until 1 is applied.
        app.redis().publish_event(&update(2, "second edit"));
        app.wait_for_log("version 2 waiting", |line| {
            line.contains("event ticket:updated") && line.contains("waits for version 1")
        });
        app.redis().publish_event(&update(1, "first edit"));
        // Redelivered after the ack wait (300 ms) at the next invocation of orders.
        let order = ordered(&buyer, &ticket);
        let order = eventually("the copy at version 2", WAIT, || {
            let order = show(&buyer, &order["id"]);
            (order["ticket"]["version"] == 2).then_some(order)
        });
        assert_eq!(order["ticket"]["title"], "second edit");
        assert_eq!(order["ticket"]["price"], json!(30));
        // An old version again changes nothing.
        app.redis().publish_event(&update(1, "stale"));
        app.redis().publish_event(&event(
            "ticket:created",
            "marker",
            json!({"id": "marker", "version": 0, "title": "m", "price": 1, "userId": "u"}),
        ));
        eventually("the marker applied", WAIT, || {
            app.logs()
                .iter()
                .any(|line| line.contains("id marker from test") && line.contains("-> applied"))
                .then_some(())
        });
        assert_eq!(show(&buyer, &order["id"])["ticket"]["title"], "second edit");
    });
}

#[test]
fn expiry_cancels_an_unpaid_order_and_frees_its_ticket() {
    on_every_runtime(spawn, |app| {
        let seller = app.signed_up("seller");
        let buyer = app.signed_up("buyer");
        let ticket = ticket_for_sale(&seller, "concert");
        let order = ordered(&buyer, &ticket);
        app.redis().publish_event(&event(
            "expiration:complete",
            "expiry-1",
            json!({"orderId": order["id"]}),
        ));
        let cancelled = wait_for_status(&buyer, &order["id"], "cancelled");
        assert_eq!(cancelled["version"], 1);
        let published = app.redis().stream("events:order:cancelled");
        assert_eq!(published.len(), 1);
        let envelope: Value = serde_json::from_str(&published[0].1[0].1).unwrap();
        assert_eq!(
            envelope["data"],
            json!({"id": order["id"], "version": 1, "ticket": {"id": ticket["id"]}})
        );
        eventually("the ticket to be for sale again", WAIT, || {
            let for_sale = app.get("/api/tickets").json();
            (for_sale
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t["id"] == ticket["id"]))
            .then_some(())
        });
        // Expiring it again changes nothing.
        app.redis().publish_event(&event(
            "expiration:complete",
            "expiry-2",
            json!({"orderId": order["id"]}),
        ));
        app.wait_for_log("the second expiry applied", |line| {
            line.contains("id expiry-2 from test") && line.contains("-> applied")
        });
        assert_eq!(show(&buyer, &order["id"])["version"], 1);
        assert_eq!(app.redis().stream("events:order:cancelled").len(), 1);
    });
}

#[test]
fn a_paid_order_is_complete_and_neither_expires_nor_cancels() {
    on_every_runtime(spawn, |app| {
        let seller = app.signed_up("seller");
        let buyer = app.signed_up("buyer");
        let ticket = ticket_for_sale(&seller, "concert");
        let order = ordered(&buyer, &ticket);
        app.redis().publish_event(&event(
            "payment:created",
            "payment-1",
            json!({"id": "p1", "orderId": order["id"], "stripeId": "ch_1"}),
        ));
        let complete = wait_for_status(&buyer, &order["id"], "complete");
        assert_eq!(complete["version"], 1);

        app.redis().publish_event(&event(
            "expiration:complete",
            "expiry-1",
            json!({"orderId": order["id"]}),
        ));
        app.wait_for_log("the expiry applied", |line| {
            line.contains("id expiry-1 from test") && line.contains("-> applied")
        });
        assert_eq!(show(&buyer, &order["id"])["status"], "complete");
        let reply = buyer.delete(&format!("/api/orders/{}", order["id"].as_str().unwrap()));
        assert_eq!(reply.status, 400);
        assert_eq!(
            reply.errors(),
            json!([{"message": "Cannot cancel a completed order"}])
        );
        assert!(app.redis().stream("events:order:cancelled").is_empty());
        assert_eq!(ticket_now(app, &ticket)["orderId"], order["id"]);
    });
}

/// The first envelope on `subject`'s stream that `matches`, once there is one.
fn envelope_where(app: &App, subject: &str, matches: impl Fn(&Value) -> bool) -> Value {
    eventually(&format!("a matching {subject}"), WAIT, || {
        app.redis().envelopes(subject).into_iter().find(&matches)
    })
}

#[test]
fn events_carry_on_the_trace_context_of_what_caused_them() {
    on_every_runtime(spawn, |app| {
        let seller = app.signed_up("seller");
        let buyer = app.signed_up("buyer");
        let ticket = ticket_for_sale(&seller, "concert");
        // Listed without a traceparent: the event starts a trace of its own, which the
        // request's log line names.
        let listed = envelope_where(app, "ticket:created", |e| e["data"]["id"] == ticket["id"]);
        let own = listed["traceparent"]
            .as_str()
            .expect("a traceparent")
            .to_owned();
        assert_eq!(
            (own.len(), &own[..3], &own[52..]),
            (55, "00-", "-01"),
            "{own}"
        );
        app.wait_for_log("the listing's line with its trace", |line| {
            line.contains("POST /api/tickets -> 201")
                && line.contains(&format!("trace {}", &own[3..35]))
        });

        // An order placed in a trace: its order:created, and the ticket:updated tickets
        // publishes on it, carry that context.
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
        let created = envelope_where(app, "order:created", |e| e["data"]["id"] == order["id"]);
        assert_eq!(created["traceparent"], placed_in);
        assert_eq!(created["tracestate"], "congo=t61rcWkgMzE");
        let reserved = envelope_where(app, "ticket:updated", |e| {
            e["data"]["orderId"] == order["id"]
        });
        assert_eq!(reserved["traceparent"], placed_in);
        assert_eq!(reserved["tracestate"], "congo=t61rcWkgMzE");

        // Its expiry, in the trace expiration keeps for it: the cancellation, and the
        // release of the ticket that follows it, carry that one on.
        let expired_in = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        let mut expiry = event(
            "expiration:complete",
            "expiry-traced",
            json!({"orderId": order["id"]}),
        );
        expiry["traceparent"] = json!(expired_in);
        app.redis().publish_event(&expiry);
        let cancelled = envelope_where(app, "order:cancelled", |e| e["data"]["id"] == order["id"]);
        assert_eq!(cancelled["traceparent"], expired_in);
        assert!(cancelled.get("tracestate").is_none(), "{cancelled}");
        let released = envelope_where(app, "ticket:updated", |e| {
            e["data"]["id"] == ticket["id"] && e["data"]["version"] == 2
        });
        assert_eq!(released["traceparent"], expired_in);
    });
}
