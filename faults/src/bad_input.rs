//! Bad input: a fuzzer sends generated malformed requests to every route (broken and
//! mistyped JSON, huge and exotic Unicode strings, bad ids, bad cookies, tampered,
//! re-signed and `alg: none` JWTs). No answer may be a 5xx (but the 503 API.md
//! documents for payments that are not configured) or outside API.md's error format,
//! no component may panic, no event may end in `events:dead`, and a refused request
//! must leave every database as it was. The generator is seeded: the seed is in the
//! figures, and `FAULTS_SEED=<seed>` replays a run.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use harness::{App, Method, Redis};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use crate::rng::Rng;
use crate::{Logbook, Report, Size, WAIT, bus, db, users};

pub fn run(size: Size, logbook: &Logbook) -> Report {
    let requests = size.pick(10_000, 1_000);
    let seed = Rng::seed();
    let jwt_key = harness::random_hex(32);
    let app = crate::spawn(Redis::start(), |app| app.variable("jwt_key", &jwt_key));
    let mut report = Report::default();
    let dead_letters = bus::DeadLetters::watch(app.redis());

    // Something to aim at: a seller's ticket, a buyer's order, both users' sessions.
    let (seller, seller_token) = signed_up(&app, "fuzz-seller");
    let (buyer, buyer_token) = signed_up(&app, "fuzz-buyer");
    let on_sale = seller.sell("fuzzed", 10.0);
    let ordered = seller.sell("fuzzed and ordered", 10.0);
    let order = buyer.order(&ordered);
    report.check(bus::settle(&app, app.redis(), WAIT), || {
        "the setup did not settle".to_owned()
    });
    let targets = Targets {
        ticket: text(&on_sale["id"]),
        order: text(&order["id"]),
        user: text(&seller.user_id()),
        tokens: tokens(&seller_token, &buyer_token, &jwt_key),
    };

    // A client without a cookie jar: every request carries exactly the cookie chosen.
    let http = reqwest::blocking::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("an HTTP client");
    let mut watch = db::Watch::new(&app);
    // The watch must see a change when there is one, or its silence proves nothing.
    let before = watch.versions();
    seller.sell("seen by the watch", 10.0);
    let seen = watch.changed(&before, &watch.versions());
    report.check(seen.contains(&"tickets"), || {
        format!("the database watch missed a listing: it saw {seen:?}")
    });
    report.check(bus::settle(&app, app.redis(), WAIT), || {
        "the setup did not settle".to_owned()
    });
    watch.rebase();
    let mut rng = Rng::new(seed);
    let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
    let (mut unanswered, mut changed_by_refusal, mut written_back, mut bad_bodies) = (0, 0, 0, 0);
    let mut server_errors = 0;
    for _ in 0..requests {
        let request = generate(&mut rng, &targets);
        let before = watch.versions();
        let mut builder = http
            .request(
                request.method.clone(),
                format!("{}{}", app.base_url(), request.path),
            )
            .body(request.body.clone());
        if let Some(content_type) = &request.content_type {
            builder = builder.header("content-type", content_type);
        }
        if let Some(cookie) = &request.cookie {
            // From bytes: a header may carry non-ASCII bytes, which `&str` refuses.
            match reqwest::header::HeaderValue::from_bytes(cookie.as_bytes()) {
                Ok(cookie) => builder = builder.header("cookie", cookie),
                Err(_) => panic!("the generator made an unsendable cookie: {cookie:?}"),
            }
        }
        let answer = builder.send().and_then(|response| {
            let status = response.status().as_u16();
            // The path as sent: the client resolves `..` segments, as browsers do.
            let path = response.url().path().to_owned();
            response.bytes().map(|body| (status, path, body))
        });
        let (status, sent_path, body) = match answer {
            Ok(answer) => answer,
            Err(err) => {
                unanswered += 1;
                report
                    .failures
                    .push(format!("no answer to {}: {err:#}", request.describe()));
                continue;
            }
        };
        *statuses.entry(status).or_default() += 1;
        if status >= 500 && !is_documented_503(&request.method, &sent_path, status, &body) {
            server_errors += 1;
            report.failures.push(format!(
                "{status} for {}: {}",
                request.describe(),
                String::from_utf8_lossy(&body[..body.len().min(200)])
            ));
        }
        if status >= 400 && request.method != Method::HEAD && sent_path.starts_with("/api/") {
            let is_api_error = serde_json::from_slice::<Value>(&body).is_ok_and(|body| {
                body["errors"].as_array().is_some_and(|errors| {
                    !errors.is_empty() && errors.iter().all(|error| error["message"].is_string())
                })
            });
            if !is_api_error {
                bad_bodies += 1;
                report.failures.push(format!(
                    "{status} without API.md's error body for {}: {}",
                    request.describe(),
                    String::from_utf8_lossy(&body[..body.len().min(200)])
                ));
            }
        }
        if (200..300).contains(&status) {
            if request.method != Method::GET && request.method != Method::HEAD {
                // Accepted: its events now change other databases; let them, then go on.
                report.check(bus::settle(&app, app.redis(), WAIT), || {
                    format!("events of {} not applied", request.describe())
                });
                watch.rebase();
            }
        } else {
            let written = watch.changed(&before, &watch.versions());
            let changed = watch.differ(&written);
            if !changed.is_empty() {
                changed_by_refusal += 1;
                report.failures.push(format!(
                    "refused with {status} ({}), yet {changed:?} changed: {}",
                    String::from_utf8_lossy(&body[..body.len().min(200)]),
                    request.describe()
                ));
            } else if !written.is_empty() {
                // Written and put back, as a declined charge's pending row is.
                written_back += 1;
            }
        }
    }
    let panics = app
        .logs()
        .iter()
        .filter(|line| {
            line.contains("panicked") || line.contains("request failed") || line.contains("trap")
        })
        .count();
    report.check(panics == 0, || {
        format!("{panics} panics or traps in the log")
    });
    // Keep the report readable: the first few of each kind are enough to debug.
    report.failures.truncate(20);
    let dead = dead_letters.check(app.redis(), &mut report);

    let by_status: Vec<String> = statuses
        .iter()
        .map(|(status, count)| format!("{status}: {count}"))
        .collect();
    report.figures = format!(
        "{requests} generated malformed requests over {} routes (seed {seed}): {}; \
         {server_errors} answers of 5xx (other than API.md's 503), {unanswered} unanswered, \
         {panics} panics, \
         {changed_by_refusal} refused requests that changed a database ({written_back} wrote \
         and restored one, as a declined charge does), {bad_bodies} error \
         bodies outside API.md's format, {dead} events dead-lettered",
        ROUTES.len(),
        by_status.join(", ")
    );
    logbook.keep(&app);
    report
}

