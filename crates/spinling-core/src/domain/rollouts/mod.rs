//! Rollouts (issue 25): an alias moves to a new version by steps of its traffic, and promotes
//! or rolls back by itself on the new version's failures.
//!
//! A rollout of alias A from its version S (the *stable* one) to version N (the *canary*)
//! routes `steps[0]` % of A's executions to N, then each `step_seconds` the next step, then
//! promotes: A points at N, its routing cleared. The decisions, for the executions created
//! through A for N since the current step began (only finished ones count; `failed` and
//! `error` are failures):
//!
//! * **roll back at once** when the canary's failure rate is confidently above
//!   `max_failure_rate`: the lower bound of the 95 % Wilson score interval of the failure
//!   rate exceeds it ([`trips`]). A is back at S, routing cleared.
//! * **advance** only once the step's time is up, the canary had at least `min_executions`
//!   finished executions in it, and the rule above did not trip.
//! * otherwise **wait**.
//!
//! Decisions run in the jobs' scheduler loop and in `POST /v1/jobs/tick` ([`decide_due`]).
//! Each is one transaction that moves the rollout on by compare-and-swap on its `revision`, so
//! however many schedulers decide at once on one database, each decision is taken once.
//! While a rollout runs, its alias cannot be changed or deleted by hand, and neither of its
//! versions can be deleted.

use crate::domain::aliases::{self, Alias, Cause};
use crate::domain::commands::Routing;
use crate::domain::context::Caller;
use crate::domain::types::{VersionNumber, VersionRef};
use crate::domain::versions;
use crate::error::{ApiError, ApiResult};
use crate::store::db::{in_transaction, Database, Row};
use crate::time::{format_timestamp, now_unix};
use serde_json::{json, Value as Json};

mod decisions;
mod plan;
mod rule;

pub use decisions::{decide_due, Decided};
pub use plan::RolloutPlan;
pub use rule::{fewest_failures_that_trip, trips, wilson_lower_bound};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RolloutStatus {
    Running,
    Promoted,
    RolledBack,
    Aborted,
}

impl RolloutStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RolloutStatus::Running => "running",
            RolloutStatus::Promoted => "promoted",
            RolloutStatus::RolledBack => "rolled_back",
            RolloutStatus::Aborted => "aborted",
        }
    }

    pub fn parse(s: &str) -> Option<RolloutStatus> {
        [
            RolloutStatus::Running,
            RolloutStatus::Promoted,
            RolloutStatus::RolledBack,
            RolloutStatus::Aborted,
        ]
        .into_iter()
        .find(|status| status.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Rollout {
    pub id: String,
    pub alias_id: String,
    pub alias_name: String,
    pub project_id: String,
    pub function_id: String,
    pub from_version: VersionRef,
    pub plan: RolloutPlan,
    pub status: RolloutStatus,
    /// The index of the current step in `plan.steps` (their count once promoted).
    pub step: usize,
    pub step_started_at: i64,
    pub revision: i64,
    /// Why the last decision was taken.
    pub reason: Option<String>,
    pub created_at: String,
    pub updated_at: Option<String>,
}

const COLUMNS: &str = "id, alias_id, alias_name, project_id, function_id, from_version,
    to_version, steps, step_seconds, max_failure_rate, min_executions, status, step,
    step_started_at, revision, reason, created_at, updated_at";

/// Executions and failures (finished ones only) of one version in a rollout's current step.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub executions: i64,
    pub failures: i64,
}

impl Counts {
    pub fn failure_rate(self) -> Option<f64> {
        (self.executions > 0).then(|| self.failures as f64 / self.executions as f64)
    }
}

/// What a rollout does next.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Nothing yet; why.
    Wait(String),
    /// On to step `.0` (an index into the steps); why.
    Advance(usize, String),
    /// The alias points at the canary; why.
    Promote(String),
    /// The alias goes back to the stable version; why.
    RollBack(String),
}

