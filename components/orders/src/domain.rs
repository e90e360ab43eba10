//! Orders' rules: the order, with its copy of the ticket, and how its status may
//! change (created, then cancelled or complete, once). The API's order body is
//! `contract::http::Order`.

use bus::{OrderCancelled, OrderCreated, OrderStatus, OrderedTicket, TicketRef};
use common::clock::Time;
use contract::price::Price;

/// The payment window when `order_expiration_seconds` is not set.
pub const DEFAULT_EXPIRATION_SECONDS: u64 = 900;

/// The ticket as orders knows it, from tickets' events.
#[derive(Debug, Clone, PartialEq)]
pub struct TicketCopy {
    pub id: String,
    pub title: String,
    pub price: Price,
    pub version: u32,
}

/// An order of a ticket, by a user. Its status changes only through its methods, each
/// change at the next version.
#[derive(Debug, Clone, PartialEq)]
pub struct Order {
    id: String,
    user_id: String,
    status: OrderStatus,
    expires_at: Time,
    version: u32,
    ticket: TicketCopy,
}

/// Why an order refuses a change: it is settled for good.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// It no longer holds its ticket.
    Cancelled,
    /// It is paid for.
    Complete,
}

impl Order {
    /// A new order of `user_id` for `ticket`, to be paid by `expires_at`.
    pub fn new(id: String, user_id: String, ticket: TicketCopy, expires_at: Time) -> Order {
        Order {
            id,
            user_id,
            status: OrderStatus::Created,
            expires_at,
            version: 0,
            ticket,
        }
    }

    /// An order as it was stored (made by these methods): nothing to check again.
    pub fn stored(
        id: String,
        user_id: String,
        status: OrderStatus,
        expires_at: Time,
        version: u32,
        ticket: TicketCopy,
    ) -> Order {
        Order {
            id,
            user_id,
            status,
            expires_at,
            version,
            ticket,
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn user_id(&self) -> &str {
        &self.user_id
    }

    pub fn status(&self) -> OrderStatus {
        self.status
    }

    pub fn expires_at(&self) -> Time {
        self.expires_at
    }

    pub fn version(&self) -> u32 {
        self.version
    }

    pub fn ticket(&self) -> &TicketCopy {
        &self.ticket
    }

    /// Cancels the order, which then no longer holds its ticket; refused once it is
    /// cancelled already or complete. The new version.
    pub fn cancel(&mut self) -> Result<u32, Settled> {
        self.settle(OrderStatus::Cancelled)
    }

    /// Completes the order: it is paid for. Refused once it is cancelled (payments then
    /// refunds the charge) or complete already. The new version.
    pub fn complete(&mut self) -> Result<u32, Settled> {
        self.settle(OrderStatus::Complete)
    }

    fn settle(&mut self, status: OrderStatus) -> Result<u32, Settled> {
        match self.status {
            OrderStatus::Cancelled => Err(Settled::Cancelled),
            OrderStatus::Complete => Err(Settled::Complete),
            OrderStatus::Created | OrderStatus::AwaitingPayment => {
                self.status = status;
                self.version += 1;
                Ok(self.version)
            }
        }
    }

    pub fn created_event(&self) -> OrderCreated {
        OrderCreated {
            id: self.id.clone(),
            version: self.version,
            status: self.status,
            user_id: self.user_id.clone(),
            expires_at: self.expires_at.to_string(),
            ticket: OrderedTicket {
                id: self.ticket.id.clone(),
                price: self.ticket.price,
            },
        }
    }

    pub fn cancelled_event(&self) -> OrderCancelled {
        OrderCancelled {
            id: self.id.clone(),
            version: self.version,
            ticket: TicketRef {
                id: self.ticket.id.clone(),
            },
        }
    }
}

/// `order_expiration_seconds` as given: a whole number of seconds, at least 1.
pub fn expiration_seconds(text: Option<&str>) -> u64 {
    text.and_then(|text| text.trim().parse::<u64>().ok())
        .filter(|seconds| *seconds > 0)
        .unwrap_or(DEFAULT_EXPIRATION_SECONDS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ticket() -> TicketCopy {
        TicketCopy {
            id: "t1".into(),
            title: "concert".into(),
            price: Price::from_cents(2050).unwrap(),
            version: 3,
        }
    }

    fn order_in(status: OrderStatus) -> Order {
        let expires_at = Time::parse("2026-12-03T12:15:00.000Z").unwrap();
        Order::stored("o1".into(), "u1".into(), status, expires_at, 4, ticket())
    }

    #[test]
    fn order_created_carries_the_ticket_s_exact_price_and_time() {
        let order = order_in(OrderStatus::AwaitingPayment);
        let event = order.created_event();
        assert_eq!(event.ticket.price, Price::from_cents(2050).unwrap());
        assert_eq!(event.expires_at, "2026-12-03T12:15:00.000Z");
    }

    #[test]
    fn a_new_order_is_created_at_version_0() {
        let order = Order::new("o1".into(), "u1".into(), ticket(), Time::from_ms(0));
        assert_eq!((order.status(), order.version()), (OrderStatus::Created, 0));
    }

    #[test]
    fn an_open_order_is_cancelled_at_the_next_version() {
        for status in [OrderStatus::Created, OrderStatus::AwaitingPayment] {
            let mut order = order_in(status);
            assert_eq!(order.cancel(), Ok(5));
            assert_eq!(
                (order.status(), order.version()),
                (OrderStatus::Cancelled, 5)
            );
        }
    }

    #[test]
    fn an_open_order_is_completed_at_the_next_version() {
        for status in [OrderStatus::Created, OrderStatus::AwaitingPayment] {
            let mut order = order_in(status);
            assert_eq!(order.complete(), Ok(5));
            assert_eq!(
                (order.status(), order.version()),
                (OrderStatus::Complete, 5)
            );
        }
    }

    #[test]
    fn a_complete_order_cannot_be_cancelled_or_completed_again() {
        let mut order = order_in(OrderStatus::Complete);
        assert_eq!(order.cancel(), Err(Settled::Complete));
        assert_eq!(order.complete(), Err(Settled::Complete));
        assert_eq!(order, order_in(OrderStatus::Complete), "unchanged");
    }

    #[test]
    fn a_cancelled_order_cannot_be_completed_or_cancelled_again() {
        let mut order = order_in(OrderStatus::Cancelled);
        assert_eq!(order.complete(), Err(Settled::Cancelled));
        assert_eq!(order.cancel(), Err(Settled::Cancelled));
        assert_eq!(order, order_in(OrderStatus::Cancelled), "unchanged");
    }

    #[test]
    fn the_payment_window_defaults_to_15_minutes() {
        assert_eq!(expiration_seconds(Some("60")), 60);
        assert_eq!(expiration_seconds(Some("0")), 900);
        assert_eq!(expiration_seconds(Some("soon")), 900);
        assert_eq!(expiration_seconds(None), 900);
    }
}
