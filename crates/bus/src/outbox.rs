//! The outbox: events written in the transaction of the change that caused them, then
//! relayed to their stream (`XADD`) and rung on their channel (`PUBLISH`).
//!
//! - **One relay at a time per row.** A row is claimed before it is relayed: the
//!   invocation that writes it claims it in the same transaction and relays it right
//!   after the commit; rows whose invocation could not relay them (Redis was down, it
//!   died) are leftovers, claimed by one invocation at a time with an `UPDATE …
//!   RETURNING` and relayed on the bus's tick. A claim lapses after [`CLAIM_MS`].
//! - **One round trip, a bounded number of doorbells.** A batch goes out in one Lua
//!   script: an `XADD` per event, then one `PUBLISH` per subject of the batch (the
//!   doorbell carries the subject's last envelope: it only wakes the listeners, which
//!   then read the stream), and the ticks are armed.
//! - **A Redis that lost writes loses no event.** Redis can come back without writes it
//!   had acknowledged (a crash with `appendfsync everysec`, a failover to a replica that
//!   lagged). Each relayed event takes the next number of the service's counter
//!   `bus:relay-seq:<service>` in the same script, and the row keeps it. When the
//!   counter is below the highest number the service holds, Redis has lost everything
//!   numbered above it: those rows are relayed again (consumers skip what they have
//!   applied by the event id). The newest [`KEEP_RELAYED`] relayed rows are kept for it.
//!
//! Relaying is at-least-once: an event whose `XADD` succeeded but whose row could not
//! be marked is relayed again later, and consumers skip the duplicate by its id.

use anyhow::{Context, Result, anyhow, bail};
use common::ApiError;
use common::clock::now_ms;
use spin_sdk::redis::RedisResult;
use spin_sdk::sqlite::{Connection, Value};

use crate::redis::Redis;
use crate::settings::Settings;
use crate::tick::{ARM_TICKS_FUNCTION, TICK_MS, TICKS_AHEAD};
use crate::{Bus, Envelope};

/// A stream keeps about this many entries (`XADD … MAXLEN ~`). A consumer group that
/// falls further behind than this loses the oldest (they are logged when reclaimed).
const STREAM_MAX_LEN: &str = "100000";
/// How long a claim holds: a row whose relay did not finish by then (its invocation
/// died, or Redis hung) is a leftover again, for the next tick. A relay takes
/// milliseconds; one slower than this may go out twice (consumers skip the second).
pub const CLAIM_MS: i64 = 5_000;
/// Relayed rows kept in the outbox: what can be relayed again after Redis lost writes.
pub const KEEP_RELAYED: i64 = 1_000;
/// Relayed rows are pruned to [`KEEP_RELAYED`] when a row whose `seq` is a multiple of
/// this goes out (one `DELETE` per this many events).
const PRUNE_EVERY: i64 = 100;
/// Rows per relay script.
const RELAY_BATCH: i64 = 100;
/// Batches of leftovers one invocation relays at most (a long Redis outage leaves many;
/// the next tick goes on).
const LEFTOVER_BATCHES: usize = 10;

/// The relay script. `KEYS[1]`: the service's relay counter; `ARGV`: the streams'
/// `MAXLEN`, the tick period and how many ticks ahead, then `subject, envelope` pairs.
/// Returns the counter before this batch, then `stream id, number` per event.
const RELAY: &str = "
local before = tonumber(redis.call('GET', KEYS[1]) or '0')
local out = {before}
local last, subjects = {}, {}
for i = 4, #ARGV, 2 do
  local subject, envelope = ARGV[i], ARGV[i + 1]
  table.insert(out, redis.call('XADD', 'events:' .. subject, 'MAXLEN', '~', ARGV[1], '*', 'e', envelope))
  table.insert(out, redis.call('INCR', KEYS[1]))
  if last[subject] == nil then table.insert(subjects, subject) end
  last[subject] = envelope
