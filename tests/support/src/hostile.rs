//! Hostile guest modules, written as WebAssembly text: what the runner's sandbox tests run
//! directly and the black-box sandbox tests run through the served app.

/// The WASI imports the hostile modules call, and 16 MiB of memory.
pub const WASI: &str = r#"
  (import "wasi_snapshot_preview1" "random_get" (func $random (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "clock_time_get" (func $clock (param i32 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 256)"#;

/// A module whose `_start` runs `body` (WAT instructions) forever.
pub fn looping(body: &str) -> String {
    format!(r#"(module {WASI} (func (export "_start") (loop $again {body} (br $again))))"#)
}

/// A module whose start section runs `body` forever, with an empty `_start`.
pub fn looping_in_start(body: &str) -> String {
    format!(
        r#"(module {WASI} (func $init (loop $again {body} (br $again))) (start $init)
  (func (export "_start")))"#
    )
}

/// A module that exits with what one call (`call`, leaving an i32) answered.
pub fn exiting_with(call: &str) -> String {
    format!(r#"(module {WASI} (func (export "_start") (call $exit {call}) unreachable))"#)
}

pub const RANDOM_16_MIB: &str = "(drop (call $random (i32.const 0) (i32.const 16777216)))";
pub const RANDOM_1_MIB: &str = "(drop (call $random (i32.const 0) (i32.const 1048576)))";
/// Two million iovecs (16 MiB of zeros: empty buffers at address 0).
pub const WRITE_2M_IOVECS: &str =
    "(drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 2097152) (i32.const 0)))";
pub const READ_2M_IOVECS: &str =
    "(drop (call $fd_read (i32.const 0) (i32.const 0) (i32.const 2097152) (i32.const 0)))";
pub const CLOCK: &str = "(drop (call $clock (i32.const 0) (i64.const 0) (i32.const 0)))";

/// A module whose `_start` polls 150,000 stdin subscriptions (always ready, so it never
/// sleeps) forever: the subscriptions from address 0, the events from 8 MiB.
pub fn polling_many_subscriptions() -> String {
    format!(
        r#"(module {WASI}
  (func (export "_start") (local $i i32)
    (loop $fill
      (i32.store8 (i32.add (i32.mul (local.get $i) (i32.const 48)) (i32.const 8)) (i32.const 1))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $fill (i32.lt_u (local.get $i) (i32.const 150000))))
    (loop $again
      (drop (call $poll (i32.const 0) (i32.const 8388608) (i32.const 150000) (i32.const 0)))
      (br $again))))"#
    )
}
