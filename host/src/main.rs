//! `host`: runs a Spin app (manifest v2) offline, as `spin up` would.
//!
//! The subset of Spin the app uses: HTTP and Redis triggers; WASI 0.2 with `wasi:http`;
//! `fermyon:spin` key-value, SQLite, Redis and variables @2.0.0. README.md lists
//! where it deliberately differs from Spin.

mod allowed_hosts;
mod app;
mod bindings;
mod console;
mod engine;
mod http;
mod key_value;
mod manifest;
mod outbound_http;
mod redis_outbound;
mod redis_trigger;
mod routes;
mod runtime_config;
mod spin_test;
mod sqlite;
mod state;
mod stdio;
mod traces;
mod variables;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::routes::RoutePattern;
use crate::runtime_config::RuntimeConfig;
use crate::variables::Values;

const USAGE: &str = "\
usage: host up [-f|--from spin.toml] [--listen 127.0.0.1:3000]
               [--runtime-config-file FILE] [--state-dir DIR]
               [--cache-dir DIR | --disable-cache]
       host compile [-f|--from spin.toml] [--state-dir DIR] [--cache-dir DIR]
       host test [-f|--from spin.toml] [--component ID] [FILTER] (`host test --help`)

Runs the Spin app of the manifest as `spin up` does: its HTTP routes on --listen
(port 0 picks a free one), its Redis triggers against their Redis. Variables come
from SPIN_VARIABLE_<NAME> or their defaults. Local state (the `default` database and
key-value store, staged files) goes to --state-dir, by default .spin/ next to the
manifest; compiled code is cached in <state-dir>/cache unless --cache-dir or
--disable-cache says otherwise.

`host compile` only fills the compiled-code cache with every component of the
manifest, so that apps started next (tests side by side, say) skip compiling.

`host test` runs the component tests of the manifest (spin-test's format).";

struct Args {
    /// `host compile` rather than `host up`.
    compile_only: bool,
    manifest: PathBuf,
    listen: SocketAddr,
    runtime_config: Option<PathBuf>,
    state_dir: Option<PathBuf>,
    cache_dir: Option<PathBuf>,
    disable_cache: bool,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Args> {
    let compile_only = match args.next().as_deref() {
        Some("up") => false,
        Some("compile") => true,
        Some("-h" | "--help" | "help") | None => {
            println!("{USAGE}");
            std::process::exit(0);
        }
        Some(other) => bail!("unknown command `{other}`\n\n{USAGE}"),
    };
    let mut parsed = Args {
        compile_only,
        manifest: PathBuf::from("spin.toml"),
        listen: "127.0.0.1:3000".parse().expect("a valid address"),
        runtime_config: None,
        state_dir: None,
        cache_dir: None,
        disable_cache: false,
    };
    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .with_context(|| format!("`{name}` needs a value\n\n{USAGE}"))
        };
        match arg.as_str() {
            "-f" | "--from" | "--file" => parsed.manifest = value(&arg)?.into(),
            "--listen" => {
                let listen = value(&arg)?;
                parsed.listen = listen.parse().with_context(|| {
                    format!("`--listen {listen}` is not an address like 127.0.0.1:3000")
                })?;
            }
            "--runtime-config-file" => parsed.runtime_config = Some(value(&arg)?.into()),
            "--state-dir" => parsed.state_dir = Some(value(&arg)?.into()),
            "--cache-dir" => parsed.cache_dir = Some(value(&arg)?.into()),
            "--disable-cache" => parsed.disable_cache = true,
            other => bail!("unknown option `{other}`\n\n{USAGE}"),
        }
    }
    if parsed.manifest.is_dir() {
        parsed.manifest = parsed.manifest.join("spin.toml");
    }
    Ok(parsed)
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1).peekable();
    if args.peek().map(String::as_str) == Some("test") {
        args.next();
        let code = spin_test::main(args).unwrap_or_else(|err| {
            console::log!("Error: {err:#}");
            ExitCode::FAILURE
        });
        console::flush();
        return code;
    }
    let result = parse_args(std::env::args().skip(1)).and_then(|args| {
        if args.compile_only {
            return compile(&args);
        }
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
            .block_on(up(args))
    });
    let code = match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            console::log!("Error: {err:#}");
            ExitCode::FAILURE
        }
    };
    console::flush();
    code
}

