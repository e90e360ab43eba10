//! Every body of the HTTP API (docs/API.md), each defined once: the services write the
//! answers and read the requests, the web app does the opposite, the bench's native
//! server does what the services do.
//!
//! A request body is generic over its fields' type: a client fills it with what it
//! sends (`Credentials<&str>`, `String` by default), a service reads it as
//! `Credentials<Sent>`, each field as the client sent it, so that the field's own rule
//! reports what is wrong with it (API.md: one entry per failed rule, with its field)
//! instead of the parser refusing the whole body.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::events::OrderStatus;
use crate::price::Price;

/// One failed rule: `{"message": "...", "field": "..."}` (`field` only for validation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorEntry {
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// The error body of every failure: `{"errors": [...]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub errors: Vec<ErrorEntry>,
}

/// What a service reads of a request field: the JSON the client sent there, or
/// nothing (absent or `null`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(transparent)]
pub struct Sent(Option<Value>);

impl Sent {
    /// The field, when it is a string.
    pub fn str(&self) -> Option<&str> {
        self.0.as_ref().and_then(Value::as_str)
    }

    /// The field, whatever its type.
    pub fn value(&self) -> Option<&Value> {
        self.0.as_ref()
    }
}

// auth, `/api/users`

/// `POST /api/users/signup` and `POST /api/users/signin`: `{email, password}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound(deserialize = "T: Deserialize<'de> + Default"))]
pub struct Credentials<T = String> {
    #[serde(default)]
    pub email: T,
    #[serde(default)]
    pub password: T,
}

/// The answer to signing up or in: `{id, email}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: String,
    pub email: String,
}

/// The signed-in user as `currentUser` shows it: `{id, email, iat}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CurrentUser {
    pub id: String,
    pub email: String,
    /// When the session was issued, seconds since the epoch.
    pub iat: u64,
}

/// `GET /api/users/currentuser`: `{"currentUser": {id, email, iat}}`, or
/// `{"currentUser": null}` when signed out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CurrentUserAnswer {
    pub current_user: Option<CurrentUser>,
}

/// `POST /api/users/signout`: `{}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedOut {}

// tickets, `/api/tickets`

/// `POST /api/tickets` and `PUT /api/tickets/:id`: `{title, price}` (a price may be
/// sent as a number or as a numeric string).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound(deserialize = "T: Deserialize<'de> + Default"))]
pub struct TicketForm<T = String> {
    #[serde(default)]
    pub title: T,
    #[serde(default)]
    pub price: T,
}

/// A ticket: `{id, title, price, userId, version, orderId?}` (`orderId` only while an
/// order reserves it). `GET /api/tickets` answers a list of them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Ticket {
    pub id: String,
    pub title: String,
    pub price: Price,
    pub user_id: String,
    pub version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_id: Option<String>,
}

// orders, `/api/orders`

/// `POST /api/orders`: `{ticketId}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[serde(bound(deserialize = "T: Deserialize<'de> + Default"))]
pub struct NewOrder<T = String> {
    #[serde(default)]
    pub ticket_id: T,
}

/// An order: `{id, userId, status, expiresAt, version, ticket}`. `GET /api/orders`
/// answers a list of them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Order {
    pub id: String,
    pub user_id: String,
    pub status: OrderStatus,
    /// ISO-8601 UTC: creation + the payment window.
    pub expires_at: String,
    pub version: u32,
    pub ticket: OrderTicket,
}

/// The ticket an order shows: `{id, title, price, version}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderTicket {
    pub id: String,
    pub title: String,
    pub price: Price,
    pub version: u32,
}

// payments, `/api/payments`

/// `POST /api/payments`: `{token, orderId}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[serde(bound(deserialize = "T: Deserialize<'de> + Default"))]
pub struct NewPayment<T = String> {
    #[serde(default)]
    pub token: T,
    #[serde(default)]
    pub order_id: T,
}

/// The answer to a payment: `{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payment {
    pub id: String,
}

