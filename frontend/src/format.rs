//! Prices and times as the pages show them.

/// `$20.50`.
pub fn price(price: f64) -> String {
    format!("${price:.2}")
}

/// A price as typed, shown with two decimals once the field loses focus (`12.5` →
/// `12.50`); left as it is when it is not a number, for the API to say why.
pub fn price_input(text: &str) -> String {
    match text.trim().parse::<f64>() {
        Ok(value) if value.is_finite() => format!("{value:.2}"),
        _ => text.to_owned(),
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
pub fn status(status: &str) -> &str {
    match status {
        "created" => "Awaiting payment",
        "awaiting:payment" => "Awaiting payment",
        "cancelled" => "Cancelled",
        "complete" => "Paid",
        other => other,
    }
}
