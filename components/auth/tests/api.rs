//! auth through the real host (and real Spin, where installed): HTTP in, the built
//! component, SQLite behind. One test per behaviour of API.md's auth section.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use harness::{App, JWT_KEY as KEY, Method, Reply, on_every_runtime, spawn_app_on};
use serde_json::{Value, json};

fn credentials(email: &str, password: &str) -> Value {
    json!({ "email": email, "password": password })
}

fn sign_up(client: &harness::Client, email: &str, password: &str) -> Reply {
    client.post_json("/api/users/signup", &credentials(email, password))
}

fn message(text: &str) -> Value {
    json!([{ "message": text }])
}

fn session_cookie(reply: &Reply) -> String {
    reply.header("set-cookie").expect("a Set-Cookie header")
}

fn current_user(client: &harness::Client) -> Value {
    let reply = client.get("/api/users/currentuser");
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply.json()["currentUser"].clone()
}

/// `GET /api/users/currentuser` with exactly this cookie, from a client without a jar.
fn current_user_with_token(app: &App, token: &str) -> Value {
    let reply = app.new_client().send(
        app.new_client()
            .request(Method::GET, "/api/users/currentuser")
            .header("cookie", format!("session={token}")),
    );
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply.json()["currentUser"].clone()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

// Sign up -----------------------------------------------------------------------------

#[test]
fn sign_up_creates_the_user_and_signs_them_in() {
    on_every_runtime(spawn_app_on, |app| {
        let reply = sign_up(app, "new@example.com", "secret1");
        assert_eq!(reply.status, 201, "{}", reply.text());
        let body = reply.json();
        assert_eq!(body["email"], "new@example.com");
        let id = body["id"].as_str().expect("an id");
        assert!(!id.is_empty());
        assert_eq!(
            body.as_object().unwrap().keys().collect::<Vec<_>>(),
            ["email", "id"],
            "exactly {{id, email}}: {body}"
        );

        let user = current_user(app);
        assert_eq!(user["id"], id);
        assert_eq!(user["email"], "new@example.com");
        assert!(
            user["iat"]
                .as_u64()
                .is_some_and(|iat| iat.abs_diff(now()) < 60),
            "{user}"
        );
        assert_eq!(user.as_object().unwrap().len(), 3, "{user}");
    });
}

#[test]
fn the_session_cookie_is_http_only_lax_and_not_secure_on_loopback() {
    on_every_runtime(spawn_app_on, |app| {
        let cookie = session_cookie(&sign_up(app, "cookie@example.com", "secret1"));
        let attributes: Vec<&str> = cookie.split(';').map(str::trim).collect();
        assert!(attributes[0].starts_with("session=ey"), "{cookie}");
        for expected in ["Path=/", "HttpOnly", "SameSite=Lax", "Max-Age=86400"] {
            assert!(attributes.contains(&expected), "{expected} in {cookie}");
        }
        assert!(
            !attributes.contains(&"Secure"),
            "served on 127.0.0.1: {cookie}"
        );
    });
}

#[test]
fn the_session_cookie_is_secure_under_a_public_host_name() {
    on_every_runtime(spawn_app_on, |app| {
        let reply = app.send(
            app.request(Method::POST, "/api/users/signup")
                .header("host", "tickets.example.com")
                .json(&credentials("public@example.com", "secret1")),
        );
        assert_eq!(reply.status, 201, "{}", reply.text());
        let cookie = session_cookie(&reply);
        assert!(
            cookie.split(';').any(|part| part.trim() == "Secure"),
            "{cookie}"
        );
    });
}

#[test]
fn sign_up_with_an_invalid_email_is_rejected() {
    on_every_runtime(spawn_app_on, |app| {
        for email in ["", "not-an-email", "a@b", "two@@example.com"] {
            let reply = sign_up(app, email, "secret1");
            assert_eq!(reply.status, 400, "{email}: {}", reply.text());
            assert_eq!(
                reply.errors(),
                json!([{ "message": "Email must be valid", "field": "email" }])
            );
        }
    });
}

#[test]
fn sign_up_needs_a_password_of_4_to_20_characters_after_trimming() {
    on_every_runtime(spawn_app_on, |app| {
        let too_long = "p".repeat(21);
        for password in ["", "abc", "  abc  ", too_long.as_str()] {
            let reply = sign_up(app, "short@example.com", password);
            assert_eq!(reply.status, 400, "{password:?}: {}", reply.text());
            assert_eq!(
                reply.errors(),
                json!([{
                    "message": "Password must be between 4 and 20 characters",
                    "field": "password"
                }])
            );
        }
        let twenty = "p".repeat(20);
        assert_eq!(sign_up(app, "twenty@example.com", &twenty).status, 201);
        // Four characters, not four bytes.
        assert_eq!(sign_up(app, "unicode@example.com", "ääää").status, 201);
    });
}

#[test]
fn sign_up_reports_every_failed_rule_in_order() {
    on_every_runtime(spawn_app_on, |app| {
        let reply = app.post_json("/api/users/signup", &json!({}));
        assert_eq!(reply.status, 400);
        assert_eq!(
            reply.errors(),
            json!([
                { "message": "Email must be valid", "field": "email" },
                { "message": "Password must be between 4 and 20 characters", "field": "password" }
            ])
        );
    });
}

#[test]
fn fields_of_the_wrong_type_fail_their_rules() {
    on_every_runtime(spawn_app_on, |app| {
        let reply = app.post_json(
            "/api/users/signup",
            &json!({ "email": 5, "password": ["x"] }),
        );
        assert_eq!(reply.status, 400);
        let fields: Vec<Value> = reply
            .errors()
            .as_array()
            .unwrap()
            .iter()
            .map(|entry| entry["field"].clone())
            .collect();
        assert_eq!(fields, [json!("email"), json!("password")]);
    });
}

#[test]
fn sign_up_with_an_email_in_use_is_rejected_ignoring_case() {
    on_every_runtime(spawn_app_on, |app| {
        assert_eq!(sign_up(app, "Taken@Example.com", "secret1").status, 201);
        for email in [
            "Taken@Example.com",
            "taken@example.com",
            " TAKEN@EXAMPLE.COM ",
        ] {
            let reply = sign_up(&app.new_client(), email, "other-secret");
            assert_eq!(reply.status, 400, "{email}: {}", reply.text());
            assert_eq!(reply.errors(), message("Email in use"));
            assert!(reply.header("set-cookie").is_none());
        }
    });
}

#[test]
fn concurrent_sign_ups_with_one_email_give_one_account() {
    on_every_runtime(spawn_app_on, |app| {
        let clients: Vec<_> = (0..8).map(|_| app.new_client()).collect();
        let statuses: Vec<u16> = std::thread::scope(|scope| {
            let racers: Vec<_> = clients
                .iter()
                .enumerate()
                .map(|(n, client)| {
                    // Spelled differently by each racer: the same email ignoring case.
                    let email = if n % 2 == 0 {
                        "race@example.com"
                    } else {
                        "RACE@example.com"
                    };
                    scope.spawn(move || sign_up(client, email, "secret1").status)
                })
                .collect();
            racers
                .into_iter()
                .map(|racer| racer.join().unwrap())
                .collect()
        });
        let mut sorted = statuses.clone();
        sorted.sort_unstable();
        assert_eq!(
            sorted,
            [201, 400, 400, 400, 400, 400, 400, 400],
            "{statuses:?}"
        );
    });
}

// Sign in -----------------------------------------------------------------------------

#[test]
fn sign_in_with_the_right_password_starts_a_session() {
    on_every_runtime(spawn_app_on, |app| {
        let id =
            sign_up(&app.new_client(), "Alice@Example.com", "  secret1  ").json()["id"].clone();
        // Emails ignore case; passwords are trimmed at sign-up and at sign-in alike.
        let reply = app.post_json(
            "/api/users/signin",
            &credentials("alice@example.COM", "secret1"),
        );
        assert_eq!(reply.status, 200, "{}", reply.text());
        assert_eq!(
            reply.json(),
            json!({ "id": id, "email": "Alice@Example.com" })
        );
        assert!(session_cookie(&reply).starts_with("session=ey"));
        assert_eq!(current_user(app)["id"], id);
    });
}

#[test]
fn a_wrong_password_and_an_unknown_email_get_the_same_answer() {
    on_every_runtime(spawn_app_on, |app| {
        assert_eq!(
            sign_up(&app.new_client(), "bob@example.com", "secret1").status,
            201
        );
        for (email, password) in [
            ("bob@example.com", "wrong-one"),
            ("nobody@example.com", "secret1"),
        ] {
            let reply = app.post_json("/api/users/signin", &credentials(email, password));
            assert_eq!(reply.status, 400, "{email}");
            assert_eq!(reply.errors(), message("Invalid credentials"));
            assert!(reply.header("set-cookie").is_none());
        }
        assert_eq!(current_user(app), Value::Null);
    });
}

#[test]
fn sign_in_needs_a_valid_email_and_a_password() {
    on_every_runtime(spawn_app_on, |app| {
        let reply = app.post_json("/api/users/signin", &credentials("nope", "   "));
        assert_eq!(reply.status, 400);
        assert_eq!(
            reply.errors(),
            json!([
                { "message": "Email must be valid", "field": "email" },
                { "message": "You must supply a password", "field": "password" }
            ])
        );
    });
}

// Sign out and the current user -------------------------------------------------------

#[test]
fn sign_out_clears_the_cookie_and_ends_the_session() {
    on_every_runtime(spawn_app_on, |app| {
        assert_eq!(sign_up(app, "leaving@example.com", "secret1").status, 201);
        assert_ne!(current_user(app), Value::Null);
        let reply = app.post_json("/api/users/signout", &json!({}));
        assert_eq!(reply.status, 200);
        assert_eq!(reply.json(), json!({}));
        let cookie = session_cookie(&reply);
        assert!(cookie.starts_with("session=;"), "{cookie}");
        assert!(
            cookie.contains("Expires=Thu, 01 Jan 1970 00:00:00 GMT"),
            "{cookie}"
        );
        assert!(
            cookie.contains("HttpOnly") && cookie.contains("Path=/"),
            "{cookie}"
        );
        assert_eq!(current_user(app), Value::Null);
    });
}

#[test]
fn current_user_is_null_without_a_session() {
    on_every_runtime(spawn_app_on, |app| {
        let reply = app.get("/api/users/currentuser");
        assert_eq!(reply.status, 200);
        assert_eq!(
            reply.header("content-type").as_deref(),
            Some("application/json")
        );
        assert_eq!(reply.json(), json!({ "currentUser": null }));
    });
}

#[test]
fn tokens_that_do_not_verify_count_as_signed_out() {
    let claims =
        |exp: u64| json!({ "id": "u1", "email": "x@example.com", "iat": now(), "exp": exp });
    let sign = |claims: &Value, key: &str| {
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            claims,
            &jsonwebtoken::EncodingKey::from_secret(key.as_bytes()).unwrap(),
        )
        .unwrap()
    };
    let valid = sign(&claims(now() + 3600), KEY);
    let expired = sign(&claims(now() - 10), KEY);
    let other_key = sign(&claims(now() + 3600), "some other key");
    let unsigned = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(claims(now() + 3600).to_string())
    );
    let hs512 = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS512),
        &claims(now() + 3600),
        &jsonwebtoken::EncodingKey::from_secret(KEY.as_bytes()).unwrap(),
    )
    .unwrap();
    // The payload swapped for another user's, the signature kept.
    let parts: Vec<&str> = valid.split('.').collect();
    let forged_payload = URL_SAFE_NO_PAD.encode(
        json!({ "id": "admin", "email": "x@example.com", "iat": now(), "exp": now() + 3600 })
            .to_string(),
    );
    let tampered = format!("{}.{forged_payload}.{}", parts[0], parts[2]);

    on_every_runtime(spawn_app_on, |app| {
        assert_eq!(
            current_user_with_token(app, &valid)["id"],
            "u1",
            "the control case"
        );
        for (what, token) in [
            ("expired", expired.as_str()),
            ("signed with another key", &other_key),
            ("alg none", &unsigned),
            ("HS512", &hs512),
            ("tampered", &tampered),
            ("garbage", "not-a-jwt"),
            ("empty", ""),
        ] {
            assert_eq!(current_user_with_token(app, token), Value::Null, "{what}");
        }
    });
}

