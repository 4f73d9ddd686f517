//! Writing a package: its chunks first, each in a short statement of its own, then its
//! reference in the caller's transaction (`publish`), which repairs any chunk the collector
//! took meanwhile.

use super::collector::sweep;
use super::package::Package;
use super::reads::package_row;
use crate::error::{ApiError, ApiResult};
use crate::store::db::{Database, Dialect, Value};
use crate::store::durability::SqliteSynchronous;
use bytes::Bytes;

pub(super) fn insert_chunk(
    db: &dyn Database,
    digest: &str,
    seq: i64,
    data: Bytes,
) -> ApiResult<()> {
    db.execute(
        "INSERT INTO package_chunks (digest, seq, data) VALUES (?, ?, ?)
         ON CONFLICT DO NOTHING",
        &[digest.into(), Value::Integer(seq), Value::Blob(data)],
    )?;
    Ok(())
}

/// Writes the package's chunks before anything refers to them: outside any transaction, each
/// chunk in its own statement, so no lock is held across the whole package. Bytes already
/// published are not written again (`publish` checks them). Follow with `publish`, whose
/// commit makes them durable with `durability`.
pub fn write_chunks(
    db: &dyn Database,
    package: &Package,
    durability: SqliteSynchronous,
) -> ApiResult<()> {
    write_chunks_at(db, package, durability, crate::time::now_unix())
}

pub(super) fn write_chunks_at(
    db: &dyn Database,
    package: &Package,
    durability: SqliteSynchronous,
    now: i64,
) -> ApiResult<()> {
    if package_row(db, &package.digest)?.is_some() {
        return Ok(());
    }
    crate::store::db::with_short_busy_waits(db, || {
        db.execute(
            "INSERT INTO package_writes (digest, started_at) VALUES (?, ?)
             ON CONFLICT (digest) DO UPDATE SET started_at = excluded.started_at",
            &[package.digest.as_str().into(), Value::Integer(now)],
        )
    })?;
    let relaxed = relax_durability(db);
    // Outside a transaction, each write may find another connection's transaction holding the
    // lock: wait it out, going on from the chunk that found it.
    let next = std::cell::Cell::new(0);
    let written = crate::store::db::with_short_busy_waits(db, || {
        for (seq, data) in package.chunks().skip(next.get()) {
            db.execute(
                "INSERT INTO package_chunks (digest, seq, data) VALUES (?, ?, ?)
         ON CONFLICT DO NOTHING",
                &[
                    package.digest.as_str().into(),
                    Value::Integer(seq),
                    Value::Blob(data),
                ],
            )?;
            next.set(next.get() + 1);
        }
        Ok(())
    })
    .map_err(ApiError::from);
    if relaxed {
        restore_durability(db, durability);
    }
    written
}

/// Lets the chunk writes skip a disk sync each: in WAL mode, the publish's commit syncs the
/// log, and with it every chunk written before it (until then nothing refers to them, so
/// losing them in a crash loses nothing). Only in WAL mode, where `synchronous = NORMAL` never
/// corrupts. Nor does this connection checkpoint the log as it grows, chunk by chunk and
/// again at the publish's commit: `checkpoint` does it once, after the answer. A backend
/// without these pragmas (libSQL remote) refuses them and keeps its own durability: nothing
/// depends on them. On PostgreSQL, the chunk writes' commits skip the wait for the log's
/// flush (`synchronous_commit = off`), for the same reason: the publish's commit, which does
/// wait, flushes the log up to itself, and every chunk with it.
pub(super) fn relax_durability(db: &dyn Database) -> bool {
    if db.dialect() == Dialect::PostgreSQL {
        return db.execute("SET synchronous_commit = off", &[]).is_ok();
    }
    let wal = db
        .execute("PRAGMA journal_mode", &[])
        .ok()
        .and_then(|rows| rows.first().map(|r| r.text(0)))
        .is_some_and(|mode| mode.eq_ignore_ascii_case("wal"));
    wal && db.execute("PRAGMA synchronous = NORMAL", &[]).is_ok() && {
        let _ = db.execute("PRAGMA wal_autocheckpoint = 0", &[]);
        true
    }
}

/// Puts the connection back to the durability `write_chunks_at` relaxed.
fn restore_durability(db: &dyn Database, durability: SqliteSynchronous) {
    let _ = match db.dialect() {
        Dialect::PostgreSQL => db.execute("SET synchronous_commit = on", &[]),
        Dialect::Sqlite => db.execute(
            &format!("PRAGMA synchronous = {}", durability.pragma_value()),
            &[],
        ),
    };
}

/// Copies the log of an upload's connection into the database (SQLite's checkpoint, which
/// that connection skipped): call after the answer is sent, so that the upload does not wait
/// for it. Without it, the next commit of any connection does it. A backend without the
/// pragma ignores it.
pub fn checkpoint(db: &dyn Database) {
    if db.dialect() == Dialect::PostgreSQL {
        return;
    }
    let _ = db.execute("PRAGMA wal_checkpoint(PASSIVE)", &[]);
}

/// Makes the package, whose chunks `write_chunks` wrote, available to the reference the
/// calling transaction records: writes again any chunk the collector took meanwhile, and
/// records the package's row, and drops the write's stamp. Call inside that transaction.
/// Also sweeps a few stale writes.
pub fn publish(tx: &dyn Database, package: &Package) -> ApiResult<()> {
    publish_at(tx, package, crate::time::now_unix())
}

pub(super) fn publish_at(tx: &dyn Database, package: &Package, now: i64) -> ApiResult<()> {
    let present: std::collections::HashSet<i64> = tx
        .execute(
            "SELECT seq FROM package_chunks WHERE digest = ?",
            &[package.digest.as_str().into()],
        )?
        .iter()
        .map(|r| r.int(0))
        .collect();
    if present.len() < package.chunk_count() {
        for (seq, data) in package.chunks().filter(|(seq, _)| !present.contains(seq)) {
            insert_chunk(tx, &package.digest, seq, data)?;
        }
    }
    tx.execute(
        "INSERT INTO packages (digest, size, md5, chunk_count, created_at, digest_kind)
         VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        &[
            package.digest.as_str().into(),
            Value::Integer(package.bytes.len() as i64),
            package.md5.as_str().into(),
            Value::Integer(package.chunk_count() as i64),
            crate::time::format_timestamp(now).into(),
            package.digest_kind.as_str().into(),
        ],
    )?;
    // Referenced from this commit on: the write's stamp has done its work. Only the write's:
    // a download of the same bytes keeps its own (see `download_stamp`).
    tx.execute(
        "DELETE FROM package_writes WHERE digest = ?",
        &[package.digest.as_str().into()],
    )?;
    sweep(tx, now)
}
