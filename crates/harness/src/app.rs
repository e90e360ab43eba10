//! The app under test: a manifest run by the host or by Spin on a free loopback port,
//! with its own state directory and SQLite files, and its output kept for asserts.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io::{BufRead, BufReader, Read};
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::client::Client;
use crate::redis_server::Redis;
use crate::runtime::{Runtime, host_binary};
use crate::{eventually, free_port};

/// How long a start may take. Measured on 2 cores: the dev host with a warm
/// compiled-code cache (`cargo xtask test` compiles every test app once before the
/// tests) serves within a second; with an empty one it compiles the app's six modules
/// in about 5 s, and several tests doing that at once on a busy machine took up to
/// 40 s each. The timeout keeps more than four times the worst of these as margin, so
/// a start that fails it is stuck, not slow.
const START_TIMEOUT: Duration = Duration::from_secs(180);

pub struct AppBuilder {
    manifest: PathBuf,
    runtime: Runtime,
    variables: BTreeMap<String, String>,
    environment: BTreeMap<String, String>,
    redis: Option<Redis>,
    runtime_config_extra: String,
    host_cache_dir: Option<PathBuf>,
    host: Option<PathBuf>,
}

impl AppBuilder {
    /// Runs the app on this build of the host rather than the one of this checkout (the
    /// bench runs an earlier commit's app on that commit's host).
    pub fn host_binary(mut self, host: impl Into<PathBuf>) -> AppBuilder {
        self.host = Some(host.into());
        self
    }

    /// Where the host keeps its compiled-code cache (default: `host-cache` next to the
    /// host binary, shared by every test). An empty directory makes it compile every
    /// component, as a first start does.
    pub fn host_cache_dir(mut self, dir: impl Into<PathBuf>) -> AppBuilder {
        self.host_cache_dir = Some(dir.into());
        self
    }

    /// More runtime config (TOML), after the SQLite databases the harness places.
    pub fn runtime_config(mut self, toml: &str) -> AppBuilder {
        self.runtime_config_extra.push_str(toml);
        self.runtime_config_extra.push('\n');
        self
    }

    pub fn runtime(mut self, runtime: Runtime) -> AppBuilder {
        self.runtime = runtime;
        self
    }

    /// An application variable, passed as `SPIN_VARIABLE_<NAME>`.
    pub fn variable(mut self, name: &str, value: &str) -> AppBuilder {
        self.variables.insert(name.to_owned(), value.to_owned());
        self
    }

