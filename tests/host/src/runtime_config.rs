//! Spin's runtime config file (`spin up --runtime-config-file F`): which backend serves each
//! key-value store and SQLite database label.
//!
//! As Spin's `crates/runtime-config`, `crates/sqlite` and `crates/factor-key-value`:
//! - `[key_value_store.<label>]`: `type = "spin"` (`path`, relative to the runtime config
//!   file's directory) or `type = "redis"` (`url`); other keys of these tables are ignored,
//!   as Spin's serde structs there do not deny unknown fields.
//! - `[sqlite_database.<label>]`: `type = "spin"` (`path`, relative to the working directory)
//!   or `type = "libsql"` (`url` starting with `http://` or `https://`, and `token`); both
//!   deny unknown fields.
//! - Labels without a table keep the defaults under the state directory.
//! - Any other top-level key is an error, as Spin's `validate_all_keys_used` makes it
//!   ("unused runtime config key(s): …"). Keys Spin knows but the test host does not model
//!   (`state_dir`, variables providers, `llm_compute`, …) are rejected the same way.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use serde::Deserialize;

/// The backend of one key-value store label.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum KeyValueConfig {
    /// Spin's SQLite key-value file.
    Spin { path: PathBuf },
    /// Spin's Redis store: the label is ignored, one keyspace per URL, no TTL.
    Redis { url: String },
}

/// The backend of one SQLite database label.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum DatabaseConfig {
    /// A local SQLite file (Spin's in-process SQLite).
    Spin { path: PathBuf },
    /// A libSQL server over Hrana/HTTP (Spin's `libsql` 0.5 client).
    LibSql { url: String, token: String },
}

/// Backends configured by a runtime config file; labels not named here keep the defaults.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct RuntimeConfig {
    pub key_value: HashMap<String, KeyValueConfig>,
    pub sqlite: HashMap<String, DatabaseConfig>,
}

/// `[<table>.<label>]`: the backend type and the type's own keys.
#[derive(Deserialize)]
struct Typed {
    #[serde(rename = "type")]
    type_: String,
    #[serde(flatten)]
    config: toml::Table,
}

#[derive(Deserialize)]
struct SpinKeyValue {
    path: Option<PathBuf>,
}

#[derive(Deserialize)]
struct RedisKeyValue {
    url: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SpinDatabase {
    path: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LibSqlDatabase {
    url: String,
    token: String,
}

impl RuntimeConfig {
    /// Reads and checks a runtime config file.
    pub(crate) fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("failed to read runtime config file '{}'", path.display()))?;
        let dir = std::path::absolute(path)?
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let cwd = std::env::current_dir().context("failed to get current working directory")?;
        Self::parse(&text, &dir, &cwd)
            .with_context(|| format!("runtime config file '{}'", path.display()))
    }

    /// `config_dir` resolves relative key-value paths, `cwd` relative SQLite paths (as Spin).
    pub(crate) fn parse(text: &str, config_dir: &Path, cwd: &Path) -> Result<Self> {
        let mut table: toml::Table = toml::from_str(text).context("not valid TOML")?;
        let key_value = table.remove("key_value_store");
        let sqlite = table.remove("sqlite_database");
        if !table.is_empty() {
            let unused: Vec<&str> = table.keys().map(String::as_str).collect();
            bail!(
                "unused runtime config key(s): {} (the Spinling test host reads only \
                 key_value_store and sqlite_database)",
                unused.join(", ")
            );
        }
        let mut config = RuntimeConfig::default();
        for (label, typed) in labelled(key_value)? {
            let store = key_value_config(typed, config_dir).with_context(|| {
                format!("could not configure key-value store with label '{label}'")
            })?;
            config.key_value.insert(label, store);
        }
        for (label, typed) in labelled(sqlite)? {
            let database = database_config(typed, cwd)
                .with_context(|| format!("could not configure SQLite database '{label}'"))?;
            config.sqlite.insert(label, database);
        }
        Ok(config)
    }
}

fn labelled(table: Option<toml::Value>) -> Result<HashMap<String, Typed>> {
    Ok(match table {
        Some(table) => table.try_into()?,
        None => HashMap::new(),
    })
}

fn key_value_config(typed: Typed, config_dir: &Path) -> Result<KeyValueConfig> {
    match typed.type_.as_str() {
        "spin" => {
            let spin: SpinKeyValue = typed.config.try_into()?;
            let path = spin.path.ok_or_else(|| {
                anyhow!("a `spin` store without `path` is in memory in Spin; the test host needs a path")
            })?;
            Ok(KeyValueConfig::Spin {
                path: config_dir.join(path),
            })
        }
        "redis" => {
            let redis: RedisKeyValue = typed.config.try_into()?;
            redis::parse_redis_url(&redis.url).context("Invalid Redis URL")?;
            Ok(KeyValueConfig::Redis { url: redis.url })
        }
        other => bail!(
            "the store type '{other}' was not registered with the config resolver \
             (the Spinling test host knows `spin` and `redis`)"
        ),
    }
}

