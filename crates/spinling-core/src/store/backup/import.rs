//! Reading an archive into an empty database: in one write transaction, checking each record
//! as it comes and everything once the end record is read, so that an archive refused for
//! any reason (cut short, altered, a package whose bytes are not its digest's, a target that
//! is not empty) leaves the database as it was.

use super::export::quoted;
use super::{Table, FORMAT_VERSION, MAX_CHUNK, MAX_LINE, PACKAGES, TABLES};
use crate::error::{ApiError, ApiResult, ErrorKind};
use crate::store::db::{in_transaction, Database, DbError, DbErrorKind, Value};
use crate::store::packages::hex;
use bytes::Bytes;
use md5::Md5;
use serde_json::{Map, Value as Json};
use sha2::{Digest as _, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, Read};

/// What an import wrote.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Imported {
    /// Rows per table.
    pub rows: BTreeMap<String, i64>,
    pub packages: i64,
    pub chunks: i64,
}

/// Imports `archive` into `db`, which must be empty (its schema made: see `migrate`). All of
/// it or nothing.
pub fn import(db: &dyn Database, archive: &mut dyn BufRead) -> ApiResult<Imported> {
    let mut tried = false;
    in_transaction(db, |tx| {
        // The archive streams in once: a transaction the server dropped cannot be run again.
        if std::mem::replace(&mut tried, true) {
            return Err(ApiError::new(
                ErrorKind::ServiceUnavailable,
                "The database dropped the import's transaction; nothing was imported. Try again.",
            ));
        }
        refuse_a_database_in_use(tx)?;
        Importer::new(tx, &mut *archive).run()
    })
}

/// A refusal of the archive: 400, saying why.
fn invalid(why: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request(format!(
        "Invalid backup archive: {why}. Nothing was imported."
    ))
}

/// 409 unless every table the archive fills is empty.
fn refuse_a_database_in_use(tx: &dyn Database) -> ApiResult<()> {
    let tables = TABLES
        .iter()
        .map(|t| t.name)
        .chain([PACKAGES.name, "package_chunks"]);
    for table in tables {
        if tx
            .execute(&format!("SELECT 1 FROM {table} LIMIT 1"), &[])?
            .first()
            .is_some()
        {
            return Err(ApiError::conflict(format!(
                "The database is not empty: it has {}. Import into a new, empty database; \
                 nothing was imported.",
                table.replace('_', " ")
            )));
        }
    }
    Ok(())
}

/// The package whose chunks are being read, and what they hash to so far.
struct PackageInProgress {
    digest: String,
    kind: String,
    size: i64,
    md5: String,
    chunk_count: i64,
    chunks: i64,
    bytes: i64,
    blake3: blake3::Hasher,
    sha256: Sha256,
    md5_of_bytes: Md5,
}

struct Importer<'a> {
    tx: &'a dyn Database,
    archive: &'a mut dyn BufRead,
    /// Of every byte before the end record.
    sha256: Sha256,
    line: Vec<u8>,
    records: u64,
    /// The position in `TABLES` of the last row's table: tables come in that order.
    table: usize,
    rows: BTreeMap<String, i64>,
    packages: i64,
    chunks: i64,
    package: Option<PackageInProgress>,
    /// Packages rows refer to, and packages the archive holds.
    referenced: BTreeSet<String>,
    held: BTreeSet<String>,
}

impl<'a> Importer<'a> {
    fn new(tx: &'a dyn Database, archive: &'a mut dyn BufRead) -> Self {
        Importer {
            tx,
            archive,
            sha256: Sha256::new(),
            line: Vec::new(),
            records: 0,
            table: 0,
            rows: BTreeMap::new(),
            packages: 0,
            chunks: 0,
            package: None,
            referenced: BTreeSet::new(),
            held: BTreeSet::new(),
        }
    }

