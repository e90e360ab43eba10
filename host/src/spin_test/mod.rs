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
//! `open` a fresh one.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};
use http_body_util::{BodyExt, Empty, Full};
use hyper::{HeaderMap, Request, Response, StatusCode};
use tokio::sync::oneshot;
use wasmtime::component::types::ComponentItem;
use wasmtime::component::{Component, HasSelf, Linker, Resource, ResourceTable};
use wasmtime::{Engine, Store};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::p2::bindings::http::types::{ErrorCode, Scheme};
use wasmtime_wasi_http::p2::body::{HostIncomingBody, HyperOutgoingBody};
use wasmtime_wasi_http::p2::types::{
    HostIncomingRequest, HostIncomingResponse, HostOutgoingRequest, HostOutgoingResponse,
    HostResponseOutparam,
};
use wasmtime_wasi_http::{
    Error as HttpError, FieldMap, WasiBody, WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks,
    WasiHttpView,
};

use crate::app::{self, Compiled, RunningApp};
use crate::bindings::spin::redis::{RedisParameter, RedisResult};
use crate::bindings::spin::sqlite::{Error as SqliteError, QueryResult, Value};
use crate::bindings::spin_test::fermyon::spin_test::http_helper;
use crate::bindings::spin_test::fermyon::spin_test_virt::{key_value, sqlite, variables};
use crate::bindings::spin_test::fermyon::spin_wasi_virt::http_handler;
use crate::bindings::spin_test::ticketing::host_test::app as host_test;
use crate::bindings::spin_test::wasi::http0_2_6::incoming_handler;
use crate::key_value::Backend;
use crate::manifest::{self, App};
use crate::redis_outbound::Pools;
use crate::runtime_config::{KeyValueBackend, RuntimeConfig};
use crate::sqlite::Database;
use crate::variables::Values;
use crate::{console, engine};

mod redis_server;

use redis_server::RedisServer;

/// Where the app under test seems to be, and its client (spin-test's router uses these).
const APP_ADDRESS: &str = "127.0.0.1:3000";
const CLIENT_ADDRESS: &str = "127.0.0.1:0";

// ---------------------------------------------------------------------------------
// What the app under test shares with its test.

/// What a component test shares with the app it tests: the calls the app makes to its
/// key-value stores, the answers to its outbound HTTP requests, and its output.
#[derive(Default)]
pub struct Environment {
    key_value_calls: Mutex<Vec<(String, KeyValueCall)>>,
    responses: Mutex<HashMap<String, Answer>>,
    /// The app's output during the test: the host's request lines and the components'
    /// stdout and stderr, shown when the test fails.
    pub output: Arc<Mutex<Vec<u8>>>,
    /// How far the test moved the wall clock the app reads, in nanoseconds.
    clock_shift: Mutex<Option<i128>>,
    /// The HTTP requests the app sent out, oldest first.
    outbound: Mutex<Vec<host_test::OutboundRequest>>,
}

/// The wall clock as a test set it: from the time it gave, running on.
struct ShiftedClock {
    shift: i128,
}

impl wasmtime_wasi::HostWallClock for ShiftedClock {
    fn resolution(&self) -> std::time::Duration {
        std::time::Duration::from_nanos(1)
    }

    fn now(&self) -> std::time::Duration {
        let real = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos() as i128;
        let shifted = (real + self.shift).max(0);
        std::time::Duration::from_nanos(u64::try_from(shifted).unwrap_or(u64::MAX))
    }
}

/// One call the app made to a key-value store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyValueCall {
    Get(String),
    Set(String, Vec<u8>),
    Delete(String),
    Exists(String),
    GetKeys,
}

/// How the test said a URL is answered.
#[derive(Clone)]
enum Answer {
    /// With the request's own body.
    Echo,
    /// With a response the test made; its body is read as the test writes it.
    Response(Shared<BoxFuture<'static, Result<Registered, String>>>),
}

#[derive(Clone)]
struct Registered {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

type Answered = Result<Response<WasiBody>, HttpError>;

impl Environment {
    /// The wall clock the app's instances read, if the test set it.
    pub fn wall_clock(&self) -> Option<impl wasmtime_wasi::HostWallClock + 'static> {
        let shift = (*lock(&self.clock_shift))?;
        Some(ShiftedClock { shift })
    }

