use super::plan::DEFAULT_MAX_FAILURE_RATE;
use super::plan::DEFAULT_MIN_EXECUTIONS;
use super::plan::DEFAULT_STEPS;
use super::plan::DEFAULT_STEP_SECONDS;
use super::rule::WILSON_Z;
use super::*;

const T0: i64 = 1_893_456_000;

fn plan(
    steps: &[f64],
    step_seconds: i64,
    max_failure_rate: f64,
    min_executions: i64,
) -> RolloutPlan {
    RolloutPlan {
        to_version: VersionNumber::new(2).unwrap(),
        steps: steps.to_vec(),
        step_seconds,
        max_failure_rate,
        min_executions,
    }
}

fn rollout(plan: RolloutPlan, step: usize) -> Rollout {
    Rollout {
        id: "r".into(),
        alias_id: "a".into(),
        alias_name: "prod".into(),
        project_id: "p".into(),
        function_id: "f".into(),
        from_version: VersionRef::Number(VersionNumber::new(1).unwrap()),
        plan,
        status: RolloutStatus::Running,
        step,
        step_started_at: T0,
        revision: 0,
        reason: None,
        created_at: format_timestamp(T0),
        updated_at: None,
    }
}

fn counts(executions: i64, failures: i64) -> Counts {
    Counts {
        executions,
        failures,
    }
}

#[test]
fn the_wilson_lower_bound_matches_known_values() {
    // 0 of n: the bound is 0; n of n: n / (n + z²).
    assert_eq!(wilson_lower_bound(0, 100), 0.0);
    let z2 = WILSON_Z * WILSON_Z;
    assert!((wilson_lower_bound(10, 10) - 10.0 / (10.0 + z2)).abs() < 1e-12);
    // 10 of 100: 0.0552 (the textbook value).
    assert!((wilson_lower_bound(10, 100) - 0.05523).abs() < 1e-4);
    assert_eq!(wilson_lower_bound(0, 0), 0.0);
}

#[test]
fn a_single_failure_trips_a_five_percent_limit_but_not_a_fifty_percent_one() {
    assert!(trips(1, 1, 0.05));
    assert!(!trips(1, 1, 0.5));
    assert!(!trips(3, 3, 0.5));
    assert!(trips(4, 4, 0.5));
}

#[test]
fn no_executions_never_trip() {
    assert!(!trips(0, 0, 0.0));
}

#[test]
fn the_table_of_failures_that_trip_the_rule_is_monotonic() {
    for rate in [0.01, 0.05, 0.1] {
        let mut last = 0;
        for n in [10, 20, 50, 100, 200, 500, 1000] {
            let f = fewest_failures_that_trip(n, rate).unwrap();
            assert!(f >= last, "{rate} {n}");
            assert!(
                f as f64 / n as f64 > rate,
                "tripping needs more than the rate"
            );
            last = f;
        }
    }
    assert_eq!(fewest_failures_that_trip(100, 0.05), Some(10));
    assert_eq!(fewest_failures_that_trip(4, 0.5), Some(4));
}

#[test]
fn a_plan_takes_defaults_for_all_but_the_version() {
    let p = RolloutPlan::parse(&json!({"to_version": 3})).unwrap();
    assert_eq!(p.steps, DEFAULT_STEPS.to_vec());
    assert_eq!(p.step_seconds, DEFAULT_STEP_SECONDS);
    assert_eq!(p.max_failure_rate, DEFAULT_MAX_FAILURE_RATE);
    assert_eq!(p.min_executions, DEFAULT_MIN_EXECUTIONS);
    assert_eq!(
        RolloutPlan::parse(&json!({})).unwrap_err().message,
        "Required param is missing. Required: {'to_version'}"
    );
}

#[test]
fn a_plan_refuses_steps_that_do_not_increase_or_leave_the_range() {
    for steps in [
        json!([]),
        json!([50, 10]),
        json!([10, 10]),
        json!([0, 50]),
        json!([10, 100]),
        json!("10"),
        json!([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]),
    ] {
        let e = RolloutPlan::parse(&json!({"to_version": 2, "steps": steps})).unwrap_err();
        assert_eq!(e.status(), 400);
        assert!(
            e.message
                .starts_with("Invalid input for field/attribute steps."),
            "{}",
            e.message
        );
    }
}

#[test]
fn a_plan_refuses_bad_numbers_and_unknown_fields() {
    for body in [
        json!({"to_version": 0}),
        json!({"to_version": 2, "step_seconds": 0}),
        json!({"to_version": 2, "max_failure_rate": 1}),
        json!({"to_version": 2, "max_failure_rate": -0.1}),
        json!({"to_version": 2, "min_executions": 0}),
        json!({"to_version": 2, "colour": "red"}),
    ] {
        assert_eq!(
            RolloutPlan::parse(&body).unwrap_err().status(),
            400,
            "{body}"
        );
    }
}

#[test]
fn a_step_waits_for_its_time_even_with_enough_executions() {
    let r = rollout(plan(&[10.0, 50.0], 60, 0.05, 10), 0);
    assert!(matches!(
        r.decide(counts(100, 0), T0 + 59),
        Decision::Wait(_)
    ));
}

#[test]
fn a_step_waits_past_its_time_until_enough_executions() {
    let r = rollout(plan(&[10.0, 50.0], 60, 0.05, 10), 0);
    assert!(matches!(
        r.decide(counts(9, 0), T0 + 600),
        Decision::Wait(_)
    ));
    assert_eq!(
        r.decide(counts(10, 0), T0 + 60),
        Decision::Advance(
            1,
            match r.decide(counts(10, 0), T0 + 60) {
                Decision::Advance(_, why) => why,
                other => panic!("{other:?}"),
            }
        )
    );
}

#[test]
fn the_last_step_promotes() {
    let r = rollout(plan(&[10.0, 50.0], 60, 0.05, 10), 1);
    assert!(matches!(
        r.decide(counts(10, 0), T0 + 60),
        Decision::Promote(_)
    ));
}

#[test]
fn confident_failures_roll_back_at_once_before_the_step_ends() {
    let r = rollout(plan(&[10.0], 3600, 0.5, 50), 0);
    assert!(matches!(r.decide(counts(3, 3), T0 + 1), Decision::Wait(_)));
    match r.decide(counts(4, 4), T0 + 1) {
        Decision::RollBack(why) => assert!(why.contains("failed 4 of 4"), "{why}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn failures_within_the_limit_do_not_block_promotion() {
    // 2 of 50 failed: 4 % observed, the bound far below 5 %.
    let r = rollout(plan(&[10.0], 60, 0.05, 50), 0);
    assert!(matches!(
        r.decide(counts(50, 2), T0 + 60),
        Decision::Promote(_)
    ));
}

#[test]
fn a_rollout_routes_its_step_weight_to_the_canary() {
    let r = rollout(plan(&[10.0, 50.0], 60, 0.05, 10), 1);
    assert_eq!(r.weight(), 50.0);
    assert_eq!(r.routing_at(0).to_json(), json!({"2": 0.1}));
}
