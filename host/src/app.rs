//! Assembling a running app from the manifest, the runtime config and the variables:
//! every component compiled once and pre-instantiated, its grants resolved, the HTTP
//! routes and Redis subscriptions laid out.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, anyhow, ensure};
use wasmtime::Engine;
use wasmtime::component::{Component, HasSelf, InstancePre, Linker};
use wasmtime_wasi_http::p2::bindings::ProxyPre;

use crate::allowed_hosts::AllowedHosts;
use crate::bindings::{RedisTriggerPre, SpinImports};
use crate::console::log;
use crate::engine;
use crate::http::HttpRoute;
use crate::key_value::Backend;
use crate::manifest::{App, FileMount};
use crate::redis_outbound::Pools;
use crate::routes::Router;
use crate::runtime_config::RuntimeConfig;
use crate::spin_test::Environment;
use crate::sqlite::{self, Database};
use crate::state::{ComponentRuntime, State};
use crate::traces::Tracer;
use crate::variables::Values;

pub struct RunningApp {
    pub router: Router<HttpRoute>,
    pub redis_subscriptions: Vec<RedisSubscription>,
    /// Where spans go; None unless traces are exported.
    pub tracer: Option<Tracer>,
}

/// Every component of a manifest compiled and linked against the host's imports, ready
/// to instantiate: made once by `host up`, and once for all the tests of `host test`.
pub struct Compiled {
    engine: Engine,
    pres: BTreeMap<String, InstancePre<State>>,
    /// How many distinct modules came from the compiled-code cache, of how many.
    pub cache_hits: (usize, usize),
}

impl Compiled {
    pub fn engine(&self) -> &Engine {
        &self.engine
    }
}

pub struct HttpComponent {
    pub runtime: Arc<ComponentRuntime>,
    pub pre: ProxyPre<State>,
}

/// A Redis channel and a component that handles its messages.
pub struct RedisSubscription {
    pub address: String,
    pub channel: String,
    pub runtime: Arc<ComponentRuntime>,
    pub pre: RedisTriggerPre<State>,
}

pub struct Options<'a> {
    pub runtime_config: &'a RuntimeConfig,
    pub values: &'a Values,
    /// Where the app's local state goes (`.spin/` by default).
    pub state_dir: &'a Path,
    /// A component test's hold on the app (`host test`), None when serving.
    pub test: Option<&'a Arc<Environment>>,
    /// Where spans go, when traces are exported.
    pub tracer: Option<Tracer>,
}