    pub fn record_key_value_call(&self, label: &str, call: KeyValueCall) {
        lock(&self.key_value_calls).push((label.to_owned(), call));
    }

    /// A line of the app's output.
    pub fn log(&self, line: &str) {
        let mut output = lock(&self.output);
        output.extend_from_slice(line.as_bytes());
        output.push(b'\n');
    }

    /// Answers the app's outbound request with what the test registered for its URL,
    /// once, as spin-test does: a URL with nothing registered fails with
    /// `internal-error`, naming it.
    pub fn answer(
        self: &Arc<Self>,
        request: http::Request<WasiBody>,
    ) -> BoxFuture<'static, Answered> {
        let url = request_url(request.uri());
        let answer = lock(&self.responses).remove(&url);
        let environment = self.clone();
        async move {
            // The whole request, recorded for `outbound-requests` (the app's requests
            // are small: a form, a JSON document).
            let (parts, body) = request.into_parts();
            let body = body.collect().await?.to_bytes();
            lock(&environment.outbound).push(host_test::OutboundRequest {
                method: parts.method.to_string(),
                url: url.clone(),
                headers: parts
                    .headers
                    .iter()
                    .map(|(name, value)| {
                        (
                            name.to_string(),
                            String::from_utf8_lossy(value.as_bytes()).into_owned(),
                        )
                    })
                    .collect(),
                body: body.to_vec(),
            });
            match answer {
                Some(Answer::Echo) => Ok(Response::new(
                    Full::new(body)
                        .map_err(|never| match never {})
                        .boxed_unsync(),
                )),
                Some(Answer::Response(registered)) => {
                    let registered = registered.await.map_err(|err| {
                        HttpError::InternalError(Some(format!(
                            "the test's response for {url}: {err}"
                        )))
                    })?;
                    let mut response = Response::new(
                        Full::new(registered.body)
                            .map_err(|never| match never {})
                            .boxed_unsync(),
                    );
                    *response.status_mut() = registered.status;
                    *response.headers_mut() = registered.headers;
                    Ok(response)
                }
                None => Err(HttpError::InternalError(Some(format!(
                    "mocking error - unrecognized url: {url}"
                )))),
            }
        }
        .boxed()
    }
}

