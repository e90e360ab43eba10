//! The host behaves as Spin 3.6 does: every test runs the probe app (`host/probe`) on
//! the project's host and, where real Spin is installed, on Spin too, and asserts the
//! same answers on both.

use std::time::Duration;

use harness::{App, HttpStub, Redis, Runtime, eventually, on_every_runtime};
use serde_json::{Value, json};

fn probe_manifest() -> std::path::PathBuf {
    harness::workspace_root().join("host/probe/spin.toml")
}

fn start_probe(runtime: Runtime) -> App {
    App::builder(probe_manifest())
        .runtime(runtime)
        .with_redis(Redis::start())
        .variable("secret_word", "sesame")
        .start()
}

fn echo(app: &App, path: &str) -> Value {
    let reply = app.get(path);
    assert_eq!(
        reply.status,
        200,
        "{} GET {path}: {}",
        app.runtime.name(),
        reply.text()
    );
    reply.json()
}

#[test]
fn routes_pick_exact_over_wildcard_and_the_longest_prefix() {
    on_every_runtime(start_probe, |app| {
        let cases = [
            ("/anything/at/all", "probe", "/...", "/anything/at/all"),
            ("/routes", "other", "/routes/...", ""),
            ("/routes/x/y", "other", "/routes/...", "/x/y"),
            ("/routes/exact", "probe", "/routes/exact", ""),
            ("/routes/exact/", "probe", "/routes/exact", ""),
            ("/routes/exactly", "other", "/routes/...", "/exactly"),
            ("/routes/deeper/a", "probe", "/routes/deeper/...", "/a"),
            ("/routesx", "probe", "/...", "/routesx"),
        ];
        for (path, component, route, path_info) in cases {
            let seen = echo(app, path);
            let context = format!("{} {path}: {seen}", app.runtime.name());
            assert_eq!(seen["component"], component, "{context}");
            assert_eq!(seen["headers"]["spin-matched-route"], route, "{context}");
            assert_eq!(seen["headers"]["spin-path-info"], path_info, "{context}");
        }
    });
}

#[test]
fn route_parameters_are_matched_and_passed_as_headers() {
    on_every_runtime(start_probe, |app| {
        let seen = echo(app, "/params/7/items/x-y");
        let headers = &seen["headers"];
        let context = format!("{}: {seen}", app.runtime.name());
        assert_eq!(seen["component"], "probe", "{context}");
        assert_eq!(
            headers["spin-matched-route"], "/params/:id/items/:item",
            "{context}"
        );
        assert_eq!(headers["spin-path-match-id"], "7", "{context}");
        assert_eq!(headers["spin-path-match-item"], "x-y", "{context}");
        // A missing segment does not match: the wildcard takes it.
        assert_eq!(
            echo(app, "/params/7/items")["headers"]["spin-matched-route"],
            "/..."
        );
    });
}

#[test]
fn spin_headers_describe_the_request_and_keep_the_clients_own() {
    on_every_runtime(start_probe, |app| {
        let reply = app.send(
            app.request(harness::Method::GET, "/routes/deeper/a?x=1&y=%20")
                .header("x-custom", "kept"),
        );
        let seen = reply.json();
        let headers = &seen["headers"];
        let base = app.base_url();
        assert_eq!(
            headers["spin-full-url"],
            format!("{base}/routes/deeper/a?x=1&y=%20")
        );
        assert_eq!(headers["spin-base-path"], "/");
        assert_eq!(headers["spin-component-route"], "/routes/deeper");
        assert_eq!(headers["spin-raw-component-route"], "/routes/deeper/...");
        assert!(
            headers["spin-client-addr"]
                .as_str()
                .unwrap()
                .starts_with("127.0.0.1:"),
            "{headers}"
        );
        assert_eq!(headers["x-custom"], "kept");
        assert_eq!(seen["query"], "x=1&y=%20");
    });
}

#[test]
fn a_private_component_is_never_reached_over_http() {
    on_every_runtime(start_probe, |app| {
        for path in ["/", "/hidden", "/routes/hidden", "/(private)"] {
            assert_ne!(echo(app, path)["component"], "hidden", "{path}");
        }
    });
}

fn script(app: &App, path: &str, body: Value) -> Value {
    let reply = app.post_json(path, &body);
    assert_eq!(
        reply.status,
        200,
        "{} POST {path}: {}",
        app.runtime.name(),
        reply.text()
    );
    reply.json()
}

