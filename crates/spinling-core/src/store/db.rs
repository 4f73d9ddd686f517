//! The storage seam. The domain speaks SQL through `Database`, a trait as small as Spin's
//! SQLite interface (one statement per call), so the same code runs on Spin's SQLite, on a
//! libSQL backend, on PostgreSQL, and natively on rusqlite in unit tests.
//!
//! The SQL is written in the subset SQLite and PostgreSQL both speak (`?` placeholders, which
//! the PostgreSQL adapter numbers; `ON CONFLICT`; `RETURNING`; `IS NOT DISTINCT FROM`). The
//! few things they say differently are asked of the backend's [`Dialect`].

use crate::error::ApiError;
pub use crate::store::dialect::Dialect;
use bytes::Bytes;
use std::fmt;

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Integer(i64),
    Real(f64),
    Text(String),
    /// Shared, so that a package's chunks are slices of the request body, not copies.
    Blob(Bytes),
    Null,
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Text(s.to_owned())
    }
}
impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Text(s)
    }
}
impl From<&String> for Value {
    fn from(s: &String) -> Self {
        Value::Text(s.clone())
    }
}
impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Value::Integer(i)
    }
}
impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Integer(i64::from(b))
    }
}
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

/// The rows a statement returned.
#[derive(Debug, Default, Clone)]
pub struct Rows {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
}

impl Rows {
    pub fn iter(&self) -> impl Iterator<Item = Row<'_>> {
        self.rows.iter().map(|values| Row {
            columns: &self.columns,
            values,
        })
    }
    pub fn first(&self) -> Option<Row<'_>> {
        self.iter().next()
    }
}

/// Names a column of a row: its name, as the statement's result names it (how the domain
/// reads its rows), or, for a one-column answer such as `SELECT COUNT(*)`, its position.
pub trait Column: Copy {
    /// The column's position among `columns`. A name the statement did not return is a
    /// programming error (a query and its reader out of step) and panics, saying so.
    fn position(self, columns: &[String]) -> usize;
}

impl Column for usize {
    fn position(self, _columns: &[String]) -> usize {
        self
    }
}

impl Column for &str {
    fn position(self, columns: &[String]) -> usize {
        columns
            .iter()
            .position(|c| c == self)
            .unwrap_or_else(|| panic!("no column {self:?} in this row; it has {columns:?}"))
    }
}

/// One row, read by column name (or position), with the names its statement returned.
#[derive(Debug, Clone, Copy)]
pub struct Row<'a> {
    columns: &'a [String],
    values: &'a [Value],
}

impl<'a> Row<'a> {
    fn value(&self, column: impl Column) -> Option<&'a Value> {
        self.values.get(column.position(self.columns))
    }
    /// Whether the row has a column called `name` (a row may come from several queries).
    pub fn has(&self, name: &str) -> bool {
        self.columns.iter().any(|c| c == name)
    }
    pub fn text(&self, column: impl Column) -> String {
        self.opt_text(column).unwrap_or_default()
    }
    pub fn opt_text(&self, column: impl Column) -> Option<String> {
        match self.value(column) {
            Some(Value::Text(s)) => Some(s.clone()),
            Some(Value::Integer(n)) => Some(n.to_string()),
            _ => None,
        }
    }
    pub fn int(&self, column: impl Column) -> i64 {
        self.opt_int(column).unwrap_or_default()
    }
    pub fn opt_int(&self, column: impl Column) -> Option<i64> {
        match self.value(column) {
            Some(Value::Integer(n)) => Some(*n),
            Some(Value::Real(r)) => Some(*r as i64),
            Some(Value::Text(s)) => s.parse().ok(),
            _ => None,
        }
    }
    pub fn bool(&self, column: impl Column) -> bool {
        self.int(column) != 0
    }
    pub fn blob(&self, column: impl Column) -> Vec<u8> {
        match self.value(column) {
            Some(Value::Blob(b)) => b.to_vec(),
            Some(Value::Text(s)) => s.clone().into_bytes(),
            _ => Vec::new(),
        }
    }
}

