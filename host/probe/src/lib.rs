//! host-probe: a test component that makes every Spin interface the app uses
//! reachable over HTTP, so the host's behaviour tests can drive each one and compare
//! the answers of the project's host with real Spin's.
//!
//! Every answer is JSON. Interface errors are reported as their `Debug` text, so both
//! runtimes' errors can be compared exactly.

use futures::SinkExt;
use serde::Deserialize;
use serde_json::{Value as Json, json};
use spin_sdk::http::conversions::TryFromIncomingRequest;
use spin_sdk::http::{Fields, IncomingRequest, OutgoingResponse, Request, ResponseOutparam};
use spin_sdk::{key_value, redis, sqlite, variables};

#[cfg_attr(target_arch = "wasm32", spin_sdk::http_component)]
pub async fn handle(incoming: IncomingRequest, outparam: ResponseOutparam) {
    // The benchmark's trivial route: as little guest work as an answer can take.
    if incoming.path_with_query().as_deref() == Some("/hello") {
        let headers = Fields::new();
        return send(outparam, 200, headers, b"hello".to_vec()).await;
    }
    let request = match Request::try_from_incoming_request(incoming).await {
        Ok(request) => request,
        Err(err) => return respond(outparam, 400, json!({ "error": format!("{err:?}") })).await,
    };
    // Dispatch on the path below the component's route, so the same operations work
    // for every component id whatever route it is mounted at.
    let path = match request
        .header("spin-path-info")
        .and_then(|info| info.as_str())
    {
        Some(info) if !info.is_empty() => info.to_owned(),
        _ => request.path().to_owned(),
    };
    let query = request.query().to_owned();
    let (status, body) = match (request.method().to_string().as_str(), path.as_str()) {
        ("POST", "/kv") => (200, key_value_ops(request.body())),
        ("POST", "/sqlite") => (200, sqlite_ops(request.body())),
        ("POST", "/redis") => (200, redis_ops(request.body())),
        ("POST", "/echo-body") => {
            let body = request.into_body();
            return respond_bytes(outparam, 200, body).await;
        }
        ("GET", "/outbound") => (200, outbound(&query_param(&query, "url")).await),
        ("GET", "/file") => (200, read_file(&query_param(&query, "path"))),
        ("GET", "/env") => (
            200,
            json!({ "value": std::env::var(query_param(&query, "name")).ok() }),
        ),
        ("GET", "/stream") => {
            let chunks = query_param(&query, "chunks").parse().unwrap_or(3);
            return stream(outparam, chunks).await;
        }
        ("GET", "/trap") => panic!("the probe traps on purpose"),
        ("GET", "/status") => {
            let status = query_param(&query, "code").parse().unwrap_or(200);
            (status, json!({ "status": status }))
        }
        (_, path) if path.starts_with("/variable/") => (200, variable(&path["/variable/".len()..])),
        _ => (200, echo(&request)),
    };
    respond(outparam, status, body).await
}

/// What the component saw of the request: which component id it is, and the headers.
fn echo(request: &Request) -> Json {
    let headers: serde_json::Map<String, Json> = request
        .headers()
        .map(|(name, value)| {
            (
                name.to_ascii_lowercase(),
                Json::from(String::from_utf8_lossy(value.as_bytes()).into_owned()),
            )
        })
        .collect();
    json!({
        "component": variables::get("name").unwrap_or_default(),
        "method": request.method().to_string(),
        "path": request.path(),
        "query": request.query(),
        "headers": headers,
        "bodyLength": request.body().len(),
    })
}

#[derive(Deserialize)]
struct KeyValueScript {
    store: String,
    /// `["set", key, value]`, `["get", key]`, `["delete", key]`, `["exists", key]`,
    /// `["keys"]`.
    ops: Vec<Vec<String>>,
}

