//! Payment providers behind one small trait: Stripe over Spin's outbound HTTP, and the
//! offline sandbox (API.md, "payments") when `stripe_secret_key` is empty.

mod outbound;
mod sandbox;
mod stripe;

use common::ApiError;

pub use sandbox::Sandbox;
pub use stripe::Stripe;

/// Where Stripe's API is when `stripe_api_base` is not set.
pub const DEFAULT_STRIPE_API_BASE: &str = "https://api.stripe.com";

/// One charge: the provider takes `amount_cents` (USD) from the card behind `token`.
#[derive(Debug, Clone, PartialEq)]
pub struct Charge<'a> {
    pub amount_cents: i64,
    pub token: &'a str,
    /// The same key for every send of one payment attempt: the provider charges once.
    pub idempotency_key: &'a str,
    pub order_id: &'a str,
    pub payment_id: &'a str,
}

/// Why a provider did not do what it was asked.
#[derive(Debug)]
pub enum Failure {
    /// It answered no (a declined card, an unknown token, an amount it refuses): nothing
    /// happened, and the message is for the buyer.
    Declined(String),
    /// No answer, or one that does not say what happened (unreachable, a timeout, 5xx,
    /// refused credentials): the attempt may have gone through, so it must be retried
    /// with the same idempotency key, never dropped.
    Unavailable(anyhow::Error),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Declined(message) => write!(f, "declined: {message}"),
            Failure::Unavailable(err) => write!(f, "unavailable: {err:#}"),
        }
    }
}

pub trait Provider {
    /// For logs: `stripe` or `sandbox`.
    fn name(&self) -> &'static str;

    /// Charges the card; the provider's id of the charge (`ch_…`).
    fn charge(&self, charge: &Charge) -> Result<String, Failure>;

    /// Gives the whole charge back; the provider's id of the refund (`re_…`), if it
    /// made one now (`None`: the charge had been refunded already).
    fn refund(&self, charge_id: &str, idempotency_key: &str) -> Result<Option<String>, Failure>;
}

/// The provider the variables choose: Stripe when `stripe_secret_key` is set, else the
/// sandbox.
pub fn configured() -> Result<Box<dyn Provider>, ApiError> {
    let secret_key = spin_sdk::variables::get("stripe_secret_key").unwrap_or_default();
    if secret_key.trim().is_empty() {
        return Ok(Box::new(Sandbox));
    }
    let api_base = spin_sdk::variables::get("stripe_api_base")
        .ok()
        .filter(|base| !base.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_STRIPE_API_BASE.to_owned());
    Ok(Box::new(Stripe::new(&api_base, secret_key.trim())?))
}

/// A provider's message for the buyer, without the card token in it (Stripe's "No such
/// token: 'tok_…'" names it): tokens never reach a response or a log.
pub fn without_token(message: &str, token: &str) -> String {
    if token.is_empty() {
        return message.to_owned();
    }
    message
        .replace(&format!(": '{token}'"), "")
        .replace(token, "(the card token)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_never_repeats_the_token() {
        assert_eq!(
            without_token("No such token: 'tok_secret123'", "tok_secret123"),
            "No such token"
        );
        assert_eq!(
            without_token("Token tok_secret123 was used", "tok_secret123"),
            "Token (the card token) was used"
        );
        assert_eq!(
            without_token("Your card was declined.", "tok_chargeDeclined"),
            "Your card was declined."
        );
    }
}
