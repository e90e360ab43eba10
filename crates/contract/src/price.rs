//! Prices in exact cents: read from the API's numbers and numeric strings, and from
//! the events' dollars, by their decimal text, never through a float; written as the
//! API's numbers (`20`, `20.5`) and as the events' dollars (`20.0`, `20.5`).
//!
//! A JSON number reaches Rust as an `f64` (or an integer); Rust prints an `f64` as the
//! shortest decimal that reads back as the same `f64`, which for any decimal of up to
//! 15 significant digits is that decimal. So `0.29` is read as the text `0.29`, then
//! as 29 cents, where `0.29 * 100.0` would give 28.999999999999996. Written back, the
//! cents become the decimal text first (`0.29`), and that text the nearest `f64`, which
//! serde_json prints as the same shortest text.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;

/// The highest price: 1,000,000.00.
pub const MAX_PRICE_CENTS: i64 = 100_000_000;

/// A price in whole cents: more than 0, at most [`MAX_PRICE_CENTS`]. In the API's JSON
/// it is a number in dollars (`20`, `20.5`, `0.99`), as the API has always shown it;
/// events write it with [`dollars`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Price(i64);

/// Why a price was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PriceError {
    /// Absent, not a number, or not more than 0.
    NotPositive,
    TooPrecise,
    TooLarge,
}

/// Which request a price came with: API.md words a missing price differently when a
/// ticket is listed and when its listing is edited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listing {
    /// `POST /api/tickets`.
    New,
    /// `PUT /api/tickets/:id`.
    Edit,
}

impl Price {
    /// A JSON number, or a string holding one (`"12.5"`), with at most two decimals:
    /// what a client may send as a ticket's price.
    pub fn parse(value: Option<&Value>) -> Result<Price, PriceError> {
        match value {
            Some(Value::Number(number)) => Price::from_decimal(&number.to_string()),
            Some(Value::String(text)) => Price::from_decimal(text),
            _ => Err(PriceError::NotPositive),
        }
    }

    /// A price written in decimal (`12`, `12.5`, `0.99`, `1.5e2`).
    pub fn from_decimal(text: &str) -> Result<Price, PriceError> {
        let cents = cents_of(text)?;
        if cents > MAX_PRICE_CENTS {
            return Err(PriceError::TooLarge);
        }
        Ok(Price(cents))
    }

    /// A stored price; `None` when the number is not a valid price.
    pub fn from_cents(cents: i64) -> Option<Price> {
        (1..=MAX_PRICE_CENTS)
            .contains(&cents)
            .then_some(Price(cents))
    }

    pub fn cents(self) -> i64 {
        self.0
    }

    /// The price in dollars, in decimal: `20`, `20.5`, `0.29` (no trailing zeros).
    pub fn to_decimal(self) -> String {
        let (whole, cents) = (self.0 / 100, self.0 % 100);
        match cents {
            0 => whole.to_string(),
            _ if cents % 10 == 0 => format!("{whole}.{}", cents / 10),
            _ => format!("{whole}.{cents:02}"),
        }
    }

    /// The `f64` nearest to the price in dollars: what JSON writes for it.
    fn to_f64(self) -> f64 {
        self.to_decimal()
            .parse()
            .expect("a decimal of at most 9 digits reads as an f64")
    }
}

impl PriceError {
    /// API.md's validation message for a price sent with `listing`.
    pub fn message(self, listing: Listing) -> &'static str {
        match (self, listing) {
            (PriceError::NotPositive, Listing::New) => "Price must be greater than 0",
            (PriceError::NotPositive, Listing::Edit) => {
                "Price must be provided and must be greater than 0"
            }
            (PriceError::TooPrecise, _) => "Price must have at most 2 decimals",
            (PriceError::TooLarge, _) => "Price must be at most 1000000",
        }
    }
}

impl fmt::Display for PriceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PriceError::NotPositive => "not a number more than 0",
            PriceError::TooPrecise => "more than two decimals",
            PriceError::TooLarge => "more than 1000000",
        })
    }
}

/// The API's number: whole dollars as an integer (`20`), others with their decimals
/// (`20.5`).
impl Serialize for Price {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.0 % 100 == 0 {
            serializer.serialize_i64(self.0 / 100)
        } else {
            serializer.serialize_f64(self.to_f64())
        }
    }
}

/// A JSON number of dollars (integer or not), read exactly; anything else, or a number
/// that is not a price, fails.
impl<'de> Deserialize<'de> for Price {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Price, D::Error> {
        deserializer.deserialize_any(PriceVisitor)
    }
}

struct PriceVisitor;

