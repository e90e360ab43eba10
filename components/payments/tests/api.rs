//! payments through the real host (and real Spin, where installed): the whole app
//! (auth, tickets, orders, expiration publish what payments copies), SQLite and Redis
//! behind. The provider is the offline sandbox (the harness names it unless a test
//! says otherwise), or a local stand-in for Stripe's API that records what it was
//! sent. One test per behaviour of API.md's payments section.

use std::time::Duration;

use harness::{App, AppBuilder, Client, Reply, Runtime, StripeStub, eventually, on_every_runtime};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(20);
const SECRET_KEY: &str = "sk_test_of_the_payments_tests";
const PUBLISHABLE_KEY: &str = "pk_test_of_the_payments_tests";

/// The app with the sandbox provider (no `stripe_api_base`), or with Stripe at
/// `stripe_api_base`.
fn spawn(runtime: Runtime, window_seconds: u64, stripe_api_base: Option<&str>) -> App {
    start(runtime, window_seconds, |app| match stripe_api_base {
        Some(api_base) => app
            .variable("payment_provider", "stripe")
            .variable("stripe_secret_key", SECRET_KEY)
            .variable("stripe_publishable_key", PUBLISHABLE_KEY)
            .variable("stripe_api_base", api_base),
        None => app,
    })
}

/// The app with the variables `configure` gives on top of the tests' own.
fn start(
    runtime: Runtime,
    window_seconds: u64,
    configure: impl FnOnce(AppBuilder) -> AppBuilder,
) -> App {
    let app = harness::spawn_app_with(runtime, |app| {
        configure(
            app.variable("order_expiration_seconds", &window_seconds.to_string())
                .variable("event_ack_wait_ms", "300"),
        )
    });
    app.wait_for_listeners(&[
        "ticket:created",
        "order:created",
        "order:cancelled",
        "payment:created",
    ]);
    app
}

/// The app of the sandbox tests.
fn sandbox(runtime: Runtime) -> App {
    spawn(runtime, 60, None)
}

/// The same with Stripe: a fresh stand-in for each runtime.
fn with_stripe(test: impl Fn(&App, &StripeStub)) {
    for runtime in Runtime::all() {
        let stripe = StripeStub::start(SECRET_KEY);
        let app = spawn(runtime, 60, Some(&stripe.api_base()));
        eprintln!("on {}", app.runtime.name());
        test(&app, &stripe);
    }
}

/// A seller's ticket at `price`, ordered by `buyer`.
fn order_at(app: &App, buyer: &Client, price: f64) -> Value {
    let seller = app.signed_up(&format!("seller{}", harness::random_hex(4)));
    let ticket = seller.sell("concert", price);
    buyer.order(&ticket)
}

fn pay(client: &Client, order: &Value, token: &str) -> Reply {
    client.post_json(
        "/api/payments",
        &json!({"token": token, "orderId": order["id"]}),
    )
}

/// Pays, retrying while payments has not heard of the order yet (404).
fn pay_when_known(client: &Client, order: &Value, token: &str) -> Reply {
    eventually("payments to know the order", WAIT, || {
        let reply = pay(client, order, token);
        (reply.status != 404).then_some(reply)
    })
}

/// Waits until payments has applied every event of `subject` published so far (failed
/// ones are retried on the bus's tick, every 5 s).
fn payments_caught_up(app: &App, subject: &str) {
    eventually(&format!("payments to apply every {subject}"), WAIT, || {
        app.redis()
            .group_caught_up(&format!("events:{subject}"), "payments")
            .then_some(())
    });
}

fn message(reply: &Reply) -> Value {
    reply.json()["errors"][0]["message"].clone()
}

/// The data of every `payment:created` so far.
fn payments_published(app: &App) -> Vec<Value> {
    app.redis()
        .envelopes("payment:created")
        .into_iter()
        .map(|envelope| envelope["data"].clone())
        .collect()
}

fn event(subject: &str, data: Value) -> Value {
    json!({
        "id": harness::random_hex(16), "subject": subject,
        "occurredAt": "2026-12-03T12:00:00.000Z", "source": "orders", "data": data
    })
}

/// orders' `order:cancelled` (version 1) of `order_id`, whose ticket is `t1`, straight
/// onto the bus.
fn publish_cancel(app: &App, order_id: &str) {
    app.redis().publish_event(&event(
        "order:cancelled",
        json!({"id": order_id, "version": 1, "ticket": {"id": "t1"}}),
    ));
}

/// orders' `order:created` (version 0) of `order_id` by `buyer` for ticket `t1`,
/// straight onto the bus.
fn publish_creation(app: &App, buyer: &Client, order_id: &str) {
    app.redis().publish_event(&event(
        "order:created",
        json!({
            "id": order_id, "version": 0, "status": "created", "userId": buyer.user_id(),
            "expiresAt": "2099-01-01T00:00:00.000Z", "ticket": {"id": "t1", "price": 12.5}
        }),
    ));
}

