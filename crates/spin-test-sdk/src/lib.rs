//! spin-test-sdk: writes component tests of the app in spin-test's format, for the
//! project's `host test` (and spin-test itself).
//!
//! A test component is a `wasm32-wasip1` cdylib that imports (some of) the world
//! `ticketing:host-test/test-imports` (`wit/host-test/`: spin-test's
//! `fermyon:spin-test/test-imports`, and the host's additions) and exports each test as
//! a function `spin-test-<name>` taking and returning nothing; a test fails by
//! panicking. That is the convention of spin-test's own SDK (at commit 593860b9), whose
//! runner finds the tests by listing a component's exports that start with
//! `spin-test-`. Like spin-test's tests, the component imports WASI 0.2.0.
//!
//! ```no_run
//! use spin_test_sdk::{Request, respond, spin_test};
//!
//! #[spin_test]
//! fn config_names_the_provider() {
//!     let response = Request::get("/api/payments/config").send();
//!     assert_eq!(response.status(), 200, "{}", response.text());
//!     assert!(response.json()["provider"].is_string());
//! }
//!
//! #[spin_test]
//! fn the_provider_answers() {
//!     respond("https://api.example.com/v1/charges", 200, &[], b"{}");
//!     // ... a request to the app that makes that outbound request
//! }
//! # fn main() {}
//! ```
//!
//! [`bindings`] has everything the world imports, for what the helpers do not cover
//! (key-value stores and their calls, SQLite databases). [`host`] has what the
//! project's host adds to spin-test (`wit/host-test/`): a test that uses it runs only
//! on `host test`.

use bindings::fermyon::spin_test::http_helper;
use bindings::fermyon::spin_test_virt::variables;
use bindings::fermyon::spin_wasi_virt::http_handler::{self, ResponseHandler};
use bindings::wasi::http::incoming_handler;
use bindings::wasi::http::types::{
    Fields, IncomingBody, IncomingResponse, Method, OutgoingBody, OutgoingRequest,
    OutgoingResponse, Scheme,
};
use bindings::wasi::io::streams::StreamError;

/// `#[spin_test]` on `fn name()`: exports it as the test `spin-test-<name>` (each `_`
/// of the name a `-`).
pub use spin_test_sdk_macro::spin_test;

/// For `#[spin_test]`, which generates each test's export with it.
#[doc(hidden)]
pub use wit_bindgen;

/// Raw bindings to the world `ticketing:host-test/test-imports`: spin-test's (the app's
/// `wasi:http/incoming-handler@0.2.0`, `fermyon:spin-test/http-helper`, and the
/// environment the app runs in, `fermyon:spin-test-virt`, `fermyon:spin-wasi-virt`),
/// and the host's additions (`ticketing:host-test/app`, see [`host`]).
#[allow(missing_docs, clippy::all)]
pub mod bindings {
    include!(concat!(env!("OUT_DIR"), "/bindings.rs"));
}

/// The authority of a request a test sends the app, unless [`Request::authority`]
/// gives another.
pub const AUTHORITY: &str = "localhost:3000";

/// A request to the app, sent with [`Request::send`] to `http://localhost:3000<path>`.
#[derive(Debug, Clone)]
pub struct Request {
    method: Method,
    authority: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Option<Vec<u8>>,
}

impl Request {
    /// A request of any method; `path` with its query, if any (`/api/tickets?page=2`).
    pub fn new(method: Method, path: &str) -> Self {
        Self {
            method,
            authority: AUTHORITY.to_owned(),
            path: path.to_owned(),
            headers: Vec::new(),
            body: None,
        }
    }

    /// `GET path`.
    pub fn get(path: &str) -> Self {
        Self::new(Method::Get, path)
    }

    /// `POST path`.
    pub fn post(path: &str) -> Self {
        Self::new(Method::Post, path)
    }

    /// `PUT path`.
    pub fn put(path: &str) -> Self {
        Self::new(Method::Put, path)
    }

    /// `DELETE path`.
    pub fn delete(path: &str) -> Self {
        Self::new(Method::Delete, path)
    }

    /// The host the request is sent to (`tickets.example.com`), instead of
    /// [`AUTHORITY`]: what the app reads as its own name (the host and Spin put it in
    /// the URL the component sees).
    pub fn authority(mut self, authority: &str) -> Self {
        self.authority = authority.to_owned();
        self
    }