// Requests the API refuses ------------------------------------------------------------

#[test]
fn a_body_that_is_not_json_is_a_400() {
    on_every_runtime(spawn_app_on, |app| {
        for (content_type, body) in [
            ("application/json", "{not json"),
            ("application/json", ""),
            ("application/json", "[\"a@b.co\", \"secret\"]"),
            (
                "text/plain",
                r#"{"email":"a@example.com","password":"secret1"}"#,
            ),
            (
                "application/x-www-form-urlencoded",
                "email=a%40example.com&password=secret1",
            ),
        ] {
            for path in ["/api/users/signup", "/api/users/signin"] {
                let reply = app.post_raw(path, content_type, body.as_bytes().to_vec());
                assert_eq!(reply.status, 400, "{path} {content_type} {body:?}");
                assert_eq!(reply.errors(), message("Request body must be JSON"));
            }
        }
    });
}

#[test]
fn a_body_over_64_kib_is_a_413_and_creates_nothing() {
    on_every_runtime(spawn_app_on, |app| {
        let padding = "x".repeat(64 * 1024);
        let body = json!({ "email": "big@example.com", "password": "secret1", "padding": padding });
        // On a connection of its own: a server that answers before it has read the
        // whole body closes the connection afterwards (hyper does, on Spin as on the
        // host), so the next request must not reuse it.
        let reply = app.new_client().post_json("/api/users/signup", &body);
        assert_eq!(reply.status, 413, "{}", reply.text());
        assert_eq!(reply.errors(), message("Request body is too large"));
        // Nothing was stored: the same sign-up with a small body succeeds.
        assert_eq!(sign_up(app, "big@example.com", "secret1").status, 201);
    });
}