#[test]
fn key_value_stores_round_trip_and_only_granted_ones_open() {
    on_every_runtime(start_probe, |app| {
        let ops = json!({"store": "default", "ops": [
            ["set", "k", "v"], ["get", "k"], ["exists", "k"], ["exists", "nope"],
            ["get", "nope"], ["set", "k", "w"], ["get", "k"], ["keys"], ["delete", "k"], ["keys"],
        ]});
        assert_eq!(
            script(app, "/kv", ops),
            json!({"open": "ok", "results": ["ok", "v", true, false, null, "ok", "w", ["k"], "ok", []]})
        );
        let unknown = json!({"store": "elsewhere", "ops": []});
        assert_eq!(
            script(app, "/kv", unknown),
            json!({"open": "Error::AccessDenied"})
        );
        let ungranted = json!({"store": "default", "ops": []});
        assert_eq!(
            script(app, "/routes/kv", ungranted),
            json!({"open": "Error::AccessDenied"})
        );
    });
}

#[test]
fn a_key_value_store_can_live_in_redis() {
    for runtime in Runtime::all() {
        let redis = Redis::start();
        let store = format!(
            "[key_value_store.default]\ntype = \"redis\"\nurl = \"{}\"\n",
            redis.url()
        );
        let app = App::builder(probe_manifest())
            .runtime(runtime)
            .runtime_config(&store)
            .with_redis(redis)
            .variable("secret_word", "sesame")
            .start();
        let ops = json!({"store": "default", "ops": [
            ["set", "k", "v"], ["get", "k"], ["exists", "k"], ["keys"], ["delete", "k"],
            ["exists", "k"],
        ]});
        assert_eq!(
            script(&app, "/kv", ops),
            json!({"open": "ok", "results": ["ok", "v", true, ["k"], "ok", false]}),
            "{}",
            app.runtime.name()
        );
        let mut redis = app.redis().connection();
        let _: () = redis::cmd("SET")
            .arg("k")
            .arg("from redis")
            .query(&mut redis)
            .unwrap();
        let get = json!({"store": "default", "ops": [["get", "k"]]});
        assert_eq!(script(&app, "/kv", get)["results"], json!(["from redis"]));
    }
}

#[test]
fn sqlite_values_keep_their_types_and_errors_say_why() {
    on_every_runtime(start_probe, |app| {
        let statements = json!({"db": "probe", "statements": [
            {"sql": "CREATE TABLE t (i, r, s, b, n)"},
            {"sql": "INSERT INTO t VALUES (?, ?, ?, ?, ?)",
             "params": [-7, 2.5, "ünï", {"blob": [0, 255]}, null]},
            {"sql": "SELECT i, r, s, b, n FROM t"},
            {"sql": "SELECT nope"},
        ]});
        assert_eq!(
            script(app, "/sqlite", statements),
            json!({"open": "ok", "results": [
                {"columns": [], "rows": []},
                {"columns": [], "rows": []},
                {"columns": ["i", "r", "s", "b", "n"], "rows": [[
                    {"integer": -7}, {"real": 2.5}, {"text": "ünï"}, {"blob": [0, 255]}, "null"
                ]]},
                {"error": "Error::Io(\"no such column: nope in SELECT nope at offset 7\")"},
            ]})
        );
        let default = json!({"db": "default", "statements": [{"sql": "SELECT 1 AS one"}]});
        assert_eq!(
            script(app, "/sqlite", default)["results"][0],
            json!({"columns": ["one"], "rows": [[{"integer": 1}]]})
        );
        let unknown = json!({"db": "elsewhere", "statements": []});
        assert_eq!(
            script(app, "/sqlite", unknown),
            json!({"open": "Error::AccessDenied"})
        );
        let ungranted = json!({"db": "probe", "statements": []});
        assert_eq!(
            script(app, "/routes/sqlite", ungranted),
            json!({"open": "Error::AccessDenied"})
        );
    });
}

fn count_rows(app: &App) -> Value {
    let count = json!({"db": "probe", "statements": [{"sql": "SELECT count(*) AS n FROM t"}]});
    script(app, "/sqlite", count)["results"][0]["rows"][0][0].clone()
}