/// The one 5xx API.md documents: `POST /api/payments` answers 503 with exactly this
/// body when payments are not configured. Any other 5xx is a server error.
fn is_documented_503(method: &Method, path: &str, status: u16, body: &[u8]) -> bool {
    status == 503
        && *method == Method::POST
        && path == "/api/payments"
        && serde_json::from_slice::<Value>(body).is_ok_and(|body| {
            body == json!({"errors": [{"message": "Payments are not configured"}]})
        })
}

/// Signs up through a plain request, to read the session token off the cookie.
fn signed_up(app: &App, name: &str) -> (harness::Client, String) {
    let client = app.new_client();
    let reply = client.post_json(
        "/api/users/signup",
        &json!({"email": format!("{name}@example.com"), "password": users::password()}),
    );
    assert_eq!(reply.status, 201, "signing up {name}: {}", reply.text());
    let cookie = reply.header("set-cookie").expect("a session cookie");
    let token = cookie
        .strip_prefix("session=")
        .and_then(|rest| rest.split(';').next())
        .expect("the cookie is `session=<token>; ...`")
        .to_owned();
    (client, token)
}

fn text(value: &Value) -> String {
    value.as_str().unwrap_or_default().to_owned()
}

/// What the fuzzer aims at.
struct Targets {
    ticket: String,
    order: String,
    user: String,
    /// Session tokens: real, tampered, re-signed with bad claims, forged.
    tokens: Vec<String>,
}