/// No log line names a secret: the Stripe key or a card token.
fn assert_no_secrets_logged(app: &App) {
    for line in app.logs() {
        assert!(
            !line.contains(SECRET_KEY) && !line.contains("tok_"),
            "a secret in the log: {line}"
        );
    }
}

#[test]
fn paying_completes_the_order_and_its_expiry_leaves_it_alone() {
    for runtime in Runtime::all() {
        // A payment window short enough to watch the expiry pass.
        let app = spawn(runtime, 4, None);
        eprintln!("on {}", app.runtime.name());
        let buyer = app.signed_up("buyer");
        let seller = app.signed_up("seller");
        let ticket = seller.sell("concert", 20.5);
        let order = buyer.order(&ticket);

        let reply = pay_when_known(&buyer, &order, "tok_visa");
        assert_eq!(reply.status, 201, "{}", reply.text());
        let payment = reply.json();
        assert_eq!(payment.as_object().unwrap().len(), 1, "{payment}");
        let published = payments_published(&app);
        assert_eq!(published.len(), 1);
        let stripe_id = published[0]["stripeId"].as_str().unwrap();
        assert!(stripe_id.starts_with("ch_"), "{stripe_id}");
        assert_eq!(
            published[0],
            json!({"id": payment["id"], "orderId": order["id"], "stripeId": stripe_id})
        );
        buyer.wait_for_order_status(&order, "complete");

        // The expiry comes, and orders ignores it: the order stays complete and the
        // ticket stays sold.
        eventually("the order's expiry", WAIT, || {
            app.redis()
                .stream("events:expiration:complete")
                .iter()
                .any(|(_, fields)| fields[0].1.contains(order["id"].as_str().unwrap()))
                .then_some(())
        });
        eventually("orders to apply the expiry", WAIT, || {
            app.redis()
                .group_caught_up("events:expiration:complete", "orders")
                .then_some(())
        });
        assert_eq!(buyer.order_now(&order)["status"], "complete");
        let ticket_now = app
            .get(&format!("/api/tickets/{}", ticket["id"].as_str().unwrap()))
            .json();
        assert_eq!(ticket_now["orderId"], order["id"]);
        // Paid stays paid, past the deadline too.
        let again = pay(&buyer, &order, "tok_visa");
        assert_eq!(again.status, 400);
        assert_eq!(message(&again), "Order is already paid");

        // An order left unpaid past its expiresAt cannot be paid, cancelled yet or not.
        let late = buyer.order(&seller.sell("play", 10.0));
        payments_caught_up(&app, "order:created");
        let expires = late["expiresAt"].as_str().unwrap();
        let deadline = humantime::parse_rfc3339(expires).unwrap();
        eventually("the deadline to pass", WAIT, || {
            (std::time::SystemTime::now() > deadline).then_some(())
        });
        let reply = pay(&buyer, &late, "tok_visa");
        assert_eq!(reply.status, 400, "{}", reply.text());
        assert_eq!(message(&reply), "Cannot pay for a cancelled order");
        assert_eq!(payments_published(&app).len(), 1);
    }
}

