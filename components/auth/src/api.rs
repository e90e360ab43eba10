//! Thin HTTP handlers of the auth service.

use common::{ApiError, json_response};
use spin_sdk::http::{Params, Request, Response};

/// `GET /api/users/currentuser`: `{"currentUser": {id, email, iat}}`, or `null` when
/// signed out.
///
/// Nobody can sign in yet (sign-up and sessions arrive with the auth issue), so every
/// request is signed out.
pub fn current_user(_req: Request, _params: Params) -> Response {
    json_response(200, &serde_json::json!({ "currentUser": null }))
}

/// Any other path under `/api/users/`.
pub fn not_found(_req: Request, _params: Params) -> Response {
    ApiError::NotFound.into_response()
}
