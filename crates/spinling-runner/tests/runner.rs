//! The runner's behaviours, on small guest modules written as WebAssembly text.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use spinling_runner::{
    prepare, run, PrepareError, Prepared, RunLimits, RunOutcome, RunStatus, MAX_ENTRY_BYTES,
    MAX_OUTPUT_BYTES,
};
use spinling_test_support::{wat_package, zip_of};

const LIMITS: RunLimits = RunLimits {
    timeout_seconds: 5,
    memory_bytes: 16 << 20,
};

fn wasm(wat: &str) -> Vec<u8> {
    wat::parse_str(wat).unwrap()
}

/// A package of one module, `main.wasm`, prepared without naming the entry.
fn prepared(wat: &str) -> Prepared {
    prepare(&wat_package(wat), None).unwrap()
}

fn refusal(wat: &str) -> PrepareError {
    prepare(&wat_package(wat), None).unwrap_err()
}

fn text(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).unwrap()
}

/// Copies stdin to stdout.
const ECHO: &str = r#"(module
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "_start") (local $len i32)
    (loop $more
      (i32.store (i32.const 0) (i32.add (i32.const 1024) (local.get $len)))
      (i32.store (i32.const 4) (i32.sub (i32.const 60000) (local.get $len)))
      (drop (call $fd_read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 8)))
      (local.set $len (i32.add (local.get $len) (i32.load (i32.const 8))))
      (br_if $more (i32.load (i32.const 8))))
    (i32.store (i32.const 0) (i32.const 1024))
    (i32.store (i32.const 4) (local.get $len))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"#;

/// Writes `"hi"` to stdout and `log` to stderr.
const HELLO: &str = r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 100) "\"hi\"log")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 100))
    (i32.store (i32.const 4) (i32.const 4))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
    (i32.store (i32.const 0) (i32.const 104))
    (i32.store (i32.const 4) (i32.const 3))
    (drop (call $fd_write (i32.const 2) (i32.const 0) (i32.const 1) (i32.const 8)))))"#;

/// Calls `proc_exit` with the code.
fn exiting_with(code: i32) -> String {
    format!(
        r#"(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (func (export "_start") (call $exit (i32.const {code})) unreachable))"#
    )
}

