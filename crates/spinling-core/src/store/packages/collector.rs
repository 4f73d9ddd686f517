//! The collector: deletes the chunks of digests nothing references once no write or
//! download stamped them within the grace period, a few at a time.

use super::stamps::{download_stamp, stamped, write_grace, DOWNLOAD_SUFFIX};
use crate::error::ApiResult;
use crate::store::db::{Database, Value};

/// How many stale writes one sweep looks at: a few, so no transaction grows long.
const SWEEP_BATCH: i64 = 4;

pub(super) fn is_referenced(tx: &dyn Database, digest: &str) -> ApiResult<bool> {
    Ok(tx
        .execute(
            "SELECT 1 WHERE EXISTS (SELECT 1 FROM functions WHERE package_digest = ?1)
                         OR EXISTS (SELECT 1 FROM function_versions WHERE package_digest = ?1)",
            &[digest.into()],
        )?
        .first()
        .is_some())
}

/// Deletes every trace of `digest`: its row, its chunks and its stamps.
pub(super) fn delete_package(tx: &dyn Database, digest: &str) -> ApiResult<()> {
    for statement in [
        "DELETE FROM packages WHERE digest = ?",
        "DELETE FROM package_chunks WHERE digest = ?",
        "DELETE FROM package_writes WHERE digest = ?",
    ] {
        tx.execute(statement, &[digest.into()])?;
    }
    tx.execute(
        "DELETE FROM package_writes WHERE digest = ?",
        &[download_stamp(digest).into()],
    )?;
    Ok(())
}

/// Deletes the package with `digest` if no function and no version refers to it any more;
/// call in the transaction that dropped a reference. Its chunks stay while a write of the
/// same bytes, or a download of them, may be under way (both stamp the digest; a sweep takes
/// them later). Also sweeps a few stale writes.
pub fn collect_garbage(tx: &dyn Database, digest: &str) -> ApiResult<()> {
    collect_garbage_at(tx, digest, crate::time::now_unix())
}

pub(super) fn collect_garbage_at(tx: &dyn Database, digest: &str, now: i64) -> ApiResult<()> {
    if !is_referenced(tx, digest)? {
        match stamped(tx, digest, now)? {
            true => {
                tx.execute("DELETE FROM packages WHERE digest = ?", &[digest.into()])?;
            }
            false => delete_package(tx, digest)?,
        }
    }
    sweep(tx, now)
}

/// Collects the chunks of writes that started more than the grace period ago and that nothing
/// references (a killed writer's), a few at a time; forgets the stamps of the others.
pub(super) fn sweep(tx: &dyn Database, now: i64) -> ApiResult<()> {
    let stale = tx.execute(
        "SELECT digest FROM package_writes WHERE started_at <= ? ORDER BY started_at LIMIT ?",
        &[
            Value::Integer(now - write_grace()),
            Value::Integer(SWEEP_BATCH),
        ],
    )?;
    for key in stale.iter().map(|r| r.text(0)) {
        let digest = key.strip_suffix(DOWNLOAD_SUFFIX).unwrap_or(&key);
        // Referenced bytes, or bytes another write or download stamped since, stay: only
        // this stale stamp goes.
        match is_referenced(tx, digest)? || stamped(tx, digest, now)? {
            true => {
                tx.execute(
                    "DELETE FROM package_writes WHERE digest = ?",
                    &[key.as_str().into()],
                )?;
            }
            false => delete_package(tx, digest)?,
        }
    }
    Ok(())
}
