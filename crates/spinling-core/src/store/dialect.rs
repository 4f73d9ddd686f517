//! The few things SQLite and PostgreSQL say differently, asked of the backend's `Dialect`
//! where the domain's SQL meets them (the rest is written in the subset both speak).

/// Which SQL a backend speaks where SQLite and PostgreSQL differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Dialect {
    /// SQLite: Spin's local files, libSQL, rusqlite in tests.
    #[default]
    Sqlite,
    PostgreSQL,
}

impl Dialect {
    /// The column that orders a table's rows as they were inserted: SQLite's implicit `rowid`;
    /// on PostgreSQL, the identity column `seq` every listed table has.
    pub fn insertion_order(self) -> &'static str {
        match self {
            Dialect::Sqlite => "rowid",
            Dialect::PostgreSQL => "seq",
        }
    }

    /// The text of the top-level `key` of the JSON object in the TEXT column `column` (NULL
    /// when there is none).
    pub fn json_text(self, column: &str, key: &str) -> String {
        match self {
            Dialect::Sqlite => format!("CAST(json_extract({column}, '$.{key}') AS TEXT)"),
            Dialect::PostgreSQL => format!("(CAST({column} AS jsonb) ->> '{key}')"),
        }
    }

    /// The size in bytes of the TEXT column `column` (NULL when it is).
    pub fn byte_length(self, column: &str) -> String {
        match self {
            Dialect::Sqlite => format!("length(CAST({column} AS BLOB))"),
            Dialect::PostgreSQL => format!("octet_length({column})"),
        }
    }
}
