//! Component tests of payments in spin-test's format (crates/spin-test-sdk): each
//! `#[spin_test]` is exported as `spin-test-<name>`, which `host test` (or spin-test)
//! runs against the payments component, with the variables and outbound HTTP answers
//! the test sets. Routes and bodies as in docs/API.md, "payments".

use component_test_support::{app, app_with_bus, envelope, publish, published, sign_up};
use serde_json::{Value, json};
use spin_test_sdk::host::{OutboundFailure, fail_request, outbound_requests};
use spin_test_sdk::{Request, Response, respond, set_variable, spin_test};

const CHARGES: &str = "https://api.stripe.com/v1/charges";
const REFUNDS: &str = "https://api.stripe.com/v1/refunds";

/// Stripe as the provider, with a test key.
fn stripe() {
    set_variable("payment_provider", "stripe");
    set_variable("stripe_secret_key", "sk_test_of_the_component_tests");
}

/// A buyer, and an order of theirs that payments heard of (`order:created`, version
/// 0, $20.50, due in an hour).
fn buyer_with_order(order_id: &str) -> String {
    let (session, user) = sign_up("buyer@example.com");
    let order = envelope(
        &format!("created-{order_id}"),
        "order:created",
        "orders",
        json!({
            "id": order_id,
            "version": 0,
            "status": "created",
            "userId": user,
            "expiresAt": "2099-01-01T00:00:00.000Z",
            "ticket": {"id": "t1", "price": 20.5},
        }),
    );
    publish("payments-events", &order).expect("payments takes the order");
    session
}

fn pay(session: &str, order_id: &str, token: &str) -> Response {
    Request::post("/api/payments")
        .header("cookie", session)
        .json(&json!({"token": token, "orderId": order_id}))
        .send()
}

fn message(response: &Response) -> Value {
    response.json()["errors"][0]["message"].clone()
}

/// The `Idempotency-Key` of each charge the app sent Stripe, in order.
fn charge_keys() -> Vec<String> {
    outbound_requests()
        .into_iter()
        .filter(|request| request.url == CHARGES)
        .map(|request| {
            request
                .headers
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case("idempotency-key"))
                .map(|(_, value)| value.clone())
                .expect("every charge has an Idempotency-Key")
        })
        .collect()
}

fn charged(id: &str) -> (u16, &'static [(&'static str, &'static str)], String) {
    (
        200,
        &[("content-type", "application/json")],
        json!({"id": id, "object": "charge", "status": "succeeded"}).to_string(),
    )
}

/// A card Stripe declines: 400 with Stripe's message for the buyer; nothing is stored
/// or published, and the charge was in cents, USD, with the secret key.
#[spin_test]
fn a_declined_card_is_a_bad_request_with_stripe_s_message() {
    app_with_bus();
    stripe();
    let session = buyer_with_order("o1");
    respond(
        CHARGES,
        402,
        &[("content-type", "application/json")],
        br#"{"error":{"type":"card_error","code":"card_declined","message":"Your card was declined."}}"#,
    );
    let response = pay(&session, "o1", "tok_chargeDeclined");
    assert_eq!(response.status(), 400, "{}", response.text());
    assert_eq!(message(&response), "Your card was declined.");
    assert!(published("payment:created").is_empty());

    let requests = outbound_requests();
    assert_eq!(requests.len(), 1, "one charge: {requests:?}");
    let charge = &requests[0];
    assert_eq!(charge.method, "POST");
    let body = String::from_utf8_lossy(&charge.body);
    assert!(
        body.starts_with("amount=2050&currency=usd&source=tok_chargeDeclined"),
        "{body}"
    );
    assert!(
        charge
            .headers
            .iter()
            .any(|(name, value)| name.eq_ignore_ascii_case("authorization")
                && value == "Bearer sk_test_of_the_component_tests"),
        "{:?}",
        charge.headers
    );
}

/// After a decline the buyer tries another card: a new attempt, with a key of its own
/// (Stripe would otherwise replay the decline), and the order is paid.
#[spin_test]
fn another_card_after_a_decline_is_a_new_attempt_with_a_new_key() {
    app_with_bus();
    stripe();
    let session = buyer_with_order("o1");
    respond(
        CHARGES,
        402,
        &[],
        br#"{"error":{"type":"card_error","message":"Declined."}}"#,
    );
    assert_eq!(pay(&session, "o1", "tok_chargeDeclined").status(), 400);
    let (status, headers, body) = charged("ch_second");
    respond(CHARGES, status, headers, body.as_bytes());
    let response = pay(&session, "o1", "tok_visa");
    assert_eq!(response.status(), 201, "{}", response.text());

    let keys = charge_keys();
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert_ne!(
        keys[0], keys[1],
        "a new attempt reused the declined one's key"
    );
    let payments = published("payment:created");
    assert_eq!(payments.len(), 1, "{payments:?}");
    assert_eq!(payments[0]["data"]["stripeId"], "ch_second");
    assert_eq!(payments[0]["data"]["orderId"], "o1");
}