end
for _, subject in ipairs(subjects) do redis.call('PUBLISH', subject, last[subject]) end
arm_ticks(tonumber(ARGV[2]), tonumber(ARGV[3]))
return out
";

/// One outbox row on its way out.
struct Row {
    seq: i64,
    id: String,
    subject: String,
    envelope: String,
}

/// Writes an event to the outbox (inside the caller's transaction), claimed by the
/// caller, who relays it after the commit.
pub fn write(conn: &Connection, envelope: &Envelope) -> Result<(), ApiError> {
    let json = serde_json::to_string(envelope).context("serializing an event")?;
    let now = now_ms();
    conn.execute(
        "INSERT INTO outbox (id, subject, envelope, created_ms, claimed_until_ms)
         VALUES (?, ?, ?, ?, ?)",
        &[
            Value::Text(envelope.id.clone()),
            Value::Text(envelope.event.subject().to_owned()),
            Value::Text(json),
            Value::Integer(now),
            Value::Integer(now + CLAIM_MS),
        ],
    )?;
    Ok(())
}

/// After a commit: relays the events `ids` that this invocation wrote (and nothing
/// else: leftovers are the tick's). Never fails the caller: the change is committed,
/// and what cannot be relayed now is a leftover for the next tick.
pub fn relay(bus: &Bus, conn: &Connection, ids: &[String]) {
    if ids.is_empty() {
        return;
    }
    match Settings::load().and_then(|settings| Redis::open(&settings.redis_url)) {
        Ok(redis) => relay_on(bus, &redis, conn, ids),
        Err(err) => {
            give_up_claims(conn, ids);
            log_relay_failure(bus, &err);
        }
    }
}

/// [`relay`] on a Redis connection the caller holds (a listener's, for what its
/// handler published).
pub fn relay_on(bus: &Bus, redis: &Redis, conn: &Connection, ids: &[String]) {
    if let Err(err) = relay_own(bus, redis, conn, ids) {
        give_up_claims(conn, ids);
        log_relay_failure(bus, &err);
    }
}

fn relay_own(bus: &Bus, redis: &Redis, conn: &Connection, ids: &[String]) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let placeholders = vec!["?"; ids.len()].join(", ");
    let params: Vec<Value> = ids.iter().cloned().map(Value::Text).collect();
    let result = conn
        .execute(
            &format!(
                "SELECT seq, id, subject, envelope FROM outbox
                 WHERE relayed_ms IS NULL AND id IN ({placeholders}) ORDER BY seq"
            ),
            &params,
        )
        .map_err(|err| anyhow!("reading the outbox: {err:?}"))?;
    relay_rows(bus, redis, conn, &rows_of(&result))
}

/// A relay that failed: nothing is lost, the rows stay unrelayed.
pub fn log_relay_failure(bus: &Bus, err: &anyhow::Error) {
    common::log!(
        "bus: {}: relay failed, the events wait in the outbox for the next tick: {err:#}",
        bus.service
    );
}

/// Lets go of the claims on `ids` after a failed relay, so that the next tick takes
/// them at once rather than after the claim lapses.
fn give_up_claims(conn: &Connection, ids: &[String]) {
    if ids.is_empty() {
        return;
    }
    let placeholders = vec!["?"; ids.len()].join(", ");
    let params: Vec<Value> = ids.iter().cloned().map(Value::Text).collect();
    let _ = conn.execute(
        &format!(
            "UPDATE outbox SET claimed_until_ms = 0
             WHERE relayed_ms IS NULL AND id IN ({placeholders})"
        ),
        &params,
    );
}