/// Tokens that must all count as signed out but the first two (the real sessions)
/// and the ones signed with the right key (a stranger's session: valid, but no owner).
fn tokens(seller: &str, buyer: &str, key: &str) -> Vec<String> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |now| now.as_secs());
    let sign = |algorithm: Algorithm, key: &str, claims: Value| {
        jsonwebtoken::encode(
            &Header::new(algorithm),
            &claims,
            &EncodingKey::from_secret(key.as_bytes()).expect("a non-empty key"),
        )
        .expect("claims sign")
    };
    let claims =
        |id: Value, exp: Value| json!({"id": id, "email": "x@example.com", "iat": now, "exp": exp});
    let parts: Vec<&str> = seller.split('.').collect();
    let decoded = parts
        .get(1)
        .and_then(|payload| URL_SAFE_NO_PAD.decode(payload).ok())
        .and_then(|payload| serde_json::from_slice::<Value>(&payload).ok())
        .unwrap_or(Value::Null);
    let mut tampered = decoded.clone();
    tampered["id"] = json!("someone-else");
    let tampered = format!(
        "{}.{}.{}",
        parts.first().unwrap_or(&""),
        URL_SAFE_NO_PAD.encode(tampered.to_string()),
        parts.get(2).unwrap_or(&"")
    );
    let none_header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
    let none_payload = URL_SAFE_NO_PAD.encode(decoded.to_string());
    vec![
        seller.to_owned(),
        buyer.to_owned(),
        tampered,
        format!("{none_header}.{none_payload}."),
        format!("{none_header}.{none_payload}"),
        sign(Algorithm::HS256, "not the key", decoded.clone()),
        sign(Algorithm::HS512, key, decoded.clone()),
        sign(
            Algorithm::HS256,
            key,
            claims(json!("ghost"), json!(now - 10)),
        ),
        sign(Algorithm::HS256, key, claims(json!(42), json!(now + 600))),
        sign(
            Algorithm::HS256,
            key,
            claims(json!("ghost"), json!("tomorrow")),
        ),
        sign(
            Algorithm::HS256,
            key,
            json!({"email": "x@example.com", "exp": now + 600}),
        ),
        sign(
            Algorithm::HS256,
            key,
            claims(json!("ghost"), json!(now + 600)),
        ),
        format!("{}.", seller),
        seller.replace('.', ""),
        "a.b.c".to_owned(),
        "e30.e30.".to_owned(),
        "x".repeat(8_000),
        String::new(),
    ]
}

/// One generated request.
struct Request {
    method: Method,
    path: String,
    content_type: Option<String>,
    cookie: Option<String>,
    body: Vec<u8>,
    what: String,
}

impl Request {
    /// For a failure message: method, path (shortened), what the body was.
    fn describe(&self) -> String {
        let path: String = self.path.chars().take(80).collect();
        format!(
            "{} {path} ({}, {} bytes, cookie: {})",
            self.method,
            self.what,
            self.body.len(),
            self.cookie.as_ref().map_or("none", |_| "some")
        )
    }
}

#[derive(Clone, Copy)]
enum Fields {
    None,
    Credentials,
    Ticket,
    Order,
    Payment,
}

