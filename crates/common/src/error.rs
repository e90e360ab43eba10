//! `ApiError`: every failure a client can see, with API.md's status and body.

use contract::http::{ErrorBody, ErrorEntry};
use spin_sdk::http::Response;

/// A failure as the API reports it (API.md, "Errors").
#[derive(Debug)]
pub enum ApiError {
    /// 400 with one entry per failed rule, in rule order.
    Validation(Vec<ErrorEntry>),
    /// 400: a business rule said no (`Email in use`, `Ticket is already reserved`).
    BadRequest(String),
    /// 401: not signed in, or not the owner.
    NotAuthorized,
    /// 404: unknown route, unknown or malformed id.
    NotFound,
    /// 413: a body over 64 KiB.
    PayloadTooLarge,
    /// 503: the service cannot do this until it is set up (payments without a
    /// provider); the message says what, the log says why.
    Unavailable(String),
    /// 500: storage down or a bug. The detail goes to the log, never to the client.
    Internal(anyhow::Error),
}

impl ApiError {
    pub fn status(&self) -> u16 {
        match self {
            ApiError::Validation(_) | ApiError::BadRequest(_) => 400,
            ApiError::NotAuthorized => 401,
            ApiError::NotFound => 404,
            ApiError::PayloadTooLarge => 413,
            ApiError::Internal(_) => 500,
            ApiError::Unavailable(_) => 503,
        }
    }

    pub fn body(&self) -> ErrorBody {
        let message = |text: &str| ErrorEntry {
            message: text.to_owned(),
            field: None,
        };
        let errors = match self {
            ApiError::Validation(entries) => entries.clone(),
            ApiError::BadRequest(text) | ApiError::Unavailable(text) => vec![message(text)],
            ApiError::NotAuthorized => vec![message("Not authorized")],
            ApiError::NotFound => vec![message("Not Found")],
            ApiError::PayloadTooLarge => vec![message("Request body is too large")],
            ApiError::Internal(_) => vec![message("Something went wrong")],
        };
        ErrorBody { errors }
    }

    pub fn into_response(self) -> Response {
        if let ApiError::Internal(detail) = &self {
            crate::log!("internal error: {detail:#}");
        }
        crate::json_response(self.status(), &self.body())
    }
}

/// For logs: the detail of an internal error, the messages of the others.
impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApiError::Internal(detail) => write!(f, "{detail:#}"),
            other => {
                let messages: Vec<String> = other
                    .body()
                    .errors
                    .into_iter()
                    .map(|entry| entry.message)
                    .collect();
                write!(f, "{} {}", other.status(), messages.join("; "))
            }
        }
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(err: anyhow::Error) -> Self {
        ApiError::Internal(err)
    }
}

impl From<spin_sdk::sqlite::Error> for ApiError {
    fn from(err: spin_sdk::sqlite::Error) -> Self {
        ApiError::Internal(anyhow::anyhow!("sqlite: {err:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(err: &ApiError) -> String {
        serde_json::to_string(&err.body()).unwrap()
    }

    #[test]
    fn validation_lists_every_rule_with_its_field() {
        let err = ApiError::Validation(vec![
            ErrorEntry {
                message: "Email must be valid".into(),
                field: Some("email".into()),
            },
            ErrorEntry {
                message: "Password must be between 4 and 20 characters".into(),
                field: Some("password".into()),
            },
        ]);
        assert_eq!(err.status(), 400);
        assert_eq!(
            json(&err),
            r#"{"errors":[{"message":"Email must be valid","field":"email"},{"message":"Password must be between 4 and 20 characters","field":"password"}]}"#
        );
    }

    #[test]
    fn fixed_messages_have_no_field() {
        let cases = [
            (
                ApiError::BadRequest("Email in use".into()),
                400,
                "Email in use",
            ),
            (ApiError::NotAuthorized, 401, "Not authorized"),
            (ApiError::NotFound, 404, "Not Found"),
            (ApiError::PayloadTooLarge, 413, "Request body is too large"),
            (
                ApiError::Unavailable("Payments are not configured".into()),
                503,
                "Payments are not configured",
            ),
        ];
        for (err, status, message) in cases {
            assert_eq!(err.status(), status);
            assert_eq!(
                json(&err),
                format!(r#"{{"errors":[{{"message":"{message}"}}]}}"#)
            );
        }
    }

    #[test]
    fn internal_errors_never_show_their_detail() {
        let err = ApiError::from(anyhow::anyhow!("disk I/O error at /var/secret.db"));
        assert_eq!(err.status(), 500);
        assert_eq!(
            json(&err),
            r#"{"errors":[{"message":"Something went wrong"}]}"#
        );
    }
}