/// The tick's part: notices a Redis that lost writes (and arms the ticks, even when
/// there is nothing to relay), then claims and relays leftovers, oldest first, a batch
/// at a time. Returns how many went out.
pub fn relay_leftovers(bus: &Bus, redis: &Redis, conn: &Connection) -> Result<usize> {
    relay_rows(bus, redis, conn, &[])?;
    let mut relayed = 0;
    for _ in 0..LEFTOVER_BATCHES {
        let rows = claim_leftovers(conn)?;
        if rows.is_empty() {
            break;
        }
        if let Err(err) = relay_rows(bus, redis, conn, &rows) {
            let ids: Vec<String> = rows.into_iter().map(|row| row.id).collect();
            give_up_claims(conn, &ids);
            return Err(err);
        }
        relayed += rows.len();
    }
    Ok(relayed)
}

/// Claims the oldest unclaimed unrelayed rows: one statement, so two invocations never
/// claim the same row. Reads first, so that a quiet outbox costs no write.
fn claim_leftovers(conn: &Connection) -> Result<Vec<Row>> {
    let now = now_ms();
    let waiting = conn
        .execute(
            "SELECT 1 FROM outbox WHERE relayed_ms IS NULL AND claimed_until_ms < ? LIMIT 1",
            &[Value::Integer(now)],
        )
        .map_err(|err| anyhow!("reading the outbox: {err:?}"))?;
    if waiting.rows.is_empty() {
        return Ok(Vec::new());
    }
    let claimed = conn
        .execute(
            "UPDATE outbox SET claimed_until_ms = ?
             WHERE seq IN (SELECT seq FROM outbox
                           WHERE relayed_ms IS NULL AND claimed_until_ms < ?
                           ORDER BY seq LIMIT ?)
             RETURNING seq, id, subject, envelope",
            &[
                Value::Integer(now + CLAIM_MS),
                Value::Integer(now),
                Value::Integer(RELAY_BATCH),
            ],
        )
        .map_err(|err| anyhow!("claiming leftover events: {err:?}"))?;
    let mut rows = rows_of(&claimed);
    rows.sort_by_key(|row| row.seq);
    Ok(rows)
}

fn rows_of(result: &spin_sdk::sqlite::QueryResult) -> Vec<Row> {
    result
        .rows()
        .filter_map(|row| {
            Some(Row {
                seq: row.get::<i64>("seq")?,
                id: row.get::<&str>("id")?.to_owned(),
                subject: row.get::<&str>("subject")?.to_owned(),
                envelope: row.get::<&str>("envelope")?.to_owned(),
            })
        })
        .collect()
}

/// Relays `rows` (claimed by this invocation) in batches, one script each; with no
/// rows, only checks the counter (and arms the ticks).
fn relay_rows(bus: &Bus, redis: &Redis, conn: &Connection, rows: &[Row]) -> Result<()> {
    if rows.is_empty() {
        return relay_batch(bus, redis, conn, &[]);
    }
    for batch in rows.chunks(usize::try_from(RELAY_BATCH).unwrap_or(100)) {
        relay_batch(bus, redis, conn, batch)?;
    }
    Ok(())
}

fn relay_batch(bus: &Bus, redis: &Redis, conn: &Connection, rows: &[Row]) -> Result<()> {
    let highest = highest_relay_number(conn)?;
    let counter = format!("bus:relay-seq:{}", bus.service);
    let script = format!("{ARM_TICKS_FUNCTION}{RELAY}");
    let (tick_ms, ahead) = (TICK_MS.to_string(), TICKS_AHEAD.to_string());
    let mut args: Vec<&str> = vec![&script, "1", &counter, STREAM_MAX_LEN, &tick_ms, &ahead];
    for row in rows {
        args.push(&row.subject);
        args.push(&row.envelope);
    }
    let reply = redis.run("EVAL", &args)?;
    let (before, numbers) = relay_reply(&reply, rows.len())?;
    if before < highest {
        relay_again_after(bus, conn, before, highest)?;
    }
    mark_relayed(conn, rows, &numbers)
}

