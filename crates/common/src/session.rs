//! Sessions (API.md, "Session"): an HS256 JWT `{id, email, iat, exp}` in the HttpOnly
//! cookie `session`, signed with the Spin variable `jwt_key`. Every service verifies it
//! itself; anything that does not verify counts as signed out.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, anyhow};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use spin_sdk::http::Request;

use crate::ApiError;

pub const COOKIE: &str = "session";
/// How long a session lasts from sign-up or sign-in.
pub const LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);

/// The claims of a session token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub id: String,
    pub email: String,
    /// Issued at, seconds since the epoch.
    pub iat: u64,
    /// Expires at, seconds since the epoch.
    pub exp: u64,
}

pub use contract::http::CurrentUser;

impl From<Claims> for CurrentUser {
    fn from(claims: Claims) -> Self {
        CurrentUser {
            id: claims.id,
            email: claims.email,
            iat: claims.iat,
        }
    }
}

/// A session token for the user, valid for [`LIFETIME`] from `now`.
pub fn issue(id: &str, email: &str, key: &[u8], now: SystemTime) -> anyhow::Result<String> {
    let iat = now.duration_since(UNIX_EPOCH)?.as_secs();
    let claims = Claims {
        id: id.to_owned(),
        email: email.to_owned(),
        iat,
        exp: iat + LIFETIME.as_secs(),
    };
    let key = EncodingKey::from_secret(key).context("an empty signing key")?;
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &key)
        .context("signing a session token")
}

/// The claims of a token signed with `key` by HS256 and not expired at `now`; `None`
/// for anything else (tampered, expired, `alg: none`, another algorithm or key,
/// garbage).
pub fn verify(token: &str, key: &[u8], now: SystemTime) -> Option<Claims> {
    let mut validation = Validation::new(Algorithm::HS256);
    // `exp` is checked below against `now` (the services' one clock), not the library's
    // own reading of the time; a token is over once its `exp` has passed.
    validation.validate_exp = false;
    validation.set_required_spec_claims(&["exp"]);
    let key = DecodingKey::from_secret(key).ok()?;
    let claims = jsonwebtoken::decode::<Claims>(token, &key, &validation)
        .ok()?
        .claims;
    let now = now.duration_since(UNIX_EPOCH).ok()?.as_secs();
    (claims.exp >= now).then_some(claims)
}

/// The `session` cookie's value in a `Cookie` header, if there is one.
pub fn cookie_value(cookie_header: &str) -> Option<&str> {
    cookie_header
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim())
}

/// `Set-Cookie` for a new session. `Secure` unless the app is served on a loopback host.
pub fn set_cookie(token: &str, secure: bool) -> String {
    cookie(token, &format!("Max-Age={}", LIFETIME.as_secs()), secure)
}

/// `Set-Cookie` that ends the session: empty, expired in 1970.
pub fn clear_cookie(secure: bool) -> String {
    cookie("", "Expires=Thu, 01 Jan 1970 00:00:00 GMT", secure)
}

fn cookie(value: &str, lifetime: &str, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{COOKIE}={value}; Path=/; HttpOnly; SameSite=Lax; {lifetime}{secure}")
}

/// Whether the request reached the app under a loopback name (local development), where
/// cookies cannot be `Secure`: browsers and curl would not send them back over http.
pub fn is_local(request: &Request) -> bool {
    // Spin and the host put the request's Host into the URI's authority (WASI HTTP
    // hands no `host` header to the component).
    let authority = request
        .uri()
        .split_once("://")
        .map(|(_scheme, rest)| rest.split('/').next().unwrap_or_default());
    let host = authority
        .or_else(|| request.header("host").and_then(|value| value.as_str()))
        .unwrap_or_default();
    is_loopback_host(host)
}