/// A URL as spin-test keys its registered responses: `scheme://authority` and the path
/// with its query, without a lone `/`.
fn request_url(uri: &http::Uri) -> String {
    let path = uri
        .path_and_query()
        .map(|path| path.as_str())
        .filter(|path| *path != "/")
        .unwrap_or_default();
    format!(
        "{}://{}{path}",
        uri.scheme_str().unwrap_or("https"),
        uri.authority().map_or("", |authority| authority.as_str())
    )
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

// ---------------------------------------------------------------------------------
// The resources of the test world.

/// A test's connection to one of the app's SQLite databases.
pub struct SqliteConnection(rusqlite::Connection);

/// A test's handle on one of the app's key-value stores.
pub struct KeyValueStore(crate::key_value::Store, String);

/// Receives the response the app sets on one `response-outparam`.
pub struct ResponseReceiver(Option<oneshot::Receiver<OutparamValue>>);

type OutparamValue = Result<Response<HyperOutgoingBody>, ErrorCode>;

// ---------------------------------------------------------------------------------
// One test's state.

/// The store data of one test: the test component's WASI, and the app it tests.
struct TestState {
    table: ResourceTable,
    wasi: WasiCtx,
    http: WasiHttpCtx,
    no_network: NoNetwork,
    suite: Arc<Suite>,
    /// The app's state (its databases and stores), removed with the test.
    state_dir: tempfile::TempDir,
    runtime_config: RuntimeConfig,
    environment: Arc<Environment>,
    /// Application variables the test gave values to (`variables.set`).
    variables: BTreeMap<String, String>,
    /// The app, made on first use, and again after a variable changes.
    app: Option<Arc<RunningApp>>,
    /// The requests `http-helper.new-request` made, by their resource's handle: what
    /// `incoming-handler.handle` passes to the app.
    requests: HashMap<u32, Request<HyperOutgoingBody>>,
    /// The test's Redis server (`app.redis-url`), once asked for.
    redis: Option<RedisServer>,
    redis_pools: Arc<Pools>,
}

impl TestState {
    /// The test's own Redis server's URL, started on first use.
    fn redis_database(&mut self) -> Result<String> {
        if self.redis.is_none() {
            self.redis = Some(RedisServer::start()?);
        }
        Ok(self.redis.as_ref().expect("started above").url())
    }
}

impl host_test::Host for TestState {
    async fn deliver_redis_message(
        &mut self,
        component: String,
        channel: String,
        payload: Vec<u8>,
    ) -> wasmtime::Result<Result<(), String>> {
        let app = self.app().map_err(wasmtime::Error::from_anyhow)?;
        let Some(subscription) = app.redis_subscriptions.iter().find(|subscription| {
            subscription.runtime.id == component && subscription.channel == channel
        }) else {
            return Ok(Err(format!(
                "component `{component}` has no Redis trigger on `{channel}`"
            )));
        };
        Ok(crate::redis_trigger::deliver(subscription, payload).await)
    }

    async fn set_wall_clock(&mut self, now: host_test::Datetime) -> wasmtime::Result<()> {
        let wanted = i128::from(now.seconds) * 1_000_000_000 + i128::from(now.nanoseconds);
        let real = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos() as i128;
        *lock(&self.environment.clock_shift) = Some(wanted - real);
        Ok(())
    }

    async fn outbound_requests(&mut self) -> wasmtime::Result<Vec<host_test::OutboundRequest>> {
        Ok(lock(&self.environment.outbound).clone())
    }

    async fn redis_url(&mut self) -> wasmtime::Result<String> {
        self.redis_database().map_err(wasmtime::Error::from_anyhow)
    }

    async fn redis_execute(
        &mut self,
        command: String,
        arguments: Vec<RedisParameter>,
    ) -> wasmtime::Result<Result<Vec<RedisResult>, String>> {
        let url = self
            .redis_database()
            .map_err(wasmtime::Error::from_anyhow)?;
        let mut cmd = redis::cmd(&command);
        for argument in arguments {
            match argument {
                RedisParameter::Int64(int) => cmd.arg(int),
                RedisParameter::Binary(bytes) => cmd.arg(bytes),
            };
        }
        let reply = match self.redis_pools.query(&url, cmd).await {
            Ok(reply) => reply,
            Err(err) => return Ok(Err(err.to_string())),
        };
        let mut results = Vec::new();
        Ok(crate::redis_outbound::flatten(reply, &mut results)
            .map(|()| results)
            .map_err(|err| format!("{err:?}")))
    }
}

impl TestState {
    fn new(suite: Arc<Suite>, stdout: MemoryOutputPipe) -> Result<TestState> {
        let state_dir = tempfile::Builder::new()
            .prefix("host-test-")
            .tempdir()
            .context("cannot make the test's state directory")?;
        let runtime_config = fresh_runtime_config(&suite.app, state_dir.path());
        let wasi = WasiCtxBuilder::new()
            .stdout(stdout.clone())
            .stderr(stdout)
            .build();
        Ok(TestState {
            table: ResourceTable::new(),
            wasi,
            http: WasiHttpCtx::new(),
            no_network: NoNetwork,
            suite,
            state_dir,
            runtime_config,
            environment: Arc::default(),
            variables: BTreeMap::new(),
            app: None,
            requests: HashMap::new(),
            redis: None,
            redis_pools: Arc::default(),
        })
    }

    /// The app under test, made now if needed.
    fn app(&mut self) -> Result<Arc<RunningApp>> {
        if let Some(app) = &self.app {
            return Ok(app.clone());
        }
        let values = Values::resolve(&self.suite.app.variables, |name| {
            let name = name.strip_prefix("SPIN_VARIABLE_")?.to_ascii_lowercase();
            self.variables.get(&name).cloned()
        })
        .context("the app's variables (a test gives their values with `variables.set`)")?;
        let app = Arc::new(app::build(
            &self.suite.app,
            &self.suite.compiled,
            app::Options {
                runtime_config: &self.runtime_config,
                values: &values,
                state_dir: self.state_dir.path(),
                test: Some(&self.environment),
            },
        )?);
        self.app = Some(app.clone());
        Ok(app)
    }
}

/// Every database and key-value store the app uses, as a new file in `dir`.
fn fresh_runtime_config(app: &App, dir: &Path) -> RuntimeConfig {
    let mut config = RuntimeConfig::defaults(dir);
    for component in app.components.values() {
        for name in &component.sqlite_databases {
            config
                .sqlite_databases
                .insert(name.clone(), dir.join(format!("sqlite-{name}.db")));
        }
        for label in &component.key_value_stores {
            config.key_value_stores.insert(
                label.clone(),
                KeyValueBackend::Sqlite(dir.join("key-value.db")),
            );
        }
    }
    config
}

/// The test component's own outbound HTTP: refused (a test answers the app's requests,
/// it sends none).
struct NoNetwork;

impl WasiHttpHooks for NoNetwork {
    fn send_request(
        &mut self,
        _request: http::Request<WasiBody>,
        _options: Option<wasmtime_wasi_http::RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> Box<
        dyn Future<
                Output = wasmtime_wasi_http::Result<(
                    http::Response<WasiBody>,
                    Box<dyn Future<Output = Result<(), HttpError>> + Send>,
                )>,
            > + Send,
    > {
        Box::new(async { Err(HttpError::HttpRequestDenied) })
    }
}

impl WasiView for TestState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for TestState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.no_network,
        }
    }
}