fn percent(p: f64) -> String {
    format!("{p}%")
}

impl Rollout {
    fn from_row(r: Row) -> Rollout {
        let steps: Vec<f64> = serde_json::from_str(&r.text("steps")).unwrap_or_default();
        Rollout {
            id: r.text("id"),
            alias_id: r.text("alias_id"),
            alias_name: r.text("alias_name"),
            project_id: r.text("project_id"),
            function_id: r.text("function_id"),
            from_version: VersionRef::from_wire(r.int("from_version"))
                .unwrap_or(VersionRef::Current),
            plan: RolloutPlan {
                // Only a checked plan is stored.
                to_version: VersionNumber::new(r.int("to_version"))
                    .unwrap_or(VersionNumber::new(1).expect("1 is a version number")),
                steps,
                step_seconds: r.int("step_seconds"),
                max_failure_rate: r.text("max_failure_rate").parse().unwrap_or(0.0),
                min_executions: r.int("min_executions"),
            },
            status: RolloutStatus::parse(&r.text("status")).unwrap_or(RolloutStatus::Aborted),
            step: usize::try_from(r.int("step")).unwrap_or_default(),
            step_started_at: r.int("step_started_at"),
            revision: r.int("revision"),
            reason: r.opt_text("reason"),
            created_at: r.text("created_at"),
            updated_at: r.opt_text("updated_at"),
        }
    }

    /// The canary's share of the traffic now, in percent (100 once promoted, 0 once ended
    /// otherwise).
    pub fn weight(&self) -> f64 {
        match self.status {
            RolloutStatus::Running => self.plan.steps.get(self.step).copied().unwrap_or(100.0),
            RolloutStatus::Promoted => 100.0,
            _ => 0.0,
        }
    }

    /// The alias's routing at step `step`.
    fn routing_at(&self, step: usize) -> Routing {
        Routing::from_routes(vec![(self.plan.to_version, self.plan.steps[step] / 100.0)])
    }

    /// The decision at `now` for these counts of the canary in the current step.
    pub fn decide(&self, canary: Counts, now: i64) -> Decision {
        let plan = &self.plan;
        let (step, weight) = (self.step + 1, percent(self.weight()));
        let n = plan.to_version;
        let (f, e) = (canary.failures, canary.executions);
        let bound = wilson_lower_bound(f, e);
        if trips(f, e, plan.max_failure_rate) {
            return Decision::RollBack(format!(
                "Version {n} failed {f} of {e} executions in step {step} ({weight}): the lower bound of the 95% Wilson interval of its failure rate, {bound:.4}, is above max_failure_rate {}.",
                plan.max_failure_rate
            ));
        }
        let ends_at = self.step_started_at + plan.step_seconds;
        if now < ends_at {
            return Decision::Wait(format!(
                "Step {step} ({weight}) ends in {} s; version {n} has {e} finished executions ({f} failed) of at least {} needed.",
                ends_at - now,
                plan.min_executions
            ));
        }
        if e < plan.min_executions {
            return Decision::Wait(format!(
                "Step {step} ({weight}) is over but version {n} has only {e} finished executions of at least {} needed.",
                plan.min_executions
            ));
        }
        let evidence = format!(
            "version {n} failed {f} of {e} executions in step {step} ({weight}); the lower bound of the 95% Wilson interval of its failure rate, {bound:.4}, is not above max_failure_rate {}",
            plan.max_failure_rate
        );
        match plan.steps.get(self.step + 1) {
            Some(next) => Decision::Advance(
                self.step + 1,
                format!(
                    "Step {step} passed: {evidence}. On to step {} ({}).",
                    step + 1,
                    percent(*next)
                ),
            ),
            None => Decision::Promote(format!(
                "Last step passed: {evidence}. The alias now points at version {n}."
            )),
        }
    }

