//! The edge of every service: read the request (bounded), route it, log one line.

use std::time::Instant;

use spin_sdk::http::{IncomingRequest, Method, Request, Response, Router};

use crate::ApiError;
use crate::trace::{self, TraceContext};

/// The largest request body a service reads (API.md: more gets 413).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Serves one request: reads its body (at most [`MAX_BODY_BYTES`], refusing more with
/// 413 before reading it all; a GET's or HEAD's is not read, below), hands it to
/// `router`, and logs
/// `<METHOD> <path> -> <status> in <ms> ms[ trace <id>]`: never the query, cookies or
/// bodies.
pub async fn serve(incoming: IncomingRequest, router: &Router) -> Response {
    let started = Instant::now();
    let method = incoming.method().to_string();
    let path = incoming
        .path_with_query()
        .map(|target| match target.split_once('?') {
            Some((path, _query)) => path.to_owned(),
            None => target,
        })
        .unwrap_or_else(|| "/".to_owned());
    let request = read(incoming).await;
    // The events this request publishes carry its trace context (crate::trace).
    let _context = trace::enter(request.as_ref().ok().and_then(|request| {
        let header = |name| request.header(name).and_then(|value| value.as_str());
        TraceContext::parse(header("traceparent")?, header("tracestate"))
    }));
    let response = match request {
        Ok(request) => router.handle_async(request).await,
        Err(err) => err.into_response(),
    };
    crate::log!(
        "{method} {path} -> {} in {:.1} ms{}",
        response.status(),
        started.elapsed().as_secs_f64() * 1000.0,
        trace::log_suffix()
    );
    response
}

async fn read(incoming: IncomingRequest) -> Result<Request, ApiError> {
    use futures::TryStreamExt;

    let headers = incoming.headers();
    let declared = headers
        .get("content-length")
        .first()
        .and_then(|value| std::str::from_utf8(value).ok())
        .and_then(|value| value.trim().parse::<u64>().ok());
    if let Some(length) = declared {
        check_body_size(usize::try_from(length).unwrap_or(usize::MAX))?;
    }
    let mut request = Request::builder();
    request
        .method(incoming.method())
        .uri(incoming.uri())
        .headers(headers);
    let mut body = Vec::new();
    // No GET or HEAD route reads a body, and reading even an empty one takes several
    // calls into the runtime (its stream, a read, a poll): a tenth of a ticket's page.
    // One that says it is over the limit still gets 413, above.
    if matches!(incoming.method(), Method::Get | Method::Head) {
        return Ok(request.body(body).build());
    }
    let mut chunks = incoming.into_body_stream();
    while let Some(chunk) = chunks
        .try_next()
        .await
        .map_err(|_| ApiError::BadRequest("Request body could not be read".to_owned()))?
    {
        check_body_size(body.len() + chunk.len())?;
        body.extend(chunk);
    }
    Ok(request.body(body).build())
}

/// 413 once a body grows past [`MAX_BODY_BYTES`].
fn check_body_size(bytes: usize) -> Result<(), ApiError> {
    if bytes > MAX_BODY_BYTES {
        Err(ApiError::PayloadTooLarge)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_up_to_64_kib_are_read_and_larger_ones_refused() {
        assert!(check_body_size(0).is_ok());
        assert!(check_body_size(64 * 1024).is_ok());
        let err = check_body_size(64 * 1024 + 1).unwrap_err();
        assert_eq!(err.status(), 413);
    }
}
