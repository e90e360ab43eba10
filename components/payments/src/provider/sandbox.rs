//! The offline sandbox: answers as Stripe's test mode does for its test tokens, with no
//! network, so the app can be used (and tested) anywhere.

use super::{Charge, Failure, Provider};

/// Stripe's test tokens of cards that are charged.
const APPROVED: &[&str] = &[
    "tok_visa",
    "tok_visa_debit",
    "tok_mastercard",
    "tok_mastercard_debit",
    "tok_mastercard_prepaid",
    "tok_amex",
    "tok_discover",
    "tok_diners",
    "tok_jcb",
    "tok_unionpay",
];

/// Stripe's test tokens of cards that are declined, with Stripe's messages.
const DECLINED: &[(&str, &str)] = &[
    ("tok_chargeDeclined", "Your card was declined."),
    (
        "tok_chargeDeclinedInsufficientFunds",
        "Your card has insufficient funds.",
    ),
    ("tok_chargeDeclinedLostCard", "Your card was declined."),
    ("tok_chargeDeclinedStolenCard", "Your card was declined."),
    ("tok_chargeDeclinedFraudulent", "Your card was declined."),
    ("tok_chargeDeclinedExpiredCard", "Your card has expired."),
    (
        "tok_chargeDeclinedIncorrectCvc",
        "Your card's security code is incorrect.",
    ),
    (
        "tok_chargeDeclinedProcessingError",
        "An error occurred while processing your card. Try again in a little bit.",
    ),
];

/// Stripe's bounds of one USD charge, in cents.
const MIN_CENTS: i64 = 50;
const MAX_CENTS: i64 = 99_999_999;

pub struct Sandbox;

impl Provider for Sandbox {
    fn which(&self) -> contract::http::Provider {
        contract::http::Provider::Sandbox
    }

    fn charge(&self, charge: &Charge) -> Result<String, Failure> {
        if charge.amount_cents < MIN_CENTS {
            return Err(Failure::Declined(
                "Amount must be at least $0.50 usd".to_owned(),
            ));
        }
        if charge.amount_cents > MAX_CENTS {
            return Err(Failure::Declined(
                "Amount must be no more than $999,999.99".to_owned(),
            ));
        }
        if let Some((_, message)) = DECLINED.iter().find(|(token, _)| *token == charge.token) {
            return Err(Failure::Declined((*message).to_owned()));
        }
        if !APPROVED.contains(&charge.token) {
            return Err(Failure::Declined(format!(
                "No such token: '{}'",
                charge.token
            )));
        }
        // The same attempt gives the same charge, as Stripe's idempotency keys do.
        Ok(format!("ch_sandbox_{}", charge.payment_id))
    }

    fn refund(&self, charge_id: &str, _idempotency_key: &str) -> Result<Option<String>, Failure> {
        let charged = charge_id.strip_prefix("ch_").unwrap_or(charge_id);
        Ok(Some(format!("re_{charged}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn charge(token: &str, amount_cents: i64) -> Result<String, Failure> {
        Sandbox.charge(&Charge {
            amount_cents,
            token,
            idempotency_key: "k1",
            order_id: "o1",
            payment_id: "p1",
        })
    }

    fn declined(result: Result<String, Failure>) -> String {
        match result {
            Err(Failure::Declined(message)) => message,
            other => panic!("expected a decline, got {other:?}"),
        }
    }

    #[test]
    fn charges_stripes_test_cards_once_per_attempt() {
        assert_eq!(charge("tok_visa", 2050).unwrap(), "ch_sandbox_p1");
        assert_eq!(charge("tok_mastercard", 50).unwrap(), "ch_sandbox_p1");
        assert_eq!(
            Sandbox.refund("ch_sandbox_p1", "r1").unwrap().as_deref(),
            Some("re_sandbox_p1")
        );
    }

    #[test]
    fn declines_as_stripe_does() {
        assert_eq!(
            declined(charge("tok_chargeDeclined", 2050)),
            "Your card was declined."
        );
        assert_eq!(
            declined(charge("tok_chargeDeclinedInsufficientFunds", 2050)),
            "Your card has insufficient funds."
        );
        assert_eq!(
            declined(charge("tok_nope", 2050)),
            "No such token: 'tok_nope'"
        );
        assert_eq!(
            declined(charge("tok_visa", 49)),
            "Amount must be at least $0.50 usd"
        );
        assert_eq!(
            declined(charge("tok_visa", 100_000_000)),
            "Amount must be no more than $999,999.99"
        );
    }
}
