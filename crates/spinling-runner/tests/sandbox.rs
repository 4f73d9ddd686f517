//! The sandbox holds: whatever a module makes the host do, and wherever it does it (its
//! start section included), the run ends as a timeout within its timeout plus a second.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use spinling_runner::{
    prepare, run, Prepared, RunLimits, RunOutcome, RunStatus, HOST_CALL_FUEL, HOST_FUEL_PER_BYTE,
    MAX_IOVECS, MAX_POLL_SUBSCRIPTIONS, MAX_RANDOM_BYTES,
};
use spinling_test_support::hostile::{
    exiting_with, looping, looping_in_start, polling_many_subscriptions, CLOCK, RANDOM_16_MIB,
    RANDOM_1_MIB, READ_2M_IOVECS, WASI, WRITE_2M_IOVECS,
};
use spinling_test_support::wat_package;

/// One second of timeout; the hostile modules use 16 MiB of memory.
const LIMITS: RunLimits = RunLimits {
    timeout_seconds: 1,
    memory_bytes: 64 << 20,
};

/// How long past its timeout a run may take to end.
const GRACE: Duration = Duration::from_secs(1);

fn prepared(wat: &str) -> Prepared {
    prepare(&wat_package(wat), None).unwrap()
}

/// Runs on a thread and gives up waiting well after the grace, so a run that escapes its
/// timeout fails the test instead of hanging it.
fn run_timed(prepared: Prepared, limits: RunLimits) -> (RunOutcome, Duration) {
    let (sender, receiver) = mpsc::channel();
    let started = Instant::now();
    std::thread::spawn(move || {
        let _ = sender.send(run(&prepared, b"", &limits));
    });
    let waited = Duration::from_secs(limits.timeout_seconds) + GRACE * 10;
    let outcome = receiver
        .recv_timeout(waited)
        .unwrap_or_else(|_| panic!("the run did not end within {waited:?}"));
    (outcome, started.elapsed())
}

/// Runs `wat` with a 1 s timeout and checks it ends as a timeout within 2 s.
#[track_caller]
fn assert_times_out(wat: &str) {
    let (outcome, took) = run_timed(prepared(wat), LIMITS);
    assert_eq!(outcome.status, RunStatus::Timeout, "{outcome:?}");
    let bound = Duration::from_secs(LIMITS.timeout_seconds) + GRACE;
    assert!(took < bound, "took {took:?}");
    eprintln!("ended as a timeout after {took:?}");
}

/// The errno a module's single call answered, which the module exits with.
#[track_caller]
fn errno_of(wat: &str) -> i32 {
    let outcome = run(&prepared(wat), b"", &LIMITS);
    outcome
        .exit_code
        .unwrap_or_else(|| panic!("no exit: {outcome:?}"))
}

#[test]
fn a_random_get_of_16_mib_in_a_loop_ends_as_a_timeout() {
    assert_times_out(&looping(RANDOM_16_MIB));
}

#[test]
fn a_random_get_of_the_most_allowed_in_a_loop_ends_as_a_timeout() {
    assert_times_out(&looping(RANDOM_1_MIB));
}

#[test]
fn an_fd_write_of_millions_of_iovecs_in_a_loop_ends_as_a_timeout() {
    assert_times_out(&looping(WRITE_2M_IOVECS));
}

#[test]
fn an_fd_read_of_millions_of_iovecs_in_a_loop_ends_as_a_timeout() {
    assert_times_out(&looping(READ_2M_IOVECS));
}

#[test]
fn a_poll_oneoff_of_many_subscriptions_in_a_loop_ends_as_a_timeout() {
    assert_times_out(&polling_many_subscriptions());
}

#[test]
fn a_start_section_that_loops_forever_ends_as_a_timeout() {
    assert_times_out(&looping_in_start(""));
}

#[test]
fn a_start_section_that_loops_on_random_get_ends_as_a_timeout() {
    assert_times_out(&looping_in_start(RANDOM_16_MIB));
}

#[test]
fn a_start_section_that_loops_on_the_clock_ends_as_a_timeout() {
    assert_times_out(&looping_in_start(CLOCK));
}

