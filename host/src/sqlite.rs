//! `fermyon:spin/sqlite@2.0.0` on rusqlite: one file per named database.
//!
//! As in Spin, every `open` gets its own connection (so `BEGIN ... COMMIT` over several
//! `execute` calls is one transaction, and a second writer waits up to 5 s for the lock,
//! then fails with `io("database is locked")`). Connections are pooled per database;
//! one handed back mid-transaction (a guest that trapped or forgot to commit) is rolled
//! back first, so the next user starts clean.
//!
//! Writers of one database in this process queue for its write lock in order (an
//! async mutex taken by `BEGIN IMMEDIATE`/`EXCLUSIVE` and held until the transaction
//! ends, or taken for one write statement outside a transaction), instead of each polling SQLite's lock with the busy handler's growing sleeps:
//! under many concurrent writers that polling is unfair and costs seconds at the tail.
//! The outcome is Spin's: a writer still waits at most 5 s, then gets
//! `io("database is locked")`. Writers in other processes (replicas) still meet the
//! busy handler.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use rusqlite::types::{ToSqlOutput, Value as SqlValue, ValueRef};
use wasmtime::component::Resource;

use crate::bindings::spin::sqlite::{self, Error, QueryResult, RowResult, Value};
use crate::state::State;
use crate::traces::Span;

/// How long a writer waits for another connection's lock (rusqlite's and Spin's default).
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Idle connections kept per database.
const MAX_IDLE: usize = 32;

/// One named database, its idle connections and its writers' queue.
pub struct Database {
    path: PathBuf,
    idle: Mutex<Vec<rusqlite::Connection>>,
    writer: Arc<tokio::sync::Mutex<()>>,
}

