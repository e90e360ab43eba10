//! `fermyon:spin/key-value@2.0.0`: labelled stores, each a SQLite file (Spin's
//! `spin` type, the default for `default`) or a Redis server (Spin's `redis` type).

use std::sync::Arc;

use wasmtime::component::Resource;

use crate::bindings::spin::key_value::{self, Error};
use crate::redis_outbound::Pools;
use crate::runtime_config::KeyValueBackend;
use crate::spin_test::KeyValueCall as Call;
use crate::sqlite::Database;
use crate::state::State;
use crate::traces::Span;

/// Where a store's data lives.
#[derive(Clone)]
pub enum Backend {
    /// Spin's schema: one table for every store in the file, keyed by (store, key).
    Sqlite(Arc<Database>),
    Redis(String),
}

impl Backend {
    /// The backend the runtime config names for the store `label` (a SQLite file gets
    /// its table).
    pub fn open(label: &str, config: &KeyValueBackend) -> anyhow::Result<Backend> {
        use anyhow::Context;
        Ok(match config {
            KeyValueBackend::Sqlite(path) => {
                let database = Database::new(path.clone());
                prepare_sqlite(&database)
                    .with_context(|| format!("key-value store `{label}` at {}", path.display()))?;
                Backend::Sqlite(database)
            }
            KeyValueBackend::Redis(url) => Backend::Redis(url.clone()),
        })
    }
}

/// The guest's `store` resource.
#[derive(Clone)]
pub struct Store {
    label: String,
    backend: Backend,
}

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS spin_key_value (
    store TEXT NOT NULL,
    key   TEXT NOT NULL,
    value BLOB NOT NULL,
    PRIMARY KEY (store, key)
)";

/// Creates the table of a SQLite-backed store file.
pub fn prepare_sqlite(database: &Database) -> anyhow::Result<()> {
    database.with_connection(|connection| connection.execute_batch(SCHEMA))?;
    Ok(())
}

fn other(err: impl ToString) -> Error {
    Error::Other(err.to_string())
}

impl State {
    /// The store behind a guest's handle, and the call recorded when a component test
    /// watches the app's key-value calls.
    fn store(&self, store: &Resource<Store>, call: impl FnOnce() -> Call) -> Result<Store, Error> {
        let store = self.table.get(store).map_err(other)?.clone();
        if let Some(test) = &self.component.test {
            test.record_key_value_call(&store.label, call());
        }
        Ok(store)
    }
}

/// One command against a Redis-backed store. Takes the pools by value so the future
/// holds no borrow of the (non-`Sync`) instance state across the await.
async fn query_redis(
    pools: Arc<Pools>,
    url: &str,
    command: redis::Cmd,
) -> Result<redis::Value, Error> {
    pools.query(url, command).await.map_err(other)
}

/// The operations of a store, on either backend (a component's calls and a component
/// test's alike).
impl Store {
    pub fn new(label: String, backend: Backend) -> Store {
        Store { label, backend }
    }

    pub fn label(&self) -> &str {
        &self.label
    }

    pub async fn get(&self, pools: Arc<Pools>, key: String) -> Result<Option<Vec<u8>>, Error> {
        match &self.backend {
            Backend::Sqlite(database) => database
                .with_connection(|connection| {
                    use rusqlite::OptionalExtension;
                    connection
                        .prepare_cached(
                            "SELECT value FROM spin_key_value WHERE store = ? AND key = ?",
                        )?
                        .query_row((&self.label, key), |row| row.get(0))
                        .optional()
                })
                .map_err(other),
            Backend::Redis(url) => {
                let mut command = redis::cmd("GET");
                command.arg(key);
                match query_redis(pools, url, command).await? {
                    redis::Value::Nil => Ok(None),
                    redis::Value::BulkString(bytes) => Ok(Some(bytes)),
                    other_reply => Err(Error::Other(format!("unexpected reply {other_reply:?}"))),
                }
            }
        }
    }

    pub async fn set(&self, pools: Arc<Pools>, key: String, value: Vec<u8>) -> Result<(), Error> {
        match &self.backend {
            Backend::Sqlite(database) => database
                .with_connection(|connection| {
                    connection
                        .prepare_cached(
                            "INSERT INTO spin_key_value (store, key, value) VALUES (?, ?, ?)
                             ON CONFLICT (store, key) DO UPDATE SET value = excluded.value",
                        )?
                        .execute((&self.label, key, value))
                })
                .map(drop)
                .map_err(other),
            Backend::Redis(url) => {
                let mut command = redis::cmd("SET");
                command.arg(key).arg(value);
                query_redis(pools, url, command).await.map(drop)
            }
        }
    }

