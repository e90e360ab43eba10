//! Giving back the charge of a paid order that was cancelled anyway (a race at the
//! deadline, or with the buyer's cancel): after the transaction that found it due, on
//! every doorbell and every tick of the bus, until the provider confirms.

use std::time::Instant;

use common::ApiError;
use spin_sdk::sqlite::Connection;

use crate::db;
use crate::provider::{self, Provider};

/// Refunds every charge that is due back; failures are logged and tried again later.
pub fn settle_logged() {
    if let Err(err) = db::open().and_then(|conn| settle(&conn)) {
        common::log!("payments: refunds: {err}");
    }
}

pub fn settle(conn: &Connection) -> Result<(), ApiError> {
    let due = db::refunds_due(conn)?;
    if due.is_empty() {
        return Ok(());
    }
    // Without a provider they stay due (the log says why, once an hour), and are
    // given back once one is configured.
    let Some(provider) = provider::configured()? else {
        return Ok(());
    };
    for payment in due {
        refund(conn, provider.as_ref(), &payment)?;
    }
    Ok(())
}

fn refund(
    conn: &Connection,
    provider: &dyn Provider,
    payment: &crate::domain::Payment,
) -> Result<(), ApiError> {
    let started = Instant::now();
    let charge_id = payment
        .stripe_id
        .as_deref()
        .ok_or_else(|| anyhow::anyhow!("payment {} is due back without a charge", payment.id))?;
    let outcome = provider.refund(charge_id, &payment.refund_key());
    let took = started.elapsed().as_secs_f64() * 1000.0;
    match outcome {
        Ok(refund_id) => {
            db::record_refund(
                conn,
                &payment.id,
                refund_id.as_deref(),
                common::clock::now_ms(),
            )?;
            common::log!(
                "payments: refund of payment {} (order {}, {} cents) via {} -> {} in {took:.1} ms",
                payment.id,
                payment.order_id,
                payment.amount.cents(),
                provider.name(),
                refund_id.as_deref().unwrap_or("refunded already"),
            );
        }
        Err(failure) => common::log!(
            "payments: refund of payment {} (order {}) via {} -> {failure}, tried again later, in {took:.1} ms",
            payment.id,
            payment.order_id,
            provider.name(),
        ),
    }
    Ok(())
}
