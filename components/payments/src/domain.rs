//! Payments' rules: which orders may be paid, and what a request to pay does given the
//! payment the order has already.

use bus::OrderStatus;
use common::ApiError;
use contract::price::Price;

/// How long a payment is marked busy while one invocation waits for the provider: more
/// than the longest the wait can take (connect + first byte + the body), so neither a
/// second request nor a wake of the bus re-sends an attempt that is still in flight.
pub const BUSY_MS: i64 = 60_000;

/// An order as payments knows it, from `order:created` and `order:cancelled`.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderCopy {
    pub id: String,
    pub user_id: String,
    pub price: Price,
    pub status: OrderStatus,
    pub expires_ms: i64,
    pub version: u32,
}

/// Where a payment is in its life. A payment row exists from the moment before the
/// charge is sent: no charge can happen without a record of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentStatus {
    /// Sent (or about to be) to the provider; the outcome is not known yet.
    Pending,
    /// Charged; `payment:created` was published with it.
    Succeeded,
    /// Charged, but the order was cancelled: the charge is to be given back.
    RefundDue,
    /// Charged and given back.
    Refunded,
}

impl PaymentStatus {
    pub const ALL: &[PaymentStatus] = &[
        PaymentStatus::Pending,
        PaymentStatus::Succeeded,
        PaymentStatus::RefundDue,
        PaymentStatus::Refunded,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PaymentStatus::Pending => "pending",
            PaymentStatus::Succeeded => "succeeded",
            PaymentStatus::RefundDue => "refund_due",
            PaymentStatus::Refunded => "refunded",
        }
    }

    pub fn parse(text: &str) -> Option<PaymentStatus> {
        PaymentStatus::ALL
            .iter()
            .copied()
            .find(|status| status.as_str() == text)
    }
}

/// One attempt to pay for an order (at most one per order is kept: a declined one is
/// deleted, so the buyer can try another card).
#[derive(Debug, Clone, PartialEq)]
pub struct Payment {
    pub id: String,
    pub order_id: String,
    pub status: PaymentStatus,
    pub amount: Price,
    /// The card token, kept only while the attempt is pending: a retry re-sends the
    /// very same request.
    pub token: Option<String>,
    /// Until when an invocation is waiting for the provider's answer (ms since epoch).
    pub busy_until_ms: i64,
    pub stripe_id: Option<String>,
}

impl Payment {
    /// The provider's idempotency key of this attempt: derived from the order and the
    /// attempt, so every send of one attempt charges at most once, while a new attempt
    /// (after a decline) is a new charge.
    pub fn charge_key(&self) -> String {
        format!("charge-{}-{}", self.order_id, self.id)
    }

    /// The idempotency key of this payment's refund.
    pub fn refund_key(&self) -> String {
        format!("refund-{}", self.id)
    }
}

/// What a request to pay for an order does.
#[derive(Debug, PartialEq)]
pub enum Step {
    /// A first attempt: a new pending payment, then the charge.
    Charge,
    /// The order's pending attempt was abandoned (its invocation failed or died before
    /// the outcome was recorded): send it again, with its key.
    Resume(Payment),
}

const CANCELLED: &str = "Cannot pay for a cancelled order";
const ALREADY_PAID: &str = "Order is already paid";

pub fn cancelled() -> ApiError {
    ApiError::BadRequest(CANCELLED.to_owned())
}

pub fn already_paid() -> ApiError {
    ApiError::BadRequest(ALREADY_PAID.to_owned())
}

/// API.md's rules, in its order, after the order was found and is the caller's:
/// a cancelled order (or one past its `expiresAt` that is not paid) cannot be paid; one
/// with a payment that succeeded, or one being charged right now, is already paid.
pub fn next_step(
    order: &OrderCopy,
    payment: Option<&Payment>,
    now_ms: i64,
) -> Result<Step, ApiError> {
    let is_charged = payment.is_some_and(|payment| payment.status != PaymentStatus::Pending);
    let is_expired = now_ms >= order.expires_ms;
    if order.status == OrderStatus::Cancelled || (is_expired && !is_charged) {
        return Err(cancelled());
    }
    match payment {
        None => Ok(Step::Charge),
        Some(payment)
            if payment.status == PaymentStatus::Pending && payment.busy_until_ms <= now_ms =>
        {
            Ok(Step::Resume(payment.clone()))
        }
        Some(_) => Err(already_paid()),
    }
}

