//! Request bodies: a JSON object whose fields the service's rules read one by one, so a
//! missing or mistyped field fails its own rule (with its field) instead of the request.

use serde_json::{Map, Value};
use spin_sdk::http::Request;

use crate::ApiError;

/// The body of a JSON request: always an object.
#[derive(Debug)]
pub struct JsonBody(Map<String, Value>);

impl JsonBody {
    /// 400 `Request body must be JSON` unless the content type is JSON and the body a
    /// JSON object.
    pub fn parse(request: &Request) -> Result<JsonBody, ApiError> {
        let content_type = request
            .header("content-type")
            .and_then(|value| value.as_str());
        JsonBody::from_parts(content_type, request.body())
    }

    /// [`JsonBody::parse`] on a content type and the bytes of a body.
    pub fn from_parts(content_type: Option<&str>, body: &[u8]) -> Result<JsonBody, ApiError> {
        let not_json = || ApiError::BadRequest("Request body must be JSON".to_owned());
        if !content_type.is_some_and(is_json) {
            return Err(not_json());
        }
        match serde_json::from_slice(body) {
            Ok(Value::Object(fields)) => Ok(JsonBody(fields)),
            _ => Err(not_json()),
        }
    }

    /// The field, when it is a string.
    pub fn str(&self, field: &str) -> Option<&str> {
        self.0.get(field).and_then(Value::as_str)
    }

    /// The field as sent, whatever its type.
    pub fn value(&self, field: &str) -> Option<&Value> {
        self.0.get(field)
    }
}

/// `application/json`, with or without parameters (`; charset=utf-8`), any case.
fn is_json(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    essence.eq_ignore_ascii_case("application/json")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(content_type: Option<&str>, body: &str) -> Result<JsonBody, ApiError> {
        JsonBody::from_parts(content_type, body.as_bytes())
    }

    fn is_not_json(result: Result<JsonBody, ApiError>) -> bool {
        matches!(result, Err(ApiError::BadRequest(message)) if message == "Request body must be JSON")
    }

    #[test]
    fn reads_the_fields_of_a_json_object() {
        let body = parse(Some("application/json"), r#"{"email":"a@b.co","n":5}"#).unwrap();
        assert_eq!(body.str("email"), Some("a@b.co"));
        assert_eq!(body.str("n"), None, "a number is not a string");
        assert_eq!(body.value("n"), Some(&Value::from(5)));
        assert_eq!(body.str("missing"), None);
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
