//! Charging an order exactly once (docs/design.md, section 6): an
//! attempt is committed (or claimed) busy before it is sent, sent with its idempotency
//! key, and the provider's answer recorded. `POST /api/payments` pays ([`pay`]: begins
//! and sends an attempt); every wake of the bus sends again the ones whose answer was
//! lost ([`settle_logged`]).
//!
//! No charge without a record: the pending payment is committed before the provider is
//! called, and the provider's answer then completes it (with the event) or, on a
//! decline, deletes it. An answer that never came leaves it pending (500): the next
//! request for the order, or a wake of the bus, re-sends the same attempt with the same
//! idempotency key.
//!
//! # The protocol
//!
//! A charge is an effect outside every database, so the outbox alone cannot make it
//! atomic with the state change. payments splits `POST /api/payments` into three steps
//! around the provider call:
//!
//! 1. **Begin** (one transaction): check the order in payments' copy (404, 401, cancelled
//!    or past `expiresAt`, already paid), then insert a `pending` payment: its id, the
//!    amount in cents from the stored price, the card token, and `busy_until_ms` = now +
//!    60 s. The unique index on `order_id` makes this the one attempt of the order.
//! 2. **Charge**, after the commit: `POST /v1/charges` with `Idempotency-Key:
//!    charge-<order id>-<payment id>`, waiting at most 5 s to connect and 30 s for the
//!    answer.
//! 3. **Record** the answer. Charged: in one transaction, the payment becomes `succeeded`
//!    (token forgotten) and `payment:created` goes to the outbox → 201 `{id}`. Declined
//!    (402, or a 400 Stripe refused to run): the pending row is deleted, nothing is
//!    published → 400 with Stripe's message, and the next card is a new attempt with a new
//!    key. No answer, or one that leaves it open (a timeout, 5xx, 409, 429, a refused
//!    key): the row stays `pending`, no longer busy → 500.
//!
//! So there is never a charge without a row, and never a `succeeded` row or an event
//! without a charge. A pending row whose answer was lost is re-sent, with the same key and
//! the same form (the token is still in the row), by whichever comes first: the buyer's
//! next request for the order, or a wake of payments (every doorbell and every tick of the
//! bus), which sends every pending row whose `busy_until_ms` has passed. Stripe replays
//! the first outcome instead of charging again, and the answer is recorded as in step 3.
//! Every sender claims the attempt first (`db::claim`: one `UPDATE … WHERE busy_until_ms
//! <= now`, marking it busy for 60 s), so a tick, a buyer's retry and replicas never send
//! it at the same time; while it is busy, another request for the order gets 400 `Order is
//! already paid` without calling the provider, so concurrent payments make one call.
//!
//! The deadline race: the order may be cancelled (expiry, or the buyer's cancel) while
//! the charge is in flight, or `order:cancelled` may reach payments after the payment
//! succeeded. Either way the payment becomes `refund_due`, in the transaction that
//! learns of both; `refunds::settle` then refunds it (`POST /v1/refunds`, key
//! `refund-<payment id>`) after that transaction, on every doorbell and every tick of
//! the bus, until Stripe confirms, and records the refund. `payment:created` is still
//! published for a charge that is refunded; orders ignores it for a cancelled order.
//!
//! Abandoned attempts: when an invocation dies between the charge and recording it (the
//! host killed, a lost answer), its row stays `pending`, busy until its 60 s run out (no
//! longer busy at once when the answer was lost but the invocation lived); the buyer may
//! never come back, and the order may expire meanwhile (past `expiresAt` the buyer cannot
//! resume it). The next wake after that re-sends it anyway and records the answer: charged
//! → `succeeded` and `payment:created` (orders completes the order, or cancels it at the
//! expiry and payments refunds), or `refund_due` when payments' copy of the order is
//! cancelled, refunded by the same wake; declined → the row is deleted; no answer → it
//! stays pending, not busy, for a later wake (a wake stops at the first attempt left open,
//! so an unreachable provider costs it one timeout, not one per attempt; the longest
//! untried go first). Each settled attempt logs one line (`… sent again by a wake …`).
//! Without a configured provider nothing is sent; the rows wait for one. What remains:
//! - If the first send never reached Stripe, re-sending it for a cancelled order makes a
//!   new charge, refunded at once: the buyer sees a charge and its refund.
//! - Stripe may forget an idempotency key once it is 24 hours old. A row left pending
//!   longer (no provider configured, Stripe unreachable for a day) is then a new request:
//!   if its first send had charged, the card is charged again, or the used-up token is
//!   refused and the row deleted; either way that first charge is recorded nowhere but
//!   at Stripe (its `metadata[paymentId]` finds it), and is not refunded by the app.

