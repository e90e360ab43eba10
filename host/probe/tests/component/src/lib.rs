//! What `host test` gives a test, checked through the probe app's routes: spin-test's
//! handles on the app's key-value stores (and the calls the app made), its SQLite
//! databases, its variables, and the answers to its outbound HTTP requests. Every test
//! here uses only spin-test's interfaces.

use serde_json::{Value, json};
use spin_test_sdk::bindings::fermyon::spin_test_virt::{key_value, sqlite};
use spin_test_sdk::{Request, echo, respond, set_variable, spin_test};

/// The probe's one required variable.
fn probe() {
    set_variable("secret_word", "swordfish");
}

fn post(path: &str, body: Value) -> Value {
    let response = Request::post(path).json(&body).send();
    assert_eq!(response.status(), 200, "{}", response.text());
    response.json()
}

/// A value the test sets is what the app reads, and what the app sets the test reads;
/// the app's calls are listed per store, in order, until reset.
#[spin_test]
fn key_value_is_shared_and_the_app_s_calls_are_listed() {
    probe();
    let store = key_value::Store::open("default");
    assert_eq!(store.label(), "default");
    store.set("seeded", b"by the test");
    let answer = post(
        "/kv",
        json!({"store": "default", "ops": [["get", "seeded"], ["set", "written", "by the app"], ["exists", "nope"]]}),
    );
    assert_eq!(
        answer["results"],
        json!(["by the test", "ok", false]),
        "{answer}"
    );
    assert_eq!(store.get("written").as_deref(), Some(&b"by the app"[..]));

    let calls = key_value::calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    let (label, calls) = &calls[0];
    assert_eq!(label, "default");
    assert!(
        matches!(
            calls.as_slice(),
            [
                key_value::Call::Get(get),
                key_value::Call::Set((set, value)),
                key_value::Call::Exists(exists),
            ] if get == "seeded" && set == "written" && value == b"by the app" && exists == "nope"
        ),
        "{calls:?}"
    );
    key_value::reset_calls();
    assert!(key_value::calls().is_empty());

    store.delete("written");
    let answer = post(
        "/kv",
        json!({"store": "default", "ops": [["get", "written"]]}),
    );
    assert_eq!(answer["results"], json!([null]));
}

/// The test seeds the very database the app opens, and reads back what it wrote.
#[spin_test]
fn sqlite_is_the_app_s_own_database() {
    probe();
    let connection = sqlite::Connection::open("probe").expect("the app's database");
    connection
        .execute("CREATE TABLE notes (text TEXT)", &[])
        .expect("a table");
    connection
        .execute(
            "INSERT INTO notes VALUES (?)",
            &[sqlite::Value::Text("from the test".into())],
        )
        .expect("a row");
    let answer = post(
        "/sqlite",
        json!({"db": "probe", "statements": [
            {"sql": "SELECT text FROM notes"},
            {"sql": "INSERT INTO notes VALUES ('from the app')"},
        ]}),
    );
    assert_eq!(
        answer["results"][0]["rows"],
        json!([[{"text": "from the test"}]]),
        "{answer}"
    );
    let read = connection
        .execute("SELECT text FROM notes ORDER BY rowid", &[])
        .expect("a query");
    let texts: Vec<_> = read
        .rows
        .iter()
        .map(|row| match &row.values[0] {
            sqlite::Value::Text(text) => text.clone(),
            other => panic!("not text: {other:?}"),
        })
        .collect();
    assert_eq!(texts, ["from the test", "from the app"]);
    assert!(matches!(
        sqlite::Connection::open("no-such-database"),
        Err(sqlite::Error::NoSuchDatabase)
    ));
}

/// Each test starts from an empty app: what another test wrote is not there.
#[spin_test]
fn every_test_gets_a_fresh_app() {
    probe();
    let answer = post("/kv", json!({"store": "default", "ops": [["keys"]]}));
    assert_eq!(answer["results"], json!([[]]), "{answer}");
}

/// A variable the test sets reaches the component's templates, even after the app
/// has served a request.
#[spin_test]
fn variables_set_by_the_test_reach_the_app() {
    probe();
    let read = |name: &str| Request::get(&format!("/variable/{name}")).send().json();
    assert_eq!(read("greeting"), json!({"value": "hello, swordfish!"}));
    set_variable("greeting", "bonjour");
    assert_eq!(read("greeting"), json!({"value": "bonjour, swordfish!"}));
}

/// A registered response answers the app's request to its URL once; an unregistered
/// URL fails; a host outside `allowed_outbound_hosts` is denied first; `echo` sends
/// the request's body back.
#[spin_test]
fn outbound_requests_are_answered_by_the_test() {
    probe();
    let outbound = |url: &str| Request::get(&format!("/outbound?url={url}")).send().json();
    respond("http://127.0.0.1:9/answer", 201, &[], b"registered");
    assert_eq!(
        outbound("http://127.0.0.1:9/answer"),
        json!({"status": 201, "body": "registered"})
    );
    let again = outbound("http://127.0.0.1:9/answer");
    assert!(again["error"].is_string(), "answered twice: {again}");
    let unknown = outbound("http://127.0.0.1:9/unknown");
    assert!(
        unknown["error"]
            .as_str()
            .unwrap_or_default()
            .contains("unrecognized url"),
        "{unknown}"
    );
    respond("https://example.com", 200, &[], b"never");
    let denied = outbound("https://example.com");
    assert!(
        denied["error"]
            .as_str()
            .unwrap_or_default()
            .contains("Denied"),
        "{denied}"
    );
    echo("http://127.0.0.1:9/echo");
    assert_eq!(
        outbound("http://127.0.0.1:9/echo"),
        json!({"status": 200, "body": ""})
    );
}