#[test]
fn a_payment_is_checked_in_api_md_order() {
    on_every_runtime(sandbox, |app| {
        let buyer = app.signed_up("buyer");
        let signed_out = app.new_client();
        let reply = signed_out.post_json("/api/payments", &json!({}));
        assert_eq!(reply.status, 401);
        assert_eq!(message(&reply), "Not authorized");

        for body in [json!({}), json!({"token": "  ", "orderId": 5})] {
            let reply = buyer.post_json("/api/payments", &body);
            assert_eq!(reply.status, 400);
            assert_eq!(
                reply.json(),
                json!({"errors": [
                    {"message": "Token is required", "field": "token"},
                    {"message": "OrderId is required", "field": "orderId"}
                ]})
            );
        }
        let reply = buyer.post_raw("/api/payments", "text/plain", b"token=tok_visa".to_vec());
        assert_eq!(reply.status, 400);
        assert_eq!(message(&reply), "Request body must be JSON");
        let reply = buyer.post_json(
            "/api/payments",
            &json!({"token": "tok_visa", "orderId": "nope"}),
        );
        assert_eq!(reply.status, 404);
        let reply = buyer.post_json("/api/payments/refunds", &json!({}));
        assert_eq!(reply.status, 404);
        let reply = signed_out.get("/api/payments/config");
        assert_eq!(reply.status, 200);
        assert_eq!(reply.json(), json!({"provider": "sandbox"}));

        let order = order_at(app, &buyer, 20.5);
        let other = app.signed_up("other");
        let reply = eventually("payments to know the order", WAIT, || {
            let reply = pay(&other, &order, "tok_visa");
            (reply.status != 404).then_some(reply)
        });
        assert_eq!(reply.status, 401);
        assert_eq!(message(&reply), "Not authorized");

        // Declined: 400 with the provider's message, nothing stored or published.
        let reply = pay(&buyer, &order, "tok_chargeDeclined");
        assert_eq!(reply.status, 400);
        assert_eq!(
            reply.json(),
            json!({"errors": [{"message": "Your card was declined."}]})
        );
        let reply = pay(&buyer, &order, "tok_unheard_of");
        assert_eq!(reply.status, 400);
        assert_eq!(
            message(&reply),
            "No such token",
            "the token is not repeated"
        );
        assert!(payments_published(app).is_empty());
        assert_eq!(buyer.order_now(&order)["status"], "created");

        // Another card after a decline goes through, once.
        let reply = pay(&buyer, &order, "tok_visa");
        assert_eq!(reply.status, 201, "{}", reply.text());
        let reply = pay(&buyer, &order, "tok_mastercard");
        assert_eq!(reply.status, 400);
        assert_eq!(message(&reply), "Order is already paid");
        assert_eq!(payments_published(app).len(), 1);

        // A cancelled order cannot be paid.
        let cancelled = order_at(app, &buyer, 15.0);
        payments_caught_up(app, "order:created");
        let id = cancelled["id"].as_str().unwrap();
        assert_eq!(buyer.delete(&format!("/api/orders/{id}")).status, 204);
        eventually("the cancel to be published", WAIT, || {
            (!app.redis().stream("events:order:cancelled").is_empty()).then_some(())
        });
        payments_caught_up(app, "order:cancelled");
        let reply = pay(&buyer, &cancelled, "tok_visa");
        assert_eq!(reply.status, 400);
        assert_eq!(message(&reply), "Cannot pay for a cancelled order");
        assert_eq!(payments_published(app).len(), 1);
        assert_no_secrets_logged(app);
    });
}

#[test]
fn stripe_is_sent_one_form_encoded_charge_in_exact_cents() {
    with_stripe(|app, stripe| {
        let buyer = app.signed_up("buyer");
        let order = order_at(app, &buyer, 19.99);
        let reply = pay_when_known(&buyer, &order, "tok_visa");
        assert_eq!(reply.status, 201, "{}", reply.text());
        let payment_id = reply.json()["id"].as_str().unwrap().to_owned();
        let order_id = order["id"].as_str().unwrap();

        let requests = stripe.requests();
        assert_eq!(requests.len(), 1, "{requests:?}");
        let request = &requests[0];
        assert_eq!(
            (request.method.as_str(), request.path.as_str()),
            ("POST", "/v1/charges")
        );
        assert_eq!(
            request.header("authorization"),
            Some(format!("Bearer {SECRET_KEY}").as_str())
        );
        assert_eq!(
            request.header("content-type"),
            Some("application/x-www-form-urlencoded")
        );
        assert_eq!(
            request.header("idempotency-key"),
            Some(format!("charge-{order_id}-{payment_id}").as_str())
        );
        // 19.99 × 100 is 1998.9999999999998 in floating point: the amount is exact.
        assert_eq!(request.field("amount"), Some("1999"));
        assert_eq!(request.field("currency"), Some("usd"));
        assert_eq!(request.field("source"), Some("tok_visa"));
        assert_eq!(request.field("metadata[orderId]"), Some(order_id));
        assert_eq!(
            request.field("metadata[paymentId]"),
            Some(payment_id.as_str())
        );

        let charges = stripe.charges();
        assert_eq!(charges.len(), 1);
        assert_eq!(
            payments_published(app),
            [json!({"id": payment_id, "orderId": order_id, "stripeId": charges[0].id})]
        );
        buyer.wait_for_order_status(&order, "complete");

        let big = order_at(app, &buyer, 123_456.78);
        let reply = pay_when_known(&buyer, &big, "tok_visa");
        assert_eq!(reply.status, 201, "{}", reply.text());
        assert_eq!(stripe.charges()[1].amount, 12_345_678);
        let config = app.get("/api/payments/config").json();
        assert_eq!(
            config,
            json!({"provider": "stripe", "publishableKey": PUBLISHABLE_KEY})
        );
        assert_no_secrets_logged(app);
    });
}