impl Database {
    pub fn new(path: PathBuf) -> Arc<Database> {
        Arc::new(Database {
            path,
            idle: Mutex::new(Vec::new()),
            writer: Arc::new(tokio::sync::Mutex::new(())),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Opens (or creates) the file once, so a bad path fails at start, not per request.
    pub fn check(&self) -> anyhow::Result<()> {
        let connection = self.connect()?;
        self.give_back(connection);
        Ok(())
    }

    /// Runs `f` on a pooled connection, off the async worker (SQLite blocks).
    pub fn with_connection<T>(
        &self,
        f: impl FnOnce(&rusqlite::Connection) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T> {
        tokio::task::block_in_place(|| {
            let connection = self.take()?;
            let result = f(&connection);
            self.give_back(connection);
            result
        })
    }

    fn take(&self) -> rusqlite::Result<rusqlite::Connection> {
        match self.take_idle() {
            Some(connection) => Ok(connection),
            None => self.connect(),
        }
    }

    fn take_idle(&self) -> Option<rusqlite::Connection> {
        self.idle
            .lock()
            .expect("no code panics holding the pool lock")
            .pop()
    }

    pub fn connect(&self) -> rusqlite::Result<rusqlite::Connection> {
        if let Some(dir) = self.path.parent() {
            // The file's directory (often `.spin/`) may not exist yet.
            let _ = std::fs::create_dir_all(dir);
        }
        let connection = rusqlite::Connection::open(&self.path)?;
        connection.busy_timeout(BUSY_TIMEOUT)?;
        Ok(connection)
    }

    fn give_back(&self, connection: rusqlite::Connection) {
        if !connection.is_autocommit() && connection.execute_batch("ROLLBACK").is_err() {
            return; // Dropped: closing the connection discards the transaction.
        }
        let mut idle = self
            .idle
            .lock()
            .expect("no code panics holding the pool lock");
        if idle.len() < MAX_IDLE {
            idle.push(connection);
        }
    }
}

/// The guest's `connection` resource: a connection borrowed from the pool.
pub struct Connection {
    database: Arc<Database>,
    connection: Option<rusqlite::Connection>,
    /// Held from a write transaction's `BEGIN` to its end (dropped after the
    /// connection is handed back, and so rolled back, when the guest forgot).
    writing: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl Connection {
    fn connection(&self) -> &rusqlite::Connection {
        self.connection
            .as_ref()
            .expect("a connection resource holds its connection until dropped")
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        if let Some(connection) = self.connection.take() {
            self.database.give_back(connection);
        }
    }
}

impl sqlite::Host for State {}

impl sqlite::HostConnection for State {
    async fn open(&mut self, database: String) -> Result<Resource<Connection>, Error> {
        let span = self.client_span(|| "spin_sqlite.open".to_owned());
        if let Some(span) = &span {
            span.set_attribute("db.system", "sqlite");
            span.set_attribute("database", database.clone());
        }
        let opened = self.open_connection(database).await;
        Span::end(span, &opened);
        opened
    }

    async fn execute(
        &mut self,
        connection: Resource<Connection>,
        statement: String,
        parameters: Vec<Value>,
    ) -> Result<QueryResult, Error> {
        let span = self.client_span(|| statement.clone());
        if let Some(span) = &span {
            span.set_attribute("db.system", "sqlite");
        }
        let result = self
            .execute_statement(connection, statement, parameters)
            .await;
        Span::end(span, &result);
        result
    }

    async fn drop(&mut self, connection: Resource<Connection>) -> wasmtime::Result<()> {
        self.table.delete(connection)?;
        Ok(())
    }
}

impl State {
    async fn open_connection(&mut self, database: String) -> Result<Resource<Connection>, Error> {
        let database = self.component.sqlite_database(&database)?;
        // An idle connection is at hand; opening a new one reads the file.
        let connection = match database.take_idle() {
            Some(connection) => Ok(connection),
            None => tokio::task::block_in_place(|| database.connect()),
        }
        .map_err(|err| Error::Io(err.to_string()))?;
        self.table
            .push(Connection {
                database,
                connection: Some(connection),
                writing: None,
            })
            .map_err(|_| Error::Io("too many open connections".into()))
    }

    async fn execute_statement(
        &mut self,
        connection: Resource<Connection>,
        statement: String,
        parameters: Vec<Value>,
    ) -> Result<QueryResult, Error> {
        let resource = self
            .table
            .get_mut(&connection)
            .map_err(|_| Error::InvalidConnection)?;
        let kind = Kind::of(resource.connection(), &statement);
        if resource.writing.is_none() && kind == Kind::Write {
            let queue = resource.database.writer.clone().lock_owned();
            let turn = tokio::time::timeout(BUSY_TIMEOUT, queue)
                .await
                .map_err(|_| Error::Io(LOCKED.into()))?;
            resource.writing = Some(turn);
        }
        let connection = resource.connection();
        let in_place = match kind {
            Kind::Read => read_without_waiting(connection, &statement, &parameters),
            Kind::Write | Kind::Other => None,
        };
        let result = match in_place {
            Some(result) => result,
            // A lock wait can take seconds: let the runtime move other work off this
            // thread.
            None => tokio::task::block_in_place(|| execute(connection, &statement, &parameters)),
        }
        .map_err(|err| Error::Io(err.to_string()));
        if connection.is_autocommit() {
            // Committed, rolled back, or the BEGIN failed: the next writer's turn.
            resource.writing = None;
        }
        result
    }
}

/// What a statement needs before it runs, from one look at it on its connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// It takes the write lock on a connection that holds no turn: a write
    /// transaction's `BEGIN`, or a write outside any transaction (autocommit). A write
    /// inside a deferred `BEGIN` meets SQLite's busy handler, as in Spin.
    Write,
    /// A read outside any transaction: it runs in place unless it would wait.
    Read,
    /// Anything else: inside a transaction, transaction control (SQLite calls `COMMIT`
    /// read-only, but it writes and waits for the disk), or not SQL at all.
    Other,
}

impl Kind {
    fn of(connection: &rusqlite::Connection, statement: &str) -> Kind {
        let mut words = keywords(statement);
        let first = words.next().unwrap_or_default();
        let second = words.next().unwrap_or_default();
        // A deferred `BEGIN` takes no write lock.
        if first.eq_ignore_ascii_case("BEGIN")
            && (second.eq_ignore_ascii_case("IMMEDIATE")
                || second.eq_ignore_ascii_case("EXCLUSIVE"))
        {
            return Kind::Write;
        }
        let transaction_control = ["BEGIN", "COMMIT", "END", "ROLLBACK", "SAVEPOINT", "RELEASE"]
            .iter()
            .any(|control| first.eq_ignore_ascii_case(control));
        if transaction_control || !connection.is_autocommit() {
            return Kind::Other;
        }
        match connection.prepare_cached(statement) {
            Ok(prepared) if prepared.readonly() => Kind::Read,
            Ok(_) => Kind::Write,
            Err(_) => Kind::Other,
        }
    }
}

/// The statement's words, letters only (`" BEGIN\nIMMEDIATE;"` is BEGIN, IMMEDIATE).
fn keywords(statement: &str) -> impl Iterator<Item = &str> {
    statement
        .split(|c: char| !c.is_ascii_alphabetic())
        .filter(|word| !word.is_empty())
}

/// Runs a [`Kind::Read`] on the calling thread if it needs no waiting; None when it
/// would wait for a lock (a writer committing in rollback-journal mode), to be run
/// again where it may block.
///
/// Handing the thread over to block (`block_in_place`) costs more than a point read
/// itself: a third of the host's time on `GET /api/tickets/:id`.
fn read_without_waiting(
    connection: &rusqlite::Connection,
    statement: &str,
    parameters: &[Value],
) -> Option<rusqlite::Result<QueryResult>> {
    connection.busy_timeout(Duration::ZERO).ok()?;
    let result = execute(connection, statement, parameters);
    connection.busy_timeout(BUSY_TIMEOUT).ok()?;
    match result {
        Err(rusqlite::Error::SqliteFailure(error, _))
            if error.code == rusqlite::ErrorCode::DatabaseBusy =>
        {
            None
        }
        result => Some(result),
    }
}

/// What SQLite says when the write lock stays taken for the whole busy timeout.
const LOCKED: &str = "database is locked";

/// Runs one statement on `connection` (a component test's statements run here too).
pub fn execute(
    connection: &rusqlite::Connection,
    statement: &str,
    parameters: &[Value],
) -> rusqlite::Result<QueryResult> {
    let mut prepared = connection.prepare_cached(statement)?;
    let columns: Vec<String> = prepared
        .column_names()
        .into_iter()
        .map(str::to_owned)
        .collect();
    let mut rows = prepared.query(rusqlite::params_from_iter(
        parameters.iter().map(SqlParameter),
    ))?;
    let mut results = Vec::new();
    while let Some(row) = rows.next()? {
        let values = (0..columns.len())
            .map(|index| row.get_ref(index).map(to_value))
            .collect::<rusqlite::Result<_>>()?;
        results.push(RowResult { values });
    }
    Ok(QueryResult {
        columns,
        rows: results,
    })
}

fn to_value(value: ValueRef<'_>) -> Value {
    match value {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(int) => Value::Integer(int),
        ValueRef::Real(real) => Value::Real(real),
        ValueRef::Text(text) => Value::Text(String::from_utf8_lossy(text).into_owned()),
        ValueRef::Blob(blob) => Value::Blob(blob.to_vec()),
    }
}

struct SqlParameter<'a>(&'a Value);

impl rusqlite::ToSql for SqlParameter<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self.0 {
            Value::Integer(int) => ToSqlOutput::Owned(SqlValue::Integer(*int)),
            Value::Real(real) => ToSqlOutput::Owned(SqlValue::Real(*real)),
            Value::Text(text) => ToSqlOutput::Borrowed(ValueRef::Text(text.as_bytes())),
            Value::Blob(blob) => ToSqlOutput::Borrowed(ValueRef::Blob(blob)),
            Value::Null => ToSqlOutput::Owned(SqlValue::Null),
        })
    }
}

