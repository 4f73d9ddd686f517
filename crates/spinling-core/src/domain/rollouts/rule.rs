//! The rule that rolls a rollout back: the canary's failure rate is confidently above its
//! limit when the lower bound of the 95 % Wilson score interval of that rate exceeds it, so a
//! few unlucky executions never decide alone.

/// The normal quantile of a two-sided 95 % interval.
pub const WILSON_Z: f64 = 1.959_963_984_540_054;

/// The lower bound of the 95 % Wilson score interval of a rate of `failures` out of `n`
/// (0 when `n` is 0).
pub fn wilson_lower_bound(failures: i64, n: i64) -> f64 {
    // No failures: the bound is 0 exactly (the formula leaves a rounding crumb).
    if n <= 0 || failures <= 0 {
        return 0.0;
    }
    let (f, n) = (failures.clamp(0, n) as f64, n as f64);
    let p = f / n;
    let z2 = WILSON_Z * WILSON_Z;
    let centre = p + z2 / (2.0 * n);
    let margin = WILSON_Z * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    ((centre - margin) / (1.0 + z2 / n)).max(0.0)
}

/// Whether `failures` out of `n` executions show a failure rate confidently above `max_rate`:
/// the rule that rolls a rollout back.
pub fn trips(failures: i64, n: i64, max_rate: f64) -> bool {
    wilson_lower_bound(failures, n) > max_rate
}

/// The fewest failures out of `n` executions that trip the rule for `max_rate` (none if even
/// `n` failures do not): the table in docs/releasing.md.
pub fn fewest_failures_that_trip(n: i64, max_rate: f64) -> Option<i64> {
    (0..=n).find(|f| trips(*f, n, max_rate))
}
