//! The same-origin API (docs/API.md): its JSON shapes, and one function per call. The
//! session cookie travels by itself (same origin); every answer that is not a success
//! becomes an `ApiError`, whatever its body, so no page can panic on one.

use gloo_net::http::{Request, RequestBuilder, Response};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct User {
    pub id: String,
    pub email: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Ticket {
    pub id: String,
    pub title: String,
    pub price: f64,
    #[serde(rename = "userId")]
    pub user_id: String,
    pub version: u32,
    #[serde(rename = "orderId", default)]
    pub order_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct OrderedTicket {
    pub id: String,
    pub title: String,
    pub price: f64,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Order {
    pub id: String,
    pub status: String,
    #[serde(rename = "expiresAt")]
    pub expires_at: String,
    pub ticket: OrderedTicket,
}

impl Order {
    /// Still waiting for its payment (or its deadline).
    pub fn is_open(&self) -> bool {
        matches!(self.status.as_str(), "created" | "awaiting:payment")
    }
}

/// Which provider payments charge through: `stripe`, `sandbox`, or `none` (payments are
/// not configured and refuse every payment).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct PaymentsConfig {
    pub provider: String,
    #[serde(rename = "publishableKey", default)]
    pub publishable_key: Option<String>,
}

impl PaymentsConfig {
    /// The offline sandbox: Stripe's test tokens, and no money moves.
    pub fn is_sandbox(&self) -> bool {
        self.provider == "sandbox"
    }

    pub fn is_stripe(&self) -> bool {
        self.provider == "stripe"
    }
}

/// One failed rule, as the API reports it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ErrorEntry {
    pub message: String,
    #[serde(default)]
    pub field: Option<String>,
}

/// Why a call did not succeed: the API's errors, or a stand-in when there was no
/// readable answer.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: u16,
    pub errors: Vec<ErrorEntry>,
}

impl ApiError {
    /// A message of the app's own, shown like the API's.
    pub fn message(message: &str) -> ApiError {
        ApiError::general(0, message)
    }

    fn general(status: u16, message: &str) -> ApiError {
        ApiError {
            status,
            errors: vec![ErrorEntry {
                message: message.to_owned(),
                field: None,
            }],
        }
    }

    /// The message for `field`, if a rule on it failed.
    pub fn for_field(&self, field: &str) -> Option<&str> {
        self.errors
            .iter()
            .find(|entry| entry.field.as_deref() == Some(field))
            .map(|entry| entry.message.as_str())
    }

    /// The messages that belong to no field of a form.
    pub fn general_messages(&self) -> Vec<&str> {
        self.errors
            .iter()
            .filter(|entry| entry.field.is_none())
            .map(|entry| entry.message.as_str())
            .collect()
    }

    pub fn is_not_found(&self) -> bool {
        self.status == 404
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

async fn send<T: DeserializeOwned>(request: Result<Request, gloo_net::Error>) -> ApiResult<T> {
    let request = request.map_err(|_| ApiError::general(0, "The request could not be made."))?;
    let response = request.send().await.map_err(|_| {
        ApiError::general(0, "The server cannot be reached. Try again in a moment.")
    })?;
    read(response).await
}

async fn read<T: DeserializeOwned>(response: Response) -> ApiResult<T> {
    let text = response.text().await.unwrap_or_default();
    answer(response.status(), &text)
}

/// What an answer means: the value on a success, else the API's errors (or a general
/// message when the body holds none: a proxy's page, an empty 502).
fn answer<T: DeserializeOwned>(status: u16, text: &str) -> ApiResult<T> {
    if (200..300).contains(&status) {
        // 204 and `{}` answers are read as `null` where the caller expects `()`.
        let text = if text.trim().is_empty() { "null" } else { text };
        return serde_json::from_str(text)
            .map_err(|_| ApiError::general(status, "The server's answer could not be read."));
    }
    #[derive(Deserialize)]
    struct Errors {
        errors: Vec<ErrorEntry>,
    }
    match serde_json::from_str::<Errors>(text) {
        Ok(body) if !body.errors.is_empty() => Err(ApiError {
            status,
            errors: body.errors,
        }),
        _ => Err(ApiError::general(
            status,
            "Something went wrong. Try again in a moment.",
        )),
    }
}

fn json(builder: RequestBuilder, body: &impl Serialize) -> Result<Request, gloo_net::Error> {
    builder.json(body)
}

/// Unit answers (`{}`, 204) read as this.
#[derive(Debug, Deserialize)]
pub struct Nothing {}

#[derive(Deserialize)]
struct CurrentUserAnswer {
    #[serde(rename = "currentUser")]
    current_user: Option<User>,
}

pub async fn current_user() -> ApiResult<Option<User>> {
    let answer: CurrentUserAnswer = send(Request::get("/api/users/currentuser").build()).await?;
    Ok(answer.current_user)
}

#[derive(Serialize)]
struct Credentials<'a> {
    email: &'a str,
    password: &'a str,
}

pub async fn sign_up(email: &str, password: &str) -> ApiResult<User> {
    send(json(
        Request::post("/api/users/signup"),
        &Credentials { email, password },
    ))
    .await
}

pub async fn sign_in(email: &str, password: &str) -> ApiResult<User> {
    send(json(
        Request::post("/api/users/signin"),
        &Credentials { email, password },
    ))
    .await
}

pub async fn sign_out() -> ApiResult<()> {
    let _: Option<Nothing> = send(Request::post("/api/users/signout").build()).await?;
    Ok(())
}

pub async fn tickets() -> ApiResult<Vec<Ticket>> {
    send(Request::get("/api/tickets").build()).await
}

pub async fn ticket(id: &str) -> ApiResult<Ticket> {
    send(Request::get(&format!("/api/tickets/{}", encode(id))).build()).await
}

#[derive(Serialize)]
struct NewTicket<'a> {
    title: &'a str,
    price: &'a str,
}

