//! The scheduler's lease: one row that says which loop ticks the jobs, taken only while some
//! job runs, renewed every tick, handed over, and given up only when nothing runs, in one
//! statement each so no two loops tick at once and none is missing while a job is due.

use crate::error::{ApiError, ApiResult};
use crate::store::db::{Database, Row, Value};

/// The name of the scheduler's lease row.
const LEASE: &str = "jobs";

/// How long a scheduler's lease lasts without renewal, in seconds: a loop that died is
/// replaced by the first request after this.
pub const LEASE_SECONDS: i64 = 15;

/// A look at whether the scheduler's loop is wanted: two columns of one row, `until` (when the
/// lease ends, 0 if never taken) and `busy` (a job or a rollout is running), whose one
/// parameter is [`lease_look_params`]. Columns, not a statement, so that the look can ride on
/// a statement a request makes anyway (`migrations::migrate_looking`); [`loop_wanted`] reads it.
pub const LEASE_LOOK: &str =
    "COALESCE((SELECT until FROM scheduler_lease WHERE name = ?), 0) AS until,
    EXISTS (SELECT 1 FROM jobs WHERE status = 'running')
        OR EXISTS (SELECT 1 FROM alias_rollouts WHERE status = 'running') AS busy";

/// The parameters of [`LEASE_LOOK`].
pub fn lease_look_params() -> Vec<Value> {
    vec![LEASE.into()]
}

/// Whether a row of [`LEASE_LOOK`] says the loop is wanted at `now`: the lease is free (never
/// taken, or expired) while something runs.
pub fn loop_wanted(look: &Row, now: i64) -> bool {
    look.int("until") <= now && look.bool("busy")
}

/// Takes the scheduler's lease for `holder` if it is free (never taken, or expired) and some
/// job is running; true if taken. Only one holder at a time, across every instance on the
/// database.
pub fn take_lease(db: &dyn Database, holder: &str, now: i64) -> ApiResult<bool> {
    let wanted = db
        .execute(&format!("SELECT {LEASE_LOOK}"), &lease_look_params())?
        .first()
        .is_some_and(|look| loop_wanted(&look, now));
    if !wanted {
        return Ok(false);
    }
    let taken = db.execute(
        "INSERT INTO scheduler_lease (name, holder, until) VALUES (?, ?, ?)
         ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until
             WHERE scheduler_lease.until <= ?
         RETURNING holder",
        &[
            LEASE.into(),
            holder.into(),
            (now + LEASE_SECONDS).into(),
            now.into(),
        ],
    )?;
    Ok(taken.first().is_some_and(|r| r.text("holder") == holder))
}

/// Extends `holder`'s lease, even past its end if no one took it meanwhile; false if another
/// holds it now.
pub fn renew_lease(db: &dyn Database, holder: &str, now: i64) -> ApiResult<bool> {
    let renewed = db.execute(
        "UPDATE scheduler_lease SET until = ? WHERE name = ? AND holder = ? RETURNING holder",
        &[(now + LEASE_SECONDS).into(), LEASE.into(), holder.into()],
    )?;
    Ok(renewed.first().is_some())
}

/// Hands `holder`'s lease to `next` (a fresh loop); false if `holder` no longer held it.
pub fn hand_over_lease(db: &dyn Database, holder: &str, next: &str, now: i64) -> ApiResult<bool> {
    let moved = db.execute(
        "UPDATE scheduler_lease SET holder = ?, until = ? WHERE name = ? AND holder = ? AND until > ?
         RETURNING holder",
        &[next.into(), (now + LEASE_SECONDS).into(), LEASE.into(), holder.into(), now.into()],
    )?;
    Ok(moved.first().is_some())
}

/// The health probe's look at the database: one read of the jobs (brought up to date first
/// if the schema is missing), 503 if it cannot be made. The adapter then starts the
/// scheduler's loop if a job is running and none is alive, as after any request that opened
/// the database.
pub fn check_health(db: &dyn Database) -> ApiResult<()> {
    db.execute("SELECT 1 FROM jobs WHERE status = 'running' LIMIT 1", &[])
        .map(drop)
        .map_err(|e| {
            eprintln!("health: the database cannot be read: {e}");
            ApiError::new(
                crate::error::ErrorKind::ServiceUnavailable,
                "Database unavailable.",
            )
        })
}

/// Whether `holder` holds the lease at `now`: a read, so that a stranger's loop request
/// writes nothing.
pub fn holds_lease(db: &dyn Database, holder: &str, now: i64) -> ApiResult<bool> {
    Ok(db
        .execute(
            "SELECT 1 FROM scheduler_lease WHERE name = ? AND holder = ? AND until > ?",
            &[LEASE.into(), holder.into(), now.into()],
        )?
        .first()
        .is_some())
}

/// Gives up `holder`'s lease at once, so the next request may start a loop, if no job and no
/// rollout is running: in one statement, so a job or rollout created after a look never finds
/// the lease given up with no loop to fire it. True if given up.
pub fn release_lease_if_idle(db: &dyn Database, holder: &str) -> ApiResult<bool> {
    Ok(db
        .execute(
            "UPDATE scheduler_lease SET until = 0 WHERE name = ? AND holder = ?
                 AND NOT EXISTS (SELECT 1 FROM jobs WHERE status = 'running')
                 AND NOT EXISTS (SELECT 1 FROM alias_rollouts WHERE status = 'running')
             RETURNING holder",
            &[LEASE.into(), holder.into()],
        )?
        .first()
        .is_some())
}
