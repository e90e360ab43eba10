//! The one clock every service reads the time from, and times as the API and the events
//! write them (ISO-8601 UTC with milliseconds, `2026-11-23T10:15:00.000Z`).
//!
//! A component's wall clock is its runtime's (WASI's `wall-clock`): reading it here, and
//! nowhere else, leaves one place to change what "now" is.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Serialize, Serializer};

/// Now.
pub fn now() -> SystemTime {
    SystemTime::now()
}

/// Now, in milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    Time::from(now()).as_ms()
}

/// A point in time to the millisecond, since the Unix epoch (never before it). Written
/// as ISO-8601 only at the edges: its `Display` and `Serialize`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Time(i64);

impl Time {
    pub fn now() -> Time {
        Time::from(now())
    }

    /// The time `ms` milliseconds after the epoch (a negative count is the epoch).
    pub fn from_ms(ms: i64) -> Time {
        Time(ms.max(0))
    }

    pub fn as_ms(self) -> i64 {
        self.0
    }

    /// A timestamp like `2026-11-23T10:15:00.000Z` (any RFC 3339 UTC time since the
    /// epoch); `None` if it is not one.
    pub fn parse(text: &str) -> Option<Time> {
        let time = humantime::parse_rfc3339(text).ok()?;
        let since = time.duration_since(UNIX_EPOCH).ok()?;
        i64::try_from(since.as_millis()).ok().map(Time)
    }

    /// `seconds` later (the end of time, for a sum too large to count).
    pub fn plus_seconds(self, seconds: u64) -> Time {
        let ms = i64::try_from(seconds.saturating_mul(1000)).unwrap_or(i64::MAX);
        Time(self.0.saturating_add(ms))
    }
}

impl From<SystemTime> for Time {
    fn from(time: SystemTime) -> Time {
        time.duration_since(UNIX_EPOCH)
            .map(|since| Time(i64::try_from(since.as_millis()).unwrap_or(i64::MAX)))
            .unwrap_or(Time(0))
    }
}

/// `2026-11-23T10:15:00.000Z`.
impl fmt::Display for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = u64::try_from(self.0).unwrap_or(0);
        let time = UNIX_EPOCH + Duration::from_millis(ms);
        write!(f, "{}", humantime::format_rfc3339_millis(time))
    }
}

impl Serialize for Time {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_iso_8601_utc_with_milliseconds() {
        assert_eq!(Time::from_ms(0).to_string(), "1970-01-01T00:00:00.000Z");
        let time = Time::from_ms(1_795_428_900_123);
        assert_eq!(time.to_string(), "2026-11-23T10:15:00.123Z");
        assert_eq!(
            serde_json::to_value(time).unwrap(),
            "2026-11-23T10:15:00.123Z"
        );
    }

    #[test]
    fn parsing_reads_back_what_display_wrote_and_nothing_else() {
        let time = Time::from_ms(1_795_428_900_123);
        assert_eq!(Time::parse(&time.to_string()), Some(time));
        assert_eq!(Time::parse("2026-11-23"), None);
        assert_eq!(Time::parse("1969-12-31T23:59:59.000Z"), None);
    }

    #[test]
    fn adding_seconds_saturates() {
        assert_eq!(Time::from_ms(500).plus_seconds(2).as_ms(), 2_500);
        assert_eq!(Time::from_ms(1).plus_seconds(u64::MAX).as_ms(), i64::MAX);
    }
}