    /// Adds a header (a name given twice is sent twice).
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// The body, sent as it is.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = Some(body.into());
        self
    }

    /// `value` as the body, with `content-type: application/json`.
    pub fn json(self, value: &serde_json::Value) -> Self {
        let body = serde_json::to_vec(value).expect("a JSON value serializes");
        self.header("content-type", "application/json").body(body)
    }

    /// Has the app handle the request, through its `wasi:http/incoming-handler`, and
    /// returns its response, body read. Panics when the app sets no response (it
    /// trapped, for one).
    ///
    /// The body is written, and finished, before the app runs: the host holds all of it
    /// until the app reads it, so it must fit the host's buffer for an outgoing body
    /// (on wasmtime's defaults, a megabyte at least).
    pub fn send(self) -> Response {
        let request = OutgoingRequest::new(fields(
            self.headers
                .iter()
                .map(|(name, value)| (name.as_str(), value.as_str())),
        ));
        request
            .set_method(&self.method)
            .unwrap_or_else(|()| panic!("{:?} is not a valid method", self.method));
        request
            .set_scheme(Some(&Scheme::Http))
            .expect("http is a valid scheme");
        request
            .set_authority(Some(&self.authority))
            .expect("the authority is valid");
        request
            .set_path_with_query(Some(&self.path))
            .unwrap_or_else(|()| panic!("`{}` is not a valid path with query", self.path));
        if let Some(body) = &self.body {
            write_body(
                request
                    .body()
                    .expect("a new request's body is taken once, here"),
                body,
            );
        }

        let request = http_helper::new_request(request, None);
        let (outparam, receiver) = http_helper::new_response();
        incoming_handler::handle(request, outparam);
        let response = receiver.get().unwrap_or_else(|| {
            panic!("the app set no response to {:?} {}", self.method, self.path)
        });
        Response::read(response)
    }
}

