//! Jobs (spec §2.7): a function version, or an alias, run at a given time or on a cron
//! pattern. A job *fires* when it is due: one transaction moves it on by compare-and-swap
//! (its `count` and `next_execution_time`, as read) and inserts its asynchronous execution,
//! so however many schedulers tick on one database, each due time fires once, and an
//! instance that dies mid-tick leaves either nothing (rolled back: the next tick fires it)
//! or a recorded execution (settled as failed if its run never ends, see
//! `executions::settle_stale`). Who ticks is the adapter's business (`tick`).
//!
//! Times are Unix seconds inside, UTC Qinling timestamps on the wire and in the database.

use crate::domain::commands::{ExecutionTarget, JobChanges, NewExecution, NewJob};
use crate::domain::context::{Caller, ListScope};
use crate::domain::executions::{self, Execution};
use crate::domain::json::JsonLimits;
use crate::domain::types::{FunctionId, VersionRef};
use crate::error::{ApiError, ApiResult};
use crate::store::db::{in_transaction, Database, Row};
use crate::store::filters::{ListQuery, Page, Paged};
use crate::time::{format_timestamp, now_unix, parse_timestamp};
use crate::{domain::aliases, domain::functions, domain::versions};
use serde_json::{json, Value as Json};

mod lease;
mod timing;

pub use lease::{
    check_health, hand_over_lease, holds_lease, lease_look_params, loop_wanted,
    release_lease_if_idle, renew_lease, take_lease, LEASE_LOOK, LEASE_SECONDS,
};
pub use timing::{parse_time, Pattern};

/// How far ahead a job's first (or resumed) time must be, in seconds.
pub const MIN_LEAD_SECONDS: i64 = 60;

/// The most due jobs one tick fires; the rest fire on the next tick.
const TICK_BATCH: i64 = 100;

/// A job's state. Only `running` jobs fire; `done` and `cancelled` are final.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobStatus {
    Running,
    Paused,
    Done,
    Cancelled,
}

impl JobStatus {
    pub fn parse(s: &str) -> Option<JobStatus> {
        match s {
            "running" => Some(JobStatus::Running),
            "paused" => Some(JobStatus::Paused),
            "done" => Some(JobStatus::Done),
            "cancelled" => Some(JobStatus::Cancelled),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Running => "running",
            JobStatus::Paused => "paused",
            JobStatus::Done => "done",
            JobStatus::Cancelled => "cancelled",
        }
    }

    fn is_finished(self) -> bool {
        matches!(self, JobStatus::Done | JobStatus::Cancelled)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub id: String,
    pub name: Option<String>,
    pub pattern: Option<String>,
    pub status: JobStatus,
    pub first_execution_time: Option<i64>,
    pub next_execution_time: i64,
    pub count: Option<i64>,
    /// None for a job through an alias.
    pub function_id: Option<FunctionId>,
    pub function_version: VersionRef,
    pub function_alias: Option<String>,
    pub function_input: Option<String>,
    pub project_id: String,
    pub created_at: String,
    pub updated_at: Option<String>,
}

const COLUMNS: &str = "id, name, pattern, status, first_execution_time, next_execution_time, count,
    function_id, function_version, function_alias, function_input, project_id, created_at,
    updated_at";

impl Job {
    fn from_row(r: Row) -> Job {
        let time = |column| r.opt_text(column).and_then(|t| parse_timestamp(&t));
        Job {
            id: r.text("id"),
            name: r.opt_text("name"),
            pattern: r.opt_text("pattern"),
            // Only the four statuses and checked references are ever written.
            status: JobStatus::parse(&r.text("status")).unwrap_or(JobStatus::Cancelled),
            first_execution_time: time("first_execution_time"),
            next_execution_time: time("next_execution_time").unwrap_or_default(),
            count: r.opt_int("count"),
            function_id: r.opt_text("function_id").map(FunctionId::from_stored),
            function_version: VersionRef::from_wire(r.int("function_version"))
                .unwrap_or(VersionRef::Current),
            function_alias: r.opt_text("function_alias"),
            function_input: r.opt_text("function_input"),
            project_id: r.text("project_id"),
            created_at: r.text("created_at"),
            updated_at: r.opt_text("updated_at"),
        }
    }

    pub fn to_json(&self) -> Json {
        json!({
            "id": self.id,
            "name": self.name,
            "function_id": self.function_id,
            "function_alias": self.function_alias,
            "function_version": self.function_version,
            "function_input": self.function_input,
            "status": self.status.as_str(),
            "pattern": self.pattern,
            "count": self.count,
            "first_execution_time": self.first_execution_time.map(format_timestamp),
            "next_execution_time": format_timestamp(self.next_execution_time),
            "project_id": self.project_id,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        })
    }