#[test]
fn unknown_routes_and_methods_under_the_api_are_json_404s() {
    on_every_runtime(spawn_app_on, |app| {
        for (method, path) in [
            (Method::GET, "/api/users/nobody-here"),
            (Method::GET, "/api/users/signup"),
            (Method::DELETE, "/api/users/currentuser"),
        ] {
            let reply = app.send(app.request(method.clone(), path));
            assert_eq!(reply.status, 404, "{method} {path}");
            assert_eq!(
                reply.json(),
                json!({ "errors": [{ "message": "Not Found" }] })
            );
        }
    });
}

#[test]
fn a_path_outside_the_api_is_the_web_app_and_never_an_api_answer() {
    on_every_runtime(spawn_app_on, |app| {
        // The web component answers it with the app's page (its router shows "not
        // found"); components/web/tests has the details.
        let reply = app.get("/no/such/page");
        assert_eq!(reply.status, 200);
        assert!(reply.text().contains("<!doctype html>"), "{}", reply.text());
    });
}

// What is stored and logged -----------------------------------------------------------

#[test]
fn passwords_are_stored_only_as_argon2id_hashes() {
    on_every_runtime(spawn_app_on, |app| {
        assert_eq!(
            sign_up(app, "stored@example.com", "plain-secret").status,
            201
        );
        let db = std::fs::read(app.sqlite_path("auth")).expect("the auth database");
        let contains = |needle: &str| db.windows(needle.len()).any(|w| w == needle.as_bytes());
        assert!(
            contains("$argon2id$v=19$m=19456,t=2,p=1$"),
            "an argon2id hash is stored"
        );
        assert!(!contains("plain-secret"), "the password itself is not");
    });
}

#[test]
fn logs_show_each_request_but_no_password_hash_or_token() {
    on_every_runtime(spawn_app_on, |app| {
        let reply = sign_up(app, "logged@example.com", "log-secret");
        assert_eq!(reply.status, 201);
        let token = session_cookie(&reply)["session=".len()..]
            .split(';')
            .next()
            .unwrap()
            .to_owned();
        current_user(app);
        // The component's own line (the host adds one of its own, ending in "µs)").
        app.wait_for_log("the sign-up's request line", |line| {
            line.contains("POST /api/users/signup -> 201 in") && line.ends_with(" ms")
        });
        let logs = app.logs().join("\n");
        for secret in ["log-secret", "$argon2", token.as_str(), KEY] {
            assert!(
                !logs.contains(secret),
                "{secret:?} appears in the logs:\n{logs}"
            );
        }
    });
}
