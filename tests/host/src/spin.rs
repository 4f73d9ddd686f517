//! The Spin interfaces that spin-sdk 5.2 components import: key-value, SQLite (v2 and v3) and
//! variables, over real SQLite files, with Spin's grants and error codes.
//!
//! Files under the state directory (as Spin's defaults under `.spin/`):
//! - key-value stores: `sqlite_key_value.db`, table `spin_key_value(store, key, value)`, one
//!   shared connection, as Spin's SQLite key-value provider;
//! - SQLite database `default`: `sqlite_db.db`; any other label `L`: `sqlite_L.db`.
//!   Each `connection.open` opens its own rusqlite connection (lazily, default 5 s busy
//!   timeout), as Spin's in-process SQLite, so `BEGIN IMMEDIATE` … `COMMIT` works within one
//!   connection, and dropping the request's instance rolls back what it did not commit.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::types::{Value, ValueRef};
use wasmtime::component::Resource;

use crate::runtime::InstanceState;

wasmtime::component::bindgen!({
    path: "../../wit/spin",
    world: "spinling:test-host/spin-imports",
    imports: { default: async | trappable },
    with: {
        "fermyon:spin/key-value.store": KeyValueStore,
        "fermyon:spin/sqlite.connection": SqliteConnection,
        "spin:sqlite/sqlite.connection": SqliteConnection,
    },
});

use fermyon::spin::{key_value, sqlite as sqlite2, variables};
use spin::sqlite::sqlite as sqlite3;

/// An open key-value store: its label (all labels share one database file).
pub struct KeyValueStore {
    label: String,
}

/// A SQLite database file with one connection, opened on first use and closed when dropped.
#[derive(Clone)]
pub struct SqliteConnection {
    path: PathBuf,
    conn: Arc<Mutex<Option<rusqlite::Connection>>>,
    /// Run once, right after opening (e.g. to create a schema).
    init: &'static str,
}

impl SqliteConnection {
    pub(crate) fn new(path: PathBuf, init: &'static str) -> Self {
        Self {
            path,
            conn: Arc::default(),
            init,
        }
    }

    /// Runs blocking rusqlite work on the blocking pool, opening the connection if needed.
    async fn run<R: Send + 'static>(
        &self,
        work: impl FnOnce(&rusqlite::Connection) -> rusqlite::Result<R> + Send + 'static,
    ) -> Result<R, String> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.run_here(work))
            .await
            .map_err(|e| format!("internal runtime error: {e}"))?
    }

    /// Runs blocking rusqlite work on this worker thread, telling the runtime it blocks (as
    /// Spin's key-value store does), opening the connection if needed.
    fn run_in_place<R>(
        &self,
        work: impl FnOnce(&rusqlite::Connection) -> rusqlite::Result<R>,
    ) -> Result<R, String> {
        tokio::task::block_in_place(|| self.run_here(work))
    }

    fn run_here<R>(
        &self,
        work: impl FnOnce(&rusqlite::Connection) -> rusqlite::Result<R>,
    ) -> Result<R, String> {
        let mut guard = self
            .conn
            .lock()
            .map_err(|_| "connection lock poisoned".to_owned())?;
        if guard.is_none() {
            let conn = rusqlite::Connection::open(&self.path).map_err(|e| e.to_string())?;
            conn.execute_batch(self.init).map_err(|e| e.to_string())?;
            *guard = Some(conn);
        }
        work(guard.as_ref().expect("opened above")).map_err(|e| e.to_string())
    }

    /// `last_insert_rowid` and `changes` of a connection that may not be open yet.
    fn peek<R: Default>(&self, read: impl FnOnce(&rusqlite::Connection) -> R) -> R {
        let guard = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        guard.as_ref().map(read).unwrap_or_default()
    }
}

/// The key-value database of an app.
pub(crate) fn key_value_db(state_dir: &Path) -> SqliteConnection {
    SqliteConnection::new(
        state_dir.join("sqlite_key_value.db"),
        "CREATE TABLE IF NOT EXISTS spin_key_value (
            store TEXT NOT NULL,
            key   TEXT NOT NULL,
            value BLOB NOT NULL,
            PRIMARY KEY (store, key)
        );",
    )
}

/// The file behind a SQLite database label.
pub(crate) fn sqlite_path(state_dir: &Path, label: &str) -> PathBuf {
    match label {
        "default" => state_dir.join("sqlite_db.db"),
        other => state_dir.join(format!("sqlite_{other}.db")),
    }
}

type Rows = (Vec<String>, Vec<Vec<Value>>);