#[test]
fn a_transaction_spans_statements_and_an_unfinished_one_is_rolled_back() {
    on_every_runtime(start_probe, |app| {
        let setup = json!({"db": "probe", "statements": [
            {"sql": "CREATE TABLE t (x)"},
            {"sql": "BEGIN IMMEDIATE"},
            {"sql": "INSERT INTO t VALUES (1)"},
            {"sql": "INSERT INTO t VALUES (2)"},
            {"sql": "COMMIT"},
        ]});
        script(app, "/sqlite", setup);
        assert_eq!(count_rows(app), json!({"integer": 2}));

        let abandoned = json!({"db": "probe", "statements": [
            {"sql": "BEGIN IMMEDIATE"},
            {"sql": "INSERT INTO t VALUES (3)"},
        ]});
        script(app, "/sqlite", abandoned);
        assert_eq!(
            count_rows(app),
            json!({"integer": 2}),
            "{}",
            app.runtime.name()
        );
        // And the abandoned transaction's lock is gone.
        let write = json!({"db": "probe", "statements": [
            {"sql": "BEGIN IMMEDIATE"}, {"sql": "INSERT INTO t VALUES (4)"}, {"sql": "COMMIT"},
        ]});
        let results = script(app, "/sqlite", write)["results"].clone();
        assert!(
            results
                .as_array()
                .unwrap()
                .iter()
                .all(|r| r.get("error").is_none()),
            "{results}"
        );
        assert_eq!(count_rows(app), json!({"integer": 3}));
    });
}

#[test]
fn a_second_writer_waits_then_gets_database_is_locked() {
    on_every_runtime(start_probe, |app| {
        script(
            app,
            "/sqlite",
            json!({"db": "probe", "statements": [{"sql": "CREATE TABLE t (x)"}]}),
        );
        // Both hold the write lock longer than the 5 s a waiting writer waits: whichever
        // gets it first commits, the other's BEGIN fails. 4 s of margin, for a second
        // request that starts late on a busy machine.
        let writer = json!({"db": "probe", "statements": [
            {"sql": "BEGIN IMMEDIATE"},
            {"sleep_ms": 9000},
            {"sql": "INSERT INTO t VALUES (1)"},
            {"sql": "COMMIT"},
        ]});
        let outcomes: Vec<Value> = std::thread::scope(|scope| {
            let writers: Vec<_> = (0..2)
                .map(|_| scope.spawn(|| script(app, "/sqlite", writer.clone())))
                .collect();
            writers
                .into_iter()
                .map(|writer| writer.join().unwrap())
                .collect()
        });
        let begins: Vec<&Value> = outcomes
            .iter()
            .map(|outcome| &outcome["results"][0])
            .collect();
        let locked = json!({"error": "Error::Io(\"database is locked\")"});
        let winners = begins.iter().filter(|begin| **begin != &locked).count();
        assert_eq!(
            winners,
            1,
            "{} exactly one writer wins: {begins:?}",
            app.runtime.name()
        );
        assert!(begins.contains(&&locked), "{begins:?}");
        assert_eq!(count_rows(app), json!({"integer": 1}));
    });
}

fn redis_script(app: &App, ops: Value) -> Value {
    script(app, "/redis", json!({ "ops": ops }))
}

