//! The schema, created and migrated by the app itself: `spin up` on an empty directory just
//! works, and an instance that finds an older schema brings it up to date.
//!
//! Migrations are numbered `.sql` files under `migrations/sqlite/` and `migrations/postgres/`
//! (each database has its own), included at build time and append-only; each migration runs
//! with its version bump in one write transaction, so two instances racing on a fresh database
//! apply it once (and a statement that is not idempotent, such as `ALTER TABLE … ADD COLUMN`,
//! runs exactly once). The hot path costs one read of the schema's version for a write
//! (SQLite's `PRAGMA user_version`; PostgreSQL's table `spinling_schema`), and nothing for a
//! read (see `SelfMigrating`).

use crate::store::db::{in_transaction, Database, DbError, DbErrorKind, Dialect, Rows, Value};

/// One numbered step of the schema: a file `migrations/NNNN_name.sql` whose number is
/// its version.
pub struct Migration {
    pub version: i64,
    /// The file's SQL: statements each ending with `;` at the end of a line (an SQLite
    /// trigger's with `END;`, a PostgreSQL function's after its closing `$$`), `--` comments on
    /// lines of their own.
    pub sql: &'static str,
}

/// A migration from its file, included at build time.
macro_rules! migration {
    ($version:literal, $file:literal) => {
        Migration {
            version: $version,
            sql: include_str!(concat!("../../migrations/", $file)),
        }
    };
}

pub const SQLITE_MIGRATIONS: &[Migration] = &[
    migration!(1, "sqlite/0001_schema.sql"),
    migration!(2, "sqlite/0002_executions.sql"),
    migration!(3, "sqlite/0003_version_seq_trigger.sql"),
    migration!(4, "sqlite/0004_execution_timeout.sql"),
    migration!(5, "sqlite/0005_webhooks.sql"),
    migration!(6, "sqlite/0006_jobs.sql"),
    migration!(7, "sqlite/0007_execution_output.sql"),
    migration!(8, "sqlite/0008_alias_routing.sql"),
    migration!(9, "sqlite/0009_package_writes.sql"),
    migration!(10, "sqlite/0010_execution_count_triggers.sql"),
    migration!(11, "sqlite/0011_package_digest_kind.sql"),
    migration!(12, "sqlite/0012_alias_history_and_rollouts.sql"),
];

pub const POSTGRES_MIGRATIONS: &[Migration] = &[migration!(1, "postgres/0001_schema.sql")];

/// The migrations of the database `dialect` speaks.
pub fn migrations_of(dialect: Dialect) -> &'static [Migration] {
    match dialect {
        Dialect::Sqlite => SQLITE_MIGRATIONS,
        Dialect::PostgreSQL => POSTGRES_MIGRATIONS,
    }
}

impl Migration {
    /// The statements of the file, one per `execute` (Spin's SQLite runs one at a time).
    pub fn statements(&self) -> Vec<String> {
        let mut statements = Vec::new();
        let mut current = String::new();
        let mut in_dollar_quotes = false;
        for line in self.sql.lines() {
            let trimmed = line.trim();
            if current.is_empty() && (trimmed.is_empty() || trimmed.starts_with("--")) {
                continue;
            }
            current.push_str(line);
            current.push('\n');
            if line.matches("$$").count() % 2 == 1 {
                in_dollar_quotes = !in_dollar_quotes;
            }
            let in_trigger = current
                .trim_start()
                .to_ascii_uppercase()
                .starts_with("CREATE TRIGGER");
            let ends = match in_trigger {
                true => trimmed.eq_ignore_ascii_case("END;"),
                false => !in_dollar_quotes && trimmed.ends_with(';'),
            };
            if ends {
                let statement = current.trim().trim_end_matches(';').trim_end().to_string();
                statements.push(statement);
                current.clear();
            }
        }
        assert!(
            current.trim().is_empty(),
            "migration {} ends inside a statement: {current}",
            self.version
        );
        statements
    }
}

/// The newest migration applied (0 on an empty database).
fn schema_version(db: &dyn Database) -> Result<i64, DbError> {
    let read = match db.dialect() {
        Dialect::Sqlite => db.execute("PRAGMA user_version", &[]),
        Dialect::PostgreSQL => {
            db.execute("SELECT COALESCE(MAX(version), 0) FROM spinling_schema", &[])
        }
    };
    match read {
        Ok(rows) => Ok(rows.first().map_or(0, |r| r.int(0))),
        Err(e) if e.kind == DbErrorKind::MissingSchema => Ok(0),
        Err(e) => Err(e),
    }
}

/// Brings the schema up to the newest migration. Cheap when it is already there.
pub fn migrate(db: &dyn Database) -> Result<(), DbError> {
    migrate_to(db, migrations_of(db.dialect()))
}

