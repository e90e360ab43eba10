//! The HTTP trigger: a hyper server that routes each request as Spin does, adds
//! Spin's request headers, and runs a fresh instance of the component for it.
//!
//! When traces are exported, a request is Spin's `{METHOD} {route}` span (SERVER, the
//! child of the request's `traceparent`), with `execute_wasm_component {component}`
//! under it; the component's request then carries that span's `traceparent` rather
//! than the client's (a deliberate difference from Spin: `traces` says why).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::sync::watch;
use wasmtime::Store;
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use crate::app::{HttpComponent, RunningApp};
use crate::console::log;
use crate::routes::{Match, RoutePattern};
use crate::spin_test::Environment;
use crate::state::State;
use crate::traces::{Kind, Span, SpanContext, Tracer};

/// Serves until `shutdown` turns true; connections in flight finish their request.
pub async fn serve(
    listener: TcpListener,
    app: Arc<RunningApp>,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let local = listener.local_addr()?;
    loop {
        let (stream, client) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    log!("accept failed: {err}");
                    continue;
                }
            },
            _ = shutdown.changed() => return Ok(()),
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let mut shutdown = shutdown.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request: Request<Incoming>| {
                let app = app.clone();
                let request = request.map(|body| DrainedOnDrop(Some(body)));
                async move { Ok::<_, Infallible>(handle(&app, local, client, request).await) }
            });
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(err) = result {
                        log_connection_error(&*err);
                    }
                }
                _ = shutdown.changed() => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
        });
    }
}

/// The most of a request body left unread by its component that is still read (and
/// dropped), and how long that may take.
const DRAIN_LIMIT: usize = 8 << 20;
const DRAIN_TIME: Duration = Duration::from_secs(10);

/// A request body that, dropped before its end (its component answered without
/// reading it all, as a 413 for a body over the limit does), is read to its end and
/// dropped, in a task of its own, up to [`DRAIN_LIMIT`] and [`DRAIN_TIME`]. Closing the
/// connection with the client's bytes unread instead makes the kernel reset it, and a
/// client still sending then loses the answer (and a client that sends its next
/// request on the connection, that request). hyper alone drains only what has already
/// arrived. Spin does not do this (host/README.md).
struct DrainedOnDrop(Option<Incoming>);