impl Args {
    /// `--state-dir`, by default `.spin/` next to the manifest.
    fn state_dir(&self, app: &manifest::App) -> PathBuf {
        self.state_dir
            .clone()
            .unwrap_or_else(|| app.dir.join(".spin"))
    }

    /// Where compiled code is cached: `--cache-dir`, by default `<state-dir>/cache`;
    /// None with `--disable-cache`.
    fn cache_dir(&self, app: &manifest::App) -> Option<PathBuf> {
        match (&self.cache_dir, self.disable_cache) {
            (_, true) => None,
            (Some(dir), false) => Some(dir.clone()),
            (None, false) => Some(self.state_dir(app).join("cache")),
        }
    }
}

/// `host compile`: every component of the manifest compiled into the cache.
fn compile(args: &Args) -> Result<()> {
    let app = manifest::load(&args.manifest)?;
    let cache_dir = args
        .cache_dir(&app)
        .context("`host compile` fills the cache: --disable-cache leaves it nothing to do")?;
    let engine = engine::new_engine()?;
    let sources: std::collections::BTreeSet<_> = app
        .components
        .values()
        .map(|component| &component.source)
        .collect();
    let mut compiled = 0;
    for source in &sources {
        let loaded = engine::load_component(&engine, source, Some(&cache_dir))?;
        compiled += usize::from(!loaded.from_cache);
    }
    console::log!(
        "compiled-code cache {}: {compiled} of {} modules compiled, the others were there",
        cache_dir.display(),
        sources.len(),
    );
    Ok(())
}

/// How long the last spans may take to export when the host stops.
const TRACES_FLUSH_TIME: Duration = Duration::from_secs(5);

async fn up(args: Args) -> Result<()> {
    let started = Instant::now();
    let tracer = traces::Tracer::from_env()?;
    let app = manifest::load(&args.manifest)?;
    let state_dir = args.state_dir(&app);
    let runtime_config = match &args.runtime_config {
        Some(path) => RuntimeConfig::load(path, &state_dir)?,
        None => RuntimeConfig::defaults(&state_dir),
    };
    let values = Values::resolve(&app.variables, |name| std::env::var(name).ok())?;
    let cache_dir = args.cache_dir(&app);
    let (compiled, running) = tokio::task::block_in_place(|| {
        let compiled = app::compile(&app, cache_dir.as_deref())?;
        let running = app::build(
            &app,
            &compiled,
            app::Options {
                runtime_config: &runtime_config,
                values: &values,
                state_dir: &state_dir,
                test: None,
                tracer: tracer.clone(),
            },
        )?;
        anyhow::Ok((compiled, running))
    })?;
    let running = Arc::new(running);

    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let address = listener.local_addr()?;
    let (hits, total) = compiled.cache_hits;
    console::log!(
        "Ready in {} ms ({hits} of {total} modules from the compiled-code cache)",
        started.elapsed().as_millis()
    );
    console::out!("Serving http://{address}");
    console::out!("Available Routes:");
    for trigger in &app.http_triggers {
        match &trigger.route {
            RoutePattern::Private => {}
            RoutePattern::Wildcard(_) => console::out!(
                "  {}: http://{address}{} (wildcard)",
                trigger.component,
                trigger.route.base()
            ),
            route => console::out!("  {}: http://{address}{route}", trigger.component),
        }
    }

    let (stop, shutdown) = watch::channel(false);
    let server = tokio::spawn(http::serve(listener, running.clone(), shutdown.clone()));
    let redis = tokio::spawn(redis_trigger::run(running.clone(), shutdown));
    wait_for_signal().await;
    console::log!("Shutting down");
    let _ = stop.send(true);
    let _ = redis.await;
    server.await??;
    if let Some(tracer) = &tracer {
        tracer.flush(TRACES_FLUSH_TIME).await;
    }
    Ok(())
}

/// Ctrl-C or SIGTERM.
async fn wait_for_signal() {
    let mut terminate =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async {
            match terminate.as_mut() {
                Some(signal) => { signal.recv().await; }
                None => std::future::pending().await,
            }
        } => {}
    }
}
