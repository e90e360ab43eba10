//! The sweep: publish every expiry that is due, then arm the alarm for the next one.

use ::events::alarm::Alarm;
use ::events::{ExpirationComplete, now_ms};
use common::ApiError;

use crate::db::{self, BUS};

/// The key whose expiry wakes this service (its name arrives on `__keyevent@0__:expired`).
pub const ALARM: Alarm = Alarm {
    key: "expiration:alarm",
};

/// What a sweep did.
pub struct Swept {
    pub published: usize,
    pub pending: i64,
}

/// Publishes `expiration:complete` for each due expiry, in the transaction that marks
/// it expired (so racing sweeps publish each once), and arms the alarm for the next.
/// An expiry is never published before its time: due means `expiresAt <= now`.
pub fn run() -> Result<Swept, ApiError> {
    let conn = db::open()?;
    let mut published = 0;
    // An expiry can fall due while we look: then sweep again rather than arm an
    // alarm in the past.
    for _ in 0..10 {
        published += BUS.transaction(&conn, |tx| {
            let due = db::take_due(tx, now_ms())?;
            for order_id in &due {
                tx.publish(ExpirationComplete {
                    order_id: order_id.clone(),
                })?;
            }
            Ok(due.len())
        })?;
        let (next, pending) = db::pending(&conn)?;
        match next {
            Some(at) if at <= now_ms() => continue,
            Some(at) => {
                ALARM.ring_by(at)?;
                return Ok(Swept { published, pending });
            }
            None => return Ok(Swept { published, pending }),
        }
    }
    let (_, pending) = db::pending(&conn)?;
    Ok(Swept { published, pending })
}

/// A sweep from the Redis trigger: logged, and its failure reported to the host.
pub fn run_logged() -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    match run() {
        Ok(swept) => {
            if swept.published > 0 {
                eprintln!(
                    "sweep: {} expired, {} pending, in {:.1} ms",
                    swept.published,
                    swept.pending,
                    started.elapsed().as_secs_f64() * 1000.0
                );
            }
            Ok(())
        }
        Err(err) => Err(anyhow::anyhow!("sweep failed: {err}")),
    }
}