impl PriceVisitor {
    fn price<E: de::Error>(text: &str) -> Result<Price, E> {
        Price::from_decimal(text).map_err(|why| E::custom(format!("price {text}: {why}")))
    }
}

impl Visitor<'_> for PriceVisitor {
    type Value = Price;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a price: a number of dollars with at most two decimals")
    }

    fn visit_u64<E: de::Error>(self, dollars: u64) -> Result<Price, E> {
        PriceVisitor::price(&dollars.to_string())
    }

    fn visit_i64<E: de::Error>(self, dollars: i64) -> Result<Price, E> {
        PriceVisitor::price(&dollars.to_string())
    }

    fn visit_f64<E: de::Error>(self, dollars: f64) -> Result<Price, E> {
        // `Display` prints the shortest decimal that reads back as this f64: the
        // number's text in the JSON (module docs). Never an exponent; NaN and the
        // infinities are not JSON and fail as not numbers.
        PriceVisitor::price(&dollars.to_string())
    }
}

/// The events' price (wit/events.wit's `dollars`): a [`Price`] written as a JSON
/// number of dollars that is always a float (`20.0`, `20.5`), as events have always
/// carried it, and read exactly like a [`Price`]. The generated event types use it as
/// `#[serde(with = "crate::price::dollars")]`.
pub mod dollars {
    use serde::{Deserialize, Deserializer, Serializer};

    use super::Price;

    pub fn serialize<S: Serializer>(price: &Price, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_f64(price.to_f64())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Price, D::Error> {
        Price::deserialize(deserializer)
    }
}

/// Cents of a decimal text such as `12`, `12.5`, `0.99`, `1.5e2`.
fn cents_of(text: &str) -> Result<i64, PriceError> {
    let (mantissa, exponent) = match text.find(['e', 'E']) {
        Some(at) => {
            let exponent: i32 = text[at + 1..]
                .parse()
                .map_err(|_| PriceError::NotPositive)?;
            (&text[..at], exponent)
        }
        None => (text, 0),
    };
    let (negative, mantissa) = match mantissa.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, mantissa.strip_prefix('+').unwrap_or(mantissa)),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let is_digits = |part: &str| part.bytes().all(|byte| byte.is_ascii_digit());
    if whole.len() + fraction.len() == 0 || !is_digits(whole) || !is_digits(fraction) {
        return Err(PriceError::NotPositive);
    }
    let mut digits = format!("{whole}{fraction}");
    // Where the point goes, counted from the right end of `digits`, to give cents.
    let shift = i64::from(exponent) - fraction.len() as i64 + 2;
    if shift >= 0 {
        if shift > 18 {
            return if digits.bytes().all(|byte| byte == b'0') {
                Err(PriceError::NotPositive)
            } else {
                Err(PriceError::TooLarge)
            };
        }
        digits.push_str(&"0".repeat(shift as usize));
    } else {
        let dropped = usize::try_from(-shift)
            .unwrap_or(usize::MAX)
            .min(digits.len());
        let kept = digits.len() - dropped;
        if digits[kept..].bytes().any(|byte| byte != b'0') {
            return if digits.bytes().all(|byte| byte == b'0') {
                Err(PriceError::NotPositive)
            } else {
                Err(PriceError::TooPrecise)
            };
        }
        digits.truncate(kept);
    }
    let significant = digits.trim_start_matches('0');
    if significant.is_empty() {
        return Err(PriceError::NotPositive);
    }
    if negative {
        return Err(PriceError::NotPositive);
    }
    if significant.len() > 15 {
        return Err(PriceError::TooLarge);
    }
    significant.parse().map_err(|_| PriceError::TooLarge)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn price(value: Value) -> Result<i64, PriceError> {
        Price::parse(Some(&value)).map(Price::cents)
    }

    #[test]
    fn prices_are_read_exactly_in_cents() {
        assert_eq!(price(json!(20)), Ok(2000));
        assert_eq!(price(json!(20.5)), Ok(2050));
        assert_eq!(price(json!(0.29)), Ok(29));
        assert_eq!(price(json!(0.01)), Ok(1));
        assert_eq!(price(json!(1234.56)), Ok(123_456));
        assert_eq!(price(json!("12.5")), Ok(1250));
        assert_eq!(price(json!("12.50")), Ok(1250));
        assert_eq!(price(json!("12.500")), Ok(1250));
        assert_eq!(price(json!("1.5e2")), Ok(15_000));
        assert_eq!(price(json!("12.")), Ok(1200));
        assert_eq!(price(json!(".5")), Ok(50));
        assert_eq!(price(json!(1_000_000)), Ok(MAX_PRICE_CENTS));
    }

