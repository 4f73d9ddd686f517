//! What a run may consume, and the resource limiter that enforces the memory part of it.

use wasmi::ResourceLimiter;
use wasmi_core::LimiterError;

/// The limits of one run, from the function's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunLimits {
    /// Ends the run as [`RunStatus::Timeout`](crate::RunStatus::Timeout) after this much
    /// work ([`FUEL_PER_SECOND`] fuel per second) or this much wall-clock time, whichever
    /// comes first. 0 times out at once.
    pub timeout_seconds: u64,
    /// The most linear memory the module may have, in bytes. Growing past it ends the run as
    /// [`RunStatus::ResourceExhausted`](crate::RunStatus::ResourceExhausted).
    pub memory_bytes: u64,
}

/// wasmi fuel per second of run time. Fuel is wasmi's deterministic count of executed work
/// (about one unit per WebAssembly instruction), so a timeout is a fuel budget of
/// `timeout_seconds * FUEL_PER_SECOND` that ends a runaway loop at the same point on every
/// run, however busy the machine; the wall-clock check ends runs on hosts slower than this.
///
/// Measured on the 2-core development machine (under load) with wasmi 2.0's portable
/// dispatch, in million fuel per second, by the `fuel_rate` example
/// (`cargo run --release -p spinling-runner --example fuel_rate -- FUNCTION.wasm`) and the
/// `fuel_rate_on_this_machine` test:
///
/// | guest                          | native, release | native, dev | in wasm (wasmtime 48) |
/// |--------------------------------|-----------------|-------------|-----------------------|
/// | Rust program (serde_json work) | ~2000           | ~850        | ~620                  |
/// | WAT arithmetic + memory loop   | ~880            | ~620        | ~275                  |
///
/// "In wasm" is the production path: this crate compiled to `wasm32-wasip1` (as in a Spin
/// component) running the same guests. 500 million lets compiled code use about the whole
/// timeout there, with fuel as the usual, deterministic limit.
pub const FUEL_PER_SECOND: u64 = 500_000_000;

/// The run checks the wall clock each time this much fuel is spent (about 1/100 s of work at
/// [`FUEL_PER_SECOND`]; a tight branch loop in the wasm-hosted interpreter burns fuel about
/// five times slower, so the check still comes every ~50 ms there). A slice boundary costs
/// a few microseconds.
pub(crate) const FUEL_SLICE: u64 = FUEL_PER_SECOND / 100;

/// Fuel every call of a WASI function costs, on top of what it handles (about the cost of
/// crossing into the host and reading the clock).
pub const HOST_CALL_FUEL: u64 = 100;

/// Fuel per byte a WASI function copies or generates (stdin, stdout, stderr, `random_get`),
/// per iovec it reads and per `poll_oneoff` subscription it looks at. Host work is paid from
/// the same budget as the guest's instructions, so a function that makes the host work
/// cannot outlast its timeout either.
pub const HOST_FUEL_PER_BYTE: u64 = 2;
pub const HOST_FUEL_PER_IOVEC: u64 = 20;
pub const HOST_FUEL_PER_SUBSCRIPTION: u64 = 50;

/// The most iovecs one `fd_read` or `fd_write` may pass: more answers `EINVAL` (POSIX's
/// `IOV_MAX` is 1024 on Linux too).
pub const MAX_IOVECS: u32 = 1024;

/// The most subscriptions one `poll_oneoff` may pass: more answers `EINVAL`.
pub const MAX_POLL_SUBSCRIPTIONS: u32 = 4096;

/// The most bytes one `random_get` may ask for (1 MiB): more answers `EINVAL` and fills
/// nothing (Rust's `getrandom` and WASI libc ask for a few dozen bytes at a time).
pub const MAX_RANDOM_BYTES: u32 = 1 << 20;

/// The most stdout, and separately stderr, a run keeps: the rest is dropped (1 MiB).
pub const MAX_OUTPUT_BYTES: usize = 1 << 20;

/// The largest uncompressed `.wasm` entry a package may hold (50 MiB): a bigger one, or a
/// zip bomb, is refused before it is inflated past this.
pub const MAX_ENTRY_BYTES: u64 = 50 << 20;

/// The most elements a table may hold (the indirect-call table of large programs holds a few
/// thousand).
pub const MAX_TABLE_ELEMENTS: usize = 1 << 18;

/// The most tables and memories a run may create: one memory makes `memory_bytes` the cap on
/// all linear memory.
const MAX_TABLES: usize = 4;
const MAX_MEMORIES: usize = 1;

/// Enforces [`RunLimits::memory_bytes`] and the table caps, and remembers what was refused,
/// so the run can report resource exhaustion rather than a bare trap.
pub(crate) struct Limiter {
    memory_bytes: usize,
    pub(crate) exhausted: Option<String>,
}

impl Limiter {
    pub(crate) fn new(memory_bytes: u64) -> Self {
        Self {
            memory_bytes: usize::try_from(memory_bytes).unwrap_or(usize::MAX),
            exhausted: None,
        }
    }

    /// Why a run that wanted more memory than its limit ended.
    pub(crate) fn memory_exhausted(&self) -> String {
        format!(
            "The function needed more than its memory limit of {} bytes.",
            self.memory_bytes
        )
    }
}

impl ResourceLimiter for Limiter {
    /// Growing past the limit traps at once (instead of `memory.grow` returning -1): a
    /// program out of memory cannot do anything useful, and the run ends with a clear cause.
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> Result<bool, LimiterError> {
        if maximum.is_some_and(|max| desired > max) {
            return Ok(false);
        }
        if desired > self.memory_bytes {
            self.exhausted = Some(self.memory_exhausted());
            return Err(LimiterError::ResourceLimiterDeniedAllocation);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> Result<bool, LimiterError> {
        if maximum.is_some_and(|max| desired > max) {
            return Ok(false);
        }
        if desired > MAX_TABLE_ELEMENTS {
            self.exhausted = Some(format!(
                "The function needed a table of more than {MAX_TABLE_ELEMENTS} elements."
            ));
            return Err(LimiterError::ResourceLimiterDeniedAllocation);
        }
        Ok(true)
    }

    fn instances(&self) -> usize {
        1
    }

    fn tables(&self) -> usize {
        MAX_TABLES
    }

    fn memories(&self) -> usize {
        MAX_MEMORIES
    }
}
