//! Tickets' rules: titles, and the ticket and how it changes: edited by its owner
//! while for sale, reserved and released by orders. Prices are `contract::price`; the
//! API's ticket body is `contract::http::Ticket`.

use bus::{TicketCreated, TicketUpdated};
use common::required;
pub use contract::price::Price;

/// The longest title, in characters.
pub const MAX_TITLE_CHARS: usize = 200;

/// A title: trimmed, 1 to 200 characters, any Unicode, kept as given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Title(String);

impl Title {
    pub fn parse(raw: Option<&str>) -> Result<Title, &'static str> {
        let title = required(raw, "Title is required")?;
        if title.chars().count() > MAX_TITLE_CHARS {
            return Err("Title must be at most 200 characters");
        }
        Ok(Title(title.to_owned()))
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// A ticket; an order id is set while an order reserves it. It changes only through
/// its methods, each change at the next version.
#[derive(Debug, Clone, PartialEq)]
pub struct Ticket {
    id: String,
    title: String,
    price: Price,
    user_id: String,
    version: u32,
    order_id: Option<String>,
}

/// Why a ticket refuses a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// An order holds it: it cannot be edited, nor reserved by another order unless
    /// handed over.
    Reserved,
    /// No order holds it: there is nothing to release or hand over.
    ForSale,
}

impl Ticket {
    /// A new ticket of `user_id`, for sale, at version 0.
    pub fn new(id: String, title: Title, price: Price, user_id: String) -> Ticket {
        Ticket {
            id,
            title: title.into_string(),
            price,
            user_id,
            version: 0,
            order_id: None,
        }
    }

    /// A ticket as it was stored (made by these methods): nothing to check again.
    pub fn stored(
        id: String,
        title: String,
        price: Price,
        user_id: String,
        version: u32,
        order_id: Option<String>,
    ) -> Ticket {
        Ticket {
            id,
            title,
            price,
            user_id,
            version,
            order_id,
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn title(&self) -> &str {
        &self.title
    }

    pub fn price(&self) -> Price {
        self.price
    }

    pub fn user_id(&self) -> &str {
        &self.user_id
    }

    pub fn version(&self) -> u32 {
        self.version
    }

    /// The order that holds the ticket, if one does.
    pub fn order_id(&self) -> Option<&str> {
        self.order_id.as_deref()
    }

    pub fn is_reserved(&self) -> bool {
        self.order_id.is_some()
    }

    /// The owner's new title and price; refused while an order holds the ticket. The
    /// new version.
    pub fn edit(&mut self, title: Title, price: Price) -> Result<u32, Refused> {
        if self.is_reserved() {
            return Err(Refused::Reserved);
        }
        self.title = title.into_string();
        self.price = price;
        Ok(self.next_version())
    }

    /// Held by `order_id`, off sale; refused while an order holds it. The new version.
    pub fn reserve(&mut self, order_id: String) -> Result<u32, Refused> {
        if self.is_reserved() {
            return Err(Refused::Reserved);
        }
        self.order_id = Some(order_id);
        Ok(self.next_version())
    }

    /// Held by `order_id` instead of the order that holds it, in one change: the order
    /// it replaces was cancelled, but its `order:cancelled` has not arrived yet. Refused
    /// when no order holds it (that is [`Ticket::reserve`]). The new version.
    pub fn hand_over(&mut self, order_id: String) -> Result<u32, Refused> {
        if !self.is_reserved() {
            return Err(Refused::ForSale);
        }
        self.order_id = Some(order_id);
        Ok(self.next_version())
    }

    /// For sale again; refused when no order holds it. The new version.
    pub fn release(&mut self) -> Result<u32, Refused> {
        if !self.is_reserved() {
            return Err(Refused::ForSale);
        }
        self.order_id = None;
        Ok(self.next_version())
    }

    fn next_version(&mut self) -> u32 {
        self.version += 1;
        self.version
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

    fn title(text: &str) -> Title {
        Title::parse(Some(text)).unwrap()
    }

    fn for_sale() -> Ticket {
        Ticket::stored(
            "t1".into(),
            "concert".into(),
            Price::from_cents(2050).unwrap(),
            "u1".into(),
            2,
            None,
        )
    }

    fn reserved_by(order_id: &str) -> Ticket {
        let mut ticket = for_sale();
        ticket.order_id = Some(order_id.into());
        ticket
    }

    #[test]
    fn events_carry_the_ticket_s_exact_price() {
        let mut ticket = Ticket::new(
            "t1".into(),
            title("concert"),
            Price::from_cents(2050).unwrap(),
            "u1".into(),
        );
        assert_eq!(ticket.created_event().price, ticket.price());
        ticket.reserve("o1".into()).unwrap();
        assert_eq!(ticket.updated_event().price, ticket.price());
        assert_eq!(ticket.updated_event().order_id.as_deref(), Some("o1"));
    }

    #[test]
    fn a_ticket_for_sale_is_edited_at_the_next_version() {
        let mut ticket = for_sale();
        let price = Price::from_cents(1000).unwrap();
        assert_eq!(ticket.edit(title("opera"), price), Ok(3));
        assert_eq!((ticket.title(), ticket.price()), ("opera", price));
    }

    #[test]
    fn a_reserved_ticket_cannot_be_edited() {
        let mut ticket = reserved_by("o1");
        let price = Price::from_cents(1000).unwrap();
        assert_eq!(ticket.edit(title("opera"), price), Err(Refused::Reserved));
        assert_eq!(ticket, reserved_by("o1"), "unchanged");
    }

    #[test]
    fn a_ticket_for_sale_is_reserved_at_the_next_version() {
        let mut ticket = for_sale();
        assert_eq!(ticket.reserve("o1".into()), Ok(3));
        assert_eq!(ticket.order_id(), Some("o1"));
    }

    #[test]
    fn a_reserved_ticket_cannot_be_reserved_again() {
        let mut ticket = reserved_by("o1");
        assert_eq!(ticket.reserve("o2".into()), Err(Refused::Reserved));
        assert_eq!(ticket, reserved_by("o1"), "unchanged");
    }

    #[test]
    fn a_reserved_ticket_is_handed_over_in_one_version() {
        let mut ticket = reserved_by("o1");
        assert_eq!(ticket.hand_over("o2".into()), Ok(3));
        assert_eq!(ticket.order_id(), Some("o2"));
        assert_eq!(for_sale().hand_over("o2".into()), Err(Refused::ForSale));
    }

    #[test]
    fn a_reserved_ticket_is_released_at_the_next_version() {
        let mut ticket = reserved_by("o1");
        assert_eq!(ticket.release(), Ok(3));
        assert_eq!(ticket.order_id(), None);
        assert!(!ticket.is_reserved());
    }

    #[test]
    fn a_ticket_for_sale_cannot_be_released() {
        let mut ticket = for_sale();
        assert_eq!(ticket.release(), Err(Refused::ForSale));
        assert_eq!(ticket, for_sale(), "unchanged");
    }
}