// ---------------------------------------------------------------------------------
// The interfaces a test imports.

impl incoming_handler::Host for TestState {
    /// The app handles `request` as `host up` would handle it from a client.
    async fn handle(
        &mut self,
        request: Resource<HostIncomingRequest>,
        response_out: Resource<HostResponseOutparam>,
    ) -> wasmtime::Result<()> {
        let rep = request.rep();
        self.table.delete(request)?;
        let Some(request) = self.requests.remove(&rep) else {
            wasmtime::bail!("the request was not made by `http-helper.new-request`");
        };
        let outparam = self.table.delete(response_out)?;
        let app = self.app().map_err(wasmtime::Error::from_anyhow)?;
        let response = crate::http::handle(
            &app,
            APP_ADDRESS.parse().expect("an address"),
            CLIENT_ADDRESS.parse::<SocketAddr>().expect("an address"),
            request,
        )
        .await;
        (outparam.send)(Ok(response));
        Ok(())
    }
}

impl http_helper::Host for TestState {
    async fn new_request(
        &mut self,
        request: Resource<HostOutgoingRequest>,
        incoming_body: Option<Resource<HostIncomingBody>>,
    ) -> wasmtime::Result<Resource<HostIncomingRequest>> {
        if incoming_body.is_some() {
            wasmtime::bail!(
                "`http-helper.new-request` with an `incoming-body` is not supported by this host"
            );
        }
        let request = self.table.delete(request)?;
        let HostOutgoingRequest {
            method,
            scheme,
            authority,
            path_with_query,
            headers,
            body,
            ..
        } = request;
        let scheme_text = match &scheme {
            Some(Scheme::Https) => "https".to_owned(),
            Some(Scheme::Other(other)) => other.clone(),
            Some(Scheme::Http) | None => "http".to_owned(),
        };
        let uri = format!(
            "{scheme_text}://{}{}",
            authority.as_deref().unwrap_or("localhost:3000"),
            path_with_query.as_deref().unwrap_or("/")
        );
        let mut builder = Request::builder()
            .method::<http::Method>(method.try_into()?)
            .uri(&uri);
        *builder.headers_mut().expect("a valid builder") = HeaderMap::from(headers);
        let body =
            body.unwrap_or_else(|| Empty::new().map_err(|never| match never {}).boxed_unsync());
        let request = builder
            .body(body)
            .map_err(|err| wasmtime::format_err!("the test's request to {uri}: {err}"))?;
        // The resource the test holds: the request's head, its body kept here.
        let (parts, body) = request.into_parts();
        let head = Request::from_parts(parts.clone(), Empty::<Bytes>::new());
        let resource = self
            .http()
            .new_incoming_request(scheme.unwrap_or(Scheme::Http), head)?;
        self.requests
            .insert(resource.rep(), Request::from_parts(parts, body));
        Ok(resource)
    }

