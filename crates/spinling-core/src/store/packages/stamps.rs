//! Stamps: the rows that tell the collector a digest is being written or downloaded, and
//! so must be left alone for the grace period.

use crate::error::ApiResult;
use crate::store::db::{Database, DbError, Value};

/// How long the chunks of a digest whose write started are left alone by the collector,
/// even when nothing refers to them, unless the deployment says otherwise
/// (`package_write_grace_seconds`, see [`set_write_grace_seconds`]): far longer than writing
/// 50 MiB takes. Chunks of a killed writer stay this long.
pub const WRITE_GRACE_SECONDS: i64 = 15 * 60;

std::thread_local! {
    static WRITE_GRACE: std::cell::Cell<i64> = const { std::cell::Cell::new(WRITE_GRACE_SECONDS) };
}

/// Sets the grace period (in seconds, at least 1) of every package operation that follows on
/// this thread: the adapter sets `package_write_grace_seconds` before it serves a request (a
/// Spin instance serves one request, on one thread), so the handlers' calls need no
/// parameter for it. Unset, it is [`WRITE_GRACE_SECONDS`].
pub fn set_write_grace_seconds(seconds: i64) {
    WRITE_GRACE.with(|grace| grace.set(seconds.max(1)));
}

/// The grace period in force (see [`set_write_grace_seconds`]).
pub(super) fn write_grace() -> i64 {
    WRITE_GRACE.with(std::cell::Cell::get)
}

/// Stamps `digest` as being downloaded at `now`: the collector leaves its chunks alone for
/// the grace period (see `collect_garbage`).
pub(super) fn stamp(db: &dyn Database, digest: &str, now: i64) -> Result<(), DbError> {
    crate::store::db::with_short_busy_waits(db, || {
        db.execute(
            "INSERT INTO package_writes (digest, started_at) VALUES (?, ?)
             ON CONFLICT (digest) DO UPDATE SET started_at = excluded.started_at",
            &[download_stamp(digest).into(), Value::Integer(now)],
        )
    })
    .map(drop)
}

/// The `package_writes` key of downloads' stamp on `digest`: a row apart from an upload's,
/// so that the publish of an upload of the same bytes, which drops its own stamp, leaves a
/// download in flight protected.
pub(super) fn download_stamp(digest: &str) -> String {
    format!("{digest}{DOWNLOAD_SUFFIX}")
}

pub(super) const DOWNLOAD_SUFFIX: &str = "+download";

/// Whether a write or a download stamped `digest` within the grace period before `now`.
pub(super) fn stamped(tx: &dyn Database, digest: &str, now: i64) -> ApiResult<bool> {
    Ok(tx
        .execute(
            "SELECT 1 FROM package_writes WHERE digest IN (?, ?) AND started_at > ?",
            &[
                digest.into(),
                download_stamp(digest).into(),
                Value::Integer(now - write_grace()),
            ],
        )?
        .first()
        .is_some())
}
