//! Thin HTTP handlers of the payments service (API.md, "payments").

use std::time::Instant;

use ::events::PaymentCreated;
use common::session::CurrentUser;
use common::{ApiError, JsonBody, Validator, json_response, respond, session};
use serde::Serialize;
use spin_sdk::http::{Params, Request, Response};
use spin_sdk::sqlite::Connection;

use crate::db::{self, BUS};
use crate::domain::{self, Payment, PaymentStatus, Step};
use crate::provider::{self, Charge, Failure, Provider, without_token};
use crate::refunds;

#[derive(Serialize)]
struct Created {
    id: String,
}

/// `POST /api/payments` `{token, orderId}`: 201 `{id}`, the order's price charged once;
/// publishes `payment:created`. 503 while no provider is configured.
///
/// No charge without a record: the pending payment is committed before the provider is
/// called, and the provider's answer then completes it (with the event) or, on a
/// decline, deletes it. An answer that never came leaves it pending: the next request
/// for the order re-sends the same attempt with the same idempotency key.
pub fn create(req: Request, _params: Params) -> Response {
    respond(try_create(&req))
}

fn try_create(req: &Request) -> Result<Response, ApiError> {
    let user = session::require_auth(req)?;
    // Before anything is read or stored: without a provider nothing can be paid.
    let provider = provider::configured()?.ok_or_else(provider::not_configured)?;
    let body = JsonBody::parse(req)?;
    let mut rules = Validator::new();
    let token = rules.field("token", required(body.str("token"), "Token is required"));
    let order_id = rules.field(
        "orderId",
        required(body.str("orderId"), "OrderId is required"),
    );
    let (Some(token), Some(order_id)) = (token, order_id) else {
        return Err(rules.into_error());
    };
    let conn = db::open()?;
    let payment = begin(&conn, &user, order_id, token)?;
    charge(&conn, provider.as_ref(), &payment)
}

fn required<'a>(value: Option<&'a str>, message: &'static str) -> Result<&'a str, &'static str> {
    value
        .map(str::trim)
        .filter(|value| !value.is_empty())
        .ok_or(message)
}

/// The attempt to send, committed: a new pending payment, or the order's abandoned one
/// (marked busy either way, so a concurrent request does not send it too).
fn begin(
    conn: &Connection,
    user: &CurrentUser,
    order_id: &str,
    token: &str,
) -> Result<Payment, ApiError> {
    common::db::transaction(conn, |conn| {
        let now = ::events::now_ms();
        let order = db::find_order(conn, order_id)?.ok_or(ApiError::NotFound)?;
        if order.user_id != user.id {
            return Err(ApiError::NotAuthorized);
        }
        let existing = db::payment_of(conn, order_id)?;
        match domain::next_step(&order, existing.as_ref(), now)? {
            Step::Charge => {
                let payment = Payment {
                    id: common::new_id()?,
                    order_id: order.id.clone(),
                    status: PaymentStatus::Pending,
                    amount: order.price,
                    token: Some(token.to_owned()),
                    busy_until_ms: now + domain::BUSY_MS,
                    stripe_id: None,
                };
                if !db::insert_payment(conn, &payment, now)? {
                    return Err(domain::already_paid());
                }
                Ok(payment)
            }
            Step::Resume(mut payment) => {
                payment.busy_until_ms = now + domain::BUSY_MS;
                db::set_busy(conn, &payment.id, payment.busy_until_ms, now)?;
                Ok(payment)
            }
        }
    })
}