fn key_value_ops(body: &[u8]) -> Json {
    let script: KeyValueScript = match serde_json::from_slice(body) {
        Ok(script) => script,
        Err(err) => return json!({ "error": err.to_string() }),
    };
    let store = match key_value::Store::open(&script.store) {
        Ok(store) => store,
        Err(err) => return json!({ "open": format!("{err:?}") }),
    };
    let results: Vec<Json> = script
        .ops
        .iter()
        .map(|op| {
            let arg = |index: usize| op.get(index).map(String::as_str).unwrap_or_default();
            let outcome = match arg(0) {
                "set" => store.set(arg(1), arg(2).as_bytes()).map(|()| json!("ok")),
                "get" => store.get(arg(1)).map(|value| {
                    json!(value.map(|bytes| String::from_utf8_lossy(&bytes).into_owned()))
                }),
                "delete" => store.delete(arg(1)).map(|()| json!("ok")),
                "exists" => store.exists(arg(1)).map(|exists| json!(exists)),
                "keys" => store.get_keys().map(|keys| json!(keys)),
                other => return json!({ "error": format!("unknown op {other}") }),
            };
            outcome.unwrap_or_else(|err| json!({ "error": format!("{err:?}") }))
        })
        .collect();
    json!({ "open": "ok", "results": results })
}