/// The app's response to a [`Request`], body read.
#[derive(Debug, Clone)]
pub struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn read(response: IncomingResponse) -> Self {
        let status = response.status();
        let headers = entries(&response.headers());
        let body = read_body(
            response
                .consume()
                .expect("a response's body is consumed once, here"),
        );
        Self {
            status,
            headers,
            body,
        }
    }

    /// The status code.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The first value of the header `name` (in any case).
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.clone())
    }

    /// Every header, in the order the app set them (`set-cookie` may come several
    /// times). A value that is not UTF-8 is read lossily.
    pub fn headers(&self) -> Vec<(String, String)> {
        self.headers.clone()
    }

    /// The body, as the app wrote it, to its end.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The body as text. Panics if it is not UTF-8.
    pub fn text(&self) -> &str {
        std::str::from_utf8(&self.body).unwrap_or_else(|err| {
            panic!(
                "the response body is not UTF-8 ({err}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// The body as JSON. Panics, with the body, if it is not JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|err| {
            panic!(
                "the response body is not JSON ({err}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

/// Answers the app's next outbound request to `url` with this response, once (as
/// `fermyon:spin-wasi-virt/http-handler` says: `url` is `scheme://authority/path?query`
/// with no lone trailing `/`, e.g. `https://api.stripe.com/v1/charges`; a request to a
/// URL with no response set fails).
pub fn respond(url: &str, status: u16, headers: &[(&str, &str)], body: &[u8]) {
    let response = OutgoingResponse::new(fields(headers.iter().copied()));
    response
        .set_status_code(status)
        .unwrap_or_else(|()| panic!("{status} is not an HTTP status"));
    // Written and finished before the host takes the response.
    write_body(
        response
            .body()
            .expect("a new response's body is taken once, here"),
        body,
    );
    http_handler::set_response(url, ResponseHandler::Response(response));
}

/// Answers the app's next outbound request to `url` (as for [`respond`]) with status
/// 200 and the request's own body, once.
pub fn echo(url: &str) {
    http_handler::set_response(url, ResponseHandler::Echo);
}

/// Gives the application variable `name` the value `value` (what
/// `spin_sdk::variables::get(name)` returns to the app).
pub fn set_variable(name: &str, value: &str) {
    variables::set(name, value);
}

fn fields<'a>(headers: impl IntoIterator<Item = (&'a str, &'a str)>) -> Fields {
    let fields = Fields::new();
    for (name, value) in headers {
        fields
            .append(name, value.as_bytes())
            .unwrap_or_else(|err| panic!("the header `{name}: {value}` is not valid: {err:?}"));
    }
    fields
}

fn entries(fields: &Fields) -> Vec<(String, String)> {
    fields
        .entries()
        .into_iter()
        .map(|(name, value)| (name, String::from_utf8_lossy(&value).into_owned()))
        .collect()
}

/// Writes all of `bytes`, then finishes the body.
fn write_body(body: OutgoingBody, mut bytes: &[u8]) {
    {
        let stream = body.write().expect("a body's stream is taken once, here");
        while !bytes.is_empty() {
            let ready = stream
                .check_write()
                .unwrap_or_else(|err| panic!("writing a body failed: {err:?}"));
            if ready == 0 {
                stream.subscribe().block();
                continue;
            }
            let len = bytes
                .len()
                .min(usize::try_from(ready).unwrap_or(usize::MAX));
            let (chunk, rest) = bytes.split_at(len);
            stream
                .write(chunk)
                .unwrap_or_else(|err| panic!("writing a body failed: {err:?}"));
            bytes = rest;
        }
        stream
            .flush()
            .unwrap_or_else(|err| panic!("writing a body failed: {err:?}"));
    }
    OutgoingBody::finish(body, None)
        .unwrap_or_else(|err| panic!("finishing a body failed: {err:?}"));
}

/// Reads `body` until its stream closes.
fn read_body(body: IncomingBody) -> Vec<u8> {
    let mut bytes = Vec::new();
    {
        let stream = body.stream().expect("a body's stream is taken once, here");
        loop {
            match stream.blocking_read(64 * 1024) {
                Ok(chunk) => bytes.extend_from_slice(&chunk),
                Err(StreamError::Closed) => break,
                Err(StreamError::LastOperationFailed(err)) => {
                    panic!(
                        "reading the app's response failed: {}",
                        err.to_debug_string()
                    )
                }
            }
        }
    }
    drop(IncomingBody::finish(body));
    bytes
}

/// What the project's host gives a test beyond spin-test (`wit/host-test/`): Redis
/// messages to a component's trigger, a real Redis, the wall clock, the requests the
/// app sent out. A test that calls any of these runs only on `host test`; one that
/// calls none imports none of it, and stays portable.
pub mod host {
    use super::bindings::ticketing::host_test::app;
    pub use app::{OutboundFailure, OutboundRequest, RedisParameter, RedisResult};

    /// Fails the app's next request to `url` (named as for [`crate::respond`]) with
    /// `failure`, once, as if the network had: a timeout without the wait.
    pub fn fail_request(url: &str, failure: OutboundFailure) {
        app::fail_request(url, failure);
    }

    /// Hands `payload` to the Redis trigger of the component `component` as a message
    /// on `channel`, as the trigger would; Err says why it failed.
    pub fn deliver_redis_message(
        component: &str,
        channel: &str,
        payload: &[u8],
    ) -> Result<(), String> {
        app::deliver_redis_message(component, channel, payload)
    }

    /// Sets the wall clock the app reads to `seconds` after the Unix epoch (it runs on
    /// from there).
    pub fn set_wall_clock(seconds: u64) {
        app::set_wall_clock(super::bindings::wasi::clocks::wall_clock::Datetime {
            seconds,
            nanoseconds: 0,
        });
    }

    /// The test's own database on a real Redis (`redis://127.0.0.1:<port>/<db>`).
    pub fn redis_url() -> String {
        app::redis_url()
    }

    /// Runs a command on the test's Redis database; panics if Redis refuses it.
    pub fn redis(command: &str, arguments: &[&[u8]]) -> Vec<RedisResult> {
        let arguments: Vec<RedisParameter> = arguments
            .iter()
            .map(|argument| RedisParameter::Binary(argument.to_vec()))
            .collect();
        app::redis_execute(command, &arguments)
            .unwrap_or_else(|err| panic!("Redis refused {command}: {err}"))
    }

    /// The HTTP requests the app has sent out so far, oldest first.
    pub fn outbound_requests() -> Vec<OutboundRequest> {
        app::outbound_requests()
    }
}