/// [`migrate`], reading `look` (the columns of one row, with `params`) in the statement that
/// checks the schema's version: a request that wants that row anyway saves a statement. The
/// row when the schema was current; none when it was not (it is now) or when the statement
/// failed (a table of `look` is missing), and the caller reads the row itself.
pub fn migrate_looking(
    db: &dyn Database,
    look: &str,
    params: &[Value],
) -> Result<Option<Rows>, DbError> {
    let newest = migrations_of(db.dialect()).last().map_or(0, |m| m.version);
    let sql = match db.dialect() {
        Dialect::Sqlite => format!("SELECT user_version AS schema_version, {look} FROM pragma_user_version"),
        Dialect::PostgreSQL => format!(
            "SELECT (SELECT COALESCE(MAX(version), 0) FROM spinling_schema) AS schema_version, {look}"
        ),
    };
    if let Ok(rows) = db.execute(&sql, params) {
        if rows
            .first()
            .is_some_and(|r| r.int("schema_version") >= newest)
        {
            return Ok(Some(rows));
        }
    }
    migrate(db)?;
    Ok(None)
}

pub fn migrate_to(db: &dyn Database, migrations: &[Migration]) -> Result<(), DbError> {
    let newest = migrations.last().map_or(0, |m| m.version);
    if schema_version(db)? >= newest {
        return Ok(());
    }
    if db.dialect() == Dialect::Sqlite {
        // Readers never wait for writers in WAL mode; a backend that cannot do it ignores this.
        let _ = db.execute("PRAGMA journal_mode=WAL", &[]);
    }
    in_transaction(db, |tx| {
        if tx.dialect() == Dialect::PostgreSQL {
            // Inside the transaction, which holds the write lock: a failed statement would
            // abort it, so the version's table is made before it is read.
            tx.execute(
                "CREATE TABLE IF NOT EXISTS spinling_schema (version BIGINT NOT NULL)",
                &[],
            )?;
        }
        let current = schema_version(tx)?;
        for migration in migrations.iter().filter(|m| m.version > current) {
            for statement in migration.statements() {
                tx.execute(&statement, &[])?;
            }
            match tx.dialect() {
                Dialect::Sqlite => {
                    tx.execute(&format!("PRAGMA user_version = {}", migration.version), &[])?;
                }
                Dialect::PostgreSQL => {
                    tx.execute("DELETE FROM spinling_schema", &[])?;
                    tx.execute(
                        "INSERT INTO spinling_schema (version) VALUES (?)",
                        &[migration.version.into()],
                    )?;
                }
            }
        }
        Ok(())
    })
}

/// A database that brings its schema up to date when a statement finds it missing or old.
///
/// Reads go straight to the database, so the hot path pays nothing for migrations; the first
/// statement that meets a missing table or column migrates and runs again. This holds because
/// migrations only add (tables, columns with defaults): a statement that succeeds on an older
/// schema means the same there. Writes call `migrate` first anyway (see the adapter).
pub struct SelfMigrating<'a>(pub &'a dyn Database);