#[test]
fn a_decline_stores_and_publishes_nothing_and_the_next_card_is_a_new_attempt() {
    with_stripe(|app, stripe| {
        let buyer = app.signed_up("buyer");
        let order = order_at(app, &buyer, 20.0);
        let reply = pay_when_known(&buyer, &order, "tok_chargeDeclined");
        assert_eq!(reply.status, 400);
        assert_eq!(message(&reply), "Your card was declined.");
        assert!(stripe.charges().is_empty());
        assert!(payments_published(app).is_empty());
        assert_eq!(buyer.order_now(&order)["status"], "created");

        let reply = pay(&buyer, &order, "tok_visa");
        assert_eq!(reply.status, 201, "{}", reply.text());
        let keys: Vec<String> = stripe
            .requests()
            .iter()
            .map(|request| request.header("idempotency-key").unwrap().to_owned())
            .collect();
        assert_eq!(keys.len(), 2);
        assert_ne!(keys[0], keys[1], "a new attempt has a new key");
        assert_eq!(stripe.charges().len(), 1);
        assert_eq!(payments_published(app).len(), 1);
    });
}

#[test]
fn a_lost_answer_gives_500_and_the_retry_completes_the_same_charge() {
    with_stripe(|app, stripe| {
        let buyer = app.signed_up("buyer");
        let order = order_at(app, &buyer, 20.0);
        payments_caught_up(app, "order:created");
        stripe.lose_next_answers(1);
        let reply = pay(&buyer, &order, "tok_visa");
        assert_eq!(reply.status, 500, "{}", reply.text());
        assert_eq!(message(&reply), "Something went wrong");
        // Stripe charged; payments does not know it yet, and claims nothing.
        assert_eq!(stripe.charges().len(), 1);
        assert!(payments_published(app).is_empty());
        assert_eq!(buyer.order_now(&order)["status"], "created");

        // The retry re-sends the attempt; only a wake of the bus that re-sent it first
        // (or is sending it right now) makes it "already paid" instead.
        let reply = pay(&buyer, &order, "tok_visa");
        match reply.status {
            201 => {}
            400 => assert_eq!(message(&reply), "Order is already paid"),
            _ => panic!("{}: {}", reply.status, reply.text()),
        }
        buyer.wait_for_order_status(&order, "complete");
        let requests = stripe.requests();
        assert!(requests.len() >= 2, "{requests:?}");
        assert!(
            requests
                .iter()
                .all(|request| request.header("idempotency-key")
                    == requests[0].header("idempotency-key")),
            "every send is the same attempt: {requests:?}"
        );
        let charges = stripe.charges();
        assert_eq!(charges.len(), 1, "charged once");
        let published = payments_published(app);
        assert_eq!(published.len(), 1, "{published:?}");
        assert_eq!(published[0]["stripeId"], charges[0].id.as_str());
    });
}

/// Wakes payments and waits until one of its wakes, settling included, began after
/// this call and ended: two more orders, one after the other, each applied by payments
/// (its doorbell then settles). The Redis trigger handles one message at a time, so the
/// second order's wake starts once the first one's has ended.
fn payments_woken(app: &App) {
    let someone = app.signed_up("someone");
    for _ in 0..2 {
        order_at(app, &someone, 5.0);
        payments_caught_up(app, "order:created");
    }
}

/// Pays for `order` while its buyer cancels it: the charge is held at the stand-in until
/// payments has applied the cancel, then lands, with the next `lost_answers` answers of
/// the stand-in lost on the way back. Returns the answer to the payment.
fn pay_while_the_buyer_cancels(
    app: &App,
    stripe: &StripeStub,
    buyer: &Client,
    order: &Value,
    lost_answers: usize,
) -> Reply {
    stripe.hold_charges();
    std::thread::scope(|scope| {
        let payer = scope.spawn(|| pay(buyer, order, "tok_visa"));
        stripe.wait_for_held_charges(1);
        let id = order["id"].as_str().unwrap();
        assert_eq!(buyer.delete(&format!("/api/orders/{id}")).status, 204);
        eventually("the cancel to be published", WAIT, || {
            (!app.redis().stream("events:order:cancelled").is_empty()).then_some(())
        });
        payments_caught_up(app, "order:cancelled");
        stripe.lose_next_answers(lost_answers);
        stripe.release_charges();
        payer.join().unwrap()
    })
}

/// The charge requests the stand-in received, by idempotency key.
fn charge_keys(stripe: &StripeStub) -> Vec<String> {
    stripe
        .requests()
        .iter()
        .filter(|request| request.path == "/v1/charges")
        .map(|request| request.header("idempotency-key").unwrap_or("").to_owned())
        .collect()
}

