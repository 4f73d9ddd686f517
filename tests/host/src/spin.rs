//! The Spin interfaces that spin-sdk 5.2 components import: key-value, SQLite (v2 and v3) and
//! variables, with Spin's grants and error codes.
//!
//! Defaults, files under the state directory (as Spin's under `.spin/`):
//! - key-value stores: `sqlite_key_value.db`, table `spin_key_value(store, key, value)`, one
//!   shared connection, as Spin's SQLite key-value provider;
//! - SQLite database `default`: `sqlite_db.db`; any other label `L`: `sqlite_L.db`.
//!   Each `connection.open` opens its own rusqlite connection (lazily, default 5 s busy
//!   timeout), as Spin's in-process SQLite, so `BEGIN IMMEDIATE` … `COMMIT` works within one
//!   connection, and dropping the request's instance rolls back what it did not commit.
//!
//! A runtime config file (crate::runtime_config) may put a label on another SQLite file, on
//! Redis (as Spin's `crates/key-value-redis`: one lazily opened connection manager per
//! configured store, the label ignored, `get_keys` is `KEYS *`) or on a libSQL server (as
//! Spin's `crates/sqlite-libsql`: one `libsql` connection per guest `open`, created on first
//! use, every statement through `Connection::query`, so a transaction spans the statements of
//! one guest connection; client errors are `io` errors, a client that cannot be created is
//! `invalid-connection`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use redis::AsyncCommands;
use rusqlite::types::{Value, ValueRef};
use tokio::sync::OnceCell;
use wasmtime::component::Resource;

use crate::runtime::InstanceState;
use crate::runtime_config::{DatabaseConfig, KeyValueConfig};

wasmtime::component::bindgen!({
    path: "../../wit/spin",
    world: "spinling:test-host/spin-imports",
    imports: { default: async | trappable },
    with: {
        "fermyon:spin/key-value.store": KeyValueStore,
        "fermyon:spin/sqlite.connection": DatabaseConnection,
        "spin:sqlite/sqlite.connection": DatabaseConnection,
    },
});

use fermyon::spin::{key_value, sqlite as sqlite2, variables};
use spin::sqlite::sqlite as sqlite3;

/// An open key-value store: its label and the backend that serves it.
pub struct KeyValueStore {
    label: String,
    backend: Arc<KeyValueBackend>,
}

/// Where a key-value store label lives.
pub(crate) enum KeyValueBackend {
    /// Spin's SQLite key-value file (rows keyed by store label).
    File(SqliteConnection),
    /// A Redis server: every label on one URL shares its keyspace.
    Redis(RedisStore),
}

/// Spin's Redis store: a connection manager opened on first use and shared by all requests.
pub(crate) struct RedisStore {
    url: String,
    connection: OnceCell<redis::aio::ConnectionManager>,
}

impl RedisStore {
    pub(crate) fn new(url: String) -> Self {
        Self {
            url,
            connection: OnceCell::new(),
        }
    }

    async fn connection(&self) -> redis::RedisResult<redis::aio::ConnectionManager> {
        self.connection
            .get_or_try_init(|| async {
                redis::Client::open(self.url.as_str())?
                    .get_connection_manager()
                    .await
            })
            .await
            .cloned()
    }
}

impl KeyValueBackend {
    async fn get(&self, label: String, key: String) -> Result<Option<Vec<u8>>, String> {
        match self {
            Self::File(db) => db.run_in_place(move |c| {
                let mut stmt = c.prepare_cached(
                    "SELECT value FROM spin_key_value WHERE store = ?1 AND key = ?2",
                )?;
                let mut rows = stmt.query_map((label, key), |row| row.get::<_, Vec<u8>>(0))?;
                rows.next().transpose()
            }),
            Self::Redis(redis) => redis_call(redis, |mut c| async move { c.get(key).await }).await,
        }
    }

    async fn set(&self, label: String, key: String, value: Vec<u8>) -> Result<(), String> {
        match self {
            Self::File(db) => db.run_in_place(move |c| {
                c.prepare_cached(
                    "INSERT INTO spin_key_value (store, key, value) VALUES (?1, ?2, ?3)
                     ON CONFLICT(store, key) DO UPDATE SET value = excluded.value",
                )?
                .execute((label, key, value))
                .map(drop)
            }),
            Self::Redis(redis) => {
                redis_call(redis, |mut c| async move { c.set(key, value).await }).await
            }
        }
    }

