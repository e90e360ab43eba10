//! Every SQL statement of auth, and its schema.

use spin_sdk::sqlite::{Connection, Value};

use common::ApiError;
use common::db::Migrations;

use crate::domain::Email;

pub const DATABASE: &str = "auth";

pub const MIGRATIONS: Migrations = &[
    // 1: users. `email_key` (the lower-cased email) makes emails unique ignoring case.
    &["CREATE TABLE users (
        id TEXT PRIMARY KEY,
        email TEXT NOT NULL,
        email_key TEXT NOT NULL UNIQUE,
        password_hash TEXT NOT NULL,
        created_at INTEGER NOT NULL
    ) STRICT"],
];

pub fn open() -> Result<Connection, ApiError> {
    common::db::open(DATABASE, MIGRATIONS)
}

/// A stored user with the hash to check a password against.
pub struct StoredUser {
    pub id: String,
    pub email: String,
    pub password_hash: String,
}

/// Inserts the user unless the email is taken (then `false`): the unique index decides,
/// so of two concurrent sign-ups with one email exactly one succeeds.
pub fn insert_user(
    conn: &Connection,
    id: &str,
    email: &Email,
    password_hash: &str,
    created_at: i64,
) -> Result<bool, ApiError> {
    let result = conn.execute(
        "INSERT INTO users (id, email, email_key, password_hash, created_at)
         VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (email_key) DO NOTHING
         RETURNING id",
        &[
            Value::Text(id.to_owned()),
            Value::Text(email.as_str().to_owned()),
            Value::Text(email.key()),
            Value::Text(password_hash.to_owned()),
            Value::Integer(created_at),
        ],
    )?;
    Ok(!result.rows.is_empty())
}

pub fn find_user(conn: &Connection, email: &Email) -> Result<Option<StoredUser>, ApiError> {
    let result = conn.execute(
        "SELECT id, email, password_hash FROM users WHERE email_key = ?",
        &[Value::Text(email.key())],
    )?;
    let Some(row) = result.rows().next() else {
        return Ok(None);
    };
    let text = |column: &str| {
        row.get::<&str>(column)
            .map(str::to_owned)
            .ok_or_else(|| anyhow::anyhow!("users.{column} is not text"))
    };
    Ok(Some(StoredUser {
        id: text("id")?,
        email: text("email")?,
        password_hash: text("password_hash")?,
    }))
}