impl hyper::body::Body for DrainedOnDrop {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, hyper::Error>>> {
        match self.0.as_mut() {
            Some(body) => Pin::new(body).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.0.as_ref().is_none_or(|body| body.is_end_stream())
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.0.as_ref().map_or_else(
            || hyper::body::SizeHint::with_exact(0),
            |body| body.size_hint(),
        )
    }
}

impl Drop for DrainedOnDrop {
    fn drop(&mut self) {
        let Some(mut body) = self.0.take() else {
            return;
        };
        if hyper::body::Body::is_end_stream(&body) {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(tokio::time::timeout(DRAIN_TIME, async move {
                let mut read = 0;
                while let Some(Ok(frame)) = body.frame().await {
                    read += frame.data_ref().map_or(0, Bytes::len);
                    if read > DRAIN_LIMIT {
                        break;
                    }
                }
            }));
        }
    }
}

fn log_connection_error(err: &(dyn std::error::Error + 'static)) {
    // Clients closing keep-alive connections are not worth a line.
    let text = err.to_string();
    if !text.contains("connection closed") && !text.contains("reset by peer") {
        log!("connection error: {text}");
    }
}

/// Routes one request to its component and runs it (a client's, or a component
/// test's).
pub async fn handle<B>(
    app: &RunningApp,
    local: SocketAddr,
    client: SocketAddr,
    mut request: Request<B>,
) -> Response<HyperOutgoingBody>
where
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<wasmtime_wasi_http::Error>,
{
    let started = Instant::now();
    let method = request.method().clone();
    let path_and_query = request
        .uri()
        .path_and_query()
        .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned());
    let span = app
        .tracer
        .as_ref()
        .map(|tracer| request_span(tracer, &request, client));
    let Some((route, matched)) = app.router.route(request.uri().path()) else {
        let response = plain(StatusCode::NOT_FOUND, "");
        if let Some(span) = &span {
            span.set_attribute("http.response.status_code", response.status().as_u16());
        }
        log_request(
            None,
            None,
            &method,
            &path_and_query,
            response.status(),
            started,
            None,
        );
        return response;
    };
    let component = &route.component;
    // A client's request names its host in `Host`; a component test's, which has no
    // `Host` (WASI HTTP forbids the header), in its URI.
    let host = request
        .headers()
        .get(hyper::header::HOST)
        .and_then(|host| host.to_str().ok())
        .or_else(|| {
            request
                .uri()
                .authority()
                .map(|authority| authority.as_str())
        })
        .map_or_else(|| local.to_string(), str::to_owned);
    let full_url = Bytes::from(format!("http://{host}{path_and_query}"));
    // wasi:http reads the authority from the URI; a server request has only a path.
    if let Ok(uri) = hyper::Uri::from_maybe_shared(full_url.clone()) {
        *request.uri_mut() = uri;
    }
    add_spin_headers(
        request.headers_mut(),
        &route.headers,
        full_url,
        &matched,
        client,
    );
    let execution = span.as_ref().map(|span| {
        span.set_name(format!("{method} {}", route.pattern));
        span.set_attribute("http.route", route.pattern.clone());
        let execution = span.child(
            format!("execute_wasm_component {}", component.runtime.id),
            Kind::Internal,
        );
        // The component sees its own span as the parent (a deliberate difference from
        // Spin), so the events it publishes name it; the client's tracestate stays.
        if let Ok(traceparent) = HeaderValue::from_str(&execution.context().traceparent()) {
            request.headers_mut().insert("traceparent", traceparent);
        }
        execution
    });
    let instantiation = Arc::new(OnceLock::new());
    let response = match run(component, request, instantiation.clone(), execution.clone()).await {
        Ok(response) => response,
        Err(err) => {
            let line = format!("[{}] request failed: {err:#}", component.runtime.id);
            match &component.runtime.test {
                Some(test) => test.log(&line),
                None => log!("{line}"),
            }
            if let (Some(span), Some(execution)) = (&span, &execution) {
                execution.set_error(format!("{err:#}"));
                span.set_attribute("error.type", format!("{err:#}"));
                span.set_error(format!("{err:#}"));
            }
            plain(StatusCode::INTERNAL_SERVER_ERROR, "")
        }
    };
    if let Some(span) = &span {
        span.set_attribute("http.response.status_code", response.status().as_u16());
    }
    log_request(
        Some(&component.runtime.id),
        component.runtime.test.as_deref(),
        &method,
        &path_and_query,
        response.status(),
        started,
        instantiation.get().copied(),
    );
    response
}

/// A route's component, and the headers Spin adds for the route, made once at start.
pub struct HttpRoute {
    pub component: Arc<HttpComponent>,
    pub headers: RouteHeaders,
    /// The route as written in spin.toml (traces name requests by it).
    pub pattern: String,
}

/// The values of Spin's per-route headers; None where the route is not a valid
/// header value (Spin leaves such a header out too).
pub struct RouteHeaders {
    /// `spin-matched-route` and `spin-raw-component-route`: the route as written.
    route: Option<HeaderValue>,
    /// `spin-component-route`: the route without its wildcard.
    base: Option<HeaderValue>,
}

impl HttpRoute {
    pub fn new(pattern: &RoutePattern, component: Arc<HttpComponent>) -> Self {
        let written = pattern.to_string();
        HttpRoute {
            component,
            headers: RouteHeaders {
                route: HeaderValue::from_str(&written).ok(),
                base: HeaderValue::from_str(&pattern.base()).ok(),
            },
            pattern: written,
        }
    }
}

/// Spin's `spin_trigger_http.handle_http_request` span, named by the method until a
/// route matches, the child of the request's `traceparent` when it has a valid one.
fn request_span<B>(tracer: &Tracer, request: &Request<B>, client: SocketAddr) -> Span {
    let headers = request.headers();
    let text = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
    let remote = text("traceparent")
        .and_then(|traceparent| SpanContext::from_traceparent(traceparent, text("tracestate")));
    let method = request.method().as_str();
    let span = tracer.root(method.to_owned(), Kind::Server, remote);
    span.set_attribute("http.request.method", method.to_owned());
    span.set_attribute("network.peer.address", client.ip().to_string());
    // Text, as Spin records it.
    span.set_attribute("network.peer.port", client.port().to_string());
    span.set_attribute("network.protocol.name", "http");
    span.set_attribute("url.path", request.uri().path().to_owned());
    span.set_attribute("url.query", request.uri().query().unwrap_or("").to_owned());
    // Spin records the request URI's scheme, which a server's request never has;
    // this host serves plain HTTP only.
    span.set_attribute("url.scheme", "http");
    if let Some(forwarded) = text("x-forwarded-for") {
        span.set_attribute("client.address", forwarded.to_owned());
    }
    span
}

/// The headers Spin adds to every request it hands to a component.
fn add_spin_headers(
    headers: &mut hyper::HeaderMap,
    route: &RouteHeaders,
    full_url: Bytes,
    matched: &Match,
    client: SocketAddr,
) {
    let mut set = |name: &'static str, value: Option<HeaderValue>| {
        if let Some(value) = value {
            headers.insert(HeaderName::from_static(name), value);
        }
    };
    set(
        "spin-full-url",
        HeaderValue::from_maybe_shared(full_url).ok(),
    );
    set(
        "spin-path-info",
        HeaderValue::from_str(&matched.path_info).ok(),
    );
    set("spin-matched-route", route.route.clone());
    set("spin-base-path", Some(HeaderValue::from_static("/")));
    set("spin-raw-component-route", route.route.clone());
    set("spin-component-route", route.base.clone());
    set(
        "spin-client-addr",
        HeaderValue::from_maybe_shared(Bytes::from(client.to_string())).ok(),
    );
    for (name, value) in &matched.parameters {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(format!("spin-path-match-{name}").as_bytes()),
            HeaderValue::from_str(value),
        ) {
            headers.insert(name, value);
        }
    }
}

