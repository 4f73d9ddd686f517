//! Qinling's list filters (`?status=running`, `?description=has:abc`): a value may start with
//! an operator (spec §1.7); without a known one it is an exact match, as in Qinling. And the
//! paging every list takes (`?limit=100&marker=<last id seen>`), which Qinling lacks.

use crate::error::{ApiError, ApiResult};
use crate::store::db::{Database, Row, Rows, Value};

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
    values: Vec<Value>,
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
            Operator::In | Operator::NotIn => value.split(',').map(Value::from).collect(),
            _ => vec![Value::from(value)],
        };
        Filter {
            column,
            operator,
            values,
        }
    }

    /// The filter on an integer `column` (`function_version=gte:2`): every value but a `has:`
    /// one must be an integer, or it is a 400 naming the query parameter.
    pub fn parse_integer(column: &'static str, raw: &str) -> ApiResult<Filter> {
        let mut filter = Filter::parse(column, raw);
        if filter.operator == Operator::Has {
            return Ok(filter);
        }
        for value in &mut filter.values {
            let Value::Text(text) = value else { continue };
            let number = text.trim().parse::<i64>().map_err(|_| {
                ApiError::bad_request(format!(
                    "Invalid input for field/attribute {column}. Value: '{raw}'. Wrong type. Expected an integer."
                ))
            })?;
            *value = Value::Integer(number);
        }
        Ok(filter)
    }

    /// The SQL condition, its placeholders' values appended to `params`. `column` is one of
    /// the handler's own names, never the client's text.
    pub fn to_sql(&self, params: &mut Vec<Value>) -> String {
        let column = self.column;
        let comparison = |symbol: &str, params: &mut Vec<Value>| {
            params.push(self.values[0].clone());
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
                params.extend(self.values.iter().cloned());
                let marks = vec!["?"; self.values.len()].join(", ");
                let not = if self.operator == Operator::NotIn {
                    "NOT "
                } else {
                    ""
                };
                format!("{column} {not}IN ({marks})")
            }
            Operator::Has => {
                let text = match &self.values[0] {
                    Value::Text(text) => text.clone(),
                    other => format!("{other:?}"),
                };
                let escaped = text
                    .replace('\\', "\\\\")
                    .replace('%', "\\%")
                    .replace('_', "\\_");
                params.push(format!("%{escaped}%").as_str().into());
                format!("{column} LIKE ? ESCAPE '\\'")
            }
        }
    }
}

/// The query parameters of paging, which every list takes.
pub const PAGE_PARAMS: [&str; 2] = ["limit", "marker"];

/// `?limit=` and `?marker=` of a list request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// The most rows of this page: the client's limit, clamped to the deployment's maximum
    /// page size, which is also the default.
    pub limit: usize,
    /// The last row the client saw: its id (a version number for a function's versions).
    pub marker: Option<String>,
}

impl Page {
    /// This page of `all`, a whole list in its order, whose rows `key` names as markers do.
    pub fn slice<T>(&self, all: Vec<T>, key: impl Fn(&T) -> String) -> ApiResult<Paged<T>> {
        let start = match &self.marker {
            None => 0,
            Some(marker) => {
                all.iter()
                    .position(|item| key(item) == *marker)
                    .ok_or_else(|| marker_not_found(marker))?
                    + 1
            }
        };
        let rest: Vec<T> = all.into_iter().skip(start).take(self.limit + 1).collect();
        Ok(Paged::of(rest, self.limit, key))
    }
}

fn marker_not_found(marker: &str) -> ApiError {
    ApiError::bad_request(format!("Marker not found [marker={marker}]"))
}

/// One page of a list, with the marker of its last row when more rows follow.
#[derive(Debug, Clone, PartialEq)]
pub struct Paged<T> {
    pub items: Vec<T>,
    pub next_marker: Option<String>,
}

impl<T> Paged<T> {
    /// The page from rows fetched with one more than `limit`: that extra row only tells that
    /// more follow.
    pub fn of(mut items: Vec<T>, limit: usize, key: impl Fn(&T) -> String) -> Paged<T> {
        let more = items.len() > limit;
        items.truncate(limit);
        let next_marker = items.last().filter(|_| more).map(key);
        Paged { items, next_marker }
    }

    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Paged<U> {
        Paged {
            items: self.items.into_iter().map(f).collect(),
            next_marker: self.next_marker,
        }
    }
}