#[derive(Deserialize)]
struct SqliteScript {
    db: String,
    statements: Vec<SqliteStep>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum SqliteStep {
    Statement {
        sql: String,
        #[serde(default)]
        params: Vec<Json>,
    },
    Sleep {
        sleep_ms: u64,
    },
}

/// Runs statements on one connection (so `BEGIN ... COMMIT` spans them), with optional
/// pauses between them to hold a transaction open while another request runs. The
/// first failing statement ends the script.
fn sqlite_ops(body: &[u8]) -> Json {
    let script: SqliteScript = match serde_json::from_slice(body) {
        Ok(script) => script,
        Err(err) => return json!({ "error": err.to_string() }),
    };
    let connection = match sqlite::Connection::open(&script.db) {
        Ok(connection) => connection,
        Err(err) => return json!({ "open": format!("{err:?}") }),
    };
    let mut results = Vec::new();
    for step in script.statements {
        match step {
            SqliteStep::Sleep { sleep_ms } => {
                std::thread::sleep(std::time::Duration::from_millis(sleep_ms));
            }
            SqliteStep::Statement { sql, params } => {
                let params: Vec<sqlite::Value> = params.iter().map(to_sqlite).collect();
                let outcome = connection.execute(&sql, &params);
                let failed = outcome.is_err();
                results.push(match outcome {
                    Ok(result) => json!({
                        "columns": result.columns,
                        "rows": result
                            .rows
                            .iter()
                            .map(|row| row.values.iter().map(from_sqlite).collect::<Vec<_>>())
                            .collect::<Vec<_>>(),
                    }),
                    Err(err) => json!({ "error": format!("{err:?}") }),
                });
                if failed {
                    break;
                }
            }
        }
    }
    json!({ "open": "ok", "results": results })
}

/// JSON to a SQLite parameter: null, integers, reals, strings, `{"blob": [bytes]}`.
fn to_sqlite(value: &Json) -> sqlite::Value {
    match value {
        Json::Null => sqlite::Value::Null,
        Json::Number(number) => match number.as_i64() {
            Some(int) => sqlite::Value::Integer(int),
            None => sqlite::Value::Real(number.as_f64().unwrap_or_default()),
        },
        Json::String(text) => sqlite::Value::Text(text.clone()),
        Json::Object(object) => sqlite::Value::Blob(
            object
                .get("blob")
                .and_then(Json::as_array)
                .map(|bytes| {
                    bytes
                        .iter()
                        .filter_map(Json::as_u64)
                        .map(|b| b as u8)
                        .collect()
                })
                .unwrap_or_default(),
        ),
        other => sqlite::Value::Text(other.to_string()),
    }
}

/// A SQLite value with its type kept: `{"integer": 1}`, `{"real": 2.5}`, ...
fn from_sqlite(value: &sqlite::Value) -> Json {
    match value {
        sqlite::Value::Integer(int) => json!({ "integer": int }),
        sqlite::Value::Real(real) => json!({ "real": real }),
        sqlite::Value::Text(text) => json!({ "text": text }),
        sqlite::Value::Blob(blob) => json!({ "blob": blob }),
        sqlite::Value::Null => json!("null"),
    }
}

#[derive(Deserialize)]
struct RedisScript {
    /// Defaults to the component's `redis_url` variable.
    address: Option<String>,
    /// `["execute", command, args...]` (JSON numbers are int64 parameters, strings
    /// binary), or one of the typed functions: `["publish", channel, payload]`,
    /// `["get", key]`, `["set", key, value]`, `["incr", key]`, `["del", key...]`,
    /// `["sadd", key, member...]`, `["smembers", key]`, `["srem", key, member...]`.
    ops: Vec<Vec<Json>>,
}

fn redis_ops(body: &[u8]) -> Json {
    let script: RedisScript = match serde_json::from_slice(body) {
        Ok(script) => script,
        Err(err) => return json!({ "error": err.to_string() }),
    };
    let address = script
        .address
        .unwrap_or_else(|| variables::get("redis_url").unwrap_or_default());
    let connection = match redis::Connection::open(&address) {
        Ok(connection) => connection,
        Err(err) => return json!({ "open": format!("{err:?}") }),
    };
    let results: Vec<Json> = script
        .ops
        .iter()
        .map(|op| {
            let text = |index: usize| match op.get(index) {
                Some(Json::String(text)) => text.clone(),
                Some(other) => other.to_string(),
                None => String::new(),
            };
            let rest = |from: usize| (from..op.len()).map(text).collect::<Vec<_>>();
            let outcome: Result<Json, redis::Error> = match text(0).as_str() {
                "execute" => {
                    let parameters: Vec<redis::RedisParameter> = op[2..]
                        .iter()
                        .map(|arg| match arg {
                            Json::Number(number) if number.is_i64() => {
                                redis::RedisParameter::Int64(number.as_i64().unwrap_or_default())
                            }
                            Json::String(text) => {
                                redis::RedisParameter::Binary(text.clone().into_bytes())
                            }
                            other => redis::RedisParameter::Binary(other.to_string().into_bytes()),
                        })
                        .collect();
                    connection
                        .execute(&text(1), &parameters)
                        .map(|results| Json::Array(results.iter().map(from_redis).collect()))
                }
                "publish" => connection
                    .publish(&text(1), &text(2).into_bytes())
                    .map(|()| json!("ok")),
                "get" => connection.get(&text(1)).map(|value| {
                    json!(value.map(|bytes| String::from_utf8_lossy(&bytes).into_owned()))
                }),
                "set" => connection
                    .set(&text(1), &text(2).into_bytes())
                    .map(|()| json!("ok")),
                "incr" => connection.incr(&text(1)).map(|value| json!(value)),
                "del" => connection.del(&rest(1)).map(|count| json!(count)),
                "sadd" => connection
                    .sadd(&text(1), &rest(2))
                    .map(|count| json!(count)),
                "smembers" => connection.smembers(&text(1)).map(|mut members| {
                    members.sort();
                    json!(members)
                }),
                "srem" => connection
                    .srem(&text(1), &rest(2))
                    .map(|count| json!(count)),
                other => return json!({ "error": format!("unknown op {other}") }),
            };
            outcome.unwrap_or_else(|err| json!({ "error": format!("{err:?}") }))
        })
        .collect();
    json!({ "open": "ok", "results": results })
}

/// A Redis result with its kind kept: `["nil"]`, `["status", "OK"]`, `["int", 1]`,
/// `["binary", "text"]`.
fn from_redis(result: &redis::RedisResult) -> Json {
    match result {
        redis::RedisResult::Nil => json!(["nil"]),
        redis::RedisResult::Status(status) => json!(["status", status]),
        redis::RedisResult::Int64(int) => json!(["int", int]),
        redis::RedisResult::Binary(bytes) => json!(["binary", String::from_utf8_lossy(bytes)]),
    }
}

fn variable(name: &str) -> Json {
    match variables::get(name) {
        Ok(value) => json!({ "value": value }),
        Err(err) => json!({ "error": format!("{err:?}") }),
    }
}

async fn outbound(url: &str) -> Json {
    let result: Result<spin_sdk::http::Response, _> = spin_sdk::http::send(Request::get(url)).await;
    match result {
        Ok(response) => json!({
            "status": response.status(),
            "body": String::from_utf8_lossy(response.body()),
        }),
        Err(err) => json!({ "error": format!("{err:?}") }),
    }
}

fn read_file(path: &str) -> Json {
    match std::fs::read_to_string(path) {
        Ok(text) => json!({ "text": text }),
        Err(err) => json!({ "error": err.kind().to_string() }),
    }
}

/// A chunked response written in `chunks` pieces.
async fn stream(outparam: ResponseOutparam, chunks: usize) {
    let headers = Fields::from_list(&[("content-type".to_owned(), b"text/plain".to_vec())])
        .expect("static headers are valid");
    let response = OutgoingResponse::new(headers);
    let _ = response.set_status_code(200);
    let mut body = response.take_body();
    outparam.set(response);
    for index in 0..chunks {
        if body
            .send(format!("chunk {index}\n").into_bytes())
            .await
            .is_err()
        {
            return;
        }
    }
}

fn query_param(query: &str, name: &str) -> String {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| percent_decode(value))
        .unwrap_or_default()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'%' if index + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[index + 1..index + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(byte) => {
                        out.push(byte);
                        index += 3;
                        continue;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            byte => out.push(byte),
        }
        index += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn respond(outparam: ResponseOutparam, status: u16, body: Json) {
    let headers = Fields::from_list(&[("content-type".to_owned(), b"application/json".to_vec())])
        .expect("static headers are valid");
    send(outparam, status, headers, body.to_string().into_bytes()).await;
}

async fn respond_bytes(outparam: ResponseOutparam, status: u16, body: Vec<u8>) {
    send(outparam, status, Fields::new(), body).await;
}

async fn send(outparam: ResponseOutparam, status: u16, headers: Fields, body: Vec<u8>) {
    let response = OutgoingResponse::new(headers);
    let _ = response.set_status_code(status);
    let _ = outparam.set_with_body(response, body).await;
}

/// Redis trigger: records each message under `probe:received:<component>`; a message
/// `fail` makes the handler return an error (the runtime logs it and carries on).
/// Raises `KEYS[1]` to `ARGV[1]` if it is below.
const MOST_RUNNING: &str = "if tonumber(ARGV[1]) > tonumber(redis.call('GET', KEYS[1]) or '0') then \
    redis.call('SET', KEYS[1], ARGV[1]) end return 0";

#[cfg_attr(target_arch = "wasm32", spin_sdk::redis_component)]
pub fn on_message(message: bytes::Bytes) -> anyhow::Result<()> {
    if message.as_ref() == b"fail" {
        anyhow::bail!("the probe fails on purpose");
    }
    let name = variables::get("name")?;
    let connection = redis::Connection::open(&variables::get("redis_url")?)?;
    // `slow:<ms>`: takes that long, counting how many invocations of this component
    // run at once (the most ever in `probe:most-running:<name>`).
    if let Some(millis) = message
        .strip_prefix(b"slow:")
        .and_then(|millis| std::str::from_utf8(millis).ok()?.parse::<u64>().ok())
    {
        let running = connection.incr(&format!("probe:running:{name}"))?;
        connection.execute(
            "EVAL",
            &[
                redis::RedisParameter::Binary(MOST_RUNNING.as_bytes().to_vec()),
                redis::RedisParameter::Int64(1),
                redis::RedisParameter::Binary(format!("probe:most-running:{name}").into_bytes()),
                redis::RedisParameter::Int64(running),
            ],
        )?;
        std::thread::sleep(std::time::Duration::from_millis(millis));
        connection.execute(
            "DECR",
            &[redis::RedisParameter::Binary(
                format!("probe:running:{name}").into_bytes(),
            )],
        )?;
    }
    connection.execute(
        "RPUSH",
        &[
            redis::RedisParameter::Binary(format!("probe:received:{name}").into_bytes()),
            redis::RedisParameter::Binary(message.to_vec()),
        ],
    )?;
    Ok(())
}
