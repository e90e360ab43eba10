//! `cargo xtask bus`: a live tail of the event bus, for developers (what the NATS
//! Streaming monitoring page was to the original app), and the operator's handle on
//! dead letters. The tail reads the streams, so it shows what every consumer group will
//! see, dead letters included; only `--replay` writes.
//!
//! `cargo xtask bus`              the last 10 events of each stream, then follows
//! `cargo xtask bus --all`        the whole history, then follows
//! `cargo xtask bus --once`       prints the history and exits
//! `cargo xtask bus --dead`       lists `events:dead`: group, stream, entry,
//!                                   deliveries, last error and event of each
//! `cargo xtask bus --replay ID`  hands the dead letter ID back to its group
//!
//! A replay adds the dead letter's envelope to its original stream again (as the bus
//! relays an event: `XADD … MAXLEN ~`, then the doorbell) and deletes it from
//! `events:dead`, in one `MULTI`. Every group of that stream reads the new entry: the
//! groups that applied the event find its id in their inbox and skip it, the group it
//! was dead for applies it (once: its inbox too is keyed by the event id).

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use redis::Value;

use crate::{Project, step, up};

/// Events shown per stream before following, unless `--all`.
const RECENT: usize = 10;
/// The bus's streams all start with this (`events:<subject>`, `events:dead`).
const PREFIX: &str = "events:";
/// Where the bus puts what a group gave up on (crates/bus: `DEAD_LETTERS`).
const DEAD: &str = "events:dead";
/// How many entries a stream keeps, as the bus's relay trims it (crates/bus:
/// `outbox.rs`).
const STREAM_MAXLEN: &str = "100000";

/// What `cargo xtask bus` was asked to do.
#[derive(Debug, PartialEq)]
enum Command {
    Tail { all: bool, once: bool },
    Dead,
    Replay(String),
}

fn parse(args: &[String]) -> Result<Command> {
    let (mut all, mut once, mut dead, mut replay) = (false, false, false, None);
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--all" => all = true,
            "--once" => once = true,
            "--dead" => dead = true,
            "--replay" => match args.next() {
                Some(id) if replay.is_none() => replay = Some(id.clone()),
                Some(_) => bail!("--replay takes one dead letter at a time"),
                None => bail!(
                    "--replay needs the id of a dead letter (`cargo xtask bus --dead` \
                     lists them)"
                ),
            },
            other => {
                bail!("unknown option `{other}` (known: --all, --once, --dead, --replay <id>)")
            }
        }
    }
    match (dead, replay) {
        (false, None) => Ok(Command::Tail { all, once }),
        (true, None) if !all && !once => Ok(Command::Dead),
        (false, Some(id)) if !all && !once => {
            if !is_entry_id(&id) {
                bail!(
                    "`{id}` is not a stream entry id (like 1795428900123-0, as `cargo xtask \
                     bus --dead` lists them)"
                );
            }
            Ok(Command::Replay(id))
        }
        _ => bail!("--dead and --replay go alone (not with each other, --all or --once)"),
    }
}

/// A complete stream entry id, `<ms>-<seq>` (a bare `<ms>` would name a range).
fn is_entry_id(id: &str) -> bool {
    let is_number = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
    id.split_once('-')
        .is_some_and(|(ms, seq)| is_number(ms) && is_number(seq))
}

pub fn run(project: &Project, args: &[String]) -> Result<()> {
    let command = parse(args)?;
    let url = up::app_redis_url(project)?;
    let mut conn = redis::Client::open(url.as_str())
        .and_then(|client| client.get_connection_with_timeout(Duration::from_secs(2)))
        .with_context(|| {
            format!("cannot reach Redis at {url}: is the app running (`cargo xtask up`)?")
        })?;
    match command {
        Command::Tail { all, once } => {
            step(&format!("Events on {url} (streams {PREFIX}*)"));
            tail(&mut conn, all, once)
        }
        Command::Dead => {
            step(&format!("Dead letters on {url} ({DEAD})"));
            let letters = dead_letters(&mut conn)?;
            if letters.is_empty() {
                eprintln!("(no dead letters)");
                return Ok(());
            }
            for letter in &letters {
                println!("{}", letter.describe());
            }
            eprintln!(
                "{}. `cargo xtask bus --replay <id>` hands one back to its group.",
                counted(letters.len(), "dead letter", "dead letters")
            );
            Ok(())
        }
        Command::Replay(id) => {
            step(&format!("Replaying dead letter {id} on {url}"));
            let replayed = replay(&mut conn, &id)?;
            println!("{}", replayed.describe());
            Ok(())
        }
    }
}

