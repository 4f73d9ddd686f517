//! What a rollout request asks for: the target version, the steps of traffic, how long each
//! lasts, and the failure rate and sample size decisions respect; every field checked with
//! Qinling's error wording, every one but the target with a default.

use crate::domain::types::VersionNumber;
use crate::error::{ApiError, ApiResult};
use serde_json::Value as Json;

/// What a rollout request asks for, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct RolloutPlan {
    pub to_version: VersionNumber,
    /// Percentages of the traffic the canary takes, each in (0, 100), increasing.
    pub steps: Vec<f64>,
    pub step_seconds: i64,
    pub max_failure_rate: f64,
    pub min_executions: i64,
}

pub const DEFAULT_STEPS: [f64; 2] = [10.0, 50.0];

pub const DEFAULT_STEP_SECONDS: i64 = 300;

pub const DEFAULT_MAX_FAILURE_RATE: f64 = 0.05;

pub const DEFAULT_MIN_EXECUTIONS: i64 = 50;

pub const MAX_STEPS: usize = 10;

/// A week.
pub const MAX_STEP_SECONDS: i64 = 7 * 24 * 3600;

fn invalid(field: &str, value: &Json, why: &str) -> ApiError {
    ApiError::bad_request(format!(
        "Invalid input for field/attribute {field}. Value: '{value}'. {why}"
    ))
}

impl RolloutPlan {
    /// The plan a request body gives; every field but `to_version` has a default.
    pub fn parse(body: &Json) -> ApiResult<RolloutPlan> {
        let Some(object) = body.as_object() else {
            return Err(ApiError::bad_request(
                "The body of a rollout must be a JSON object.",
            ));
        };
        const KNOWN: [&str; 5] = [
            "to_version",
            "steps",
            "step_seconds",
            "max_failure_rate",
            "min_executions",
        ];
        if let Some(unknown) = object.keys().find(|k| !KNOWN.contains(&k.as_str())) {
            return Err(ApiError::bad_request(format!(
                "Unknown attribute for argument body: {unknown}"
            )));
        }
        let given = |name: &str| object.get(name).filter(|v| !v.is_null());
        let to_version = match given("to_version") {
            None => {
                return Err(ApiError::bad_request(
                    "Required param is missing. Required: {'to_version'}",
                ))
            }
            Some(v) => v.as_i64().and_then(VersionNumber::new).ok_or_else(|| {
                invalid("to_version", v, "A version number (1 or more) is required.")
            })?,
        };
        let steps = match given("steps") {
            None => DEFAULT_STEPS.to_vec(),
            Some(v) => parse_steps(v)?,
        };
        let step_seconds = match given("step_seconds") {
            None => DEFAULT_STEP_SECONDS,
            Some(v) => v
                .as_i64()
                .filter(|s| (1..=MAX_STEP_SECONDS).contains(s))
                .ok_or_else(|| {
                    invalid(
                        "step_seconds",
                        v,
                        &format!("An integer from 1 to {MAX_STEP_SECONDS} is required."),
                    )
                })?,
        };
        let max_failure_rate = match given("max_failure_rate") {
            None => DEFAULT_MAX_FAILURE_RATE,
            Some(v) => v
                .as_f64()
                .filter(|r| (0.0..1.0).contains(r))
                .ok_or_else(|| {
                    invalid(
                        "max_failure_rate",
                        v,
                        "A number from 0 (included) to 1 (excluded) is required.",
                    )
                })?,
        };
        let min_executions = match given("min_executions") {
            None => DEFAULT_MIN_EXECUTIONS,
            Some(v) => v
                .as_i64()
                .filter(|n| (1..=1_000_000).contains(n))
                .ok_or_else(|| {
                    invalid(
                        "min_executions",
                        v,
                        "An integer from 1 to 1000000 is required.",
                    )
                })?,
        };
        Ok(RolloutPlan {
            to_version,
            steps,
            step_seconds,
            max_failure_rate,
            min_executions,
        })
    }
}

fn parse_steps(value: &Json) -> ApiResult<Vec<f64>> {
    let why = format!(
        "A list of 1 to {MAX_STEPS} increasing percentages, each between 0 and 100 (both excluded), is required."
    );
    let steps: Vec<f64> = value
        .as_array()
        .filter(|a| (1..=MAX_STEPS).contains(&a.len()))
        .and_then(|a| a.iter().map(Json::as_f64).collect::<Option<Vec<f64>>>())
        .ok_or_else(|| invalid("steps", value, &why))?;
    let in_range = steps.iter().all(|s| *s > 0.0 && *s < 100.0);
    let increasing = steps.windows(2).all(|w| w[0] < w[1]);
    if !in_range || !increasing {
        return Err(invalid("steps", value, &why));
    }
    Ok(steps)
}
