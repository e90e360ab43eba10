//! `fermyon:spin/redis@2.0.0`: Redis from inside a component.
//!
//! Each guest `open` gets a connection of its own (a `MULTI` or a blocking command of
//! one instance never mixes with another's), borrowed from a per-address pool and
//! handed back when the guest drops it. Spin opens a new connection per `open`; the
//! pool only saves the connect, so a connection goes back only when it is as good as
//! new: one that failed is discarded (a restarted Redis is reconnected to on the next
//! `open`), and so is one whose state a command changed (`SELECT`, `MULTI`, ...).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use redis::aio::MultiplexedConnection;
use redis::{RedisError, Value as RedisValue};
use wasmtime::component::Resource;

use crate::bindings::spin::redis::{self as guest, Error, Payload, RedisParameter, RedisResult};
use crate::state::State;
use crate::traces::Span;

/// Idle connections kept per address.
const MAX_IDLE: usize = 16;

/// The app's Redis clients and their idle connections, by address.
#[derive(Default)]
pub struct Pools {
    pools: Mutex<HashMap<String, Arc<Pool>>>,
}

struct Pool {
    client: redis::Client,
    idle: Mutex<Vec<MultiplexedConnection>>,
}

impl Pools {
    /// One command on a pooled connection (for the host's own use, e.g. key-value).
    pub async fn query(
        &self,
        address: &str,
        command: redis::Cmd,
    ) -> Result<RedisValue, RedisError> {
        let pool = self.pool(address)?;
        let (mut connection, was_idle) = pool.take().await?;
        let mut result = command.query_async(&mut connection).await;
        if was_idle && result.as_ref().is_err_and(is_broken) {
            // The server went away while the connection sat idle: as Spin would with
            // its connection per open, run the command on a new one.
            connection = pool.client.get_multiplexed_async_connection().await?;
            result = command.query_async(&mut connection).await;
        }
        if result.is_ok() {
            pool.give_back(connection);
        }
        result
    }

    fn pool(&self, address: &str) -> Result<Arc<Pool>, RedisError> {
        let mut pools = self
            .pools
            .lock()
            .expect("no code panics holding the pools lock");
        if let Some(pool) = pools.get(address) {
            return Ok(pool.clone());
        }
        let client = redis::Client::open(address)?;
        let pool = Arc::new(Pool {
            client,
            idle: Mutex::new(Vec::new()),
        });
        pools.insert(address.to_owned(), pool.clone());
        Ok(pool)
    }
}

impl Pool {
    /// An idle connection (`true`) or a new one.
    async fn take(&self) -> Result<(MultiplexedConnection, bool), RedisError> {
        let idle = self
            .idle
            .lock()
            .expect("no code panics holding the pool lock")
            .pop();
        match idle {
            Some(connection) => Ok((connection, true)),
            None => Ok((self.client.get_multiplexed_async_connection().await?, false)),
        }
    }

    fn give_back(&self, connection: MultiplexedConnection) {
        let mut idle = self
            .idle
            .lock()
            .expect("no code panics holding the pool lock");
        if idle.len() < MAX_IDLE {
            idle.push(connection);
        }
    }
}

/// The guest's `connection` resource.
pub struct Connection {
    pool: Arc<Pool>,
    connection: MultiplexedConnection,
    /// Failed, or its state was changed: never handed to another instance.
    is_spent: bool,
    /// Taken from the idle ones and not used yet: if the server restarted meanwhile,
    /// its first command fails where Spin's fresh connection would not.
    is_untried: bool,
}

impl Drop for Connection {
    fn drop(&mut self) {
        if !self.is_spent {
            self.pool.give_back(self.connection.clone());
        }
    }
}

