//! Thin HTTP handlers of the auth service (API.md, "auth").

use std::time::{SystemTime, UNIX_EPOCH};

use common::clock;
use common::{ApiError, Validator, json_response, respond, session};
use contract::http::{Credentials, CurrentUserAnswer, Sent, SignedOut, User};
use spin_sdk::http::{Params, Request, Response};

use crate::domain::{Email, GivenPassword, NewPassword};
use crate::{db, password};

/// `POST /api/users/signup` `{email, password}`: 201 `{id, email}` and a session.
pub fn sign_up(req: Request, _params: Params) -> Response {
    respond(try_sign_up(&req))
}

/// `{email, password}` from the body, each checked by its rule (both failures reported).
fn credentials<P>(
    req: &Request,
    password_rule: fn(Option<&str>) -> Result<P, &'static str>,
) -> Result<(Email, P), ApiError> {
    let body: Credentials<Sent> = common::json_body(req)?;
    let mut rules = Validator::new();
    let email = rules.field("email", Email::parse(body.email.str()));
    let password = rules.field("password", password_rule(body.password.str()));
    match (email, password) {
        (Some(email), Some(password)) => Ok((email, password)),
        _ => Err(rules.into_error()),
    }
}

fn try_sign_up(req: &Request) -> Result<Response, ApiError> {
    let (email, password) = credentials(req, NewPassword::parse)?;

    // Read before anything is stored: a missing key must not leave an account behind.
    let key = session::key()?;
    let conn = db::open()?;
    let email_in_use = || ApiError::BadRequest("Email in use".to_owned());
    // Spares the slow hash for a known email; the insert below still decides races.
    if db::find_user(&conn, &email)?.is_some() {
        return Err(email_in_use());
    }
    let hash = password::hash(password.as_str())?;
    let id = common::new_id()?;
    let now = clock::now();
    let created_at = now.duration_since(UNIX_EPOCH).map_or(0, |since| {
        i64::try_from(since.as_secs()).unwrap_or(i64::MAX)
    });
    if !db::insert_user(&conn, &id, &email, &hash, created_at)? {
        return Err(email_in_use());
    }
    signed_in(req, &key, 201, &id, email.as_str(), now)
}

/// `POST /api/users/signin` `{email, password}`: 200 `{id, email}` and a session.
pub fn sign_in(req: Request, _params: Params) -> Response {
    respond(try_sign_in(&req))
}

fn try_sign_in(req: &Request) -> Result<Response, ApiError> {
    let (email, password) = credentials(req, GivenPassword::parse)?;

    let key = session::key()?;
    let conn = db::open()?;
    let user = db::find_user(&conn, &email)?;
    // Unknown email and wrong password look alike, in the answer and in its timing.
    let user = match user {
        Some(user) if password::verify(password.as_str(), &user.password_hash) => user,
        Some(_) => return Err(invalid_credentials()),
        None => {
            password::verify_nothing(password.as_str());
            return Err(invalid_credentials());
        }
    };
    signed_in(req, &key, 200, &user.id, &user.email, clock::now())
}

fn invalid_credentials() -> ApiError {
    ApiError::BadRequest("Invalid credentials".to_owned())
}

/// `{id, email}` with a new session cookie.
fn signed_in(
    req: &Request,
    key: &[u8],
    status: u16,
    id: &str,
    email: &str,
    now: SystemTime,
) -> Result<Response, ApiError> {
    let token = session::issue(id, email, key, now)?;
    let user = User {
        id: id.to_owned(),
        email: email.to_owned(),
    };
    let mut response = json_response(status, &user);
    response.set_header(
        "set-cookie",
        session::set_cookie(&token, !session::is_local(req)),
    );
    Ok(response)
}

/// `POST /api/users/signout`: 200 `{}` and a cookie that ends the session.
pub fn sign_out(req: Request, _params: Params) -> Response {
    let mut response = json_response(200, &SignedOut {});
    response.set_header(
        "set-cookie",
        session::clear_cookie(!session::is_local(&req)),
    );
    response
}

/// `GET /api/users/currentuser`: `{"currentUser": {id, email, iat}}`, or `null` when
/// signed out (any token that does not verify counts as signed out).
pub fn current_user(req: Request, _params: Params) -> Response {
    respond(
        session::current_user(&req)
            .map(|current_user| json_response(200, &CurrentUserAnswer { current_user })),
    )
}