    pub fn to_json(&self, stable: Counts, canary: Counts, next: Option<&str>) -> Json {
        let counts = |c: Counts| {
            json!({
                "executions": c.executions,
                "failures": c.failures,
                "failure_rate": c.failure_rate(),
                "failure_rate_lower_bound": wilson_lower_bound(c.failures, c.executions),
            })
        };
        json!({
            "id": self.id,
            "alias": self.alias_name,
            "function_id": self.function_id,
            "from_version": self.from_version,
            "to_version": self.plan.to_version,
            "steps": self.plan.steps,
            "step_seconds": self.plan.step_seconds,
            "max_failure_rate": self.plan.max_failure_rate,
            "min_executions": self.plan.min_executions,
            "status": self.status.as_str(),
            "step": (self.step + 1).min(self.plan.steps.len()),
            "weight": self.weight(),
            "step_started_at": format_timestamp(self.step_started_at),
            "step_ends_at": (self.status == RolloutStatus::Running)
                .then(|| format_timestamp(self.step_started_at + self.plan.step_seconds)),
            "current_step": {
                "stable": counts(stable),
                "canary": counts(canary),
            },
            "reason": self.reason,
            "next": next,
            "project_id": self.project_id,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        })
    }
}

fn not_found(name: &str) -> ApiError {
    ApiError::not_found(format!("Rollout not found [alias={name}]"))
}

fn running_of(db: &dyn Database, alias_id: &str) -> ApiResult<Option<Rollout>> {
    Ok(db
        .execute(
            &format!(
                "SELECT {COLUMNS} FROM alias_rollouts WHERE alias_id = ? AND status = 'running'"
            ),
            &[alias_id.into()],
        )?
        .first()
        .map(Rollout::from_row))
}

/// The newest rollout of `alias`, running or ended.
fn newest_of(db: &dyn Database, alias: &Alias) -> ApiResult<Option<Rollout>> {
    Ok(db
        .execute(
            &format!(
                "SELECT {COLUMNS} FROM alias_rollouts WHERE alias_id = ?
                 ORDER BY {order} DESC LIMIT 1",
                order = db.dialect().insertion_order()
            ),
            &[alias.id.as_str().into()],
        )?
        .first()
        .map(Rollout::from_row))
}

/// Finished executions and failures through `rollout`'s alias of `version` since its step
/// began.
fn counts(db: &dyn Database, rollout: &Rollout, version: VersionRef) -> ApiResult<Counts> {
    let row = db.execute(
        "SELECT COUNT(*) AS executions,
                COALESCE(SUM(CASE WHEN status IN ('failed', 'error') THEN 1 ELSE 0 END), 0) AS failures
         FROM executions
         WHERE project_id = ? AND created_at >= ? AND function_alias = ? AND function_id = ?
             AND function_version = ? AND status != 'running'",
        &[
            rollout.project_id.as_str().into(),
            format_timestamp(rollout.step_started_at).into(),
            rollout.alias_name.as_str().into(),
            rollout.function_id.as_str().into(),
            version.to_wire().into(),
        ],
    )?;
    Ok(row.first().map_or(Counts::default(), |r| Counts {
        executions: r.int("executions"),
        failures: r.int("failures"),
    }))
}

/// The stable and canary counts of a rollout's current step (none once it ended).
fn step_counts(db: &dyn Database, rollout: &Rollout) -> ApiResult<(Counts, Counts)> {
    if rollout.status != RolloutStatus::Running {
        return Ok((Counts::default(), Counts::default()));
    }
    Ok((
        counts(db, rollout, rollout.from_version)?,
        counts(db, rollout, VersionRef::Number(rollout.plan.to_version))?,
    ))
}

/// A rollout as shown: with its current step's counts and, while it runs, what it waits for.
fn render(db: &dyn Database, rollout: &Rollout, now: i64) -> ApiResult<Json> {
    let (stable, canary) = step_counts(db, rollout)?;
    let next = match rollout.status {
        RolloutStatus::Running => Some(match rollout.decide(canary, now) {
            Decision::Wait(why) => why,
            Decision::Advance(..) | Decision::Promote(_) | Decision::RollBack(_) => {
                "A decision is due at the next tick of the scheduler.".to_string()
            }
        }),
        _ => None,
    };
    Ok(rollout.to_json(stable, canary, next.as_deref()))
}

