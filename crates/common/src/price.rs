//! Prices in exact cents: parsed from the API's numbers and numeric strings without a
//! float, shown in JSON as the API's numbers (`20`, `20.5`), carried in events as
//! dollars.

use serde::{Serialize, Serializer};
use serde_json::Value;

/// The highest price: 1,000,000.00.
pub const MAX_PRICE_CENTS: i64 = 100_000_000;

/// A price in whole cents: more than 0, at most [`MAX_PRICE_CENTS`]. In JSON it is a
/// number in dollars (`20`, `20.5`, `0.99`), as the API has always shown it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Price(i64);

/// Why a price was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PriceError {
    /// Absent, not a number, or not more than 0.
    NotPositive,
    TooPrecise,
    TooLarge,
}

impl Price {
    /// A JSON number, or a string holding one (`"12.5"`), with at most two decimals.
    /// Read from its decimal text, never through a float, so `0.29` is 29 cents.
    pub fn parse(value: Option<&Value>) -> Result<Price, PriceError> {
        let text = match value {
            Some(Value::Number(number)) => number.to_string(),
            Some(Value::String(text)) => text.clone(),
            _ => return Err(PriceError::NotPositive),
        };
        let cents = cents_of(&text)?;
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

    /// A price from event data in dollars; `None` unless it is whole cents.
    pub fn from_dollars(dollars: f64) -> Option<Price> {
        let cents = (dollars * 100.0).round();
        if !cents.is_finite() || ((dollars * 100.0) - cents).abs() > 1e-6 {
            return None;
        }
        Price::from_cents(cents as i64)
    }

    /// Dollars, for event data (the nearest double of an exact two-decimal value).
    pub fn dollars(self) -> f64 {
        self.0 as f64 / 100.0
    }
}

impl PriceError {
    /// The message on create; `on_update` has the wording API.md gives for `PUT`.
    pub fn message(self, on_update: bool) -> &'static str {
        match (self, on_update) {
            (PriceError::NotPositive, false) => "Price must be greater than 0",
            (PriceError::NotPositive, true) => "Price must be provided and must be greater than 0",
            (PriceError::TooPrecise, _) => "Price must have at most 2 decimals",
            (PriceError::TooLarge, _) => "Price must be at most 1000000",
        }
    }
}

impl Serialize for Price {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.0 % 100 == 0 {
            serializer.serialize_i64(self.0 / 100)
        } else {
            serializer.serialize_f64(self.dollars())
        }
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
    fn event_dollars_come_back_as_the_same_cents() {
        for cents in [1, 29, 2050, 123_456, MAX_PRICE_CENTS] {
            let price = Price::from_cents(cents).unwrap();
            assert_eq!(Price::from_dollars(price.dollars()), Some(price));
        }
        assert_eq!(Price::from_dollars(0.001), None);
        assert_eq!(Price::from_dollars(-1.0), None);
        assert_eq!(Price::from_dollars(f64::NAN), None);
    }
}