/// `GET /api/payments/config`: `{provider, publishableKey?}` (the key only with Stripe,
/// and when it is set).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentsConfig {
    pub provider: Provider,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publishable_key: Option<String>,
}

/// Which provider payments charge through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    Stripe,
    /// Local, offline: Stripe's test tokens, and no money moves.
    Sandbox,
    /// No provider is configured: payments refuse every payment (503).
    None,
}

impl Provider {
    /// The name as JSON writes it, for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Stripe => "stripe",
            Provider::Sandbox => "sandbox",
            Provider::None => "none",
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn text(body: &impl Serialize) -> String {
        serde_json::to_string(body).unwrap()
    }

    #[test]
    fn answers_have_api_md_s_keys_in_order() {
        let ticket = Ticket {
            id: "t1".into(),
            title: "concert".into(),
            price: Price::from_cents(2050).unwrap(),
            user_id: "u1".into(),
            version: 0,
            order_id: None,
        };
        assert_eq!(
            text(&ticket),
            r#"{"id":"t1","title":"concert","price":20.5,"userId":"u1","version":0}"#
        );
        let reserved = Ticket {
            order_id: Some("o1".into()),
            ..ticket
        };
        assert!(text(&reserved).ends_with(r#","orderId":"o1"}"#));
        let order = Order {
            id: "o1".into(),
            user_id: "u1".into(),
            status: OrderStatus::AwaitingPayment,
            expires_at: "2026-12-03T12:15:00.000Z".into(),
            version: 0,
            ticket: OrderTicket {
                id: "t1".into(),
                title: "concert".into(),
                price: Price::from_cents(2000).unwrap(),
                version: 3,
            },
        };
        assert_eq!(
            text(&order),
            r#"{"id":"o1","userId":"u1","status":"awaiting:payment","expiresAt":"2026-12-03T12:15:00.000Z","version":0,"ticket":{"id":"t1","title":"concert","price":20,"version":3}}"#
        );
        assert_eq!(text(&SignedOut {}), "{}");
        assert_eq!(
            text(&CurrentUserAnswer { current_user: None }),
            r#"{"currentUser":null}"#
        );
        assert_eq!(
            text(&PaymentsConfig {
                provider: Provider::None,
                publishable_key: None
            }),
            r#"{"provider":"none"}"#
        );
        let stripe = r#"{"provider":"stripe","publishableKey":"pk_test_1"}"#;
        let config: PaymentsConfig = serde_json::from_str(stripe).unwrap();
        assert_eq!(config.provider, Provider::Stripe);
        assert_eq!(text(&config), stripe);
        assert_eq!(
            text(&ErrorBody {
                errors: vec![ErrorEntry {
                    message: "Not Found".into(),
                    field: None
                }]
            }),
            r#"{"errors":[{"message":"Not Found"}]}"#
        );
    }

    #[test]
    fn a_service_reads_each_request_field_as_sent() {
        let sent: TicketForm<Sent> =
            serde_json::from_value(json!({"title": 5, "price": "12.5", "extra": 1})).unwrap();
        assert_eq!(sent.title.str(), None);
        assert_eq!(sent.title.value(), Some(&json!(5)));
        assert_eq!(sent.price.str(), Some("12.5"));
        let missing: NewPayment<Sent> = serde_json::from_value(json!({"token": null})).unwrap();
        assert_eq!(missing.token, Sent::default());
        assert_eq!(missing.order_id.value(), None);
    }

    #[test]
    fn a_client_sends_the_fields_api_md_names() {
        let payment = NewPayment {
            token: "tok_visa",
            order_id: "o1",
        };
        assert_eq!(text(&payment), r#"{"token":"tok_visa","orderId":"o1"}"#);
        assert_eq!(text(&NewOrder { ticket_id: "t1" }), r#"{"ticketId":"t1"}"#);
        assert_eq!(
            text(&Credentials {
                email: "a@b.co",
                password: "pw"
            }),
            r#"{"email":"a@b.co","password":"pw"}"#
        );
    }
}
