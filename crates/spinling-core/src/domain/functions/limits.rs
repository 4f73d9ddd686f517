//! Qinling's resource limits of a function (cpu, memory, timeout) with their defaults and
//! bounds, and the entry point's.

use crate::error::{ApiError, ApiResult};
use serde_json::Value as Json;

/// Qinling's `[resource_limits]` defaults; a version snapshots the values in force.
pub struct Limit {
    pub field: &'static str,
    label: &'static str,
    unit: &'static str,
    pub default: i64,
    pub min: i64,
    pub max: i64,
}

pub const CPU: Limit = Limit {
    field: "cpu",
    label: "cpu",
    unit: "millicpu",
    default: 100,
    min: 100,
    max: 300,
};

pub const MEMORY: Limit = Limit {
    field: "memory_size",
    label: "memory",
    unit: "bytes",
    default: 33_554_432,
    min: 33_554_432,
    max: 134_217_728,
};

pub const TIMEOUT: Limit = Limit {
    field: "timeout",
    label: "timeout",
    unit: "seconds",
    default: 5,
    min: 1,
    max: 300,
};

/// The entry Qinling gives functions of external (Python) runtimes.
pub const DEFAULT_ENTRY: &str = "main.main";

/// The longest entry accepted, in characters.
pub const MAX_ENTRY: usize = 80;

impl Limit {
    /// The limit's value given as `value`: an integer (or its text) within the range
    /// (Qinling's messages).
    pub fn check(&self, value: &Json) -> ApiResult<i64> {
        // Wide enough that any integer, however large (Python's `int()` takes them all), is
        // judged by the range; float-to-int casts saturate.
        let n: i128 = match value {
            Json::Number(n) => n
                .as_i64()
                .map(i128::from)
                .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i128)),
            Json::String(s) => {
                let digits = s.trim();
                match digits.parse::<i128>() {
                    Ok(n) => Some(n),
                    Err(e) if *e.kind() == std::num::IntErrorKind::PosOverflow => Some(i128::MAX),
                    Err(e) if *e.kind() == std::num::IntErrorKind::NegOverflow => Some(i128::MIN),
                    Err(_) => None,
                }
            }
            _ => None,
        }
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "Invalid {} resource specified. An integer is required.",
                self.label
            ))
        })?;
        match i64::try_from(n) {
            Ok(n) if (self.min..=self.max).contains(&n) => Ok(n),
            _ => Err(ApiError::bad_request(format!(
                "{} resource limitation not within the allowable range: {} ~ {}({}).",
                self.label, self.min, self.max, self.unit
            ))),
        }
    }
}
