//! The people of a scenario: users signed up with one password per run (so the secrets
//! scenario knows what to look for), and requests that report a dead app instead of
//! panicking.

use std::sync::OnceLock;

use harness::{App, Client, Method};
use serde_json::{Value, json};

/// The password of every user of this run.
pub fn password() -> &'static str {
    static PASSWORD: OnceLock<String> = OnceLock::new();
    PASSWORD.get_or_init(|| format!("pw{}", harness::random_hex(6)))
}

/// `<name>@example.com`, signed up (and so signed in) on `app`.
pub fn sign_up(app: &App, name: &str) -> Client {
    let client = app.new_client();
    let reply = client.post_json(
        "/api/users/signup",
        &json!({"email": format!("{name}@example.com"), "password": password()}),
    );
    assert_eq!(reply.status, 201, "signing up {name}: {}", reply.text());
    client
}

/// `<name>@example.com`, signed in on `app` (another process of the same app).
pub fn sign_in(app: &App, name: &str) -> Client {
    let client = app.new_client();
    let reply = client.post_json(
        "/api/users/signin",
        &json!({"email": format!("{name}@example.com"), "password": password()}),
    );
    assert_eq!(reply.status, 200, "signing in {name}: {}", reply.text());
    client
}

/// A request's answer, or why there was none (the app is down, or died mid-answer).
pub fn try_send(
    client: &Client,
    method: Method,
    path: &str,
    body: Option<&Value>,
) -> Result<(u16, Value), String> {
    let mut request = client.request(method, path);
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = request.send().map_err(|err| err.to_string())?;
    let status = response.status().as_u16();
    let bytes = response.bytes().map_err(|err| err.to_string())?;
    Ok((
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    ))
}