    async fn delete(&self, label: String, key: String) -> Result<(), String> {
        match self {
            Self::File(db) => db.run_in_place(move |c| {
                c.prepare_cached("DELETE FROM spin_key_value WHERE store = ?1 AND key = ?2")?
                    .execute((label, key))
                    .map(drop)
            }),
            Self::Redis(redis) => redis_call(redis, |mut c| async move { c.del(key).await }).await,
        }
    }

    async fn exists(&self, label: String, key: String) -> Result<bool, String> {
        match self {
            Self::File(db) => db.run_in_place(move |c| {
                c.prepare_cached("SELECT 1 FROM spin_key_value WHERE store = ?1 AND key = ?2")?
                    .exists((label, key))
            }),
            Self::Redis(redis) => {
                redis_call(redis, |mut c| async move { c.exists(key).await }).await
            }
        }
    }

    async fn get_keys(&self, label: String) -> Result<Vec<String>, String> {
        match self {
            Self::File(db) => db.run_in_place(move |c| {
                let mut stmt =
                    c.prepare_cached("SELECT key FROM spin_key_value WHERE store = ?1")?;
                let keys = stmt.query_map([label], |row| row.get(0))?;
                keys.collect()
            }),
            Self::Redis(redis) => redis_call(redis, |mut c| async move { c.keys("*").await }).await,
        }
    }
}

/// One Redis command on the store's shared connection; errors as Spin reports them (`other`).
async fn redis_call<R, F>(
    redis: &RedisStore,
    command: impl FnOnce(redis::aio::ConnectionManager) -> F,
) -> Result<R, String>
where
    F: std::future::Future<Output = redis::RedisResult<R>>,
{
    let connection = redis.connection().await.map_err(|e| e.to_string())?;
    command(connection).await.map_err(|e| e.to_string())
}

/// A guest's open SQLite connection, on the backend its label is configured with.
pub enum DatabaseConnection {
    File(SqliteConnection),
    LibSql(LibSqlConnection),
}

/// Spin's `LazyLibSqlConnection`: one libSQL client connection, created on first use.
#[derive(Clone)]
pub struct LibSqlConnection {
    url: String,
    token: String,
    inner: Arc<OnceCell<libsql::Connection>>,
}

/// What a statement can fail with, before the SQLite interface version's error type.
enum DatabaseError {
    InvalidConnection,
    Io(String),
}

impl LibSqlConnection {
    pub(crate) fn new(url: String, token: String) -> Self {
        Self {
            url,
            token,
            inner: Arc::default(),
        }
    }

    async fn connection(&self) -> Result<&libsql::Connection, DatabaseError> {
        self.inner
            .get_or_try_init(|| async {
                libsql::Builder::new_remote(self.url.clone(), self.token.clone())
                    .build()
                    .await?
                    .connect()
            })
            .await
            .map_err(|_| DatabaseError::InvalidConnection)
    }

    async fn query(&self, statement: &str, params: Vec<Value>) -> Result<Rows, DatabaseError> {
        let io = |e: libsql::Error| DatabaseError::Io(e.to_string());
        let params: Vec<libsql::Value> = params.into_iter().map(to_libsql).collect();
        let mut rows = self
            .connection()
            .await?
            .query(statement, params)
            .await
            .map_err(io)?;
        let count = rows.column_count();
        let columns = (0..count)
            .map(|i| rows.column_name(i).unwrap_or("").to_owned())
            .collect();
        let mut out = Vec::new();
        while let Some(row) = rows.next().await.map_err(io)? {
            let values = (0..count)
                .map(|i| row.get_value(i).map(from_libsql).map_err(io))
                .collect::<Result<_, _>>()?;
            out.push(values);
        }
        Ok((columns, out))
    }

    fn peek<R: Default>(&self, read: impl FnOnce(&libsql::Connection) -> R) -> R {
        self.inner.get().map(read).unwrap_or_default()
    }
}

fn to_libsql(value: Value) -> libsql::Value {
    match value {
        Value::Null => libsql::Value::Null,
        Value::Integer(i) => libsql::Value::Integer(i),
        Value::Real(f) => libsql::Value::Real(f),
        Value::Text(t) => libsql::Value::Text(t),
        Value::Blob(b) => libsql::Value::Blob(b),
    }
}

fn from_libsql(value: libsql::Value) -> Value {
    match value {
        libsql::Value::Null => Value::Null,
        libsql::Value::Integer(i) => Value::Integer(i),
        libsql::Value::Real(f) => Value::Real(f),
        libsql::Value::Text(t) => Value::Text(t),
        libsql::Value::Blob(b) => Value::Blob(b),
    }
}