#[test]
fn an_attempt_whose_answer_was_lost_is_recorded_by_a_wake_without_a_retry() {
    with_stripe(|app, stripe| {
        let buyer = app.signed_up("buyer");
        let order = order_at(app, &buyer, 20.0);
        payments_caught_up(app, "order:created");
        stripe.lose_next_answers(1);
        let reply = pay(&buyer, &order, "tok_visa");
        assert_eq!(reply.status, 500, "{}", reply.text());
        assert!(payments_published(app).is_empty());

        // The buyer never asks again: the bus's tick (every 5 s) re-sends the attempt,
        // Stripe replays its first answer, and the order completes.
        buyer.wait_for_order_status(&order, "complete");
        let keys = charge_keys(stripe);
        assert_eq!(keys.len(), 2, "{keys:?}");
        assert_eq!(keys[0], keys[1], "the same attempt, with its key");
        let order_id = order["id"].as_str().unwrap();
        assert!(
            keys[0].starts_with(&format!("charge-{order_id}-")),
            "{keys:?}"
        );
        let charges = stripe.charges();
        assert_eq!(charges.len(), 1, "charged once");
        let published = payments_published(app);
        assert_eq!(published.len(), 1, "{published:?}");
        assert_eq!(published[0]["orderId"], order_id);
        assert_eq!(published[0]["stripeId"], charges[0].id.as_str());

        // Recorded: later wakes send nothing more, and paying again is refused.
        payments_woken(app);
        assert_eq!(charge_keys(stripe).len(), 2);
        assert_eq!(payments_published(app).len(), 1);
        let again = pay(&buyer, &order, "tok_visa");
        assert_eq!(message(&again), "Order is already paid");
        let settled = app.wait_for_log("the wake's line", |line| {
            line.contains(order_id) && line.contains("sent again by a wake")
        });
        assert!(settled.contains("succeeded"), "{settled}");
        assert_no_secrets_logged(app);
    });
}

#[test]
fn an_attempt_whose_answer_was_lost_for_an_order_cancelled_meanwhile_is_refunded() {
    with_stripe(|app, stripe| {
        let buyer = app.signed_up("buyer");
        let order = order_at(app, &buyer, 20.0);
        payments_caught_up(app, "order:created");
        // The buyer cancels while the charge is in flight, and its answer is lost.
        let reply = pay_while_the_buyer_cancels(app, stripe, &buyer, &order, 1);
        assert_eq!(reply.status, 500, "{}", reply.text());

        // A wake re-sends it, records the replayed charge as due back, and refunds it.
        let refunds = eventually("the refund", WAIT, || {
            let refunds = stripe.refunds();
            (!refunds.is_empty()).then_some(refunds)
        });
        let keys = charge_keys(stripe);
        assert_eq!(keys.len(), 2, "{keys:?}");
        assert_eq!(keys[0], keys[1], "the same attempt, with its key");
        let charges = stripe.charges();
        assert_eq!(charges.len(), 1, "charged once");
        assert_eq!(refunds.len(), 1);
        assert_eq!(refunds[0].charge, charges[0].id);
        let published = payments_published(app);
        assert_eq!(published.len(), 1, "the charge happened, and is published");
        let payment_id = published[0]["id"].as_str().unwrap();
        assert_eq!(
            refunds[0].idempotency_key.as_deref(),
            Some(format!("refund-{payment_id}").as_str())
        );
        eventually("orders to apply the payment", WAIT, || {
            app.redis()
                .group_caught_up("events:payment:created", "orders")
                .then_some(())
        });
        assert_eq!(buyer.order_now(&order)["status"], "cancelled");
        payments_woken(app);
        assert_eq!(stripe.refunds().len(), 1, "refunded once");
        assert_eq!(charge_keys(stripe).len(), 2);
        assert_no_secrets_logged(app);
    });
}

#[test]
fn a_declined_attempt_whose_answer_was_lost_is_deleted_by_a_wake() {
    with_stripe(|app, stripe| {
        let buyer = app.signed_up("buyer");
        let order = order_at(app, &buyer, 20.0);
        payments_caught_up(app, "order:created");
        stripe.lose_next_answers(1);
        let reply = pay(&buyer, &order, "tok_chargeDeclined");
        assert_eq!(reply.status, 500, "{}", reply.text());

        // A wake re-sends it; Stripe replays the decline, and the attempt is deleted.
        let order_id = order["id"].as_str().unwrap();
        let settled = app.wait_for_log("the wake's line", |line| {
            line.contains(order_id) && line.contains("sent again by a wake")
        });
        assert!(settled.contains("declined"), "{settled}");
        let keys = charge_keys(stripe);
        assert_eq!(keys.len(), 2, "{keys:?}");
        assert_eq!(keys[0], keys[1], "the same attempt, with its key");
        assert!(stripe.charges().is_empty());
        assert!(payments_published(app).is_empty());
        assert_eq!(buyer.order_now(&order)["status"], "created");

        // Deleted, so the next card is a new attempt with a new key.
        let reply = pay(&buyer, &order, "tok_visa");
        assert_eq!(reply.status, 201, "{}", reply.text());
        let keys = charge_keys(stripe);
        assert_eq!(keys.len(), 3, "{keys:?}");
        assert_ne!(keys[2], keys[0], "a new attempt has a new key");
        assert_eq!(stripe.charges().len(), 1);
        assert_eq!(payments_published(app).len(), 1);
        assert_no_secrets_logged(app);
    });
}

