//! Backup and restore: every project's rows and package bytes as one portable archive, read
//! from a database of either kind and written into an empty one of either kind.
//!
//! # The archive (format version 1)
//!
//! A stream of lines, each one JSON object (its keys in any order), in this order:
//!
//! ```text
//! {"spinling_backup":1,"source":"sqlite","created_at":"2026-12-07T19:40:00Z"}
//! {"table":"runtimes","row":{"id":"…","name":"…",…}}            one per row, per table
//! {"package":{"digest":"…","digest_kind":"blake3","size":…,"md5":"…","chunk_count":…,"created_at":"…"}}
//! {"chunk":{"seq":0,"size":524288}}                             then exactly `size` raw
//! <524288 bytes>                                                bytes and a newline
//! {"end":{"rows":{"runtimes":1,…},"packages":…,"chunks":…,"sha256":"…"}}
//! ```
//!
//! Tables come in the order of [`TABLES`], each table's rows in the order they were inserted
//! (so lists and their paging come out the same), every column named, none of the database's
//! own (SQLite's `rowid`, PostgreSQL's `seq`: the target makes its own, in the same order).
//! Then every package: its row, then its bytes as chunks of at most [`MAX_CHUNK`] bytes, in
//! order. The end record counts what came before it and carries the SHA-256 of every byte
//! before it, so an archive cut short (no end record) or altered (another digest) is refused;
//! each package's bytes are checked against its own digest (BLAKE3 or SHA-256, as its
//! `digest_kind` says), MD5 and size as well.
//!
//! What is not exported: uploads and downloads in progress (`package_writes`), and the jobs
//! loop's lease (`scheduler_lease`): the target's own loop takes over.

mod export;
mod import;

pub use export::{Export, ExportPieces};
pub use import::{import, Imported};

/// The archive format this code writes and reads.
pub const FORMAT_VERSION: i64 = 1;

/// The largest chunk of package bytes in an archive: what a Spin SQLite BLOB always holds.
pub const MAX_CHUNK: usize = 1024 * 1024;

/// The longest line an archive may have: an execution's row (a 2 MiB result, a 1 MiB log,
/// a 1 MiB input, escaped) with room to spare. A longer one is refused, not read.
pub const MAX_LINE: usize = 32 * 1024 * 1024;

/// How a table's rows are ordered, in the archive and when read a page at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Order {
    /// As inserted (`Dialect::insertion_order`): what lists and paging follow.
    Inserted,
    /// By its primary key, for a table nothing lists (its order carries no meaning).
    Key(&'static [&'static str]),
}

/// One exported table: its name, its columns (all of them but the database's own), and how
/// many rows one read takes (fewer where a row can be megabytes).
pub(crate) struct Table {
    pub name: &'static str,
    pub columns: &'static [&'static str],
    pub order: Order,
    pub rows_per_read: i64,
}

/// The exported tables, in archive order. Executions come before the functions and versions
/// they ran: inserting an execution counts it in its function's or version's row (a trigger),
/// and the archive's rows already hold those counts, so at import the trigger finds nothing
/// to count. Versions come after functions, whose `version_seq` is already past them.
pub(crate) const TABLES: &[Table] = &[
    Table {
        name: "runtimes",
        columns: &[
            "id",
            "name",
            "description",
            "image",
            "status",
            "is_public",
            "trusted",
            "project_id",
            "created_at",
            "updated_at",
        ],
        order: Order::Inserted,
        rows_per_read: 100,
    },
    Table {
        name: "executions",
        columns: &[
            "id",
            "function_id",
            "function_version",
            "function_alias",
            "description",
            "status",
            "sync",
            "input",
            "result",
            "logs",
            "project_id",
            "created_at",
            "updated_at",
            "timeout",
            "output",
        ],
        order: Order::Inserted,
        rows_per_read: 4,
    },
    Table {
        name: "functions",
        columns: &[
            "id",
            "name",
            "description",
            "runtime_id",
            "cpu",
            "memory_size",
            "timeout",
            "code",
            "entry",
            "count",
            "version_seq",
            "package_digest",
            "project_id",
            "created_at",
            "updated_at",
        ],
        order: Order::Inserted,
        rows_per_read: 100,
    },
    Table {
        name: "function_versions",
        columns: &[
            "id",
            "function_id",
            "version_number",
            "description",
            "count",
            "code",
            "package_digest",
            "entry",
            "cpu",
            "memory_size",
            "timeout",
            "project_id",
            "created_at",
            "updated_at",
        ],
        order: Order::Inserted,
        rows_per_read: 100,
    },
    Table {
        name: "function_aliases",
        columns: &[
            "id",
            "name",
            "description",
            "function_id",
            "function_version",
            "project_id",
            "created_at",
            "updated_at",
        ],
        order: Order::Inserted,
        rows_per_read: 100,
    },
    Table {
        name: "function_alias_routes",
        columns: &["alias_id", "function_id", "function_version", "weight"],
        order: Order::Key(&["alias_id", "function_version"]),
        rows_per_read: 100,
    },
    Table {
        name: "alias_history",
        columns: &[
            "id",
            "alias_id",
            "alias_name",
            "project_id",
            "actor_project_id",
            "actor_user_id",
            "cause",
            "reason",
            "before",
            "after",
            "created_at",
        ],
        order: Order::Inserted,
        rows_per_read: 100,
    },
    Table {
        name: "alias_rollouts",
        columns: &[
            "id",
            "alias_id",
            "alias_name",
            "project_id",
            "function_id",
            "from_version",
            "to_version",
            "steps",
            "step_seconds",
            "max_failure_rate",
            "min_executions",
            "status",
            "step",
            "step_started_at",
            "revision",
            "reason",
            "created_at",
            "updated_at",
        ],
        order: Order::Inserted,
        rows_per_read: 100,
    },
    Table {
        name: "webhooks",
        columns: &[
            "id",
            "function_id",
            "function_version",
            "function_alias",
            "description",
            "project_id",
            "created_at",
            "updated_at",
        ],
        order: Order::Inserted,
        rows_per_read: 100,
    },
    Table {
        name: "jobs",
        columns: &[
            "id",
            "name",
            "pattern",
            "status",
            "first_execution_time",
            "next_execution_time",
            "count",
            "function_id",
            "function_version",
            "function_alias",
            "function_input",
            "project_id",
            "created_at",
            "updated_at",
        ],
        order: Order::Inserted,
        rows_per_read: 100,
    },
];

/// The `packages` table, after every table of [`TABLES`].
pub(crate) const PACKAGES: Table = Table {
    name: "packages",
    columns: &[
        "digest",
        "digest_kind",
        "size",
        "md5",
        "chunk_count",
        "created_at",
    ],
    order: Order::Key(&["digest"]),
    rows_per_read: 100,
};

/// Tables of the schema the archive holds no rows of: `package_chunks` (each package's bytes
/// follow its row), and what it leaves out on purpose (see the module's documentation).
#[cfg(test)]
pub(crate) const NOT_EXPORTED: &[&str] = &["package_writes", "scheduler_lease", "package_chunks"];

#[cfg(test)]
mod tests;
