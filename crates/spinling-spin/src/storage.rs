//! `Database` over Spin's SQLite interface (`fermyon:spin/sqlite@2.0.0`, the most widely
//! supported): the database labelled `default`, which spin.toml grants each component.

use spin_sdk::key_value::Store;
use spin_sdk::sqlite::{Connection, Error, Value as SpinValue};
use spinling_core::store::cache::{Cache, KeyValueScope};
use spinling_core::store::db::{Database, DbError, DbErrorKind, Rows, Value};
use std::cell::{OnceCell, RefCell};

/// Opened on first use: a read served from the cache never touches SQLite. Dropped after a
/// failure that may have killed it (a libSQL stream that expired), so that the next statement
/// runs on a fresh connection; a connection opened again has SQLite's default durability
/// (`synchronous = FULL`), never less than what was configured.
#[derive(Default)]
pub struct SpinDatabase(RefCell<Option<Connection>>);

impl SpinDatabase {
    pub fn new() -> SpinDatabase {
        SpinDatabase::default()
    }

    /// Whether this request has opened its connection yet (lazily, on the first statement).
    pub fn is_open(&self) -> bool {
        self.0.borrow().is_some()
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

impl Database for SpinDatabase {
    fn execute(&self, sql: &str, params: &[Value]) -> Result<Rows, DbError> {
        let params: Vec<SpinValue> = params.iter().map(to_spin).collect();
        let mut slot = self.0.borrow_mut();
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

    fn reconnect(&self) {
        *self.0.borrow_mut() = None;
    }
}

/// For groups that never touch storage.
pub struct NoDatabase;

impl Database for NoDatabase {
    fn execute(&self, _sql: &str, _params: &[Value]) -> Result<Rows, DbError> {
        Err(DbError::other("this component has no database"))
    }
}

/// The cache in Spin's key-value store `default`, opened on first use. A store that cannot be
/// opened, read or written (not granted, full, unreachable) behaves as an empty cache. Its
/// scope (variable `key_value_scope`) bounds how long cached database reads are trusted.
pub struct KeyValueCache {
    store: OnceCell<Option<Store>>,
    scope: KeyValueScope,
}

impl KeyValueCache {
    pub fn open(scope: KeyValueScope) -> KeyValueCache {
        KeyValueCache {
            store: OnceCell::new(),
            scope,
        }
    }

    fn store(&self) -> Option<&Store> {
        self.store
            .get_or_init(|| Store::open_default().ok())
            .as_ref()
    }
}

impl Cache for KeyValueCache {
    fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.store()?.get(key).ok().flatten()
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
    fn scope(&self) -> KeyValueScope {
        self.scope
    }
}
