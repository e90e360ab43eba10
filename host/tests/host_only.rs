//! The host's own behaviour where Spin has nothing to compare with, or where the host
//! deliberately differs from Spin (README.md of the host says so).

use std::process::Command;
use std::time::Duration;

use harness::{App, Redis, Runtime, eventually};

fn host() -> Command {
    Command::new(env!("CARGO_BIN_EXE_host"))
}

fn start_probe(runtime: Runtime) -> App {
    App::builder(harness::workspace_root().join("host/probe/spin.toml"))
        .runtime(runtime)
        .with_redis(Redis::start())
        .variable("secret_word", "sesame")
        .start()
}

#[test]
fn an_invalid_manifest_is_refused_naming_the_file_and_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("spin.toml");
    std::fs::write(
        &manifest,
        "spin_manifest_version = 2\n[application]\nname = \"x\"\n\
         [component.web]\nsource = \"web.wasm\"\nsqlite_database = [\"web\"]\n",
    )
    .unwrap();
    let output = host().arg("up").arg("-f").arg(&manifest).output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(&manifest.display().to_string()), "{stderr}");
    assert!(
        stderr.contains("unknown field `sqlite_database`"),
        "{stderr}"
    );
}

#[test]
fn a_missing_component_source_is_an_error_naming_the_component() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("spin.toml");
    std::fs::write(
        &manifest,
        "spin_manifest_version = 2\n[application]\nname = \"x\"\n\
         [[trigger.http]]\nroute = \"/...\"\ncomponent = \"web\"\n\
         [component.web]\nsource = \"missing.wasm\"\n",
    )
    .unwrap();
    let output = host().arg("up").arg("-f").arg(&manifest).output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("component `web`"), "{stderr}");
    assert!(stderr.contains("missing.wasm"), "{stderr}");
}

#[test]
fn each_request_is_logged_once_with_status_and_duration() {
    let app = start_probe(Runtime::Host);
    assert_eq!(app.get("/status?code=418").status, 418);
    let line = app.wait_for_log("the request's log line", |line| {
        line.contains("/status?code=418")
    });
    assert!(
        line.starts_with("probe GET /status?code=418 -> 418 in "),
        "{line}"
    );
    // "... in 0.84 ms (instance 61 µs)": the part spent making the instance.
    let (_, instance) = line
        .split_once(" ms (instance ")
        .expect("the instance time");
    let micros = instance.strip_suffix(" µs)").expect("in µs");
    assert!(micros.parse::<u64>().is_ok_and(|n| n > 0), "{line}");
    let lines = app
        .logs()
        .iter()
        .filter(|line| line.contains("/status?code=418"))
        .count();
    assert_eq!(lines, 1);
}

#[test]
fn component_output_is_prefixed_with_the_component_id() {
    let app = start_probe(Runtime::Host);
    assert_eq!(app.get("/trap").status, 500);
    app.wait_for_log("the panic message", |line| {
        line.starts_with("[probe] ") && line.contains("the probe traps on purpose")
    });
    app.wait_for_log("the trap's log line", |line| {
        line.contains("the component trapped")
    });
}

#[test]
fn the_redis_trigger_reconnects_after_redis_restarts() {
    let mut app = start_probe(Runtime::Host);
    let subscribed = |app: &App| {
        let mut redis = app.redis().connection();
        eventually("the trigger to subscribe", Duration::from_secs(30), || {
            let counts: Vec<(String, u64)> = redis::cmd("PUBSUB")
                .arg("NUMSUB")
                .arg("probe:in")
                .query(&mut redis)
                .ok()?;
            (counts.first()?.1 > 0).then_some(())
        });
    };
    subscribed(&app);
    app.redis_mut().restart();
    subscribed(&app);
    let mut redis = app.redis().connection();
    let _: i64 = redis::cmd("PUBLISH")
        .arg("probe:in")
        .arg("after restart")
        .query(&mut redis)
        .unwrap();
    eventually(
        "the message after the restart",
        Duration::from_secs(20),
        || {
            let got: Vec<String> = redis::cmd("LRANGE")
                .arg("probe:received:probe")
                .arg(0)
                .arg(-1)
                .query(&mut redis)
                .ok()?;
            (got == ["after restart"]).then_some(())
        },
    );
    // HTTP kept serving throughout.
    assert_eq!(app.get("/").status, 200);
    assert!(app.exit_status().is_none());
}

/// Each runtime as it is (host/README.md, "Where it deliberately differs"): Spin where
/// it is found, and always the host, so that the test never passes having run nothing.
#[test]
fn real_spin_exits_when_redis_goes_away_where_the_host_stays_up() {
    for runtime in Runtime::all() {
        let mut app = start_probe(runtime.clone());
        app.redis_mut().stop();
        if runtime.is_spin() {
            let status = eventually("Spin to exit", Duration::from_secs(30), || {
                app.exit_status()
            });
            assert!(!status.success(), "{status}");
        } else {
            // The connection lost, then a reconnection refused: the host lived through both.
            eventually("the host to try again", Duration::from_secs(30), || {
                let tries = app
                    .logs()
                    .iter()
                    .filter(|line| {
                        line.contains("redis trigger: ") && line.contains("reconnecting")
                    })
                    .count();
                (tries >= 2).then_some(())
            });
            assert_eq!(app.get("/").status, 200);
            assert!(app.exit_status().is_none());
        }
    }
}

#[test]
fn sigterm_stops_the_host_cleanly() {
    let mut app = start_probe(Runtime::Host);
    assert_eq!(app.get("/").status, 200);
    let status = app.terminate();
    assert!(status.success(), "{status}");
    assert!(app.logs().iter().any(|line| line == "Shutting down"));
}

#[test]
fn compiled_code_is_cached_between_starts() {
    let cache = tempfile::tempdir().unwrap();
    // The app's own runtime config names every database; copied, its relative paths
    // point into the temporary directory.
    let runtime_config = cache.path().join("runtime-config.toml");
    std::fs::copy(
        harness::workspace_root().join("runtime-config.toml"),
        &runtime_config,
    )
    .unwrap();
    let start = || {
        let mut child = host()
            .arg("up")
            .arg("-f")
            .arg(harness::workspace_root().join("spin.toml"))
            .args(["--listen", "127.0.0.1:0", "--cache-dir"])
            .arg(cache.path())
            .arg("--state-dir")
            .arg(cache.path().join("state"))
            .arg("--runtime-config-file")
            .arg(&runtime_config)
            .env("SPIN_VARIABLE_JWT_KEY", "test")
            .env("SPIN_VARIABLE_REDIS_URL", "redis://127.0.0.1:1")
            .stderr(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let ready = std::io::BufRead::lines(std::io::BufReader::new(stderr))
            .map_while(Result::ok)
            .find(|line| line.starts_with("Ready in"));
        let _ = child.kill();
        let _ = child.wait();
        ready.expect("the host reports when it is ready")
    };
    // "Ready in 12 ms (0 of 2 modules from the compiled-code cache)"
    let cached = |line: &str| -> (u32, u32) {
        let counts = line
            .split('(')
            .nth(1)
            .and_then(|rest| rest.split(" modules").next())
            .unwrap_or_else(|| panic!("no module counts in {line}"));
        let (from_cache, of) = counts.split_once(" of ").expect("`N of M`");
        (from_cache.parse().unwrap(), of.parse().unwrap())
    };
    let first = start();
    let (from_cache, modules) = cached(&first);
    assert!(modules >= 1 && from_cache == 0, "{first}");
    let second = start();
    assert_eq!(cached(&second), (modules, modules), "{second}");
}