#[test]
fn redis_execute_flattens_replies_as_spin_does() {
    on_every_runtime(start_probe, |app| {
        let reply = redis_script(
            app,
            json!([
                ["execute", "XGROUP", "CREATE", "s", "g", "0", "MKSTREAM"],
                [
                    "execute",
                    "XREADGROUP",
                    "GROUP",
                    "g",
                    "c",
                    "COUNT",
                    10,
                    "STREAMS",
                    "s",
                    ">"
                ],
                ["execute", "XADD", "s", "1-1", "e", "one"],
                ["execute", "XADD", "s", "2-1", "e", "two"],
                [
                    "execute",
                    "XREADGROUP",
                    "GROUP",
                    "g",
                    "c",
                    "COUNT",
                    10,
                    "STREAMS",
                    "s",
                    ">"
                ],
                ["execute", "XPENDING", "s", "g"],
                ["execute", "XAUTOCLAIM", "s", "g", "c2", 0, "0-0"],
                ["execute", "XACK", "s", "g", "1-1"],
                ["execute", "XPENDING", "s", "g", "-", "+", 10],
                ["execute", "LRANGE", "nothing", 0, -1],
                ["execute", "SET", "k", "v"],
                ["execute", "GET", "k"],
                ["execute", "GET", "missing"],
            ]),
        );
        let expected = json!({"open": "ok", "results": [
            [["status", "OK"]],
            [["nil"]],
            [["binary", "1-1"]],
            [["binary", "2-1"]],
            [["binary", "s"], ["binary", "1-1"], ["binary", "e"], ["binary", "one"],
             ["binary", "2-1"], ["binary", "e"], ["binary", "two"]],
            [["int", 2], ["binary", "1-1"], ["binary", "2-1"], ["binary", "c"], ["binary", "2"]],
            [["binary", "0-0"], ["binary", "1-1"], ["binary", "e"], ["binary", "one"],
             ["binary", "2-1"], ["binary", "e"], ["binary", "two"]],
            [["int", 1]],
            "XPENDING-DETAIL",
            [],
            [["status", "OK"]],
            [["binary", "v"]],
            [["nil"]],
        ]});
        // The detailed XPENDING has a delivery time in it: check its shape apart.
        let mut reply = reply;
        let detail = std::mem::replace(&mut reply["results"][8], json!("XPENDING-DETAIL"));
        assert_eq!(reply, expected, "{}", app.runtime.name());
        let detail = detail.as_array().unwrap().clone();
        assert_eq!(detail.len(), 4, "{detail:?}");
        assert_eq!(detail[0], json!(["binary", "2-1"]));
        assert_eq!(detail[1], json!(["binary", "c2"]));
        assert_eq!(detail[2][0], "int");
        assert_eq!(detail[3], json!(["int", 2]));
    });
}

#[test]
fn redis_typed_functions_answer_like_spin() {
    on_every_runtime(start_probe, |app| {
        let reply = redis_script(
            app,
            json!([
                ["set", "a", "1"],
                ["get", "a"],
                ["get", "missing"],
                ["incr", "a"],
                ["del", "a", "b"],
                ["sadd", "set", "x", "y"],
                ["smembers", "set"],
                ["srem", "set", "x"],
                ["publish", "nobody-listens", "hi"],
            ]),
        );
        assert_eq!(
            reply,
            json!({"open": "ok", "results": ["ok", "1", null, 2, 1, 2, ["x", "y"], 1, "ok"]})
        );
    });
}

#[test]
fn redis_errors_carry_the_servers_text_as_spin_shows_it() {
    on_every_runtime(start_probe, |app| {
        let reply = redis_script(
            app,
            json!([
                ["execute", "XGROUP", "CREATE", "s", "g", "0", "MKSTREAM"],
                ["execute", "XGROUP", "CREATE", "s", "g", "0", "MKSTREAM"],
                [
                    "execute",
                    "XREADGROUP",
                    "GROUP",
                    "nog",
                    "c",
                    "STREAMS",
                    "s",
                    ">"
                ],
                ["sadd", "set", "x"],
                ["incr", "set"],
                ["execute", "NOSUCHCMD"],
            ]),
        );
        let other = |text: &str| json!({ "error": format!("Error::Other({text:?})") });
        assert_eq!(
            reply["results"],
            json!([
                [["status", "OK"]],
                other("BUSYGROUP: Consumer Group name already exists"),
                other(
                    "NOGROUP: No such key 's' or consumer group 'nog' in XREADGROUP with GROUP option"
                ),
                1,
                other("WRONGTYPE: Operation against a key holding the wrong kind of value"),
                other(
                    "An error was signalled by the server - ResponseError: unknown command 'NOSUCHCMD', with args beginning with: "
                ),
            ]),
            "{}",
            app.runtime.name()
        );
    });
}

#[test]
fn redis_addresses_outside_allowed_hosts_are_invalid() {
    on_every_runtime(start_probe, |app| {
        let port = app.redis().port();
        let denied = json!({"address": format!("redis://localhost:{port}"), "ops": []});
        assert_eq!(
            script(app, "/redis", denied),
            json!({"open": "Error::InvalidAddress"})
        );
        let refused = json!({"address": "redis://127.0.0.1:1", "ops": []});
        assert_eq!(
            script(app, "/redis", refused),
            json!({"open": "Error::Other(\"Connection refused (os error 111)\")"})
        );
    });
}

