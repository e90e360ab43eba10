//! Component tests of auth in spin-test's format (crates/spin-test-sdk): the session
//! cookie's flags, and tokens that are expired (with the app's clock moved on) or
//! tampered with, which count as signed out (docs/API.md, "Session").

use std::time::{SystemTime, UNIX_EPOCH};

use component_test_support::{app, sign_up};
use serde_json::{Value, json};
use spin_test_sdk::host::set_wall_clock;
use spin_test_sdk::{Request, spin_test};

fn current_user(session: &str) -> Value {
    let response = Request::get("/api/users/currentuser")
        .header("cookie", session)
        .send();
    assert_eq!(response.status(), 200, "{}", response.text());
    response.json()["currentUser"].clone()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}

/// Served under a public name, the cookie is `Secure`, `HttpOnly`, `SameSite=Lax`, for
/// the whole site, for a day; on a loopback name it cannot be `Secure` (browsers would
/// not send it back over http).
#[spin_test]
fn the_session_cookie_has_its_flags() {
    app();
    let response = Request::post("/api/users/signup")
        .authority("tickets.example.com")
        .json(&json!({"email": "a@example.com", "password": "secret"}))
        .send();
    assert_eq!(response.status(), 201, "{}", response.text());
    let cookie = response.header("set-cookie").expect("a session cookie");
    let flags: Vec<&str> = cookie.split("; ").skip(1).collect();
    assert_eq!(
        flags,
        [
            "Path=/",
            "HttpOnly",
            "SameSite=Lax",
            "Max-Age=86400",
            "Secure"
        ],
        "{cookie}"
    );

    let local = Request::post("/api/users/signin")
        .json(&json!({"email": "a@example.com", "password": "secret"}))
        .send();
    let cookie = local.header("set-cookie").expect("a session cookie");
    assert!(!cookie.contains("Secure"), "{cookie}");
}

/// A day after signing in (the app's clock moved on), the session has expired.
#[spin_test]
fn a_session_expires_after_a_day() {
    app();
    let (session, id) = sign_up("a@example.com");
    assert_eq!(current_user(&session)["id"], id.as_str());

    set_wall_clock(now() + 86_400 - 60);
    assert_eq!(current_user(&session)["id"], id.as_str(), "expired early");
    set_wall_clock(now() + 86_400 + 60);
    assert_eq!(current_user(&session), Value::Null, "still signed in");
}

/// A token whose payload was changed (another user id) no longer matches its
/// signature: signed out, not an error.
#[spin_test]
fn a_tampered_token_counts_as_signed_out() {
    app();
    let (session, _) = sign_up("a@example.com");
    let token = session
        .strip_prefix("session=")
        .expect("the session cookie");
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    assert_eq!(parts.len(), 3, "a JWT: {token}");
    // Flip one character of the payload.
    let payload = &mut parts[1];
    let last = payload.pop().expect("a payload");
    payload.push(if last == 'A' { 'B' } else { 'A' });
    let tampered = format!("session={}", parts.join("."));
    assert_eq!(current_user(&tampered), Value::Null);

    let mut unsigned = parts.clone();
    unsigned[2] = String::new();
    assert_eq!(
        current_user(&format!("session={}", unsigned.join("."))),
        Value::Null
    );
}

/// Signing out clears the cookie: empty, expired in 1970.
#[spin_test]
fn signing_out_clears_the_cookie() {
    app();
    let (session, _) = sign_up("a@example.com");
    let response = Request::post("/api/users/signout")
        .header("cookie", &session)
        .send();
    assert_eq!(response.status(), 200, "{}", response.text());
    let cookie = response.header("set-cookie").expect("a clearing cookie");
    assert!(
        cookie.starts_with("session=; ")
            && cookie.contains("Expires=Thu, 01 Jan 1970 00:00:00 GMT"),
        "{cookie}"
    );
}