impl Database for SelfMigrating<'_> {
    fn execute(&self, sql: &str, params: &[Value]) -> Result<Rows, DbError> {
        match self.0.execute(sql, params) {
            Err(e) if e.kind == DbErrorKind::MissingSchema => {
                migrate(self.0)?;
                self.0.execute(sql, params)
            }
            other => other,
        }
    }
    fn execute_before_next(&self, setting: &str) {
        self.0.execute_before_next(setting);
    }
    fn reconnect(&self) {
        self.0.reconnect();
    }
    fn dialect(&self) -> Dialect {
        self.0.dialect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::db::testing::TestDb;

    #[test]
    fn an_empty_database_gets_the_whole_schema() {
        let db = TestDb::in_memory();
        migrate(&db).unwrap();
        assert_eq!(
            schema_version(&db).unwrap(),
            SQLITE_MIGRATIONS.last().unwrap().version
        );
        db.execute("SELECT id FROM function_versions", &[]).unwrap();
    }

    #[test]
    fn a_read_on_an_empty_database_migrates_it_and_succeeds() {
        let db = TestDb::in_memory();
        let rows = SelfMigrating(&db)
            .execute("SELECT COUNT(*) FROM functions", &[])
            .unwrap();
        assert_eq!(rows.first().unwrap().int(0), 0);
        assert_eq!(
            schema_version(&db).unwrap(),
            SQLITE_MIGRATIONS.last().unwrap().version
        );
    }

    #[test]
    fn other_errors_are_not_retried() {
        let db = TestDb::in_memory();
        assert!(SelfMigrating(&db).execute("SELEKT 1", &[]).is_err());
        assert_eq!(schema_version(&db).unwrap(), 0);
    }

    /// Counts the statements sent through it.
    struct Counting<'a>(&'a dyn Database, std::cell::Cell<usize>);

    impl Database for Counting<'_> {
        fn execute(&self, sql: &str, params: &[Value]) -> Result<Rows, DbError> {
            self.1.set(self.1.get() + 1);
            self.0.execute(sql, params)
        }
    }

    #[test]
    fn a_look_at_a_current_schema_is_read_by_the_statement_that_checks_its_version() {
        let db = TestDb::in_memory();
        migrate(&db).unwrap();
        let counting = Counting(&db, Default::default());
        let look = migrate_looking(&counting, "? AS answer", &[42.into()]).unwrap();
        assert_eq!(look.unwrap().first().unwrap().int("answer"), 42);
        assert_eq!(counting.1.get(), 1);
    }

    #[test]
    fn a_look_at_an_empty_database_is_left_to_the_caller_once_the_schema_is_made() {
        let db = TestDb::in_memory();
        assert!(migrate_looking(&db, "1 AS one", &[]).unwrap().is_none());
        assert_eq!(
            schema_version(&db).unwrap(),
            SQLITE_MIGRATIONS.last().unwrap().version
        );
    }

    #[test]
    fn a_look_that_fails_is_left_to_the_caller_and_fails_nothing_else() {
        let db = TestDb::in_memory();
        migrate(&db).unwrap();
        let look = migrate_looking(&db, "(SELECT 1 FROM nowhere) AS x", &[]).unwrap();
        assert!(look.is_none());
    }

    #[test]
    fn migrating_twice_is_harmless() {
        let db = TestDb::in_memory();
        migrate(&db).unwrap();
        migrate(&db).unwrap();
    }

    #[test]
    fn only_newer_migrations_run() {
        let db = TestDb::in_memory();
        const FIRST: &[Migration] = &[Migration {
            version: 1,
            sql: "CREATE TABLE a (x INTEGER);",
        }];
        const BOTH: &[Migration] = &[
            Migration {
                version: 1,
                // Would fail if it ran again: no IF NOT EXISTS.
                sql: "CREATE TABLE a (x INTEGER);",
            },
            Migration {
                version: 2,
                sql: "CREATE TABLE b (x INTEGER);",
            },
        ];
        migrate_to(&db, FIRST).unwrap();
        migrate_to(&db, BOTH).unwrap();
        assert_eq!(schema_version(&db).unwrap(), 2);
    }

    #[test]
    fn two_connections_racing_on_a_fresh_file_both_succeed() {
        let dir = std::env::temp_dir().join(format!("spinling-mig-{}", crate::id::new_id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("db.sqlite");
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let path = path.clone();
                std::thread::spawn(move || {
                    let db = TestDb::open(&path);
                    db.0.busy_timeout(std::time::Duration::from_secs(5))
                        .unwrap();
                    migrate(&db)
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap().unwrap();
        }
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn every_migration_file_is_listed_under_its_number() {
        for (folder, migrations) in [
            ("sqlite", SQLITE_MIGRATIONS),
            ("postgres", POSTGRES_MIGRATIONS),
        ] {
            let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("migrations")
                .join(folder);
            let mut files: Vec<String> = std::fs::read_dir(dir)
                .unwrap()
                .map(|entry| entry.unwrap().file_name().into_string().unwrap())
                .collect();
            files.sort();
            assert_eq!(files.len(), migrations.len(), "{files:?}");
            for (file, migration) in files.iter().zip(migrations) {
                assert_eq!(
                    file[..4].parse::<i64>().unwrap(),
                    migration.version,
                    "{file}"
                );
                assert!(file.ends_with(".sql"), "{file}");
                assert!(!migration.statements().is_empty(), "{file}");
            }
        }
    }

    #[test]
    fn a_postgres_function_body_stays_whole() {
        let statements = POSTGRES_MIGRATIONS[0].statements();
        let function = statements
            .iter()
            .find(|s| s.contains("FUNCTION function_versions_advance_seq()"))
            .unwrap();
        assert!(function.trim_end().ends_with("$$"), "{function}");
        assert!(function.contains("RETURN NULL;"), "{function}");
        assert!(statements
            .iter()
            .any(|s| s.starts_with("CREATE OR REPLACE TRIGGER function_versions_advance_seq")));
    }

    #[test]
    fn a_file_splits_into_its_statements_and_a_trigger_stays_whole() {
        let migration = Migration {
            version: 9,
            sql: "-- a comment; not a statement\nCREATE TABLE t (x INTEGER);\n\nCREATE TRIGGER g AFTER INSERT ON t\nBEGIN\n    UPDATE t SET x = 1;\n    UPDATE t SET x = 2;\nEND;\n",
        };
        assert_eq!(
            migration.statements(),
            [
                "CREATE TABLE t (x INTEGER)",
                "CREATE TRIGGER g AFTER INSERT ON t\nBEGIN\n    UPDATE t SET x = 1;\n    UPDATE t SET x = 2;\nEND",
            ]
        );
    }
}
