//! Payment providers behind one small trait: Stripe over Spin's outbound HTTP, and the
//! offline sandbox (API.md, "payments"), chosen by name with the `payment_provider`
//! variable. Payments without a usable provider answer 503 and charge nothing.

mod outbound;
mod sandbox;
mod stripe;

use common::ApiError;

use crate::db;

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
    /// Which provider this is, as `GET /api/payments/config` names it.
    fn which(&self) -> contract::http::Provider;

    /// For logs: `stripe` or `sandbox`.
    fn name(&self) -> &'static str {
        self.which().as_str()
    }

    /// Charges the card; the provider's id of the charge (`ch_…`).
    fn charge(&self, charge: &Charge) -> Result<String, Failure>;

    /// Gives the whole charge back; the provider's id of the refund (`re_…`), if it
    /// made one now (`None`: the charge had been refunded already).
    fn refund(&self, charge_id: &str, idempotency_key: &str) -> Result<Option<String>, Failure>;
}

/// How often the log may say that payments are not configured: every request is a
/// fresh instance, so the last time is kept in payments' database.
const WARN_EVERY_MS: i64 = 60 * 60 * 1000;

/// The provider `payment_provider` names, once it is usable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    Stripe,
    Sandbox,
}

/// Why no provider is usable: said in the log, never to a client (they get 503).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotConfigured {
    /// `payment_provider` is `stripe` and `stripe_secret_key` is empty.
    NoStripeKey,
    /// `payment_provider` is neither `stripe` nor `sandbox` (or not readable).
    UnknownProvider,
}

impl NotConfigured {
    /// The warning's name in payments' database (when it was last logged).
    fn warning(self) -> &'static str {
        match self {
            NotConfigured::NoStripeKey => "no-stripe-key",
            NotConfigured::UnknownProvider => "unknown-provider",
        }
    }

    /// What the log says. Never a variable's value: a key pasted into the wrong
    /// variable must not end up in a log either.
    fn explanation(self) -> &'static str {
        match self {
            NotConfigured::NoStripeKey => {
                "payment_provider is `stripe` but stripe_secret_key is empty: set \
                 SPIN_VARIABLE_STRIPE_SECRET_KEY (on SpinKube, `stripe_secret_key` in the \
                 Secret `ticketing-secrets`)"
            }
            NotConfigured::UnknownProvider => {
                "payment_provider is neither `stripe` nor `sandbox`: set \
                 SPIN_VARIABLE_PAYMENT_PROVIDER (on SpinKube, `payment_provider` in the \
                 ConfigMap `ticketing-config`)"
            }
        }
    }
}

/// The provider the variables choose: the sandbox only when `payment_provider` names
/// it, Stripe when it names Stripe and a secret key is set. Nothing else picks one:
/// a deployment that forgets its key must not take orders as paid for free.
pub fn choose(payment_provider: &str, stripe_secret_key: &str) -> Result<Choice, NotConfigured> {
    match payment_provider.trim() {
        "sandbox" => Ok(Choice::Sandbox),
        "stripe" if stripe_secret_key.trim().is_empty() => Err(NotConfigured::NoStripeKey),
        "stripe" => Ok(Choice::Stripe),
        _ => Err(NotConfigured::UnknownProvider),
    }
}

/// The provider the variables choose, or `None` when they choose none: then the log
/// says why, at most once an hour per reason.
pub fn configured() -> Result<Option<Box<dyn Provider>>, ApiError> {
    let variable = |name| spin_sdk::variables::get(name).unwrap_or_default();
    let secret_key = variable("stripe_secret_key");
    match choose(&variable("payment_provider"), &secret_key) {
        Ok(Choice::Sandbox) => Ok(Some(Box::new(Sandbox))),
        Ok(Choice::Stripe) => {
            let api_base = spin_sdk::variables::get("stripe_api_base")
                .ok()
                .filter(|base| !base.trim().is_empty())
                .unwrap_or_else(|| DEFAULT_STRIPE_API_BASE.to_owned());
            Ok(Some(Box::new(Stripe::new(&api_base, secret_key.trim())?)))
        }
        Err(reason) => {
            warn(reason);
            Ok(None)
        }
    }
}

/// The answer to a payment while no provider is configured.
pub fn not_configured() -> ApiError {
    ApiError::Unavailable("Payments are not configured".to_owned())
}

/// Logs why payments are not configured, unless that was logged in the last hour.
fn warn(reason: NotConfigured) {
    let due = db::open().and_then(|conn| {
        db::warning_due(
            &conn,
            reason.warning(),
            common::clock::now_ms(),
            WARN_EVERY_MS,
        )
    });
    // Without the database, saying it too often beats not saying it.
    if due.unwrap_or(true) {
        common::log!(
            "warning: payments are not configured, so every payment is refused (503): {}",
            reason.explanation()
        );
    }
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
    fn the_sandbox_is_chosen_only_by_name() {
        assert_eq!(choose("sandbox", ""), Ok(Choice::Sandbox));
        assert_eq!(choose(" sandbox\n", "sk_test_1"), Ok(Choice::Sandbox));
        assert_eq!(choose("stripe", "sk_test_1"), Ok(Choice::Stripe));
        // A forgotten key is no reason to stop charging: it stops payments instead.
        assert_eq!(choose("stripe", ""), Err(NotConfigured::NoStripeKey));
        assert_eq!(choose("stripe", "  "), Err(NotConfigured::NoStripeKey));
        for unknown in ["", "Sandbox", "stripe,sandbox", "none", "sk_live_oops"] {
            assert_eq!(
                choose(unknown, "sk_test_1"),
                Err(NotConfigured::UnknownProvider),
                "{unknown:?}"
            );
        }
    }

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
