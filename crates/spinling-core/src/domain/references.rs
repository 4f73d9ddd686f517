//! What still uses a function or one of its versions: the checks a delete or an update makes
//! before it goes ahead. They read the other resources' tables themselves, so a resource can
//! ask without importing the resources that import it (aliases, jobs and rollouts all import
//! versions and functions).

use crate::domain::types::VersionNumber;
use crate::error::{ApiError, ApiResult};
use crate::store::db::Database;

/// Whether an alias names version `number` of the function, as its own version or in its
/// routing (such a version cannot be deleted).
pub fn alias_or_rollout_uses_version(
    db: &dyn Database,
    function_id: &str,
    number: VersionNumber,
) -> ApiResult<bool> {
    let params = [function_id.into(), number.get().into()];
    let uses = |table: &str| -> ApiResult<bool> {
        Ok(db
            .execute(
                &format!(
                    "SELECT 1 FROM {table} WHERE function_id = ? AND function_version = ? LIMIT 1"
                ),
                &params,
            )?
            .first()
            .is_some())
    };
    let in_rollout = db
        .execute(
            "SELECT 1 FROM alias_rollouts WHERE status = 'running' AND function_id = ?
                 AND (from_version = ? OR to_version = ?) LIMIT 1",
            &[function_id.into(), number.get().into(), number.get().into()],
        )?
        .first()
        .is_some();
    Ok(in_rollout || uses("function_aliases")? || uses("function_alias_routes")?)
}

/// Version delete's guard (inside its transaction): a running or paused job of this exact
/// version keeps it.
pub fn refuse_if_jobs_use_version(
    db: &dyn Database,
    function_id: &str,
    number: VersionNumber,
) -> ApiResult<()> {
    let used = db
        .execute(
            "SELECT 1 FROM jobs WHERE function_id = ? AND function_version = ?
                 AND status IN ('running', 'paused') LIMIT 1",
            &[function_id.into(), number.get().into()],
        )?
        .first()
        .is_some();
    match used {
        true => Err(ApiError::forbidden(
            "The function version is still associated with running job(s).",
        )),
        false => Ok(()),
    }
}

/// Function delete's and code update's guard (inside their transactions): a job of the
/// function that is not finished (Qinling's `Function.jobs`) keeps it. Jobs through an
/// alias do not count, as in Qinling.
pub fn refuse_if_running_jobs_use_function(db: &dyn Database, function_id: &str) -> ApiResult<()> {
    let used = db
        .execute(
            "SELECT 1 FROM jobs WHERE function_id = ? AND status IN ('running', 'paused') LIMIT 1",
            &[function_id.into()],
        )?
        .first()
        .is_some();
    match used {
        true => Err(ApiError::forbidden(
            "The function is still associated with running job(s).",
        )),
        false => Ok(()),
    }
}

/// The guard of alias updates and deletes (inside their transaction): refuses while a
/// rollout of the alias runs.
pub fn refuse_if_rollout_runs(
    db: &dyn Database,
    alias_id: &str,
    alias_name: &str,
) -> ApiResult<()> {
    let running = db
        .execute(
            "SELECT 1 FROM alias_rollouts WHERE alias_id = ? AND status = 'running' LIMIT 1",
            &[alias_id.into()],
        )?
        .first()
        .is_some();
    match running {
        true => Err(ApiError::conflict(format!(
            "FunctionAlias {alias_name} has a running rollout; abort it first (DELETE /v1/aliases/{alias_name}/rollout)."
        ))),
        false => Ok(()),
    }
}
