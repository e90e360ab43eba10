//! `host test`: component tests in spin-test's format (`wit/spin-test/`).
//!
//! A test component imports what spin-test gives a test (the app's
//! `wasi:http/incoming-handler`, `http-helper`, and handles on the app's key-value
//! stores, SQLite databases, variables and outbound HTTP) and exports its tests, as
//! functions `spin-test-<name>` (what spin-test's SDK and this project's make) or as
//! `list-tests` and `run(name)`. Each test runs on a fresh instance of the test
//! component against a fresh app: every database and key-value store the app uses is a
//! new file in a temporary directory of its own. The test's requests go through the
//! host's own HTTP path (routing over the whole app, Spin's headers, a fresh instance
//! per request), so what a test sees is what a client of `host up` sees.
//!
//! Where it differs from spin-test (host/README.md has the list): requests are routed
//! over every component of the manifest, not only the one under test; SQLite and
//! key-value handles reach the very database the app opens, where spin-test gives each
//! `open` a fresh one; and `wit/host-test/` adds Redis, the clock and more.
//!
//! Here: the runner (finding the tests, running each, libtest's output).
//! `imports.rs`: one test's state and the interfaces it imports. `environment.rs`:
//! what the app under test shares with its test. `redis_server.rs`: a test's Redis.

mod environment;
mod imports;
mod redis_server;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, anyhow, bail};
use wasmtime::component::types::ComponentItem;
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Engine, Store};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;

use environment::lock;
pub use environment::{Environment, KeyValueCall};
pub use imports::{KeyValueStore, ResponseReceiver, SqliteConnection};

use crate::app::{self, Compiled};
use crate::bindings::spin_test::fermyon::spin_test::http_helper;
use crate::bindings::spin_test::fermyon::spin_test_virt::{key_value, sqlite, variables};
use crate::bindings::spin_test::fermyon::spin_wasi_virt::http_handler;
use crate::bindings::spin_test::ticketing::host_test::app as host_test;
use crate::bindings::spin_test::wasi::http0_2_6::incoming_handler;
use crate::manifest::{self, App};
use crate::{console, engine};
use imports::TestState;

const USAGE: &str = "\
usage: host test [-f|--from spin.toml] [--component ID] [--no-build] [--cache-dir DIR]
                 [FILTER] [libtest options: --exact, --list, --test-threads N, ...]

Runs the component tests of the manifest's components: each component with a
[component.<id>.tool.spin-test] section gets its test component (`source`) built with
its `build` command (in `workdir`) unless --no-build, then every test it exports runs
against a fresh app. Output and options are libtest's (`cargo test`'s): FILTER runs
the tests whose name contains it.";

struct Args {
    manifest: PathBuf,
    component: Option<String>,
    build: bool,
    cache_dir: Option<PathBuf>,
    libtest: Vec<String>,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Args> {
    let mut parsed = Args {
        manifest: PathBuf::from("spin.toml"),
        component: None,
        build: true,
        cache_dir: None,
        libtest: vec!["host test".to_owned()],
    };
    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .with_context(|| format!("`{name}` needs a value\n\n{USAGE}"))
        };
        match arg.as_str() {
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            "-f" | "--from" | "--file" => parsed.manifest = value(&arg)?.into(),
            "--component" => parsed.component = Some(value(&arg)?),
            "--no-build" => parsed.build = false,
            "--cache-dir" => parsed.cache_dir = Some(value(&arg)?.into()),
            _ => parsed.libtest.push(arg),
        }
    }
    if parsed.manifest.is_dir() {
        parsed.manifest = parsed.manifest.join("spin.toml");
    }
    Ok(parsed)
}

