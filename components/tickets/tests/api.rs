//! tickets through the real host (and real Spin, where installed): HTTP in, the built
//! components (auth signs users in), SQLite and Redis behind. One test per behaviour of
//! API.md's tickets section and of its two listeners.

use std::collections::BTreeSet;
use std::time::Duration;

use harness::{App, Client, Reply, Runtime, eventually, on_every_runtime};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(20);

/// The whole app, once tickets listens for orders' events.
fn spawn(runtime: Runtime) -> App {
    let app = harness::spawn_app_on(runtime);
    app.wait_for_listeners(&["order:created", "order:cancelled"]);
    app
}

fn create(client: &Client, title: &str, price: Value) -> Reply {
    client.post_json("/api/tickets", &json!({"title": title, "price": price}))
}

fn created(client: &Client, title: &str, price: Value) -> Value {
    let reply = create(client, title, price);
    assert_eq!(reply.status, 201, "{}", reply.text());
    reply.json()
}

fn field_error(message: &str, field: &str) -> Value {
    json!({"message": message, "field": field})
}

/// Publishes an event as the orders service would.
fn publish_as_orders(app: &App, envelope: &Value) {
    app.redis().publish_event(envelope);
}

fn order_created(event_id: &str, order_id: &str, ticket: &Value) -> Value {
    order_created_at(event_id, order_id, ticket, "2026-12-03T12:00:00.000Z")
}

/// An `order:created` whose order was created at `occurred_at`.
fn order_created_at(event_id: &str, order_id: &str, ticket: &Value, occurred_at: &str) -> Value {
    json!({
        "id": event_id, "subject": "order:created", "occurredAt": occurred_at,
        "source": "orders",
        "data": {
            "id": order_id, "version": 0, "status": "created", "userId": "buyer",
            "expiresAt": "2026-12-03T12:15:00.000Z",
            "ticket": {"id": ticket["id"], "price": ticket["price"]}
        }
    })
}

fn order_cancelled(event_id: &str, order_id: &str, ticket: &Value) -> Value {
    json!({
        "id": event_id, "subject": "order:cancelled", "occurredAt": "2026-12-03T12:05:00.000Z",
        "source": "orders",
        "data": {"id": order_id, "version": 1, "ticket": {"id": ticket["id"]}}
    })
}

fn show(app: &App, id: &str) -> Value {
    let reply = app.get(&format!("/api/tickets/{id}"));
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply.json()
}

/// Waits until the ticket is at `version`, and returns it.
fn wait_for_version(app: &App, id: &str, version: u64) -> Value {
    eventually(&format!("ticket {id} at version {version}"), WAIT, || {
        let ticket = show(app, id);
        (ticket["version"] == version).then_some(ticket)
    })
}

/// The `ticket:updated` events of one ticket, by version.
fn updates_of(app: &App, id: &Value) -> Vec<Value> {
    app.redis()
        .envelopes("ticket:updated")
        .into_iter()
        .filter(|envelope| envelope["data"]["id"] == *id)
        .map(|envelope| envelope["data"].clone())
        .collect()
}

#[test]
fn creating_a_ticket_needs_a_session() {
    on_every_runtime(spawn, |app| {
        let reply = create(app, "concert", json!(20));
        assert_eq!(reply.status, 401);
        assert_eq!(reply.errors(), json!([{"message": "Not authorized"}]));
        // Checked before the body: even a bad body gets 401.
        let reply = app.post_raw("/api/tickets", "text/plain", b"nope".to_vec());
        assert_eq!(reply.status, 401);
    });
}