impl State {
    /// Runs a command on the guest's connection, remembering whether the connection
    /// broke (then it is not reused).
    async fn query(
        &mut self,
        connection: &Resource<Connection>,
        command: redis::Cmd,
    ) -> Result<RedisValue, Error> {
        let connection = self
            .table
            .get_mut(connection)
            .map_err(|_| Error::Other("invalid connection".into()))?;
        let mut result = command.query_async(&mut connection.connection).await;
        if std::mem::take(&mut connection.is_untried) && result.as_ref().is_err_and(is_broken) {
            // Run on a new connection, as Spin (a connection per open) would.
            match connection
                .pool
                .client
                .get_multiplexed_async_connection()
                .await
            {
                Ok(fresh) => {
                    connection.connection = fresh;
                    result = command.query_async(&mut connection.connection).await;
                }
                Err(err) => result = Err(err),
            }
        }
        result.map_err(|err| {
            if is_broken(&err) {
                connection.is_spent = true;
            }
            other(&err)
        })
    }
}

impl State {
    /// A Redis call's span, as Spin names it (`name` is only called when traces are
    /// exported), with the argument Spin records.
    fn redis_span(
        &self,
        name: impl FnOnce() -> String,
        argument: Option<(&'static str, &str)>,
    ) -> Option<Span> {
        let span = self.client_span(name)?;
        span.set_attribute("db.system", "redis");
        if let Some((key, value)) = argument {
            span.set_attribute(key, value.to_owned());
        }
        Some(span)
    }
}

/// The connection, not the command, failed.
fn is_broken(err: &RedisError) -> bool {
    err.is_io_error() || err.is_connection_dropped() || err.is_unrecoverable_error()
}

fn other(err: &RedisError) -> Error {
    Error::Other(error_text(err))
}

/// An error's text as Spin 3.6 shows it (its redis crate formats server errors as
/// `CODE: detail`, and `ERR` ones as below), so guests that match on the text (e.g.
/// `BUSYGROUP`) see the same on both hosts.
fn error_text(err: &RedisError) -> String {
    match err.code() {
        Some("ERR") => format!(
            "An error was signalled by the server - ResponseError: {}",
            err.detail().unwrap_or_default()
        ),
        Some(code) => format!("{code}: {}", err.detail().unwrap_or_default()),
        None => err.to_string(),
    }
}

/// Commands after which a connection is not as good as new.
fn changes_connection_state(command: &str) -> bool {
    const STATEFUL: &[&str] = &[
        "AUTH",
        "CLIENT",
        "HELLO",
        "MONITOR",
        "MULTI",
        "PSUBSCRIBE",
        "READONLY",
        "READWRITE",
        "RESET",
        "SELECT",
        "SSUBSCRIBE",
        "SUBSCRIBE",
        "WATCH",
    ];
    STATEFUL
        .iter()
        .any(|stateful| stateful.eq_ignore_ascii_case(command))
}

impl guest::Host for State {}

impl guest::HostConnection for State {
    async fn open(&mut self, address: String) -> Result<Resource<Connection>, Error> {
        let span = self.redis_span(|| "spin_outbound_redis.open_connection".to_owned(), None);
        let opened = async {
            if !self.component.allowed_hosts.allows_url(&address) {
                self.component.log_denied("Redis", &address);
                return Err(Error::InvalidAddress);
            }
            let pool = self
                .component
                .redis
                .pool(&address)
                .map_err(|_| Error::InvalidAddress)?;
            let (connection, was_idle) = pool.take().await.map_err(|err| other(&err))?;
            self.table
                .push(Connection {
                    pool,
                    connection,
                    is_spent: false,
                    is_untried: was_idle,
                })
                .map_err(|_| Error::TooManyConnections)
        }
        .await;
        Span::end(span, &opened);
        opened
    }

    async fn publish(
        &mut self,
        connection: Resource<Connection>,
        channel: String,
        payload: Payload,
    ) -> Result<(), Error> {
        let span = self.redis_span(|| format!("PUBLISH {channel}"), Some(("channel", &channel)));
        let mut command = redis::cmd("PUBLISH");
        command.arg(channel).arg(payload);
        let result = self.query(&connection, command).await.map(drop);
        Span::end(span, &result);
        result
    }

