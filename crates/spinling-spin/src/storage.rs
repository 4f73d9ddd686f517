//! `Database` over Spin's SQLite interface (`fermyon:spin/sqlite@2.0.0`, the most widely
//! supported: the database labelled `default`, which spin.toml grants each component) or over
//! its PostgreSQL interface (`spin:postgres/postgres@4.x`), as the variable `database` says.

use spin_sdk::pg4::{self, DbValue, ParameterValue};
use spin_sdk::sqlite::{Connection, Error, Value as SpinValue};
use spin_sdk::wit::wasi::keyvalue::{
    batch,
    store::{self, Bucket},
};
use spinling_core::store::cache::{Cache, KeyValueScope};
use spinling_core::store::db::{Database, DbError, DbErrorKind, Dialect, Rows, Value};
use spinling_core::store::postgres::{spin_statement, SpinStatement};
use spinling_core::web::config::DatabaseChoice;
use std::cell::{OnceCell, RefCell};

/// The database of one request, chosen and opened on first use: a read served from the cache
/// never touches it, nor asks Spin for the variables that choose it. Dropped after a failure
/// that may have killed it (a libSQL stream that expired), so that the next statement runs on
/// a fresh connection; an SQLite connection opened again has SQLite's default durability
/// (`synchronous = FULL`), never less than what was configured.
pub struct SpinDatabase<'a> {
    choose: Box<dyn Fn() -> Result<DatabaseChoice, String> + 'a>,
    backend: OnceCell<Result<Backend, String>>,
    /// A setting to put back before the connection's next statement, if it makes one.
    before_next: RefCell<Option<String>>,
}

enum Backend {
    Sqlite(RefCell<Option<Connection>>),
    Postgres {
        url: String,
        connection: RefCell<Option<pg4::Connection>>,
    },
}

