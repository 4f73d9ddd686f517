//! The schema, created and migrated by the app itself: `spin up` on an empty directory just
//! works, and an instance that finds an older schema brings it up to date.
//!
//! Migrations are numbered `.sql` files under `migrations/`, included at build time and
//! append-only; each migration runs with its version bump in one `BEGIN IMMEDIATE`
//! transaction, so two instances racing on a fresh database apply it once (and a statement
//! that is not idempotent, such as `ALTER TABLE … ADD COLUMN`, runs exactly once). The hot path costs one
//! `PRAGMA user_version` read for a write, and nothing for a read (see `SelfMigrating`).

use crate::store::db::{in_transaction, Database, DbError, DbErrorKind};

/// One numbered step of the schema: a file `migrations/NNNN_name.sql` whose number is
/// its version.
pub struct Migration {
    pub version: i64,
    /// The file's SQL: statements each ending with `;` at the end of a line (a trigger's
    /// with `END;`), `--` comments on lines of their own.
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

pub const MIGRATIONS: &[Migration] = &[
    migration!(1, "0001_schema.sql"),
    migration!(2, "0002_executions.sql"),
    migration!(3, "0003_version_seq_trigger.sql"),
    migration!(4, "0004_execution_timeout.sql"),
    migration!(5, "0005_webhooks.sql"),
    migration!(6, "0006_jobs.sql"),
    migration!(7, "0007_execution_output.sql"),
    migration!(8, "0008_alias_routing.sql"),
    migration!(9, "0009_package_writes.sql"),
    migration!(10, "0010_execution_count_triggers.sql"),
    migration!(11, "0011_package_digest_kind.sql"),
    migration!(12, "0012_alias_history_and_rollouts.sql"),
];

impl Migration {
    /// The statements of the file, one per `execute` (Spin's SQLite runs one at a time).
    pub fn statements(&self) -> Vec<String> {
        let mut statements = Vec::new();
        let mut current = String::new();
        for line in self.sql.lines() {
            let trimmed = line.trim();
            if trimmed.is_empty() || trimmed.starts_with("--") {
                continue;
            }
            current.push_str(line);
            current.push('\n');
            let in_trigger = current
                .trim_start()
                .to_ascii_uppercase()
                .starts_with("CREATE TRIGGER");
            let ends = match in_trigger {
                true => trimmed.eq_ignore_ascii_case("END;"),
                false => trimmed.ends_with(';'),
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

fn schema_version(db: &dyn Database) -> Result<i64, DbError> {
    Ok(db
        .execute("PRAGMA user_version", &[])?
        .first()
        .map_or(0, |r| r.int(0)))
}

/// Brings the schema up to the newest migration. Cheap when it is already there.
pub fn migrate(db: &dyn Database) -> Result<(), DbError> {
    migrate_to(db, MIGRATIONS)
}

pub fn migrate_to(db: &dyn Database, migrations: &[Migration]) -> Result<(), DbError> {
    let newest = migrations.last().map_or(0, |m| m.version);
    if schema_version(db)? >= newest {
        return Ok(());
    }
    // Readers never wait for writers in WAL mode; a backend that cannot do it ignores this.
    let _ = db.execute("PRAGMA journal_mode=WAL", &[]);
    in_transaction(db, |tx| {
        let current = schema_version(tx)?;
        for migration in migrations.iter().filter(|m| m.version > current) {
            for statement in migration.statements() {
                tx.execute(&statement, &[])?;
            }
            tx.execute(&format!("PRAGMA user_version = {}", migration.version), &[])?;
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
    fn execute(
        &self,
        sql: &str,
        params: &[crate::store::db::Value],
    ) -> Result<crate::store::db::Rows, DbError> {
        match self.0.execute(sql, params) {
            Err(e) if e.kind == DbErrorKind::MissingSchema => {
                migrate(self.0)?;
                self.0.execute(sql, params)
            }
            other => other,
        }
    }
    fn reconnect(&self) {
        self.0.reconnect();
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
            MIGRATIONS.last().unwrap().version
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
            MIGRATIONS.last().unwrap().version
        );
    }

    #[test]
    fn other_errors_are_not_retried() {
        let db = TestDb::in_memory();
        assert!(SelfMigrating(&db).execute("SELEKT 1", &[]).is_err());
        assert_eq!(schema_version(&db).unwrap(), 0);
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
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        files.sort();
        assert_eq!(files.len(), MIGRATIONS.len(), "{files:?}");
        for (file, migration) in files.iter().zip(MIGRATIONS) {
            assert_eq!(
                file[..4].parse::<i64>().unwrap(),
                migration.version,
                "{file}"
            );
            assert!(file.ends_with(".sql"), "{file}");
            assert!(!migration.statements().is_empty(), "{file}");
        }
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
