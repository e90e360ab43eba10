//! Stripe's charges and refunds API (`POST /v1/charges`, `POST /v1/refunds`):
//! form-encoded, `Authorization: Bearer <secret key>`, an `Idempotency-Key` per attempt.

use anyhow::anyhow;
use common::ApiError;
use serde::Deserialize;

use super::outbound::{self, Answer};
use super::{Charge, Failure, Provider};

pub struct Stripe {
    /// `https://api.stripe.com`, or a local stand-in in tests; no trailing `/`.
    api_base: String,
    secret_key: String,
}

impl Stripe {
    pub fn new(api_base: &str, secret_key: &str) -> Result<Stripe, ApiError> {
        let api_base = api_base.trim().trim_end_matches('/');
        if !(api_base.starts_with("https://") || api_base.starts_with("http://")) {
            return Err(anyhow!("stripe_api_base `{api_base}` is not an http(s) URL").into());
        }
        Ok(Stripe {
            api_base: api_base.to_owned(),
            secret_key: secret_key.to_owned(),
        })
    }

    fn post(&self, path: &str, idempotency_key: &str, form: &str) -> Result<Answer, Failure> {
        let authorization = format!("Bearer {}", self.secret_key);
        outbound::post(
            &format!("{}{path}", self.api_base),
            &[
                ("authorization", &authorization),
                ("idempotency-key", idempotency_key),
                ("content-type", "application/x-www-form-urlencoded"),
                ("accept", "application/json"),
            ],
            form.as_bytes(),
        )
        .map_err(|err| Failure::Unavailable(err.context("Stripe did not answer")))
    }
}

impl Provider for Stripe {
    fn which(&self) -> contract::http::Provider {
        contract::http::Provider::Stripe
    }

    fn charge(&self, charge: &Charge) -> Result<String, Failure> {
        let answer = self.post("/v1/charges", charge.idempotency_key, &charge_form(charge))?;
        charge_outcome(&answer)
    }

    fn refund(&self, charge_id: &str, idempotency_key: &str) -> Result<Option<String>, Failure> {
        let form = form_urlencoded::Serializer::new(String::new())
            .append_pair("charge", charge_id)
            .finish();
        let answer = self.post("/v1/refunds", idempotency_key, &form)?;
        refund_outcome(&answer)
    }
}

/// The form of a charge: the amount in cents, USD, the card token, and the order and
/// payment in the charge's description and metadata (to find it in Stripe's dashboard).
pub fn charge_form(charge: &Charge) -> String {
    form_urlencoded::Serializer::new(String::new())
        .append_pair("amount", &charge.amount_cents.to_string())
        .append_pair("currency", "usd")
        .append_pair("source", charge.token)
        .append_pair("description", &format!("Order {}", charge.order_id))
        .append_pair("metadata[orderId]", charge.order_id)
        .append_pair("metadata[paymentId]", charge.payment_id)
        .finish()
}