/// What a database failure means to the domain. Classified once, where the failure is made
/// (the storage adapter), so no caller reads SQLite's message text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DbErrorKind {
    /// Another connection holds the lock (`SQLITE_BUSY`, "database is locked"): worth
    /// trying again.
    Busy,
    /// A UNIQUE (or PRIMARY KEY) constraint refused a write; `columns` as SQLite names them,
    /// e.g. `function_aliases.project_id, function_aliases.name`.
    Unique {
        columns: String,
    },
    /// The statement needs a table or column the schema does not have yet.
    MissingSchema,
    /// The server dropped the connection's transaction, so none of it was applied: libSQL's
    /// `TRANSACTION_TIMEOUT` (sqld rolls back a transaction open longer than 5 s while
    /// another waits, interrupting the statement then under way: `SQLITE_INTERRUPT`),
    /// `STREAM_EXPIRED` (a connection idle for 10 s is gone, with its transaction), or the
    /// "no transaction is active" a `COMMIT` gets after such a rollback. Worth running the
    /// whole transaction again, on a fresh connection.
    TransactionLost,
    /// Text the database cannot store: PostgreSQL refuses the NUL character (U+0000) in TEXT,
    /// which SQLite keeps. A client's input, so a 400.
    InvalidText,
    /// The variables name no database Spinling can use (`database`, `postgres_url`): the
    /// operator's to fix, so the 500 says what is wrong.
    Misconfigured,
    Other,
}

/// A database failure: its classification and the backend's own words (for the log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbError {
    pub kind: DbErrorKind,
    pub message: String,
}

impl DbError {
    pub fn other(message: impl Into<String>) -> DbError {
        DbError {
            kind: DbErrorKind::Other,
            message: message.into(),
        }
    }

    /// Classifies an error by SQLite's message, which is all that Spin's SQLite interface
    /// (`Error::Io(String)`) and libSQL's remote protocol pass on; SQLite's wording of these
    /// messages has been stable for decades, and libSQL's Hrana errors carry their `code`
    /// (`TRANSACTION_TIMEOUT`, `STREAM_EXPIRED`) in the text.
    pub fn from_sqlite_message(message: impl Into<String>) -> DbError {
        let message = message.into();
        let lower = message.to_ascii_lowercase();
        let kind = if let Some((_, columns)) = message.split_once("UNIQUE constraint failed: ") {
            DbErrorKind::Unique {
                columns: columns.trim().to_string(),
            }
        } else if lower.contains("database is locked")
            || lower.contains("database table is locked")
            || lower.contains("sqlite_busy")
        {
            DbErrorKind::Busy
        } else if lower.contains("transaction_timeout")
            || lower.contains("stream_expired")
            || lower.contains("no transaction is active")
            || lower.contains("sqlite_interrupt")
        {
            DbErrorKind::TransactionLost
        } else if lower.contains("no such table")
            || lower.contains("no such column")
            || lower.contains("has no column named")
        {
            DbErrorKind::MissingSchema
        } else {
            DbErrorKind::Other
        };
        DbError { kind, message }
    }

    /// Classifies a PostgreSQL error by its SQLSTATE `code`. A unique violation names its
    /// columns as SQLite does (`table.column, …`), from the `table` and the `detail`
    /// (`Key (a, b)=(…) already exists.`), so callers read one form.
    pub fn from_postgres(
        code: &str,
        message: String,
        detail: Option<&str>,
        table: Option<&str>,
    ) -> DbError {
        let kind = match code {
            "23505" => {
                let columns = detail
                    .and_then(|d| d.strip_prefix("Key ("))
                    .and_then(|d| d.split_once(")="))
                    .map(|(columns, _)| columns)
                    .unwrap_or_default();
                DbErrorKind::Unique {
                    columns: columns
                        .split(',')
                        .map(|c| match table {
                            Some(t) => format!("{t}.{}", c.trim()),
                            None => c.trim().to_string(),
                        })
                        .collect::<Vec<_>>()
                        .join(", "),
                }
            }
            // serialization_failure, deadlock_detected, lock_not_available: try again.
            "40001" | "40P01" | "55P03" => DbErrorKind::Busy,
            // undefined_table, undefined_column.
            "42P01" | "42703" => DbErrorKind::MissingSchema,
            // character_not_in_repertoire (a NUL in TEXT), untranslatable_character.
            "22021" | "22P05" => DbErrorKind::InvalidText,
            _ => DbErrorKind::Other,
        };
        DbError { kind, message }
    }

