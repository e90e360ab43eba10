//! The interfaces a test imports, on one test's state (`TestState`): spin-test's
//! (`wit/spin-test/`) and the host's additions (`wit/host-test/`).

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use bytes::Bytes;
use futures_util::FutureExt;
use http_body_util::{BodyExt, Empty};
use hyper::{HeaderMap, Request, Response};
use tokio::sync::oneshot;
use wasmtime::component::{Resource, ResourceTable};
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

use super::Suite;
use super::environment::{Answer, Environment, KeyValueCall, Registered, lock};
use super::redis_server::RedisServer;
use crate::app::{self, RunningApp};
use crate::bindings::spin::redis::{RedisParameter, RedisResult};
use crate::bindings::spin::sqlite::{Error as SqliteError, QueryResult, Value};
use crate::bindings::spin_test::fermyon::spin_test::http_helper;
use crate::bindings::spin_test::fermyon::spin_test_virt::{key_value, sqlite, variables};
use crate::bindings::spin_test::fermyon::spin_wasi_virt::http_handler;
use crate::bindings::spin_test::ticketing::host_test::app as host_test;
use crate::bindings::spin_test::wasi::http0_2_6::incoming_handler;
use crate::key_value::Backend;
use crate::manifest::App;
use crate::redis_outbound::Pools;
use crate::runtime_config::{KeyValueBackend, RuntimeConfig};
use crate::sqlite::Database;
use crate::variables::Values;

/// Where the app under test seems to be, and its client (spin-test's router uses these).
const APP_ADDRESS: &str = "127.0.0.1:3000";
const CLIENT_ADDRESS: &str = "127.0.0.1:0";

/// A test's connection to one of the app's SQLite databases.
pub struct SqliteConnection(rusqlite::Connection);

/// A test's handle on one of the app's key-value stores.
pub struct KeyValueStore(crate::key_value::Store);

/// Receives the response the app sets on one `response-outparam`.
pub struct ResponseReceiver(Option<oneshot::Receiver<OutparamValue>>);

type OutparamValue = Result<Response<HyperOutgoingBody>, ErrorCode>;

// ---------------------------------------------------------------------------------
// One test's state.

/// The store data of one test: the test component's WASI, and the app it tests.
pub(super) struct TestState {
    table: ResourceTable,
    wasi: WasiCtx,
    http: WasiHttpCtx,
    no_network: NoNetwork,
    suite: Arc<Suite>,
    /// The app's state (its databases and stores), removed with the test.
    state_dir: tempfile::TempDir,
    runtime_config: RuntimeConfig,
    pub(super) environment: Arc<Environment>,
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
    pub(super) fn new(suite: Arc<Suite>, stdout: MemoryOutputPipe) -> Result<TestState> {
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
                tracer: None,
            },
        )?);
        self.app = Some(app.clone());
        Ok(app)
    }

    /// The test's own Redis server's URL, started on first use.
    fn redis_database(&mut self) -> Result<String> {
        if self.redis.is_none() {
            self.redis = Some(RedisServer::start()?);
        }
        Ok(self.redis.as_ref().expect("started above").url())
    }
}

/// Every database and key-value store the app uses, as a new file in `dir`.
pub(super) fn fresh_runtime_config(app: &App, dir: &Path) -> RuntimeConfig {
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
        let Some(config) = self.runtime_config.key_value_stores.get(&label) else {
            wasmtime::bail!("the app has no key-value store `{label}`");
        };
        let backend = Backend::open(&label, config).map_err(wasmtime::Error::from_anyhow)?;
        let store = crate::key_value::Store::new(label, backend);
        Ok(self.table.push(KeyValueStore(store))?)
    }

    async fn label(&mut self, store: Resource<KeyValueStore>) -> wasmtime::Result<String> {
        Ok(self.table.get(&store)?.0.label().to_owned())
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
        Ok(crate::redis_trigger::deliver(subscription, payload, None).await)
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

    async fn fail_request(
        &mut self,
        url: String,
        failure: host_test::OutboundFailure,
    ) -> wasmtime::Result<()> {
        lock(&self.environment.responses).insert(url, Answer::Fail(failure));
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