/// Every route of API.md, and the web app's.
const ROUTES: &[(&str, &str, Fields)] = &[
    ("POST", "/api/users/signup", Fields::Credentials),
    ("POST", "/api/users/signin", Fields::Credentials),
    ("POST", "/api/users/signout", Fields::None),
    ("GET", "/api/users/currentuser", Fields::None),
    ("POST", "/api/tickets", Fields::Ticket),
    ("GET", "/api/tickets", Fields::None),
    ("GET", "/api/tickets/{ticket}", Fields::None),
    ("PUT", "/api/tickets/{ticket}", Fields::Ticket),
    ("POST", "/api/orders", Fields::Order),
    ("GET", "/api/orders", Fields::None),
    ("GET", "/api/orders/{order}", Fields::None),
    ("DELETE", "/api/orders/{order}", Fields::None),
    ("POST", "/api/payments", Fields::Payment),
    ("GET", "/api/payments/config", Fields::None),
    ("GET", "/api/expiration/health", Fields::None),
    ("GET", "/{page}", Fields::None),
    ("GET", "/api/{page}", Fields::None),
];

fn generate(rng: &mut Rng, targets: &Targets) -> Request {
    let (method, template, fields) = *rng.pick(ROUTES);
    let method = if rng.chance(10) {
        rng.pick(&[
            Method::PATCH,
            Method::OPTIONS,
            Method::HEAD,
            Method::PUT,
            Method::DELETE,
            Method::POST,
        ])
        .clone()
    } else {
        method.parse().expect("the routes' methods are valid")
    };
    let path = template
        .replace("{ticket}", &id(rng, targets))
        .replace("{order}", &id(rng, targets))
        .replace("{page}", &id(rng, targets));
    let path = if rng.chance(5) {
        format!("{path}?{}", id(rng, targets))
    } else {
        path
    };
    let cookie = match rng.below(10) {
        0..=2 => None,
        3 => Some(rng.pick(BAD_COOKIES).to_string()),
        4 => Some(format!(
            "session={}; session={}",
            rng.pick(&targets.tokens),
            rng.pick(&targets.tokens)
        )),
        _ => Some(format!("session={}", rng.pick(&targets.tokens))),
    };
    let (content_type, body, what) = body(rng, fields, targets);
    Request {
        method,
        path,
        content_type,
        cookie,
        body,
        what,
    }
}

const BAD_COOKIES: &[&str] = &[
    "session",
    "session=",
    "session=;",
    "=session",
    ";;;",
    "session=caf\u{e9}",
    "session=%zz",
    "other=1; session=\"quoted\"",
    "session=a=b=c",
];

/// A path segment: the real ids, near misses, and ids no database should accept.
fn id(rng: &mut Rng, targets: &Targets) -> String {
    match rng.below(16) {
        0 => targets.ticket.clone(),
        1 => targets.order.clone(),
        2 => format!("{}x", targets.ticket),
        3 => targets.user.clone(),
        4 => String::new(),
        5 => "%00".to_owned(),
        6 => "..%2F..%2F..%2Fetc%2Fpasswd".to_owned(),
        7 => "%27%20OR%20%271%27%3D%271".to_owned(),
        8 => "%F0%9F%8E%AB%E2%80%AE".to_owned(),
        9 => "a".repeat(rng.below(6_000) + 1),
        10 => "%FF%FE".to_owned(),
        11 => "-1".to_owned(),
        12 => harness::random_hex(16),
        13 => "index.html/../../spin.toml".to_owned(),
        14 => "%2e%2e/%2e%2e/".to_owned(),
        _ => "null".to_owned(),
    }
}

/// A body for a route with `fields`: JSON objects with mistyped and exotic values, or
/// no JSON at all.
fn body(rng: &mut Rng, fields: Fields, targets: &Targets) -> (Option<String>, Vec<u8>, String) {
    let json = Some("application/json".to_owned());
    match rng.below(12) {
        0 => (
            json,
            b"{\"title\": \"unfinished".to_vec(),
            "truncated JSON".into(),
        ),
        1 => (
            json,
            rng.pick(NOT_OBJECTS).as_bytes().to_vec(),
            "JSON, not an object".into(),
        ),
        2 => (
            json,
            (0..rng.below(300)).map(|_| rng.below(256) as u8).collect(),
            "random bytes".into(),
        ),
        3 => (json, "[".repeat(20_000).into_bytes(), "deep nesting".into()),
        4 => (
            json,
            format!("{{\"title\": \"{}\"}}", "x".repeat(70_000)).into_bytes(),
            "over 64 KiB".into(),
        ),
        5 => (
            Some(
                rng.pick(&[
                    "text/plain",
                    "application/x-www-form-urlencoded",
                    "multipart/form-data; boundary=x",
                    "",
                ])
                .to_string(),
            ),
            object(rng, fields, targets).to_string().into_bytes(),
            "another content type".into(),
        ),
        6 => (
            json,
            br#"{"title":"\ud800","price":"1","email":"\udfff@x.io","password":"\u0000"}"#.to_vec(),
            "lone surrogates".into(),
        ),
        7 => (None, Vec::new(), "no body".into()),
        _ => (
            json,
            object(rng, fields, targets).to_string().into_bytes(),
            "fuzzed fields".into(),
        ),
    }
}