use std::time::Instant;

use bus::PaymentCreated;
use common::ApiError;
use common::clock::now_ms;
use spin_sdk::sqlite::Connection;

use crate::db::{self, BUS};
use crate::domain::{self, Payment, PaymentStatus, Step};
use crate::provider::{self, Charge, Failure, Provider, without_token};
use crate::refunds;

/// The buyer `user_id` pays for the order `order_id` with the card `token`: the
/// payment's id once charged. A charge for an order cancelled meanwhile is given back
/// at once and answered as a cancelled order; a decline is a 400 with the provider's
/// message; a lost answer a 500 (the attempt is sent again later).
pub fn pay(
    provider: &dyn Provider,
    user_id: &str,
    order_id: &str,
    token: &str,
) -> Result<String, ApiError> {
    let conn = db::open()?;
    let payment = begin(&conn, user_id, order_id, token)?;
    match send(&conn, provider, &payment, Sender::Buyer)? {
        Outcome::Charged(PaymentStatus::Succeeded) => Ok(payment.id),
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

/// What became of an attempt once sent.
#[derive(Debug)]
enum Outcome {
    /// Charged and recorded (`payment:created` published): `Succeeded`, or `RefundDue`
    /// when the order was cancelled meanwhile (`refunds::settle` gives it back).
    Charged(PaymentStatus),
    /// Declined, with the provider's message for the buyer: the attempt is deleted.
    Declined(String),
    /// No answer that says what happened: the attempt stays pending, no longer busy,
    /// and is sent again by the buyer's next request or a later wake.
    Open(String),
}

/// Who sends an attempt, for the log.
#[derive(Debug, Clone, Copy)]
enum Sender {
    /// `POST /api/payments`.
    Buyer,
    /// A wake of the bus, settling an attempt whose answer was lost.
    Wake,
}

/// The attempt to send for the buyer `user_id`, committed: a new pending payment, or
/// the order's abandoned one, claimed. Busy either way, so nobody else sends it too.
fn begin(
    conn: &Connection,
    user_id: &str,
    order_id: &str,
    token: &str,
) -> Result<Payment, ApiError> {
    common::db::transaction(conn, |conn| {
        let now = now_ms();
        let order = db::find_order(conn, order_id)?.ok_or(ApiError::NotFound)?;
        if order.user_id != user_id {
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
                if !claim(conn, &mut payment, now)? {
                    return Err(domain::already_paid());
                }
                Ok(payment)
            }
        }
    })
}

/// Marks the attempt busy for [`domain::BUSY_MS`], unless someone is sending it
/// already (`false`).
fn claim(conn: &Connection, payment: &mut Payment, now_ms: i64) -> Result<bool, ApiError> {
    let until_ms = now_ms + domain::BUSY_MS;
    if !db::claim(conn, &payment.id, until_ms, now_ms)? {
        return Ok(false);
    }
    payment.busy_until_ms = until_ms;
    Ok(true)
}

/// Sends a claimed attempt (its card token, its idempotency key) and records the
/// answer; logs one line, never the token.
fn send(
    conn: &Connection,
    provider: &dyn Provider,
    payment: &Payment,
    sender: Sender,
) -> Result<Outcome, ApiError> {
    let token = payment.token.as_deref().unwrap_or_default();
    let started = Instant::now();
    let answer = provider.charge(&Charge {
        amount_cents: payment.amount.cents(),
        token,
        idempotency_key: &payment.charge_key(),
        order_id: &payment.order_id,
        payment_id: &payment.id,
    });
    let took = started.elapsed().as_secs_f64() * 1000.0;
    let said = match &answer {
        Ok(stripe_id) => stripe_id.clone(),
        Err(failure) => without_token(&failure.to_string(), token),
    };
    let outcome = record(conn, payment, answer, token);
    let recorded = match &outcome {
        Ok(Outcome::Charged(status)) => status.as_str().to_owned(),
        Ok(Outcome::Declined(_)) => "deleted".to_owned(),
        Ok(Outcome::Open(_)) => "stays pending".to_owned(),
        Err(err) => format!("not recorded, stays pending: {err}"),
    };
    let by = match sender {
        Sender::Buyer => "",
        Sender::Wake => ", abandoned, sent again by a wake",
    };
    common::log!(
        "payments: charge of {} cents for order {} (payment {}{by}) via {} in {took:.1} ms \
         -> {said} => {recorded}",
        payment.amount.cents(),
        payment.order_id,
        payment.id,
        provider.name(),
    );
    outcome
}

fn record(
    conn: &Connection,
    payment: &Payment,
    answer: Result<String, Failure>,
    token: &str,
) -> Result<Outcome, ApiError> {
    match answer {
        Ok(stripe_id) => record_charge(conn, payment, &stripe_id).map(Outcome::Charged),
        Err(Failure::Declined(message)) => {
            db::delete_pending(conn, &payment.id)?;
            Ok(Outcome::Declined(without_token(&message, token)))
        }
        Err(failure @ Failure::Unavailable(_)) => {
            // It may be sent again at once; if this fails too, the claim runs out by
            // itself.
            if let Err(err) = db::release(conn, &payment.id, now_ms()) {
                common::log!("payments: payment {} stays busy: {err}", payment.id);
            }
            Ok(Outcome::Open(without_token(&failure.to_string(), token)))
        }
    }
}

/// Completes the payment with its charge and publishes `payment:created`, in one
/// transaction; a charge for an order cancelled meanwhile is due back
/// (`domain::charged_status`). The payment's status once recorded.
fn record_charge(
    conn: &Connection,
    payment: &Payment,
    stripe_id: &str,
) -> Result<PaymentStatus, ApiError> {
    BUS.transaction(conn, |tx| {
        let order = db::find_order(tx, &payment.order_id)?
            .ok_or_else(|| anyhow::anyhow!("order {} is gone", payment.order_id))?;
        let status = domain::charged_status(&order);
        if !db::record_charge(tx, &payment.id, stripe_id, status, now_ms())? {
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
    })
}

/// Sends again every attempt whose answer was lost and that nobody is sending (an
/// invocation that died, a buyer who never retried), and records the answers; failures
/// are logged and tried again on a later wake.
pub fn settle_logged() {
    if let Err(err) = db::open().and_then(|conn| settle(&conn)) {
        common::log!("payments: abandoned charges: {err}");
    }
}

fn settle(conn: &Connection) -> Result<(), ApiError> {
    let abandoned = db::abandoned(conn, now_ms())?;
    if abandoned.is_empty() {
        return Ok(());
    }
    // Without a provider they stay pending (the log says why, once an hour), and are
    // sent once one is configured.
    let Some(provider) = provider::configured()? else {
        return Ok(());
    };
    for mut payment in abandoned {
        if !claim(conn, &mut payment, now_ms())? {
            continue; // a buyer's request or another wake is sending it
        }
        if let Outcome::Open(_) = send(conn, provider.as_ref(), &payment, Sender::Wake)? {
            // The provider is likely down: the rest wait for a later wake instead of
            // holding this one for a timeout each (the longest untried go first then).
            break;
        }
    }
    Ok(())
}
