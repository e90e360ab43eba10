//! The bus's clock: a wake-up every [`TICK_MS`] for every listening service, without
//! timers and without traffic. Spin has no timers, so the ticks are Redis keys
//! `bus:tick:<slot>` set to expire at the start of each slot (`PXAT`); with
//! `notify-keyspace-events Ex`, Redis publishes each key's name on
//! `__keyevent@0__:expired` when it expires, and every service that has that channel
//! as a Redis trigger is invoked then: it relays leftover events, notices a Redis that
//! lost writes, and drains every stream it listens to (`Listener::on_tick`).
//!
//! Ticks are armed [`TICKS_AHEAD`] slots ahead (two minutes), so they keep coming
//! through a Redis restart that keeps its data (append-only file): the slots after the
//! restart still ring, with no request arriving. Every relay and every tick arms them
//! (one `EXISTS` when they are armed already), and so does expiration's health route,
//! which Kubernetes probes: after a Redis that lost everything, or a silence longer
//! than two minutes, the first write or probe starts them again.

use anyhow::Result;

use crate::redis::Redis;

/// The time between two ticks.
pub const TICK_MS: u64 = 5_000;
/// How many ticks are armed ahead of now.
pub const TICKS_AHEAD: u64 = 24;
/// The prefix of the tick keys (the payload of their expiry notification).
pub const KEY_PREFIX: &str = "bus:tick:";

/// Lua that arms the ticks, from Redis's own clock (`TIME`), unless the furthest one is
/// armed already: `arm_ticks(period_ms, ahead)`. Part of every script that arms them.
pub(crate) const ARM_TICKS_FUNCTION: &str = "
local function arm_ticks(period, ahead)
  local time = redis.call('TIME')
  local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
  local slot = math.floor(now / period)
  if redis.call('EXISTS', 'bus:tick:' .. (slot + ahead)) == 1 then return end
  for i = 1, ahead do
    redis.call('SET', 'bus:tick:' .. (slot + i), '', 'PXAT', (slot + i) * period, 'NX')
  end
end
";

/// Whether a Redis trigger's payload is a tick (the name of an expired tick key).
pub fn is_tick(payload: &[u8]) -> bool {
    payload.starts_with(KEY_PREFIX.as_bytes())
}

/// Arms the ticks on `redis` (a no-op when they are armed).
pub(crate) fn arm_with(redis: &Redis) -> Result<()> {
    let script = format!("{ARM_TICKS_FUNCTION} arm_ticks(tonumber(ARGV[1]), tonumber(ARGV[2]))");
    redis.run(
        "EVAL",
        &[&script, "0", &TICK_MS.to_string(), &TICKS_AHEAD.to_string()],
    )?;
    Ok(())
}

/// Arms the ticks: for a route that Kubernetes probes (expiration's health route), so
/// that the bus's clock starts again after a Redis that lost its keys.
pub fn arm() -> Result<()> {
    let settings = crate::settings::Settings::load()?;
    arm_with(&Redis::open(&settings.redis_url)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tick_is_an_expired_tick_key() {
        assert!(is_tick(b"bus:tick:359314386"));
        assert!(!is_tick(b"expiration:alarm"));
        assert!(!is_tick(b"bus:tickets:lease:order:created"));
        assert!(!is_tick(br#"{"subject":"order:created"}"#));
    }
}