    #[test]
    fn prices_that_are_not_positive_numbers_are_refused() {
        for value in [
            json!(0),
            json!(-5),
            json!("-0.5"),
            json!("0.00"),
            json!("abc"),
            json!(""),
            json!(" 12"),
            json!("."),
            json!(null),
            json!(true),
            json!([10]),
            json!("1e"),
        ] {
            assert_eq!(
                price(value.clone()),
                Err(PriceError::NotPositive),
                "{value}"
            );
        }
        assert_eq!(Price::parse(None), Err(PriceError::NotPositive));
    }

    #[test]
    fn more_than_two_decimals_or_a_million_are_refused() {
        assert_eq!(price(json!(12.345)), Err(PriceError::TooPrecise));
        assert_eq!(price(json!("0.001")), Err(PriceError::TooPrecise));
        assert_eq!(price(json!(1_000_000.01)), Err(PriceError::TooLarge));
        assert_eq!(price(json!(1e300)), Err(PriceError::TooLarge));
        assert_eq!(
            price(json!("99999999999999999999999")),
            Err(PriceError::TooLarge)
        );
    }

    #[test]
    fn prices_keep_the_api_number_shape() {
        let shown = |cents| serde_json::to_string(&Price::from_cents(cents).unwrap()).unwrap();
        assert_eq!(shown(2000), "20");
        assert_eq!(shown(2050), "20.5");
        assert_eq!(shown(29), "0.29");
        assert_eq!(shown(123_456), "1234.56");
        assert_eq!(Price::from_cents(0), None);
    }

    #[test]
    fn prices_are_shown_in_decimal_without_trailing_zeros() {
        let decimal = |cents| Price::from_cents(cents).unwrap().to_decimal();
        assert_eq!(decimal(2000), "20");
        assert_eq!(decimal(2050), "20.5");
        assert_eq!(decimal(29), "0.29");
        assert_eq!(decimal(5), "0.05");
        assert_eq!(decimal(MAX_PRICE_CENTS), "1000000");
    }

    /// Values that float arithmetic gets wrong (`0.29 * 100.0` is 28.999999999999996,
    /// `1.13 * 100.0` is 112.99999999999999, `4.35 * 100.0` 434.99999999999994).
    const AWKWARD: [(&str, i64); 8] = [
        ("0.29", 29),
        ("1.13", 113),
        ("4.35", 435),
        ("19.99", 1999),
        ("1e-2", 1),
        ("100", 10_000),
        ("1234.56", 123_456),
        ("999999.99", 99_999_999),
    ];

    #[test]
    fn json_numbers_are_read_as_exact_cents() {
        for (json, cents) in AWKWARD {
            let price: Price = serde_json::from_str(json).unwrap();
            assert_eq!(price.cents(), cents, "{json}");
        }
        // The sum of 0.1 and 0.2 as a float is not a price of two decimals.
        let sum = serde_json::to_string(&(0.1_f64 + 0.2)).unwrap();
        assert_eq!(sum, "0.30000000000000004");
        assert!(serde_json::from_str::<Price>(&sum).is_err());
        for refused in ["12.345", "0", "-5", "0.001", "1000000.01", "\"12\"", "null"] {
            assert!(serde_json::from_str::<Price>(refused).is_err(), "{refused}");
        }
    }

    #[test]
    fn event_dollars_are_floats_that_come_back_as_the_same_cents() {
        #[derive(Debug, PartialEq, Serialize, Deserialize)]
        struct Data {
            #[serde(with = "dollars")]
            price: Price,
        }
        let written = |cents| {
            serde_json::to_string(&Data {
                price: Price::from_cents(cents).unwrap(),
            })
            .unwrap()
        };
        assert_eq!(written(2000), r#"{"price":20.0}"#);
        assert_eq!(written(2050), r#"{"price":20.5}"#);
        assert_eq!(written(29), r#"{"price":0.29}"#);
        for (json, cents) in AWKWARD {
            let data: Data = serde_json::from_str(&format!(r#"{{"price":{json}}}"#)).unwrap();
            assert_eq!(data.price.cents(), cents, "{json}");
            assert_eq!(serde_json::from_str::<Data>(&written(cents)).unwrap(), data);
        }
        assert!(serde_json::from_str::<Data>(r#"{"price":4.355}"#).is_err());
    }

    #[test]
    fn a_missing_price_is_worded_per_listing() {
        assert_eq!(
            PriceError::NotPositive.message(Listing::New),
            "Price must be greater than 0"
        );
        assert_eq!(
            PriceError::NotPositive.message(Listing::Edit),
            "Price must be provided and must be greater than 0"
        );
        assert_eq!(
            PriceError::TooPrecise.message(Listing::Edit),
            "Price must have at most 2 decimals"
        );
    }
}
