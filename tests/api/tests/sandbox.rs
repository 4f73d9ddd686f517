//! The built-in runtime's sandbox holds through the served app: whatever a function makes
//! the host do, its execution ends `failed` with Qinling's timeout message within its
//! timeout plus a second, and leaves the runtime free for the next one. And the runtime runs
//! only the code the execution was created with.

use serde_json::{json, Value as Json};
use spinling_api_tests::hostile::{
    looping, looping_in_start, polling_many_subscriptions, RANDOM_16_MIB, WRITE_2M_IOVECS,
};
use spinling_api_tests::{md5_hex, wat_package, Api};
use std::time::{Duration, Instant};

/// The hostile functions' timeout, in seconds.
const TIMEOUT: u64 = 1;

/// Runs a sync execution of `function_id` and returns it with its wall time.
fn execute(api: &Api, function_id: &str) -> (Json, Duration) {
    let started = Instant::now();
    let reply = api.post_json("/v1/executions", &json!({"function_id": function_id}));
    let took = started.elapsed();
    reply.assert_status(201);
    (reply.json(), took)
}

fn output(execution: &Json) -> Json {
    let result = execution["result"]
        .as_str()
        .expect("a finished execution has a result");
    serde_json::from_str::<Json>(result).unwrap()["output"].clone()
}

/// Writes `"ok"` to stdout.
const TRIVIAL: &str = r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 100) "\"ok\"")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 100))
    (i32.store (i32.const 4) (i32.const 4))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"#;

/// The hostile module's execution ends failed with the timeout message within the timeout
/// plus a second; a trivial execution right after it runs at normal speed.
#[track_caller]
fn assert_times_out_and_frees_the_runtime(hostile: &str) {
    let api = Api::start();
    let hostile =
        api.create_wasm_function(&wat_package(hostile), &[("timeout", &TIMEOUT.to_string())]);
    let trivial =
        api.create_wasm_function(&wat_package(TRIVIAL), &[("timeout", &TIMEOUT.to_string())]);
    // Warm up (the first request to each component compiles it).
    let (warm, _) = execute(&api, &trivial);
    assert_eq!(warm["status"], "success", "{warm}");

    let (execution, took) = execute(&api, &hostile);
    eprintln!("the hostile execution ended after {took:?}");
    assert_eq!(execution["status"], "failed", "{execution}");
    assert_eq!(output(&execution), "Function execution timeout.");
    let bound = Duration::from_secs(TIMEOUT + 1);
    assert!(took < bound, "took {took:?}");

    let (next, took) = execute(&api, &trivial);
    eprintln!("the next execution took {took:?}");
    assert_eq!(next["status"], "success", "{next}");
    assert_eq!(output(&next), "ok");
    assert!(took < Duration::from_secs(1), "took {took:?}");
}

#[test]
fn a_random_get_loop_times_out_and_frees_the_runtime() {
    assert_times_out_and_frees_the_runtime(&looping(RANDOM_16_MIB));
}

#[test]
fn an_fd_write_of_millions_of_iovecs_in_a_loop_times_out_and_frees_the_runtime() {
    assert_times_out_and_frees_the_runtime(&looping(WRITE_2M_IOVECS));
}

#[test]
fn a_poll_oneoff_of_many_subscriptions_in_a_loop_times_out_and_frees_the_runtime() {
    assert_times_out_and_frees_the_runtime(&polling_many_subscriptions());
}

#[test]
fn a_start_section_that_loops_on_random_get_times_out_and_frees_the_runtime() {
    assert_times_out_and_frees_the_runtime(&looping_in_start(RANDOM_16_MIB));
}

#[test]
fn a_start_section_that_loops_forever_times_out_and_frees_the_runtime() {
    assert_times_out_and_frees_the_runtime(&looping_in_start(""));
}

/// The package the runtime downloads is not the code the execution was created with (as
/// when the package is replaced between an async execution's creation and its run; here
/// the md5 the function records is changed in the database while the app is stopped).
#[test]
fn a_package_that_is_not_the_execution_s_code_is_never_run() {
    let api = Api::start();
    let package = wat_package(TRIVIAL);
    let fid = api.create_wasm_function(&package, &[("timeout", &TIMEOUT.to_string())]);
    let state = api.stop();
    let recorded = "0123456789abcdef0123456789abcdef";
    if spinling_api_tests::postgres::requested() {
        spinling_api_tests::postgres::query(
            state.path(),
            &format!(
                "UPDATE functions SET code = CAST(jsonb_set(CAST(code AS jsonb), '{{md5sum}}',
                     to_jsonb(CAST('{recorded}' AS text))) AS text) WHERE id = '{fid}'"
            ),
        );
    } else {
        let db = rusqlite::Connection::open(state.path().join("sqlite_db.db")).unwrap();
        let changed = db
            .execute(
                "UPDATE functions SET code = json_set(code, '$.md5sum', ?) WHERE id = ?",
                [recorded, fid.as_str()],
            )
            .unwrap();
        assert_eq!(changed, 1);
    }
    let api = Api::start_in(state, &[]);

    let (execution, _) = execute(&api, &fid);
    assert_eq!(execution["status"], "failed", "{execution}");
    assert_eq!(
        output(&execution),
        format!(
            "The function's package changed since the execution was created (expected md5 \
             {recorded}, found {}).",
            md5_hex(&package)
        )
    );
}

/// A module declaring all the memory there is (65,536 pages, 4 GiB: more than the runtime's
/// own wasm32 address space) ends like any other over its limit, not with the engine's
/// message; its log says which limit.
#[test]
fn a_module_declaring_the_most_memory_there_is_uses_too_much() {
    let api = Api::start();
    let fid = api.create_wasm_function(
        &wat_package(r#"(module (memory (export "memory") 65536) (func (export "_start")))"#),
        &[],
    );
    let (execution, _) = execute(&api, &fid);
    assert_eq!(execution["status"], "failed", "{execution}");
    assert_eq!(
        output(&execution),
        "Function execution failed because of too much resource consumption"
    );
}

/// A package whose `.wasm` is not WebAssembly fails with a plain sentence, not the engine's
/// dump of the bytes it expected.
#[test]
fn a_wasm_file_that_is_not_webassembly_fails_plainly() {
    let api = Api::start();
    let package = spinling_api_tests::zip_of(&[("main.wasm", b"print('hello')\n")]);
    let fid = api.create_wasm_function(&package, &[]);
    let (execution, _) = execute(&api, &fid);
    assert_eq!(execution["status"], "failed", "{execution}");
    assert_eq!(
        output(&execution),
        "Invalid WebAssembly module: the file is not WebAssembly (a module starts with the bytes \\0asm)"
    );
}