/// `host test ...`.
pub fn main(args: impl Iterator<Item = String>) -> Result<ExitCode> {
    let args = parse_args(args)?;
    let libtest = libtest_mimic::Arguments::from_iter(args.libtest.iter().cloned());
    let app = manifest::load(&args.manifest)?;
    let under_test: Vec<(String, manifest::SpinTest)> = app
        .components
        .iter()
        .filter(|(id, _)| args.component.as_ref().is_none_or(|chosen| chosen == *id))
        .filter_map(|(id, component)| Some((id.clone(), component.spin_test.clone()?)))
        .collect();
    if under_test.is_empty() {
        match &args.component {
            Some(id) if !app.components.contains_key(id) => {
                bail!("the manifest has no component `{id}`")
            }
            Some(id) => bail!("component `{id}` has no [component.{id}.tool.spin-test]"),
            None => bail!(
                "no component of {} has a [component.<id>.tool.spin-test] section",
                args.manifest.display()
            ),
        }
    }
    if args.build {
        let mut built = BTreeSet::new();
        for (id, spin_test) in &under_test {
            if let Some(command) = &spin_test.build
                && built.insert((command.clone(), spin_test.workdir.clone()))
            {
                build(id, command, &spin_test.workdir)?;
            }
        }
    }

    let cache_dir = args
        .cache_dir
        .clone()
        .unwrap_or_else(|| app.dir.join(".spin").join("cache"));
    let compiled = Arc::new(app::compile(&app, Some(&cache_dir))?);
    let linker = Arc::new(test_linker(compiled.engine())?);
    let runtime = Arc::new(
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?,
    );
    let app = Arc::new(app);
    let mut trials = Vec::new();
    for (id, spin_test) in under_test {
        let test = engine::load_component(compiled.engine(), &spin_test.source, Some(&cache_dir))
            .with_context(|| format!("the tests of `{id}`"))?
            .component;
        let suite = Arc::new(Suite {
            app: app.clone(),
            compiled: compiled.clone(),
            linker: linker.clone(),
            test,
        });
        let tests = runtime
            .block_on(suite.tests())
            .with_context(|| format!("the tests of `{id}` ({})", spin_test.source.display()))?;
        for test in tests {
            let name = format!("{id}::{}", test.name());
            let (suite, runtime) = (suite.clone(), runtime.clone());
            trials.push(libtest_mimic::Trial::test(name, move || {
                runtime.block_on(suite.run(&test))
            }));
        }
    }
    let conclusion = libtest_mimic::run(&libtest, trials);
    console::flush();
    Ok(if conclusion.has_failed() {
        ExitCode::from(101)
    } else {
        ExitCode::SUCCESS
    })
}

/// How one test is called.
enum Test {
    /// A function export `spin-test-<name>`.
    Export(String),
    /// `run(<name>)`, the name from `list-tests`.
    Run(String),
}

impl Test {
    /// The test's name as its author wrote it (`declined_card`, not
    /// `spin-test-declined-card`).
    fn name(&self) -> String {
        match self {
            Test::Export(export) => export
                .strip_prefix(TEST_PREFIX)
                .unwrap_or(export)
                .replace('-', "_"),
            Test::Run(name) => name.clone(),
        }
    }
}

const TEST_PREFIX: &str = "spin-test-";

/// The manifest, its compiled components and one test component.
struct Suite {
    app: Arc<App>,
    compiled: Arc<Compiled>,
    linker: Arc<Linker<TestState>>,
    test: Component,
}

impl Suite {
    /// The tests the component exports, as spin-test finds them: functions
    /// `spin-test-<name>`, or else the names `list-tests` gives for `run`.
    async fn tests(self: &Arc<Self>) -> Result<Vec<Test>> {
        let engine = self.compiled.engine();
        let mut exports = Vec::new();
        let mut has_run = false;
        for (name, item) in self.test.component_type().exports(engine) {
            match item.ty {
                ComponentItem::ComponentFunc(_) if name.starts_with(TEST_PREFIX) => {
                    exports.push(Test::Export(name.to_owned()));
                }
                ComponentItem::ComponentFunc(_) if name == "run" => has_run = true,
                _ => {}
            }
        }
        match (exports.is_empty(), has_run) {
            (false, false) => Ok(exports),
            (true, true) => {
                let (mut store, instance) =
                    self.instantiate(MemoryOutputPipe::new(1 << 20)).await?;
                let list = instance
                    .get_typed_func::<(), (Vec<String>,)>(&mut store, "list-tests")
                    .map_err(|err| anyhow!(err).context("it exports `run` but no `list-tests`"))?;
                let (names,) = list.call_async(&mut store, ()).await?;
                Ok(names.into_iter().map(Test::Run).collect())
            }
            (false, true) => bail!(
                "it exports both `run` and functions `spin-test-*`; a test component \
                 exports one or the other"
            ),
            (true, false) => bail!("it exports no test: no function `spin-test-*`, no `run`"),
        }
    }

    async fn instantiate(
        self: &Arc<Self>,
        output: MemoryOutputPipe,
    ) -> Result<(Store<TestState>, wasmtime::component::Instance)> {
        let state = TestState::new(self.clone(), output)?;
        let mut store = Store::new(self.compiled.engine(), state);
        let instance = self
            .linker
            .instantiate_async(&mut store, &self.test)
            .await
            .map_err(|err| anyhow!(err).context("cannot instantiate the test component"))?;
        Ok((store, instance))
    }