    fn run(mut self) -> ApiResult<Imported> {
        let header = self.next_record()?.ok_or_else(|| invalid("it is empty"))?;
        self.check_header(&header)?;
        loop {
            let record = self
                .next_record()?
                .ok_or_else(|| invalid("it is truncated: it ends before its end record"))?;
            let kind = ["table", "package", "chunk", "end"]
                .into_iter()
                .find(|kind| record.contains_key(*kind));
            match (kind, kind.and_then(|kind| record.get(kind))) {
                (Some("table"), Some(Json::String(table))) => {
                    let row = record
                        .get("row")
                        .and_then(Json::as_object)
                        .ok_or_else(|| invalid(format!("record {} has no row", self.records)))?;
                    self.row(table, row)?;
                }
                (Some("package"), Some(Json::Object(package))) => self.begin_package(package)?,
                (Some("chunk"), Some(Json::Object(chunk))) => self.chunk(chunk)?,
                (Some("end"), Some(Json::Object(end))) if is_end(&record) => return self.end(end),
                _ => {
                    return Err(invalid(format!(
                        "record {} is not a row, a package, a chunk or the end",
                        self.records
                    )))
                }
            }
        }
    }

    /// The next line as a JSON object, hashed unless it is the end record; `None` at the end
    /// of the stream.
    fn next_record(&mut self) -> ApiResult<Option<Map<String, Json>>> {
        self.line.clear();
        let read = (&mut self.archive)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut self.line)
            .map_err(unreadable)?;
        if read == 0 {
            return Ok(None);
        }
        self.records += 1;
        if self.line.last() != Some(&b'\n') {
            return Err(match self.line.len() > MAX_LINE {
                true => invalid(format!(
                    "record {} is longer than {MAX_LINE} bytes",
                    self.records
                )),
                false => invalid("it is truncated: it ends in the middle of a record"),
            });
        }
        let record: Map<String, Json> = serde_json::from_slice(&self.line).map_err(|e| {
            invalid(format!(
                "record {} is not a JSON object ({e})",
                self.records
            ))
        })?;
        if !is_end(&record) {
            self.sha256.update(&self.line);
        }
        Ok(Some(record))
    }

    fn check_header(&self, header: &Map<String, Json>) -> ApiResult<()> {
        match header.get("spinling_backup") {
            Some(version) if version.as_i64() == Some(FORMAT_VERSION) => Ok(()),
            Some(version) => Err(invalid(format!(
                "it is in format version {version}; this Spinling reads version {FORMAT_VERSION}"
            ))),
            None => Err(invalid(
                "it does not begin with a Spinling backup header ({\"spinling_backup\": 1, …})",
            )),
        }
    }

    fn row(&mut self, name: &str, row: &Map<String, Json>) -> ApiResult<()> {
        if self.package.is_some() || self.packages > 0 {
            return Err(invalid(format!("a {name} row comes after the packages")));
        }
        let Some(position) = TABLES.iter().position(|t| t.name == name) else {
            return Err(invalid(format!("it has rows of an unknown table, {name}")));
        };
        if position < self.table {
            return Err(invalid(format!(
                "a {name} row comes after rows of {}",
                TABLES[self.table].name
            )));
        }
        self.table = position;
        let table = &TABLES[position];
        let values = row_values(table, row)?;
        if matches!(name, "functions" | "function_versions") {
            if let Some(Value::Text(digest)) = table
                .columns
                .iter()
                .position(|c| *c == "package_digest")
                .map(|i| &values[i])
            {
                self.referenced.insert(digest.clone());
            }
        }
        self.insert(table, values)?;
        *self.rows.entry(name.to_string()).or_default() += 1;
        Ok(())
    }

    fn insert(&self, table: &Table, values: Vec<Value>) -> ApiResult<()> {
        let sql = format!(
            "INSERT INTO {} ({}) VALUES ({})",
            table.name,
            table
                .columns
                .iter()
                .map(|c| quoted(c))
                .collect::<Vec<_>>()
                .join(", "),
            vec!["?"; table.columns.len()].join(", ")
        );
        self.tx
            .execute(&sql, &values)
            .map(drop)
            .map_err(|e| self.refused_write(table.name, e))
    }

    /// A row the database would not take (a duplicate id, a value of the wrong type) refuses
    /// the archive; a busy or lost database is the database's failure, not the archive's.
    fn refused_write(&self, table: &str, e: DbError) -> ApiError {
        match e.kind {
            DbErrorKind::Busy
            | DbErrorKind::TransactionLost
            | DbErrorKind::MissingSchema
            | DbErrorKind::Misconfigured => e.into(),
            DbErrorKind::Unique { .. } | DbErrorKind::InvalidText | DbErrorKind::Other => {
                invalid(format!(
                    "record {} (of {table}) cannot be stored: {}",
                    self.records, e.message
                ))
            }
        }
    }

    fn begin_package(&mut self, package: &Map<String, Json>) -> ApiResult<()> {
        self.finish_package()?;
        let values = row_values(&PACKAGES, package)?;
        let text = |name: &str| package[name].as_str().unwrap_or_default().to_string();
        let int = |name: &str| package[name].as_i64();
        let (Some(size), Some(chunk_count)) = (int("size"), int("chunk_count")) else {
            return Err(invalid(format!(
                "package record {} has no size or chunk count",
                self.records
            )));
        };
        let kind = text("digest_kind");
        if !matches!(kind.as_str(), "blake3" | "sha256") {
            return Err(invalid(format!(
                "package record {} has digest kind {kind:?}, neither blake3 nor sha256",
                self.records
            )));
        }
        let digest = text("digest");
        if !self.held.insert(digest.clone()) {
            return Err(invalid(format!("package {digest} comes twice")));
        }
        self.insert(&PACKAGES, values)?;
        self.packages += 1;
        self.package = Some(PackageInProgress {
            digest,
            kind,
            size,
            md5: text("md5"),
            chunk_count,
            chunks: 0,
            bytes: 0,
            blake3: blake3::Hasher::new(),
            sha256: Sha256::new(),
            md5_of_bytes: Md5::new(),
        });
        Ok(())
    }

    fn chunk(&mut self, chunk: &Map<String, Json>) -> ApiResult<()> {
        let records = self.records;
        let Some(package) = self.package.as_mut() else {
            return Err(invalid(format!(
                "chunk record {records} belongs to no package"
            )));
        };
        let seq = chunk.get("seq").and_then(Json::as_i64);
        let size = chunk.get("size").and_then(Json::as_u64);
        let Some(size) = size.filter(|s| *s as usize <= MAX_CHUNK) else {
            return Err(invalid(format!(
                "chunk record {records} has no size of at most {MAX_CHUNK} bytes"
            )));
        };
        if seq != Some(package.chunks) {
            return Err(invalid(format!(
                "chunk record {records} is not chunk {} of package {}",
                package.chunks, package.digest
            )));
        }
        let mut data = vec![0; size as usize + 1];
        self.archive
            .read_exact(&mut data)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::UnexpectedEof => {
                    invalid("it is truncated: it ends in the middle of a chunk")
                }
                _ => unreadable(e),
            })?;
        if data.pop() != Some(b'\n') {
            return Err(invalid(format!(
                "chunk record {records} is not followed by exactly {size} bytes and a newline"
            )));
        }
        self.sha256.update(&data);
        self.sha256.update(b"\n");
        package.blake3.update(&data);
        package.sha256.update(&data);
        package.md5_of_bytes.update(&data);
        package.bytes += data.len() as i64;
        let params = [
            Value::Text(package.digest.clone()),
            Value::Integer(package.chunks),
            Value::Blob(Bytes::from(data)),
        ];
        package.chunks += 1;
        self.chunks += 1;
        self.tx
            .execute(
                "INSERT INTO package_chunks (digest, seq, data) VALUES (?, ?, ?)",
                &params,
            )
            .map(drop)
            .map_err(|e| self.refused_write("package_chunks", e))
    }

    /// Checks the package whose chunks have all been read against its record.
    fn finish_package(&mut self) -> ApiResult<()> {
        let Some(package) = self.package.take() else {
            return Ok(());
        };
        let digest = match package.kind.as_str() {
            "blake3" => package.blake3.finalize().to_hex().to_string(),
            _ => hex(&package.sha256.finalize()),
        };
        let md5 = hex(&package.md5_of_bytes.finalize());
        if package.chunks != package.chunk_count || package.bytes != package.size {
            return Err(invalid(format!(
                "package {} has {} chunks of {} bytes in all; its record says {} of {}",
                package.digest, package.chunks, package.bytes, package.chunk_count, package.size
            )));
        }
        if digest != package.digest || md5 != package.md5 {
            return Err(invalid(format!(
                "the bytes of package {} do not match its digest and MD5: they were damaged \
                 or altered",
                package.digest
            )));
        }
        Ok(())
    }

    fn end(mut self, end: &Map<String, Json>) -> ApiResult<Imported> {
        self.finish_package()?;
        let digest = hex(&self.sha256.clone().finalize());
        if end.get("sha256").and_then(Json::as_str) != Some(digest.as_str()) {
            return Err(invalid(
                "its content does not match the SHA-256 of its end record: it was damaged or altered",
            ));
        }
        let rows: BTreeMap<String, i64> = end
            .get("rows")
            .and_then(Json::as_object)
            .map(|rows| {
                rows.iter()
                    .map(|(t, n)| (t.clone(), n.as_i64().unwrap_or(-1)))
                    .filter(|(_, n)| *n != 0)
                    .collect()
            })
            .unwrap_or_default();
        let packages = end.get("packages").and_then(Json::as_i64);
        let chunks = end.get("chunks").and_then(Json::as_i64);
        if rows != self.rows || packages != Some(self.packages) || chunks != Some(self.chunks) {
            return Err(invalid(
                "its end record counts other rows, packages or chunks than it holds",
            ));
        }
        let mut rest = [0u8; 1];
        if self.archive.read(&mut rest).map_err(unreadable)? != 0 {
            return Err(invalid("something follows its end record"));
        }
        if let Some(missing) = self.referenced.difference(&self.held).next() {
            return Err(invalid(format!(
                "its functions or versions refer to package {missing}, which it does not hold \
                 (was something written while it was exported?)"
            )));
        }
        Ok(Imported {
            rows: self.rows,
            packages: self.packages,
            chunks: self.chunks,
        })
    }
}

