//! A service's SQLite database: its schema, migrated on first use, and transactions.

use spin_sdk::sqlite::Connection;

use crate::ApiError;

/// A service's schema, one entry per version, oldest first. Each version is a list of
/// single statements (Spin's `execute` runs one at a time). Versions are only ever
/// appended: a released one never changes.
pub type Migrations = &'static [&'static [&'static str]];

/// Opens the database `name` (granted in spin.toml) with its schema at the latest version.
pub fn open(name: &str, migrations: Migrations) -> Result<Connection, ApiError> {
    let conn = Connection::open(name)?;
    migrate(&conn, migrations)?;
    Ok(conn)
}

/// Applies the versions the database lacks (its `user_version` counts those applied),
/// all in one transaction. Safe to race: the version is read again inside it, so each
/// version is applied once. A database at a newer version (a newer replica ran first) is
/// left alone.
pub fn migrate(conn: &Connection, migrations: Migrations) -> Result<(), ApiError> {
    let latest = migrations.len();
    if schema_version(conn)? >= latest {
        return Ok(());
    }
    transaction(conn, |conn| {
        let current = schema_version(conn)?;
        for statements in migrations.iter().skip(current) {
            for statement in statements.iter() {
                conn.execute(statement, &[])?;
            }
        }
        if current < latest {
            // PRAGMA takes no parameters; `latest` is a count of our own migrations.
            conn.execute(&format!("PRAGMA user_version = {latest}"), &[])?;
        }
        Ok(())
    })
}

fn schema_version(conn: &Connection) -> Result<usize, ApiError> {
    let result = conn.execute("PRAGMA user_version", &[])?;
    let version = result
        .rows
        .first()
        .and_then(|row| row.get::<i64>(0))
        .ok_or_else(|| anyhow::anyhow!("PRAGMA user_version returned no number"))?;
    Ok(usize::try_from(version).unwrap_or(0))
}

/// Runs `change` between `BEGIN IMMEDIATE` and `COMMIT`: all of it or none of it. The
/// write lock is taken at the start, so a concurrent writer waits instead of failing
/// halfway; keep `change` short (no outbound calls inside).
pub fn transaction<T>(
    conn: &Connection,
    change: impl FnOnce(&Connection) -> Result<T, ApiError>,
) -> Result<T, ApiError> {
    conn.execute("BEGIN IMMEDIATE", &[])?;
    let outcome = change(conn).and_then(|value| {
        conn.execute("COMMIT", &[])?;
        Ok(value)
    });
    if outcome.is_err() {
        // Nothing to undo if the failure was COMMIT itself rolling back.
        let _ = conn.execute("ROLLBACK", &[]);
    }
    outcome
}
