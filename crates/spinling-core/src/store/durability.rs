//! How durably SQLite writes: every commit on disk before its answer (the default), or the
//! last few commits lost on power loss in exchange for speed.

use std::fmt;

/// SQLite's `synchronous` setting for writes (variable `sqlite_synchronous`, `full` or
/// `normal` in any case). Its `Display` is the pragma's value: `FULL` or `NORMAL`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SqliteSynchronous {
    /// Every commit is on disk before the answer.
    #[default]
    Full,
    /// In WAL mode, the last commits may be lost on power loss, never corrupted.
    Normal,
}

impl SqliteSynchronous {
    /// The variable's value, or the message that refuses it.
    pub fn parse(value: &str) -> Result<SqliteSynchronous, String> {
        match value.to_ascii_lowercase().as_str() {
            "full" => Ok(SqliteSynchronous::Full),
            "normal" => Ok(SqliteSynchronous::Normal),
            _ => Err(format!(
                "variable sqlite_synchronous must be full or normal, not {value:?}"
            )),
        }
    }

    pub fn pragma_value(self) -> &'static str {
        match self {
            SqliteSynchronous::Full => "FULL",
            SqliteSynchronous::Normal => "NORMAL",
        }
    }
}

impl fmt::Display for SqliteSynchronous {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.pragma_value())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_synchronous_takes_full_or_normal_in_any_case() {
        assert_eq!(
            SqliteSynchronous::parse("full"),
            Ok(SqliteSynchronous::Full)
        );
        assert_eq!(
            SqliteSynchronous::parse("NORMAL"),
            Ok(SqliteSynchronous::Normal)
        );
        assert_eq!(SqliteSynchronous::default().to_string(), "FULL");
        assert_eq!(SqliteSynchronous::Normal.to_string(), "NORMAL");
        assert_eq!(
            SqliteSynchronous::parse("off"),
            Err("variable sqlite_synchronous must be full or normal, not \"off\"".into())
        );
    }
}