/// Runs the component's `wasi:http/incoming-handler` on a fresh instance. The
/// response head comes back as soon as the guest sets it; the body streams after.
///
/// The guest runs in this request's own task until it has set the response head, so a
/// handler that answers at once costs no task of its own (a spawned task wakes the
/// other worker thread, for every request). Whatever of it is left then, streaming the
/// body for one, goes on in a task of its own ([`Guest`]), as it does when the client
/// goes away first: the host lets every handler run to its end (host/README.md says
/// where recent Spin differs).
///
/// `instantiation` receives the time spent making the `Store` (with its WASI context)
/// and instantiating, without the time the task waited to be scheduled.
async fn run<B>(
    component: &HttpComponent,
    request: Request<B>,
    instantiation: Arc<OnceLock<Duration>>,
    trace: Option<Span>,
) -> anyhow::Result<Response<HyperOutgoingBody>>
where
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<wasmtime_wasi_http::Error>,
{
    let making = Instant::now();
    let mut store = Store::new(component.pre.engine(), component.runtime.new_state(trace));
    let store_made = making.elapsed();
    let (sender, mut receiver) = tokio::sync::oneshot::channel();
    let request = store
        .data_mut()
        .http()
        .new_incoming_request(Scheme::Http, request)?;
    let outparam = store.data_mut().http().new_response_outparam(sender)?;
    let pre: ProxyPre<State> = component.pre.clone();
    let mut guest = Guest::new(async move {
        let instantiating = Instant::now();
        let outcome = async {
            let proxy = pre.instantiate_async(&mut store).await?;
            let _ = instantiation.set(store_made + instantiating.elapsed());
            proxy
                .wasi_http_incoming_handler()
                .call_handle(&mut store, request, outparam)
                .await
        }
        .await;
        // A trap after the response head (while the body streams) is seen only here.
        if let (Err(trap), Some(execution)) = (&outcome, &store.data().trace) {
            execution.set_error(format!("{trap:#}"));
        }
        outcome
    });
    // The outparam lives in the store, which the guest's future owns: once that future
    // has ended, the receiver is ready too.
    let head = std::future::poll_fn(|cx| {
        guest.poll_unfinished(cx);
        Pin::new(&mut receiver).poll(cx)
    })
    .await;
    match head {
        Ok(Ok(response)) => Ok(response),
        Ok(Err(code)) => anyhow::bail!("the component answered with an error: {code:?}"),
        Err(_) => match guest.finish().await {
            Ok(()) => anyhow::bail!("the component did not set a response"),
            Err(trap) => Err(anyhow::Error::from(trap).context("the component trapped")),
        },
    }
}