#[derive(Debug, Default, Deserialize)]
struct ChargeObject {
    id: Option<String>,
    status: Option<String>,
    failure_message: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct ErrorAnswer {
    #[serde(default)]
    error: StripeError,
}

/// Stripe's error object: `{"error": {"type", "code", "message", ...}}`.
#[derive(Debug, Default, Deserialize)]
struct StripeError {
    #[serde(rename = "type")]
    kind: Option<String>,
    code: Option<String>,
    message: Option<String>,
}

/// What a charge's answer means: the charge id, a decline (with Stripe's message for
/// the buyer), or an answer that leaves the outcome open.
pub fn charge_outcome(answer: &Answer) -> Result<String, Failure> {
    if !(200..300).contains(&answer.status) {
        return Err(refusal(answer));
    }
    let charge: ChargeObject = serde_json::from_slice(&answer.body).unwrap_or_default();
    match (charge.id, charge.status.as_deref()) {
        (_, Some("failed")) => Err(Failure::Declined(
            charge
                .failure_message
                .unwrap_or_else(|| "Your card was declined.".to_owned()),
        )),
        (Some(id), _) if !id.is_empty() => Ok(id),
        _ => Err(Failure::Unavailable(anyhow!(
            "Stripe answered {} without a charge id",
            answer.status
        ))),
    }
}

/// What a refund's answer means: the refund id, `None` if the charge had been
/// refunded already, or why it did not happen (it is tried again later).
pub fn refund_outcome(answer: &Answer) -> Result<Option<String>, Failure> {
    if (200..300).contains(&answer.status) {
        #[derive(Deserialize)]
        struct Refund {
            id: String,
        }
        return serde_json::from_slice::<Refund>(&answer.body)
            .map(|refund| Some(refund.id))
            .map_err(|_| {
                Failure::Unavailable(anyhow!(
                    "Stripe answered {} without a refund id",
                    answer.status
                ))
            });
    }
    let error = stripe_error(answer);
    if error.code.as_deref() == Some("charge_already_refunded") {
        return Ok(None);
    }
    Err(refusal(answer))
}

fn stripe_error(answer: &Answer) -> StripeError {
    serde_json::from_slice::<ErrorAnswer>(&answer.body)
        .map(|answer| answer.error)
        .unwrap_or_default()
}

/// A 4xx/5xx answer. 402 (a card error) and 400 (a request Stripe refused to run: an
/// unknown token, an amount out of bounds) say that nothing was charged. Everything
/// else leaves it open: 401/403 (the secret key), 409 (the same key in flight), 429,
/// 5xx, and 400 `idempotency_error` (the key was used with other parameters).
fn refusal(answer: &Answer) -> Failure {
    let error = stripe_error(answer);
    let kind = error.kind.as_deref().unwrap_or("no error type");
    let declined = answer.status == 402 || (answer.status == 400 && kind != "idempotency_error");
    if declined {
        return Failure::Declined(
            error
                .message
                .unwrap_or_else(|| "The payment was refused.".to_owned()),
        );
    }
    let code = error.code.as_deref().unwrap_or("no code");
    // Stripe's message for a bad key repeats part of it: left out of the log.
    let message = match answer.status {
        401 | 403 => "(message not logged)".to_owned(),
        _ => error.message.unwrap_or_default(),
    };
    Failure::Unavailable(anyhow!(
        "Stripe answered {} ({kind}, {code}): {message}",
        answer.status
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, body: &str) -> Answer {
        Answer {
            status,
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn a_charge_is_form_encoded_in_cents() {
        let form = charge_form(&Charge {
            amount_cents: 2050,
            token: "tok_visa",
            idempotency_key: "k",
            order_id: "o 1&2",
            payment_id: "p1",
        });
        assert_eq!(
            form,
            "amount=2050&currency=usd&source=tok_visa&description=Order+o+1%262\
             &metadata%5BorderId%5D=o+1%262&metadata%5BpaymentId%5D=p1"
        );
    }

    #[test]
    fn a_successful_charge_gives_its_id() {
        let ok = answer(
            200,
            r#"{"id":"ch_1","object":"charge","status":"succeeded"}"#,
        );
        assert_eq!(charge_outcome(&ok).unwrap(), "ch_1");
    }

    #[test]
    fn declines_pass_stripes_message_through() {
        let declined = answer(
            402,
            r#"{"error":{"type":"card_error","code":"card_declined","message":"Your card was declined."}}"#,
        );
        let unknown = answer(
            400,
            r#"{"error":{"type":"invalid_request_error","code":"resource_missing","message":"No such token: 'tok_x'"}}"#,
        );
        let failed = answer(
            200,
            r#"{"id":"ch_2","status":"failed","failure_message":"Your card has expired."}"#,
        );
        for (answer, message) in [
            (declined, "Your card was declined."),
            (unknown, "No such token: 'tok_x'"),
            (failed, "Your card has expired."),
        ] {
            match charge_outcome(&answer) {
                Err(Failure::Declined(text)) => assert_eq!(text, message),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn answers_that_leave_the_outcome_open_are_unavailable() {
        for answer in [
            answer(500, r#"{"error":{"type":"api_error","message":"boom"}}"#),
            answer(503, "not json"),
            answer(
                429,
                r#"{"error":{"type":"invalid_request_error","code":"rate_limit"}}"#,
            ),
            answer(409, r#"{"error":{"type":"idempotency_error"}}"#),
            answer(
                400,
                r#"{"error":{"type":"idempotency_error","message":"Keys for idempotent requests can only be used with the same parameters"}}"#,
            ),
            answer(200, r#"{"object":"charge"}"#),
        ] {
            assert!(
                matches!(charge_outcome(&answer), Err(Failure::Unavailable(_))),
                "{answer:?}"
            );
        }
        let bad_key = answer(
            401,
            r#"{"error":{"type":"invalid_request_error","message":"Invalid API Key provided: sk_test_****abcd"}}"#,
        );
        let Err(Failure::Unavailable(err)) = charge_outcome(&bad_key) else {
            panic!("a bad key leaves the outcome open")
        };
        assert!(!err.to_string().contains("sk_test"), "{err}");
    }

    #[test]
    fn refunds() {
        assert_eq!(
            refund_outcome(&answer(200, r#"{"id":"re_1","object":"refund"}"#)).unwrap(),
            Some("re_1".to_owned())
        );
        let again = answer(
            400,
            r#"{"error":{"type":"invalid_request_error","code":"charge_already_refunded","message":"Charge ch_1 has already been refunded."}}"#,
        );
        assert_eq!(refund_outcome(&again).unwrap(), None);
        assert!(refund_outcome(&answer(502, "")).is_err());
    }

    #[test]
    fn the_api_base_must_be_http() {
        assert!(Stripe::new("ftp://example.com", "sk").is_err());
        let stripe = Stripe::new("http://127.0.0.1:9/", "sk").unwrap();
        assert_eq!(stripe.api_base, "http://127.0.0.1:9");
    }
}