fn is_loopback_host(host: &str) -> bool {
    // Strip the port: "[::1]:3000", "127.0.0.1:3000", "localhost:3000".
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').map_or(host, |(name, _port)| name),
    };
    let name = name.to_ascii_lowercase();
    name == "localhost"
        || name.ends_with(".localhost")
        || name == "::1"
        || name
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The signing key: the Spin variable `jwt_key`, which must not be empty.
pub fn key() -> Result<Vec<u8>, ApiError> {
    let key = spin_sdk::variables::get("jwt_key")
        .map_err(|err| anyhow!("reading the variable jwt_key: {err}"))?;
    if key.is_empty() {
        return Err(anyhow!("the variable jwt_key is empty: set SPIN_VARIABLE_JWT_KEY").into());
    }
    Ok(key.into_bytes())
}

/// The signed-in user of the request, or `None` when it has no valid session.
pub fn current_user(request: &Request) -> Result<Option<CurrentUser>, ApiError> {
    let Some(token) = request
        .header("cookie")
        .and_then(|value| value.as_str())
        .and_then(cookie_value)
    else {
        return Ok(None);
    };
    Ok(verify(token, &key()?, crate::clock::now()).map(CurrentUser::from))
}

/// The signed-in user, or 401 `Not authorized`.
pub fn require_auth(request: &Request) -> Result<CurrentUser, ApiError> {
    current_user(request)?.ok_or(ApiError::NotAuthorized)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"a key only these tests know";

    #[test]
    fn a_token_verifies_with_its_key_only() {
        let now = SystemTime::now();
        let token = issue("u1", "a@b.co", KEY, now).unwrap();
        let claims = verify(&token, KEY, now).expect("valid");
        assert_eq!(
            (claims.id.as_str(), claims.email.as_str()),
            ("u1", "a@b.co")
        );
        assert_eq!(claims.exp - claims.iat, LIFETIME.as_secs());
        assert_eq!(verify(&token, b"another key", now), None);
    }

    #[test]
    fn expired_tampered_and_garbage_tokens_do_not_verify() {
        let now = SystemTime::now();
        let long_ago = now - LIFETIME - Duration::from_secs(1);
        let expired = issue("u1", "a@b.co", KEY, long_ago).unwrap();
        assert_eq!(verify(&expired, KEY, now), None);

        let token = issue("u1", "a@b.co", KEY, now).unwrap();
        let mut tampered = token.clone();
        tampered.insert(token.find('.').unwrap() + 2, 'x');
        assert_eq!(verify(&tampered, KEY, now), None);
        assert_eq!(verify("not.a.token", KEY, now), None);
        assert_eq!(verify("", KEY, now), None);
    }

    #[test]
    fn a_token_is_valid_until_the_second_of_its_exp_on_the_given_clock() {
        let issued = UNIX_EPOCH + Duration::from_secs(1_795_428_900);
        let token = issue("u1", "a@b.co", KEY, issued).unwrap();
        let last = issued + LIFETIME;
        assert!(verify(&token, KEY, last).is_some());
        assert_eq!(verify(&token, KEY, last + Duration::from_secs(1)), None);
        assert!(
            verify(&token, KEY, issued).is_some(),
            "the clock given, not the machine's"
        );
    }

    #[test]
    fn finds_the_session_among_other_cookies() {
        assert_eq!(cookie_value("session=abc"), Some("abc"));
        assert_eq!(cookie_value("theme=dark; session=abc; x=1"), Some("abc"));
        assert_eq!(cookie_value("mysession=abc"), None);
        assert_eq!(cookie_value(""), None);
    }

    #[test]
    fn cookies_carry_the_attributes_api_md_asks_for() {
        assert_eq!(
            set_cookie("t", true),
            "session=t; Path=/; HttpOnly; SameSite=Lax; Max-Age=86400; Secure"
        );
        assert_eq!(
            set_cookie("t", false),
            "session=t; Path=/; HttpOnly; SameSite=Lax; Max-Age=86400"
        );
        assert!(clear_cookie(false).starts_with("session=; "));
        assert!(clear_cookie(false).contains("Expires=Thu, 01 Jan 1970 00:00:00 GMT"));
    }

    #[test]
    fn loopback_hosts_are_local_development() {
        for host in [
            "localhost:3000",
            "127.0.0.1:3000",
            "127.0.0.1",
            "[::1]:3000",
            "app.localhost",
        ] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in [
            "tickets.example.com",
            "10.0.0.1:80",
            "localhost.example.com",
            "",
        ] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }
}
