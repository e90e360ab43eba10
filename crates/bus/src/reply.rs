//! Reading the replies of the stream commands as Spin's `execute` returns them.
//!
//! Spin flattens every reply into one list and drops empty arrays (measured on Spin
//! 3.6, and checked against the host by `host/tests/spin_compat.rs`), so the nesting is
//! gone and has to be read back from the shape of the items:
//! - XREADGROUP (one stream): `[stream, id, field, value, id, field, value, …]`; nothing
//!   new: `[Nil]`.
//! - XAUTOCLAIM: `[cursor, id, field, value, …, deleted-id, …]`; nothing: `[cursor]`.
//! - XPENDING with a range: `[id, consumer, idle, deliveries, …]`, four per entry.
//!
//! An entry is its id followed by field/value pairs; an id followed directly by another
//! id (or by the end) has no fields: in an XAUTOCLAIM reply, an entry that was trimmed
//! from the stream while it was pending.

use anyhow::{Result, bail};
use spin_sdk::redis::RedisResult;

/// One stream entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub id: String,
    pub fields: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Entry {
    pub fn field(&self, name: &str) -> Option<&[u8]> {
        self.fields
            .iter()
            .find(|(field, _)| field == name.as_bytes())
            .map(|(_, value)| value.as_slice())
    }
}

/// What XAUTOCLAIM handed over.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Claimed {
    /// Where the next call continues; `0-0` when the scan is complete.
    pub cursor: String,
    pub entries: Vec<Entry>,
    /// Pending entries whose data is gone (trimmed by `MAXLEN`).
    pub deleted: Vec<String>,
}

/// The entries of an `XREADGROUP … STREAMS <one stream> …` reply.
pub fn read_group(reply: &[RedisResult]) -> Result<Vec<Entry>> {
    match reply {
        [] | [RedisResult::Nil] => Ok(Vec::new()),
        [_stream, items @ ..] => {
            let (entries, without_fields) = entries(items)?;
            if let Some(id) = without_fields.first() {
                bail!("XREADGROUP returned entry {id} without fields");
            }
            Ok(entries)
        }
    }
}

/// An `XAUTOCLAIM` reply.
pub fn auto_claim(reply: &[RedisResult]) -> Result<Claimed> {
    let Some((cursor, items)) = reply.split_first() else {
        bail!("XAUTOCLAIM returned nothing, not even a cursor");
    };
    let cursor = text(cursor)?;
    let (entries, deleted) = entries(items)?;
    Ok(Claimed {
        cursor,
        entries,
        deleted,
    })
}

/// How often each entry of an `XPENDING <stream> <group> <start> <end> <count>` reply
/// has been delivered, by id.
pub fn delivery_counts(reply: &[RedisResult]) -> Result<Vec<(String, u64)>> {
    if !reply.len().is_multiple_of(4) {
        bail!(
            "XPENDING returned {} items, not four per entry",
            reply.len()
        );
    }
    reply
        .chunks(4)
        .map(|chunk| {
            let RedisResult::Int64(count) = chunk[3] else {
                bail!("XPENDING: the delivery count is not a number");
            };
            Ok((text(&chunk[0])?, u64::try_from(count).unwrap_or(0)))
        })
        .collect()
}

/// Whether a `SET … NX` (or any command answering `OK` or nil) took effect.
pub fn is_ok(reply: &[RedisResult]) -> bool {
    matches!(reply, [RedisResult::Status(status)] if status == "OK")
}

/// Splits items into entries with fields and ids without any.
fn entries(items: &[RedisResult]) -> Result<(Vec<Entry>, Vec<String>)> {
    let mut entries = Vec::new();
    let mut without_fields = Vec::new();
    let mut index = 0;
    while index < items.len() {
        let id = text(&items[index])?;
        if !is_entry_id(&id) {
            bail!("expected a stream entry id, got `{id}`");
        }
        index += 1;
        let mut fields = Vec::new();
        while let Some(item) = items.get(index) {
            let field = bytes(item)?;
            if is_entry_id_bytes(field) {
                break;
            }
            let Some(value) = items.get(index + 1) else {
                bail!("entry {id}: field without a value");
            };
            fields.push((field.to_vec(), bytes(value)?.to_vec()));
            index += 2;
        }
        if fields.is_empty() {
            without_fields.push(id);
        } else {
            entries.push(Entry { id, fields });
        }
    }
    Ok((entries, without_fields))
}

