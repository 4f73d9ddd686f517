//! Per-version numbers of a function (issue 25): executions, failures and durations, from
//! the stored executions, to compare a canary with the stable version.

use crate::domain::context::Caller;
use crate::domain::functions;
use crate::error::ApiResult;
use crate::store::db::Database;
use crate::time::format_timestamp;
use serde_json::{json, Value as Json};

/// The default window of `?since=`: the last day.
pub const DEFAULT_WINDOW_SECONDS: i64 = 24 * 3600;

/// The `p`-th percentile (0 < p ≤ 100) of sorted `values`, by nearest rank; none when empty.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// One version's numbers.
#[derive(Debug, Clone, PartialEq)]
pub struct VersionStats {
    /// 0 for the function's current code.
    pub version: i64,
    pub executions: i64,
    pub failures: i64,
    pub running: i64,
    /// Durations (seconds) of the finished executions that report one, sorted.
    pub durations: Vec<f64>,
}

impl VersionStats {
    pub fn to_json(&self) -> Json {
        let finished = self.executions - self.running;
        json!({
            "function_version": self.version,
            "executions": self.executions,
            "failures": self.failures,
            "running": self.running,
            "failure_rate": (finished > 0).then(|| self.failures as f64 / finished as f64),
            "failure_rate_lower_bound": crate::domain::rollouts::wilson_lower_bound(self.failures, finished),
            "duration": {
                "p50": percentile(&self.durations, 50.0),
                "p95": percentile(&self.durations, 95.0),
                "p99": percentile(&self.durations, 99.0),
            },
        })
    }
}

/// The numbers of every version of function `function_id` (visible to the caller) that ran
/// since `since` (Unix seconds), by version number.
pub fn of_function(
    db: &dyn Database,
    caller: &Caller,
    function_id: &str,
    since: i64,
) -> ApiResult<Json> {
    let function = functions::find(db, caller, function_id)?;
    let rows = db.execute(
        &format!(
            "SELECT function_version, status, {} AS duration
             FROM executions WHERE function_id = ? AND project_id = ? AND created_at >= ?
             ORDER BY function_version",
            db.dialect().json_text("result", "duration")
        ),
        &[
            function_id.into(),
            function.project_id.as_str().into(),
            format_timestamp(since).into(),
        ],
    )?;
    let mut versions: Vec<VersionStats> = Vec::new();
    for row in rows.iter() {
        let version = row.int("function_version");
        if versions.last().is_none_or(|v| v.version != version) {
            versions.push(VersionStats {
                version,
                executions: 0,
                failures: 0,
                running: 0,
                durations: Vec::new(),
            });
        }
        let v = versions.last_mut().expect("pushed above");
        v.executions += 1;
        match row.text("status").as_str() {
            "running" => v.running += 1,
            "failed" | "error" => v.failures += 1,
            _ => {}
        }
        if let Some(d) = row.opt_text("duration").and_then(|d| d.parse::<f64>().ok()) {
            v.durations.push(d);
        }
    }
    for v in &mut versions {
        v.durations.sort_by(f64::total_cmp);
    }
    Ok(json!({
        "function_id": function_id,
        "since": format_timestamp(since),
        "versions": versions.iter().map(VersionStats::to_json).collect::<Vec<_>>(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_by_nearest_rank() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&values, 50.0), Some(50.0));
        assert_eq!(percentile(&values, 95.0), Some(95.0));
        assert_eq!(percentile(&values, 99.0), Some(99.0));
        assert_eq!(percentile(&[3.0], 99.0), Some(3.0));
        assert_eq!(percentile(&[], 50.0), None);
    }
}
