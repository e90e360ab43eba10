//! Orders' rules: the order, with its copy of the ticket (the API's order body is
//! `contract::http::Order`).

use bus::{OrderCancelled, OrderCreated, OrderStatus, OrderedTicket, TicketRef};
use common::price::Price;

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

/// An order of a ticket, by a user.
#[derive(Debug, Clone, PartialEq)]
pub struct Order {
    pub id: String,
    pub user_id: String,
    pub status: OrderStatus,
    pub expires_at: String,
    pub version: u32,
    pub ticket: TicketCopy,
}

impl Order {
    /// Cancelled orders no longer hold their ticket; complete ones are paid for.
    pub fn is_settled(&self) -> bool {
        matches!(self.status, OrderStatus::Cancelled | OrderStatus::Complete)
    }

    pub fn created_event(&self) -> OrderCreated {
        OrderCreated {
            id: self.id.clone(),
            version: self.version,
            status: self.status,
            user_id: self.user_id.clone(),
            expires_at: self.expires_at.clone(),
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

    #[test]
    fn order_created_carries_the_ticket_s_exact_price() {
        let order = Order {
            id: "o1".into(),
            user_id: "u1".into(),
            status: OrderStatus::AwaitingPayment,
            expires_at: "2026-12-03T12:15:00.000Z".into(),
            version: 0,
            ticket: TicketCopy {
                id: "t1".into(),
                title: "concert".into(),
                price: Price::from_cents(2050).unwrap(),
                version: 3,
            },
        };
        assert_eq!(order.created_event().ticket.price, order.ticket.price);
    }

    #[test]
    fn the_payment_window_defaults_to_15_minutes() {
        assert_eq!(expiration_seconds(Some("60")), 60);
        assert_eq!(expiration_seconds(Some("0")), 900);
        assert_eq!(expiration_seconds(Some("soon")), 900);
        assert_eq!(expiration_seconds(None), 900);
    }
}
