//! `cargo xtask events`: a live tail of the event bus, for developers (what the NATS
//! Streaming monitoring page was to the original app). It reads the streams, so it
//! shows what every consumer group will see, dead letters included; it never writes.
//!
//! `cargo xtask events`        the last 10 events of each stream, then follows
//! `cargo xtask events --all`  the whole history, then follows
//! `cargo xtask events --once` prints the history and exits

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use redis::Value;

use crate::{Project, step, up};

/// Events shown per stream before following, unless `--all`.
const RECENT: usize = 10;
/// The bus's streams all start with this (`events:<subject>`, `events:dead`).
const PREFIX: &str = "events:";

struct Options {
    all: bool,
    once: bool,
}

pub fn run(project: &Project, args: &[String]) -> Result<()> {
    let mut options = Options {
        all: false,
        once: false,
    };
    for arg in args {
        match arg.as_str() {
            "--all" => options.all = true,
            "--once" => options.once = true,
            other => bail!("unknown option `{other}` (known: --all, --once)"),
        }
    }
    let url = up::app_redis_url(project)?;
    step(&format!("Events on {url} (streams {PREFIX}*)"));
    let mut conn = redis::Client::open(url.as_str())
        .and_then(|client| client.get_connection_with_timeout(Duration::from_secs(2)))
        .with_context(|| {
            format!("cannot reach Redis at {url}: is the app running (`cargo xtask up`)?")
        })?;

    // The last id printed per stream: following starts after it.
    let mut last_seen: BTreeMap<String, String> = BTreeMap::new();
    let mut history = Vec::new();
    for stream in streams(&mut conn)? {
        let count = if options.all { usize::MAX } else { RECENT };
        let mut entries = newest(&mut conn, &stream, count)?;
        entries.reverse();
        if let Some(last) = entries.last() {
            last_seen.insert(stream.clone(), last.id.clone());
        }
        history.extend(entries.into_iter().map(|entry| (stream.clone(), entry)));
    }
    // Across streams, in the order the events were added.
    history.sort_by_key(|(_, entry)| id_order(&entry.id));
    if history.is_empty() {
        eprintln!("(no events yet)");
    }
    for (stream, entry) in &history {
        println!("{}", describe(stream, entry));
    }
    if options.once {
        return Ok(());
    }
    eprintln!("-- following (Ctrl-C stops) --");
    loop {
        // New streams appear when a subject is first published: look again each round.
        for stream in streams(&mut conn)? {
            last_seen.entry(stream).or_insert_with(|| "0-0".to_owned());
        }
        if last_seen.is_empty() {
            std::thread::sleep(Duration::from_secs(1));
            continue;
        }
        let mut command = redis::cmd("XREAD");
        command
            .arg("COUNT")
            .arg(100)
            .arg("BLOCK")
            .arg(1000)
            .arg("STREAMS");
        for stream in last_seen.keys() {
            command.arg(stream);
        }
        for id in last_seen.values() {
            command.arg(id);
        }
        let reply: Value = command.query(&mut conn).context("XREAD")?;
        let mut arrived = read_reply(&reply);
        arrived.sort_by_key(|(_, entry)| id_order(&entry.id));
        for (stream, entry) in arrived {
            println!("{}", describe(&stream, &entry));
            last_seen.insert(stream, entry.id);
        }
    }
}

/// One stream entry: its id and its fields.
#[derive(Debug, Clone, PartialEq)]
struct Entry {
    id: String,
    fields: Vec<(String, String)>,
}

impl Entry {
    fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(field, _)| field == name)
            .map(|(_, value)| value.as_str())
    }
}

fn streams(conn: &mut redis::Connection) -> Result<Vec<String>> {
    let mut streams = redis::Commands::scan_match(conn, format!("{PREFIX}*"))
        .context("listing the streams")?
        .collect::<Result<Vec<String>, _>>()
        .context("listing the streams")?;
    streams.sort();
    streams.dedup();
    Ok(streams)
}

fn newest(conn: &mut redis::Connection, stream: &str, count: usize) -> Result<Vec<Entry>> {
    let mut command = redis::cmd("XREVRANGE");
    command.arg(stream).arg("+").arg("-");
    if count != usize::MAX {
        command.arg("COUNT").arg(count);
    }
    let reply: Value = command.query(conn).context("XREVRANGE")?;
    Ok(entries(&reply))
}

/// `[[id, [field, value, …]], …]`.
fn entries(reply: &Value) -> Vec<Entry> {
    let Value::Array(items) = reply else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|item| {
            let Value::Array(pair) = item else {
                return None;
            };
            let [id, Value::Array(fields)] = pair.as_slice() else {
                return None;
            };
            let fields = fields
                .chunks(2)
                .filter_map(|pair| match pair {
                    [field, value] => Some((text(field)?, text(value)?)),
                    _ => None,
                })
                .collect();
            Some(Entry {
                id: text(id)?,
                fields,
            })
        })
        .collect()
}