type GuestRun = Pin<Box<dyn Future<Output = wasmtime::Result<()>> + Send>>;

/// A guest's run, polled in place until it is dropped; what is left of it then goes on
/// in a task of its own.
struct Guest {
    running: Option<GuestRun>,
    outcome: Option<wasmtime::Result<()>>,
}

impl Guest {
    fn new(run: impl Future<Output = wasmtime::Result<()>> + Send + 'static) -> Self {
        Guest {
            running: Some(Box::pin(run)),
            outcome: None,
        }
    }

    /// Runs the guest on as far as it goes without waiting.
    fn poll_unfinished(&mut self, cx: &mut Context<'_>) {
        if let Some(running) = self.running.as_mut()
            && let Poll::Ready(outcome) = running.as_mut().poll(cx)
        {
            self.running = None;
            self.outcome = Some(outcome);
        }
    }

    /// Waits for the guest's end, and says how it ended.
    async fn finish(mut self) -> wasmtime::Result<()> {
        std::future::poll_fn(|cx| {
            self.poll_unfinished(cx);
            match self.outcome.take() {
                Some(outcome) => Poll::Ready(outcome),
                None => Poll::Pending,
            }
        })
        .await
    }
}

impl Drop for Guest {
    fn drop(&mut self) {
        if let Some(running) = self.running.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(running);
        }
    }
}

fn plain(status: StatusCode, body: &'static str) -> Response<HyperOutgoingBody> {
    let mut response = Response::new(
        Full::new(Bytes::from_static(body.as_bytes()))
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *response.status_mut() = status;
    response
}

/// One line per request: component, method, path, status, duration until the response
/// head, and how much of it went to making the instance (`cargo xtask bench` reads it).
/// Under a component test, the line goes to the test's output.
fn log_request(
    component: Option<&str>,
    test: Option<&Environment>,
    method: &hyper::Method,
    path: &str,
    status: StatusCode,
    started: Instant,
    instantiation: Option<Duration>,
) {
    let elapsed = started.elapsed();
    let line = format!(
        "{} {method} {path} -> {} in {:.2} ms{}",
        component.unwrap_or("(no route)"),
        status.as_u16(),
        elapsed.as_secs_f64() * 1000.0,
        InstanceTime(instantiation)
    );
    match test {
        Some(test) => test.log(&line),
        None => log!("{line}"),
    }
}

/// " (instance N µs)" when the request made an instance.
struct InstanceTime(Option<Duration>);

impl std::fmt::Display for InstanceTime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(took) => write!(f, " (instance {} µs)", took.as_micros()),
            None => Ok(()),
        }
    }
}
