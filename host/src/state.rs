//! What a component may use (`ComponentRuntime`, built once at start) and the state of
//! one instance (`State`, a fresh one per request or message).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::filesystem::WasiFilesystemCtx;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::allowed_hosts::AllowedHosts;
use crate::bindings::spin::{key_value, sqlite};
use crate::console::log;
use crate::outbound_http::OutboundHttp;
use crate::redis_outbound::Pools;
use crate::spin_test::Environment;
use crate::sqlite::Database;
use crate::stdio::{Console, PrefixedOutput, Sink};
use crate::traces::{Kind, Span};

/// A component's grants and configuration, resolved at start.
pub struct ComponentRuntime {
    pub id: String,
    pub granted_sqlite: BTreeSet<String>,
    pub sqlite: BTreeMap<String, Arc<Database>>,
    pub granted_key_value: BTreeSet<String>,
    pub key_value: BTreeMap<String, crate::key_value::Backend>,
    /// Component variables, rendered from their templates.
    pub variables: BTreeMap<String, String>,
    pub allowed_hosts: AllowedHosts,
    pub redis: Arc<Pools>,
    pub environment: Vec<(String, String)>,
    /// The component's files: host directories made visible read-only, opened once at
    /// start. Every instance gets a clone (the same open directories), not handles of
    /// its own: opening them per request was 5-8% of the trivial route's time. Sharing
    /// is safe because nothing an instance does moves a directory handle's state:
    /// paths are opened relative to it, and listing a directory opens it anew.
    pub files: WasiFilesystemCtx,
    /// The component test it runs under (`host test`), None when serving.
    pub test: Option<Arc<Environment>>,
}

/// Opens the host directories a component sees, (host path, guest path), read-only.
pub fn open_files(preopens: &[(PathBuf, String)]) -> anyhow::Result<WasiFilesystemCtx> {
    let mut wasi = WasiCtxBuilder::new();
    for (host, guest) in preopens {
        wasi.preopened_dir(host, guest, FsPerms::ReadOnly)?;
    }
    Ok(wasi.build().filesystem().clone())
}

impl ComponentRuntime {
    /// A fresh instance state with this component's WASI view of the world; `trace` is
    /// the span of its execution when traces are exported.
    pub fn new_state(self: &Arc<Self>, trace: Option<Span>) -> State {
        let (stdout, stderr) = match &self.test {
            None => (
                Sink::Console(Console::Stdout),
                Sink::Console(Console::Stderr),
            ),
            Some(test) => (
                Sink::Buffer(test.output.clone()),
                Sink::Buffer(test.output.clone()),
            ),
        };
        let mut wasi = WasiCtxBuilder::new();
        wasi.stdout(PrefixedOutput::new(&self.id, stdout))
            .stderr(PrefixedOutput::new(&self.id, stderr))
            .envs(&self.environment);
        if let Some(clock) = self.test.as_ref().and_then(|test| test.wall_clock()) {
            wasi.wall_clock(clock);
        }
        let mut wasi = wasi.build();
        *wasi.filesystem() = self.files.clone();
        State {
            table: ResourceTable::new(),
            wasi,
            http: WasiHttpCtx::new(),
            outbound_http: OutboundHttp::new(self.clone(), trace.clone()),
            component: self.clone(),
            trace,
        }
    }

    pub fn sqlite_database(&self, name: &str) -> Result<Arc<Database>, sqlite::Error> {
        if !self.granted_sqlite.contains(name) {
            return Err(sqlite::Error::AccessDenied);
        }
        self.sqlite
            .get(name)
            .cloned()
            .ok_or(sqlite::Error::NoSuchDatabase)
    }

    pub fn key_value_store(
        &self,
        label: &str,
    ) -> Result<crate::key_value::Backend, key_value::Error> {
        if !self.granted_key_value.contains(label) {
            return Err(key_value::Error::AccessDenied);
        }
        self.key_value
            .get(label)
            .cloned()
            .ok_or(key_value::Error::NoSuchStore)
    }

    /// Says, on the console, what the component tried and how to allow it.
    pub fn log_denied(&self, kind: &str, url: &str) {
        let line = format!(
            "[{}] {kind} connection to `{url}` denied: it is not in the component's \
             allowed_outbound_hosts; add it there to allow it",
            self.id
        );
        match &self.test {
            Some(test) => test.log(&line),
            None => log!("{line}"),
        }
    }
}

/// The store data of one instance.
pub struct State {
    pub table: ResourceTable,
    pub wasi: WasiCtx,
    pub http: WasiHttpCtx,
    pub outbound_http: OutboundHttp,
    pub component: Arc<ComponentRuntime>,
    /// The instance's `execute_wasm_component` span, under which its host calls record
    /// theirs; None when traces are not exported.
    pub trace: Option<Span>,
}

impl State {
    /// A host call's CLIENT span under this instance's execution, named by `name` (only
    /// called when traces are exported). End it with [`Span::end`].
    pub fn client_span(&self, name: impl FnOnce() -> String) -> Option<Span> {
        self.trace
            .as_ref()
            .map(|execution| execution.child(name(), Kind::Client))
    }
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for State {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.outbound_http,
        }
    }
}
