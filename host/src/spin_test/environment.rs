//! What the app under test shares with its test: the answers to its outbound HTTP
//! requests and the requests it sent, the calls it made to its key-value stores, the
//! wall clock it reads, and where its output goes. The app's `ComponentRuntime`s hold
//! it (`state.rs`); the host's interfaces consult it when it is there.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};
use http_body_util::{BodyExt, Full};
use hyper::{HeaderMap, Response, StatusCode};
use wasmtime_wasi_http::{Error as HttpError, WasiBody};

use crate::bindings::spin_test::ticketing::host_test::app as host_test;

/// What a component test shares with the app it tests: the calls the app makes to its
/// key-value stores, the answers to its outbound HTTP requests, and its output.
#[derive(Default)]
pub struct Environment {
    pub(super) key_value_calls: Mutex<Vec<(String, KeyValueCall)>>,
    pub(super) responses: Mutex<HashMap<String, Answer>>,
    /// The app's output during the test: the host's request lines and the components'
    /// stdout and stderr, shown when the test fails.
    pub output: Arc<Mutex<Vec<u8>>>,
    /// How far the test moved the wall clock the app reads, in nanoseconds.
    pub(super) clock_shift: Mutex<Option<i128>>,
    /// The HTTP requests the app sent out, oldest first.
    pub(super) outbound: Mutex<Vec<host_test::OutboundRequest>>,
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
pub(super) enum Answer {
    /// With the request's own body.
    Echo,
    /// With a response the test made; its body is read as the test writes it.
    Response(Shared<BoxFuture<'static, Result<Registered, String>>>),
    /// With no answer: the network failed (`app.fail-request`).
    Fail(host_test::OutboundFailure),
}

#[derive(Clone)]
pub(super) struct Registered {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
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
                Some(Answer::Fail(failure)) => Err(match failure {
                    host_test::OutboundFailure::ConnectionRefused => HttpError::ConnectionRefused,
                    host_test::OutboundFailure::ConnectionTimeout => HttpError::ConnectionTimeout,
                    host_test::OutboundFailure::ConnectionReadTimeout => {
                        HttpError::ConnectionReadTimeout
                    }
                    host_test::OutboundFailure::ConnectionTerminated => {
                        HttpError::ConnectionTerminated
                    }
                }),
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
pub(super) fn request_url(uri: &http::Uri) -> String {
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

pub(super) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
