//! The storage seam. The domain speaks SQL through `Database`, a trait as small as Spin's
//! SQLite interface (one statement per call), so the same code runs on Spin's SQLite, on a
//! libSQL backend, and natively on rusqlite in unit tests.

use crate::error::ApiError;
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
            DbErrorKind::Busy | DbErrorKind::TransactionLost => ApiError::new(
                crate::error::ErrorKind::ServiceUnavailable,
                "The database is busy; try again later.",
            )
            .caused_by(e),
            _ => ApiError::internal("Internal server error.").caused_by(e),
        }
    }
}

pub trait Database {
    /// Runs one SQL statement with positional (`?`) parameters.
    fn execute(&self, sql: &str, params: &[Value]) -> Result<Rows, DbError>;

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
/// The busy timeout hosts give their connections (rusqlite's default), restored afterwards.
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
    let local = db.execute("PRAGMA busy_timeout = 0", &[]).is_ok();
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
        let _ = db.execute(
            &format!("PRAGMA busy_timeout = {HOST_BUSY_TIMEOUT_MS}"),
            &[],
        );
    }
    outcome
}

/// How many times a transaction the server dropped (`DbErrorKind::TransactionLost`) is run
/// again, each time on a fresh connection, before the client gets a 503.
const LOST_TRANSACTION_RETRIES: u32 = 4;

/// Runs `work` inside `BEGIN IMMEDIATE` … `COMMIT`: all of it or none of it. Taking the write
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

