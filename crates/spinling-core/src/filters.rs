//! Qinling's list filters (`?status=running`, `?description=has:abc`): a value may start with
//! an operator (spec §1.7); without a known one it is an exact match, as in Qinling.

use crate::db::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operator {
    Eq,
    Neq,
    Gt,
    Gte,
    Lt,
    Lte,
    In,
    NotIn,
    Has,
}

/// One `column <operator> value(s)` condition of a list query.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    column: &'static str,
    operator: Operator,
    values: Vec<String>,
}

/// Prefixes in Qinling's order of matching. No prefix starts with another (`gte:` does not
/// start with `gt:`), so the order does not change which one matches.
const PREFIXES: &[(&str, Operator)] = &[
    ("in:", Operator::In),
    ("nin:", Operator::NotIn),
    ("neq:", Operator::Neq),
    ("gt:", Operator::Gt),
    ("gte:", Operator::Gte),
    ("lt:", Operator::Lt),
    ("lte:", Operator::Lte),
    ("eq:", Operator::Eq),
    ("has:", Operator::Has),
];

impl Filter {
    /// The filter on `column` that the query value `raw` asks for.
    pub fn parse(column: &'static str, raw: &str) -> Filter {
        let (operator, value) = PREFIXES
            .iter()
            .find_map(|(prefix, op)| raw.strip_prefix(prefix).map(|rest| (*op, rest)))
            .unwrap_or((Operator::Eq, raw));
        let values = match operator {
            Operator::In | Operator::NotIn => value.split(',').map(str::to_string).collect(),
            _ => vec![value.to_string()],
        };
        Filter {
            column,
            operator,
            values,
        }
    }

    /// The SQL condition, its placeholders' values appended to `params`. `column` is one of
    /// the handler's own names, never the client's text.
    pub fn to_sql(&self, params: &mut Vec<Value>) -> String {
        let column = self.column;
        let comparison = |symbol: &str, params: &mut Vec<Value>| {
            params.push(self.values[0].as_str().into());
            format!("{column} {symbol} ?")
        };
        match self.operator {
            Operator::Eq => comparison("=", params),
            Operator::Neq => comparison("!=", params),
            Operator::Gt => comparison(">", params),
            Operator::Gte => comparison(">=", params),
            Operator::Lt => comparison("<", params),
            Operator::Lte => comparison("<=", params),
            Operator::In | Operator::NotIn => {
                params.extend(self.values.iter().map(|v| Value::from(v.as_str())));
                let marks = vec!["?"; self.values.len()].join(", ");
                let not = if self.operator == Operator::NotIn {
                    "NOT "
                } else {
                    ""
                };
                format!("{column} {not}IN ({marks})")
            }
            Operator::Has => {
                let escaped = self.values[0]
                    .replace('\\', "\\\\")
                    .replace('%', "\\%")
                    .replace('_', "\\_");
                params.push(format!("%{escaped}%").as_str().into());
                format!("{column} LIKE ? ESCAPE '\\'")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sql(raw: &str) -> (String, Vec<Value>) {
        let mut params = Vec::new();
        let sql = Filter::parse("status", raw).to_sql(&mut params);
        (sql, params)
    }

    fn texts(values: &[&str]) -> Vec<Value> {
        values.iter().map(|v| Value::from(*v)).collect()
    }

    #[test]
    fn a_plain_value_is_an_exact_match() {
        assert_eq!(sql("running"), ("status = ?".into(), texts(&["running"])));
        assert_eq!(
            sql("eq:running"),
            ("status = ?".into(), texts(&["running"]))
        );
    }

    #[test]
    fn an_unknown_prefix_is_part_of_the_value() {
        assert_eq!(sql("bogus:x"), ("status = ?".into(), texts(&["bogus:x"])));
    }

    #[test]
    fn comparisons_take_their_operator() {
        assert_eq!(sql("neq:a").0, "status != ?");
        assert_eq!(sql("gt:a").0, "status > ?");
        assert_eq!(sql("gte:a").0, "status >= ?");
        assert_eq!(sql("lt:a").0, "status < ?");
        assert_eq!(sql("lte:a"), ("status <= ?".into(), texts(&["a"])));
    }

    #[test]
    fn lists_are_split_on_commas() {
        assert_eq!(
            sql("in:success,failed"),
            ("status IN (?, ?)".into(), texts(&["success", "failed"]))
        );
        assert_eq!(
            sql("nin:running"),
            ("status NOT IN (?)".into(), texts(&["running"]))
        );
    }

    #[test]
    fn has_is_a_substring_match_with_wildcards_escaped() {
        assert_eq!(
            sql("has:ail"),
            ("status LIKE ? ESCAPE '\\'".into(), texts(&["%ail%"]))
        );
        assert_eq!(sql("has:50%_off").1, texts(&["%50\\%\\_off%"]));
    }
}