    /// What its execution runs: the alias (resolved when it fires) or the function's code.
    fn target(&self) -> Option<ExecutionTarget> {
        match (&self.function_alias, &self.function_id) {
            (Some(alias), _) => Some(ExecutionTarget::Alias(alias.clone())),
            (None, Some(id)) => Some(ExecutionTarget::Function {
                id: id.clone(),
                version: self.function_version,
            }),
            (None, None) => None,
        }
    }

    /// Its `count`, `status` and `next_execution_time` once it fires at `now`: a counted job
    /// that used its last run is done; otherwise a recurring one moves to its pattern's next
    /// tick after now (missed ticks are not caught up: one run stands for them).
    fn after_firing(&self, now: i64) -> (Option<i64>, JobStatus, i64) {
        let count = self.count.map(|c| c - 1);
        if count.is_some_and(|c| c <= 0) {
            return (count, JobStatus::Done, self.next_execution_time);
        }
        let next = self
            .pattern
            .as_deref()
            .and_then(|p| Pattern::parse(p).ok())
            .and_then(|p| p.next_after(now.max(self.next_execution_time)));
        match next {
            Some(next) => (count, JobStatus::Running, next),
            // A one-shot job without a count fires once too.
            None => (count, JobStatus::Done, self.next_execution_time),
        }
    }
}

fn not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("Job not found [id={id}]"))
}

fn too_soon() -> ApiError {
    ApiError::bad_request("Execution time must be at least 1 minute in the future.")
}

/// The job with `id`: the caller's own, or for an admin any project's.
pub fn find(db: &dyn Database, caller: &Caller, id: &str) -> ApiResult<Job> {
    db.execute(
        &format!("SELECT {COLUMNS} FROM jobs WHERE id = ?"),
        &[id.into()],
    )?
    .first()
    .map(Job::from_row)
    .filter(|j| caller.may_read(&j.project_id))
    .ok_or_else(|| not_found(id))
}

/// The caller's own job with `id` (what update and delete act on, as for aliases).
fn find_own(db: &dyn Database, caller: &Caller, id: &str) -> ApiResult<Job> {
    find(db, caller, id)
        .ok()
        .filter(|j| j.project_id == caller.project_id)
        .ok_or_else(|| not_found(id))
}

/// One page of the jobs in `scope`, by `created_at` then `id`.
pub fn list(db: &dyn Database, scope: &ListScope, page: &Page) -> ApiResult<Paged<Job>> {
    let mut query = ListQuery::new("jobs");
    if let Some(project) = scope.project() {
        query = query.scope("project_id = ?", vec![project.into()]);
    }
    let rows = query.fetch(db, COLUMNS, page)?;
    let items = rows.iter().map(Job::from_row).collect();
    Ok(Paged::of(items, page.limit, |j: &Job| j.id.clone()))
}

/// Qinling's time and count rules for a new job, at `now`: its first time, next time and
/// count.
fn schedule(new: &NewJob, now: i64) -> ApiResult<(Option<i64>, i64, Option<i64>)> {
    let (mut first, pattern, mut count) = (new.first_execution_time, &new.pattern, new.count);
    if first.is_none() && pattern.is_none() {
        return Err(ApiError::bad_request(
            "pattern or first_execution_time must be specified.",
        ));
    }
    let mut next = now;
    if let Some(f) = first {
        if f < now + MIN_LEAD_SECONDS {
            return Err(too_soon());
        }
        if pattern.is_none() && count.is_some_and(|c| c > 1) {
            return Err(ApiError::bad_request(
                "pattern must be provided if count is greater than 1.",
            ));
        }
        next = f;
        if pattern.is_none() && count.is_none() {
            count = Some(1);
        }
    }
    if let Some(p) = pattern {
        let start = first.map_or(now, |f| f - 60);
        next = Pattern::parse(p)?.next_after(start).ok_or_else(|| {
            ApiError::bad_request(format!("The specified pattern is not valid: {p}"))
        })?;
        first = Some(next);
    }
    Ok((first, next, count))
}

pub fn create(db: &dyn Database, caller: &Caller, new: NewJob) -> ApiResult<Job> {
    create_at(db, caller, new, now_unix())
}