/// The counter before the batch, and each event's number.
fn relay_reply(reply: &[RedisResult], events: usize) -> Result<(i64, Vec<i64>)> {
    let Some((RedisResult::Int64(before), rest)) = reply.split_first() else {
        bail!("the relay script answered {reply:?}");
    };
    if rest.len() != events * 2 {
        bail!(
            "the relay script answered {} items for {events} events",
            rest.len()
        );
    }
    let numbers = rest
        .chunks(2)
        .map(|pair| match pair[1] {
            RedisResult::Int64(number) => Ok(number),
            ref other => Err(anyhow!("the relay script gave {other:?} as a number")),
        })
        .collect::<Result<Vec<i64>>>()?;
    Ok((*before, numbers))
}

/// The highest relay number of the rows kept (0 when none).
fn highest_relay_number(conn: &Connection) -> Result<i64> {
    let result = conn
        .execute("SELECT max(relay_seq) AS n FROM outbox", &[])
        .map_err(|err| anyhow!("reading the outbox: {err:?}"))?;
    Ok(result
        .rows()
        .next()
        .and_then(|row| row.get::<i64>("n"))
        .unwrap_or(0))
}

/// Redis's counter is at `before` while this service had relayed up to `highest`:
/// everything numbered above `before` is gone from Redis. Those rows become leftovers.
fn relay_again_after(bus: &Bus, conn: &Connection, before: i64, highest: i64) -> Result<()> {
    let reset = conn
        .execute(
            "UPDATE outbox SET relayed_ms = NULL, relay_seq = NULL, claimed_until_ms = 0
             WHERE relay_seq > ? RETURNING id",
            &[Value::Integer(before)],
        )
        .map_err(|err| anyhow!("marking lost events for a relay: {err:?}"))?;
    common::log!(
        "bus: {}: Redis came back without events it had acknowledged (its relay counter \
         is at {before}, this service had relayed up to {highest}): relaying {} again",
        bus.service,
        reset.rows.len()
    );
    Ok(())
}

fn mark_relayed(conn: &Connection, rows: &[Row], numbers: &[i64]) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut params = vec![Value::Integer(now_ms())];
    for (row, number) in rows.iter().zip(numbers) {
        params.push(Value::Text(row.id.clone()));
        params.push(Value::Integer(*number));
    }
    params.extend(rows.iter().map(|row| Value::Text(row.id.clone())));
    let cases = " WHEN ? THEN ?".repeat(rows.len());
    let placeholders = vec!["?"; rows.len()].join(", ");
    conn.execute(
        &format!(
            "UPDATE outbox SET relayed_ms = ?, claimed_until_ms = 0,
             relay_seq = CASE id{cases} END WHERE id IN ({placeholders})"
        ),
        &params,
    )
    .map_err(|err| anyhow!("marking events relayed: {err:?}"))?;
    if let Some(newest) = rows.iter().map(|row| row.seq).max()
        && rows.iter().any(|row| row.seq % PRUNE_EVERY == 0)
    {
        conn.execute(
            "DELETE FROM outbox WHERE relayed_ms IS NOT NULL AND seq <= ?",
            &[Value::Integer(newest - KEEP_RELAYED)],
        )
        .map_err(|err| anyhow!("pruning the outbox: {err:?}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use RedisResult::{Binary, Int64};

    #[test]
    fn the_relay_reply_is_the_counter_then_an_id_and_a_number_per_event() {
        let reply = [
            Int64(7),
            Binary(b"1-0".to_vec()),
            Int64(8),
            Binary(b"1-1".to_vec()),
            Int64(9),
        ];
        assert_eq!(relay_reply(&reply, 2).unwrap(), (7, vec![8, 9]));
        assert_eq!(relay_reply(&[Int64(0)], 0).unwrap(), (0, vec![]));
        assert!(relay_reply(&[Int64(0)], 1).is_err());
        assert!(relay_reply(&[], 0).is_err());
        assert!(
            relay_reply(
                &[Int64(0), Binary(b"1-0".to_vec()), Binary(b"x".to_vec())],
                1
            )
            .is_err()
        );
    }
}