/// Sends the attempt and records what the provider answered.
fn charge(
    conn: &Connection,
    provider: &dyn Provider,
    payment: &Payment,
) -> Result<Response, ApiError> {
    let token = payment.token.as_deref().unwrap_or_default();
    let started = Instant::now();
    let outcome = provider.charge(&Charge {
        amount_cents: payment.amount.cents(),
        token,
        idempotency_key: &payment.charge_key(),
        order_id: &payment.order_id,
        payment_id: &payment.id,
    });
    let said = match &outcome {
        Ok(stripe_id) => stripe_id.clone(),
        Err(failure) => without_token(&failure.to_string(), token),
    };
    eprintln!(
        "payments: charge of {} cents for order {} (payment {}) via {} -> {said} in {:.1} ms",
        payment.amount.cents(),
        payment.order_id,
        payment.id,
        provider.name(),
        started.elapsed().as_secs_f64() * 1000.0
    );
    match outcome {
        Ok(stripe_id) => record(conn, payment, &stripe_id),
        Err(Failure::Declined(message)) => {
            db::delete_pending(conn, &payment.id)?;
            Err(ApiError::BadRequest(without_token(&message, token)))
        }
        Err(Failure::Unavailable(_)) => {
            // The next request may send it again at once; if this fails too, the busy
            // mark runs out by itself.
            if let Err(err) = db::set_busy(conn, &payment.id, 0, ::events::now_ms()) {
                eprintln!("payments: payment {} stays busy: {err}", payment.id);
            }
            Err(
                anyhow::anyhow!("the charge of payment {} stays pending: {said}", payment.id)
                    .into(),
            )
        }
    }
}

/// Completes the payment with its charge and publishes `payment:created`, in one
/// transaction. If the order was cancelled meanwhile, the charge is refunded at once.
fn record(conn: &Connection, payment: &Payment, stripe_id: &str) -> Result<Response, ApiError> {
    let status = BUS.transaction(conn, |tx| {
        let order = db::find_order(tx, &payment.order_id)?
            .ok_or_else(|| anyhow::anyhow!("order {} is gone", payment.order_id))?;
        let status = domain::charged_status(&order);
        if !db::record_charge(tx, &payment.id, stripe_id, status, ::events::now_ms())? {
            // Another send of the same attempt recorded the same charge first.
            return db::payment_of(tx, &payment.order_id)?
                .filter(|held| held.id == payment.id)
                .map(|held| held.status)
                .ok_or_else(|| anyhow::anyhow!("payment {} is gone", payment.id).into());
        }
        tx.publish(PaymentCreated {
            id: payment.id.clone(),
            order_id: payment.order_id.clone(),
            stripe_id: stripe_id.to_owned(),
        })?;
        Ok(status)
    })?;
    match status {
        PaymentStatus::Succeeded => Ok(json_response(
            201,
            &Created {
                id: payment.id.clone(),
            },
        )),
        PaymentStatus::RefundDue | PaymentStatus::Refunded => {
            refunds::settle_logged();
            Err(domain::cancelled())
        }
        PaymentStatus::Pending => {
            Err(anyhow::anyhow!("payment {} is pending after its charge", payment.id).into())
        }
    }
}

/// `GET /api/payments/config`: which provider the web app pays through,
/// `{provider: "stripe" | "sandbox" | "none", publishableKey?}` (`none`: payments are
/// not configured; the key Stripe.js needs, from `stripe_publishable_key`; never the
/// secret key).
pub fn config(_req: Request, _params: Params) -> Response {
    respond(try_config())
}

fn try_config() -> Result<Response, ApiError> {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Config {
        provider: &'static str,
        #[serde(skip_serializing_if = "Option::is_none")]
        publishable_key: Option<String>,
    }
    let provider = provider::configured()?;
    let name = provider.as_ref().map_or("none", |provider| provider.name());
    let publishable_key = (name == "stripe")
        .then(|| spin_sdk::variables::get("stripe_publishable_key").unwrap_or_default())
        .map(|key| key.trim().to_owned())
        .filter(|key| !key.is_empty());
    Ok(json_response(
        200,
        &Config {
            provider: name,
            publishable_key,
        },
    ))
}

/// Any other path or method under `/api/payments`.
pub fn not_found(_req: Request, _params: Params) -> Response {
    ApiError::NotFound.into_response()
}
