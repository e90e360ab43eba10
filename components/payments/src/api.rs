//! Thin HTTP handlers of the payments service (API.md, "payments").

use common::{ApiError, Validator, json_response, respond, session};
use contract::http::{NewPayment, Payment, PaymentsConfig, Provider, Sent};
use spin_sdk::http::{Params, Request, Response};

use crate::charges::{self, Outcome, Sender};
use crate::db;
use crate::domain::{self, PaymentStatus};
use crate::provider;
use crate::refunds;

/// `POST /api/payments` `{token, orderId}`: 201 `{id}`, the order's price charged once;
/// publishes `payment:created`. 503 while no provider is configured.
///
/// No charge without a record (`charges`): the pending payment is committed before the
/// provider is called, and the provider's answer then completes it (with the event) or,
/// on a decline, deletes it. An answer that never came leaves it pending (500): the
/// next request for the order, or a wake of the bus, re-sends the same attempt with the
/// same idempotency key.
pub fn create(req: Request, _params: Params) -> Response {
    respond(try_create(&req))
}

fn try_create(req: &Request) -> Result<Response, ApiError> {
    let user = session::require_auth(req)?;
    // Before anything is read or stored: without a provider nothing can be paid.
    let provider = provider::configured()?.ok_or_else(provider::not_configured)?;
    let body: NewPayment<Sent> = common::json_body(req)?;
    let mut rules = Validator::new();
    let token = rules.field("token", required(body.token.str(), "Token is required"));
    let order_id = rules.field(
        "orderId",
        required(body.order_id.str(), "OrderId is required"),
    );
    let (Some(token), Some(order_id)) = (token, order_id) else {
        return Err(rules.into_error());
    };
    let conn = db::open()?;
    let payment = charges::begin(&conn, &user.id, order_id, token)?;
    match charges::send(&conn, provider.as_ref(), &payment, Sender::Buyer)? {
        Outcome::Charged(PaymentStatus::Succeeded) => Ok(json_response(
            201,
            &Payment {
                id: payment.id.clone(),
            },
        )),
        Outcome::Charged(PaymentStatus::RefundDue | PaymentStatus::Refunded) => {
            refunds::settle_logged();
            Err(domain::cancelled())
        }
        Outcome::Charged(PaymentStatus::Pending) => {
            Err(anyhow::anyhow!("payment {} is pending after its charge", payment.id).into())
        }
        Outcome::Declined(message) => Err(ApiError::BadRequest(message)),
        Outcome::Open(said) => Err(anyhow::anyhow!(
            "the charge of payment {} stays pending: {said}",
            payment.id
        )
        .into()),
    }
}

fn required<'a>(value: Option<&'a str>, message: &'static str) -> Result<&'a str, &'static str> {
    value
        .map(str::trim)
        .filter(|value| !value.is_empty())
        .ok_or(message)
}

/// `GET /api/payments/config`: which provider the web app pays through,
/// `{provider: "stripe" | "sandbox" | "none", publishableKey?}` (`none`: payments are
/// not configured; the key Stripe.js needs, from `stripe_publishable_key`; never the
/// secret key).
pub fn config(_req: Request, _params: Params) -> Response {
    respond(try_config())
}

fn try_config() -> Result<Response, ApiError> {
    let provider = provider::configured()?.map_or(Provider::None, |provider| provider.which());
    let publishable_key = (provider == Provider::Stripe)
        .then(|| spin_sdk::variables::get("stripe_publishable_key").unwrap_or_default())
        .map(|key| key.trim().to_owned())
        .filter(|key| !key.is_empty());
    Ok(json_response(
        200,
        &PaymentsConfig {
            provider,
            publishable_key,
        },
    ))
}

/// Any other path or method under `/api/payments`.
pub fn not_found(_req: Request, _params: Params) -> Response {
    ApiError::NotFound.into_response()
}