#[test]
fn a_created_ticket_is_returned_and_published_as_ticket_created() {
    on_every_runtime(spawn, |app| {
        let seller = app.signed_up("seller");
        let ticket = created(&seller, "concert", json!(20));
        let user_id = seller.get("/api/users/currentuser").json()["currentUser"]["id"].clone();
        assert_eq!(ticket["title"], "concert");
        assert_eq!(ticket["price"], json!(20));
        assert_eq!(ticket["userId"], user_id);
        assert_eq!(ticket["version"], 0);
        assert!(ticket.get("orderId").is_none(), "{ticket}");
        assert_eq!(
            ticket.as_object().unwrap().len(),
            5,
            "exactly the keys of API.md: {ticket}"
        );
        assert_eq!(show(app, ticket["id"].as_str().unwrap()), ticket);

        let events = app.redis().envelopes("ticket:created");
        assert_eq!(events.len(), 1);
        assert_eq!(events[0]["source"], "tickets");
        assert_eq!(
            events[0]["data"],
            json!({"id": ticket["id"], "version": 0, "title": "concert", "price": 20.0, "userId": user_id})
        );
    });
}

#[test]
fn prices_are_exact_with_at_most_two_decimals_and_strings_are_accepted() {
    on_every_runtime(spawn, |app| {
        let seller = app.signed_up("seller");
        assert_eq!(created(&seller, "a", json!(0.29))["price"], json!(0.29));
        assert_eq!(created(&seller, "b", json!("12.5"))["price"], json!(12.5));
        assert_eq!(
            created(&seller, "c", json!(1234.56))["price"],
            json!(1234.56)
        );
        for (price, message) in [
            (json!(0), "Price must be greater than 0"),
            (json!(-10), "Price must be greater than 0"),
            (json!("abc"), "Price must be greater than 0"),
            (json!(null), "Price must be greater than 0"),
            (json!(12.345), "Price must have at most 2 decimals"),
            (json!(1_000_000.01), "Price must be at most 1000000"),
        ] {
            let reply = create(&seller, "concert", price.clone());
            assert_eq!(reply.status, 400, "{price}");
            assert_eq!(
                reply.errors(),
                json!([field_error(message, "price")]),
                "{price}"
            );
        }
    });
}

#[test]
fn titles_are_trimmed_kept_verbatim_and_bounded() {
    on_every_runtime(spawn, |app| {
        let seller = app.signed_up("seller");
        let ticket = created(&seller, "  Концерт 🎸 «Live» ", json!(5));
        assert_eq!(ticket["title"], "Концерт 🎸 «Live»");
        assert!(create(&seller, &"é".repeat(200), json!(5)).status == 201);
        let reply = create(&seller, &"é".repeat(201), json!(5));
        assert_eq!(
            reply.errors(),
            json!([field_error("Title must be at most 200 characters", "title")])
        );
        let reply = seller.post_json("/api/tickets", &json!({"title": "   ", "price": "x"}));
        assert_eq!(
            reply.errors(),
            json!([
                field_error("Title is required", "title"),
                field_error("Price must be greater than 0", "price")
            ])
        );
        let reply = seller.post_raw("/api/tickets", "application/json", b"[1]".to_vec());
        assert_eq!(
            reply.errors(),
            json!([{"message": "Request body must be JSON"}])
        );
    });
}

/// The list's JSON is written by SQLite, one ticket's page by the component's serde
/// types: both must say the same, byte for byte, whatever the title and the price.
#[test]
fn the_list_shows_each_ticket_exactly_as_its_own_page_does() {
    on_every_runtime(spawn, |app| {
        let seller = app.signed_up("seller");
        assert_eq!(app.get("/api/tickets").text(), "[]");
        let tickets = [
            ("plain", json!(20)),
            ("Концерт 🎸 «Live»", json!(12.34)),
            (
                "quote \" backslash \\ slash / tab \t newline \n end",
                json!(0.29),
            ),
            ("control \u{1} \u{1f} del \u{7f}", json!(0.01)),
            ("<script>&amp;</script>", json!(999_999.99)),
            ("the most", json!(1_000_000)),
            ("from a string", json!("1.5e2")),
            ("tenths", json!(0.1)),
            ("cents of a large price", json!(100_000.07)),
        ];
        let pages: Vec<String> = tickets
            .into_iter()
            .map(|(title, price)| {
                let ticket = created(&seller, title, price);
                let page = app.get(&format!("/api/tickets/{}", ticket["id"].as_str().unwrap()));
                assert_eq!(page.status, 200);
                page.text()
            })
            .collect();
        let list = app.get("/api/tickets");
        assert_eq!(list.status, 200);
        assert_eq!(
            list.header("content-type").as_deref(),
            Some("application/json")
        );
        assert_eq!(list.text(), format!("[{}]", pages.join(",")));
    });
}