impl<'a> SpinDatabase<'a> {
    /// The database `choose` names (from the variables `database` and `postgres_url`).
    pub fn new(choose: impl Fn() -> Result<DatabaseChoice, String> + 'a) -> SpinDatabase<'a> {
        SpinDatabase {
            choose: Box::new(choose),
            backend: OnceCell::new(),
            before_next: RefCell::new(None),
        }
    }

    fn backend(&self) -> Result<&Backend, DbError> {
        self.backend
            .get_or_init(|| {
                (self.choose)().map(|choice| match choice {
                    DatabaseChoice::Sqlite => Backend::Sqlite(RefCell::new(None)),
                    DatabaseChoice::Postgres { url } => Backend::Postgres {
                        url,
                        connection: RefCell::new(None),
                    },
                })
            })
            .as_ref()
            .map_err(|message| DbError {
                kind: DbErrorKind::Misconfigured,
                message: message.clone(),
            })
    }

    /// Whether this request has opened its connection yet (lazily, on the first statement).
    pub fn is_open(&self) -> bool {
        match self.backend.get() {
            Some(Ok(Backend::Sqlite(slot))) => slot.borrow().is_some(),
            Some(Ok(Backend::Postgres { connection, .. })) => connection.borrow().is_some(),
            _ => false,
        }
    }
}

fn open_default() -> Result<Connection, DbError> {
    Connection::open_default()
        .map_err(|e| DbError::other(format!("could not open the default database: {e:?}")))
}

fn to_spin(value: &Value) -> SpinValue {
    match value {
        Value::Integer(i) => SpinValue::Integer(*i),
        Value::Real(r) => SpinValue::Real(*r),
        Value::Text(t) => SpinValue::Text(t.clone()),
        // The one copy a BLOB parameter costs in the component: Spin takes owned values.
        Value::Blob(b) => SpinValue::Blob(b.to_vec()),
        Value::Null => SpinValue::Null,
    }
}

fn from_spin(value: SpinValue) -> Value {
    match value {
        SpinValue::Integer(i) => Value::Integer(i),
        SpinValue::Real(r) => Value::Real(r),
        SpinValue::Text(t) => Value::Text(t),
        SpinValue::Blob(b) => Value::Blob(b.into()),
        SpinValue::Null => Value::Null,
    }
}

/// Spin passes SQLite's own message in `Io`; it is classified here, once.
fn describe(e: Error) -> DbError {
    match e {
        Error::Io(message) => DbError::from_sqlite_message(message),
        other => DbError::other(format!("{other:?}")),
    }
}

fn sqlite_execute(
    slot: &RefCell<Option<Connection>>,
    sql: &str,
    params: &[Value],
) -> Result<Rows, DbError> {
    let params: Vec<SpinValue> = params.iter().map(to_spin).collect();
    let mut slot = slot.borrow_mut();
    let connection = match &mut *slot {
        Some(connection) => connection,
        empty => empty.insert(open_default()?),
    };
    let result = connection.execute(sql, &params).map_err(describe);
    if result
        .as_ref()
        .is_err_and(|e| e.kind == DbErrorKind::TransactionLost)
    {
        *slot = None;
    }
    let result = result?;
    Ok(Rows {
        columns: result.columns,
        rows: result
            .rows
            .into_iter()
            .map(|row| row.values.into_iter().map(from_spin).collect())
            .collect(),
    })
}

fn to_pg(value: &Value) -> ParameterValue {
    match value {
        Value::Integer(i) => ParameterValue::Int64(*i),
        Value::Real(r) => ParameterValue::Floating64(*r),
        Value::Text(t) => ParameterValue::Str(t.clone()),
        Value::Blob(b) => ParameterValue::Binary(b.to_vec()),
        Value::Null => ParameterValue::DbNull,
    }
}

/// PostgreSQL's values as the domain reads SQLite's: integers of every width as `Integer`,
/// booleans as 0 or 1, and NUMERIC (what `SUM` of BIGINT gives) as the number it is.
fn from_pg(value: DbValue) -> Value {
    match value {
        DbValue::Boolean(b) => Value::Integer(i64::from(b)),
        DbValue::Int8(i) => Value::Integer(i64::from(i)),
        DbValue::Int16(i) => Value::Integer(i64::from(i)),
        DbValue::Int32(i) => Value::Integer(i64::from(i)),
        DbValue::Int64(i) => Value::Integer(i),
        DbValue::Floating32(r) => Value::Real(f64::from(r)),
        DbValue::Floating64(r) => Value::Real(r),
        DbValue::Str(t) => Value::Text(t),
        DbValue::Binary(b) => Value::Blob(b.into()),
        DbValue::Decimal(d) => match d.parse::<i64>() {
            Ok(i) => Value::Integer(i),
            Err(_) => d.parse::<f64>().map_or(Value::Text(d), Value::Real),
        },
        DbValue::DbNull => Value::Null,
        other => Value::Text(format!("{other:?}")),
    }
}

fn describe_pg(e: pg4::PgError) -> DbError {
    match e {
        pg4::PgError::QueryFailed(pg4::QueryError::DbError(e)) => {
            let table = e
                .extras
                .iter()
                .find(|(name, _)| name == "table")
                .map(|(_, value)| value.as_str());
            DbError::from_postgres(&e.code, e.as_text.clone(), e.detail.as_deref(), table)
        }
        pg4::PgError::QueryFailed(pg4::QueryError::Text(text)) => DbError::from_postgres_text(text),
        other => DbError::other(format!("{other:?}")),
    }
}

/// Opens a pooled connection, and rolls back whatever transaction it carries: Spin's pool
/// hands a connection on without a ROLLBACK, so one an instance left inside a transaction
/// (it trapped between BEGIN and COMMIT) would otherwise make this request's statements part
/// of that transaction.
fn open_postgres(url: &str) -> Result<pg4::Connection, DbError> {
    let connection = pg4::Connection::open(url)
        .map_err(|e| DbError::other(format!("could not open the PostgreSQL database: {e:?}")))?;
    connection.execute("ROLLBACK", &[]).map_err(describe_pg)?;
    Ok(connection)
}

fn postgres_execute(
    url: &str,
    slot: &RefCell<Option<pg4::Connection>>,
    sql: &str,
    params: &[Value],
) -> Result<Rows, DbError> {
    // PostgreSQL's TEXT cannot hold a NUL, and refuses it only after the statement went out.
    if params
        .iter()
        .any(|p| matches!(p, Value::Text(t) if t.contains('\0')))
    {
        return Err(DbError {
            kind: DbErrorKind::InvalidText,
            message: "a text parameter contains NUL".into(),
        });
    }
    let params: Vec<ParameterValue> = params.iter().map(to_pg).collect();
    let mut slot = slot.borrow_mut();
    let connection = match &mut *slot {
        Some(connection) => connection,
        empty => empty.insert(open_postgres(url)?),
    };
    match spin_statement(sql) {
        SpinStatement::Execute(sql) => {
            connection.execute(&sql, &params).map_err(describe_pg)?;
            Ok(Rows::default())
        }
        SpinStatement::Query(sql) => {
            let result = connection.query(&sql, &params).map_err(describe_pg)?;
            // The first column marks the statement's rows; the filler row of an empty answer
            // has it NULL.
            Ok(Rows {
                columns: result.columns.into_iter().skip(1).map(|c| c.name).collect(),
                rows: result
                    .rows
                    .into_iter()
                    .filter(|row| !matches!(row.first(), Some(DbValue::DbNull) | None))
                    .map(|row| row.into_iter().skip(1).map(from_pg).collect())
                    .collect(),
            })
        }
    }
}

impl SpinDatabase<'_> {
    fn execute_now(&self, sql: &str, params: &[Value]) -> Result<Rows, DbError> {
        match self.backend()? {
            Backend::Sqlite(slot) => sqlite_execute(slot, sql, params),
            Backend::Postgres { url, connection } => postgres_execute(url, connection, sql, params),
        }
    }
}

