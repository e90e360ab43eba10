//! Orders' rules: the order as the API shows it, with its copy of the ticket.

use bus::{OrderCancelled, OrderCreated, OrderStatus, OrderedTicket, TicketRef};
use common::price::Price;
use serde::Serialize;

/// The payment window when `order_expiration_seconds` is not set.
pub const DEFAULT_EXPIRATION_SECONDS: u64 = 900;

/// The ticket as orders knows it, from tickets' events.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TicketCopy {
    pub id: String,
    pub title: String,
    pub price: Price,
    pub version: u32,
}

/// An order as the API shows it: `{id, userId, status, expiresAt, version, ticket}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
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
                price: self.ticket.price.dollars(),
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
    use serde_json::json;

    use super::*;

    #[test]
    fn an_order_shows_its_ticket_and_status_as_api_md() {
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
        assert_eq!(
            serde_json::to_value(&order).unwrap(),
            json!({
                "id": "o1", "userId": "u1", "status": "awaiting:payment",
                "expiresAt": "2026-12-03T12:15:00.000Z", "version": 0,
                "ticket": {"id": "t1", "title": "concert", "price": 20.5, "version": 3}
            })
        );
        assert_eq!(order.created_event().ticket.price, 20.5);
    }

    #[test]
    fn the_payment_window_defaults_to_15_minutes() {
        assert_eq!(expiration_seconds(Some("60")), 60);
        assert_eq!(expiration_seconds(Some("0")), 900);
        assert_eq!(expiration_seconds(Some("soon")), 900);
        assert_eq!(expiration_seconds(None), 900);
    }
}
