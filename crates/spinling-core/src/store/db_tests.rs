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

/// A local SQLite connection that keeps what it is asked to run before its next statement
/// for then, as Spin's adapter does; it records what it is sent.
#[derive(Default)]
struct LocalDb {
    sent: std::cell::RefCell<Vec<String>>,
    before_next: std::cell::RefCell<Option<String>>,
}

impl Database for LocalDb {
    fn execute(&self, sql: &str, _params: &[Value]) -> Result<Rows, DbError> {
        let mut sent = self.sent.borrow_mut();
        sent.extend(self.before_next.take());
        sent.push(sql.to_string());
        Ok(Rows::default())
    }
    fn execute_before_next(&self, setting: &str) {
        *self.before_next.borrow_mut() = Some(setting.to_string());
    }
}

#[test]
fn a_write_with_short_waits_puts_the_busy_timeout_back_only_before_a_later_statement() {
    let db = LocalDb::default();
    with_short_busy_waits(&db, || db.execute("INSERT", &[])).unwrap();
    assert_eq!(*db.sent.borrow(), ["PRAGMA busy_timeout = 0", "INSERT"]);
    db.execute("SELECT", &[]).unwrap();
    assert_eq!(
        *db.sent.borrow(),
        [
            "PRAGMA busy_timeout = 0",
            "INSERT",
            "PRAGMA busy_timeout = 5000",
            "SELECT"
        ]
    );
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

#[test]
fn a_postgres_error_passed_as_text_is_classified_by_its_sqlstate() {
    let text = r#"Error { kind: Db, cause: Some(DbError { severity: "ERROR", parsed_severity: Some(Error), code: SqlState(E23505), message: "duplicate key value violates unique constraint \"function_versions_function_id_version_number_key\"", detail: Some("Key (function_id, version_number)=(f1, 2) already exists."), hint: None, position: None, where_: None, schema: Some("public"), table: Some("function_versions"), column: None, datatype: None, constraint: Some("function_versions_function_id_version_number_key"), file: Some("nbtinsert.c"), line: Some(666), routine: Some("_bt_check_unique") }) }"#;
    let e = DbError::from_postgres_text(text.to_string());
    assert_eq!(
        e.unique_columns(),
        Some("function_versions.function_id, function_versions.version_number")
    );
    assert!(DbError::from_postgres_text("Error { code: SqlState(E40001) }".into()).is_busy());
    assert_eq!(
        DbError::from_postgres_text("connection closed".into()).kind,
        DbErrorKind::Other
    );
}
