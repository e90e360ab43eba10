//! Thin HTTP handlers of the payments service (API.md, "payments").

use common::{ApiError, Validator, json_response, respond, session};
use contract::http::{NewPayment, Payment, PaymentsConfig, Provider, Sent};
use spin_sdk::http::{Params, Request, Response};

use crate::charges;
use crate::provider;

/// `POST /api/payments` `{token, orderId}`: 201 `{id}`, the order's price charged once
/// (`charges::pay`); publishes `payment:created`. 503 while no provider is configured.
pub fn create(req: Request, _params: Params) -> Response {
    respond(try_create(&req))
}

fn try_create(req: &Request) -> Result<Response, ApiError> {
    let user = session::require_auth(req)?;
    // Before anything is read or stored: without a provider nothing can be paid.
    let provider = provider::configured()?.ok_or_else(provider::not_configured)?;
    let body: NewPayment<Sent> = common::json_body(req)?;
    let mut rules = Validator::new();
    let token = rules.required("token", body.token.str(), "Token is required");
    let order_id = rules.required("orderId", body.order_id.str(), "OrderId is required");
    let (Some(token), Some(order_id)) = (token, order_id) else {
        return Err(rules.into_error());
    };
    let id = charges::pay(provider.as_ref(), &user.id, order_id, token)?;
    Ok(json_response(201, &Payment { id }))
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
