//! The same-origin API (docs/API.md): one function per call, with the bodies of the
//! `contract` crate (the services' own). The session cookie travels by itself (same
//! origin); every answer that is not a success becomes an `ApiError`, whatever its
//! body, so no page can panic on one.

use contract::http::{
    Credentials, CurrentUserAnswer, ErrorBody, NewOrder, NewPayment, Payment, SignedOut, TicketForm,
};
use gloo_net::http::{Request, RequestBuilder, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use contract::http::{ErrorEntry, Order, PaymentsConfig, Provider, Ticket, User};
pub use contract::{OrderStatus, Price};

/// Still waiting for its payment (or its deadline).
pub fn is_open(order: &Order) -> bool {
    match order.status {
        OrderStatus::Created | OrderStatus::AwaitingPayment => true,
        OrderStatus::Cancelled | OrderStatus::Complete => false,
    }
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
    match serde_json::from_str::<ErrorBody>(text) {
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

pub async fn current_user() -> ApiResult<Option<User>> {
    let answer: CurrentUserAnswer = send(Request::get("/api/users/currentuser").build()).await?;
    Ok(answer.current_user.map(|user| User {
        id: user.id,
        email: user.email,
    }))
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
    let _: Option<SignedOut> = send(Request::post("/api/users/signout").build()).await?;
    Ok(())
}

pub async fn tickets() -> ApiResult<Vec<Ticket>> {
    send(Request::get("/api/tickets").build()).await
}

pub async fn ticket(id: &str) -> ApiResult<Ticket> {
    send(Request::get(&format!("/api/tickets/{}", encode(id))).build()).await
}

pub async fn create_ticket(title: &str, price: &str) -> ApiResult<Ticket> {
    send(json(
        Request::post("/api/tickets"),
        &TicketForm { title, price },
    ))
    .await
}

/// Orders the ticket, in a new trace that the order's payment joins ([`pay`]).
pub async fn create_order(ticket_id: &str) -> ApiResult<Order> {
    let trace_id = purchase_trace::new_trace_id();
    let order: Order = send(json(
        Request::post("/api/orders").header("traceparent", &purchase_trace::traceparent(&trace_id)),
        &NewOrder { ticket_id },
    ))
    .await?;
    purchase_trace::remember(&order.id, &trace_id);
    Ok(order)
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

/// Pays for the order, in the order's trace when this tab placed it; the payment's id.
pub async fn pay(order_id: &str, token: &str) -> ApiResult<String> {
    let mut request = Request::post("/api/payments");
    if let Some(trace_id) = purchase_trace::of_order(order_id) {
        request = request.header("traceparent", &purchase_trace::traceparent(&trace_id));
    }
    let payment: Payment = send(json(request, &NewPayment { token, order_id })).await?;
    Ok(payment.id)
}

/// One trace per purchase: the order and its payment are sent with a W3C `traceparent`
/// of the same trace id, so the services' spans and events of a purchase (docs/tracing.md)
/// are one trace. The trace id is kept per order for the tab's session; an order paid
/// from elsewhere is paid in a trace of its own.
mod purchase_trace {
    const KEY_PREFIX: &str = "trace:order:";

    /// 16 random bytes, hex (the browser's `crypto`, else `Math.random`).
    pub fn new_trace_id() -> String {
        random_hex::<16>()
    }

    /// A `traceparent` in `trace_id`, with a new parent id: the request's own span.
    pub fn traceparent(trace_id: &str) -> String {
        format!("00-{trace_id}-{}-01", random_hex::<8>())
    }

    pub fn remember(order_id: &str, trace_id: &str) {
        if let Some(storage) = session_storage() {
            let _ = storage.set_item(&format!("{KEY_PREFIX}{order_id}"), trace_id);
        }
    }

    pub fn of_order(order_id: &str) -> Option<String> {
        session_storage()?
            .get_item(&format!("{KEY_PREFIX}{order_id}"))
            .ok()
            .flatten()
            .filter(|id| id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()))
    }

    fn session_storage() -> Option<web_sys::Storage> {
        web_sys::window()?.session_storage().ok().flatten()
    }

    fn random_hex<const N: usize>() -> String {
        let mut bytes = [0u8; N];
        let filled = web_sys::window()
            .and_then(|window| window.crypto().ok())
            .is_some_and(|crypto| crypto.get_random_values_with_u8_array(&mut bytes).is_ok());
        if !filled {
            for byte in &mut bytes {
                *byte = (js_sys::Math::random() * 256.0) as u8;
            }
        }
        // All-zero ids are invalid.
        bytes[N - 1] |= 1;
        bytes.iter().map(|byte| format!("{byte:02x}")).collect()
    }
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
        let _: Option<SignedOut> = answer(204, "").unwrap();
        let _: Option<SignedOut> = answer(200, "{}").unwrap();
        let ticket: Ticket = answer(
            200,
            r#"{"id":"t","title":"x","price":20.5,"userId":"u","version":0}"#,
        )
        .unwrap();
        assert_eq!(ticket.order_id, None);
        assert_eq!(ticket.price.cents(), 2050);
        let order: Order = answer(
            200,
            r#"{"id":"o","userId":"u","status":"awaiting:payment","expiresAt":"2026-12-03T12:15:00.000Z","version":0,"ticket":{"id":"t","title":"x","price":0.29,"version":1}}"#,
        )
        .unwrap();
        assert!(is_open(&order));
        assert_eq!(order.ticket.price.cents(), 29);
        let garbled = answer::<User>(200, "<html>").unwrap_err();
        assert_eq!(
            garbled.general_messages(),
            ["The server's answer could not be read."]
        );
    }

    #[test]
    fn the_payments_config_says_which_provider_charges() {
        let sandbox: PaymentsConfig = answer(200, r#"{"provider":"sandbox"}"#).unwrap();
        assert_eq!(sandbox.provider, Provider::Sandbox);
        let stripe: PaymentsConfig =
            answer(200, r#"{"provider":"stripe","publishableKey":"pk_test_1"}"#).unwrap();
        assert_eq!(stripe.provider, Provider::Stripe);
        assert_eq!(stripe.publishable_key.as_deref(), Some("pk_test_1"));
        let none: PaymentsConfig = answer(200, r#"{"provider":"none"}"#).unwrap();
        assert_eq!(none.provider, Provider::None);
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