/// `<milliseconds>-<sequence>`, as Redis makes them.
fn is_entry_id(text: &str) -> bool {
    is_entry_id_bytes(text.as_bytes())
}

fn is_entry_id_bytes(bytes: &[u8]) -> bool {
    let Some(dash) = bytes.iter().position(|&byte| byte == b'-') else {
        return false;
    };
    let (millis, sequence) = (&bytes[..dash], &bytes[dash + 1..]);
    !millis.is_empty()
        && !sequence.is_empty()
        && millis.iter().all(u8::is_ascii_digit)
        && sequence.iter().all(u8::is_ascii_digit)
}

fn bytes(item: &RedisResult) -> Result<&[u8]> {
    match item {
        RedisResult::Binary(bytes) => Ok(bytes),
        RedisResult::Status(text) => Ok(text.as_bytes()),
        other => bail!("expected a string, got {other:?}"),
    }
}

fn text(item: &RedisResult) -> Result<String> {
    Ok(String::from_utf8_lossy(bytes(item)?).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use RedisResult::{Binary, Int64, Nil, Status};

    fn b(text: &str) -> RedisResult {
        Binary(text.as_bytes().to_vec())
    }

    fn entry(id: &str, value: &str) -> Entry {
        Entry {
            id: id.into(),
            fields: vec![(b"e".to_vec(), value.as_bytes().to_vec())],
        }
    }

    #[test]
    fn read_group_reads_entries_in_steps_of_three() {
        let reply = [
            b("events:ticket:created"),
            b("1-0"),
            b("e"),
            b("{\"a\":1}"),
            b("2-5"),
            b("e"),
            b("{\"a\":2}"),
        ];
        assert_eq!(
            read_group(&reply).unwrap(),
            vec![entry("1-0", "{\"a\":1}"), entry("2-5", "{\"a\":2}")]
        );
    }

    #[test]
    fn read_group_with_nothing_new_is_empty() {
        assert!(read_group(&[Nil]).unwrap().is_empty());
        assert!(read_group(&[]).unwrap().is_empty());
    }

    #[test]
    fn a_value_that_looks_like_an_id_is_still_a_value() {
        let reply = [b("s"), b("1-0"), b("e"), b("2-0")];
        assert_eq!(read_group(&reply).unwrap(), vec![entry("1-0", "2-0")]);
    }

    #[test]
    fn auto_claim_separates_entries_from_deleted_ids() {
        let reply = [
            b("0-0"),
            b("3-0"),
            b("e"),
            b("x"),
            b("4-0"),
            b("e"),
            b("y"),
            b("1-0"),
            b("2-0"),
        ];
        let claimed = auto_claim(&reply).unwrap();
        assert_eq!(claimed.cursor, "0-0");
        assert_eq!(claimed.entries, vec![entry("3-0", "x"), entry("4-0", "y")]);
        assert_eq!(claimed.deleted, vec!["1-0".to_owned(), "2-0".to_owned()]);
    }

    #[test]
    fn auto_claim_with_nothing_idle_is_just_the_cursor() {
        assert_eq!(
            auto_claim(&[b("0-0")]).unwrap(),
            Claimed {
                cursor: "0-0".into(),
                ..Claimed::default()
            }
        );
        assert!(auto_claim(&[]).is_err());
    }

    #[test]
    fn delivery_counts_come_in_fours() {
        let reply = [
            b("1-0"),
            b("orders"),
            Int64(1200),
            Int64(3),
            b("2-0"),
            b("orders"),
            Int64(5),
            Int64(1),
        ];
        assert_eq!(
            delivery_counts(&reply).unwrap(),
            vec![("1-0".to_owned(), 3), ("2-0".to_owned(), 1)]
        );
        assert!(delivery_counts(&[b("1-0")]).is_err());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(read_group(&[b("s"), b("not-an-id"), b("e"), b("x")]).is_err());
        assert!(read_group(&[b("s"), b("1-0"), b("e")]).is_err());
        assert!(read_group(&[b("s"), Int64(1)]).is_err());
    }

    #[test]
    fn ok_is_the_status_ok() {
        assert!(is_ok(&[Status("OK".into())]));
        assert!(!is_ok(&[Nil]));
        assert!(!is_ok(&[]));
    }
}