#[test]
fn an_attempt_in_flight_is_not_sent_again_by_a_wake() {
    with_stripe(|app, stripe| {
        let buyer = app.signed_up("buyer");
        let order = order_at(app, &buyer, 20.0);
        payments_caught_up(app, "order:created");
        stripe.hold_charges();
        let reply = std::thread::scope(|scope| {
            let payer = scope.spawn(|| pay(&buyer, &order, "tok_visa"));
            stripe.wait_for_held_charges(1);
            // Wakes come while the buyer's request waits for Stripe: they leave it be.
            payments_woken(app);
            let keys = charge_keys(stripe);
            assert_eq!(keys.len(), 1, "sent while in flight: {keys:?}");
            stripe.release_charges();
            payer.join().unwrap()
        });
        assert_eq!(reply.status, 201, "{}", reply.text());
        assert_eq!(charge_keys(stripe).len(), 1);
        assert_eq!(stripe.charges().len(), 1);
        assert_eq!(payments_published(app).len(), 1);
        buyer.wait_for_order_status(&order, "complete");
    });
}

#[test]
fn an_unreachable_provider_gives_500_and_nothing_is_paid() {
    for runtime in Runtime::all() {
        // A loopback port nobody listens on.
        let closed = format!("http://127.0.0.1:{}", harness::free_port());
        let app = spawn(runtime, 60, Some(&closed));
        eprintln!("on {}", app.runtime.name());
        let buyer = app.signed_up("buyer");
        let order = order_at(&app, &buyer, 20.0);
        let reply = pay_when_known(&buyer, &order, "tok_visa");
        assert_eq!(reply.status, 500, "{}", reply.text());
        // Not stored as paid: asking again tries again. The attempt is released at
        // once, so the bus's tick (every 5 s) sends it too; while a wake is sending it,
        // the buyer is told it is being paid (400), and asks again.
        let reply = eventually("a payment that is not being sent by a wake", WAIT, || {
            let reply = pay(&buyer, &order, "tok_visa");
            let sending = reply.status == 400 && message(&reply) == "Order is already paid";
            (!sending).then_some(reply)
        });
        assert_eq!(reply.status, 500, "{}", reply.text());
        let order_id = order["id"].as_str().unwrap();
        eventually("the log of both sends", WAIT, || {
            let sent = app
                .logs()
                .into_iter()
                .filter(|line| line.contains(order_id) && line.contains("=> stays pending"));
            (sent.count() >= 2).then_some(())
        });
        assert!(payments_published(&app).is_empty());
        assert_eq!(buyer.order_now(&order)["status"], "created");
        assert_no_secrets_logged(&app);
    }
}

#[test]
fn concurrent_payments_for_one_order_charge_once() {
    with_stripe(|app, stripe| {
        let buyer = app.signed_up("buyer");
        let order = order_at(app, &buyer, 20.0);
        payments_caught_up(app, "order:created");
        stripe.hold_charges();
        let replies = std::thread::scope(|scope| {
            let payers: Vec<_> = (0..5)
                .map(|_| scope.spawn(|| pay(&buyer, &order, "tok_visa")))
                .collect();
            stripe.wait_for_held_charges(1);
            // The others find the payment in flight and answer without waiting.
            eventually("the other payments to be refused", WAIT, || {
                (payers.iter().filter(|payer| payer.is_finished()).count() == 4).then_some(())
            });
            stripe.release_charges();
            payers
                .into_iter()
                .map(|payer| payer.join().unwrap())
                .collect::<Vec<Reply>>()
        });
        let mut statuses: Vec<u16> = replies.iter().map(|reply| reply.status).collect();
        statuses.sort_unstable();
        assert_eq!(statuses, [201, 400, 400, 400, 400]);
        for reply in replies.iter().filter(|reply| reply.status == 400) {
            assert_eq!(message(reply), "Order is already paid");
        }
        assert_eq!(stripe.requests().len(), 1);
        assert_eq!(stripe.charges().len(), 1);
        assert_eq!(payments_published(app).len(), 1);
    });
}

#[test]
fn a_charge_that_lands_after_the_order_was_cancelled_is_refunded() {
    with_stripe(|app, stripe| {
        let buyer = app.signed_up("buyer");
        let order = order_at(app, &buyer, 20.0);
        payments_caught_up(app, "order:created");
        let reply = pay_while_the_buyer_cancels(app, stripe, &buyer, &order, 0);
        assert_eq!(reply.status, 400, "{}", reply.text());
        assert_eq!(message(&reply), "Cannot pay for a cancelled order");
        let charges = stripe.charges();
        assert_eq!(charges.len(), 1);
        let refunds = eventually("the refund", WAIT, || {
            let refunds = stripe.refunds();
            (!refunds.is_empty()).then_some(refunds)
        });
        assert_eq!(refunds.len(), 1);
        assert_eq!(refunds[0].charge, charges[0].id);
        let published = payments_published(app);
        assert_eq!(published.len(), 1, "the charge happened, and is published");
        let payment_id = published[0]["id"].as_str().unwrap();
        assert_eq!(
            refunds[0].idempotency_key.as_deref(),
            Some(format!("refund-{payment_id}").as_str())
        );
        assert_eq!(buyer.order_now(&order)["status"], "cancelled");
    });
}

