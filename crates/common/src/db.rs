//! A service's SQLite database: its schema, migrated on first use, and transactions.

use spin_sdk::sqlite::Connection;

use crate::ApiError;

/// A service's schema, one entry per version, oldest first. Each version is a list of
/// single statements (Spin's `execute` runs one at a time). Versions are only ever
/// appended: a released one never changes.
///
/// A version changes the schema only: tables, columns, indexes. It never writes rows,
/// because [`read`] does not check the version before it reads: a read that runs
/// against an older schema sees the same rows it would see after the upgrade, as long
/// as no upgrade rewrites them. [`migrate`] refuses a statement that writes rows.
pub type Migrations = &'static [&'static [&'static str]];

/// Opens the database `name` (granted in spin.toml) with its schema at the latest version.
pub fn open(name: &str, migrations: Migrations) -> Result<Connection, ApiError> {
    let conn = Connection::open(name)?;
    migrate(&conn, migrations)?;
    Ok(conn)
}

/// Runs `read` (statements that only read) on the database `name`, checking its schema
/// version only when `read` fails with a storage error.
///
/// Every request is a fresh instance, so [`open`]'s version check is a statement of its
/// own on every request: on a point read, half of the statements. Here a database
/// without the tables or columns `read` names fails it; then it is migrated and `read`
/// runs again. A database at an older version whose tables answer `read` is read as it
/// is, which gives the same rows as after the upgrade ([`Migrations`]), and the next
/// write migrates it. When the database is already at the latest version, the failure
/// was not the schema's, and it is returned as it was.
pub fn read<T>(
    name: &str,
    migrations: Migrations,
    read: impl Fn(&Connection) -> Result<T, ApiError>,
) -> Result<T, ApiError> {
    let conn = Connection::open(name)?;
    // Only a storage error can be the schema's; a 404 or 401 is the read's answer.
    let failure = match read(&conn) {
        Err(failure @ ApiError::Internal(_)) => failure,
        answer => return answer,
    };
    match schema_version(&conn) {
        Ok(version) if version < migrations.len() => {
            migrate(&conn, migrations)?;
            read(&conn)
        }
        _ => Err(failure),
    }
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
        for (index, statements) in migrations.iter().enumerate().skip(current) {
            for statement in statements.iter() {
                if writes_rows(statement) {
                    return Err(anyhow::anyhow!(
                        "version {} of the schema writes rows, which no version may do \
                         (common::db::Migrations says why): {statement}",
                        index + 1
                    )
                    .into());
                }
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

/// Whether a migration's statement writes rows (its first keyword says so; `WITH` may
/// lead into any of them).
fn writes_rows(statement: &str) -> bool {
    let first = statement
        .split(|c: char| !c.is_ascii_alphabetic())
        .find(|word| !word.is_empty())
        .unwrap_or_default();
    ["INSERT", "UPDATE", "DELETE", "REPLACE", "WITH"]
        .iter()
        .any(|keyword| first.eq_ignore_ascii_case(keyword))
}

#[cfg(test)]
mod tests {
    use super::writes_rows;

    #[test]
    fn migrations_may_change_the_schema_but_not_rows() {
        for schema in [
            "CREATE TABLE t (id TEXT)",
            "  create index t_id ON t (id) WHERE id IS NOT NULL",
            "ALTER TABLE t ADD COLUMN updated_ms INTEGER NOT NULL DEFAULT 0",
            "DROP INDEX t_id",
        ] {
            assert!(!writes_rows(schema), "{schema}");
        }
        for rows in [
            "INSERT INTO t VALUES ('a')",
            "\n  update t SET id = trim(id)",
            "DELETE FROM t",
            "REPLACE INTO t VALUES ('a')",
            "WITH old AS (SELECT id FROM t) DELETE FROM t WHERE id IN old",
        ] {
            assert!(writes_rows(rows), "{rows}");
        }
    }
}
