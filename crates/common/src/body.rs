//! Request bodies: a JSON object read into one of `contract::http`'s request types,
//! with `contract::http::Sent` fields for a service, so that a missing or mistyped
//! field fails its own rule (with its field) instead of the request.

use serde::de::DeserializeOwned;
use serde_json::Value;
use spin_sdk::http::Request;

use crate::ApiError;

/// The request's body as `T`: 400 `Request body must be JSON` unless the content type
/// is JSON and the body a JSON object (that `T` reads: with `Sent` fields, any object).
pub fn json_body<T: DeserializeOwned>(request: &Request) -> Result<T, ApiError> {
    let content_type = request
        .header("content-type")
        .and_then(|value| value.as_str());
    json_body_from(content_type, request.body())
}

/// [`json_body`] on a content type and the bytes of a body.
pub fn json_body_from<T: DeserializeOwned>(
    content_type: Option<&str>,
    body: &[u8],
) -> Result<T, ApiError> {
    let not_json = || ApiError::BadRequest("Request body must be JSON".to_owned());
    if !content_type.is_some_and(is_json) {
        return Err(not_json());
    }
    // Parsed as a `Value` first: an object's repeated key is the last one, as it was
    // when the fields were read from a map, where a struct would refuse the body.
    match serde_json::from_slice(body) {
        Ok(object @ Value::Object(_)) => serde_json::from_value(object).map_err(|_| not_json()),
        _ => Err(not_json()),
    }
}

/// `application/json`, with or without parameters (`; charset=utf-8`), any case.
fn is_json(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    essence.eq_ignore_ascii_case("application/json")
}

#[cfg(test)]
mod tests {
    use contract::http::{Credentials, Sent};

    use super::*;

    fn parse(content_type: Option<&str>, body: &str) -> Result<Credentials<Sent>, ApiError> {
        json_body_from(content_type, body.as_bytes())
    }

    fn is_not_json(result: Result<Credentials<Sent>, ApiError>) -> bool {
        matches!(result, Err(ApiError::BadRequest(message)) if message == "Request body must be JSON")
    }

    #[test]
    fn reads_the_fields_of_a_json_object() {
        let body = parse(
            Some("application/json"),
            r#"{"email":"a@b.co","password":5}"#,
        )
        .unwrap();
        assert_eq!(body.email.str(), Some("a@b.co"));
        assert_eq!(body.password.str(), None, "a number is not a string");
        assert_eq!(body.password.value(), Some(&Value::from(5)));
        let empty = parse(Some("application/json"), "{}").unwrap();
        assert_eq!(empty.email.str(), None);
        let repeated = parse(Some("application/json"), r#"{"email":"a","email":"b"}"#).unwrap();
        assert_eq!(repeated.email.str(), Some("b"));
    }

    #[test]
    fn accepts_json_content_types_with_parameters_in_any_case() {
        for content_type in ["application/json; charset=utf-8", "Application/JSON"] {
            assert!(parse(Some(content_type), "{}").is_ok(), "{content_type}");
        }
    }

    #[test]
    fn refuses_what_is_not_a_json_object() {
        assert!(is_not_json(parse(Some("application/json"), "email=a@b.co")));
        assert!(is_not_json(parse(Some("application/json"), "")));
        assert!(is_not_json(parse(Some("application/json"), "[1, 2]")));
        assert!(is_not_json(parse(Some("application/json"), "\"text\"")));
        assert!(is_not_json(parse(Some("text/plain"), "{}")));
        assert!(is_not_json(parse(Some("application/jsonx"), "{}")));
        assert!(is_not_json(parse(None, "{}")));
    }
}
