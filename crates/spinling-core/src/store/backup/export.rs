//! Writing an archive: a page of rows, a package's row or one of its chunks at a time, so
//! that what sits in memory is one page or one chunk however large the database is.

use super::{Order, Table, FORMAT_VERSION, PACKAGES, TABLES};
use crate::error::{ApiError, ApiResult};
use crate::store::db::{Database, Dialect, Rows, Value};
use crate::store::packages::{Pieces, StoredPackage};
use serde_json::{json, Map, Value as Json};
use sha2::{Digest as _, Sha256};
use std::collections::{BTreeMap, VecDeque};

/// An export, to be sent as a response body: [`Export::pieces`] reads it from the database
/// as the client takes it. No transaction stays open while the client reads (as for a
/// download): rows are read a page at a time, each package's chunks while its stamp keeps
/// them (see `StoredPackage`). So a write that commits during an export may be in it or not;
/// an export of a database nothing writes to meanwhile is exact.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Export {
    /// When the export began (the header's `created_at`).
    pub created_at: String,
}

impl Export {
    pub fn new() -> Export {
        Export {
            created_at: crate::time::now_timestamp(),
        }
    }

    /// The archive's bytes, in pieces. An error ends them before the end record, so the
    /// archive a client received is refused as truncated.
    pub fn pieces(self, db: &dyn Database) -> ExportPieces<'_> {
        ExportPieces {
            db,
            export: self,
            stage: Stage::Header,
            sha256: Sha256::new(),
            rows: BTreeMap::new(),
            packages: 0,
            chunks: 0,
            table: 0,
            after: None,
            queued: VecDeque::new(),
            packages_after: None,
            packages_listed: false,
            sending: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Header,
    Tables,
    Packages,
    End,
    Done,
}

/// See [`Export::pieces`].
pub struct ExportPieces<'a> {
    db: &'a dyn Database,
    export: Export,
    stage: Stage,
    /// Of every byte handed out so far (the end record's `sha256`).
    sha256: Sha256,
    rows: BTreeMap<&'static str, i64>,
    packages: i64,
    chunks: i64,
    /// The table being read, and the key of its last row read.
    table: usize,
    after: Option<Vec<Value>>,
    /// Package rows read and not yet sent.
    queued: VecDeque<PackageRow>,
    packages_after: Option<Vec<Value>>,
    packages_listed: bool,
    /// The package whose chunks are being sent, and the next chunk's number.
    sending: Option<(Pieces<'a>, i64)>,
}

#[derive(Debug, Clone)]
struct PackageRow {
    digest: String,
    record: Json,
}

impl Iterator for ExportPieces<'_> {
    type Item = ApiResult<Vec<u8>>;

    fn next(&mut self) -> Option<ApiResult<Vec<u8>>> {
        let piece = match self.next_piece() {
            Ok(Some(piece)) => piece,
            Ok(None) => return None,
            Err(e) => {
                self.stage = Stage::Done;
                return Some(Err(e));
            }
        };
        Some(Ok(piece))
    }
}

impl ExportPieces<'_> {
    fn next_piece(&mut self) -> ApiResult<Option<Vec<u8>>> {
        loop {
            match self.stage {
                Stage::Header => {
                    self.stage = Stage::Tables;
                    let source = match self.db.dialect() {
                        Dialect::Sqlite => "sqlite",
                        Dialect::PostgreSQL => "postgresql",
                    };
                    let header = json!({
                        "spinling_backup": FORMAT_VERSION,
                        "source": source,
                        "created_at": self.export.created_at,
                    });
                    return Ok(Some(self.hashed(line(&header))));
                }
                Stage::Tables => {
                    let Some(table) = TABLES.get(self.table) else {
                        self.stage = Stage::Packages;
                        continue;
                    };
                    let (rows, last) = read_page(self.db, table, self.after.take())?;
                    if rows.rows.is_empty() {
                        self.table += 1;
                        continue;
                    }
                    self.after = last;
                    let mut piece = Vec::new();
                    for row in &rows.rows {
                        let record = json!({"table": table.name, "row": row_object(table, &rows.columns, row)?});
                        piece.extend(line(&record));
                    }
                    *self.rows.entry(table.name).or_default() += rows.rows.len() as i64;
                    return Ok(Some(self.hashed(piece)));
                }
                Stage::Packages => {
                    if let Some((pieces, seq)) = &mut self.sending {
                        match pieces.next() {
                            Some(bytes) => {
                                let bytes = bytes?;
                                let mut piece =
                                    line(&json!({"chunk": {"seq": *seq, "size": bytes.len()}}));
                                piece.extend_from_slice(&bytes);
                                piece.push(b'\n');
                                *seq += 1;
                                self.chunks += 1;
                                return Ok(Some(self.hashed(piece)));
                            }
                            None => {
                                self.sending = None;
                                continue;
                            }
                        }
                    }
                    if self.queued.is_empty() && !self.packages_listed {
                        self.list_packages()?;
                        continue;
                    }
                    let Some(package) = self.queued.pop_front() else {
                        self.stage = Stage::End;
                        continue;
                    };
                    // Gone since it was listed (its last reference was deleted): left out.
                    let Some(stored) = StoredPackage::open(self.db, &package.digest)? else {
                        continue;
                    };
                    self.sending = Some((stored.pieces(self.db), 0));
                    self.packages += 1;
                    return Ok(Some(self.hashed(line(&json!({"package": package.record})))));
                }
                Stage::End => {
                    self.stage = Stage::Done;
                    let digest = crate::store::packages::hex(&self.sha256.clone().finalize());
                    let end = json!({"end": {
                        "rows": self.rows,
                        "packages": self.packages,
                        "chunks": self.chunks,
                        "sha256": digest,
                    }});
                    return Ok(Some(line(&end)));
                }
                Stage::Done => return Ok(None),
            }
        }
    }

    fn list_packages(&mut self) -> ApiResult<()> {
        let (rows, last) = read_page(self.db, &PACKAGES, self.packages_after.take())?;
        if rows.rows.is_empty() {
            self.packages_listed = true;
            return Ok(());
        }
        self.packages_after = last;
        for row in &rows.rows {
            let record = row_object(&PACKAGES, &rows.columns, row)?;
            let digest = record["digest"].as_str().unwrap_or_default().to_string();
            self.queued.push_back(PackageRow { digest, record });
        }
        Ok(())
    }

    fn hashed(&mut self, piece: Vec<u8>) -> Vec<u8> {
        self.sha256.update(&piece);
        piece
    }
}