/// One statement, as Spin runs it: prepared (cached), bound, stepped to the end.
fn execute(
    conn: &rusqlite::Connection,
    statement: &str,
    params: Vec<Value>,
) -> rusqlite::Result<Rows> {
    let mut stmt = conn.prepare_cached(statement)?;
    let columns: Vec<String> = stmt.column_names().map(String::from).collect();
    let mut rows = stmt.query(rusqlite::params_from_iter(params))?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let values = (0..columns.len())
            .map(|i| row.get_ref(i).map(owned))
            .collect::<rusqlite::Result<_>>()?;
        out.push(values);
    }
    Ok((columns, out))
}

fn owned(value: ValueRef<'_>) -> Value {
    match value {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Integer(i),
        ValueRef::Real(f) => Value::Real(f),
        ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Value::Blob(b.to_vec()),
    }
}

impl InstanceState {
    /// Key-value work for the store behind `store`.
    async fn kv<R: Send + 'static>(
        &mut self,
        store: &Resource<KeyValueStore>,
        work: impl FnOnce(&rusqlite::Connection, &str) -> rusqlite::Result<R> + Send + 'static,
    ) -> wasmtime::Result<Result<R, key_value::Error>> {
        let label = self.table.get(store)?.label.clone();
        Ok(self
            .app
            .key_value
            .run_in_place(move |conn| work(conn, &label))
            .map_err(key_value::Error::Other))
    }

    fn open_sqlite(
        &mut self,
        database: &str,
    ) -> wasmtime::Result<Result<Resource<SqliteConnection>, ()>> {
        if !self
            .component
            .sqlite_databases
            .iter()
            .any(|d| d == database)
        {
            return Ok(Err(()));
        }
        let conn = SqliteConnection::new(sqlite_path(&self.app.state_dir, database), "");
        Ok(Ok(self.table.push(conn)?))
    }

    async fn execute_sqlite(
        &mut self,
        conn: &Resource<SqliteConnection>,
        statement: String,
        params: Vec<Value>,
    ) -> wasmtime::Result<Result<Rows, String>> {
        let conn = self.table.get(conn)?.clone();
        Ok(conn.run(move |c| execute(c, &statement, params)).await)
    }
}

impl key_value::Host for InstanceState {}

impl key_value::HostStore for InstanceState {
    async fn open(
        &mut self,
        label: String,
    ) -> wasmtime::Result<Result<Resource<KeyValueStore>, key_value::Error>> {
        // Spin: a label the component has no grant for is denied, whether it exists or not.
        if !self.component.key_value_stores.contains(&label) {
            return Ok(Err(key_value::Error::AccessDenied));
        }
        Ok(Ok(self.table.push(KeyValueStore { label })?))
    }