    /// An environment variable of the app's process (the runtime's, not a component's:
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`, say). The tests' own `OTEL_*` variables are not
    /// passed on: a test exports traces only when it says so.
    pub fn env(mut self, name: &str, value: &str) -> AppBuilder {
        self.environment.insert(name.to_owned(), value.to_owned());
        self
    }

    /// Leaves `name` to the manifest's default: for the variables the harness gives
    /// unless told otherwise (`payment_provider`).
    pub fn without_variable(mut self, name: &str) -> AppBuilder {
        self.variables.remove(name);
        self
    }

    /// Gives the app this Redis (as the `redis_url` variable); the app owns it.
    pub fn with_redis(self, redis: Redis) -> AppBuilder {
        let url = redis.url();
        let mut builder = self.variable("redis_url", &url);
        builder.redis = Some(redis);
        builder
    }

    /// Starts the app and waits until it serves HTTP; panics with its output if it
    /// does not.
    pub fn start(self) -> App {
        match self.try_start() {
            Ok(app) => app,
            Err(err) => panic!("{err}"),
        }
    }

    /// Starts the app; `Err` when it exits or does not serve within the timeout.
    pub fn try_start(self) -> Result<App, StartError> {
        crate::runtime::record(&self.runtime);
        let dir = tempfile::tempdir().expect("a temporary directory");
        let runtime_config =
            write_runtime_config(&self.manifest, dir.path(), &self.runtime_config_extra);
        let launch = Launch {
            runtime: self.runtime,
            manifest: self.manifest,
            variables: self.variables,
            environment: self.environment,
            runtime_config,
            sqlite_dir: dir.path().to_path_buf(),
            host_cache_dir: self.host_cache_dir,
            host: self.host,
        };
        launch.start(dir, self.redis)
    }
}

/// How an app process is started: kept, so that replicas start the same way.
#[derive(Clone)]
struct Launch {
    runtime: Runtime,
    manifest: PathBuf,
    variables: BTreeMap<String, String>,
    environment: BTreeMap<String, String>,
    runtime_config: PathBuf,
    /// Where the runtime config puts the SQLite files.
    sqlite_dir: PathBuf,
    host_cache_dir: Option<PathBuf>,
    host: Option<PathBuf>,
}

impl Launch {
    /// Starts one process; its state directory goes into `dir`.
    fn start(self, dir: TempDir, redis: Option<Redis>) -> Result<App, StartError> {
        let state_dir = dir.path().join("state");
        let mut command = match &self.runtime {
            Runtime::Host => {
                let host = self.host.clone().unwrap_or_else(host_binary);
                let mut command = Command::new(&host);
                command
                    .args(["up", "--listen", "127.0.0.1:0"])
                    .arg("--cache-dir")
                    .arg(
                        self.host_cache_dir
                            .clone()
                            .unwrap_or_else(|| host.with_file_name("host-cache")),
                    );
                command
            }
            Runtime::Spin(spin) => {
                let mut command = Command::new(spin);
                command
                    .args(["up", "--listen"])
                    .arg(format!("127.0.0.1:{}", free_port()));
                command
            }
        };
        command
            .arg("--from")
            .arg(&self.manifest)
            .arg("--runtime-config-file")
            .arg(&self.runtime_config)
            .arg("--state-dir")
            .arg(&state_dir)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (name, _) in std::env::vars_os() {
            let text = name.to_string_lossy();
            if text.starts_with("SPIN_VARIABLE_") || text.starts_with("OTEL_") {
                command.env_remove(name);
            }
        }
        command.envs(&self.environment);
        for (name, value) in &self.variables {
            command.env(
                format!("SPIN_VARIABLE_{}", name.to_ascii_uppercase()),
                value,
            );
        }
        let mut child = command
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start {:?}: {err}", command.get_program()));
        let logs = Logs::default();
        let label = self.runtime.name();
        logs.follow(label, child.stdout.take().expect("stdout is piped"));
        logs.follow(label, child.stderr.take().expect("stderr is piped"));

        let started = Instant::now();
        let base_url = loop {
            if let Some(url) = logs.lines().iter().find_map(|line| {
                line.strip_prefix("Serving ")
                    .map(str::trim)
                    .map(str::to_owned)
            }) {
                break url;
            }
            if let Ok(Some(status)) = child.try_wait() {
                return Err(StartError {
                    status: Some(status),
                    output: logs.wait_for_end(),
                });
            }
            if started.elapsed() > START_TIMEOUT {
                let _ = child.kill();
                let _ = child.wait();
                return Err(StartError {
                    status: None,
                    output: logs.lines(),
                });
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let address = base_url.trim_start_matches("http://").to_owned();
        eventually(
            "the app to accept connections",
            Duration::from_secs(30),
            || std::net::TcpStream::connect(&address).ok(),
        );
        Ok(App {
            runtime: self.runtime.clone(),
            client: Client::new(&base_url),
            child,
            stopped: false,
            logs,
            redis,
            launch: self,
            _dir: dir,
        })
    }
}

/// The app did not come up: how it ended and what it printed.
#[derive(Debug)]
pub struct StartError {
    /// None: it was still running at the timeout (and was stopped).
    pub status: Option<ExitStatus>,
    pub output: Vec<String>,
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.status {
            Some(status) => writeln!(f, "the app exited at start ({status}); its output:")?,
            None => writeln!(
                f,
                "the app did not serve within {START_TIMEOUT:?}; its output:"
            )?,
        }
        for line in &self.output {
            writeln!(f, "  {line}")?;
        }
        Ok(())
    }
}

/// A running app. Stopped (by its PID) on drop.
pub struct App {
    pub runtime: Runtime,
    client: Client,
    child: Child,
    stopped: bool,
    logs: Logs,
    redis: Option<Redis>,
    launch: Launch,
    /// The state directory (and, unless this is a replica, the SQLite files), deleted
    /// when the app is dropped.
    _dir: TempDir,
}

impl App {
    /// An app of `manifest`, with the variables every local run has unless the test
    /// says otherwise: `payment_provider = "sandbox"`, as `cargo xtask up` chooses it
    /// (the manifest's default, Stripe, would refuse payments without a key). Variables
    /// of the test's own environment never reach the app.
    pub fn builder(manifest: impl Into<PathBuf>) -> AppBuilder {
        AppBuilder {
            manifest: manifest.into(),
            runtime: Runtime::Host,
            variables: BTreeMap::from([("payment_provider".to_owned(), "sandbox".to_owned())]),
            environment: BTreeMap::new(),
            redis: None,
            runtime_config_extra: String::new(),
            host_cache_dir: None,
            host: None,
        }
    }

    /// A second user: a client with a cookie jar of its own.
    pub fn new_client(&self) -> Client {
        Client::new(self.client.base_url())
    }

    /// A new user `<name>@example.com`, signed up (and so signed in) through auth:
    /// a client whose cookie jar holds the session.
    pub fn signed_up(&self, name: &str) -> Client {
        let client = self.new_client();
        let reply = client.post_json(
            "/api/users/signup",
            &serde_json::json!({"email": format!("{name}@example.com"), "password": "secret1"}),
        );
        assert_eq!(reply.status, 201, "signing up {name}: {}", reply.text());
        client
    }

    /// The Redis this app was given.
    pub fn redis(&self) -> &Redis {
        self.redis.as_ref().expect("the app was started with_redis")
    }

    /// Waits until each of `channels` has a listener (an event published before would
    /// wake nobody).
    pub fn wait_for_listeners(&self, channels: &[&str]) {
        for channel in channels {
            self.redis().wait_for_subscribers(channel, 1);
        }
    }

    pub fn redis_mut(&mut self) -> &mut Redis {
        self.redis.as_mut().expect("the app was started with_redis")
    }

    /// The file of the app's SQLite database `name` (not `default`).
    pub fn sqlite_path(&self, name: &str) -> PathBuf {
        self.launch.sqlite_dir.join(format!("{name}.db"))
    }

    /// Another process of the same app, as a second replica on a cluster would be: same
    /// manifest, runtime, variables, Redis and SQLite files, its own port and state
    /// directory. It must be dropped before `self` (which owns the files).
    pub fn start_replica(&self) -> App {
        let dir = tempfile::tempdir().expect("a temporary directory");
        match self.launch.clone().start(dir, None) {
            Ok(app) => app,
            Err(err) => panic!("{err}"),
        }
    }

    /// Another process on this app's SQLite files, Redis and variables, running
    /// `manifest` instead (a subset of the app's components, say), as a pod of one role
    /// on a cluster would. It must be dropped before `self` (which owns the files).
    pub fn start_replica_from(&self, manifest: impl Into<PathBuf>) -> App {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let mut launch = self.launch.clone();
        launch.manifest = manifest.into();
        match launch.start(dir, None) {
            Ok(app) => app,
            Err(err) => panic!("{err}"),
        }
    }

    /// Every line the app printed so far (stdout and stderr).
    pub fn logs(&self) -> Vec<String> {
        self.logs.lines()
    }

    /// Waits until a printed line satisfies `matches`, and returns it.
    pub fn wait_for_log(&self, what: &str, matches: impl Fn(&str) -> bool) -> String {
        eventually(what, Duration::from_secs(20), || {
            self.logs.lines().into_iter().find(|line| matches(line))
        })
    }

    /// The app's process id (for its memory in `/proc/<pid>/status`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The process's exit status, if it has exited.
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Kills the process with SIGKILL (a crash: nothing is flushed or rolled back) and
    /// waits for it. Its files stay until `self` is dropped: `start_replica` runs the
    /// app again on them.
    pub fn kill(&mut self) -> ExitStatus {
        // `Child::kill` sends SIGKILL on Unix.
        let _ = self.child.kill();
        let status = self.child.wait().expect("the killed app is reaped");
        self.stopped = true;
        status
    }

    /// Sends SIGTERM and waits for the exit.
    pub fn terminate(&mut self) -> ExitStatus {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status();
        assert!(
            sent.is_ok_and(|status| status.success()),
            "kill -TERM {pid} failed"
        );
        let status = eventually("the app to exit", Duration::from_secs(20), || {
            self.exit_status()
        });
        self.stopped = true;
        status
    }
}

impl Deref for App {
    type Target = Client;

    fn deref(&self) -> &Client {
        &self.client
    }
}

impl Drop for App {
    fn drop(&mut self) {
        if !self.stopped {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            eprintln!("--- output of the app ({}) ---", self.runtime.name());
            for line in self.logs.lines() {
                eprintln!("{line}");
            }
        }
    }
}

/// Whether `TICKETING_TEST_VERBOSE` asks for the apps' output as tests run.
pub fn is_verbose() -> bool {
    std::env::var_os("TICKETING_TEST_VERBOSE").is_some()
}

/// The time of day (UTC, to the millisecond) that verbose output stamps each line with,
/// to line it up with the events' `occurredAt` and the streams' entry ids.
pub fn clock() -> String {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_millis());
    let seconds = ms / 1000 % 86_400;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60,
        ms % 1000
    )
}

/// The lines a child prints, collected by one thread per stream.
#[derive(Clone, Default)]
struct Logs {
    lines: Arc<Mutex<Vec<String>>>,
    readers: Arc<Mutex<Vec<std::thread::JoinHandle<()>>>>,
}

impl Logs {
    fn follow(&self, label: &'static str, stream: impl Read + Send + 'static) {
        let lines = self.lines.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stream).lines() {
                let Ok(line) = line else { break };
                if is_verbose() {
                    eprintln!("[{label} {}] {line}", clock());
                }
                lines
                    .lock()
                    .expect("no panics while holding the log")
                    .push(line);
            }
        });
        self.readers
            .lock()
            .expect("no panics while holding the log")
            .push(reader);
    }

    fn lines(&self) -> Vec<String> {
        self.lines
            .lock()
            .expect("no panics while holding the log")
            .clone()
    }

    /// After the process exited: every line, once the readers reached the end.
    fn wait_for_end(&self) -> Vec<String> {
        let readers = std::mem::take(
            &mut *self
                .readers
                .lock()
                .expect("no panics while holding the log"),
        );
        for reader in readers {
            let _ = reader.join();
        }
        self.lines()
    }
}

/// A runtime config that puts every named SQLite database of the manifest (but
/// `default`, which lives in the state directory) into `dir`, then `extra`.
fn write_runtime_config(manifest: &Path, dir: &Path, extra: &str) -> PathBuf {
    let manifest = spin_manifest::load(manifest).unwrap_or_else(|err| panic!("{err:#}"));
    let databases: BTreeSet<&str> = manifest
        .components
        .iter()
        .flat_map(|component| &component.sqlite_databases)
        .map(String::as_str)
        .collect();
    let mut config = String::new();
    for name in databases.into_iter().filter(|name| *name != "default") {
        // Absolute: Spin resolves a relative path against its working directory, which
        // differs between an app and its replicas.
        let path = toml::Value::String(dir.join(format!("{name}.db")).display().to_string());
        config.push_str(&format!(
            "[sqlite_database.{name}]\ntype = \"spin\"\npath = {path}\n\n"
        ));
    }
    config.push_str(extra);
    let path = dir.join("runtime-config.toml");
    std::fs::write(&path, config).expect("the temporary directory is writable");
    path
}
