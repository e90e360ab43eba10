//! Reading the services' SQLite files from outside, as an operator would: counts,
//! `PRAGMA integrity_check`, and whether a request changed a file.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::Path;
use std::time::Duration;

use harness::App;
use rusqlite::{Connection, OpenFlags};

/// Every database of the app.
pub const DATABASES: [&str; 5] = ["auth", "tickets", "orders", "expiration", "payments"];
/// The databases with an outbox (auth publishes nothing).
pub const WITH_OUTBOX: [&str; 4] = ["tickets", "orders", "expiration", "payments"];

/// A read-only connection that waits for the app's writers rather than failing.
pub fn open(path: &Path) -> Connection {
    let connection = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .unwrap_or_else(|err| panic!("cannot open {}: {err}", path.display()));
    connection
        .busy_timeout(Duration::from_secs(10))
        .expect("a busy timeout");
    connection
}

/// The first column of every row of `sql`, as text.
pub fn strings(app: &App, database: &str, sql: &str) -> Vec<String> {
    let connection = open(&app.sqlite_path(database));
    let mut statement = connection
        .prepare(sql)
        .unwrap_or_else(|err| panic!("{sql}: {err}"));
    statement
        .query_map([], |row| row.get::<_, String>(0))
        .and_then(|rows| rows.collect())
        .unwrap_or_else(|err| panic!("{sql}: {err}"))
}

/// The pairs of the first two columns of every row of `sql`.
pub fn pairs(app: &App, database: &str, sql: &str) -> Vec<(String, String)> {
    let connection = open(&app.sqlite_path(database));
    let mut statement = connection
        .prepare(sql)
        .unwrap_or_else(|err| panic!("{sql}: {err}"));
    statement
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .and_then(|rows| rows.collect())
        .unwrap_or_else(|err| panic!("{sql}: {err}"))
}

/// The first three columns of every row of `sql`, as text.
pub fn triples(app: &App, database: &str, sql: &str) -> Vec<(String, String, String)> {
    let connection = open(&app.sqlite_path(database));
    let mut statement = connection
        .prepare(sql)
        .unwrap_or_else(|err| panic!("{sql}: {err}"));
    statement
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
        .and_then(|rows| rows.collect())
        .unwrap_or_else(|err| panic!("{sql}: {err}"))
}

/// Every row of `sql`, each column as text (a number in decimal, NULL as "").
pub fn table(app: &App, database: &str, sql: &str) -> Vec<Vec<String>> {
    use rusqlite::types::ValueRef;
    let connection = open(&app.sqlite_path(database));
    let mut statement = connection
        .prepare(sql)
        .unwrap_or_else(|err| panic!("{sql}: {err}"));
    let columns = statement.column_count();
    statement
        .query_map([], |row| {
            (0..columns)
                .map(|column| {
                    Ok(match row.get_ref(column)? {
                        ValueRef::Null => String::new(),
                        ValueRef::Integer(number) => number.to_string(),
                        ValueRef::Real(number) => number.to_string(),
                        ValueRef::Text(text) => String::from_utf8_lossy(text).into_owned(),
                        ValueRef::Blob(bytes) => format!("<{} bytes>", bytes.len()),
                    })
                })
                .collect()
        })
        .and_then(|rows| rows.collect())
        .unwrap_or_else(|err| panic!("{sql}: {err}"))
}

/// Every reserved ticket in tickets' database: (ticket id, the order holding it).
pub fn reservations(app: &App) -> Vec<(String, String)> {
    pairs(
        app,
        "tickets",
        "SELECT id, order_id FROM tickets WHERE order_id IS NOT NULL",
    )
}

/// The single number `sql` gives.
pub fn count(app: &App, database: &str, sql: &str) -> i64 {
    open(&app.sqlite_path(database))
        .query_row(sql, [], |row| row.get(0))
        .unwrap_or_else(|err| panic!("{sql}: {err}"))
}

/// Events committed to `database`'s outbox and not yet on their stream.
pub fn unrelayed(app: &App, database: &str) -> i64 {
    count(
        app,
        database,
        "SELECT count(*) FROM outbox WHERE relayed_ms IS NULL",
    )
}