    async fn new_response(
        &mut self,
    ) -> wasmtime::Result<(Resource<HostResponseOutparam>, Resource<ResponseReceiver>)> {
        let (sender, receiver) = oneshot::channel();
        let outparam = self.http().new_response_outparam(sender)?;
        let receiver = self.table.push(ResponseReceiver(Some(receiver)))?;
        Ok((outparam, receiver))
    }
}

impl http_helper::HostResponseReceiver for TestState {
    async fn get(
        &mut self,
        receiver: Resource<ResponseReceiver>,
    ) -> wasmtime::Result<Option<Resource<HostIncomingResponse>>> {
        let Some(receiver) = self.table.get_mut(&receiver)?.0.take() else {
            return Ok(None);
        };
        let Ok(Ok(response)) = receiver.await else {
            return Ok(None);
        };
        let (parts, body) = response.into_parts();
        let headers = FieldMap::new_immutable(&mut self.no_network, parts.headers);
        let response = self.table.push(HostIncomingResponse {
            status: parts.status.as_u16(),
            headers,
            body: Some(HostIncomingBody::new(body)),
        })?;
        Ok(Some(response))
    }

    async fn drop(&mut self, receiver: Resource<ResponseReceiver>) -> wasmtime::Result<()> {
        self.table.delete(receiver)?;
        Ok(())
    }
}

impl http_handler::Host for TestState {
    async fn set_response(
        &mut self,
        url: String,
        response: http_handler::ResponseHandler,
    ) -> wasmtime::Result<()> {
        let answer = match response {
            http_handler::ResponseHandler::Echo => Answer::Echo,
            http_handler::ResponseHandler::Response(response) => {
                let HostOutgoingResponse {
                    status,
                    headers,
                    body,
                    ..
                } = self.table.delete(response)?;
                // Read the body as the test writes it (it may write after this call).
                let reading = tokio::spawn(async move {
                    match body {
                        Some(body) => body
                            .collect()
                            .await
                            .map(|collected| collected.to_bytes())
                            .map_err(|err| err.to_string()),
                        None => Ok(Bytes::new()),
                    }
                });
                let headers = HeaderMap::from(headers);
                Answer::Response(
                    async move {
                        let body = reading.await.map_err(|err| err.to_string())??;
                        Ok(Registered {
                            status,
                            headers,
                            body,
                        })
                    }
                    .boxed()
                    .shared(),
                )
            }
        };
        lock(&self.environment.responses).insert(url, answer);
        Ok(())
    }
}

impl variables::Host for TestState {
    async fn set(&mut self, key: String, value: String) -> wasmtime::Result<()> {
        self.variables.insert(key, value);
        // The app is made again with it at its next use; its state stays on disk.
        self.app = None;
        Ok(())
    }
}