#[test]
fn more_iovecs_than_the_cap_answer_einval() {
    let write = |n: u32| {
        exiting_with(&format!(
            "(call $fd_write (i32.const 1) (i32.const 0) (i32.const {n}) (i32.const 0))"
        ))
    };
    assert_eq!(errno_of(&write(MAX_IOVECS)), 0);
    assert_eq!(errno_of(&write(MAX_IOVECS + 1)), 28);
    let read = exiting_with(&format!(
        "(call $fd_read (i32.const 0) (i32.const 0) (i32.const {}) (i32.const 0))",
        MAX_IOVECS + 1
    ));
    assert_eq!(errno_of(&read), 28);
}

#[test]
fn more_subscriptions_than_the_cap_answer_einval() {
    let poll = |n: u32| {
        exiting_with(&format!(
            "(call $poll (i32.const 0) (i32.const 0) (i32.const {n}) (i32.const 0))"
        ))
    };
    assert_eq!(errno_of(&poll(MAX_POLL_SUBSCRIPTIONS)), 0);
    assert_eq!(errno_of(&poll(MAX_POLL_SUBSCRIPTIONS + 1)), 28);
}

#[test]
fn a_random_get_over_the_cap_answers_einval() {
    let random = |n: u32| exiting_with(&format!("(call $random (i32.const 0) (i32.const {n}))"));
    assert_eq!(errno_of(&random(MAX_RANDOM_BYTES)), 0);
    assert_eq!(errno_of(&random(MAX_RANDOM_BYTES + 1)), 28);
}

#[test]
fn host_work_is_paid_in_fuel() {
    // Ten random_get calls of 1 MiB cost at least their bytes.
    let ten = format!(
        r#"(module {WASI} (func (export "_start") (local $i i32)
  (loop $again {RANDOM_1_MIB}
    (local.set $i (i32.add (local.get $i) (i32.const 1)))
    (br_if $again (i32.lt_u (local.get $i) (i32.const 10))))))"#
    );
    let outcome = run(&prepared(&ten), b"", &LIMITS);
    assert_eq!(outcome.status, RunStatus::Success);
    let paid = 10 * (HOST_CALL_FUEL + u64::from(MAX_RANDOM_BYTES) * HOST_FUEL_PER_BYTE);
    assert!(
        outcome.fuel_consumed >= paid,
        "{} < {paid}",
        outcome.fuel_consumed
    );
}

#[test]
fn host_work_beyond_the_budget_ends_as_a_timeout_at_once() {
    // With no timeout there is no fuel: the first host call cannot be paid.
    let limits = RunLimits {
        timeout_seconds: 0,
        ..LIMITS
    };
    let outcome = run(&prepared(&looping(CLOCK)), b"", &limits);
    assert_eq!(outcome.status, RunStatus::Timeout);
}

#[test]
fn a_start_section_still_runs_before_start() {
    // The start function stores "ok" that _start then writes to stdout.
    let module = r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func $init (i32.store16 (i32.const 100) (i32.const 0x6b6f)))
  (start $init)
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 100))
    (i32.store (i32.const 4) (i32.const 2))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"#;
    let outcome = run(&prepared(module), b"", &LIMITS);
    assert_eq!(outcome.status, RunStatus::Success);
    assert_eq!(outcome.stdout, b"ok");
}

#[test]
fn a_start_section_that_traps_fails_the_run() {
    let module = r#"(module (func $init unreachable) (start $init) (func (export "_start")))"#;
    let outcome = run(&prepared(module), b"", &LIMITS);
    assert!(
        matches!(&outcome.status, RunStatus::Failed(reason) if reason.contains("unreachable")),
        "{outcome:?}"
    );
}

#[test]
fn a_start_section_that_exits_ends_the_run_with_its_code() {
    let module = r#"(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (func $init (call $exit (i32.const 4))) (start $init)
  (func (export "_start") unreachable))"#;
    let outcome = run(&prepared(module), b"", &LIMITS);
    assert_eq!(outcome.exit_code, Some(4));
}
