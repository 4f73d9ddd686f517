//! The decisions of running rollouts that are due (advance, promote, roll back), taken in the
//! scheduler loop and the tick endpoint, each once across replicas (see the module above).

use super::{apply, counts, Decision, Rollout, RolloutStatus, COLUMNS};
use crate::domain::aliases;
use crate::domain::context::Caller;
use crate::domain::types::VersionRef;
use crate::error::ApiResult;
use crate::store::db::{in_transaction, Database};
use serde_json::{json, Map, Value as Json};

/// A decision taken: which rollout, and what became of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Decided {
    pub rollout_id: String,
    pub alias: String,
    pub status: RolloutStatus,
    pub step: usize,
    pub reason: String,
}

impl Decided {
    pub fn to_json(&self) -> Json {
        let mut object = Map::new();
        object.insert("rollout_id".into(), json!(self.rollout_id));
        object.insert("alias".into(), json!(self.alias));
        object.insert("status".into(), json!(self.status.as_str()));
        object.insert("step".into(), json!(self.step + 1));
        object.insert("reason".into(), json!(self.reason));
        Json::Object(object)
    }
}

/// The most running rollouts one tick decides on; the rest on the next tick.
const TICK_BATCH: i64 = 100;

/// Takes every decision due at `now` on the running rollouts, each once however many
/// schedulers call this at the same time. Returns the decisions taken (not the waits).
pub fn decide_due(db: &dyn Database, now: i64) -> ApiResult<Vec<Decided>> {
    let running: Vec<Rollout> = db
        .execute(
            &format!(
                "SELECT {COLUMNS} FROM alias_rollouts WHERE status = 'running'
                 ORDER BY step_started_at, id LIMIT {TICK_BATCH}"
            ),
            &[],
        )?
        .iter()
        .map(Rollout::from_row)
        .collect();
    let mut decided = Vec::new();
    for rollout in running {
        // Reads first, outside any transaction: most ticks decide nothing.
        let canary = counts(db, &rollout, VersionRef::Number(rollout.plan.to_version))?;
        if let Decision::Wait(_) = rollout.decide(canary, now) {
            continue;
        }
        match decide_one(db, &rollout.id, now) {
            Ok(Some(d)) => decided.push(d),
            Ok(None) => {}
            Err(e) => eprintln!("rollout {} could not decide: {}", rollout.id, e.log_line()),
        }
    }
    Ok(decided)
}

/// Decides on one rollout inside a transaction, from what it reads there.
fn decide_one(db: &dyn Database, id: &str, now: i64) -> ApiResult<Option<Decided>> {
    in_transaction(db, |tx| {
        let Some(rollout) = tx
            .execute(
                &format!(
                    "SELECT {COLUMNS} FROM alias_rollouts WHERE id = ? AND status = 'running'"
                ),
                &[id.into()],
            )?
            .first()
            .map(Rollout::from_row)
        else {
            return Ok(None);
        };
        let canary = counts(tx, &rollout, VersionRef::Number(rollout.plan.to_version))?;
        let (status, step, reason) = match rollout.decide(canary, now) {
            Decision::Wait(_) => return Ok(None),
            Decision::Advance(step, why) => (RolloutStatus::Running, step, why),
            Decision::Promote(why) => (RolloutStatus::Promoted, rollout.plan.steps.len(), why),
            Decision::RollBack(why) => (RolloutStatus::RolledBack, rollout.step, why),
        };
        let Some(alias) = tx
            .execute(
                "SELECT name FROM function_aliases WHERE id = ?",
                &[rollout.alias_id.as_str().into()],
            )?
            .first()
            .map(|r| r.text("name"))
        else {
            return Ok(None);
        };
        let owner = Caller::acting_for(&rollout.project_id, false, None);
        let alias = aliases::find_own(tx, &owner, &alias)?;
        let applied = apply(tx, &rollout, &alias, status, step, now, &reason, None)?;
        Ok(applied.map(|r| Decided {
            rollout_id: r.id,
            alias: r.alias_name,
            status: r.status,
            step: r.step,
            reason,
        }))
    })
}