    pub async fn delete(&self, pools: Arc<Pools>, key: String) -> Result<(), Error> {
        match &self.backend {
            Backend::Sqlite(database) => database
                .with_connection(|connection| {
                    connection
                        .prepare_cached("DELETE FROM spin_key_value WHERE store = ? AND key = ?")?
                        .execute((&self.label, key))
                })
                .map(drop)
                .map_err(other),
            Backend::Redis(url) => {
                let mut command = redis::cmd("DEL");
                command.arg(key);
                query_redis(pools, url, command).await.map(drop)
            }
        }
    }

    async fn exists(&self, pools: Arc<Pools>, key: String) -> Result<bool, Error> {
        match &self.backend {
            Backend::Sqlite(database) => database
                .with_connection(|connection| {
                    connection
                        .prepare_cached("SELECT 1 FROM spin_key_value WHERE store = ? AND key = ?")?
                        .exists((&self.label, key))
                })
                .map_err(other),
            Backend::Redis(url) => {
                let mut command = redis::cmd("EXISTS");
                command.arg(key);
                match query_redis(pools, url, command).await? {
                    redis::Value::Int(count) => Ok(count > 0),
                    other_reply => Err(Error::Other(format!("unexpected reply {other_reply:?}"))),
                }
            }
        }
    }

    async fn get_keys(&self, pools: Arc<Pools>) -> Result<Vec<String>, Error> {
        match &self.backend {
            Backend::Sqlite(database) => database
                .with_connection(|connection| {
                    connection
                        .prepare_cached(
                            "SELECT key FROM spin_key_value WHERE store = ? ORDER BY key",
                        )?
                        .query_map([&self.label], |row| row.get(0))?
                        .collect()
                })
                .map_err(other),
            Backend::Redis(url) => {
                let mut command = redis::cmd("KEYS");
                command.arg("*");
                match query_redis(pools, url, command).await? {
                    redis::Value::Array(keys) => keys
                        .into_iter()
                        .map(|key| match key {
                            redis::Value::BulkString(bytes) => {
                                String::from_utf8(bytes).map_err(other)
                            }
                            other_reply => {
                                Err(Error::Other(format!("unexpected key {other_reply:?}")))
                            }
                        })
                        .collect(),
                    other_reply => Err(Error::Other(format!("unexpected reply {other_reply:?}"))),
                }
            }
        }
    }
}

impl key_value::Host for State {}

impl key_value::HostStore for State {
    async fn open(&mut self, label: String) -> Result<Resource<Store>, Error> {
        let span = self.client_span(|| "spin_key_value.open".to_owned());
        let opened = self.component.key_value_store(&label).and_then(|backend| {
            self.table
                .push(Store { label, backend })
                .map_err(|_| Error::StoreTableFull)
        });
        Span::end(span, &opened);
        opened
    }

    async fn get(&mut self, store: Resource<Store>, key: String) -> Result<Option<Vec<u8>>, Error> {
        let span = self.client_span(|| "spin_key_value.get".to_owned());
        // The store is looked up before the await (here and below): a future that held
        // `&self` across it would not be `Send`.
        let found = self.store(&store, || Call::Get(key.clone()));
        let result = match found {
            Ok(store) => store.get(self.component.redis.clone(), key).await,
            Err(err) => Err(err),
        };
        Span::end(span, &result);
        result
    }

    async fn set(
        &mut self,
        store: Resource<Store>,
        key: String,
        value: Vec<u8>,
    ) -> Result<(), Error> {
        let span = self.client_span(|| "spin_key_value.set".to_owned());
        let found = self.store(&store, || Call::Set(key.clone(), value.clone()));
        let result = match found {
            Ok(store) => store.set(self.component.redis.clone(), key, value).await,
            Err(err) => Err(err),
        };
        Span::end(span, &result);
        result
    }

    async fn delete(&mut self, store: Resource<Store>, key: String) -> Result<(), Error> {
        let span = self.client_span(|| "spin_key_value.delete".to_owned());
        let found = self.store(&store, || Call::Delete(key.clone()));
        let result = match found {
            Ok(store) => store.delete(self.component.redis.clone(), key).await,
            Err(err) => Err(err),
        };
        Span::end(span, &result);
        result
    }

    async fn exists(&mut self, store: Resource<Store>, key: String) -> Result<bool, Error> {
        let span = self.client_span(|| "spin_key_value.exists".to_owned());
        let found = self.store(&store, || Call::Exists(key.clone()));
        let result = match found {
            Ok(store) => store.exists(self.component.redis.clone(), key).await,
            Err(err) => Err(err),
        };
        Span::end(span, &result);
        result
    }

    async fn get_keys(&mut self, store: Resource<Store>) -> Result<Vec<String>, Error> {
        let span = self.client_span(|| "spin_key_value.get_keys".to_owned());
        let found = self.store(&store, || Call::GetKeys);
        let result = match found {
            Ok(store) => store.get_keys(self.component.redis.clone()).await,
            Err(err) => Err(err),
        };
        Span::end(span, &result);
        result
    }

    async fn drop(&mut self, store: Resource<Store>) -> wasmtime::Result<()> {
        self.table.delete(store)?;
        Ok(())
    }
}
