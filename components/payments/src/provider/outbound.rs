//! One outbound HTTP request with timeouts, over `wasi:http` as Spin provides it.
//! spin-sdk's `send` sets no timeouts: a provider that never answers would hold the
//! buyer's request (and the payment's busy mark) for the runtime's default of minutes.

use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use spin_sdk::http::{Fields, Method, OutgoingBody, OutgoingRequest, Scheme};
use spin_sdk::wit::wasi::http0_2_0::outgoing_handler;
use spin_sdk::wit::wasi::http0_2_0::types::RequestOptions;
use wasi::io::streams::StreamError;

/// How long a connection may take to open.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the answer may take to begin, and then to go on (Stripe's own libraries
/// wait up to 80 s in all; a buyer should not).
pub const FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(30);
pub const BETWEEN_BYTES_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest answer read.
const MAX_ANSWER_BYTES: usize = 1024 * 1024;
/// `wasi:io` writes at most this much per blocking call.
const WRITE_CHUNK: usize = 4096;

/// An answer: its status and its whole body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
}

/// POSTs `body` to `url` (`http` or `https`) with `headers`, and reads the answer.
/// `Err`: no answer (refused by `allowed_outbound_hosts`, unreachable, a timeout).
pub fn post(url: &str, headers: &[(&str, &str)], body: &[u8]) -> Result<Answer> {
    let (scheme, rest) = url
        .split_once("://")
        .with_context(|| format!("`{url}` is not a URL"))?;
    let scheme = match scheme {
        "https" => Scheme::Https,
        "http" => Scheme::Http,
        other => bail!("`{other}` is not an HTTP scheme"),
    };
    let (authority, path) = match rest.find('/') {
        Some(slash) => rest.split_at(slash),
        None => (rest, "/"),
    };
    // A declared length: the body goes out in one piece, not chunked.
    let length = body.len().to_string();
    let fields: Vec<(String, Vec<u8>)> = headers
        .iter()
        .chain([&("content-length", length.as_str())])
        .map(|(name, value)| ((*name).to_owned(), value.as_bytes().to_vec()))
        .collect();
    let fields = Fields::from_list(&fields).map_err(|err| anyhow!("headers: {err:?}"))?;
    let request = OutgoingRequest::new(fields);
    let set = request
        .set_method(&Method::Post)
        .and(request.set_scheme(Some(&scheme)))
        .and(request.set_authority(Some(authority)))
        .and(request.set_path_with_query(Some(path)));
    set.map_err(|()| anyhow!("`{url}` is not a valid request target"))?;
    let outgoing = request
        .body()
        .map_err(|()| anyhow!("the request body was taken"))?;

    let options = RequestOptions::new();
    // A runtime that cannot honour a timeout says so; the request goes out anyway.
    let _ = options.set_connect_timeout(Some(nanos(CONNECT_TIMEOUT)));
    let _ = options.set_first_byte_timeout(Some(nanos(FIRST_BYTE_TIMEOUT)));
    let _ = options.set_between_bytes_timeout(Some(nanos(BETWEEN_BYTES_TIMEOUT)));
    let future =
        outgoing_handler::handle(request, Some(options)).map_err(|code| anyhow!("{code}"))?;

    let stream = outgoing
        .write()
        .map_err(|()| anyhow!("the request body stream was taken"))?;
    for chunk in body.chunks(WRITE_CHUNK) {
        stream
            .blocking_write_and_flush(chunk)
            .map_err(|err| anyhow!("sending the request body: {}", stream_error(err)))?;
    }
    drop(stream);
    OutgoingBody::finish(outgoing, None).map_err(|code| anyhow!("{code}"))?;

    future.subscribe().block();
    let response = future
        .get()
        .context("no answer after waiting for one")?
        .map_err(|()| anyhow!("the answer was taken"))?
        .map_err(|code| anyhow!("{code}"))?;
    let status = response.status();
    let incoming = response
        .consume()
        .map_err(|()| anyhow!("the answer body was taken"))?;
    let stream = incoming
        .stream()
        .map_err(|()| anyhow!("the answer body stream was taken"))?;
    let mut body = Vec::new();
    loop {
        match stream.blocking_read(64 * 1024) {
            Ok(bytes) => {
                body.extend_from_slice(&bytes);
                if body.len() > MAX_ANSWER_BYTES {
                    bail!("the answer is larger than {MAX_ANSWER_BYTES} bytes");
                }
            }
            Err(StreamError::Closed) => break,
            Err(err) => bail!("reading the answer: {}", stream_error(err)),
        }
    }
    Ok(Answer { status, body })
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

fn stream_error(err: StreamError) -> String {
    match err {
        StreamError::Closed => "the stream closed".to_owned(),
        StreamError::LastOperationFailed(err) => err.to_debug_string(),
    }
}