    /// Classifies a PostgreSQL error that arrived as text only: Spin's pg4 `query` passes an
    /// error met while the rows stream (a constraint an INSERT … RETURNING broke, say) as
    /// the `Debug` text of tokio-postgres's error, which still names the SQLSTATE
    /// (`code: SqlState(E23505)`), the `detail` and the `table`.
    pub fn from_postgres_text(text: String) -> DbError {
        let field = |name: &str| -> Option<String> {
            let start = text.find(&format!("{name}: Some(\""))? + name.len() + 8;
            let rest = &text[start..];
            Some(rest[..rest.find("\")")?].replace("\\\"", "\""))
        };
        let code = text
            .find("SqlState(E")
            .and_then(|at| text.get(at + 10..at + 15))
            .map(str::to_string);
        match code {
            Some(code) => {
                let (detail, table) = (field("detail"), field("table"));
                DbError::from_postgres(&code, text, detail.as_deref(), table.as_deref())
            }
            None => DbError::other(text),
        }
    }

    pub fn is_busy(&self) -> bool {
        self.kind == DbErrorKind::Busy
    }

    /// The columns of the UNIQUE constraint that refused a write, if that was the failure.
    pub fn unique_columns(&self) -> Option<&str> {
        match &self.kind {
            DbErrorKind::Unique { columns } => Some(columns),
            _ => None,
        }
    }
}

impl fmt::Display for DbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DbError {}

impl From<DbError> for ApiError {
    /// The client gets Qinling's generic 500, or a 503 when trying again later can work (the
    /// database stayed busy, or kept dropping the transaction, through every retry); the cause
    /// stays with the error, and the edge logs it once.
    fn from(e: DbError) -> Self {
        match e.kind {
            DbErrorKind::InvalidText => ApiError::bad_request(
                "Invalid input: text may not contain the NUL character (\\u0000).",
            )
            .caused_by(e),
            DbErrorKind::Busy | DbErrorKind::TransactionLost => ApiError::new(
                crate::error::ErrorKind::ServiceUnavailable,
                "The database is busy; try again later.",
            )
            .caused_by(e),
            DbErrorKind::Misconfigured => ApiError::configuration(&e.message).caused_by(e),
            _ => ApiError::internal("Internal server error.").caused_by(e),
        }
    }
}

pub trait Database {
    /// Runs one SQL statement with positional (`?`) parameters.
    fn execute(&self, sql: &str, params: &[Value]) -> Result<Rows, DbError>;

    /// The SQL the backend speaks where SQLite and PostgreSQL differ.
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    /// Runs `setting` (a statement without an answer: a PRAGMA putting a setting back) before
    /// this connection's next statement, and never if it makes none: a request whose last
    /// write changed a setting pays no host call to put it back. A backend that cannot wait
    /// runs it at once (the default).
    fn execute_before_next(&self, setting: &str) {
        let _ = self.execute(setting, &[]);
    }

    /// Drops the connection, so that the next statement opens a fresh one: after a lost
    /// transaction, a libSQL connection's stream may be dead for good. A no-op for backends
    /// whose connections cannot die this way.
    fn reconnect(&self) {}
}

/// How often a transaction that found the database busy is tried again. Each try already
/// waits out the backend's busy timeout, so this bounds the wait, not the work.
const BUSY_RETRIES: u32 = 8;

/// Pauses between tries of a write that found a local database busy: from 100 µs, doubling
/// up to 1 ms, with jitter so waiting writers do not wake in lockstep; about 1.5 s in all.
const SHORT_BUSY_TRIES: u32 = 1500;
const SHORT_BUSY_CAP_US: u64 = 1000;
/// A remote database (libSQL) that answers busy is asked again far less often: each try is a
/// network round trip the server must serve, so from 1 ms doubling up to 64 ms, with jitter;
/// about 1.5 s in all, as locally.
const REMOTE_BUSY_TRIES: u32 = 28;
const REMOTE_BUSY_CAP_US: u64 = 64_000;
/// The busy timeout hosts give their connections (rusqlite's default), put back before the
/// connection's next statement, if it makes one.
const HOST_BUSY_TIMEOUT_MS: u32 = 5000;