#[test]
fn stdin_reaches_the_function_and_stdout_is_the_output() {
    let outcome = run(&prepared(ECHO), br#"{"name": "Qinling"}"#, &LIMITS);
    assert_eq!(outcome.status, RunStatus::Success);
    assert_eq!(text(&outcome.stdout), r#"{"name": "Qinling"}"#);
    assert_eq!(outcome.exit_code, Some(0));

    let outcome = run(&prepared(ECHO), b"", &LIMITS);
    assert_eq!(outcome.status, RunStatus::Success);
    assert!(outcome.stdout.is_empty());
}

#[test]
fn stderr_is_the_log() {
    let outcome = run(&prepared(HELLO), b"", &LIMITS);
    assert_eq!(outcome.status, RunStatus::Success);
    assert_eq!(text(&outcome.stdout), r#""hi""#);
    assert_eq!(text(&outcome.stderr), "log");
}

#[test]
fn a_prepared_module_runs_again_and_again() {
    let echo = prepared(ECHO);
    let again = echo.clone();
    for input in ["1", "2", "3"] {
        assert_eq!(
            run(&again, input.as_bytes(), &LIMITS).stdout,
            input.as_bytes()
        );
    }
    let rebuilt = Prepared::from_wasm(echo.entry(), echo.wasm().to_vec()).unwrap();
    assert_eq!(run(&rebuilt, b"4", &LIMITS).stdout, b"4");
}

/// The examples in `examples/`, when they have been built for wasm32-wasip1.
#[test]
fn the_built_examples_greet() {
    let release =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/wasm32-wasip1/release");
    let (hello, echo) = (
        release.join("spinling-example-hello.wasm"),
        release.join("spinling-example-echo.wasm"),
    );
    if !hello.exists() || !echo.exists() {
        eprintln!(
            "SKIPPED the_built_examples_greet: build them first with \
             `cargo build --target wasm32-wasip1 --release -p spinling-example-hello -p spinling-example-echo`"
        );
        return;
    }
    let package = |path: &PathBuf, name: &str| {
        prepare(&zip_of(&[(name, &std::fs::read(path).unwrap())]), None).unwrap()
    };

    let hello = package(&hello, "spinling-example-hello.wasm");
    let outcome = run(&hello, b"", &LIMITS);
    assert_eq!(
        outcome.status,
        RunStatus::Success,
        "{}",
        text(&outcome.stderr)
    );
    assert_eq!(text(&outcome.stdout), "\"Hello, Spinling!\"\n");
    assert!(!outcome.stderr.is_empty());

    let echo = package(&echo, "spinling-example-echo.wasm");
    let outcome = run(&echo, br#"{"name": "Qinling"}"#, &LIMITS);
    assert_eq!(
        outcome.status,
        RunStatus::Success,
        "{}",
        text(&outcome.stderr)
    );
    assert_eq!(
        text(&outcome.stdout),
        "{\"greeting\":\"Hello, Qinling!\"}\n"
    );
    assert_eq!(text(&outcome.stderr), "echo: greeting Qinling\n");

    let outcome = run(&echo, b"", &LIMITS);
    assert_eq!(text(&outcome.stdout), "{\"greeting\":\"Hello, World!\"}\n");

    let outcome = run(&echo, b"not json", &LIMITS);
    assert_eq!(outcome.exit_code, Some(1));
    assert!(matches!(outcome.status, RunStatus::Failed(_)));
    assert!(text(&outcome.stderr).contains("the input is not JSON"));
}

#[test]
fn a_runaway_loop_ends_as_a_timeout() {
    let spin = prepared(r#"(module (func (export "_start") (loop $forever (br $forever))))"#);
    let limits = RunLimits {
        timeout_seconds: 1,
        ..LIMITS
    };
    let started = Instant::now();
    let outcome = run(&spin, b"", &limits);
    assert_eq!(outcome.status, RunStatus::Timeout);
    assert_eq!(outcome.exit_code, None);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn a_sleep_past_the_timeout_ends_as_a_timeout() {
    // poll_oneoff with one relative clock subscription of 60 s.
    let sleeper = prepared(
        r#"(module
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "_start")
    (i64.store (i32.const 24) (i64.const 60000000000))
    (drop (call $poll (i32.const 0) (i32.const 100) (i32.const 1) (i32.const 200)))))"#,
    );
    let limits = RunLimits {
        timeout_seconds: 1,
        ..LIMITS
    };
    let started = Instant::now();
    assert_eq!(run(&sleeper, b"", &limits).status, RunStatus::Timeout);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn growing_memory_past_the_limit_ends_as_resource_exhaustion() {
    let bomb = prepared(
        r#"(module (memory (export "memory") 1)
  (func (export "_start") (loop $more (drop (memory.grow (i32.const 16))) (br $more))))"#,
    );
    let outcome = run(&bomb, b"", &LIMITS);
    let RunStatus::ResourceExhausted(reason) = &outcome.status else {
        panic!("{:?}", outcome.status);
    };
    assert!(
        reason.contains("memory limit of 16777216 bytes"),
        "{reason}"
    );

    // A module whose initial memory is already too big never starts.
    let big = prepared(r#"(module (memory (export "memory") 512) (func (export "_start")))"#);
    assert!(matches!(
        run(&big, b"", &LIMITS).status,
        RunStatus::ResourceExhausted(_)
    ));
}

#[test]
fn deep_recursion_ends_as_resource_exhaustion() {
    let recursion = prepared(r#"(module (func $f (export "_start") (call $f)))"#);
    assert!(matches!(
        run(&recursion, b"", &LIMITS).status,
        RunStatus::ResourceExhausted(_)
    ));
}

#[test]
fn a_non_zero_exit_is_failed_with_the_code() {
    let outcome = run(&prepared(&exiting_with(3)), b"", &LIMITS);
    assert_eq!(outcome.exit_code, Some(3));
    assert_eq!(
        outcome.status,
        RunStatus::Failed("The function exited with code 3.".into())
    );
}

#[test]
fn exiting_with_zero_is_success() {
    let outcome = run(&prepared(&exiting_with(0)), b"", &LIMITS);
    assert_eq!(outcome.status, RunStatus::Success);
    assert_eq!(outcome.exit_code, Some(0));
}

#[test]
fn a_trap_is_failed() {
    let outcome = run(
        &prepared(r#"(module (func (export "_start") unreachable))"#),
        b"",
        &LIMITS,
    );
    let RunStatus::Failed(reason) = &outcome.status else {
        panic!("{:?}", outcome.status);
    };
    assert!(reason.contains("unreachable"), "{reason}");
    assert_eq!(outcome.exit_code, None);
}

#[test]
fn output_beyond_the_cap_is_truncated_not_unbounded() {
    // Writes the 64 KiB page at 0 to stdout 40 times: 2.5 MiB.
    let chatty = prepared(
        r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 2)
  (func (export "_start") (local $i i32)
    (i32.store (i32.const 65536) (i32.const 0))
    (i32.store (i32.const 65540) (i32.const 65536))
    (loop $more
      (drop (call $fd_write (i32.const 1) (i32.const 65536) (i32.const 1) (i32.const 65544)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $more (i32.lt_u (local.get $i) (i32.const 40))))))"#,
    );
    let outcome = run(&chatty, b"", &LIMITS);
    assert_eq!(outcome.status, RunStatus::Success);
    assert_eq!(outcome.stdout.len(), MAX_OUTPUT_BYTES);
    assert!(text(&outcome.stderr).contains("stdout was cut at 1048576 bytes"));
}

#[test]
fn the_entry_is_argv0_and_the_environment_is_empty() {
    // Writes argv[0] (without its NUL) to stdout and the environment sizes to stderr.
    let args = wasm(
        r#"(module
  (import "wasi_snapshot_preview1" "args_sizes_get" (func $sizes (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_get" (func $args (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_sizes_get" (func $env (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "_start")
    (drop (call $sizes (i32.const 0) (i32.const 4)))
    (drop (call $args (i32.const 16) (i32.const 32)))
    (i32.store (i32.const 8) (i32.load (i32.const 16)))
    (i32.store (i32.const 12) (i32.sub (i32.load (i32.const 4)) (i32.const 1)))
    (drop (call $fd_write (i32.const 1) (i32.const 8) (i32.const 1) (i32.const 200)))
    (drop (call $env (i32.const 300) (i32.const 304)))
    (i32.store (i32.const 8) (i32.const 300))
    (i32.store (i32.const 12) (i32.const 8))
    (drop (call $fd_write (i32.const 2) (i32.const 8) (i32.const 1) (i32.const 200)))))"#,
    );
    let prepared = prepare(&zip_of(&[("bin/fn.wasm", &args)]), None).unwrap();
    let outcome = run(&prepared, b"", &LIMITS);
    assert_eq!(text(&outcome.stdout), "bin/fn.wasm");
    assert_eq!(outcome.stderr, [0; 8]);
}

#[test]
fn other_wasi_functions_answer_enosys() {
    // Exits with what path_open answered.
    let outcome = run(
        &prepared(
            r#"(module
  (import "wasi_snapshot_preview1" "path_open"
    (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (func (export "_start")
    (call $exit (call $open (i32.const 3) (i32.const 0) (i32.const 0) (i32.const 1)
      (i32.const 0) (i64.const 0) (i64.const 0) (i32.const 0) (i32.const 0)))))"#,
        ),
        b"",
        &LIMITS,
    );
    assert_eq!(outcome.exit_code, Some(52));
}

#[test]
fn an_unsupported_import_is_refused_before_running() {
    let err = refusal(
        r#"(module (import "env" "foo" (func)) (memory (export "memory") 1) (func (export "_start")))"#,
    );
    assert_eq!(
        err,
        PrepareError::UnsupportedImport {
            module: "env".into(),
            name: "foo".into()
        }
    );
    assert!(err.to_string().starts_with("Unsupported import env::foo"));
}

#[test]
fn a_wasi_import_of_the_wrong_type_is_refused() {
    let err = refusal(
        r#"(module (import "wasi_snapshot_preview1" "fd_write" (func (param i32)))
  (func (export "_start")))"#,
    );
    assert_eq!(
        err.to_string(),
        "The module imports wasi_snapshot_preview1::fd_write as (i32) -> (), but WASI defines \
         it as (i32, i32, i32, i32) -> (i32)."
    );
}

#[test]
fn a_module_that_is_not_a_command_is_refused() {
    let err = refusal(r#"(module (func (export "handle")))"#);
    assert_eq!(err, PrepareError::NotACommand);
}

#[test]
fn an_invalid_module_is_refused() {
    let err = prepare(&zip_of(&[("main.wasm", b"\0asm but not really")]), None).unwrap_err();
    assert!(matches!(err, PrepareError::InvalidModule(_)));
    assert!(
        err.to_string().starts_with("Invalid WebAssembly module: "),
        "{err}"
    );
}

#[test]
fn a_package_that_is_not_a_zip_is_refused() {
    let err = prepare(b"print('hello')", None).unwrap_err();
    assert!(matches!(err, PrepareError::NotAZip(_)), "{err}");
}

#[test]
fn a_package_without_wasm_is_refused() {
    let err = prepare(&zip_of(&[("main.py", b"def main(): pass")]), None).unwrap_err();
    assert_eq!(err.to_string(), "The package holds no .wasm file.");
}

#[test]
fn several_wasm_files_need_an_entry() {
    let hello = wasm(HELLO);
    let package = zip_of(&[("a.wasm", &hello), ("b.wasm", &hello), ("README", b"")]);
    let err = prepare(&package, None).unwrap_err();
    assert_eq!(
        err.to_string(),
        "The package holds several .wasm files (a.wasm, b.wasm); name one as the function's entry."
    );
    assert_eq!(prepare(&package, Some("b.wasm")).unwrap().entry(), "b.wasm");
}

#[test]
fn a_named_entry_is_found() {
    let package = zip_of(&[
        ("lib/helper.wasm", &wasm(ECHO)),
        ("bin/main.wasm", &wasm(HELLO)),
    ]);
    let prepared = prepare(&package, Some("bin/main.wasm")).unwrap();
    assert_eq!(prepared.entry(), "bin/main.wasm");
    assert_eq!(run(&prepared, b"", &LIMITS).stdout, br#""hi""#);
    assert_eq!(
        prepare(&package, Some("./bin/main.wasm")).unwrap().entry(),
        "bin/main.wasm"
    );

    let err = prepare(&package, Some("main.wasm")).unwrap_err();
    assert_eq!(err.to_string(), "Entry main.wasm not found in the package.");
}

#[test]
fn a_zip_bomb_entry_is_refused() {
    // 50 MiB + 1 of zeros deflates to ~50 KiB.
    let bomb = vec![0u8; MAX_ENTRY_BYTES as usize + 1];
    let package = zip_of(&[("main.wasm", &bomb)]);
    assert!(package.len() < 1 << 20);
    let err = prepare(&package, None).unwrap_err();
    assert_eq!(err, PrepareError::EntryTooLarge("main.wasm".into()));
    assert_eq!(
        err.to_string(),
        "Entry main.wasm is larger than 50 MiB uncompressed."
    );
}

/// Prints the machine's fuel rate, the figure behind `FUEL_PER_SECOND` (not an assertion:
/// it depends on the machine and its load). `--nocapture` shows it.
#[test]
fn fuel_rate_on_this_machine() {
    // 20 million rounds of arithmetic, loads and stores.
    let busy = prepared(
        r#"(module (memory (export "memory") 1)
  (func (export "_start") (local $i i32) (local $acc i32)
    (loop $more
      (local.set $acc (i32.add (local.get $acc) (i32.mul (local.get $i) (i32.const 31))))
      (i32.store (i32.and (i32.shl (local.get $i) (i32.const 2)) (i32.const 0xfffc)) (local.get $acc))
      (local.set $acc (i32.xor (local.get $acc)
        (i32.load (i32.and (i32.mul (local.get $i) (i32.const 12)) (i32.const 0xfffc)))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $more (i32.lt_u (local.get $i) (i32.const 20000000))))))"#,
    );
    // A wall-clock limit far beyond the work's 620 million fuel, so that a loaded machine
    // slows the figure down without failing the test.
    let unhurried = RunLimits {
        timeout_seconds: 60,
        ..LIMITS
    };
    let outcome: RunOutcome = run(&busy, b"", &unhurried);
    assert_eq!(outcome.status, RunStatus::Success);
    let rate = outcome.fuel_consumed as f64 / outcome.duration.as_secs_f64();
    println!(
        "fuel rate: {} fuel in {:?} = {:.0} million fuel/s (FUEL_PER_SECOND is {} million)",
        outcome.fuel_consumed,
        outcome.duration,
        rate / 1e6,
        spinling_runner::FUEL_PER_SECOND / 1_000_000
    );
}

#[test]
fn a_large_function_runs_within_its_budget() {
    // About 750 KB of code in one function: translating it costs more fuel than one slice of
    // the run, which must not be mistaken for a timeout.
    let body = "(drop (i32.const 0))\n".repeat(250_000);
    let wat = format!(
        r#"(module (memory (export "memory") 1) (func $big {body}) (func (export "_start") (call $big)))"#
    );
    let outcome = run(&prepared(&wat), b"", &LIMITS);
    assert_eq!(outcome.status, RunStatus::Success, "{outcome:?}");
}

#[test]
fn a_module_declaring_the_most_memory_there_is_ends_as_resource_exhaustion() {
    let big = prepared(r#"(module (memory (export "memory") 65536) (func (export "_start")))"#);
    let status = run(&big, b"", &LIMITS).status;
    let RunStatus::ResourceExhausted(reason) = &status else {
        panic!("{status:?}");
    };
    assert_eq!(
        reason,
        "The function needed more than its memory limit of 16777216 bytes."
    );
    // Nor does an unexported one, or a table of the most elements there are.
    for wat in [
        r#"(module (memory 65536) (func (export "_start")))"#,
        r#"(module (memory (export "memory") 1) (table 4294967295 funcref) (func (export "_start")))"#,
    ] {
        let status = run(&prepared(wat), b"", &LIMITS).status;
        assert!(
            matches!(status, RunStatus::ResourceExhausted(_)),
            "{wat}: {status:?}"
        );
    }
}

#[test]
fn a_wasm_file_that_is_not_webassembly_is_refused_plainly() {
    let message = |bytes: &[u8]| {
        prepare(&zip_of(&[("main.wasm", bytes)]), None)
            .unwrap_err()
            .to_string()
    };
    let not_wasm = "Invalid WebAssembly module: the file is not WebAssembly (a module starts with the bytes \\0asm)";
    assert_eq!(message(b"print('hello')\n"), not_wasm);
    assert_eq!(message(b""), not_wasm);
    assert!(message(b"\0asm\x0d\0\x01\0").contains("not a WebAssembly core module"));
    // A broken module keeps the engine's word for it, on one line.
    let broken = message(b"\0asm\x01\0\0\0\x01\xff\xff\xff");
    assert!(
        broken.starts_with("Invalid WebAssembly module: "),
        "{broken}"
    );
    assert!(
        !broken.contains('\n') && !broken.contains("expected=["),
        "{broken}"
    );
}