pub async fn create_ticket(title: &str, price: &str) -> ApiResult<Ticket> {
    send(json(
        Request::post("/api/tickets"),
        &NewTicket { title, price },
    ))
    .await
}

#[derive(Serialize)]
struct NewOrder<'a> {
    #[serde(rename = "ticketId")]
    ticket_id: &'a str,
}

pub async fn create_order(ticket_id: &str) -> ApiResult<Order> {
    send(json(Request::post("/api/orders"), &NewOrder { ticket_id })).await
}

pub async fn orders() -> ApiResult<Vec<Order>> {
    send(Request::get("/api/orders").build()).await
}

pub async fn order(id: &str) -> ApiResult<Order> {
    send(Request::get(&format!("/api/orders/{}", encode(id))).build()).await
}

pub async fn payments_config() -> ApiResult<PaymentsConfig> {
    send(Request::get("/api/payments/config").build()).await
}

#[derive(Serialize)]
struct NewPayment<'a> {
    token: &'a str,
    #[serde(rename = "orderId")]
    order_id: &'a str,
}

#[derive(Debug, Deserialize)]
struct Payment {
    id: String,
}

/// Pays for the order; the payment's id.
pub async fn pay(order_id: &str, token: &str) -> ApiResult<String> {
    let payment: Payment = send(json(
        Request::post("/api/payments"),
        &NewPayment { token, order_id },
    ))
    .await?;
    Ok(payment.id)
}

/// An id from the address bar, safe inside a path.
fn encode(id: &str) -> String {
    js_sys::encode_uri_component(id).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn successes_are_read_and_unit_answers_are_nothing() {
        let user: User = answer(201, r#"{"id":"u1","email":"a@b.c"}"#).unwrap();
        assert_eq!(user.email, "a@b.c");
        let _: Option<Nothing> = answer(204, "").unwrap();
        let _: Option<Nothing> = answer(200, "{}").unwrap();
        let ticket: Ticket = answer(
            200,
            r#"{"id":"t","title":"x","price":20.5,"userId":"u","version":0}"#,
        )
        .unwrap();
        assert_eq!(ticket.order_id, None);
        let garbled = answer::<User>(200, "<html>").unwrap_err();
        assert_eq!(
            garbled.general_messages(),
            ["The server's answer could not be read."]
        );
    }

    #[test]
    fn the_payments_config_says_which_provider_charges() {
        let sandbox: PaymentsConfig = answer(200, r#"{"provider":"sandbox"}"#).unwrap();
        assert!(sandbox.is_sandbox() && !sandbox.is_stripe());
        let stripe: PaymentsConfig =
            answer(200, r#"{"provider":"stripe","publishableKey":"pk_test_1"}"#).unwrap();
        assert!(stripe.is_stripe() && !stripe.is_sandbox());
        assert_eq!(stripe.publishable_key.as_deref(), Some("pk_test_1"));
        let none: PaymentsConfig = answer(200, r#"{"provider":"none"}"#).unwrap();
        assert!(!none.is_stripe() && !none.is_sandbox());
    }

    #[test]
    fn failures_keep_the_apis_errors_by_field() {
        let error = answer::<User>(
            400,
            r#"{"errors":[{"message":"Email must be valid","field":"email"},{"message":"Email in use"}]}"#,
        )
        .unwrap_err();
        assert_eq!(error.status, 400);
        assert_eq!(error.for_field("email"), Some("Email must be valid"));
        assert_eq!(error.for_field("password"), None);
        assert_eq!(error.general_messages(), ["Email in use"]);
        let not_found = answer::<Ticket>(404, r#"{"errors":[{"message":"Not Found"}]}"#);
        assert!(not_found.unwrap_err().is_not_found());
    }

    #[test]
    fn any_other_failure_is_a_general_message_never_a_panic() {
        for (status, body) in [
            (500, ""),
            (502, "<html>Bad gateway</html>"),
            (400, "{\"errors\":[]}"),
            (413, "null"),
        ] {
            let error = answer::<User>(status, body).unwrap_err();
            assert_eq!(error.status, status);
            assert_eq!(
                error.general_messages(),
                ["Something went wrong. Try again in a moment."]
            );
        }
    }
}