/// Runs one write statement, retrying it with short pauses while the database is busy.
/// SQLite's own busy handler sleeps 1, 2, 5, 10, 15… ms between tries, long next to a
/// single-statement write that holds the lock for about one disk sync.
pub fn with_short_busy_waits<T>(
    db: &dyn Database,
    write: impl Fn() -> Result<T, DbError>,
) -> Result<T, DbError> {
    // Backends without the pragma (libSQL remote: its client refuses it) keep their own
    // waiting, and a busy answer from them is retried at the remote pace.
    // PostgreSQL waits for locks itself; what it answers busy (a serialization failure, a
    // deadlock) is retried at the remote pace.
    let local =
        db.dialect() == Dialect::Sqlite && db.execute("PRAGMA busy_timeout = 0", &[]).is_ok();
    let (tries, first_us, cap_us) = if local {
        (SHORT_BUSY_TRIES, 100, SHORT_BUSY_CAP_US)
    } else {
        (REMOTE_BUSY_TRIES, 1000, REMOTE_BUSY_CAP_US)
    };
    let mut attempt = 0;
    let outcome = loop {
        match write() {
            Err(e) if e.is_busy() && attempt < tries => {
                let base = (first_us << attempt.min(6)).min(cap_us);
                let jitter = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| u64::from(d.subsec_nanos()) % base);
                std::thread::sleep(std::time::Duration::from_micros(base + jitter));
                attempt += 1;
            }
            other => break other,
        }
    };
    if local {
        db.execute_before_next(&format!("PRAGMA busy_timeout = {HOST_BUSY_TIMEOUT_MS}"));
    }
    outcome
}

/// How many times a transaction the server dropped (`DbErrorKind::TransactionLost`) is run
/// again, each time on a fresh connection, before the client gets a 503.
const LOST_TRANSACTION_RETRIES: u32 = 4;

/// Runs `work` in a write transaction (`BEGIN IMMEDIATE` … `COMMIT` on SQLite; see `begin`):
/// all of it or none of it. Taking the write
/// lock up front serialises writers (so "read the newest number, insert the next" cannot
/// race) and a busy database is retried a bounded number of times.
///
/// A transaction the server dropped (libSQL: timed out, or its stream expired) is run again
/// as a whole on a fresh connection, a bounded number of times: `work` may run more than once
/// and must not act outside the database. Only failures that prove the transaction was not
/// applied are retried. A `COMMIT` whose answer was lost on the way back (a broken
/// connection, a transport error) may have committed: it is not retried, since running the
/// work again could apply it twice (a second function created under a new id); the client
/// gets an error and looks before trying again, as after any failed request.
pub fn in_transaction<T, E>(
    db: &dyn Database,
    mut work: impl FnMut(&dyn Database) -> Result<T, E>,
) -> Result<T, E>
where
    E: From<DbError>,
{
    let mut retries = 0;
    loop {
        let tx = TransactionConnection {
            db,
            lost: std::cell::RefCell::new(None),
        };
        let outcome = tx.run(&mut work);
        let Some(lost) = tx.lost.into_inner() else {
            return outcome;
        };
        db.reconnect();
        if retries == LOST_TRANSACTION_RETRIES {
            return Err(lost.into());
        }
        retries += 1;
        std::thread::sleep(std::time::Duration::from_millis(jitter_ms(10 << retries)));
    }
}

/// A pause of up to `max_ms`, so that retrying writers do not come back in lockstep.
fn jitter_ms(max_ms: u64) -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::from(d.subsec_nanos()) % max_ms.max(1))
}

/// The connection one try of a transaction runs on. Once a statement finds the transaction
/// lost, it refuses every further statement with the same error: the server has dropped the
/// transaction, so anything the work still ran would run in autocommit, outside it.
struct TransactionConnection<'a> {
    db: &'a dyn Database,
    lost: std::cell::RefCell<Option<DbError>>,
}

impl Database for TransactionConnection<'_> {
    fn dialect(&self) -> Dialect {
        self.db.dialect()
    }

    fn execute_before_next(&self, setting: &str) {
        self.db.execute_before_next(setting);
    }

    fn execute(&self, sql: &str, params: &[Value]) -> Result<Rows, DbError> {
        if let Some(lost) = self.lost.borrow().as_ref() {
            return Err(lost.clone());
        }
        let result = self.db.execute(sql, params);
        if let Err(e) = &result {
            if e.kind == DbErrorKind::TransactionLost {
                *self.lost.borrow_mut() = Some(e.clone());
            }
        }
        result
    }
}