/// A list of one table's rows in the order they were inserted (SQLite's `rowid`, PostgreSQL's
/// `seq`: see `Dialect::insertion_order`; writers are serialised, so it grows in commit
/// order), read a page at a time by keyset: a page starts
/// after its marker row, so rows are neither missed nor repeated while others are added.
/// (`created_at` has whole seconds only, and ids are random: ordering by them let a row
/// created in the marker's second sort before it, never to be seen.)
pub struct ListQuery {
    table: &'static str,
    /// Who may see which rows: a marker must be one of them.
    scope: Vec<String>,
    /// The client's filters (a marker need not match them).
    filters: Vec<String>,
    scope_params: Vec<Value>,
    filter_params: Vec<Value>,
}

impl ListQuery {
    /// `table` is one of the domain's own names, never the client's text.
    pub fn new(table: &'static str) -> ListQuery {
        ListQuery {
            table,
            scope: Vec::new(),
            filters: Vec::new(),
            scope_params: Vec::new(),
            filter_params: Vec::new(),
        }
    }

    /// Limits the list (and the markers it accepts) to rows where `condition` holds.
    pub fn scope(mut self, condition: &str, params: Vec<Value>) -> ListQuery {
        self.scope.push(condition.to_string());
        self.scope_params.extend(params);
        self
    }

    pub fn filter(mut self, filter: &Filter) -> ListQuery {
        let condition = filter.to_sql(&mut self.filter_params);
        self.filters.push(condition);
        self
    }

    /// The `columns` of the rows on `page`, one more than its limit if more follow. An
    /// unknown marker is a 400.
    pub fn fetch(&self, db: &dyn Database, columns: &str, page: &Page) -> ApiResult<Rows> {
        self.fetch_first(db, columns, page, page.limit + 1)
    }

    /// One page whose rows may be large: at most `max_bytes` of them by `size` (an SQL
    /// expression of a row's size), but always at least one row. A page cut short by the
    /// budget still links to the next. Two reads: the sizes, then the rows that fit.
    pub fn fetch_within(
        &self,
        db: &dyn Database,
        columns: &str,
        size: &str,
        page: &Page,
        max_bytes: i64,
    ) -> ApiResult<(Rows, bool)> {
        let sizes = self.fetch(db, &format!("{size} AS size"), page)?;
        let mut fitting = 0;
        let mut total = 0;
        for row in sizes.iter().take(page.limit) {
            let bytes = row.int("size");
            if fitting > 0 && total + bytes > max_bytes {
                break;
            }
            total += bytes;
            fitting += 1;
        }
        let more = sizes.rows.len() > fitting;
        Ok((self.fetch_first(db, columns, page, fitting)?, more))
    }

