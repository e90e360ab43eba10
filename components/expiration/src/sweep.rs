//! The sweep: publish every expiry that is due, then arm the alarm for the next one.

use bus::ExpirationComplete;
use bus::alarm::Alarm;
use common::ApiError;
use common::clock::now_ms;
use common::trace;

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

/// Sweeps in a row at most, while expiries keep falling due during the sweep.
const MAX_ROUNDS: u32 = 10;

/// Publishes `expiration:complete` for each due expiry, in the transaction that marks
/// it expired (so racing sweeps publish each once), and arms the alarm for the next.
/// An expiry is never published before its time: due means `expiresAt <= now`.
/// Whatever happens, a sweep that leaves an expiry pending leaves the alarm armed: the
/// alarm is the only wake a quiet app gets.
pub fn run() -> Result<Swept, ApiError> {
    let conn = db::open()?;
    let mut published = 0;
    let mut rounds = 0;
    loop {
        rounds += 1;
        published += BUS.transaction(&conn, |tx| {
            let due = db::take_due(tx, now_ms())?;
            for expiry in &due {
                // Each expiry goes out in the trace of its order.
                let _context = trace::enter(expiry.trace.clone());
                tx.publish(ExpirationComplete {
                    order_id: expiry.order_id.clone(),
                })?;
            }
            Ok(due.len())
        })?;
        let (next, pending) = db::pending(&conn)?;
        match after_round(next, now_ms(), rounds) {
            Next::SweepAgain => continue,
            Next::Arm(at) => ALARM.ring_by(at)?,
            Next::Done => {}
        }
        return Ok(Swept { published, pending });
    }
}

/// What a sweep does after a round, given the earliest pending expiry.
#[derive(Debug, PartialEq, Eq)]
enum Next {
    /// An expiry fell due while we looked: take it now rather than arm an alarm in
    /// the past.
    SweepAgain,
    /// Arm the alarm for this time (never in the past: when expiries keep falling due
    /// faster than a round takes, as in a burst of orders, it rings a moment from now
    /// and the next sweep goes on).
    Arm(i64),
    /// Nothing pending.
    Done,
}

fn after_round(next: Option<i64>, now: i64, rounds: u32) -> Next {
    match next {
        Some(at) if at <= now && rounds < MAX_ROUNDS => Next::SweepAgain,
        Some(at) => Next::Arm(at.max(now + 1)),
        None => Next::Done,
    }
}

/// A sweep from the Redis trigger: logged, and its failure reported to the host.
pub fn run_logged() -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    match run() {
        Ok(swept) => {
            if swept.published > 0 {
                common::log!(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pending_expiry_always_leaves_the_alarm_armed() {
        // Regression: a sweep that kept finding expiries falling due (a burst of
        // orders, each round slower than the gap between them) gave up after its
        // last round without arming the alarm, and a quiet app never woke again.
        assert_eq!(
            after_round(Some(1_000), 1_000, MAX_ROUNDS),
            Next::Arm(1_001)
        );
        assert_eq!(after_round(Some(900), 1_000, MAX_ROUNDS), Next::Arm(1_001));
        assert_eq!(after_round(Some(900), 1_000, 1), Next::SweepAgain);
        assert_eq!(after_round(Some(1_500), 1_000, 1), Next::Arm(1_500));
        assert_eq!(after_round(None, 1_000, MAX_ROUNDS), Next::Done);
        for rounds in 1..=MAX_ROUNDS {
            assert_ne!(after_round(Some(1_000), 1_000, rounds), Next::Done);
        }
    }
}
