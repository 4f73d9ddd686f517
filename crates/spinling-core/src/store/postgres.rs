//! What the PostgreSQL adapter needs beyond Spin's interface, kept here so it is tested
//! natively: the domain's `?` placeholders numbered as PostgreSQL wants them (`$1`, `$2`, …).

/// `sql` with each `?` outside a quoted string or identifier numbered in order.
pub fn numbered_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 16);
    let mut quote: Option<char> = None;
    let mut n = 0;
    for c in sql.chars() {
        match (quote, c) {
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
    fn placeholders_are_numbered_in_order() {
        assert_eq!(
            numbered_placeholders("SELECT a FROM t WHERE b = ? AND c IN (?, ?)"),
            "SELECT a FROM t WHERE b = $1 AND c IN ($2, $3)"
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