fn create_at(db: &dyn Database, caller: &Caller, new: NewJob, now: i64) -> ApiResult<Job> {
    let (first, next, count) = schedule(&new, now)?;
    check_input(new.function_input.as_deref())?;
    let (function_id, function_version, function_alias) = match &new.target {
        ExecutionTarget::Alias(name) => (None, VersionRef::Current, Some(name.clone())),
        ExecutionTarget::Function { id, version } => (Some(id.clone()), *version, None),
    };
    let job = Job {
        id: crate::id::new_id(),
        name: new.name,
        pattern: new.pattern,
        status: JobStatus::Running,
        first_execution_time: first,
        next_execution_time: next,
        count,
        function_id,
        function_version,
        function_alias,
        function_input: new.function_input,
        project_id: caller.project_id.clone(),
        created_at: format_timestamp(now),
        updated_at: None,
    };
    // One transaction with the checks: a version deleted meanwhile is either seen as gone
    // (404) or refuses to go because of this job (403).
    in_transaction(db, |tx| {
        match &new.target {
            ExecutionTarget::Alias(name) => {
                aliases::find_own(tx, caller, name)?;
            }
            ExecutionTarget::Function { id, version } => {
                functions::find_own(tx, caller, id.as_str())?;
                if let VersionRef::Number(n) = version {
                    versions::find(tx, &crate::store::cache::NoCache, caller, id.as_str(), *n)?;
                }
            }
        }
        tx.execute(
            &format!(
                "INSERT INTO jobs ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL)"
            ),
            &[
                job.id.as_str().into(),
                job.name.clone().into(),
                job.pattern.clone().into(),
                job.status.as_str().into(),
                job.first_execution_time.map(format_timestamp).into(),
                format_timestamp(job.next_execution_time).into(),
                job.count.into(),
                job.function_id.as_ref().map(FunctionId::to_string).into(),
                job.function_version.to_wire().into(),
                job.function_alias.clone().into(),
                job.function_input.clone().into(),
                job.project_id.as_str().into(),
                job.created_at.as_str().into(),
            ],
        )?;
        Ok(job.clone())
    })
}

/// A job's input becomes each execution's input: it must pass the same rules then.
fn check_input(input: Option<&str>) -> ApiResult<()> {
    executions::parse_input(input, &JsonLimits::default()).map(|_| ())
}

pub fn update(
    db: &dyn Database,
    caller: &Caller,
    id: &str,
    changes: &JobChanges,
) -> ApiResult<Job> {
    update_at(db, caller, id, changes, now_unix())
}

fn update_at(
    db: &dyn Database,
    caller: &Caller,
    id: &str,
    changes: &JobChanges,
    now: i64,
) -> ApiResult<Job> {
    check_input(changes.function_input.as_deref())?;
    in_transaction(db, |tx| {
        let mut job = find_own(tx, caller, id)?;
        if job.status.is_finished() {
            return Err(ApiError::bad_request("Can not update a finished job."));
        }
        let pattern = match changes.pattern.as_deref() {
            Some("") if job.pattern.is_some() => {
                return Err(ApiError::bad_request("Can not change job type."))
            }
            Some("") | None => None,
            Some(_) if job.pattern.is_none() => {
                return Err(ApiError::bad_request("Can not change job type."));
            }
            // As on create: a pattern must have a next tick, or the job would fire once more
            // and then end without a word.
            Some(p) => {
                let parsed = Pattern::parse(p)?;
                if parsed.next_after(now).is_none() {
                    return Err(ApiError::bad_request(format!(
                        "The specified pattern is not valid: {p}"
                    )));
                }
                Some((p.to_string(), parsed))
            }
        };
        let status = match changes.status.as_deref() {
            None => None,
            Some(s) => Some(
                JobStatus::parse(s)
                    .filter(|s| *s != JobStatus::Done)
                    .ok_or_else(|| ApiError::bad_request("Invalid status."))?,
            ),
        };
        if let Some(next) = changes.next_execution_time {
            if next < now + MIN_LEAD_SECONDS {
                return Err(too_soon());
            }
            job.next_execution_time = next;
        } else if job.status == JobStatus::Paused && status == Some(JobStatus::Running) {
            match pattern.as_ref().map(|(_, p)| p) {
                None if job.pattern.is_none() => {
                    if job.next_execution_time < now + MIN_LEAD_SECONDS {
                        return Err(too_soon());
                    }
                }
                given => {
                    let stored = job.pattern.as_deref().map(Pattern::parse).transpose()?;
                    let p = given.or(stored.as_ref()).expect("a recurring job");
                    job.next_execution_time = p.next_after(now).unwrap_or(job.next_execution_time);
                }
            }
        } else if let Some((_, p)) = &pattern {
            // Unlike Qinling, a new pattern takes effect at once, not after the old one's
            // next tick.
            job.next_execution_time = p.next_after(now).unwrap_or(job.next_execution_time);
        }
        if let Some((text, _)) = pattern {
            job.pattern = Some(text);
        }
        if let Some(s) = status {
            job.status = s;
        }
        if let Some(name) = &changes.name {
            job.name = Some(name.clone());
        }
        if let Some(input) = &changes.function_input {
            job.function_input = Some(input.clone());
        }
        job.updated_at = Some(format_timestamp(now));
        tx.execute(
            "UPDATE jobs SET name = ?, function_input = ?, status = ?, pattern = ?,
                 next_execution_time = ?, updated_at = ?
             WHERE id = ?",
            &[
                job.name.clone().into(),
                job.function_input.clone().into(),
                job.status.as_str().into(),
                job.pattern.clone().into(),
                format_timestamp(job.next_execution_time).into(),
                job.updated_at.clone().into(),
                job.id.as_str().into(),
            ],
        )?;
        Ok(job)
    })
}