/// The key of the PostgreSQL advisory lock every write transaction takes first.
const WRITE_LOCK: i64 = 0x5350_494e_4c49_4e47; // "SPINLING"

impl TransactionConnection<'_> {
    /// Starts a write transaction that holds the database's write lock, as SQLite's
    /// `BEGIN IMMEDIATE` does: writers run one at a time, so "read the newest number, insert
    /// the next" cannot race. On PostgreSQL that lock is an advisory lock held to the end of
    /// the transaction. (What an instance that died left open on a pooled connection, which
    /// Spin hands on without a rollback, the adapter rolls back once, when it opens the
    /// connection.)
    fn begin(&self) -> Result<(), DbError> {
        match self.dialect() {
            Dialect::Sqlite => self.execute("BEGIN IMMEDIATE", &[]).map(drop),
            Dialect::PostgreSQL => {
                self.execute("BEGIN", &[])?;
                self.execute(
                    "SELECT 1 AS locked FROM (SELECT pg_advisory_xact_lock(?)) AS l",
                    &[Value::Integer(WRITE_LOCK)],
                )
                .map(drop)
            }
        }
    }

    fn run<T, E: From<DbError>>(
        &self,
        work: &mut impl FnMut(&dyn Database) -> Result<T, E>,
    ) -> Result<T, E> {
        let mut attempt = 0;
        loop {
            match self.begin() {
                Ok(()) => break,
                Err(e) if e.is_busy() && attempt < BUSY_RETRIES => {
                    attempt += 1;
                    std::thread::sleep(std::time::Duration::from_millis(5 << attempt.min(6)));
                }
                Err(e) => return Err(e.into()),
            }
        }
        let outcome = work(self).and_then(|value| match self.execute("COMMIT", &[]) {
            Ok(_) => Ok(value),
            Err(e) => Err(e.into()),
        });
        // Straight to the connection, answer ignored: after a lost transaction there may be
        // nothing left to roll back, or no stream to do it on.
        if outcome.is_err() {
            let _ = self.db.execute("ROLLBACK", &[]);
        }
        outcome
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! A rusqlite-backed `Database` for unit tests of everything above the storage seam.
    use super::*;

    pub struct TestDb(pub rusqlite::Connection);

    /// rusqlite's error as the adapters classify it: by SQLite's message.
    fn classify(e: rusqlite::Error) -> DbError {
        DbError::from_sqlite_message(e.to_string())
    }

    impl TestDb {
        pub fn in_memory() -> Self {
            TestDb(rusqlite::Connection::open_in_memory().unwrap())
        }
        pub fn open(path: &std::path::Path) -> Self {
            TestDb(rusqlite::Connection::open(path).unwrap())
        }
    }

    impl Database for TestDb {
        fn execute(&self, sql: &str, params: &[Value]) -> Result<Rows, DbError> {
            let mut stmt = self.0.prepare_cached(sql).map_err(classify)?;
            let columns: Vec<String> = stmt.column_names().map(|c| c.to_string()).collect();
            let n = columns.len();
            let params = params.iter().map(|v| match v {
                Value::Integer(i) => rusqlite::types::Value::Integer(*i),
                Value::Real(r) => rusqlite::types::Value::Real(*r),
                Value::Text(t) => rusqlite::types::Value::Text(t.clone()),
                Value::Blob(b) => rusqlite::types::Value::Blob(b.to_vec()),
                Value::Null => rusqlite::types::Value::Null,
            });
            let mut rows = Vec::new();
            let mut q = stmt
                .query(rusqlite::params_from_iter(params))
                .map_err(classify)?;
            while let Some(row) = q.next().map_err(classify)? {
                let mut values = Vec::with_capacity(n);
                for i in 0..n {
                    let v: rusqlite::types::Value = row.get(i).map_err(classify)?;
                    values.push(match v {
                        rusqlite::types::Value::Integer(i) => Value::Integer(i),
                        rusqlite::types::Value::Real(r) => Value::Real(r),
                        rusqlite::types::Value::Text(t) => Value::Text(t),
                        rusqlite::types::Value::Blob(b) => Value::Blob(b.into()),
                        rusqlite::types::Value::Null => Value::Null,
                    });
                }
                rows.push(values);
            }
            Ok(Rows { columns, rows })
        }
    }
}

#[cfg(test)]
#[path = "db_tests.rs"]
mod tests;