const NOT_OBJECTS: &[&str] = &["[]", "[1,2]", "\"text\"", "42", "null", "true", "1e400", ""];

/// An object with the route's fields (some missing), each a value of a random kind,
/// and sometimes a field nobody asked for.
fn object(rng: &mut Rng, fields: Fields, targets: &Targets) -> Value {
    let names: &[&str] = match fields {
        Fields::None => &["anything"],
        Fields::Credentials => &["email", "password"],
        Fields::Ticket => &["title", "price"],
        Fields::Order => &["ticketId"],
        Fields::Payment => &["token", "orderId"],
    };
    let mut object = serde_json::Map::new();
    for name in names {
        if !rng.chance(15) {
            object.insert((*name).to_owned(), value(rng, targets));
        }
    }
    if rng.chance(10) {
        object.insert("userId".to_owned(), value(rng, targets));
    }
    Value::Object(object)
}

fn value(rng: &mut Rng, targets: &Targets) -> Value {
    match rng.below(24) {
        0 => json!(null),
        1 => json!(true),
        2 => json!([]),
        3 => json!({"nested": {"deeper": [1, 2, 3]}}),
        4 => json!(0),
        5 => json!(-5),
        6 => json!(1.005),
        7 => json!(f64::MAX),
        8 => json!(i64::MIN),
        9 => json!("12.345"),
        10 => json!("NaN"),
        11 => json!("Infinity"),
        12 => json!(""),
        13 => json!("   "),
        14 => json!("x".repeat(rng.below(30_000))),
        15 => json!("🎫🎵 e\u{301} \u{202e}gnirts\u{202c} \u{200b}\u{feff} 日本語 \u{0}"),
        16 => json!("<script>alert(1)</script>'; DROP TABLE tickets; --"),
        17 => json!("a@b"),
        18 => json!("Ünïcödé@exämple.com"),
        19 => json!(format!("{}@example.com", "a".repeat(rng.below(500)))),
        20 => json!(targets.ticket),
        21 => json!(targets.order),
        22 => json!("tok_chargeDeclined"),
        _ => json!(12.5),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOT_CONFIGURED: &[u8] = br#"{"errors":[{"message":"Payments are not configured"}]}"#;

    #[test]
    fn a_503_is_accepted_only_for_payments_not_configured() {
        assert!(is_documented_503(
            &Method::POST,
            "/api/payments",
            503,
            NOT_CONFIGURED
        ));
        // Another route, method, status or body: a server error.
        assert!(!is_documented_503(
            &Method::POST,
            "/api/orders",
            503,
            NOT_CONFIGURED
        ));
        assert!(!is_documented_503(
            &Method::PUT,
            "/api/payments",
            503,
            NOT_CONFIGURED
        ));
        assert!(!is_documented_503(
            &Method::POST,
            "/api/payments",
            502,
            NOT_CONFIGURED
        ));
        assert!(!is_documented_503(
            &Method::POST,
            "/api/payments",
            503,
            br#"{"errors":[{"message":"Something went wrong"}]}"#
        ));
        assert!(!is_documented_503(
            &Method::POST,
            "/api/payments",
            503,
            b"Service Unavailable"
        ));
    }
}
