//! `--runtime-config-file`: where each SQLite database and key-value store lives.
//!
//! Without an entry, `default` lives in the state directory (`.spin/` next to the
//! manifest unless `--state-dir`), as in Spin; any other name needs an entry.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::Deserialize;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeConfig {
    pub sqlite_databases: BTreeMap<String, PathBuf>,
    pub key_value_stores: BTreeMap<String, KeyValueBackend>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyValueBackend {
    /// A SQLite file (Spin's `spin` type).
    Sqlite(PathBuf),
    /// A Redis server (Spin's `redis` type).
    Redis(String),
}

impl RuntimeConfig {
    /// The configuration with only Spin's defaults, for an app whose state directory
    /// is `state`.
    pub fn defaults(state: &Path) -> RuntimeConfig {
        RuntimeConfig {
            sqlite_databases: BTreeMap::from([("default".to_owned(), state.join("sqlite_db.db"))]),
            key_value_stores: BTreeMap::from([(
                "default".to_owned(),
                KeyValueBackend::Sqlite(state.join("sqlite_key_value.db")),
            )]),
        }
    }

    /// Spin's defaults, overridden by the file's entries. Paths in the file are
    /// relative to the file's directory.
    pub fn load(path: &Path, state_dir: &Path) -> Result<RuntimeConfig> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the runtime config {}", path.display()))?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Self::parse(&text, &base, state_dir)
            .with_context(|| format!("invalid runtime config {}", path.display()))
    }

    fn parse(text: &str, base: &Path, state_dir: &Path) -> Result<RuntimeConfig> {
        let raw: RawRuntimeConfig = toml::from_str(text)?;
        let mut config = RuntimeConfig::defaults(state_dir);
        for (name, database) in raw.sqlite_database {
            let path = match database {
                RawSqlite::Spin { path } => base.join(path),
                RawSqlite::Libsql { .. } => bail!(
                    "[sqlite_database.{name}]: type `libsql` is not supported by this host \
                     (it is for SpinKube); use type `spin` with a `path`"
                ),
            };
            config.sqlite_databases.insert(name, path);
        }
        for (name, store) in raw.key_value_store {
            let backend = match store {
                RawKeyValue::Spin { path } => KeyValueBackend::Sqlite(base.join(path)),
                RawKeyValue::Redis { url } => KeyValueBackend::Redis(url),
            };
            config.key_value_stores.insert(name, backend);
        }
        Ok(config)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRuntimeConfig {
    #[serde(default)]
    sqlite_database: BTreeMap<String, RawSqlite>,
    #[serde(default)]
    key_value_store: BTreeMap<String, RawKeyValue>,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
enum RawSqlite {
    Spin {
        path: PathBuf,
    },
    Libsql {
        #[allow(dead_code)]
        url: String,
        #[allow(dead_code)]
        token: String,
    },
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
enum RawKeyValue {
    Spin { path: PathBuf },
    Redis { url: String },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_override_defaults_relative_to_the_file() {
        let config = RuntimeConfig::parse(
            r#"
            [sqlite_database.auth]
            type = "spin"
            path = ".spin/auth.db"
            [key_value_store.default]
            type = "redis"
            url = "redis://127.0.0.1:6379"
            "#,
            Path::new("/config"),
            Path::new("/app/.spin"),
        )
        .unwrap();
        assert_eq!(
            config.sqlite_databases["auth"],
            PathBuf::from("/config/.spin/auth.db")
        );
        assert_eq!(
            config.sqlite_databases["default"],
            PathBuf::from("/app/.spin/sqlite_db.db")
        );
        assert_eq!(
            config.key_value_stores["default"],
            KeyValueBackend::Redis("redis://127.0.0.1:6379".into())
        );
    }

    #[test]
    fn unknown_entries_and_types_are_errors() {
        let err = RuntimeConfig::parse(
            "[sqlite_databases.auth]\ntype = \"spin\"\npath = \"x\"\n",
            Path::new("/"),
            Path::new("/"),
        )
        .unwrap_err();
        assert!(
            format!("{err:#}").contains("unknown field `sqlite_databases`"),
            "{err:#}"
        );
        let err = RuntimeConfig::parse(
            "[sqlite_database.auth]\ntype = \"postgres\"\n",
            Path::new("/"),
            Path::new("/"),
        )
        .unwrap_err();
        assert!(format!("{err:#}").contains("postgres"), "{err:#}");
    }
}