    async fn get(
        &mut self,
        connection: Resource<Connection>,
        key: String,
    ) -> Result<Option<Payload>, Error> {
        let span = self.redis_span(|| format!("GET {key}"), Some(("key", &key)));
        let mut command = redis::cmd("GET");
        command.arg(key);
        let result = match self.query(&connection, command).await {
            Ok(RedisValue::Nil) => Ok(None),
            Ok(RedisValue::BulkString(bytes)) => Ok(Some(bytes)),
            Ok(RedisValue::SimpleString(text)) => Ok(Some(text.into_bytes())),
            Ok(_) => Err(Error::TypeError),
            Err(err) => Err(err),
        };
        Span::end(span, &result);
        result
    }

    async fn set(
        &mut self,
        connection: Resource<Connection>,
        key: String,
        value: Payload,
    ) -> Result<(), Error> {
        let span = self.redis_span(|| format!("SET {key}"), Some(("key", &key)));
        let mut command = redis::cmd("SET");
        command.arg(key).arg(value);
        let result = self.query(&connection, command).await.map(drop);
        Span::end(span, &result);
        result
    }

    async fn incr(&mut self, connection: Resource<Connection>, key: String) -> Result<i64, Error> {
        let span = self.redis_span(|| format!("INCRBY {key} 1"), Some(("key", &key)));
        let mut command = redis::cmd("INCR");
        command.arg(key);
        let result = self.query(&connection, command).await.and_then(integer);
        Span::end(span, &result);
        result
    }

    async fn del(
        &mut self,
        connection: Resource<Connection>,
        keys: Vec<String>,
    ) -> Result<u32, Error> {
        let span = self.redis_span(|| format!("DEL {}", keys.join(" ")), None);
        let mut command = redis::cmd("DEL");
        command.arg(keys);
        let result = self.query(&connection, command).await.and_then(count);
        Span::end(span, &result);
        result
    }

    async fn sadd(
        &mut self,
        connection: Resource<Connection>,
        key: String,
        values: Vec<String>,
    ) -> Result<u32, Error> {
        let span = self.redis_span(
            || format!("SADD {key} {}", values.join(" ")),
            Some(("key", &key)),
        );
        let mut command = redis::cmd("SADD");
        command.arg(key).arg(values);
        let result = self.query(&connection, command).await.and_then(count);
        Span::end(span, &result);
        result
    }

    async fn smembers(
        &mut self,
        connection: Resource<Connection>,
        key: String,
    ) -> Result<Vec<String>, Error> {
        let span = self.redis_span(|| format!("SMEMBERS {key}"), Some(("key", &key)));
        let mut command = redis::cmd("SMEMBERS");
        command.arg(key);
        let result = match self.query(&connection, command).await {
            Ok(RedisValue::Array(members) | RedisValue::Set(members)) => members
                .into_iter()
                .map(|member| match member {
                    RedisValue::BulkString(bytes) => {
                        String::from_utf8(bytes).map_err(|_| Error::TypeError)
                    }
                    RedisValue::SimpleString(text) => Ok(text),
                    _ => Err(Error::TypeError),
                })
                .collect(),
            Ok(_) => Err(Error::TypeError),
            Err(err) => Err(err),
        };
        Span::end(span, &result);
        result
    }

    async fn srem(
        &mut self,
        connection: Resource<Connection>,
        key: String,
        values: Vec<String>,
    ) -> Result<u32, Error> {
        let span = self.redis_span(
            || format!("SREM {key} {}", values.join(" ")),
            Some(("key", &key)),
        );
        let mut command = redis::cmd("SREM");
        command.arg(key).arg(values);
        let result = self.query(&connection, command).await.and_then(count);
        Span::end(span, &result);
        result
    }

    async fn execute(
        &mut self,
        connection: Resource<Connection>,
        command: String,
        arguments: Vec<RedisParameter>,
    ) -> Result<Vec<RedisResult>, Error> {
        // The arguments are not recorded (Spin records them): they carry every event's
        // payload.
        let span = self.redis_span(|| command.clone(), Some(("command", &command)));
        if changes_connection_state(&command)
            && let Ok(connection) = self.table.get_mut(&connection)
        {
            connection.is_spent = true;
        }
        let mut cmd = redis::cmd(&command);
        for argument in arguments {
            match argument {
                RedisParameter::Int64(int) => cmd.arg(int),
                RedisParameter::Binary(bytes) => cmd.arg(bytes),
            };
        }
        let result = self.query(&connection, cmd).await.and_then(|reply| {
            let mut results = Vec::new();
            flatten(reply, &mut results)?;
            Ok(results)
        });
        Span::end(span, &result);
        result
    }

