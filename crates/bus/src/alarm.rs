//! Alarms: wake-ups at a time, without timers. A key set to expire at that time
//! (`PXAT`) makes Redis, with `notify-keyspace-events Ex`, publish the key's name on
//! `__keyevent@<db>__:expired`; a service that has that channel as a Redis trigger is
//! invoked then (components/expiration/src/lib.rs).

use anyhow::{Result, anyhow};
use spin_sdk::redis::RedisResult;

use crate::redis::Redis;
use crate::settings::Settings;

/// Sets the key to expire at `ARGV[1]` unless it is set to expire earlier already:
/// racing sweeps can only bring an alarm forward, never push it back.
const ARM_BY: &str = "local at = redis.call('PEXPIRETIME', KEYS[1]) \
    if at < 0 or tonumber(ARGV[1]) < at then \
    redis.call('SET', KEYS[1], '1', 'PXAT', ARGV[1]) return 1 end return 0";

/// One alarm of a service, named by its key.
#[derive(Debug, Clone, Copy)]
pub struct Alarm {
    pub key: &'static str,
}

impl Alarm {
    /// Makes sure the alarm rings at `at_ms` (milliseconds since the epoch) or earlier.
    pub fn ring_by(&self, at_ms: i64) -> Result<()> {
        let redis = connect()?;
        redis.run("EVAL", &[ARM_BY, "1", self.key, &at_ms.to_string()])?;
        Ok(())
    }

    /// Whether a Redis trigger's payload is this alarm ringing (the expired key's name).
    pub fn is_ringing(&self, payload: &[u8]) -> bool {
        payload == self.key.as_bytes()
    }
}

/// Whether Redis publishes expired keys (`notify-keyspace-events` holds `E` and `x`, or
/// `E` and `A`); `None` when Redis does not let us ask (managed services often refuse
/// `CONFIG`).
pub fn expiry_notifications_on() -> Result<Option<bool>> {
    let redis = connect()?;
    let reply = match redis.run("CONFIG", &["GET", "notify-keyspace-events"]) {
        Ok(reply) => reply,
        Err(_) => return Ok(None),
    };
    let flags = match reply.as_slice() {
        [_name, RedisResult::Binary(flags)] => String::from_utf8_lossy(flags).into_owned(),
        [_name, RedisResult::Status(flags)] => flags.clone(),
        _ => return Ok(None),
    };
    Ok(Some(flags_publish_expiry(&flags)))
}

/// Once per `period_ms` across replicas (`SET key NX PX`): for warnings that should not
/// fill the log.
pub fn once_per(key: &str, period_ms: u64) -> Result<bool> {
    let redis = connect()?;
    let reply = redis.run("SET", &[key, "1", "NX", "PX", &period_ms.to_string()])?;
    Ok(crate::reply::is_ok(&reply))
}

fn connect() -> Result<Redis> {
    let settings = Settings::load()?;
    Redis::open(&settings.redis_url).map_err(|err| anyhow!("{err:#}"))
}

fn flags_publish_expiry(flags: &str) -> bool {
    flags.contains('E') && (flags.contains('x') || flags.contains('A'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expired_events_need_e_and_x_or_a() {
        assert!(flags_publish_expiry("Ex"));
        assert!(flags_publish_expiry("xE"));
        assert!(flags_publish_expiry("AKE"));
        assert!(!flags_publish_expiry(""));
        assert!(!flags_publish_expiry("Kx"));
        assert!(!flags_publish_expiry("E$"));
    }

    #[test]
    fn an_alarm_rings_with_its_key_name() {
        let alarm = Alarm {
            key: "expiration:alarm",
        };
        assert!(alarm.is_ringing(b"expiration:alarm"));
        assert!(!alarm.is_ringing(b"bus:tickets:catch-up"));
    }
}