impl DatabaseConnection {
    async fn execute(&self, statement: String, params: Vec<Value>) -> Result<Rows, DatabaseError> {
        match self {
            Self::File(db) => db
                .run(move |c| execute(c, &statement, params))
                .await
                .map_err(DatabaseError::Io),
            Self::LibSql(db) => db.query(&statement, params).await,
        }
    }

    fn last_insert_rowid(&self) -> i64 {
        match self {
            Self::File(db) => db.peek(|c| c.last_insert_rowid()),
            Self::LibSql(db) => db.peek(|c| c.last_insert_rowid()),
        }
    }

    fn changes(&self) -> u64 {
        match self {
            Self::File(db) => db.peek(|c| c.changes()),
            Self::LibSql(db) => db.peek(|c| c.changes()),
        }
    }
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

/// A Spin key-value file (one connection shared by every request, as in Spin).
fn key_value_file(path: PathBuf) -> SqliteConnection {
    SqliteConnection::new(
        path,
        "CREATE TABLE IF NOT EXISTS spin_key_value (
            store TEXT NOT NULL,
            key   TEXT NOT NULL,
            value BLOB NOT NULL,
            PRIMARY KEY (store, key)
        );",
    )
}

/// The key-value backends of an app: the configured labels, else the state directory's file.
pub(crate) struct KeyValueStores {
    configured: HashMap<String, Arc<KeyValueBackend>>,
    default_file: Arc<KeyValueBackend>,
}

impl KeyValueStores {
    pub(crate) fn new(state_dir: &Path, config: &HashMap<String, KeyValueConfig>) -> Self {
        let default_path = state_dir.join("sqlite_key_value.db");
        let default_file = Arc::new(KeyValueBackend::File(key_value_file(default_path.clone())));
        // Labels on one file share its connection, as labels on the default file do.
        let mut files = HashMap::from([(default_path, default_file.clone())]);
        let configured = config
            .iter()
            .map(|(label, store)| {
                let backend = match store {
                    KeyValueConfig::Spin { path } => files
                        .entry(path.clone())
                        .or_insert_with(|| {
                            Arc::new(KeyValueBackend::File(key_value_file(path.clone())))
                        })
                        .clone(),
                    KeyValueConfig::Redis { url } => {
                        Arc::new(KeyValueBackend::Redis(RedisStore::new(url.clone())))
                    }
                };
                (label.clone(), backend)
            })
            .collect();
        Self {
            configured,
            default_file,
        }
    }

    fn backend(&self, label: &str) -> Arc<KeyValueBackend> {
        self.configured
            .get(label)
            .unwrap_or(&self.default_file)
            .clone()
    }
}

/// The SQLite databases of an app: the configured labels, else files in the state directory.
pub(crate) struct Databases {
    state_dir: PathBuf,
    configured: HashMap<String, DatabaseConfig>,
}

impl Databases {
    pub(crate) fn new(state_dir: &Path, configured: HashMap<String, DatabaseConfig>) -> Self {
        Self {
            state_dir: state_dir.to_path_buf(),
            configured,
        }
    }

    /// A new, not yet opened connection to `label`'s database.
    fn open(&self, label: &str) -> DatabaseConnection {
        match self.configured.get(label) {
            Some(DatabaseConfig::Spin { path }) => {
                DatabaseConnection::File(SqliteConnection::new(path.clone(), ""))
            }
            Some(DatabaseConfig::LibSql { url, token }) => {
                DatabaseConnection::LibSql(LibSqlConnection::new(url.clone(), token.clone()))
            }
            None => DatabaseConnection::File(SqliteConnection::new(
                sqlite_path(&self.state_dir, label),
                "",
            )),
        }
    }
}