/// `GET /v1/aliases/{name}/rollout`: the alias's newest rollout.
pub fn show(db: &dyn Database, caller: &Caller, name: &str) -> ApiResult<Json> {
    let alias = aliases::find(db, caller, name)?;
    let rollout = newest_of(db, &alias)?.ok_or_else(|| not_found(name))?;
    render(db, &rollout, now_unix())
}

/// `POST /v1/aliases/{name}/rollout`: starts a rollout of the caller's alias from its version
/// to `plan.to_version`.
pub fn start(db: &dyn Database, caller: &Caller, name: &str, plan: RolloutPlan) -> ApiResult<Json> {
    let now = now_unix();
    let rollout = in_transaction(db, |tx| {
        let alias = aliases::find_own(tx, caller, name)?;
        if running_of(tx, &alias.id)?.is_some() {
            return Err(ApiError::conflict(format!(
                "FunctionAlias {name} already has a running rollout."
            )));
        }
        if !alias.routing.is_empty() {
            return Err(ApiError::conflict(format!(
                "FunctionAlias {name} already splits its traffic; clear its routing before a rollout."
            )));
        }
        if alias.function_version == VersionRef::Number(plan.to_version) {
            return Err(ApiError::bad_request(format!(
                "FunctionAlias {name} already points at version {}.",
                plan.to_version
            )));
        }
        versions::find(
            tx,
            &crate::store::cache::NoCache,
            caller,
            alias.function_id.as_str(),
            plan.to_version,
        )?;
        // Promotion points the alias at the canary: no other alias may hold it (Qinling's
        // one alias per function version).
        let held = tx
            .execute(
                "SELECT name FROM function_aliases
                 WHERE project_id = ? AND function_id = ? AND function_version = ?",
                &[
                    alias.project_id.as_str().into(),
                    alias.function_id.as_str().into(),
                    plan.to_version.get().into(),
                ],
            )?
            .first()
            .map(|r| r.text("name"));
        if let Some(other) = held {
            return Err(ApiError::conflict(format!(
                "Version {} is already the version of FunctionAlias {other}; an alias cannot be promoted to it.",
                plan.to_version
            )));
        }
        let rollout = Rollout {
            id: crate::id::new_id(),
            alias_id: alias.id.clone(),
            alias_name: alias.name.clone(),
            project_id: alias.project_id.clone(),
            function_id: alias.function_id.to_string(),
            from_version: alias.function_version,
            plan: plan.clone(),
            status: RolloutStatus::Running,
            step: 0,
            step_started_at: now,
            revision: 0,
            reason: Some(format!(
                "Started by project {}: version {} takes {} of the traffic.",
                caller.project_id,
                plan.to_version,
                percent(plan.steps[0])
            )),
            created_at: format_timestamp(now),
            updated_at: None,
        };
        tx.execute(
            &format!(
                "INSERT INTO alias_rollouts ({COLUMNS})
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL)"
            ),
            &[
                rollout.id.as_str().into(),
                rollout.alias_id.as_str().into(),
                rollout.alias_name.as_str().into(),
                rollout.project_id.as_str().into(),
                rollout.function_id.as_str().into(),
                rollout.from_version.to_wire().into(),
                plan.to_version.get().into(),
                serde_json::to_string(&plan.steps)
                    .expect("numbers serialise")
                    .into(),
                plan.step_seconds.into(),
                plan.max_failure_rate.to_string().into(),
                plan.min_executions.into(),
                rollout.status.as_str().into(),
                0i64.into(),
                now.into(),
                0i64.into(),
                rollout.reason.clone().into(),
                rollout.created_at.as_str().into(),
            ],
        )?;
        aliases::retarget(
            tx,
            &alias,
            alias.function_version,
            rollout.routing_at(0),
            Some(caller),
            Cause::RolloutStarted,
            rollout.reason.as_deref().unwrap_or_default(),
        )?;
        Ok(rollout)
    })?;
    render(db, &rollout, now)
}

