//! Component tests of payments in spin-test's format (crates/spin-test-sdk): each
//! `#[spin_test]` is exported as `spin-test-<name>`, which `host test` (or spin-test)
//! runs against the payments component, with the variables and outbound HTTP answers
//! the test sets. Routes and bodies as in docs/API.md, "payments".

use serde_json::json;
use spin_test_sdk::{Request, respond, set_variable, spin_test};

/// The variables every test gives the app: the key sessions are signed with.
fn app() {
    set_variable("jwt_key", "the component tests' signing key");
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
