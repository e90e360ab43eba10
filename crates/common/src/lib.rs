//! The HTTP layer every service shares: reading requests (bounded), API.md's error
//! format, JSON bodies, validation, sessions, the clock, and each service's SQLite
//! schema. The bodies themselves, and prices, are the `contract` crate's.
//!
//! Handlers return `Result<Response, ApiError>`; `respond` turns either side into the
//! response the API promises, so no internal error text can reach a client.

mod body;
pub mod clock;
pub mod db;
mod error;
mod http;
pub mod session;
pub mod trace;
mod validation;

pub use body::{json_body, json_body_from};
pub use error::ApiError;
pub use http::{MAX_BODY_BYTES, serve};
use serde::Serialize;
use spin_sdk::http::{Params, Request, Response};
pub use validation::{Validator, required};

/// A JSON response with the given status.
pub fn json_response(status: u16, body: &impl Serialize) -> Response {
    // Serializing our own plain data types cannot fail; if it ever did, the generic
    // 500 is still the right answer for the client.
    match serde_json::to_vec(body) {
        Ok(bytes) => Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(bytes)
            .build(),
        Err(err) => ApiError::Internal(err.into()).into_response(),
    }
}

/// Any path or method a service has no route for: 404 in API.md's format (every
/// router's last route, `/*`).
pub fn not_found(_req: Request, _params: Params) -> Response {
    ApiError::NotFound.into_response()
}

/// A new opaque id: 128 random bits, hex-encoded (resource ids, event ids).
pub fn new_id() -> Result<String, ApiError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|err| anyhow::anyhow!("no randomness: {err}"))?;
    Ok(bytes.iter().map(|byte| format!("{byte:02x}")).collect())
}

/// The response for a handler's result: the success as it is, an error in API.md's format.
pub fn respond(result: Result<Response, ApiError>) -> Response {
    result.unwrap_or_else(ApiError::into_response)
}

/// `eprintln!` in one write: the line is formatted first, then handed to stderr whole.
///
/// `eprintln!` writes each piece of its format separately, and in a component each
/// write is a call into the runtime (WASI's `blocking-write-and-flush`): the services'
/// one line per request or event took a dozen of them.
#[macro_export]
macro_rules! log {
    ($($arg:tt)*) => {
        $crate::write_line(::std::format!($($arg)*))
    };
}

#[doc(hidden)]
pub fn write_line(mut line: String) {
    use std::io::Write;
    line.push('\n');
    // Nowhere to report a console that is gone.
    let _ = std::io::stderr().write_all(line.as_bytes());
}
