//! What the services' component tests (`components/<service>/tests/component/`) share:
//! the app's variables, a signed-in session, and events put on the bus the way the
//! services publish them (a stream entry and a doorbell, docs/API.md "Events").
//!
//! Everything here but [`app`] and [`sign_up`] uses `spin_test_sdk::host`, so the tests
//! that use it run on the project's host only.

use serde_json::{Value, json};
use spin_test_sdk::host::{self, RedisResult};
use spin_test_sdk::{Request, set_variable};

/// The key the tests' sessions are signed with.
pub const JWT_KEY: &str = "the component tests' signing key";

/// Gives the app the variables every test needs: the session key, and the offline
/// payment provider (a test of Stripe chooses it again).
pub fn app() {
    set_variable("jwt_key", JWT_KEY);
    set_variable("payment_provider", "sandbox");
}

/// [`app`], with the event bus on the test's own Redis database.
pub fn app_with_bus() {
    app();
    set_variable("redis_url", &host::redis_url());
}

/// A new user's session: the `Cookie` header value (`session=…`) and the user's id.
pub fn sign_up(email: &str) -> (String, String) {
    let response = Request::post("/api/users/signup")
        .json(&json!({"email": email, "password": "secret"}))
        .send();
    assert_eq!(response.status(), 201, "sign-up: {}", response.text());
    let cookie = response
        .header("set-cookie")
        .expect("sign-up sets the session cookie");
    let session = cookie
        .split(';')
        .next()
        .expect("a cookie has a name=value")
        .to_owned();
    let id = response.json()["id"]
        .as_str()
        .expect("the user has an id")
        .to_owned();
    (session, id)
}

/// An event envelope as the services write it.
pub fn envelope(id: &str, subject: &str, source: &str, data: Value) -> Value {
    json!({
        "id": id,
        "subject": subject,
        "occurredAt": "2026-12-01T10:00:00.000Z",
        "source": source,
        "data": data,
    })
}

/// Puts `envelope` on the bus (an entry of the stream `events:<subject>`) and rings
/// its doorbell at `component`, which handles it as its Redis trigger would; Err says
/// why the component failed.
pub fn publish(component: &str, envelope: &Value) -> Result<(), String> {
    let subject = envelope["subject"]
        .as_str()
        .expect("an envelope has a subject");
    let text = envelope.to_string();
    host::redis(
        "XADD",
        &[
            format!("events:{subject}").as_bytes(),
            b"*",
            b"e",
            text.as_bytes(),
        ],
    );
    host::deliver_redis_message(component, subject, text.as_bytes())
}

/// The envelopes on the stream `events:<subject>`, oldest first.
pub fn published(subject: &str) -> Vec<Value> {
    let reply = host::redis(
        "XRANGE",
        &[format!("events:{subject}").as_bytes(), b"-", b"+"],
    );
    // Flattened: for each entry its id, then field and value pairs (`e`, the envelope).
    let mut envelopes = Vec::new();
    let mut words = reply.iter().map(|result| match result {
        RedisResult::Binary(bytes) => String::from_utf8_lossy(bytes).into_owned(),
        RedisResult::Status(text) => text.clone(),
        RedisResult::Int64(int) => int.to_string(),
        RedisResult::Nil => String::new(),
    });
    while let Some(word) = words.next() {
        if word == "e"
            && let Some(text) = words.next()
        {
            envelopes.push(serde_json::from_str(&text).expect("an entry holds an envelope"));
        }
    }
    envelopes
}