/// XREAD: `[[stream, [[id, [field, value, …]], …]], …]`, or nil when nothing came.
fn read_reply(reply: &Value) -> Vec<(String, Entry)> {
    let Value::Array(streams) = reply else {
        return Vec::new();
    };
    streams
        .iter()
        .filter_map(|stream| match stream {
            Value::Array(pair) => match pair.as_slice() {
                [name, entries_reply] => Some((text(name)?, entries(entries_reply))),
                _ => None,
            },
            _ => None,
        })
        .flat_map(|(name, entries)| entries.into_iter().map(move |entry| (name.clone(), entry)))
        .collect()
}

fn text(value: &Value) -> Option<String> {
    match value {
        Value::BulkString(bytes) => Some(String::from_utf8_lossy(bytes).into_owned()),
        Value::SimpleString(text) => Some(text.clone()),
        _ => None,
    }
}

/// `<ms>-<seq>` as numbers, so ids sort in time order.
fn id_order(id: &str) -> (u64, u64) {
    let (ms, seq) = id.split_once('-').unwrap_or((id, "0"));
    (ms.parse().unwrap_or(0), seq.parse().unwrap_or(0))
}

/// `10:15:00.123  ticket:created  from tickets  id 3f2a…  {"id":…}`; dead letters say
/// where they came from and why.
fn describe(stream: &str, entry: &Entry) -> String {
    let time = clock(id_order(&entry.id).0);
    let raw = entry.field("e").unwrap_or_default();
    let envelope: Option<serde_json::Value> = serde_json::from_str(raw).ok();
    let (subject, source, id, data) = match &envelope {
        Some(envelope) => (
            envelope["subject"].as_str().unwrap_or("?").to_owned(),
            envelope["source"].as_str().unwrap_or("?").to_owned(),
            envelope["id"].as_str().unwrap_or("?").to_owned(),
            envelope["data"].to_string(),
        ),
        None => (
            "?".into(),
            "?".into(),
            "?".into(),
            format!("unreadable: {raw}"),
        ),
    };
    let line = format!("{time}  {subject:<20} from {source:<10} id {id}  {data}");
    if stream == format!("{PREFIX}dead") {
        format!(
            "{line}\n{:14}DEAD: from {} (group {}, {} deliveries): {}",
            "",
            entry.field("stream").unwrap_or("?"),
            entry.field("group").unwrap_or("?"),
            entry.field("deliveries").unwrap_or("?"),
            entry.field("error").unwrap_or("?"),
        )
    } else {
        line
    }
}

/// The UTC time of day of a Unix time in milliseconds: `HH:MM:SS.mmm`.
fn clock(ms: u64) -> String {
    let of_day = ms % 86_400_000;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        of_day / 3_600_000,
        of_day / 60_000 % 60,
        of_day / 1000 % 60,
        of_day % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str, fields: &[(&str, &str)]) -> Entry {
        Entry {
            id: id.into(),
            fields: fields
                .iter()
                .map(|(field, value)| (field.to_string(), value.to_string()))
                .collect(),
        }
    }

    #[test]
    fn an_event_line_names_subject_source_id_and_data() {
        let e = r#"{"id":"e1","subject":"ticket:created","occurredAt":"x","source":"tickets","data":{"id":"t1","price":10}}"#;
        let line = describe(
            "events:ticket:created",
            &entry("1795428900123-0", &[("e", e)]),
        );
        assert_eq!(
            line,
            r#"10:15:00.123  ticket:created       from tickets    id e1  {"id":"t1","price":10}"#
        );
    }

    #[test]
    fn a_dead_letter_says_where_from_and_why() {
        let line = describe(
            "events:dead",
            &entry(
                "0-1",
                &[
                    ("e", "{broken"),
                    ("stream", "events:order:created"),
                    ("group", "tickets"),
                    ("deliveries", "10"),
                    ("error", "boom"),
                ],
            ),
        );
        assert!(line.contains("unreadable: {broken"), "{line}");
        assert!(
            line.ends_with("DEAD: from events:order:created (group tickets, 10 deliveries): boom"),
            "{line}"
        );
    }

    #[test]
    fn ids_sort_by_time_then_sequence() {
        let mut ids = vec!["10-1", "9-5", "10-0"];
        ids.sort_by_key(|id| id_order(id));
        assert_eq!(ids, ["9-5", "10-0", "10-1"]);
    }
}