#[test]
fn unknown_and_malformed_ids_are_not_found() {
    on_every_runtime(spawn, |app| {
        for path in [
            "/api/tickets/0123456789abcdef0123456789abcdef",
            "/api/tickets/not-an-id",
            "/api/tickets/%00",
            "/api/tickets/a/b",
        ] {
            let reply = app.get(path);
            assert_eq!(reply.status, 404, "{path}");
            assert_eq!(reply.errors(), json!([{"message": "Not Found"}]), "{path}");
        }
        let reply = app.delete("/api/tickets");
        assert_eq!(reply.status, 404);
    });
}

/// A GET's body is not read (common::serve): one that says it is over 64 KiB is
/// refused, a small one changes nothing.
#[test]
fn a_get_with_a_body_is_answered_as_without_one() {
    on_every_runtime(spawn, |app| {
        let seller = app.signed_up("seller");
        let ticket = created(&seller, "Concert", json!(20));
        let path = format!("/api/tickets/{}", ticket["id"].as_str().unwrap());
        let get = |body: Vec<u8>| {
            app.send(
                app.request(harness::Method::GET, &path)
                    .header("content-type", "application/json")
                    .body(body),
            )
        };
        let reply = get(br#"{"title": "Other"}"#.to_vec());
        assert_eq!(reply.status, 200, "{}", reply.text());
        assert_eq!(reply.json(), ticket);
        let reply = get(vec![b' '; 64 * 1024 + 1]);
        assert_eq!(reply.status, 413, "{}", reply.text());
        assert_eq!(
            reply.errors(),
            json!([{"message": "Request body is too large"}])
        );
    });
}

/// A read checks the schema's version only when it fails (`common::db::read`): on a
/// database no statement has touched yet, it creates the schema and answers.
#[test]
fn a_read_is_answered_when_it_is_the_first_statement_a_database_sees() {
    on_every_runtime(spawn, |app| {
        let file = app.sqlite_path("tickets");
        let size = std::fs::metadata(&file).map_or(0, |metadata| metadata.len());
        assert_eq!(
            size,
            0,
            "{} has a schema before any request",
            file.display()
        );
        let reply = app.get("/api/tickets/0123456789abcdef0123456789abcdef");
        assert_eq!(reply.status, 404, "{}", reply.text());
        let reply = app.get("/api/tickets");
        assert_eq!(reply.status, 200, "{}", reply.text());
        assert_eq!(reply.json(), json!([]));
        let seller = app.signed_up("seller");
        let ticket = created(&seller, "Concert", json!(20));
        assert_eq!(show(app, ticket["id"].as_str().unwrap()), ticket);
    });
}

#[test]
fn the_owner_edits_a_ticket_which_raises_its_version_and_publishes_ticket_updated() {
    on_every_runtime(spawn, |app| {
        let seller = app.signed_up("seller");
        let ticket = created(&seller, "concert", json!(20));
        let path = format!("/api/tickets/{}", ticket["id"].as_str().unwrap());
        let reply = seller.put_json(&path, &json!({"title": "opera", "price": "35.5"}));
        assert_eq!(reply.status, 200, "{}", reply.text());
        let edited = reply.json();
        assert_eq!(edited["title"], "opera");
        assert_eq!(edited["price"], json!(35.5));
        assert_eq!(edited["version"], 1);
        assert_eq!(show(app, ticket["id"].as_str().unwrap()), edited);
        let updates = updates_of(app, &ticket["id"]);
        assert_eq!(updates.len(), 1);
        assert_eq!(updates[0]["version"], 1);
        assert_eq!(updates[0]["title"], "opera");
        assert_eq!(updates[0]["price"], json!(35.5));
        assert!(updates[0].get("orderId").is_none());
    });
}

#[test]
fn edits_are_checked_in_api_md_order() {
    on_every_runtime(spawn, |app| {
        let seller = app.signed_up("seller");
        let other = app.signed_up("other");
        let ticket = created(&seller, "concert", json!(20));
        let path = format!("/api/tickets/{}", ticket["id"].as_str().unwrap());
        let body = json!({"title": "", "price": 0});

        // Not signed in first, then unknown, then not the owner, then the body.
        assert_eq!(
            app.put_json(&path, &json!({"title": "x", "price": 1}))
                .status,
            401
        );
        let reply = seller.put_json("/api/tickets/nope", &body);
        assert_eq!(reply.status, 404);
        let reply = other.put_json(&path, &body);
        assert_eq!(reply.status, 401);
        assert_eq!(reply.errors(), json!([{"message": "Not authorized"}]));
        let reply = seller.put_json(&path, &body);
        assert_eq!(reply.status, 400);
        assert_eq!(
            reply.errors(),
            json!([
                field_error("Title is required", "title"),
                field_error("Price must be provided and must be greater than 0", "price")
            ])
        );
        let reply = seller.put_json(&path, &json!({"title": "x"}));
        assert_eq!(
            reply.errors(),
            json!([field_error(
                "Price must be provided and must be greater than 0",
                "price"
            )])
        );
        assert_eq!(show(app, ticket["id"].as_str().unwrap())["version"], 0);

        // Reserved comes before ownership: even another user is told it is reserved.
        publish_as_orders(app, &order_created("e1", "o1", &ticket));
        wait_for_version(app, ticket["id"].as_str().unwrap(), 1);
        for client in [&seller, &other] {
            let reply = client.put_json(&path, &json!({"title": "x", "price": 1}));
            assert_eq!(reply.status, 400);
            assert_eq!(
                reply.errors(),
                json!([{"message": "Cannot edit a reserved ticket"}])
            );
        }
    });
}

#[test]
fn an_order_reserves_the_ticket_and_its_cancellation_releases_it() {
    on_every_runtime(spawn, |app| {
        let seller = app.signed_up("seller");
        let ticket = created(&seller, "concert", json!(20));
        let other = created(&seller, "opera", json!(30));
        let id = ticket["id"].as_str().unwrap();

        publish_as_orders(app, &order_created("e1", "o1", &ticket));
        let reserved = wait_for_version(app, id, 1);
        assert_eq!(reserved["orderId"], "o1");
        let for_sale = app.get("/api/tickets").json();
        assert_eq!(
            for_sale,
            json!([other]),
            "a reserved ticket is not for sale"
        );

        publish_as_orders(app, &order_cancelled("e2", "o1", &ticket));
        let released = wait_for_version(app, id, 2);
        assert!(released.get("orderId").is_none(), "{released}");
        assert_eq!(app.get("/api/tickets").json(), json!([released, other]));

        let updates = updates_of(app, &ticket["id"]);
        assert_eq!(updates.len(), 2);
        assert_eq!(updates[0]["version"], 1);
        assert_eq!(updates[0]["orderId"], "o1");
        assert_eq!(updates[1]["version"], 2);
        assert!(updates[1].get("orderId").is_none());
    });
}

#[test]
fn order_events_are_applied_once_and_in_any_order() {
    on_every_runtime(spawn, |app| {
        let seller = app.signed_up("seller");
        let first = created(&seller, "first", json!(20));
        let second = created(&seller, "second", json!(20));

        // The same order:created twice: one reservation, one event.
        publish_as_orders(app, &order_created("e1", "o1", &first));
        publish_as_orders(app, &order_created("e1", "o1", &first));
        // A cancellation of an order that does not hold the ticket changes nothing, and
        // one applied before its order's creation (the two subjects are two streams,
        // so this happens) keeps the ticket for sale.
        publish_as_orders(app, &order_cancelled("e2", "o-other", &first));
        publish_as_orders(app, &order_cancelled("e3", "o2", &second));
        eventually("both cancellations to be applied", WAIT, || {
            let applied = app
                .logs()
                .iter()
                .filter(|line| {
                    line.contains("event order:cancelled") && line.contains("-> applied")
                })
                .count();
            (applied == 2).then_some(())
        });
        publish_as_orders(app, &order_created("e4", "o2", &second));
        // A marker behind it on the order:created stream: once it is applied, so is
        // everything before it.
        let marker = created(&seller, "marker", json!(1));
        publish_as_orders(app, &order_created("e5", "o3", &marker));
        wait_for_version(app, marker["id"].as_str().unwrap(), 1);

        let first_now = show(app, first["id"].as_str().unwrap());
        assert_eq!(first_now["version"], 1);
        assert_eq!(first_now["orderId"], "o1");
        assert_eq!(updates_of(app, &first["id"]).len(), 1);
        let second_now = show(app, second["id"].as_str().unwrap());
        assert_eq!(second_now, second, "never reserved by a cancelled order");
        assert!(updates_of(app, &second["id"]).is_empty());
    });
}

#[test]
fn the_latest_order_holds_the_ticket_whatever_order_its_events_arrive_in() {
    on_every_runtime(spawn, |app| {
        let seller = app.signed_up("seller");
        let ticket = created(&seller, "concert", json!(20));
        let id = ticket["id"].as_str().unwrap();
        // Orders cancelled `old` at 12:05 and then took `live` for the ticket at 12:10.
        // `old`'s events arrive last (relayed again after Redis lost them, or retried
        // after a failure): they must not take the ticket from `live`.
        publish_as_orders(
            app,
            &order_created_at("e1", "live", &ticket, "2026-12-03T12:10:00.000Z"),
        );
        wait_for_version(app, id, 1);
        publish_as_orders(
            app,
            &order_created_at("e2", "old", &ticket, "2026-12-03T12:04:00.000Z"),
        );
        publish_as_orders(app, &order_cancelled("e3", "old", &ticket));
        // A later order of another ticket on each stream: once they are applied, so is
        // everything before them.
        let marker = created(&seller, "marker", json!(1));
        publish_as_orders(app, &order_created("e4", "m1", &marker));
        wait_for_version(app, marker["id"].as_str().unwrap(), 1);
        publish_as_orders(app, &order_cancelled("e5", "m1", &marker));
        wait_for_version(app, marker["id"].as_str().unwrap(), 2);

        let now = show(app, id);
        assert_eq!(now["orderId"], "live", "{now}");
        assert_eq!(
            now["version"],
            1,
            "never handed to `old`: {:?}",
            updates_of(app, &ticket["id"])
        );

        // The other way round: an older order holds the ticket when a newer one's
        // creation arrives before the older one's cancellation: the newer takes it.
        let other = created(&seller, "festival", json!(30));
        let other_id = other["id"].as_str().unwrap();
        publish_as_orders(
            app,
            &order_created_at("e6", "first", &other, "2026-12-03T12:00:00.000Z"),
        );
        wait_for_version(app, other_id, 1);
        publish_as_orders(
            app,
            &order_created_at("e7", "second", &other, "2026-12-03T12:20:00.000Z"),
        );
        assert_eq!(wait_for_version(app, other_id, 2)["orderId"], "second");
        publish_as_orders(app, &order_cancelled("e8", "first", &other));
        let marker = created(&seller, "marker 2", json!(1));
        publish_as_orders(app, &order_created("e9", "m2", &marker));
        wait_for_version(app, marker["id"].as_str().unwrap(), 1);
        publish_as_orders(app, &order_cancelled("e10", "m2", &marker));
        wait_for_version(app, marker["id"].as_str().unwrap(), 2);
        let other_now = show(app, other_id);
        assert_eq!(other_now["orderId"], "second");
        assert_eq!(other_now["version"], 2);
    });
}

#[test]
fn edits_racing_a_reservation_never_lose_a_version() {
    on_every_runtime(spawn, |app| {
        let seller = app.signed_up("seller");
        let ticket = created(&seller, "concert", json!(20));
        let id = ticket["id"].as_str().unwrap().to_owned();
        let path = format!("/api/tickets/{id}");
        let outcomes: Vec<u16> = std::thread::scope(|scope| {
            let editors: Vec<_> = (0..4)
                .map(|editor| {
                    let (seller, path) = (&seller, &path);
                    scope.spawn(move || {
                        (0..10)
                            .map(|n| {
                                let title = format!("edit {editor}-{n}");
                                seller
                                    .put_json(path, &json!({"title": title, "price": 21}))
                                    .status
                            })
                            .collect::<Vec<u16>>()
                    })
                })
                .collect();
            std::thread::sleep(Duration::from_millis(20));
            publish_as_orders(app, &order_created("e1", "o1", &ticket));
            editors
                .into_iter()
                .flat_map(|editor| editor.join().unwrap())
                .collect()
        });
        assert!(
            outcomes
                .iter()
                .all(|status| *status == 200 || *status == 400),
            "{outcomes:?}"
        );
        let edits = outcomes.iter().filter(|status| **status == 200).count() as u64;

        // The reservation came after the last successful edit, on top of it.
        let reserved = eventually("the reservation", WAIT, || {
            let ticket = show(app, &id);
            (ticket["orderId"] == "o1").then_some(ticket)
        });
        assert_eq!(reserved["version"], edits + 1);
        // Each version published once (concurrent commits may reach the stream in
        // either order: replicas apply them by version).
        let versions: Vec<u64> = updates_of(app, &ticket["id"])
            .iter()
            .map(|update| update["version"].as_u64().unwrap())
            .collect();
        let distinct: BTreeSet<u64> = versions.iter().copied().collect();
        assert_eq!(distinct.len(), versions.len(), "{versions:?}");
        assert_eq!(distinct, (1..=edits + 1).collect::<BTreeSet<u64>>());
        // After the reservation, every edit was refused.
        let reply = seller.put_json(&path, &json!({"title": "late", "price": 21}));
        assert_eq!(
            reply.errors(),
            json!([{"message": "Cannot edit a reserved ticket"}])
        );
    });
}

/// Every read route of the app (tickets', orders', auth's and payments'), 1,000 times:
/// Redis sees no command from them. Key expiry notifications are off meanwhile, so
/// the bus's tick wakes no one and the only traffic is the reads.
#[test]
fn reads_send_no_command_to_redis() {
    on_every_runtime(spawn, |app| {
        let seller = app.signed_up("seller");
        let buyer = app.signed_up("buyer");
        let ticket = seller.sell("Concert", 20.0);
        let order = buyer.order(&ticket);
        let ticket_path = format!("/api/tickets/{}", ticket["id"].as_str().unwrap());
        let order_path = format!("/api/orders/{}", order["id"].as_str().unwrap());
        let reads = [
            "/api/tickets",
            &ticket_path,
            "/api/orders",
            &order_path,
            "/api/users/currentuser",
            "/api/payments/config",
        ];
        let redis = app.redis();
        redis.notify_keyspace_events("");
        // What was under way (the order's events, a tick) ends first.
        let before = eventually("Redis to be quiet for a second", WAIT, || {
            let before = redis.command_counts();
            std::thread::sleep(Duration::from_secs(1));
            (redis.command_counts() == before).then_some(before)
        });
        for n in 0..1_000 {
            let path = reads[n % reads.len()];
            let reply = buyer.get(path);
            assert_eq!(reply.status, 200, "GET {path}: {}", reply.text());
        }
        let after = redis.command_counts();
        redis.notify_keyspace_events("Ex");
        let sent: Vec<String> = after
            .iter()
            .filter(|&(name, calls)| before.get(name) != Some(calls))
            .map(|(name, calls)| format!("{name} ×{}", calls - before.get(name).unwrap_or(&0)))
            .collect();
        assert!(sent.is_empty(), "1,000 reads sent Redis {sent:?}");
    });
}