pub fn delete(db: &dyn Database, caller: &Caller, id: &str) -> ApiResult<()> {
    let job = find_own(db, caller, id)?;
    db.execute("DELETE FROM jobs WHERE id = ?", &[job.id.as_str().into()])?;
    Ok(())
}

/// A job that fired: its execution, and the run to start.
#[derive(Debug)]
pub struct Fired {
    pub job_id: String,
    pub execution: Execution,
    pub run: crate::domain::workers::Job,
}

/// Fires every running job due at `now` (its next time is not after now), each once.
/// Returns what fired; the caller runs them. Jobs another scheduler fired meanwhile are
/// skipped; a job whose target is gone spends its tick without an execution (logged).
pub fn tick(
    db: &dyn Database,
    cache: &dyn crate::store::cache::Cache,
    now: i64,
) -> ApiResult<Vec<Fired>> {
    let due: Vec<Job> = db
        .execute(
            &format!(
                "SELECT {COLUMNS} FROM jobs WHERE status = 'running' AND next_execution_time <= ?
                 ORDER BY next_execution_time, id LIMIT {TICK_BATCH}"
            ),
            &[format_timestamp(now).into()],
        )?
        .iter()
        .map(Job::from_row)
        .collect();
    let mut fired = Vec::new();
    for job in due {
        match fire(db, &job, now) {
            Ok(Some(f)) => {
                executions::forget_counted(cache, &f.execution);
                fired.push(f);
            }
            Ok(None) => {}
            Err(e) => eprintln!("job {} could not fire: {}", job.id, e.log_line()),
        }
    }
    Ok(fired)
}

/// Fires `job` as read: in one transaction, moves it on if it is still as read, and records
/// its execution. None if another scheduler fired it first, or if its target is gone.
fn fire(db: &dyn Database, job: &Job, now: i64) -> ApiResult<Option<Fired>> {
    let (count, status, next) = job.after_firing(now);
    in_transaction(db, |tx| {
        let moved = tx.execute(
            "UPDATE jobs SET count = ?, status = ?, next_execution_time = ?, updated_at = ?
             WHERE id = ? AND status = 'running' AND next_execution_time = ? AND count IS NOT DISTINCT FROM ?
             RETURNING id",
            &[
                count.into(),
                status.as_str().into(),
                format_timestamp(next).into(),
                format_timestamp(now).into(),
                job.id.as_str().into(),
                format_timestamp(job.next_execution_time).into(),
                job.count.into(),
            ],
        )?;
        if moved.first().is_none() {
            return Ok(None);
        }
        let Some(target) = job.target() else {
            return Ok(None);
        };
        // The job's project runs it; no caller's token backs it (the adapter gives the run
        // Spinling's service token in auth mode `keystone`).
        let caller = Caller::acting_for(&job.project_id, false, None);
        let new = NewExecution {
            id: None,
            target,
            description: Some(format!("Created by Job {}", job.id)),
            sync: false,
            input: executions::parse_input(job.function_input.as_deref(), &JsonLimits::default())
                .unwrap_or_else(|_| {
                    job.function_input
                        .clone()
                        .map(|raw| json!({"__function_input": raw}))
                }),
            routing_key: None,
        };
        match executions::create_in(tx, &caller, &new) {
            Ok((execution, run)) => Ok(Some(Fired {
                job_id: job.id.clone(),
                execution,
                run,
            })),
            // The target is gone or cannot run: the tick is spent, as in Qinling.
            Err(e) if e.status() < 500 => {
                eprintln!("job {} fired without an execution: {}", job.id, e.message);
                Ok(None)
            }
            Err(e) => Err(e),
        }
    })
}

#[cfg(test)]
mod tests;
