//! What the PostgreSQL adapter needs beyond Spin's interface, kept here so it is tested
//! natively: the domain's `?` placeholders numbered as PostgreSQL wants them (`$1`, `$2`, …),
//! and each statement put in the form Spin can run.
//!
//! Spin's `query` (spin:postgres@4, Spin 4.1.0-pre0, `factor-outbound-pg/src/client.rs`)
//! never returns when a statement yields no row: it waits for the column list, which only its
//! first row sends, while it still holds the stream that would end the wait. So a statement
//! that yields rows is asked in a form that always yields at least one (a LEFT JOIN of a
//! one-row table with the statement, marked so the adapter drops the filler row), and one
//! that yields none (BEGIN, a plain UPDATE, DDL) goes through `execute`.

/// How the adapter runs one statement on Spin's PostgreSQL interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpinStatement {
    /// Through `query`: the rows' first column is [`PRESENT`]; a row where it is NULL is the
    /// filler of an empty answer, and the column is not the statement's.
    Query(String),
    /// Through `execute`: the statement yields no rows.
    Execute(String),
}

/// The marker column of a [`SpinStatement::Query`].
pub const PRESENT: &str = "spinling_row_present";

/// `sql` as Spin can run it: placeholders numbered; a statement that yields rows (a SELECT,
/// or anything with RETURNING) wrapped so that it yields at least one.
pub fn spin_statement(sql: &str) -> SpinStatement {
    let sql = numbered_placeholders(sql);
    let head = sql.trim_start().to_ascii_uppercase();
    let yields_rows = head.starts_with("SELECT")
        || head.starts_with("WITH")
        || head.starts_with("VALUES")
        || head.contains("RETURNING");
    match yields_rows {
        true => SpinStatement::Query(format!(
            "WITH spinling_statement AS ({sql}) \
             SELECT spinling_rows.* FROM (SELECT 1) AS spinling_one \
             LEFT JOIN (SELECT true AS {PRESENT}, spinling_statement.* FROM spinling_statement) \
             AS spinling_rows ON true"
        )),
        false => SpinStatement::Execute(sql),
    }
}

/// `sql` with each `?` outside a quoted string or identifier numbered in order; SQLite's
/// numbered `?N` (which may repeat a parameter) becomes `$N`.
pub fn numbered_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 16);
    let mut quote: Option<char> = None;
    let mut n = 0;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (None, '?') if chars.peek().is_some_and(char::is_ascii_digit) => out.push('$'),
            (None, '\'' | '"') => {
                quote = Some(c);
                out.push(c);
            }
            (Some(q), c) if c == q => {
                // A doubled quote inside a string closes and reopens it: same result.
                quote = None;
                out.push(c);
            }
            (None, '?') => {
                n += 1;
                out.push('$');
                out.push_str(&n.to_string());
            }
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_statement_that_yields_rows_is_wrapped_to_yield_at_least_one() {
        let SpinStatement::Query(sql) = spin_statement("SELECT id FROM t WHERE x = ?") else {
            panic!("a query")
        };
        assert!(sql.starts_with("WITH spinling_statement AS (SELECT id FROM t WHERE x = $1) "));
        assert!(sql.contains("LEFT JOIN"), "{sql}");
        assert!(matches!(
            spin_statement("UPDATE t SET x = ? RETURNING id"),
            SpinStatement::Query(_)
        ));
    }

    #[test]
    fn a_statement_that_yields_no_rows_is_executed() {
        assert_eq!(
            spin_statement("UPDATE t SET x = ? WHERE id = ?"),
            SpinStatement::Execute("UPDATE t SET x = $1 WHERE id = $2".into())
        );
        assert_eq!(
            spin_statement("BEGIN"),
            SpinStatement::Execute("BEGIN".into())
        );
    }

    #[test]
    fn placeholders_are_numbered_in_order() {
        assert_eq!(
            numbered_placeholders("SELECT a FROM t WHERE b = ? AND c IN (?, ?)"),
            "SELECT a FROM t WHERE b = $1 AND c IN ($2, $3)"
        );
    }

    #[test]
    fn sqlite_numbered_placeholders_keep_their_numbers() {
        assert_eq!(
            numbered_placeholders("SELECT 1 WHERE a = ?1 OR b = ?1 OR c = ?2"),
            "SELECT 1 WHERE a = $1 OR b = $1 OR c = $2"
        );
    }

    #[test]
    fn a_question_mark_in_a_string_or_identifier_is_left_alone() {
        assert_eq!(
            numbered_placeholders("SELECT '?', \"a?\", 'it''s ?' FROM t WHERE x = ?"),
            "SELECT '?', \"a?\", 'it''s ?' FROM t WHERE x = $1"
        );
    }
}