/// What recording a charge makes of the payment: a charge for an order that was
/// cancelled meanwhile (the deadline passed while the provider answered) is given back.
/// Only a cancel payments has heard of counts, not `expiresAt` alone: `payment:created`
/// is published either way, and orders completes an order it has not cancelled yet,
/// so refunding that charge would give the ticket away.
pub fn charged_status(order: &OrderCopy) -> PaymentStatus {
    if order.status == OrderStatus::Cancelled {
        PaymentStatus::RefundDue
    } else {
        PaymentStatus::Succeeded
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_000_000;

    fn order(status: OrderStatus) -> OrderCopy {
        OrderCopy {
            id: "o1".into(),
            user_id: "u1".into(),
            price: Price::from_cents(2050).unwrap(),
            status,
            expires_ms: NOW + 60_000,
            version: 0,
        }
    }

    fn payment(status: PaymentStatus, busy_until_ms: i64) -> Payment {
        Payment {
            id: "p1".into(),
            order_id: "o1".into(),
            status,
            amount: Price::from_cents(2050).unwrap(),
            token: Some("tok_visa".into()),
            busy_until_ms,
            stripe_id: None,
        }
    }

    fn refused(result: Result<Step, ApiError>) -> String {
        match result {
            Err(ApiError::BadRequest(message)) => message,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn an_open_order_without_payment_is_charged() {
        assert_eq!(
            next_step(&order(OrderStatus::Created), None, NOW).unwrap(),
            Step::Charge
        );
    }

    #[test]
    fn a_cancelled_or_expired_order_cannot_be_paid() {
        assert_eq!(
            refused(next_step(&order(OrderStatus::Cancelled), None, NOW)),
            CANCELLED
        );
        let mut late = order(OrderStatus::Created);
        late.expires_ms = NOW;
        assert_eq!(refused(next_step(&late, None, NOW)), CANCELLED);
        // Not even by resuming an attempt made before the deadline.
        let abandoned = payment(PaymentStatus::Pending, 0);
        assert_eq!(refused(next_step(&late, Some(&abandoned), NOW)), CANCELLED);
        let refunded = payment(PaymentStatus::Refunded, 0);
        assert_eq!(
            refused(next_step(
                &order(OrderStatus::Cancelled),
                Some(&refunded),
                NOW
            )),
            CANCELLED
        );
    }

    #[test]
    fn a_paid_order_is_already_paid_also_after_its_deadline() {
        let paid = payment(PaymentStatus::Succeeded, 0);
        assert_eq!(
            refused(next_step(&order(OrderStatus::Created), Some(&paid), NOW)),
            ALREADY_PAID
        );
        let mut late = order(OrderStatus::Created);
        late.expires_ms = NOW - 1;
        assert_eq!(refused(next_step(&late, Some(&paid), NOW)), ALREADY_PAID);
    }

    #[test]
    fn an_attempt_in_flight_counts_as_paid_and_an_abandoned_one_is_resumed() {
        let in_flight = payment(PaymentStatus::Pending, NOW + 1);
        assert_eq!(
            refused(next_step(
                &order(OrderStatus::Created),
                Some(&in_flight),
                NOW
            )),
            ALREADY_PAID
        );
        let abandoned = payment(PaymentStatus::Pending, NOW);
        assert_eq!(
            next_step(&order(OrderStatus::Created), Some(&abandoned), NOW).unwrap(),
            Step::Resume(abandoned)
        );
    }

    #[test]
    fn a_charge_for_a_cancelled_order_is_due_back() {
        assert_eq!(
            charged_status(&order(OrderStatus::Created)),
            PaymentStatus::Succeeded
        );
        assert_eq!(
            charged_status(&order(OrderStatus::Cancelled)),
            PaymentStatus::RefundDue
        );
        // Past its deadline but not cancelled: orders decides (complete, or cancelled
        // and then refunded through order:cancelled).
        let mut late = order(OrderStatus::Created);
        late.expires_ms = NOW - 1;
        assert_eq!(charged_status(&late), PaymentStatus::Succeeded);
    }

    #[test]
    fn keys_name_the_order_and_the_attempt() {
        let payment = payment(PaymentStatus::Pending, 0);
        assert_eq!(payment.charge_key(), "charge-o1-p1");
        assert_eq!(payment.refund_key(), "refund-p1");
        for status in PaymentStatus::ALL {
            assert_eq!(PaymentStatus::parse(status.as_str()), Some(*status));
        }
    }
}