#[test]
fn a_paid_order_cancelled_anyway_is_refunded_once() {
    with_stripe(|app, stripe| {
        let buyer = app.signed_up("buyer");
        let order = order_at(app, &buyer, 20.0);
        let reply = pay_when_known(&buyer, &order, "tok_visa");
        assert_eq!(reply.status, 201, "{}", reply.text());
        // orders cancelled it at the deadline before it heard of the payment: the
        // cancel reaches payments after the charge.
        let cancel = event(
            "order:cancelled",
            json!({"id": order["id"], "version": 1, "ticket": {"id": order["ticket"]["id"]}}),
        );
        app.redis().publish_event(&cancel);
        let refunds = eventually("the refund", WAIT, || {
            let refunds = stripe.refunds();
            (!refunds.is_empty()).then_some(refunds)
        });
        assert_eq!(refunds[0].charge, stripe.charges()[0].id);
        // The same event again, and another cancel of that version: nothing more.
        app.redis().publish_event(&cancel);
        app.redis().publish_event(&event(
            "order:cancelled",
            json!({"id": order["id"], "version": 1, "ticket": {"id": order["ticket"]["id"]}}),
        ));
        payments_caught_up(app, "order:cancelled");
        assert_eq!(stripe.refunds().len(), 1);
        let reply = pay(&buyer, &order, "tok_visa");
        assert_eq!(message(&reply), "Cannot pay for a cancelled order");
    });
}

#[test]
fn a_cancel_waits_for_its_order_past_the_maximum_deliveries() {
    for runtime in Runtime::all() {
        // Two deliveries at most, 300 ms apart: the cancel fails on each while its
        // order:created is held up (relayed again after Redis lost it, say).
        let app = start(runtime, 60, |app| app.variable("event_max_deliveries", "2"));
        let buyer = app.signed_up("buyer");
        let order_id = harness::random_hex(16);
        publish_cancel(&app, &order_id);
        // Each tick (5 s) delivers it again: wait for a third delivery.
        app.wait_for_log("the cancel delivered past the maximum", |line| {
            line.contains(&order_id) && line.contains("failed on delivery 3 of 2")
        });
        publish_creation(&app, &buyer, &order_id);
        payments_caught_up(&app, "order:created");
        payments_caught_up(&app, "order:cancelled");
        // (tickets gives up on that order:created: its ticket `t1` does not exist.)
        let given_up: Vec<_> = app
            .redis()
            .dead_letters()
            .into_iter()
            .filter(|(_, fields)| {
                fields
                    .iter()
                    .any(|(name, value)| name == "group" && value == "payments")
            })
            .collect();
        assert!(
            given_up.is_empty(),
            "a cancel waiting for its order is not given up on: {given_up:?}"
        );
        let reply = pay(&buyer, &json!({"id": order_id}), "tok_visa");
        assert_eq!(message(&reply), "Cannot pay for a cancelled order");
    }
}

#[test]
fn a_cancel_that_overtakes_its_order_is_applied_after_it() {
    on_every_runtime(sandbox, |app| {
        let buyer = app.signed_up("buyer");
        let order_id = harness::random_hex(16);
        // order:cancelled (version 1) first: it waits for version 0.
        publish_cancel(app, &order_id);
        app.wait_for_log("the cancel waiting", |line| {
            line.contains(&order_id) && line.contains("waits for version 0")
        });
        publish_creation(app, &buyer, &order_id);
        payments_caught_up(app, "order:created");
        payments_caught_up(app, "order:cancelled");
        let reply = pay(&buyer, &json!({"id": order_id}), "tok_visa");
        assert_eq!(reply.status, 400, "{}", reply.text());
        assert_eq!(message(&reply), "Cannot pay for a cancelled order");
    });
}

// Without a provider ---------------------------------------------------------------------

/// The answer to every payment while no provider is configured.
const NOT_CONFIGURED: &str = r#"{"errors":[{"message":"Payments are not configured"}]}"#;

