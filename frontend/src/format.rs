//! Prices, times and statuses as the pages show them.

use crate::api::{OrderStatus, Price};

/// `$20.50`.
pub fn price(price: Price) -> String {
    let cents = price.cents();
    format!("${}.{:02}", cents / 100, cents % 100)
}

/// A price as typed, shown with two decimals once the field loses focus (`12.5` →
/// `12.50`, `12` → `12.00`). Anything else is left exactly as typed, for the API to
/// say why: never rounded (`0.001` stays, rather than turning into a valid-looking
/// `0.00`), never a number the user did not write.
pub fn price_input(text: &str) -> String {
    let trimmed = text.trim();
    let (whole, decimals) = trimmed.split_once('.').unwrap_or((trimmed, ""));
    let is_plain = !whole.is_empty()
        && whole.bytes().all(|byte| byte.is_ascii_digit())
        && decimals.len() <= 2
        && decimals.bytes().all(|byte| byte.is_ascii_digit());
    if is_plain {
        format!("{whole}.{decimals:0<2}")
    } else {
        text.to_owned()
    }
}

/// Seconds from now until an ISO-8601 time (negative once it has passed); `None` when
/// the browser cannot read it.
pub fn seconds_until(timestamp: &str) -> Option<i64> {
    let at = js_sys::Date::parse(timestamp);
    if at.is_nan() {
        return None;
    }
    Some(((at - js_sys::Date::now()) / 1000.0).ceil() as i64)
}

/// `14:59` for 899 seconds.
pub fn countdown(seconds: i64) -> String {
    let seconds = seconds.max(0);
    format!("{}:{:02}", seconds / 60, seconds % 60)
}

/// An order's status in words.
pub fn status(status: OrderStatus) -> &'static str {
    match status {
        OrderStatus::Created | OrderStatus::AwaitingPayment => "Awaiting payment",
        OrderStatus::Cancelled => "Cancelled",
        OrderStatus::Complete => "Paid",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_get_two_decimals_without_changing_their_value() {
        assert_eq!(price_input("12"), "12.00");
        assert_eq!(price_input("12.5"), "12.50");
        assert_eq!(price_input(" 49.99 "), "49.99");
        assert_eq!(price_input("0"), "0.00");
        assert_eq!(price_input("7."), "7.00");
        for kept in ["", "abc", "0.001", "1e3", "-5", ".5", "12,50", "1.2.3"] {
            assert_eq!(price_input(kept), kept);
        }
    }

    #[test]
    fn countdowns_and_statuses_read_well() {
        assert_eq!(countdown(899), "14:59");
        assert_eq!(countdown(5), "0:05");
        assert_eq!(countdown(-3), "0:00");
        assert_eq!(status(OrderStatus::AwaitingPayment), "Awaiting payment");
        assert_eq!(status(OrderStatus::Complete), "Paid");
        let price_of = |cents| price(Price::from_cents(cents).unwrap());
        assert_eq!(price_of(2050), "$20.50");
        assert_eq!(price_of(29), "$0.29");
        assert_eq!(price_of(123_456), "$1234.56");
    }
}