/// `value` as one line of the archive.
fn line(value: &Json) -> Vec<u8> {
    let mut bytes = serde_json::to_vec(value).expect("JSON values serialise");
    bytes.push(b'\n');
    bytes
}

/// A quoted SQL identifier (a column may be called `before`).
pub(super) fn quoted(name: &str) -> String {
    format!("\"{name}\"")
}

/// The next page of `table`'s rows after the row whose ordering key is `after` (from the
/// first row when `None`), and the key of its last row. The ordering key comes first in each
/// row read, under names of its own, and is not exported.
fn read_page(
    db: &dyn Database,
    table: &Table,
    after: Option<Vec<Value>>,
) -> ApiResult<(Rows, Option<Vec<Value>>)> {
    let columns: Vec<String> = table.columns.iter().map(|c| quoted(c)).collect();
    let (keys, condition, params): (Vec<String>, String, Vec<Value>) = match table.order {
        Order::Inserted => {
            let order = db.dialect().insertion_order().to_string();
            let after = after.unwrap_or_else(|| vec![Value::Integer(i64::MIN)]);
            (vec![order.clone()], format!("{order} > ?"), after)
        }
        Order::Key([key]) => {
            let after = after.unwrap_or_else(|| vec![Value::Text(String::new())]);
            (vec![quoted(key)], format!("{} > ?", quoted(key)), after)
        }
        Order::Key([first, second]) => {
            let (a, b) = (quoted(first), quoted(second));
            let after =
                after.unwrap_or_else(|| vec![Value::Text(String::new()), Value::Integer(i64::MIN)]);
            let params = vec![after[0].clone(), after[0].clone(), after[1].clone()];
            (
                vec![a.clone(), b.clone()],
                format!("({a} > ? OR ({a} = ? AND {b} > ?))"),
                params,
            )
        }
        Order::Key(_) => unreachable!("an ordering key has one or two columns"),
    };
    let selected: Vec<String> = keys
        .iter()
        .enumerate()
        .map(|(i, key)| format!("{key} AS backup_key_{i}"))
        .chain(columns)
        .collect();
    let sql = format!(
        "SELECT {} FROM {} WHERE {condition} ORDER BY {} LIMIT {}",
        selected.join(", "),
        table.name,
        (0..keys.len())
            .map(|i| format!("backup_key_{i}"))
            .collect::<Vec<_>>()
            .join(", "),
        table.rows_per_read,
    );
    let mut rows = db.execute(&sql, &params)?;
    let last = rows.rows.last().map(|row| row[..keys.len()].to_vec());
    rows.columns.drain(..keys.len());
    for row in &mut rows.rows {
        row.drain(..keys.len());
    }
    Ok((rows, last))
}

/// A row as the archive's JSON object of its columns.
fn row_object(table: &Table, columns: &[String], row: &[Value]) -> ApiResult<Json> {
    let mut object = Map::new();
    for (column, value) in columns.iter().zip(row) {
        let value = match value {
            Value::Integer(i) => Json::from(*i),
            Value::Real(r) => Json::from(*r),
            Value::Text(t) => Json::from(t.as_str()),
            Value::Null => Json::Null,
            Value::Blob(_) => {
                return Err(ApiError::internal(format!(
                    "Column {column} of table {} holds bytes; it cannot be exported.",
                    table.name
                )))
            }
        };
        object.insert(column.clone(), value);
    }
    Ok(Json::Object(object))
}