/// Compiles every component of `app` (or takes it from `cache_dir`) and links it.
pub fn compile(app: &App, cache_dir: Option<&Path>) -> Result<Compiled> {
    let engine = engine::new_engine()?;
    let mut linker = Linker::<State>::new(&engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
    SpinImports::add_to_linker::<State, HasSelf<State>>(&mut linker, |state| state)?;

    let mut pres = BTreeMap::new();
    let mut cache_hits = 0;
    // Component ids that share a `.wasm` share its compiled code.
    let mut compiled: BTreeMap<&Path, Component> = BTreeMap::new();
    for (id, component) in &app.components {
        let code = match compiled.get(component.source.as_path()) {
            Some(code) => code.clone(),
            None => {
                let loaded = engine::load_component(&engine, &component.source, cache_dir)
                    .with_context(|| format!("component `{id}`"))?;
                cache_hits += usize::from(loaded.from_cache);
                compiled.insert(&component.source, loaded.component.clone());
                loaded.component
            }
        };
        let pre = linker.instantiate_pre(&code).map_err(|err| {
            anyhow!(err).context(format!(
                "component `{id}` imports something this host does not provide"
            ))
        })?;
        pres.insert(id.clone(), pre);
    }
    Ok(Compiled {
        engine,
        pres,
        cache_hits: (cache_hits, compiled.len()),
    })
}

/// The running app: each component's grants resolved, its databases and stores open,
/// its routes and Redis subscriptions laid out.
pub fn build(app: &App, compiled: &Compiled, options: Options<'_>) -> Result<RunningApp> {
    let databases = databases(app, options.runtime_config)?;
    let redis = Arc::new(Pools::default());
    let stores = key_value_stores(app, options.runtime_config)?;

    let mut runtimes = BTreeMap::new();
    let pres = &compiled.pres;
    for (id, component) in &app.components {
        let allowed_hosts = component
            .allowed_outbound_hosts
            .iter()
            .map(|template| template.render(options.values))
            .collect::<Vec<_>>();
        let runtime = ComponentRuntime {
            id: id.clone(),
            granted_sqlite: component.sqlite_databases.clone(),
            sqlite: pick(&databases, &component.sqlite_databases),
            granted_key_value: component.key_value_stores.clone(),
            key_value: pick(&stores, &component.key_value_stores),
            variables: component
                .variables
                .iter()
                .map(|(name, template)| (name.clone(), template.render(options.values)))
                .collect(),
            allowed_hosts: AllowedHosts::parse(allowed_hosts.iter().map(String::as_str))
                .with_context(|| format!("component `{id}`: allowed_outbound_hosts"))?,
            redis: redis.clone(),
            environment: component
                .environment
                .iter()
                .map(|(name, value)| (name.clone(), value.clone()))
                .collect(),
            files: preopens(&app.dir, options.state_dir, id, &component.files)
                .and_then(|preopens| crate::state::open_files(&preopens))
                .with_context(|| format!("component `{id}`: files"))?,
            test: options.test.cloned(),
        };
        runtimes.insert(id.clone(), Arc::new(runtime));
    }

    let mut http_components: BTreeMap<&str, Arc<HttpComponent>> = BTreeMap::new();
    let mut routes = Vec::new();
    for trigger in &app.http_triggers {
        let id = trigger.component.as_str();
        let component = match http_components.get(id) {
            Some(component) => component.clone(),
            None => {
                let pre = ProxyPre::new(pres[id].clone()).map_err(|err| {
                    anyhow!(err).context(format!(
                        "component `{id}` has an HTTP route but does not export \
                         wasi:http/incoming-handler"
                    ))
                })?;
                let component = Arc::new(HttpComponent {
                    runtime: runtimes[id].clone(),
                    pre,
                });
                http_components.insert(id, component.clone());
                component
            }
        };
        routes.push((
            trigger.route.clone(),
            HttpRoute::new(&trigger.route, component),
        ));
    }

    let mut redis_subscriptions = Vec::new();
    for trigger in &app.redis_triggers {
        let id = trigger.component.as_str();
        let pre = RedisTriggerPre::new(pres[id].clone()).map_err(|err| {
            anyhow!(err).context(format!(
                "component `{id}` has a Redis trigger but does not export \
                 fermyon:spin/inbound-redis"
            ))
        })?;
        redis_subscriptions.push(RedisSubscription {
            address: trigger.address.render(options.values),
            channel: trigger.channel.render(options.values),
            runtime: runtimes[id].clone(),
            pre,
        });
    }

    Ok(RunningApp {
        router: Router::new(routes),
        redis_subscriptions,
        tracer: options.tracer,
    })
}

/// The entries of `all` that `granted` names (a name without an entry stays out: the
/// guest gets "no such database/store").
fn pick<T: Clone>(all: &BTreeMap<String, T>, granted: &BTreeSet<String>) -> BTreeMap<String, T> {
    granted
        .iter()
        .filter_map(|name| Some((name.clone(), all.get(name)?.clone())))
        .collect()
}

/// Every database a component is granted, opened once; a granted database the runtime
/// config does not define stops the app at start, as in Spin.
fn databases(app: &App, config: &RuntimeConfig) -> Result<BTreeMap<String, Arc<Database>>> {
    let used: BTreeSet<&String> = app
        .components
        .values()
        .flat_map(|component| &component.sqlite_databases)
        .collect();
    let mut paths = Vec::new();
    for name in used {
        let path = config.sqlite_databases.get(name).ok_or_else(|| {
            anyhow!(
                "a component uses the SQLite database `{name}`, which the runtime config \
                 does not define (add [sqlite_database.{name}] to it)"
            )
        })?;
        paths.push((name.clone(), path.clone()));
    }
    sqlite::open_databases(paths)
}

fn key_value_stores(app: &App, config: &RuntimeConfig) -> Result<BTreeMap<String, Backend>> {
    let used: BTreeSet<&String> = app
        .components
        .values()
        .flat_map(|component| &component.key_value_stores)
        .collect();
    let mut stores = BTreeMap::new();
    for label in used {
        let backend = config.key_value_stores.get(label).ok_or_else(|| {
            anyhow!(
                "a component uses the key-value store `{label}`, which the runtime config \
                 does not define (add [key_value_store.{label}] to it)"
            )
        })?;
        stores.insert(label.clone(), Backend::open(label, backend)?);
    }
    Ok(stores)
}

/// The directories to preopen for a component's `files`: mapped directories as they
/// are; patterns (paths and globs relative to the manifest) copied into a staging
/// directory (`files/<id>/` in the state directory) mounted at `/`, as Spin mounts them.
fn preopens(
    app_dir: &Path,
    state_dir: &Path,
    id: &str,
    files: &[FileMount],
) -> Result<Vec<(PathBuf, String)>> {
    let mut preopens = Vec::new();
    let mut patterns = Vec::new();
    for file in files {
        match file {
            FileMount::Directory {
                source,
                destination,
            } => {
                ensure!(source.is_dir(), "`{}` is not a directory", source.display());
                preopens.push((source.clone(), destination.clone()));
            }
            FileMount::Pattern(pattern) => patterns.push(pattern.as_str()),
        }
    }
    if !patterns.is_empty() {
        let staging = state_dir.join("files").join(id);
        if staging.exists() {
            std::fs::remove_dir_all(&staging)?;
        }
        std::fs::create_dir_all(&staging)?;
        for pattern in patterns {
            let full = app_dir.join(pattern);
            let full = full
                .to_str()
                .ok_or_else(|| anyhow!("`{pattern}` is not UTF-8"))?;
            let mut matched = 0;
            for path in glob::glob(full).with_context(|| format!("bad pattern `{pattern}`"))? {
                let path = path?;
                if path.is_file() {
                    let relative = path.strip_prefix(app_dir).with_context(|| {
                        format!("`{}` is outside the app directory", path.display())
                    })?;
                    let target = staging.join(relative);
                    std::fs::create_dir_all(target.parent().expect("a file has a parent"))?;
                    std::fs::copy(&path, &target)?;
                    matched += 1;
                }
            }
            if matched == 0 {
                log!("[{id}] warning: `files` pattern `{pattern}` matches no file");
            }
        }
        preopens.push((staging, "/".to_owned()));
    }
    Ok(preopens)
}
