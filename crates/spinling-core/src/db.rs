//! The storage seam. The domain speaks SQL through `Database`, a trait as small as Spin's
//! SQLite interface (one statement per call), so the same code runs on Spin's SQLite, on a
//! libSQL backend, and natively on rusqlite in unit tests.

use crate::error::ApiError;
use std::fmt;

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Integer(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
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
        self.rows.iter().map(|values| Row { values })
    }
    pub fn first(&self) -> Option<Row<'_>> {
        self.iter().next()
    }
}

/// One row, read by column position (queries name their columns explicitly).
#[derive(Debug, Clone, Copy)]
pub struct Row<'a> {
    values: &'a [Value],
}

impl<'a> Row<'a> {
    /// The same row without its first `n` columns (for a joined prefix).
    pub fn skip(&self, n: usize) -> Row<'a> {
        Row {
            values: self.values.get(n..).unwrap_or_default(),
        }
    }
    pub fn text(&self, i: usize) -> String {
        self.opt_text(i).unwrap_or_default()
    }
    pub fn opt_text(&self, i: usize) -> Option<String> {
        match self.values.get(i) {
            Some(Value::Text(s)) => Some(s.clone()),
            Some(Value::Integer(n)) => Some(n.to_string()),
            _ => None,
        }
    }
    pub fn int(&self, i: usize) -> i64 {
        self.opt_int(i).unwrap_or_default()
    }
    pub fn opt_int(&self, i: usize) -> Option<i64> {
        match self.values.get(i) {
            Some(Value::Integer(n)) => Some(*n),
            Some(Value::Real(r)) => Some(*r as i64),
            Some(Value::Text(s)) => s.parse().ok(),
            _ => None,
        }
    }
    pub fn bool(&self, i: usize) -> bool {
        self.int(i) != 0
    }
    pub fn blob(&self, i: usize) -> Vec<u8> {
        match self.values.get(i) {
            Some(Value::Blob(b)) => b.clone(),
            Some(Value::Text(s)) => s.clone().into_bytes(),
            _ => Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbError(pub String);

impl DbError {
    /// SQLite answers "database is locked" (SQLITE_BUSY) when another connection holds the
    /// write lock for longer than the busy timeout.
    pub fn is_busy(&self) -> bool {
        let m = self.0.to_ascii_lowercase();
        m.contains("database is locked") || m.contains("busy")
    }
}

impl fmt::Display for DbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<DbError> for ApiError {
    fn from(e: DbError) -> Self {
        // The cause goes to the log; the client gets Qinling's generic 500.
        eprintln!("database error: {e}");
        ApiError::internal("Internal server error.")
    }
}

pub trait Database {
    /// Runs one SQL statement with positional (`?`) parameters.
    fn execute(&self, sql: &str, params: &[Value]) -> Result<Rows, DbError>;
}

/// How often a transaction that found the database busy is tried again. Each try already
/// waits out the backend's busy timeout, so this bounds the wait, not the work.
const BUSY_RETRIES: u32 = 8;

/// Pauses between tries of a write that found the database busy: from 100 µs, doubling up
/// to 1 ms, with jitter so waiting writers do not wake in lockstep; about 1.5 s in all.
const SHORT_BUSY_TRIES: u32 = 1500;
const SHORT_BUSY_CAP_US: u64 = 1000;
/// The busy timeout hosts give their connections (rusqlite's default), restored afterwards.
const HOST_BUSY_TIMEOUT_MS: u32 = 5000;

/// Runs one write statement, retrying it with short pauses while the database is busy.
/// SQLite's own busy handler sleeps 1, 2, 5, 10, 15… ms between tries, long next to a
/// single-statement write that holds the lock for about one disk sync.
pub fn with_short_busy_waits<T>(
    db: &dyn Database,
    write: impl Fn() -> Result<T, DbError>,
) -> Result<T, DbError> {
    // Backends without the pragma (libSQL remote) ignore it and keep their own waiting.
    let _ = db.execute("PRAGMA busy_timeout = 0", &[]);
    let mut attempt = 0;
    let outcome = loop {
        match write() {
            Err(e) if e.is_busy() && attempt < SHORT_BUSY_TRIES => {
                let base = (100u64 << attempt.min(4)).min(SHORT_BUSY_CAP_US);
                let jitter = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| u64::from(d.subsec_nanos()) % base);
                std::thread::sleep(std::time::Duration::from_micros(base + jitter));
                attempt += 1;
            }
            other => break other,
        }
    };
    let _ = db.execute(
        &format!("PRAGMA busy_timeout = {HOST_BUSY_TIMEOUT_MS}"),
        &[],
    );
    outcome
}

/// Runs `work` inside `BEGIN IMMEDIATE` … `COMMIT`: all of it or none of it. Taking the write
/// lock up front serialises writers (so "read the newest number, insert the next" cannot
/// race) and a busy database is retried a bounded number of times.
pub fn in_transaction<T, E>(
    db: &dyn Database,
    mut work: impl FnMut(&dyn Database) -> Result<T, E>,
) -> Result<T, E>
where
    E: From<DbError>,
{
    let mut attempt = 0;
    loop {
        match db.execute("BEGIN IMMEDIATE", &[]) {
            Ok(_) => break,
            Err(e) if e.is_busy() && attempt < BUSY_RETRIES => {
                attempt += 1;
                std::thread::sleep(std::time::Duration::from_millis(5 << attempt.min(6)));
            }
            Err(e) => return Err(e.into()),
        }
    }
    match work(db) {
        Ok(value) => match db.execute("COMMIT", &[]) {
            Ok(_) => Ok(value),
            Err(e) => {
                let _ = db.execute("ROLLBACK", &[]);
                Err(e.into())
            }
        },
        Err(e) => {
            let _ = db.execute("ROLLBACK", &[]);
            Err(e)
        }
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! A rusqlite-backed `Database` for unit tests of everything above the storage seam.
    use super::*;

    pub struct TestDb(pub rusqlite::Connection);

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
            let mut stmt = self
                .0
                .prepare_cached(sql)
                .map_err(|e| DbError(e.to_string()))?;
            let columns: Vec<String> = stmt.column_names().map(|c| c.to_string()).collect();
            let n = columns.len();
            let params = params.iter().map(|v| match v {
                Value::Integer(i) => rusqlite::types::Value::Integer(*i),
                Value::Real(r) => rusqlite::types::Value::Real(*r),
                Value::Text(t) => rusqlite::types::Value::Text(t.clone()),
                Value::Blob(b) => rusqlite::types::Value::Blob(b.clone()),
                Value::Null => rusqlite::types::Value::Null,
            });
            let mut rows = Vec::new();
            let mut q = stmt
                .query(rusqlite::params_from_iter(params))
                .map_err(|e| DbError(e.to_string()))?;
            while let Some(row) = q.next().map_err(|e| DbError(e.to_string()))? {
                let mut values = Vec::with_capacity(n);
                for i in 0..n {
                    let v: rusqlite::types::Value =
                        row.get(i).map_err(|e| DbError(e.to_string()))?;
                    values.push(match v {
                        rusqlite::types::Value::Integer(i) => Value::Integer(i),
                        rusqlite::types::Value::Real(r) => Value::Real(r),
                        rusqlite::types::Value::Text(t) => Value::Text(t),
                        rusqlite::types::Value::Blob(b) => Value::Blob(b),
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
mod tests {
    use super::testing::TestDb;
    use super::*;

    #[test]
    fn a_failed_transaction_leaves_nothing_behind() {
        let db = TestDb::in_memory();
        db.execute("CREATE TABLE t (x INTEGER)", &[]).unwrap();
        let result: Result<(), ApiError> = in_transaction(&db, |tx| {
            tx.execute("INSERT INTO t VALUES (1)", &[])?;
            Err(ApiError::bad_request("no"))
        });
        assert!(result.is_err());
        let rows = db.execute("SELECT COUNT(*) FROM t", &[]).unwrap();
        assert_eq!(rows.first().unwrap().int(0), 0);
    }

    #[test]
    fn a_successful_transaction_commits() {
        let db = TestDb::in_memory();
        db.execute("CREATE TABLE t (x INTEGER)", &[]).unwrap();
        in_transaction(&db, |tx| -> Result<(), ApiError> {
            tx.execute("INSERT INTO t VALUES (?)", &[Value::Integer(7)])?;
            Ok(())
        })
        .unwrap();
        let rows = db.execute("SELECT x FROM t", &[]).unwrap();
        assert_eq!(rows.first().unwrap().int(0), 7);
    }
}