fn database_config(typed: Typed, cwd: &Path) -> Result<DatabaseConfig> {
    match typed.type_.as_str() {
        "spin" => {
            let spin: SpinDatabase = typed.config.try_into()?;
            let path = spin.path.ok_or_else(|| {
                anyhow!("a `spin` database without `path` is in memory in Spin; the test host needs a path")
            })?;
            Ok(DatabaseConfig::Spin {
                path: cwd.join(path),
            })
        }
        "libsql" => {
            let libsql: LibSqlDatabase = typed.config.try_into()?;
            if !(libsql.url.starts_with("http://") || libsql.url.starts_with("https://")) {
                bail!(
                    "unexpected libSQL URL '{}': URL does not start with 'https://' or 'http://'. \
                     Spin currently only supports talking to libSQL databases over HTTP(S)",
                    libsql.url
                );
            }
            Ok(DatabaseConfig::LibSql {
                url: libsql.url,
                token: libsql.token,
            })
        }
        other => bail!("Unknown database kind: {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<RuntimeConfig> {
        RuntimeConfig::parse(text, Path::new("/config"), Path::new("/cwd"))
    }

    #[test]
    fn redis_and_libsql_tables_configure_their_labels() {
        let config = parse(
            r#"
            [key_value_store.default]
            type = "redis"
            url = "redis://127.0.0.1:6379/2"
            [sqlite_database.default]
            type = "libsql"
            url = "http://127.0.0.1:8080"
            token = "secret"
            "#,
        )
        .unwrap();

        assert_eq!(
            config.key_value["default"],
            KeyValueConfig::Redis {
                url: "redis://127.0.0.1:6379/2".into()
            }
        );
        assert_eq!(
            config.sqlite["default"],
            DatabaseConfig::LibSql {
                url: "http://127.0.0.1:8080".into(),
                token: "secret".into()
            }
        );
    }

    #[test]
    fn relative_spin_paths_resolve_as_spin_resolves_them() {
        let config = parse(
            r#"
            [key_value_store.cache]
            type = "spin"
            path = "kv.db"
            [sqlite_database.audit]
            type = "spin"
            path = "audit.db"
            "#,
        )
        .unwrap();

        assert_eq!(
            config.key_value["cache"],
            KeyValueConfig::Spin {
                path: "/config/kv.db".into()
            }
        );
        assert_eq!(
            config.sqlite["audit"],
            DatabaseConfig::Spin {
                path: "/cwd/audit.db".into()
            }
        );
    }

    #[test]
    fn an_unknown_top_level_key_is_rejected() {
        let err = parse("baz = \"/baz\"").unwrap_err();

        assert!(
            format!("{err:#}").starts_with("unused runtime config key(s): baz"),
            "{err:#}"
        );
    }

    #[test]
    fn an_unknown_key_of_a_libsql_database_is_rejected() {
        let err = parse(
            r#"
            [sqlite_database.default]
            type = "libsql"
            url = "http://127.0.0.1:8080"
            token = ""
            timeout = 5
            "#,
        )
        .unwrap_err();

        assert!(
            format!("{err:#}").contains("unknown field `timeout`"),
            "{err:#}"
        );
    }

    #[test]
    fn a_libsql_url_must_be_http() {
        let err = parse(
            r#"
            [sqlite_database.default]
            type = "libsql"
            url = "libsql://db.example.com"
            token = "t"
            "#,
        )
        .unwrap_err();

        assert!(
            format!("{err:#}").contains("does not start with"),
            "{err:#}"
        );
    }

    #[test]
    fn an_unknown_key_of_a_redis_store_is_ignored_as_in_spin() {
        let config = parse(
            r#"
            [key_value_store.default]
            type = "redis"
            url = "redis://127.0.0.1"
            pool = 4
            "#,
        );

        assert!(config.is_ok(), "{config:?}");
    }

    #[test]
    fn an_unknown_backend_type_is_rejected() {
        let kv = parse("[key_value_store.default]\ntype = \"azure_cosmos\"").unwrap_err();
        let db = parse("[sqlite_database.default]\ntype = \"postgres\"").unwrap_err();

        assert!(
            format!("{kv:#}").contains("'azure_cosmos' was not registered"),
            "{kv:#}"
        );
        assert!(
            format!("{db:#}").contains("Unknown database kind: postgres"),
            "{db:#}"
        );
    }
}