impl Database for SpinDatabase<'_> {
    fn execute(&self, sql: &str, params: &[Value]) -> Result<Rows, DbError> {
        // Only on the connection that changed it: a fresh one starts with the host's own.
        if let Some(setting) = self.before_next.take().filter(|_| self.is_open()) {
            let _ = self.execute_now(&setting, &[]);
        }
        self.execute_now(sql, params)
    }

    fn execute_before_next(&self, setting: &str) {
        *self.before_next.borrow_mut() = Some(setting.to_owned());
    }

    /// SQLite's when the variables choose no database: its statements then fail as misconfigured.
    fn dialect(&self) -> Dialect {
        match self.backend() {
            Ok(Backend::Postgres { .. }) => Dialect::PostgreSQL,
            _ => Dialect::Sqlite,
        }
    }

    fn reconnect(&self) {
        self.before_next.take();
        match self.backend.get() {
            Some(Ok(Backend::Sqlite(slot))) => *slot.borrow_mut() = None,
            Some(Ok(Backend::Postgres { connection, .. })) => *connection.borrow_mut() = None,
            _ => {}
        }
    }
}

/// For groups that never touch storage.
pub struct NoDatabase;

impl Database for NoDatabase {
    fn execute(&self, _sql: &str, _params: &[Value]) -> Result<Rows, DbError> {
        Err(DbError::other("this component has no database"))
    }
}

/// The cache in Spin's key-value store `default` (through `wasi:keyvalue`, which batches),
/// opened on first use. A store that cannot be opened, read or written (not granted, full,
/// unreachable) behaves as an empty cache. Its scope (variable `key_value_scope`) bounds how
/// long cached database reads are trusted.
pub struct KeyValueCache {
    store: OnceCell<Option<Bucket>>,
    scope: KeyValueScope,
}

impl KeyValueCache {
    pub fn open(scope: KeyValueScope) -> KeyValueCache {
        KeyValueCache {
            store: OnceCell::new(),
            scope,
        }
    }

    fn store(&self) -> Option<&Bucket> {
        self.store
            .get_or_init(|| store::open("default").ok())
            .as_ref()
    }
}

impl Cache for KeyValueCache {
    fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.store()?.get(key).ok().flatten()
    }
    /// One call on a store of each replica's own (Spin's SQLite file). Not on a shared one:
    /// Spin 4.1's Redis store answers `get-many` with Redis' `KEYS` (an error for two keys),
    /// so there, and whenever the batch fails, each key is read on its own.
    fn get_many(&self, keys: &[&str]) -> Vec<Option<Vec<u8>>> {
        let Some(store) = self.store() else {
            return vec![None; keys.len()];
        };
        if self.scope == KeyValueScope::Replica {
            let asked: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
            if let Ok(mut found) = batch::get_many(store, &asked) {
                // Each value moves out of the answer: an entry may be a long list.
                return keys
                    .iter()
                    .map(|key| {
                        found
                            .iter_mut()
                            .find(|(k, _)| k == key)
                            .and_then(|(_, v)| v.take())
                    })
                    .collect();
            }
        }
        keys.iter().map(|key| self.get(key)).collect()
    }
    fn set(&self, key: &str, value: &[u8]) {
        if let Some(store) = self.store() {
            let _ = store.set(key, value);
        }
    }
    fn delete(&self, key: &str) {
        if let Some(store) = self.store() {
            let _ = store.delete(key);
        }
    }
    /// A forget that fails as a batch is tried key by key: an entry left behind would be
    /// served stale.
    fn delete_many(&self, keys: &[String]) {
        if let Some(store) = self.store() {
            if batch::delete_many(store, keys).is_err() {
                for key in keys {
                    let _ = store.delete(key);
                }
            }
        }
    }
    fn scope(&self) -> KeyValueScope {
        self.scope
    }
}