#[test]
fn variables_are_rendered_per_component() {
    on_every_runtime(start_probe, |app| {
        assert_eq!(
            echo(app, "/variable/greeting"),
            json!({"value": "hello, sesame!"})
        );
        assert_eq!(echo(app, "/variable/name"), json!({"value": "probe"}));
        assert_eq!(
            echo(app, "/routes/variable/name"),
            json!({"value": "other"})
        );
        assert_eq!(
            echo(app, "/routes/variable/greeting"),
            json!({"error": "Error::Undefined(\"no variable for \\\"other\\\".\\\"greeting\\\"\")"})
        );
        // Application variables are reachable only through a component variable.
        assert_eq!(
            echo(app, "/variable/secret_word"),
            json!({"error": "Error::Undefined(\"no variable for \\\"probe\\\".\\\"secret_word\\\"\")"})
        );
        assert_eq!(
            echo(app, "/variable/Bad-Name"),
            json!({"error": "Error::InvalidName(\"\\\"Bad-Name\\\": invalid character 'B'. Variable names may contain only lower-case letters, numbers, and underscores.\")"})
        );
    });
}

#[test]
fn the_environment_overrides_a_variables_default() {
    for runtime in Runtime::all() {
        let app = App::builder(probe_manifest())
            .runtime(runtime)
            .with_redis(Redis::start())
            .variable("secret_word", "sesame")
            .variable("greeting", "bonjour")
            .start();
        assert_eq!(
            echo(&app, "/variable/greeting"),
            json!({"value": "bonjour, sesame!"})
        );
    }
}

#[test]
fn a_missing_required_variable_stops_the_app_at_start() {
    for runtime in Runtime::all() {
        let outcome = App::builder(probe_manifest())
            .runtime(runtime.clone())
            .with_redis(Redis::start())
            .try_start();
        let Err(err) = outcome else {
            panic!("{} started without its required variable", runtime.name());
        };
        assert!(err.status.is_some_and(|status| !status.success()), "{err}");
        assert!(
            err.output.iter().any(|line| line.contains("secret_word")),
            "{err}"
        );
    }
}

#[test]
fn outbound_http_reaches_only_allowed_hosts() {
    on_every_runtime(start_probe, |app| {
        let stub = HttpStub::start("stubbed");
        let port = stub.port();
        assert_eq!(
            echo(app, &format!("/outbound?url=http://127.0.0.1:{port}/x")),
            json!({"status": 200, "body": "stubbed"})
        );
        let denied = json!({"error": "Http(ErrorCode::HttpRequestDenied)"});
        assert_eq!(
            echo(app, &format!("/outbound?url=http://localhost:{port}/x")),
            denied
        );
        assert_eq!(echo(app, "/outbound?url=https://example.com/"), denied);
        assert_eq!(
            echo(
                app,
                &format!("/routes/outbound?url=http://127.0.0.1:{port}/x")
            ),
            denied
        );
        assert_eq!(stub.requests(), 1, "denied requests never leave the host");
        assert_eq!(
            echo(app, "/outbound?url=http://127.0.0.1:1/"),
            json!({"error": "Http(ErrorCode::ConnectionRefused)"})
        );
    });
}

#[test]
fn a_trapping_component_gets_500_and_the_app_keeps_serving() {
    on_every_runtime(start_probe, |app| {
        let reply = app.get("/trap");
        assert_eq!(reply.status, 500, "{}", app.runtime.name());
        assert_eq!(echo(app, "/after")["component"], "probe");
    });
}

#[test]
fn bodies_stream_both_ways() {
    on_every_runtime(start_probe, |app| {
        let reply = app.get("/stream?chunks=500");
        assert_eq!(reply.status, 200);
        let expected: String = (0..500).map(|index| format!("chunk {index}\n")).collect();
        assert_eq!(reply.text(), expected);

        let body: Vec<u8> = (0..(1 << 20)).map(|index| (index % 251) as u8).collect();
        let reply = app.post_raw("/echo-body", "application/octet-stream", body.clone());
        assert_eq!(reply.status, 200);
        assert!(reply.body == body, "a 1 MiB body comes back unchanged");
    });
}

#[test]
fn statuses_set_by_the_component_reach_the_client() {
    on_every_runtime(start_probe, |app| {
        let reply = app.get("/status?code=418");
        assert_eq!(reply.status, 418);
        assert_eq!(
            reply.header("content-type").as_deref(),
            Some("application/json")
        );
    });
}