    /// The `columns` of the first `count` rows after the page's marker.
    fn fetch_first(
        &self,
        db: &dyn Database,
        columns: &str,
        page: &Page,
        count: usize,
    ) -> ApiResult<Rows> {
        let table = self.table;
        let order = db.dialect().insertion_order();
        let mut conditions: Vec<String> = self.scope.clone();
        let mut params = self.scope_params.clone();
        if let Some(marker) = &page.marker {
            let mut sql = format!("SELECT {order} AS seq FROM {table} WHERE id = ?");
            for condition in &self.scope {
                sql.push_str(&format!(" AND ({condition})"));
            }
            let mut marker_params = vec![Value::from(marker.as_str())];
            marker_params.extend(self.scope_params.iter().cloned());
            let seq = db
                .execute(&sql, &marker_params)?
                .first()
                .map(|r: Row| r.int("seq"))
                .ok_or_else(|| marker_not_found(marker))?;
            conditions.push(format!("{order} > ?"));
            params.push(Value::Integer(seq));
        }
        conditions.extend(self.filters.iter().cloned());
        params.extend(self.filter_params.iter().cloned());
        let mut sql = format!("SELECT {columns} FROM {table}");
        for (i, condition) in conditions.iter().enumerate() {
            sql.push_str(if i == 0 { " WHERE (" } else { " AND (" });
            sql.push_str(condition);
            sql.push(')');
        }
        sql.push_str(&format!(" ORDER BY {order} LIMIT {count}"));
        Ok(db.execute(&sql, &params)?)
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

    #[test]
    fn an_integer_filter_binds_integers_and_refuses_text() {
        let mut params = Vec::new();
        let filter = Filter::parse_integer("function_version", "in:0,2").unwrap();
        assert_eq!(filter.to_sql(&mut params), "function_version IN (?, ?)");
        assert_eq!(params, vec![Value::Integer(0), Value::Integer(2)]);
        let err = Filter::parse_integer("function_version", "gt:x").unwrap_err();
        assert_eq!(
            err.message,
            "Invalid input for field/attribute function_version. Value: 'gt:x'. Wrong type. Expected an integer."
        );
    }

    #[test]
    fn a_slice_starts_after_its_marker_and_tells_whether_more_follow() {
        let page = |marker: Option<&str>| Page {
            limit: 2,
            marker: marker.map(str::to_string),
        };
        let key = |n: &i64| n.to_string();
        let first = page(None).slice(vec![1, 2, 3, 5], key).unwrap();
        assert_eq!(first.items, [1, 2]);
        assert_eq!(first.next_marker.as_deref(), Some("2"));
        let last = page(Some("2")).slice(vec![1, 2, 3, 5], key).unwrap();
        assert_eq!(last.items, [3, 5]);
        assert_eq!(last.next_marker, None);
        let err = page(Some("4")).slice(vec![1, 2, 3, 5], key).unwrap_err();
        assert_eq!(err.message, "Marker not found [marker=4]");
    }

    #[test]
    fn a_page_of_large_rows_stops_at_its_byte_budget_but_holds_at_least_one() {
        use crate::store::db::testing::TestDb;
        let db = TestDb::in_memory();
        db.execute("CREATE TABLE t (id TEXT, body TEXT)", &[])
            .unwrap();
        for (id, size) in [("a", 4), ("b", 4), ("c", 4), ("d", 20)] {
            db.execute(
                "INSERT INTO t VALUES (?, ?)",
                &[id.into(), "x".repeat(size).into()],
            )
            .unwrap();
        }
        let query = ListQuery::new("t");
        let page = |marker: Option<&str>| Page {
            limit: 10,
            marker: marker.map(str::to_string),
        };
        let within = |marker| {
            let (rows, more) = query
                .fetch_within(&db, "id", "length(body)", &page(marker), 10)
                .unwrap();
            (rows.iter().map(|r| r.text(0)).collect::<Vec<_>>(), more)
        };
        assert_eq!(within(None), (vec!["a".to_string(), "b".into()], true));
        assert_eq!(within(Some("b")), (vec!["c".to_string()], true));
        // A row larger than the whole budget still gets a page of its own.
        assert_eq!(within(Some("c")), (vec!["d".to_string()], false));
    }

    #[test]
    fn keyset_pages_follow_insertion_and_take_markers_only_in_scope() {
        use crate::store::db::testing::TestDb;
        let db = TestDb::in_memory();
        db.execute("CREATE TABLE t (id TEXT, created_at TEXT, p TEXT)", &[])
            .unwrap();
        for (id, at, p) in [
            ("b", "1", "x"),
            ("a", "1", "x"),
            ("c", "0", "x"),
            ("z", "0", "y"),
        ] {
            db.execute(
                "INSERT INTO t VALUES (?, ?, ?)",
                &[id.into(), at.into(), p.into()],
            )
            .unwrap();
        }
        let query = ListQuery::new("t").scope("p = ?", vec!["x".into()]);
        let page = |marker: Option<&str>| Page {
            limit: 2,
            marker: marker.map(str::to_string),
        };
        let ids = |rows: Rows| rows.iter().map(|r| r.text(0)).collect::<Vec<_>>();
        assert_eq!(
            ids(query.fetch(&db, "id", &page(None)).unwrap()),
            ["b", "a", "c"]
        );
        assert_eq!(
            ids(query.fetch(&db, "id", &page(Some("a"))).unwrap()),
            ["c"]
        );
        // A row inserted after the client's last page, even in the same second with a
        // smaller id, is on the next page.
        db.execute("INSERT INTO t VALUES ('0', '1', 'x')", &[])
            .unwrap();
        assert_eq!(
            ids(query.fetch(&db, "id", &page(Some("c"))).unwrap()),
            ["0"]
        );
        let err = query.fetch(&db, "id", &page(Some("z"))).unwrap_err();
        assert_eq!(err.message, "Marker not found [marker=z]");
    }
}