/// The file behind a SQLite database label without runtime config.
fn sqlite_path(state_dir: &Path, label: &str) -> PathBuf {
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
    /// Key-value work on the backend behind `store`, errors as Spin's `other`.
    async fn kv<R, F>(
        &mut self,
        store: &Resource<KeyValueStore>,
        work: impl FnOnce(Arc<KeyValueBackend>, String) -> F,
    ) -> wasmtime::Result<Result<R, key_value::Error>>
    where
        F: std::future::Future<Output = Result<R, String>>,
    {
        let store = self.table.get(store)?;
        let (backend, label) = (store.backend.clone(), store.label.clone());
        Ok(work(backend, label).await.map_err(key_value::Error::Other))
    }

    fn open_sqlite(
        &mut self,
        database: &str,
    ) -> wasmtime::Result<Result<Resource<DatabaseConnection>, ()>> {
        if !self
            .component
            .sqlite_databases
            .iter()
            .any(|d| d == database)
        {
            return Ok(Err(()));
        }
        let conn = self.app.databases.open(database);
        Ok(Ok(self.table.push(conn)?))
    }

    async fn execute_sqlite(
        &mut self,
        conn: &Resource<DatabaseConnection>,
        statement: String,
        params: Vec<Value>,
    ) -> wasmtime::Result<Result<Rows, DatabaseError>> {
        Ok(self.table.get(conn)?.execute(statement, params).await)
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
        let backend = self.app.key_value.backend(&label);
        Ok(Ok(self.table.push(KeyValueStore { label, backend })?))
    }

    async fn get(
        &mut self,
        store: Resource<KeyValueStore>,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, key_value::Error>> {
        self.kv(&store, |b, label| async move { b.get(label, key).await })
            .await
    }

    async fn set(
        &mut self,
        store: Resource<KeyValueStore>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), key_value::Error>> {
        self.kv(
            &store,
            |b, label| async move { b.set(label, key, value).await },
        )
        .await
    }

    async fn delete(
        &mut self,
        store: Resource<KeyValueStore>,
        key: String,
    ) -> wasmtime::Result<Result<(), key_value::Error>> {
        self.kv(&store, |b, label| async move { b.delete(label, key).await })
            .await
    }

    async fn exists(
        &mut self,
        store: Resource<KeyValueStore>,
        key: String,
    ) -> wasmtime::Result<Result<bool, key_value::Error>> {
        self.kv(&store, |b, label| async move { b.exists(label, key).await })
            .await
    }

    async fn get_keys(
        &mut self,
        store: Resource<KeyValueStore>,
    ) -> wasmtime::Result<Result<Vec<String>, key_value::Error>> {
        self.kv(&store, |b, label| async move { b.get_keys(label).await })
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

impl From<DatabaseError> for sqlite2::Error {
    fn from(error: DatabaseError) -> Self {
        match error {
            DatabaseError::InvalidConnection => Self::InvalidConnection,
            DatabaseError::Io(message) => Self::Io(message),
        }
    }
}

impl From<DatabaseError> for sqlite3::Error {
    fn from(error: DatabaseError) -> Self {
        match error {
            DatabaseError::InvalidConnection => Self::InvalidConnection,
            DatabaseError::Io(message) => Self::Io(message),
        }
    }
}

impl sqlite2::HostConnection for InstanceState {
    async fn open(
        &mut self,
        database: String,
    ) -> wasmtime::Result<Result<Resource<DatabaseConnection>, sqlite2::Error>> {
        Ok(self
            .open_sqlite(&database)?
            .map_err(|()| sqlite2::Error::AccessDenied))
    }

    async fn execute(
        &mut self,
        conn: Resource<DatabaseConnection>,
        statement: String,
        parameters: Vec<sqlite2::Value>,
    ) -> wasmtime::Result<Result<sqlite2::QueryResult, sqlite2::Error>> {
        let params = parameters.into_iter().map(Value::from).collect();
        Ok(self
            .execute_sqlite(&conn, statement, params)
            .await?
            .map(sqlite2::QueryResult::from_rows)
            .map_err(sqlite2::Error::from))
    }

    async fn drop(&mut self, conn: Resource<DatabaseConnection>) -> wasmtime::Result<()> {
        self.table.delete(conn)?;
        Ok(())
    }
}

impl sqlite3::HostConnection for InstanceState {
    async fn open(
        &mut self,
        database: String,
    ) -> wasmtime::Result<Result<Resource<DatabaseConnection>, sqlite3::Error>> {
        Ok(self
            .open_sqlite(&database)?
            .map_err(|()| sqlite3::Error::AccessDenied))
    }

    async fn execute(
        &mut self,
        conn: Resource<DatabaseConnection>,
        statement: String,
        parameters: Vec<sqlite3::Value>,
    ) -> wasmtime::Result<Result<sqlite3::QueryResult, sqlite3::Error>> {
        let params = parameters.into_iter().map(Value::from).collect();
        Ok(self
            .execute_sqlite(&conn, statement, params)
            .await?
            .map(sqlite3::QueryResult::from_rows)
            .map_err(sqlite3::Error::from))
    }

    async fn last_insert_rowid(
        &mut self,
        conn: Resource<DatabaseConnection>,
    ) -> wasmtime::Result<i64> {
        Ok(self.table.get(&conn)?.last_insert_rowid())
    }

    async fn changes(&mut self, conn: Resource<DatabaseConnection>) -> wasmtime::Result<u64> {
        Ok(self.table.get(&conn)?.changes())
    }

    async fn drop(&mut self, conn: Resource<DatabaseConnection>) -> wasmtime::Result<()> {
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