#[test]
fn files_are_mounted_read_only_where_the_manifest_says() {
    on_every_runtime(start_probe, |app| {
        let name = app.runtime.name();
        let file = |path: &str| echo(app, &format!("/file?path={path}"));
        assert_eq!(
            file("/data/greeting.txt"),
            json!({"text": "a file the probe reads through its directory mount\n"})
        );
        assert_eq!(file("/data/nested/deep.txt"), json!({"text": "nested\n"}));
        assert_eq!(
            file("/files/pattern.txt"),
            json!({"text": "matched by a glob\n"})
        );
        assert_eq!(file("/etc/passwd"), json!({"error": "entity not found"}));
        assert_eq!(
            echo(app, "/routes/file?path=/data/greeting.txt"),
            // No preopened directory at all: wasi-libc's "uncategorized" (ENOTCAPABLE).
            json!({"error": "uncategorized error"}),
            "{name}: a component without files sees none"
        );
        assert_eq!(
            echo(app, "/env?name=PROBE_ENV"),
            json!({"value": "from the manifest"})
        );
        assert_eq!(
            echo(app, "/routes/env?name=PROBE_ENV"),
            json!({"value": null})
        );
    });
}

/// Waits until the app's Redis trigger listens on `channel`.
fn wait_for_subscriber(app: &App, channel: &str) {
    let mut redis = app.redis().connection();
    eventually(
        &format!("a subscriber on {channel}"),
        Duration::from_secs(20),
        || {
            let counts: Vec<(String, u64)> = redis::cmd("PUBSUB")
                .arg("NUMSUB")
                .arg(channel)
                .query(&mut redis)
                .ok()?;
            (counts.first()?.1 > 0).then_some(())
        },
    );
}

fn received(redis: &mut redis::Connection, component: &str) -> Vec<String> {
    redis::cmd("LRANGE")
        .arg(format!("probe:received:{component}"))
        .arg(0)
        .arg(-1)
        .query(redis)
        .expect("LRANGE answers")
}

#[test]
fn redis_messages_reach_every_component_bound_to_the_channel() {
    on_every_runtime(start_probe, |app| {
        wait_for_subscriber(app, "probe:in");
        wait_for_subscriber(app, "probe:other");
        let mut redis = app.redis().connection();
        let publish = |redis: &mut redis::Connection, channel: &str, payload: &str| {
            let _: i64 = redis::cmd("PUBLISH")
                .arg(channel)
                .arg(payload)
                .query(redis)
                .unwrap();
        };
        publish(&mut redis, "probe:in", "first");
        publish(&mut redis, "probe:in", "fail");
        publish(&mut redis, "probe:other", "only-other");
        publish(&mut redis, "probe:in", "after a failure");
        eventually("every message handled", Duration::from_secs(20), || {
            let probe = received(&mut redis, "probe");
            let other = received(&mut redis, "other");
            (probe.len() == 2 && other.len() == 3).then_some(())
        });
        let mut probe = received(&mut redis, "probe");
        let mut other = received(&mut redis, "other");
        probe.sort();
        other.sort();
        assert_eq!(
            probe,
            ["after a failure", "first"],
            "{}",
            app.runtime.name()
        );
        assert_eq!(other, ["after a failure", "first", "only-other"]);
    });
}

/// Spin handles the messages of one Redis address one at a time: the next waits until
/// every component invoked for the last has returned (so a burst queues, and a
/// component runs one Redis invocation at a time); one message's components run side
/// by side.
#[test]
fn redis_messages_of_one_address_are_handled_one_at_a_time() {
    on_every_runtime(start_probe, |app| {
        wait_for_subscriber(app, "probe:in");
        let mut redis = app.redis().connection();
        for _ in 0..4 {
            let _: i64 = redis::cmd("PUBLISH")
                .arg("probe:in")
                .arg("slow:300")
                .query(&mut redis)
                .unwrap();
        }
        eventually("every message handled", Duration::from_secs(20), || {
            let probe = received(&mut redis, "probe");
            let other = received(&mut redis, "other");
            (probe.len() == 4 && other.len() == 4).then_some(())
        });
        let most = |redis: &mut redis::Connection, component: &str| -> i64 {
            redis::cmd("GET")
                .arg(format!("probe:most-running:{component}"))
                .query::<Option<i64>>(redis)
                .unwrap()
                .unwrap_or(0)
        };
        assert_eq!(most(&mut redis, "probe"), 1, "{}", app.runtime.name());
        assert_eq!(most(&mut redis, "other"), 1, "{}", app.runtime.name());
    });
}
