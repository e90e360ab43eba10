//! The bus's Spin variables (each service grants them in spin.toml).

use anyhow::{Context, Result};
use spin_sdk::variables;

/// How long a delivered entry may stay unacknowledged before it is delivered again.
pub const DEFAULT_ACK_WAIT_MS: u64 = 30_000;
/// Deliveries of one entry before it goes to `events:dead`.
pub const DEFAULT_MAX_DELIVERIES: u64 = 10;

pub struct Settings {
    /// `redis_url`: where the streams live.
    pub redis_url: String,
    /// `event_ack_wait_ms`.
    pub ack_wait_ms: u64,
    /// `event_max_deliveries`.
    pub max_deliveries: u64,
}

impl Settings {
    pub fn load() -> Result<Settings> {
        let redis_url = variables::get("redis_url")
            .map_err(|err| anyhow::anyhow!("{err:?}"))
            .context("the variable `redis_url` (grant it to the component in spin.toml)")?;
        Ok(Settings {
            redis_url,
            ack_wait_ms: number("event_ack_wait_ms", DEFAULT_ACK_WAIT_MS),
            max_deliveries: number("event_max_deliveries", DEFAULT_MAX_DELIVERIES).max(1),
        })
    }
}

/// An optional numeric variable: its default when not granted; a value that is not a
/// number is logged and replaced by the default rather than stopping the service.
fn number(name: &str, default: u64) -> u64 {
    match variables::get(name) {
        Ok(text) => text.trim().parse().unwrap_or_else(|_| {
            common::log!(
                "bus: variable `{name}` = `{text}` is not a whole number; using {default}"
            );
            default
        }),
        Err(_) => default,
    }
}