fn tail(conn: &mut redis::Connection, all: bool, once: bool) -> Result<()> {
    // The last id printed per stream: following starts after it.
    let mut last_seen: BTreeMap<String, String> = BTreeMap::new();
    let mut history = Vec::new();
    for stream in streams(conn)? {
        let count = if all { usize::MAX } else { RECENT };
        let mut entries = newest(conn, &stream, count)?;
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
    if once {
        return Ok(());
    }
    eprintln!("-- following (Ctrl-C stops) --");
    loop {
        // New streams appear when a subject is first published: look again each round.
        for stream in streams(conn)? {
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
        let reply: Value = command.query(conn).context("XREAD")?;
        let mut arrived = read_reply(&reply);
        arrived.sort_by_key(|(_, entry)| id_order(&entry.id));
        for (stream, entry) in arrived {
            println!("{}", describe(&stream, &entry));
            last_seen.insert(stream, entry.id);
        }
    }
}

/// One entry of `events:dead`: what a consumer group gave up on, and why (the bus
/// writes the fields `e`, `stream`, `group`, `entry`, `deliveries`, `error`).
#[derive(Debug, Clone, PartialEq)]
struct DeadLetter {
    /// Its id in `events:dead`: what `--replay` takes.
    id: String,
    group: String,
    stream: String,
    /// Its id on `stream`.
    entry: String,
    deliveries: String,
    error: String,
    /// The envelope as it was on `stream` (field `e`), verbatim.
    envelope: String,
}

/// The event a dead letter holds, when it is one.
#[derive(Debug, Clone, PartialEq)]
struct Event {
    subject: String,
    id: String,
    source: String,
    data: String,
}

impl DeadLetter {
    fn from_entry(entry: &Entry) -> DeadLetter {
        let field = |name: &str| entry.field(name).unwrap_or_default().to_owned();
        DeadLetter {
            id: entry.id.clone(),
            group: field("group"),
            stream: field("stream"),
            entry: field("entry"),
            deliveries: field("deliveries"),
            error: field("error"),
            envelope: field("e"),
        }
    }

    /// The envelope's subject, id and source (and data), or why it is not an event.
    fn event(&self) -> Result<Event, String> {
        let envelope: serde_json::Value = serde_json::from_str(&self.envelope)
            .map_err(|err| format!("not an event envelope ({err})"))?;
        let text = |key: &str| {
            envelope[key]
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| format!("not an event envelope (no `{key}`)"))
        };
        Ok(Event {
            subject: text("subject")?,
            id: text("id")?,
            source: text("source")?,
            data: envelope["data"].to_string(),
        })
    }

    /// Three lines: where from, the event, the last error.
    fn describe(&self) -> String {
        let event = match self.event() {
            Ok(event) => format!(
                "{} id {} from {}  {}",
                event.subject, event.id, event.source, event.data
            ),
            Err(why) => format!("{why}: {}", shorten(&self.envelope, 200)),
        };
        let deliveries = match self.deliveries.parse() {
            Ok(count) => counted(count, "delivery", "deliveries"),
            Err(_) => format!("{} deliveries", self.deliveries),
        };
        format!(
            "{}  group {} gave up on {} entry {} after {deliveries} (at {})\n  \
             event: {event}\n  error: {}",
            self.id,
            self.group,
            self.stream,
            self.entry,
            clock(id_order(&self.id).0),
            self.error,
        )
    }

    /// Why it cannot go back to its stream, if it cannot: its stream is not one of the
    /// bus's event streams, or what it holds is not an event of that stream's subject
    /// (every group would give up on it again).
    fn replayable(&self) -> Result<Event, String> {
        let Some(subject) = self.stream.strip_prefix(PREFIX) else {
            return Err(format!(
                "its stream `{}` is not an event stream",
                self.stream
            ));
        };
        if self.stream == DEAD || subject.is_empty() {
            return Err(format!(
                "its stream `{}` is not an event stream",
                self.stream
            ));
        }
        let event = self.event()?;
        if event.subject != subject {
            return Err(format!(
                "it holds a `{}` event, not one of `{}`'s subject",
                event.subject, self.stream
            ));
        }
        Ok(event)
    }
}

/// Every dead letter, oldest first.
fn dead_letters(conn: &mut redis::Connection) -> Result<Vec<DeadLetter>> {
    let reply: Value = redis::cmd("XRANGE")
        .arg(DEAD)
        .arg("-")
        .arg("+")
        .query(conn)
        .context("XRANGE events:dead")?;
    Ok(entries(&reply).iter().map(DeadLetter::from_entry).collect())
}

/// A dead letter handed back to its group.
#[derive(Debug)]
struct Replayed {
    letter: DeadLetter,
    event: Event,
    /// Its new id on its stream.
    entry: String,
    /// Subscribers the doorbell reached.
    listeners: i64,
}

impl Replayed {
    fn describe(&self) -> String {
        let woken = if self.listeners > 0 {
            format!(
                "the doorbell on `{}` reached {}",
                self.event.subject,
                counted(
                    usize::try_from(self.listeners).unwrap_or(0),
                    "listener",
                    "listeners"
                )
            )
        } else {
            format!(
                "nobody listens on `{}` now: the group applies it when its service next \
                 drains the stream",
                self.event.subject
            )
        };
        format!(
            "replayed {}: {} id {} from {}, for group {}\n  back on {} as entry {} (the \
             groups that applied it skip it: their inbox has its id); removed from {DEAD}; \
             {woken}",
            self.letter.id,
            self.event.subject,
            self.event.id,
            self.event.source,
            self.letter.group,
            self.letter.stream,
            self.entry,
        )
    }
}

/// Adds dead letter `id`'s envelope to its stream again and deletes it from
/// `events:dead`, both or neither (`WATCH` + `MULTI`: a concurrent replay of the same
/// letter finds it gone), then rings the doorbell.
fn replay(conn: &mut redis::Connection, id: &str) -> Result<Replayed> {
    for _ in 0..5 {
        redis::cmd("WATCH")
            .arg(DEAD)
            .query::<()>(conn)
            .context("WATCH")?;
        let found: Value = redis::cmd("XRANGE")
            .arg(DEAD)
            .arg(id)
            .arg(id)
            .query(conn)
            .context("XRANGE events:dead")?;
        let Some(letter) = entries(&found).first().map(DeadLetter::from_entry) else {
            redis::cmd("UNWATCH").query::<()>(conn).context("UNWATCH")?;
            bail!("no dead letter `{id}` in {DEAD} (`cargo xtask bus --dead` lists them)");
        };
        let event = match letter.replayable() {
            Ok(event) => event,
            Err(why) => {
                redis::cmd("UNWATCH").query::<()>(conn).context("UNWATCH")?;
                bail!(
                    "dead letter {id} cannot be replayed: {why}. Every group would give up \
                     on it again; once dealt with, delete it with `XDEL {DEAD} {id}`."
                );
            }
        };
        let done: Option<(String, i64)> = redis::pipe()
            .atomic()
            .cmd("XADD")
            .arg(&letter.stream)
            .arg("MAXLEN")
            .arg("~")
            .arg(STREAM_MAXLEN)
            .arg("*")
            .arg("e")
            .arg(&letter.envelope)
            .cmd("XDEL")
            .arg(DEAD)
            .arg(id)
            .query(conn)
            .context("XADD to the stream and XDEL from events:dead")?;
        let Some((entry, _)) = done else {
            // events:dead changed between WATCH and EXEC: look again.
            continue;
        };
        let listeners: i64 = redis::cmd("PUBLISH")
            .arg(&event.subject)
            .arg(&letter.envelope)
            .query(conn)
            .context("PUBLISH the doorbell")?;
        return Ok(Replayed {
            letter,
            event,
            entry,
            listeners,
        });
    }
    bail!("{DEAD} kept changing while replaying {id}: run the replay again")
}

/// `1 dead letter`, `2 dead letters`.
fn counted(count: usize, one: &str, many: &str) -> String {
    format!("{count} {}", if count == 1 { one } else { many })
}

/// At most `max` characters of `text`, with `…` when cut.
fn shorten(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
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

/// `10:15:00.123  ticket:created  from tickets  id 3f2a… trace 4bf9…  {"id":…}`; dead letters say
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
    // The trace id (docs/tracing.md): what to grep the services' logs for.
    let trace = envelope
        .as_ref()
        .and_then(|envelope| envelope["traceparent"].as_str())
        .and_then(|parent| parent.get(3..35))
        .map_or_else(String::new, |trace| format!(" trace {trace}"));
    let line = format!("{time}  {subject:<20} from {source:<10} id {id}{trace}  {data}");
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
    fn an_event_line_names_its_trace_when_it_has_one() {
        let e = r#"{"id":"e1","subject":"ticket:created","occurredAt":"x","source":"tickets","data":{},"traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}"#;
        let line = describe(
            "events:ticket:created",
            &entry("1795428900123-0", &[("e", e)]),
        );
        assert_eq!(
            line,
            "10:15:00.123  ticket:created       from tickets    id e1 trace \
             4bf92f3577b34da6a3ce929d0e0e4736  {}"
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

    fn args(args: &[&str]) -> Result<Command> {
        parse(&args.iter().map(|arg| arg.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn options_parse_into_one_command() {
        assert_eq!(
            args(&[]).unwrap(),
            Command::Tail {
                all: false,
                once: false
            }
        );
        assert_eq!(
            args(&["--all", "--once"]).unwrap(),
            Command::Tail {
                all: true,
                once: true
            }
        );
        assert_eq!(args(&["--dead"]).unwrap(), Command::Dead);
        assert_eq!(
            args(&["--replay", "1795428900123-0"]).unwrap(),
            Command::Replay("1795428900123-0".into())
        );
    }

    #[test]
    fn options_that_make_no_sense_are_refused_saying_why() {
        let error = |list: &[&str]| args(list).unwrap_err().to_string();
        assert!(error(&["--replay"]).contains("needs the id of a dead letter"));
        assert!(error(&["--replay", "1795428900123"]).contains("not a stream entry id"));
        assert!(error(&["--replay", "x-1"]).contains("not a stream entry id"));
        assert!(error(&["--dead", "--all"]).contains("go alone"));
        assert!(error(&["--dead", "--replay", "1-0"]).contains("go alone"));
        assert!(error(&["--replay", "1-0", "--replay", "2-0"]).contains("one dead letter"));
        assert!(error(&["--tail"]).contains("unknown option `--tail`"));
    }

    const ENVELOPE: &str = r#"{"id":"e1","subject":"order:created","occurredAt":"x","source":"orders","data":{"id":"o1"}}"#;

    fn dead_letter(e: &str, stream: &str) -> DeadLetter {
        DeadLetter::from_entry(&entry(
            "1795428900123-0",
            &[
                ("e", e),
                ("stream", stream),
                ("group", "tickets"),
                ("entry", "1795428800000-0"),
                ("deliveries", "10"),
                ("error", "boom"),
            ],
        ))
    }

    #[test]
    fn a_dead_letter_is_listed_with_its_group_stream_entry_deliveries_error_and_event() {
        assert_eq!(
            dead_letter(ENVELOPE, "events:order:created").describe(),
            "1795428900123-0  group tickets gave up on events:order:created entry \
             1795428800000-0 after 10 deliveries (at 10:15:00.123)\n  \
             event: order:created id e1 from orders  {\"id\":\"o1\"}\n  \
             error: boom"
        );
        let unreadable = dead_letter("{broken", "events:order:created").describe();
        assert!(
            unreadable.contains("event: not an event envelope (") && unreadable.contains("{broken"),
            "{unreadable}"
        );
    }

    #[test]
    fn only_an_event_of_its_streams_subject_can_be_replayed() {
        let event = dead_letter(ENVELOPE, "events:order:created").replayable();
        assert_eq!(event.map(|event| event.id), Ok("e1".to_owned()));
        let refused = |e: &str, stream: &str| dead_letter(e, stream).replayable().unwrap_err();
        assert!(refused("{broken", "events:order:created").starts_with("not an event envelope"));
        assert!(refused(ENVELOPE, "events:ticket:created").contains("holds a `order:created`"));
        assert!(refused(ENVELOPE, "events:dead").contains("not an event stream"));
        assert!(refused(ENVELOPE, "orders").contains("not an event stream"));
    }

    #[test]
    fn one_delivery_is_singular() {
        let mut letter = dead_letter(ENVELOPE, "events:order:created");
        letter.deliveries = "1".into();
        assert!(letter.describe().contains("after 1 delivery ("));
    }

    #[test]
    fn long_text_is_shortened_on_a_character_boundary() {
        assert_eq!(shorten("ab", 2), "ab");
        assert_eq!(shorten("é€x", 2), "é€…");
    }

    /// Against a real redis-server: a dead letter is listed, replayed onto its stream
    /// and removed from events:dead; a second replay, or one of an entry that is no
    /// event, is refused and changes nothing.
    #[test]
    fn a_dead_letter_goes_back_to_its_stream_and_leaves_events_dead() {
        let server = harness::Redis::start();
        let mut conn = redis::Client::open(server.url())
            .and_then(|client| client.get_connection())
            .expect("the test's redis-server");
        let add = |conn: &mut redis::Connection, stream: &str, fields: &[(&str, &str)]| {
            let mut command = redis::cmd("XADD");
            command.arg(stream).arg("*");
            for (field, value) in fields {
                command.arg(*field).arg(*value);
            }
            command.query::<String>(conn).expect("XADD")
        };
        let original = add(&mut conn, "events:order:created", &[("e", ENVELOPE)]);
        let letter = |e: &str, original: &str| {
            [
                ("e", e.to_owned()),
                ("stream", "events:order:created".to_owned()),
                ("group", "tickets".to_owned()),
                ("entry", original.to_owned()),
                ("deliveries", "10".to_owned()),
                ("error", "boom".to_owned()),
            ]
        };
        let fields = letter(ENVELOPE, &original);
        let fields: Vec<(&str, &str)> = fields.iter().map(|(f, v)| (*f, v.as_str())).collect();
        let dead = add(&mut conn, "events:dead", &fields);
        let junk_fields = letter("{broken", "1-0");
        let junk_fields: Vec<(&str, &str)> =
            junk_fields.iter().map(|(f, v)| (*f, v.as_str())).collect();
        let junk = add(&mut conn, "events:dead", &junk_fields);
        // Someone listens, as the tickets service would.
        let mut listener = redis::Client::open(server.url())
            .and_then(|client| client.get_connection())
            .expect("a second connection");
        let mut pubsub = listener.as_pubsub();
        pubsub.subscribe("order:created").expect("SUBSCRIBE");
        pubsub
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("a read timeout");

        let listed = dead_letters(&mut conn).expect("listing events:dead");
        assert_eq!(listed.len(), 2);
        assert_eq!(
            (
                &*listed[0].id,
                &*listed[0].group,
                &*listed[0].stream,
                &*listed[0].entry
            ),
            (&*dead, "tickets", "events:order:created", &*original)
        );
        assert_eq!((&*listed[0].deliveries, &*listed[0].error), ("10", "boom"));

        let replayed = replay(&mut conn, &dead).expect("the replay");
        assert_eq!(replayed.listeners, 1);
        let stream = server.stream("events:order:created");
        assert_eq!(stream.len(), 2, "{stream:?}");
        assert_eq!(stream[1].0, replayed.entry);
        assert_eq!(stream[1].1, [("e".to_owned(), ENVELOPE.to_owned())]);
        let left: Vec<String> = server
            .dead_letters()
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        assert_eq!(left, std::slice::from_ref(&junk));
        let doorbell = pubsub.get_message().expect("the doorbell");
        assert_eq!(
            doorbell.get_payload::<String>().ok().as_deref(),
            Some(ENVELOPE)
        );

        let again = replay(&mut conn, &dead).expect_err("a second replay");
        assert!(again.to_string().contains("no dead letter"), "{again:#}");
        let refused = replay(&mut conn, &junk).expect_err("replaying junk");
        assert!(
            refused
                .to_string()
                .contains("cannot be replayed: not an event envelope"),
            "{refused:#}"
        );
        assert_eq!(server.stream("events:order:created").len(), 2);
        assert_eq!(server.dead_letters().len(), 1);
    }

    #[test]
    fn ids_sort_by_time_then_sequence() {
        let mut ids = vec!["10-1", "9-5", "10-0"];
        ids.sort_by_key(|id| id_order(id));
        assert_eq!(ids, ["9-5", "10-0", "10-1"]);
    }
}