    /// Runs one test on a fresh instance and a fresh app; a failure says what the
    /// test printed (its panic message) and what the app printed.
    async fn run(self: &Arc<Self>, test: &Test) -> Result<(), libtest_mimic::Failed> {
        let output = MemoryOutputPipe::new(1 << 20);
        let (mut store, instance) = self
            .instantiate(output.clone())
            .await
            .map_err(|err| format!("{err:#}"))?;
        let environment = store.data().environment.clone();
        let outcome = match test {
            Test::Export(export) => match instance.get_typed_func::<(), ()>(&mut store, export) {
                Ok(function) => function.call_async(&mut store, ()).await,
                Err(err) => Err(err),
            },
            Test::Run(name) => match instance.get_typed_func::<(&str,), ()>(&mut store, "run") {
                Ok(function) => function.call_async(&mut store, (name.as_str(),)).await,
                Err(err) => Err(err),
            },
        };
        drop(store);
        let Err(err) = outcome else {
            return Ok(());
        };
        let mut message = String::from_utf8_lossy(&output.contents()).into_owned();
        // What failed (a trap, a host call), without wasmtime's backtrace.
        let causes: Vec<String> = err
            .chain()
            .map(ToString::to_string)
            .filter(|cause| !cause.starts_with("error while executing at wasm backtrace"))
            .collect();
        message.push_str(&causes.join(": "));
        let app_output = lock(&environment.output);
        if !app_output.is_empty() {
            message.push_str("\n\nthe app's output:\n");
            message.push_str(&String::from_utf8_lossy(&app_output));
        }
        Err(message.into())
    }
}

/// What a test component links to: WASI and `wasi:http`, and spin-test's interfaces.
fn test_linker(engine: &Engine) -> Result<Linker<TestState>> {
    let mut linker = Linker::<TestState>::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
    fn this(state: &mut TestState) -> &mut TestState {
        state
    }
    incoming_handler::add_to_linker::<_, HasSelf<_>>(&mut linker, this)?;
    http_helper::add_to_linker::<_, HasSelf<_>>(&mut linker, this)?;
    http_handler::add_to_linker::<_, HasSelf<_>>(&mut linker, this)?;
    key_value::add_to_linker::<_, HasSelf<_>>(&mut linker, this)?;
    sqlite::add_to_linker::<_, HasSelf<_>>(&mut linker, this)?;
    variables::add_to_linker::<_, HasSelf<_>>(&mut linker, this)?;
    host_test::add_to_linker::<_, HasSelf<_>>(&mut linker, this)?;
    Ok(linker)
}

fn build(id: &str, command: &str, workdir: &Path) -> Result<()> {
    console::log!("building the tests of `{id}`: {command}");
    console::flush();
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .current_dir(workdir)
        .status()
        .with_context(|| format!("cannot run `{command}`"))?;
    if !status.success() {
        bail!("building the tests of `{id}` failed: `{command}` exited with {status}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime_config::KeyValueBackend;
    use environment::request_url;
    use imports::fresh_runtime_config;

    #[test]
    fn a_url_is_keyed_as_spin_test_keys_it() {
        let url = |text: &str| request_url(&text.parse().unwrap());
        assert_eq!(
            url("https://api.stripe.com/v1/charges"),
            "https://api.stripe.com/v1/charges"
        );
        assert_eq!(url("http://127.0.0.1:9/a?b=c"), "http://127.0.0.1:9/a?b=c");
        // A lone `/` is left out.
        assert_eq!(url("https://example.com/"), "https://example.com");
    }

    #[test]
    fn a_test_is_named_as_its_author_wrote_it() {
        let export = Test::Export("spin-test-a-lost-answer-is-sent-again".into());
        assert_eq!(export.name(), "a_lost_answer_is_sent_again");
        assert_eq!(Test::Run("my test".into()).name(), "my test");
    }

    #[test]
    fn every_database_and_store_of_the_app_is_a_new_file_in_the_test_s_directory() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("spin.toml"),
            r#"
            spin_manifest_version = 2
            [application]
            name = "x"
            [[trigger.http]]
            route = "/..."
            component = "c"
            [component.c]
            source = "c.wasm"
            sqlite_databases = ["orders"]
            key_value_stores = ["cache"]
            "#,
        )
        .unwrap();
        let app = manifest::load(&dir.path().join("spin.toml")).unwrap();
        let state = tempfile::tempdir().unwrap();
        let config = fresh_runtime_config(&app, state.path());
        assert_eq!(
            config.sqlite_databases["orders"],
            state.path().join("sqlite-orders.db")
        );
        assert_eq!(
            config.key_value_stores["cache"],
            KeyValueBackend::Sqlite(state.path().join("key-value.db"))
        );
        assert!(config.sqlite_databases["default"].starts_with(state.path()));
    }
}
