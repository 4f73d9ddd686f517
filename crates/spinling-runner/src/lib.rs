//! Runs a function package's WebAssembly in-process, safely: unzip the package and validate
//! its module once with [`prepare`], then [`run`] it per execution under [`RunLimits`].
//!
//! # The contract for function authors
//!
//! - **The package** is a zip holding a WASI preview1 *command* module: a `.wasm` exporting
//!   `_start`, such as any Rust binary built with `cargo build --target wasm32-wasip1
//!   --release`. The function's `entry` names the `.wasm` file by its path in the zip; with
//!   no entry the zip must hold exactly one `.wasm` file.
//! - **Input and output:** the execution input (JSON text, or nothing) arrives on **stdin**;
//!   what the function writes to **stdout** is its output, and **stderr** is its log.
//!   argv\[0\] is the entry's path; there are no other arguments and no environment variables.
//! - **Success** is returning from `main` / `_start`, or exit code 0; a non-zero exit code
//!   (`std::process::exit(n)`, an `Err` from `main`) or a trap (a panic) fails the execution.
//! - **Limits:**
//!   - `timeout_seconds` is a budget of [`FUEL_PER_SECOND`] fuel per second (deterministic:
//!     the same code times out at the same point every time) and also a wall-clock limit,
//!     whichever ends first. Sleeping counts as time. WASI calls pay from the same budget
//!     ([`HOST_CALL_FUEL`] each, plus [`HOST_FUEL_PER_BYTE`] per byte copied or generated,
//!     [`HOST_FUEL_PER_IOVEC`] per iovec, [`HOST_FUEL_PER_SUBSCRIPTION`] per `poll_oneoff`
//!     subscription) and check the wall clock before they start.
//!   - one `fd_read` / `fd_write` takes at most [`MAX_IOVECS`] iovecs, one `poll_oneoff` at
//!     most [`MAX_POLL_SUBSCRIPTIONS`] subscriptions and one `random_get` at most
//!     [`MAX_RANDOM_BYTES`] bytes; more answers `EINVAL` (28) and does nothing.
//!   - a start section runs under the same limits as `_start`, just before it (it is lifted
//!     out into an export when the module is prepared: wasmi would run it unmetered).
//!   - `memory_bytes` caps the module's linear memory: growing past it ends the run as
//!     resource exhaustion, and so does a table of more than [`MAX_TABLE_ELEMENTS`] elements or
//!     a call stack deeper than wasmi's limit (1000 nested calls by default).
//!   - stdout and stderr are each kept up to [`MAX_OUTPUT_BYTES`] (1 MiB); the rest is
//!     dropped and a note at the end of the log says so.
//!   - the `.wasm` entry may be at most [`MAX_ENTRY_BYTES`] (50 MiB) uncompressed.
//! - **The sandbox:** a module may import only functions of `wasi_snapshot_preview1` (any
//!   other import is refused when the package is prepared). Provided: `fd_read` (stdin),
//!   `fd_write` (stdout, stderr), `fd_close`, `fd_fdstat_get`, `fd_seek` (`ESPIPE`),
//!   `fd_prestat_get` / `fd_prestat_dir_name` (no preopened directories, so no filesystem),
//!   `args_*`, `environ_*` (empty), `clock_time_get`, `clock_res_get`, `random_get` (the
//!   host's secure RNG), `proc_exit`, `sched_yield` and `poll_oneoff` (clock sleeps; stdio is
//!   always ready). Every other WASI function answers `ENOSYS` (52), so sockets, files and
//!   threads are unavailable.
//!
//! # Why wasmi
//!
//! This library runs inside a Spin component, i.e. it is itself WebAssembly
//! (`wasm32-wasip1`), where JIT runtimes such as wasmtime cannot run. [wasmi] is a pure-Rust
//! interpreter that compiles to `wasm32-wasip1`, needs no threads or native code, validates
//! untrusted modules, meters execution with fuel (resumable when the fuel runs out, which
//! gives the wall-clock checks) and caps memory and tables with a resource limiter.

mod limits;
mod package;
mod run;
mod start;
mod wasi;
pub mod worker;

pub use limits::{
    RunLimits, FUEL_PER_SECOND, HOST_CALL_FUEL, HOST_FUEL_PER_BYTE, HOST_FUEL_PER_IOVEC,
    HOST_FUEL_PER_SUBSCRIPTION, MAX_ENTRY_BYTES, MAX_IOVECS, MAX_OUTPUT_BYTES,
    MAX_POLL_SUBSCRIPTIONS, MAX_RANDOM_BYTES, MAX_TABLE_ELEMENTS,
};
pub use package::{prepare, PrepareError, Prepared};
pub use run::{run, RunOutcome, RunStatus};