    async fn get(
        &mut self,
        store: Resource<KeyValueStore>,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, key_value::Error>> {
        self.kv(&store, move |c, label| {
            let mut stmt =
                c.prepare_cached("SELECT value FROM spin_key_value WHERE store = ?1 AND key = ?2")?;
            let mut rows = stmt.query_map((label, key), |row| row.get::<_, Vec<u8>>(0))?;
            rows.next().transpose()
        })
        .await
    }

    async fn set(
        &mut self,
        store: Resource<KeyValueStore>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), key_value::Error>> {
        self.kv(&store, move |c, label| {
            c.prepare_cached(
                "INSERT INTO spin_key_value (store, key, value) VALUES (?1, ?2, ?3)
                 ON CONFLICT(store, key) DO UPDATE SET value = excluded.value",
            )?
            .execute((label, key, value))
            .map(drop)
        })
        .await
    }

    async fn delete(
        &mut self,
        store: Resource<KeyValueStore>,
        key: String,
    ) -> wasmtime::Result<Result<(), key_value::Error>> {
        self.kv(&store, move |c, label| {
            c.prepare_cached("DELETE FROM spin_key_value WHERE store = ?1 AND key = ?2")?
                .execute((label, key))
                .map(drop)
        })
        .await
    }

    async fn exists(
        &mut self,
        store: Resource<KeyValueStore>,
        key: String,
    ) -> wasmtime::Result<Result<bool, key_value::Error>> {
        self.kv(&store, move |c, label| {
            c.prepare_cached("SELECT 1 FROM spin_key_value WHERE store = ?1 AND key = ?2")?
                .exists((label, key))
        })
        .await
    }

    async fn get_keys(
        &mut self,
        store: Resource<KeyValueStore>,
    ) -> wasmtime::Result<Result<Vec<String>, key_value::Error>> {
        self.kv(&store, move |c, label| {
            let mut stmt = c.prepare_cached("SELECT key FROM spin_key_value WHERE store = ?1")?;
            let keys = stmt.query_map([label], |row| row.get(0))?;
            keys.collect()
        })
        .await
    }

    async fn drop(&mut self, store: Resource<KeyValueStore>) -> wasmtime::Result<()> {
        self.table.delete(store)?;
        Ok(())
    }
}

/// Conversions between rusqlite values and one version's generated SQLite types.
macro_rules! sqlite_conversions {
    ($version:ident) => {
        impl From<$version::Value> for Value {
            fn from(value: $version::Value) -> Self {
                match value {
                    $version::Value::Integer(i) => Value::Integer(i),
                    $version::Value::Real(f) => Value::Real(f),
                    $version::Value::Text(t) => Value::Text(t),
                    $version::Value::Blob(b) => Value::Blob(b),
                    $version::Value::Null => Value::Null,
                }
            }
        }

        impl $version::QueryResult {
            fn from_rows((columns, rows): Rows) -> Self {
                let value = |v| match v {
                    Value::Integer(i) => $version::Value::Integer(i),
                    Value::Real(f) => $version::Value::Real(f),
                    Value::Text(t) => $version::Value::Text(t),
                    Value::Blob(b) => $version::Value::Blob(b),
                    Value::Null => $version::Value::Null,
                };
                Self {
                    columns,
                    rows: rows
                        .into_iter()
                        .map(|r| $version::RowResult {
                            values: r.into_iter().map(value).collect(),
                        })
                        .collect(),
                }
            }
        }

        impl $version::Host for InstanceState {}
    };
}

sqlite_conversions!(sqlite2);
sqlite_conversions!(sqlite3);

impl sqlite2::HostConnection for InstanceState {
    async fn open(
        &mut self,
        database: String,
    ) -> wasmtime::Result<Result<Resource<SqliteConnection>, sqlite2::Error>> {
        Ok(self
            .open_sqlite(&database)?
            .map_err(|()| sqlite2::Error::AccessDenied))
    }

    async fn execute(
        &mut self,
        conn: Resource<SqliteConnection>,
        statement: String,
        parameters: Vec<sqlite2::Value>,
    ) -> wasmtime::Result<Result<sqlite2::QueryResult, sqlite2::Error>> {
        let params = parameters.into_iter().map(Value::from).collect();
        Ok(self
            .execute_sqlite(&conn, statement, params)
            .await?
            .map(sqlite2::QueryResult::from_rows)
            .map_err(sqlite2::Error::Io))
    }

    async fn drop(&mut self, conn: Resource<SqliteConnection>) -> wasmtime::Result<()> {
        self.table.delete(conn)?;
        Ok(())
    }
}

impl sqlite3::HostConnection for InstanceState {
    async fn open(
        &mut self,
        database: String,
    ) -> wasmtime::Result<Result<Resource<SqliteConnection>, sqlite3::Error>> {
        Ok(self
            .open_sqlite(&database)?
            .map_err(|()| sqlite3::Error::AccessDenied))
    }

    async fn execute(
        &mut self,
        conn: Resource<SqliteConnection>,
        statement: String,
        parameters: Vec<sqlite3::Value>,
    ) -> wasmtime::Result<Result<sqlite3::QueryResult, sqlite3::Error>> {
        let params = parameters.into_iter().map(Value::from).collect();
        Ok(self
            .execute_sqlite(&conn, statement, params)
            .await?
            .map(sqlite3::QueryResult::from_rows)
            .map_err(sqlite3::Error::Io))
    }

    async fn last_insert_rowid(
        &mut self,
        conn: Resource<SqliteConnection>,
    ) -> wasmtime::Result<i64> {
        Ok(self.table.get(&conn)?.peek(|c| c.last_insert_rowid()))
    }

    async fn changes(&mut self, conn: Resource<SqliteConnection>) -> wasmtime::Result<u64> {
        Ok(self.table.get(&conn)?.peek(|c| c.changes()))
    }

    async fn drop(&mut self, conn: Resource<SqliteConnection>) -> wasmtime::Result<()> {
        self.table.delete(conn)?;
        Ok(())
    }
}

impl variables::Host for InstanceState {
    async fn get(&mut self, name: String) -> wasmtime::Result<Result<String, variables::Error>> {
        if let Err(e) = crate::variables::validate_name(&name) {
            return Ok(Err(variables::Error::InvalidName(e)));
        }
        Ok(self.component.variables.get(&name).cloned().ok_or_else(|| {
            variables::Error::Undefined(format!("no variable for {:?}.{name:?}", self.component.id))
        }))
    }
}
