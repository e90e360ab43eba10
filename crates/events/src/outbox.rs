//! The outbox: events written in the transaction of the change that caused them, then
//! relayed to their stream (`XADD`) and rung on their channel (`PUBLISH`).
//!
//! Relaying is at-least-once: an event whose `XADD` succeeded but whose row could not
//! be marked is relayed again later, and consumers skip the duplicate by its id.

use anyhow::{Context, Result};
use common::ApiError;
use spin_sdk::sqlite::{Connection, Value};

use crate::redis::Redis;
use crate::settings::Settings;
use crate::{Bus, Envelope, now_ms, stream};

/// A stream keeps about this many entries (`XADD … MAXLEN ~`). A consumer group that
/// falls further behind than this loses the oldest (they are logged when reclaimed).
const STREAM_MAX_LEN: &str = "100000";
/// Unrelayed rows older than this are leftovers (their invocation could not relay
/// them); younger ones belong to an invocation that is relaying them right now.
const LEFTOVER_AFTER_MS: i64 = 2_000;
/// Relayed rows kept in the outbox for inspection; older ones are deleted.
const KEEP_RELAYED: i64 = 1_000;
/// Rows relayed per call at most (a long Redis outage leaves many).
const RELAY_BATCH: i64 = 500;

/// Writes an event to the outbox (inside the caller's transaction).
pub fn write(conn: &Connection, envelope: &Envelope) -> Result<(), ApiError> {
    let json = serde_json::to_string(envelope).context("serializing an event")?;
    conn.execute(
        "INSERT INTO outbox (id, subject, envelope, created_ms) VALUES (?, ?, ?, ?)",
        &[
            Value::Text(envelope.id.clone()),
            Value::Text(envelope.event.subject().to_owned()),
            Value::Text(json),
            Value::Integer(now_ms()),
        ],
    )?;
    Ok(())
}

/// After a commit: relays the events `ids` (and any leftovers). Never fails the
/// caller: the change is committed, and what cannot be relayed now stays in the outbox
/// for a later invocation.
pub fn relay(bus: &Bus, conn: &Connection, ids: &[String]) {
    let outcome = Settings::load()
        .and_then(|settings| Redis::open(&settings.redis_url))
        .and_then(|redis| relay_with(&redis, conn, ids));
    if let Err(err) = outcome {
        log_relay_failure(bus, &err);
    }
}

/// A relay that failed after its commit: nothing is lost, the rows stay unrelayed.
pub fn log_relay_failure(bus: &Bus, err: &anyhow::Error) {
    eprintln!(
        "bus: {}: relay failed, the events wait in the outbox for a later invocation: {err:#}",
        bus.service
    );
}

/// Relays `ids` and every leftover row, oldest first; returns how many went out.
pub fn relay_with(redis: &Redis, conn: &Connection, ids: &[String]) -> Result<usize> {
    let mut params = vec![Value::Integer(now_ms() - LEFTOVER_AFTER_MS)];
    params.extend(ids.iter().cloned().map(Value::Text));
    let placeholders = vec!["?"; ids.len()].join(", ");
    let rows = conn
        .execute(
            &format!(
                "SELECT id, subject, envelope FROM outbox
                 WHERE relayed_ms IS NULL AND (created_ms < ? OR id IN ({placeholders}))
                 ORDER BY seq LIMIT {RELAY_BATCH}"
            ),
            &params,
        )
        .map_err(|err| anyhow::anyhow!("reading the outbox: {err:?}"))?;
    let mut relayed = Vec::new();
    let mut failure = None;
    for row in rows.rows() {
        let (Some(id), Some(subject), Some(envelope)) = (
            row.get::<&str>("id"),
            row.get::<&str>("subject"),
            row.get::<&str>("envelope"),
        ) else {
            continue;
        };
        let added = redis.run(
            "XADD",
            &[
                &stream(subject),
                "MAXLEN",
                "~",
                STREAM_MAX_LEN,
                "*",
                "e",
                envelope,
            ],
        );
        if let Err(err) = added {
            failure = Some(err);
            break;
        }
        relayed.push(id.to_owned());
        // The entry is on the stream; a missed doorbell only delays consumers until
        // their next catch-up, so it does not stop the relay.
        if let Err(err) = redis.publish(subject, envelope.as_bytes()) {
            eprintln!("bus: {err:#}");
        }
    }
    mark_relayed(conn, &relayed)?;
    match failure {
        Some(err) => Err(err.context(format!(
            "{} of the events were relayed before Redis failed",
            relayed.len()
        ))),
        None => Ok(relayed.len()),
    }
}

fn mark_relayed(conn: &Connection, ids: &[String]) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let mut params = vec![Value::Integer(now_ms())];
    params.extend(ids.iter().cloned().map(Value::Text));
    let placeholders = vec!["?"; ids.len()].join(", ");
    conn.execute(
        &format!("UPDATE outbox SET relayed_ms = ? WHERE id IN ({placeholders})"),
        &params,
    )
    .map_err(|err| anyhow::anyhow!("marking events relayed: {err:?}"))?;
    conn.execute(
        "DELETE FROM outbox WHERE relayed_ms IS NOT NULL
         AND seq <= (SELECT max(seq) FROM outbox) - ?",
        &[Value::Integer(KEEP_RELAYED)],
    )
    .map_err(|err| anyhow::anyhow!("pruning the outbox: {err:?}"))?;
    Ok(())
}