/// Whether `record` is the end record: `end` and nothing else (the one record not hashed).
fn is_end(record: &Map<String, Json>) -> bool {
    record.len() == 1 && record.get("end").is_some_and(Json::is_object)
}

fn unreadable(e: std::io::Error) -> ApiError {
    ApiError::bad_request(format!(
        "Could not read the request body: {e}. Nothing was imported."
    ))
}

/// A row's values in `table`'s column order: exactly its columns, each a number, text or
/// null.
fn row_values(table: &Table, row: &Map<String, Json>) -> ApiResult<Vec<Value>> {
    if let Some(unknown) = row.keys().find(|k| !table.columns.contains(&k.as_str())) {
        return Err(invalid(format!(
            "a {} row has a column {unknown} the table does not have",
            table.name
        )));
    }
    table
        .columns
        .iter()
        .map(|column| match row.get(*column) {
            None => Err(invalid(format!(
                "a {} row has no column {column}",
                table.name
            ))),
            Some(Json::Null) => Ok(Value::Null),
            Some(Json::String(s)) => Ok(Value::Text(s.clone())),
            Some(Json::Number(n)) => match (n.as_i64(), n.as_f64()) {
                (Some(i), _) => Ok(Value::Integer(i)),
                (None, Some(r)) => Ok(Value::Real(r)),
                _ => Err(invalid(format!(
                    "a {} row's {column} is out of range",
                    table.name
                ))),
            },
            Some(_) => Err(invalid(format!(
                "a {} row's {column} is not a number, text or null",
                table.name
            ))),
        })
        .collect()
}