/// Pays `times` times while no provider is configured: each answer is 503 with exactly
/// API.md's body, nothing reaches Stripe's stand-in, nothing is stored or published,
/// the config route says `none`, and the log says why once, with `reason` in it.
fn assert_payments_refused(app: &App, stripe: &StripeStub, reason: &str) {
    let buyer = app.signed_up("buyer");
    let order = order_at(app, &buyer, 20.0);
    payments_caught_up(app, "order:created");
    // A token that would be in the database if a payment had been stored.
    let token = format!("tok_visa_{}", harness::random_hex(8));
    for _ in 0..3 {
        let reply = pay(&buyer, &order, &token);
        assert_eq!(reply.status, 503, "{}", reply.text());
        assert_eq!(reply.text(), NOT_CONFIGURED);
    }
    // The session is checked first; the body is not read at all.
    assert_eq!(
        app.new_client()
            .post_json("/api/payments", &json!({}))
            .status,
        401
    );
    let reply = buyer.post_json("/api/payments", &json!({}));
    assert_eq!(
        (reply.status, reply.text()),
        (503, NOT_CONFIGURED.to_owned())
    );

    assert!(stripe.requests().is_empty(), "{:?}", stripe.requests());
    assert!(payments_published(app).is_empty());
    assert_eq!(buyer.order_now(&order)["status"], "created");
    let db = std::fs::read(app.sqlite_path("payments")).expect("the payments database");
    let holds = |text: &str| {
        db.windows(text.len())
            .any(|window| window == text.as_bytes())
    };
    assert!(
        holds(order["id"].as_str().unwrap()),
        "payments holds its copy of the order"
    );
    assert!(!holds(&token), "no payment was stored");

    let config = app.get("/api/payments/config");
    assert_eq!(config.status, 200);
    assert_eq!(config.json(), json!({"provider": "none"}));

    // Once, not per request. The log is one stream: once it shows the last request,
    // it holds every line printed before.
    app.wait_for_log("the last request in the log", |line| {
        line.contains("GET /api/payments/config -> 200")
    });
    let warnings: Vec<String> = app
        .logs()
        .into_iter()
        .filter(|line| line.contains("payments are not configured"))
        .collect();
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    assert!(warnings[0].contains(reason), "{}", warnings[0]);
    assert_no_secrets_logged(app);
}

#[test]
fn stripe_without_a_secret_key_refuses_payments_and_charges_nothing() {
    for runtime in Runtime::all() {
        let stripe = StripeStub::start(SECRET_KEY);
        let app = start(runtime, 60, |app| {
            app.variable("payment_provider", "stripe")
                .variable("stripe_publishable_key", PUBLISHABLE_KEY)
                .variable("stripe_api_base", &stripe.api_base())
        });
        eprintln!("on {}", app.runtime.name());
        assert_payments_refused(&app, &stripe, "stripe_secret_key is empty");
    }
}

#[test]
fn the_sandbox_is_chosen_only_by_name() {
    for runtime in Runtime::all() {
        // spin.toml's default is Stripe: without a key, payments are refused.
        let stripe = StripeStub::start(SECRET_KEY);
        let app = start(runtime.clone(), 60, |app| {
            app.without_variable("payment_provider")
                .variable("stripe_api_base", &stripe.api_base())
        });
        eprintln!("on {}: spin.toml's default", app.runtime.name());
        assert_payments_refused(&app, &stripe, "stripe_secret_key is empty");
        drop(app);

        // A name payments does not know chooses nothing, whatever else is set.
        let stripe = StripeStub::start(SECRET_KEY);
        let app = start(runtime.clone(), 60, |app| {
            app.variable("payment_provider", "Sandbox")
                .variable("stripe_secret_key", SECRET_KEY)
                .variable("stripe_api_base", &stripe.api_base())
        });
        eprintln!("on {}: an unknown name", app.runtime.name());
        assert_payments_refused(&app, &stripe, "neither `stripe` nor `sandbox`");
        drop(app);

        // Named, the sandbox charges, even with a Stripe key at hand.
        let stripe = StripeStub::start(SECRET_KEY);
        let app = start(runtime, 60, |app| {
            app.variable("payment_provider", "sandbox")
                .variable("stripe_secret_key", SECRET_KEY)
                .variable("stripe_publishable_key", PUBLISHABLE_KEY)
                .variable("stripe_api_base", &stripe.api_base())
        });
        eprintln!("on {}: the sandbox by name", app.runtime.name());
        assert_eq!(
            app.get("/api/payments/config").json(),
            json!({"provider": "sandbox"})
        );
        let buyer = app.signed_up("buyer");
        let order = order_at(&app, &buyer, 20.0);
        let reply = pay_when_known(&buyer, &order, "tok_visa");
        assert_eq!(reply.status, 201, "{}", reply.text());
        let published = payments_published(&app);
        assert_eq!(published.len(), 1);
        let stripe_id = published[0]["stripeId"].as_str().unwrap();
        assert!(stripe_id.starts_with("ch_sandbox_"), "{stripe_id}");
        assert!(stripe.requests().is_empty());
        assert!(
            !app.logs()
                .iter()
                .any(|line| line.contains("payments are not configured")),
            "no warning with a provider"
        );
    }
}
