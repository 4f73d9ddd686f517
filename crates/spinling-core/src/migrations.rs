//! The schema, created and migrated by the app itself: `spin up` on an empty directory just
//! works, and an instance that finds an older schema brings it up to date.
//!
//! Migrations are numbered and append-only; each statement is idempotent (`IF NOT EXISTS`)
//! and each migration runs with its version bump in one `BEGIN IMMEDIATE` transaction, so
//! two instances racing on a fresh database apply it once. The hot path costs one
//! `PRAGMA user_version` read for a write, and nothing for a read (see `SelfMigrating`).

use crate::db::{in_transaction, Database, DbError};

pub struct Migration {
    pub version: i64,
    pub statements: &'static [&'static str],
}

pub const MIGRATIONS: &[Migration] = &[
    Migration {
    version: 1,
    statements: &[
        "CREATE TABLE IF NOT EXISTS runtimes (
            id TEXT PRIMARY KEY,
            name TEXT,
            description TEXT,
            image TEXT NOT NULL,
            status TEXT NOT NULL,
            is_public INTEGER NOT NULL DEFAULT 1,
            trusted INTEGER NOT NULL DEFAULT 1,
            project_id TEXT NOT NULL,
            created_at TEXT NOT NULL,
            updated_at TEXT
        )",
        // Package bytes, content-addressed by SHA-256 and split into chunks no larger than a
        // Spin SQLite BLOB is guaranteed to hold. A package row exists only while a function
        // or a version references its digest (see `packages::collect_garbage`).
        "CREATE TABLE IF NOT EXISTS packages (
            digest TEXT PRIMARY KEY,
            size INTEGER NOT NULL,
            md5 TEXT NOT NULL,
            chunk_count INTEGER NOT NULL,
            created_at TEXT NOT NULL
        )",
        "CREATE TABLE IF NOT EXISTS package_chunks (
            digest TEXT NOT NULL,
            seq INTEGER NOT NULL,
            data BLOB NOT NULL,
            PRIMARY KEY (digest, seq)
        )",
        // `version_seq` is the highest version number ever given out, so numbers are never
        // reused; the `latest_version` shown to clients is the newest existing version.
        "CREATE TABLE IF NOT EXISTS functions (
            id TEXT PRIMARY KEY,
            name TEXT,
            description TEXT,
            runtime_id TEXT,
            cpu INTEGER NOT NULL,
            memory_size INTEGER NOT NULL,
            timeout INTEGER NOT NULL,
            code TEXT NOT NULL,
            entry TEXT,
            count INTEGER NOT NULL DEFAULT 0,
            version_seq INTEGER NOT NULL DEFAULT 0,
            package_digest TEXT,
            project_id TEXT NOT NULL,
            created_at TEXT NOT NULL,
            updated_at TEXT
        )",
        "CREATE INDEX IF NOT EXISTS functions_by_project ON functions (project_id, created_at)",
        "CREATE INDEX IF NOT EXISTS functions_by_runtime ON functions (runtime_id)",
        "CREATE INDEX IF NOT EXISTS functions_by_package ON functions (package_digest)",
        // A version snapshots the code and the settings it runs with.
        "CREATE TABLE IF NOT EXISTS function_versions (
            id TEXT PRIMARY KEY,
            function_id TEXT NOT NULL REFERENCES functions (id) ON DELETE CASCADE,
            version_number INTEGER NOT NULL,
            description TEXT,
            count INTEGER NOT NULL DEFAULT 0,
            code TEXT NOT NULL,
            package_digest TEXT NOT NULL,
            entry TEXT,
            cpu INTEGER NOT NULL,
            memory_size INTEGER NOT NULL,
            timeout INTEGER NOT NULL,
            project_id TEXT NOT NULL,
            created_at TEXT NOT NULL,
            updated_at TEXT,
            UNIQUE (function_id, version_number)
        )",
        "CREATE INDEX IF NOT EXISTS function_versions_by_package ON function_versions (package_digest)",
        "CREATE TABLE IF NOT EXISTS function_aliases (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            description TEXT,
            function_id TEXT NOT NULL,
            function_version INTEGER NOT NULL DEFAULT 0,
            project_id TEXT NOT NULL,
            created_at TEXT NOT NULL,
            updated_at TEXT,
            UNIQUE (project_id, name),
            UNIQUE (project_id, function_id, function_version)
        )",
        "CREATE INDEX IF NOT EXISTS function_aliases_by_function ON function_aliases (function_id, function_version)",
    ],
},
    Migration {
        version: 2,
        statements: &[
            // `function_id` is not a foreign key: executions outlive their function, as in
            // Qinling.
            "CREATE TABLE IF NOT EXISTS executions (
                id TEXT PRIMARY KEY,
                function_id TEXT NOT NULL,
                function_version INTEGER NOT NULL DEFAULT 0,
                function_alias TEXT,
                description TEXT,
                status TEXT NOT NULL,
                sync INTEGER NOT NULL DEFAULT 1,
                input TEXT,
                result TEXT,
                logs TEXT NOT NULL DEFAULT '',
                project_id TEXT NOT NULL,
                created_at TEXT NOT NULL,
                updated_at TEXT
            )",
            "CREATE INDEX IF NOT EXISTS executions_by_project ON executions (project_id, created_at)",
        ],
    },
    Migration {
        version: 3,
        statements: &[
            // A version is published by one INSERT; the function's counter follows it in the
            // same statement, so the write lock is held for one statement only.
            "CREATE TRIGGER IF NOT EXISTS function_versions_advance_seq
             AFTER INSERT ON function_versions
             BEGIN
                 UPDATE functions SET version_seq = NEW.version_number
                 WHERE id = NEW.function_id AND version_seq < NEW.version_number;
             END",
        ],
    },
    Migration {
        version: 4,
        statements: &[
            // The run's timeout, so an execution whose runtime never answered can be settled
            // as failed once it is overdue (`executions::settle_stale`). Not idempotent on its
            // own: it runs once, in the transaction that bumps `user_version`.
            "ALTER TABLE executions ADD COLUMN timeout INTEGER",
        ],
    },
];

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
            for statement in migration.statements {
                tx.execute(statement, &[])?;
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
    fn execute(&self, sql: &str, params: &[crate::db::Value]) -> Result<crate::db::Rows, DbError> {
        match self.0.execute(sql, params) {
            Err(e) if e.0.contains("no such table") || e.0.contains("no such column") => {
                migrate(self.0)?;
                self.0.execute(sql, params)
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::testing::TestDb;

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
            statements: &["CREATE TABLE a (x INTEGER)"],
        }];
        const BOTH: &[Migration] = &[
            Migration {
                version: 1,
                // Would fail if it ran again: no IF NOT EXISTS.
                statements: &["CREATE TABLE a (x INTEGER)"],
            },
            Migration {
                version: 2,
                statements: &["CREATE TABLE b (x INTEGER)"],
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
}