/// `DELETE /v1/aliases/{name}/rollout`: aborts the running rollout of the caller's alias; the
/// alias goes back to the stable version.
pub fn abort(db: &dyn Database, caller: &Caller, name: &str) -> ApiResult<Json> {
    let now = now_unix();
    let rollout = in_transaction(db, |tx| {
        let alias = aliases::find_own(tx, caller, name)?;
        let Some(rollout) = running_of(tx, &alias.id)? else {
            return Err(match newest_of(tx, &alias)? {
                None => not_found(name),
                Some(r) => ApiError::conflict(format!(
                    "The rollout of FunctionAlias {name} is not running (it is {}).",
                    r.status.as_str()
                )),
            });
        };
        let reason = format!(
            "Aborted by project {} at step {} ({}); the alias is back at version {}.",
            caller.project_id,
            rollout.step + 1,
            percent(rollout.weight()),
            rollout.from_version.to_wire()
        );
        apply(
            tx,
            &rollout,
            &alias,
            RolloutStatus::Aborted,
            rollout.step,
            now,
            &reason,
            Some(caller),
        )?
        .ok_or_else(|| ApiError::conflict("The rollout changed meanwhile; try again."))
    })?;
    render(db, &rollout, now)
}

/// Moves `rollout` (as read) on, and its alias with it, if no one else did meanwhile.
#[allow(clippy::too_many_arguments)]
fn apply(
    tx: &dyn Database,
    rollout: &Rollout,
    alias: &Alias,
    status: RolloutStatus,
    step: usize,
    now: i64,
    reason: &str,
    caller: Option<&Caller>,
) -> ApiResult<Option<Rollout>> {
    let step_started_at = if step != rollout.step {
        now
    } else {
        rollout.step_started_at
    };
    let moved = tx.execute(
        "UPDATE alias_rollouts SET status = ?, step = ?, step_started_at = ?, reason = ?,
             revision = revision + 1, updated_at = ?
         WHERE id = ? AND status = 'running' AND revision = ?
         RETURNING id",
        &[
            status.as_str().into(),
            (step as i64).into(),
            step_started_at.into(),
            reason.into(),
            format_timestamp(now).into(),
            rollout.id.as_str().into(),
            rollout.revision.into(),
        ],
    )?;
    if moved.first().is_none() {
        return Ok(None);
    }
    let (version, routing, cause) = match status {
        RolloutStatus::Running => (
            rollout.from_version,
            rollout.routing_at(step),
            Cause::RolloutStep,
        ),
        RolloutStatus::Promoted => (
            VersionRef::Number(rollout.plan.to_version),
            Routing::default(),
            Cause::Promotion,
        ),
        RolloutStatus::RolledBack => (rollout.from_version, Routing::default(), Cause::Rollback),
        RolloutStatus::Aborted => (rollout.from_version, Routing::default(), Cause::Abort),
    };
    aliases::retarget(tx, alias, version, routing, caller, cause, reason)?;
    Ok(Some(Rollout {
        status,
        step,
        step_started_at,
        revision: rollout.revision + 1,
        reason: Some(reason.to_string()),
        updated_at: Some(format_timestamp(now)),
        ..rollout.clone()
    }))
}

/// Whether some rollout is running (the scheduler's loop keeps going for it).
pub fn any_running(db: &dyn Database) -> ApiResult<bool> {
    Ok(db
        .execute(
            "SELECT 1 FROM alias_rollouts WHERE status = 'running' LIMIT 1",
            &[],
        )?
        .first()
        .is_some())
}

#[cfg(test)]
mod tests;
