//! Tickets' rules: titles, and the ticket (prices are `contract::price`; the API's
//! ticket body is `contract::http::Ticket`).

use bus::{TicketCreated, TicketUpdated};
pub use common::price::Price;

/// The longest title, in characters.
pub const MAX_TITLE_CHARS: usize = 200;

/// A title: trimmed, 1 to 200 characters, any Unicode, kept as given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Title(String);

impl Title {
    pub fn parse(raw: Option<&str>) -> Result<Title, &'static str> {
        let title = raw.map(str::trim).unwrap_or_default();
        if title.is_empty() {
            return Err("Title is required");
        }
        if title.chars().count() > MAX_TITLE_CHARS {
            return Err("Title must be at most 200 characters");
        }
        Ok(Title(title.to_owned()))
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// A ticket; `orderId` is set while an order reserves it.
#[derive(Debug, Clone, PartialEq)]
pub struct Ticket {
    pub id: String,
    pub title: String,
    pub price: Price,
    pub user_id: String,
    pub version: u32,
    pub order_id: Option<String>,
}

impl Ticket {
    pub fn is_reserved(&self) -> bool {
        self.order_id.is_some()
    }

    pub fn created_event(&self) -> TicketCreated {
        TicketCreated {
            id: self.id.clone(),
            version: self.version,
            title: self.title.clone(),
            price: self.price,
            user_id: self.user_id.clone(),
        }
    }

    pub fn updated_event(&self) -> TicketUpdated {
        TicketUpdated {
            id: self.id.clone(),
            version: self.version,
            title: self.title.clone(),
            price: self.price,
            user_id: self.user_id.clone(),
            order_id: self.order_id.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_are_trimmed_and_bounded_in_characters() {
        assert_eq!(
            Title::parse(Some("  Концерт 🎸 ")).map(Title::into_string),
            Ok("Концерт 🎸".to_owned())
        );
        assert_eq!(Title::parse(Some("   ")), Err("Title is required"));
        assert_eq!(Title::parse(None), Err("Title is required"));
        let longest = "é".repeat(200);
        assert!(Title::parse(Some(&longest)).is_ok());
        assert_eq!(
            Title::parse(Some(&"é".repeat(201))),
            Err("Title must be at most 200 characters")
        );
    }

    #[test]
    fn events_carry_the_ticket_s_exact_price() {
        let ticket = Ticket {
            id: "t1".into(),
            title: "concert".into(),
            price: Price::from_cents(2050).unwrap(),
            user_id: "u1".into(),
            version: 0,
            order_id: Some("o1".into()),
        };
        assert_eq!(ticket.updated_event().price, ticket.price);
        assert_eq!(ticket.created_event().price, ticket.price);
    }
}