impl key_value::Host for TestState {
    async fn calls(&mut self) -> wasmtime::Result<Vec<(String, Vec<key_value::Call>)>> {
        let mut by_store: Vec<(String, Vec<key_value::Call>)> = Vec::new();
        for (label, call) in lock(&self.environment.key_value_calls).iter() {
            let call = match call.clone() {
                KeyValueCall::Get(key) => key_value::Call::Get(key),
                KeyValueCall::Set(key, value) => key_value::Call::Set((key, value)),
                KeyValueCall::Delete(key) => key_value::Call::Delete(key),
                KeyValueCall::Exists(key) => key_value::Call::Exists(key),
                KeyValueCall::GetKeys => key_value::Call::GetKeys,
            };
            match by_store.iter_mut().find(|(store, _)| store == label) {
                Some((_, calls)) => calls.push(call),
                None => by_store.push((label.clone(), vec![call])),
            }
        }
        Ok(by_store)
    }

    async fn reset_calls(&mut self) -> wasmtime::Result<()> {
        lock(&self.environment.key_value_calls).clear();
        Ok(())
    }
}

impl key_value::HostStore for TestState {
    async fn open(&mut self, label: String) -> wasmtime::Result<Resource<KeyValueStore>> {
        let backend = match self.runtime_config.key_value_stores.get(&label) {
            Some(KeyValueBackend::Sqlite(path)) => {
                let database = Database::new(path.clone());
                crate::key_value::prepare_sqlite(&database)
                    .map_err(wasmtime::Error::from_anyhow)?;
                Backend::Sqlite(database)
            }
            Some(KeyValueBackend::Redis(url)) => Backend::Redis(url.clone()),
            None => wasmtime::bail!("the app has no key-value store `{label}`"),
        };
        let store = crate::key_value::Store::new(label.clone(), backend);
        Ok(self.table.push(KeyValueStore(store, label))?)
    }

    async fn label(&mut self, store: Resource<KeyValueStore>) -> wasmtime::Result<String> {
        Ok(self.table.get(&store)?.1.clone())
    }

    async fn get(
        &mut self,
        store: Resource<KeyValueStore>,
        key: String,
    ) -> wasmtime::Result<Option<Vec<u8>>> {
        let store = self.table.get(&store)?.0.clone();
        store
            .get(self.redis_pools.clone(), key)
            .await
            .map_err(|err| wasmtime::format_err!("key-value get: {err:?}"))
    }

    async fn set(
        &mut self,
        store: Resource<KeyValueStore>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<()> {
        let store = self.table.get(&store)?.0.clone();
        store
            .set(self.redis_pools.clone(), key, value)
            .await
            .map_err(|err| wasmtime::format_err!("key-value set: {err:?}"))
    }

    async fn delete(
        &mut self,
        store: Resource<KeyValueStore>,
        key: String,
    ) -> wasmtime::Result<()> {
        let store = self.table.get(&store)?.0.clone();
        store
            .delete(self.redis_pools.clone(), key)
            .await
            .map_err(|err| wasmtime::format_err!("key-value delete: {err:?}"))
    }

    async fn drop(&mut self, store: Resource<KeyValueStore>) -> wasmtime::Result<()> {
        self.table.delete(store)?;
        Ok(())
    }
}

impl sqlite::Host for TestState {}

impl sqlite::HostConnection for TestState {
    async fn open(
        &mut self,
        database: String,
    ) -> wasmtime::Result<Result<Resource<SqliteConnection>, SqliteError>> {
        let Some(path) = self.runtime_config.sqlite_databases.get(&database) else {
            return Ok(Err(SqliteError::NoSuchDatabase));
        };
        let connection = match Database::new(path.clone()).connect() {
            Ok(connection) => connection,
            Err(err) => return Ok(Err(SqliteError::Io(err.to_string()))),
        };
        Ok(Ok(self.table.push(SqliteConnection(connection))?))
    }

    async fn execute(
        &mut self,
        connection: Resource<SqliteConnection>,
        statement: String,
        parameters: Vec<Value>,
    ) -> wasmtime::Result<Result<QueryResult, SqliteError>> {
        let connection = &self.table.get(&connection)?.0;
        Ok(crate::sqlite::execute(connection, &statement, &parameters)
            .map_err(|err| SqliteError::Io(err.to_string())))
    }

    async fn drop(&mut self, connection: Resource<SqliteConnection>) -> wasmtime::Result<()> {
        self.table.delete(connection)?;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------
// The runner.

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