/// Creates the database files named in the runtime config that components use.
pub fn open_databases(
    paths: impl IntoIterator<Item = (String, PathBuf)>,
) -> anyhow::Result<std::collections::BTreeMap<String, Arc<Database>>> {
    paths
        .into_iter()
        .map(|(name, path)| {
            let database = Database::new(path);
            database.check().with_context(|| {
                format!(
                    "cannot open SQLite database `{name}` at {}",
                    database.path().display()
                )
            })?;
            Ok((name, database))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn database() -> (tempfile::TempDir, Arc<Database>) {
        let dir = tempfile::tempdir().unwrap();
        let database = Database::new(dir.path().join("test.db"));
        (dir, database)
    }

    #[test]
    fn values_round_trip_with_their_types() {
        let (_dir, database) = database();
        let connection = database.take().unwrap();
        execute(
            &connection,
            "CREATE TABLE t (i INTEGER, r REAL, s TEXT, b BLOB, n)",
            &[],
        )
        .unwrap();
        let row = vec![
            Value::Integer(-7),
            Value::Real(2.5),
            Value::Text("ünïcode".into()),
            Value::Blob(vec![0, 255]),
            Value::Null,
        ];
        let inserted = execute(&connection, "INSERT INTO t VALUES (?, ?, ?, ?, ?)", &row).unwrap();
        assert!(inserted.columns.is_empty() && inserted.rows.is_empty());
        let selected = execute(&connection, "SELECT i, r, s, b, n FROM t", &[]).unwrap();
        assert_eq!(selected.columns, ["i", "r", "s", "b", "n"]);
        assert_eq!(selected.rows.len(), 1);
        assert_eq!(format!("{:?}", selected.rows[0].values), format!("{row:?}"));
    }

    #[test]
    fn a_connection_handed_back_mid_transaction_is_rolled_back() {
        let (_dir, database) = database();
        let connection = database.take().unwrap();
        execute(&connection, "CREATE TABLE t (x)", &[]).unwrap();
        execute(&connection, "BEGIN IMMEDIATE", &[]).unwrap();
        execute(&connection, "INSERT INTO t VALUES (1)", &[]).unwrap();
        database.give_back(connection);

        let connection = database.take().unwrap();
        assert!(connection.is_autocommit());
        let count = execute(&connection, "SELECT count(*) FROM t", &[]).unwrap();
        assert_eq!(
            format!("{:?}", count.rows[0].values),
            format!("{:?}", [Value::Integer(0)])
        );
    }

    #[test]
    fn write_transactions_are_recognized_by_their_begin() {
        let (_dir, database) = database();
        let connection = database.take().unwrap();
        for statement in [
            "BEGIN IMMEDIATE",
            "begin exclusive transaction",
            " BEGIN\nIMMEDIATE;",
        ] {
            assert_eq!(Kind::of(&connection, statement), Kind::Write, "{statement}");
        }
        for statement in [
            "BEGIN",
            "BEGIN DEFERRED",
            "SELECT 'BEGIN IMMEDIATE'",
            "COMMIT",
            "",
        ] {
            assert_ne!(Kind::of(&connection, statement), Kind::Write, "{statement}");
        }
    }

    #[test]
    fn writes_outside_a_transaction_take_a_turn_and_reads_do_not() {
        let (_dir, database) = database();
        let connection = database.take().unwrap();
        execute(&connection, "CREATE TABLE t (x)", &[]).unwrap();
        let kind = |statement| Kind::of(&connection, statement);
        assert_eq!(kind("INSERT INTO t VALUES (1)"), Kind::Write);
        assert_eq!(kind("UPDATE t SET x = 2"), Kind::Write);
        assert_eq!(kind("BEGIN IMMEDIATE"), Kind::Write);
        assert_ne!(kind("SELECT x FROM t"), Kind::Write);
        assert_ne!(kind("BEGIN"), Kind::Write);
        assert_ne!(kind("not SQL at all"), Kind::Write);
        execute(&connection, "BEGIN", &[]).unwrap();
        assert_ne!(kind("INSERT INTO t VALUES (1)"), Kind::Write);
    }

    #[test]
    fn a_second_writer_gets_database_is_locked() {
        let (_dir, database) = database();
        let first = database.take().unwrap();
        let second = database.connect().unwrap();
        second.busy_timeout(Duration::from_millis(50)).unwrap();
        execute(&first, "BEGIN IMMEDIATE", &[]).unwrap();
        let err = execute(&second, "BEGIN IMMEDIATE", &[]).unwrap_err();
        assert_eq!(err.to_string(), "database is locked");
    }

    #[test]
    fn reads_outside_a_transaction_run_in_place_unless_they_would_wait() {
        let (_dir, database) = database();
        let reader = database.take().unwrap();
        execute(&reader, "CREATE TABLE t (x)", &[]).unwrap();
        execute(&reader, "INSERT INTO t VALUES (1)", &[]).unwrap();
        assert_eq!(Kind::of(&reader, "SELECT x FROM t"), Kind::Read);
        let read = read_without_waiting(&reader, "SELECT x FROM t", &[]);
        assert!(read.is_some_and(|rows| rows.unwrap().rows.len() == 1));
        for other in ["INSERT INTO t VALUES (2)", "BEGIN", "COMMIT", " rollback"] {
            assert_ne!(Kind::of(&reader, other), Kind::Read, "{other}");
        }

        // A writer holding the lock to commit: the read would wait, so it is not run here.
        let writer = database.connect().unwrap();
        execute(&writer, "BEGIN EXCLUSIVE", &[]).unwrap();
        assert!(read_without_waiting(&reader, "SELECT x FROM t", &[]).is_none());
        execute(&writer, "COMMIT", &[]).unwrap();

        // Inside a transaction every statement goes where it may block.
        execute(&reader, "BEGIN", &[]).unwrap();
        assert_eq!(Kind::of(&reader, "SELECT x FROM t"), Kind::Other);
    }
}