    async fn drop(&mut self, connection: Resource<Connection>) -> wasmtime::Result<()> {
        self.table.delete(connection)?;
        Ok(())
    }
}

fn integer(value: RedisValue) -> Result<i64, Error> {
    match value {
        RedisValue::Int(int) => Ok(int),
        _ => Err(Error::TypeError),
    }
}

fn count(value: RedisValue) -> Result<u32, Error> {
    integer(value).and_then(|int| u32::try_from(int).map_err(|_| Error::TypeError))
}

/// Spin's reply shape for `execute`: nested arrays are flattened into one list (an
/// empty array contributes nothing), so an XREADGROUP reply reads
/// `[stream, id, field, value, id, field, value, ...]`. Reply types Spin cannot
/// convert (maps, attributes, verbatim strings, pushes, nested errors) fail the call
/// with `other`, as they do in Spin.
pub fn flatten(value: RedisValue, out: &mut Vec<RedisResult>) -> Result<(), Error> {
    match value {
        RedisValue::Nil => out.push(RedisResult::Nil),
        RedisValue::Int(int) => out.push(RedisResult::Int64(int)),
        RedisValue::BulkString(bytes) => out.push(RedisResult::Binary(bytes)),
        RedisValue::SimpleString(text) => out.push(RedisResult::Status(text)),
        RedisValue::Okay => out.push(RedisResult::Status("OK".into())),
        RedisValue::Array(values) | RedisValue::Set(values) => {
            for value in values {
                flatten(value, out)?;
            }
        }
        RedisValue::Double(double) => {
            out.push(RedisResult::Binary(double.to_string().into_bytes()))
        }
        RedisValue::Boolean(boolean) => out.push(RedisResult::Int64(boolean.into())),
        RedisValue::BigNumber(digits) => out.push(RedisResult::Binary(digits)),
        RedisValue::ServerError(err) => {
            return Err(Error::Other(format!("server error: {err:?}")));
        }
        unsupported => {
            return Err(Error::Other(format!(
                "could not convert the Redis response: {unsupported:?} is not supported"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(text: &str) -> RedisValue {
        RedisValue::BulkString(text.as_bytes().to_vec())
    }

    fn flat(value: RedisValue) -> String {
        let mut out = Vec::new();
        flatten(value, &mut out).unwrap();
        format!("{out:?}")
    }

    #[test]
    fn an_xreadgroup_reply_reads_in_steps_of_three() {
        let reply = RedisValue::Array(vec![RedisValue::Array(vec![
            bulk("events:ticket:created"),
            RedisValue::Array(vec![
                RedisValue::Array(vec![
                    bulk("1-0"),
                    RedisValue::Array(vec![bulk("e"), bulk("{}")]),
                ]),
                RedisValue::Array(vec![
                    bulk("2-0"),
                    RedisValue::Array(vec![bulk("e"), bulk("{}")]),
                ]),
            ]),
        ])]);
        let mut expected = Vec::new();
        for text in ["events:ticket:created", "1-0", "e", "{}", "2-0", "e", "{}"] {
            expected.push(RedisResult::Binary(text.as_bytes().to_vec()));
        }
        assert_eq!(flat(reply), format!("{expected:?}"));
    }

    #[test]
    fn empty_arrays_vanish_and_scalars_keep_their_kind() {
        let reply = RedisValue::Array(vec![
            RedisValue::Int(0),
            RedisValue::Nil,
            RedisValue::Array(vec![]),
            RedisValue::Okay,
        ]);
        assert_eq!(
            flat(reply),
            format!(
                "{:?}",
                [
                    RedisResult::Int64(0),
                    RedisResult::Nil,
                    RedisResult::Status("OK".into())
                ]
            )
        );
    }
}