/// `PRAGMA integrity_check`'s verdict: `ok`, or the problems it lists. Opened
/// read-write, as a restarted app opens it: a journal left by a crash is rolled back.
pub fn integrity(path: &Path) -> String {
    let connection = Connection::open(path)
        .unwrap_or_else(|err| panic!("cannot open {}: {err}", path.display()));
    connection
        .busy_timeout(Duration::from_secs(10))
        .expect("a busy timeout");
    let mut statement = connection
        .prepare("PRAGMA integrity_check")
        .expect("PRAGMA integrity_check");
    statement
        .query_map([], |row| row.get::<_, String>(0))
        .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
        .map(|lines| lines.join(", "))
        .unwrap_or_else(|err| format!("cannot check: {err}"))
}

/// Watches every database for changes: SQLite's `data_version` moves when another
/// connection commits to the file (cheap, checked around every request), and a digest
/// of every row tells whether the content differs from a baseline (for the files
/// whose version moved: a commit can also undo an earlier one, as a declined charge's
/// pending row is deleted again).
pub struct Watch {
    connections: Vec<(&'static str, Connection)>,
    baseline: Vec<u64>,
}

impl Watch {
    pub fn new(app: &App) -> Watch {
        let connections: Vec<(&'static str, Connection)> = DATABASES
            .iter()
            .map(|name| (*name, open(&app.sqlite_path(name))))
            .collect();
        let baseline = connections
            .iter()
            .map(|(_, connection)| digest(connection))
            .collect();
        Watch {
            connections,
            baseline,
        }
    }

    /// Takes the content now as the baseline (after a change that was accepted).
    pub fn rebase(&mut self) {
        self.baseline = self
            .connections
            .iter()
            .map(|(_, connection)| digest(connection))
            .collect();
    }

    /// Of `names`, the databases whose content differs from the baseline.
    pub fn differ(&self, names: &[&'static str]) -> Vec<&'static str> {
        self.connections
            .iter()
            .zip(&self.baseline)
            .filter(|((name, connection), baseline)| {
                names.contains(name) && digest(connection) != **baseline
            })
            .map(|((name, _), _)| *name)
            .collect()
    }

    /// Each database's `data_version` now.
    pub fn versions(&self) -> Vec<i64> {
        self.connections
            .iter()
            .map(|(name, connection)| {
                connection
                    .query_row("PRAGMA data_version", [], |row| row.get(0))
                    .unwrap_or_else(|err| panic!("data_version of {name}: {err}"))
            })
            .collect()
    }

    /// The databases whose version differs between `before` and `after`.
    pub fn changed(&self, before: &[i64], after: &[i64]) -> Vec<&'static str> {
        self.connections
            .iter()
            .zip(before.iter().zip(after))
            .filter(|(_, (before, after))| before != after)
            .map(|((name, _), _)| *name)
            .collect()
    }
}

/// A digest of every row of every table, in no particular order of rows.
fn digest(connection: &Connection) -> u64 {
    let mut statement = connection
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .expect("the schema is readable");
    let tables: Vec<String> = statement
        .query_map([], |row| row.get(0))
        .and_then(|rows| rows.collect())
        .expect("the schema is readable");
    let mut hasher = DefaultHasher::new();
    for table in tables {
        let mut statement = connection
            .prepare(&format!("SELECT * FROM \"{table}\""))
            .unwrap_or_else(|err| panic!("reading {table}: {err}"));
        let columns = statement.column_count();
        let mut rows: Vec<String> = statement
            .query_map([], |row| {
                (0..columns)
                    .map(|column| row.get_ref(column).map(|value| format!("{value:?}")))
                    .collect::<Result<Vec<_>, _>>()
                    .map(|values| values.join("\u{1f}"))
            })
            .and_then(|rows| rows.collect())
            .unwrap_or_else(|err| panic!("reading {table}: {err}"));
        rows.sort_unstable();
        (table, rows).hash(&mut hasher);
    }
    hasher.finish()
}