impl TransactionConnection<'_> {
    fn run<T, E: From<DbError>>(
        &self,
        work: &mut impl FnMut(&dyn Database) -> Result<T, E>,
    ) -> Result<T, E> {
        let mut attempt = 0;
        loop {
            match self.execute("BEGIN IMMEDIATE", &[]) {
                Ok(_) => break,
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
mod tests {
    use super::testing::TestDb;
    use super::*;

    #[test]
    fn a_row_is_read_by_the_names_its_statement_gives_its_columns() {
        let db = TestDb::in_memory();
        let rows = db
            .execute("SELECT 'a' AS name, 7 AS n, NULL AS absent", &[])
            .unwrap();
        let row = rows.first().unwrap();
        assert_eq!(row.text("name"), "a");
        assert_eq!(row.int("n"), 7);
        assert_eq!(row.opt_text("absent"), None);
        assert!(row.has("n") && !row.has("m"));
        assert_eq!(row.int(1), 7, "a position still reads a one-column answer");
    }

    #[test]
    #[should_panic(expected = "no column \"nmae\" in this row")]
    fn reading_a_column_the_statement_did_not_return_is_a_clear_panic() {
        let db = TestDb::in_memory();
        let rows = db.execute("SELECT 'a' AS name", &[]).unwrap();
        rows.first().unwrap().text("nmae");
    }

    /// A remote database (like libSQL's client, it refuses `PRAGMA busy_timeout`) that answers
    /// busy `busy_answers` times, then accepts; it counts the statements it is sent.
    struct BusyRemoteDb {
        busy_answers: usize,
        sent: std::cell::Cell<usize>,
    }

    impl Database for BusyRemoteDb {
        fn execute(&self, sql: &str, _params: &[Value]) -> Result<Rows, DbError> {
            if sql.starts_with("PRAGMA") {
                return Err(DbError::from_sqlite_message(
                    "statement not allowed: PRAGMA",
                ));
            }
            self.sent.set(self.sent.get() + 1);
            if self.sent.get() <= self.busy_answers {
                return Err(DbError::from_sqlite_message(
                    "Hrana: cursor error (error code: SQLITE_BUSY) database is locked",
                ));
            }
            Ok(Rows::default())
        }
    }

    #[test]
    fn a_busy_remote_database_is_asked_again_at_a_round_trips_pace() {
        let db = BusyRemoteDb {
            busy_answers: 5,
            sent: Default::default(),
        };
        let started = std::time::Instant::now();
        with_short_busy_waits(&db, || db.execute("INSERT", &[])).unwrap();
        assert_eq!(db.sent.get(), 6);
        // 1 + 2 + 4 + 8 + 16 ms at least; the local pace would have taken under 5 ms.
        assert!(started.elapsed() >= std::time::Duration::from_millis(31));
    }

    #[test]
    fn a_remote_database_that_stays_busy_is_given_up_on_after_a_bounded_number_of_tries() {
        let db = BusyRemoteDb {
            busy_answers: usize::MAX,
            sent: Default::default(),
        };
        let outcome = with_short_busy_waits(&db, || db.execute("INSERT", &[]));
        assert!(outcome.unwrap_err().is_busy());
        assert_eq!(db.sent.get(), REMOTE_BUSY_TRIES as usize + 1);
    }

    #[test]
    fn sqlite_failures_are_classified_by_what_they_mean() {
        let kind = |m: &str| DbError::from_sqlite_message(m).kind;
        assert_eq!(kind("database is locked"), DbErrorKind::Busy);
        assert_eq!(
            kind("UNIQUE constraint failed: function_aliases.project_id, function_aliases.name"),
            DbErrorKind::Unique {
                columns: "function_aliases.project_id, function_aliases.name".into()
            }
        );
        assert_eq!(kind("no such table: functions"), DbErrorKind::MissingSchema);
        assert_eq!(kind("no such column: timeout"), DbErrorKind::MissingSchema);
        assert_eq!(
            kind("table executions has no column named timeout"),
            DbErrorKind::MissingSchema
        );
        assert_eq!(kind("disk I/O error"), DbErrorKind::Other);
    }

    #[test]
    fn a_transaction_libsql_dropped_is_classified_as_lost() {
        let kind = |m: &str| DbError::from_sqlite_message(m).kind;
        for message in [
            r#"Hrana: `api error: `status=400 Bad Request, body={"message":"Transaction timed-out","code":"TRANSACTION_TIMEOUT"}``"#,
            r#"Hrana: `api error: `status=400 Bad Request, body={"message":"The stream has expired due to inactivity","code":"STREAM_EXPIRED"}``"#,
            "cannot commit - no transaction is active",
            "Hrana: `cursor error: `error at step 0: (error code: SQLITE_INTERRUPT) `SQLite error: interrupted```",
        ] {
            assert_eq!(kind(message), DbErrorKind::TransactionLost, "{message}");
        }
    }

    #[test]
    fn a_lost_transaction_that_keeps_failing_is_a_503_not_a_500() {
        let e = ApiError::from(DbError::from_sqlite_message("STREAM_EXPIRED"));
        assert_eq!(e.status(), 503);
        let e = ApiError::from(DbError::from_sqlite_message("disk I/O error"));
        assert_eq!(e.status(), 500);
    }

    /// A database that, like sqld, drops the open transaction at the statements numbered in
    /// `drop_at` (counted from 1 over its whole life) and answers them with `message`.
    struct DroppingDb {
        inner: TestDb,
        drop_at: Vec<usize>,
        message: &'static str,
        statements: std::cell::Cell<usize>,
        reconnects: std::cell::Cell<usize>,
    }

    impl DroppingDb {
        fn new(drop_at: &[usize], message: &'static str) -> DroppingDb {
            let inner = TestDb::in_memory();
            inner.execute("CREATE TABLE t (x INTEGER)", &[]).unwrap();
            DroppingDb {
                inner,
                drop_at: drop_at.to_vec(),
                message,
                statements: Default::default(),
                reconnects: Default::default(),
            }
        }
        fn rows(&self) -> Vec<i64> {
            let rows = self
                .inner
                .execute("SELECT x FROM t ORDER BY x", &[])
                .unwrap();
            rows.iter().map(|r| r.int(0)).collect()
        }
    }

    impl Database for DroppingDb {
        fn execute(&self, sql: &str, params: &[Value]) -> Result<Rows, DbError> {
            self.statements.set(self.statements.get() + 1);
            if self.drop_at.contains(&self.statements.get()) {
                let _ = self.inner.execute("ROLLBACK", &[]);
                return Err(DbError::from_sqlite_message(self.message));
            }
            self.inner.execute(sql, params)
        }
        fn reconnect(&self) {
            self.reconnects.set(self.reconnects.get() + 1);
        }
    }

    fn insert_two(tx: &dyn Database) -> Result<(), ApiError> {
        tx.execute("INSERT INTO t VALUES (1)", &[])?;
        tx.execute("INSERT INTO t VALUES (2)", &[])?;
        Ok(())
    }

    #[test]
    fn a_transaction_that_timed_out_runs_again_whole_on_a_fresh_connection() {
        // BEGIN, INSERT 1, then the second INSERT finds the transaction gone.
        let db = DroppingDb::new(&[3], "TRANSACTION_TIMEOUT");
        in_transaction(&db, insert_two).unwrap();
        assert_eq!(db.rows(), [1, 2]);
        assert_eq!(db.reconnects.get(), 1);
    }

    #[test]
    fn a_commit_that_finds_no_transaction_runs_the_transaction_again() {
        // BEGIN, INSERT, INSERT, then COMMIT after the server's rollback.
        let db = DroppingDb::new(&[4], "cannot commit - no transaction is active");
        in_transaction(&db, insert_two).unwrap();
        assert_eq!(db.rows(), [1, 2]);
    }

    #[test]
    fn after_a_lost_statement_nothing_more_of_the_try_reaches_the_database() {
        let db = DroppingDb::new(&[2], "STREAM_EXPIRED");
        let mut tries = 0;
        in_transaction(&db, |tx| -> Result<(), ApiError> {
            tries += 1;
            // A work that ignores a failure must not go on in autocommit.
            let _ = tx.execute("INSERT INTO t VALUES (1)", &[]);
            tx.execute("INSERT INTO t VALUES (2)", &[])?;
            Ok(())
        })
        .unwrap();
        assert_eq!(db.rows(), [1, 2], "only the second try's rows");
        assert_eq!(tries, 2);
    }

    #[test]
    fn a_transaction_lost_on_every_try_gives_up_with_a_503() {
        let every_begin: Vec<usize> = (0..=LOST_TRANSACTION_RETRIES as usize)
            .map(|n| 1 + 2 * n)
            .collect();
        let db = DroppingDb::new(&every_begin, "STREAM_EXPIRED");
        let e = in_transaction(&db, insert_two).unwrap_err();
        assert_eq!(e.status(), 503);
        assert!(db.rows().is_empty());
        assert_eq!(db.reconnects.get(), LOST_TRANSACTION_RETRIES as usize + 1);
    }

    #[test]
    fn a_failure_that_may_have_committed_is_not_retried() {
        let db = DroppingDb::new(&[4], "error sending request: connection reset by peer");
        let e = in_transaction(&db, insert_two).unwrap_err();
        assert_eq!(e.status(), 500);
        assert_eq!(db.reconnects.get(), 0);
    }

    #[test]
    fn a_unique_violation_from_sqlite_itself_is_classified_with_its_columns() {
        let db = TestDb::in_memory();
        db.execute("CREATE TABLE t (a TEXT, b TEXT, UNIQUE (a, b))", &[])
            .unwrap();
        db.execute("INSERT INTO t VALUES ('x', 'y')", &[]).unwrap();
        let e = db
            .execute("INSERT INTO t VALUES ('x', 'y')", &[])
            .unwrap_err();
        assert_eq!(e.unique_columns(), Some("t.a, t.b"));
        let e = db.execute("SELECT * FROM nowhere", &[]).unwrap_err();
        assert_eq!(e.kind, DbErrorKind::MissingSchema);
    }

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