/// Stripe's answer is lost (a 5xx): 500, the attempt stays open, and the buyer's next
/// request sends the same attempt again, with the same key, so Stripe charges once.
#[spin_test]
fn a_lost_answer_is_sent_again_with_the_same_key() {
    app_with_bus();
    stripe();
    let session = buyer_with_order("o1");
    respond(CHARGES, 503, &[], b"upstream unavailable");
    let response = pay(&session, "o1", "tok_visa");
    assert_eq!(response.status(), 500, "{}", response.text());
    assert!(published("payment:created").is_empty());

    let (status, headers, body) = charged("ch_once");
    respond(CHARGES, status, headers, body.as_bytes());
    let response = pay(&session, "o1", "tok_visa");
    assert_eq!(response.status(), 201, "{}", response.text());

    let keys = charge_keys();
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert_eq!(keys[0], keys[1], "the retry of one attempt changed its key");
    assert_eq!(published("payment:created").len(), 1);
}

/// Stripe does not answer in time (a timeout, without the wait): 500, and the buyer's
/// next request sends the same attempt again.
#[spin_test]
fn a_timed_out_charge_is_sent_again_with_the_same_key() {
    app_with_bus();
    stripe();
    let session = buyer_with_order("o1");
    fail_request(CHARGES, OutboundFailure::ConnectionReadTimeout);
    let response = pay(&session, "o1", "tok_visa");
    assert_eq!(response.status(), 500, "{}", response.text());

    let (status, headers, body) = charged("ch_late");
    respond(CHARGES, status, headers, body.as_bytes());
    assert_eq!(pay(&session, "o1", "tok_visa").status(), 201);
    let keys = charge_keys();
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert_eq!(keys[0], keys[1], "the retry of one attempt changed its key");
}

/// A paid order cancelled anyway (a race at the deadline): payments refunds the charge
/// through Stripe.
#[spin_test]
fn a_paid_order_cancelled_anyway_is_refunded() {
    app_with_bus();
    stripe();
    let session = buyer_with_order("o1");
    let (status, headers, body) = charged("ch_paid");
    respond(CHARGES, status, headers, body.as_bytes());
    assert_eq!(pay(&session, "o1", "tok_visa").status(), 201);

    respond(
        REFUNDS,
        200,
        &[("content-type", "application/json")],
        br#"{"id":"re_1","object":"refund","charge":"ch_paid","status":"succeeded"}"#,
    );
    let cancelled = envelope(
        "cancelled-o1",
        "order:cancelled",
        "orders",
        json!({"id": "o1", "version": 1, "ticket": {"id": "t1"}}),
    );
    publish("payments-events", &cancelled).expect("payments takes the cancellation");

    let refunds: Vec<_> = outbound_requests()
        .into_iter()
        .filter(|request| request.url == REFUNDS)
        .collect();
    assert_eq!(refunds.len(), 1, "{refunds:?}");
    let body = String::from_utf8_lossy(&refunds[0].body);
    assert!(body.contains("charge=ch_paid"), "{body}");
}

/// The payment provider the web app is told to use is the one the variables choose.
#[spin_test]
fn config_names_the_sandbox_when_it_is_chosen() {
    app();
    set_variable("payment_provider", "sandbox");
    let response = Request::get("/api/payments/config").send();
    assert_eq!(response.status(), 200, "{}", response.text());
    assert_eq!(response.json(), json!({"provider": "sandbox"}));
}

/// With Stripe, the publishable key (never the secret one) goes to the web app.
#[spin_test]
fn config_gives_stripe_s_publishable_key() {
    app();
    set_variable("payment_provider", "stripe");
    set_variable("stripe_secret_key", "sk_test_of_the_component_tests");
    set_variable("stripe_publishable_key", "pk_test_of_the_component_tests");
    let response = Request::get("/api/payments/config").send();
    assert_eq!(response.status(), 200, "{}", response.text());
    assert_eq!(
        response.json(),
        json!({"provider": "stripe", "publishableKey": "pk_test_of_the_component_tests"})
    );
}

/// The session is checked before anything else: Stripe, ready to accept the charge,
/// is never asked.
#[spin_test]
fn a_payment_without_a_session_is_not_authorized() {
    app();
    set_variable("payment_provider", "stripe");
    set_variable("stripe_secret_key", "sk_test_of_the_component_tests");
    respond(
        "https://api.stripe.com/v1/charges",
        200,
        &[("content-type", "application/json")],
        br#"{"id": "ch_of_the_component_tests", "status": "succeeded"}"#,
    );
    let response = Request::post("/api/payments")
        .json(&json!({"token": "tok_visa", "orderId": "o1"}))
        .send();
    assert_eq!(response.status(), 401, "{}", response.text());
    assert_eq!(
        response.json(),
        json!({"errors": [{"message": "Not authorized"}]})
    );
}
