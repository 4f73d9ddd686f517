//! One run of a prepared module: stdin in, stdout and stderr out, under the run's limits.

use std::time::{Duration, Instant};

use wasmi::errors::{ErrorKind, InstantiationError, MemoryError, TableError};
use wasmi::{Func, ResumableCall, Store, TrapCode};

use crate::limits::{
    Limiter, RunLimits, FUEL_PER_SECOND, FUEL_SLICE, MAX_OUTPUT_BYTES, MAX_TABLE_ELEMENTS,
};
use crate::wasi::{self, Host, OutOfTime};
use crate::{PrepareError, Prepared};

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunStatus {
    /// `_start` returned, or the function called `proc_exit(0)`.
    Success,
    /// A non-zero exit code or a trap, with a message for the function's author.
    Failed(String),
    /// The function used up its fuel budget or its wall-clock time.
    Timeout,
    /// The function hit its memory limit, a table cap or the call-stack depth.
    ResourceExhausted(String),
}

/// What a run produced.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    pub status: RunStatus,
    /// The function's output, at most [`MAX_OUTPUT_BYTES`].
    pub stdout: Vec<u8>,
    /// Whether the function wrote more to stdout than was kept.
    pub stdout_cut: bool,
    /// The function's log, at most [`MAX_OUTPUT_BYTES`], plus a closing note when stdout or
    /// stderr was cut.
    pub stderr: Vec<u8>,
    /// Wall-clock time of the run, instantiation included.
    pub duration: Duration,
    /// The exit code, when the function exited (returning from `_start` is 0).
    pub exit_code: Option<i32>,
    /// The fuel the run burned (see [`FUEL_PER_SECOND`]).
    pub fuel_consumed: u64,
}

/// How the guest's execution stopped, before it is judged.
enum End {
    Returned,
    OutOfTime,
    Error(wasmi::Error),
    /// The module passed `prepare` but could not be set up for this run.
    NotRunnable(String),
}

/// Runs the module's `_start` with `stdin` as its standard input. Never panics on guest
/// behaviour: every way a function can end is a [`RunStatus`].
pub fn run(prepared: &Prepared, stdin: &[u8], limits: &RunLimits) -> RunOutcome {
    let started = Instant::now();
    let timeout = Duration::from_secs(limits.timeout_seconds);
    // An absurd timeout that overflows `Instant` still gets a deadline, a year away.
    let deadline = started
        .checked_add(timeout)
        .unwrap_or_else(|| started + Duration::from_secs(365 * 24 * 3600));
    let module = prepared.module();
    let host = Host::new(
        stdin,
        prepared.entry(),
        MAX_OUTPUT_BYTES,
        deadline,
        Limiter::new(limits.memory_bytes),
    );
    let mut store = Store::new(module.engine(), host);
    store.limiter(|host| &mut host.limiter);

    let budget = limits.timeout_seconds.saturating_mul(FUEL_PER_SECOND);
    store.data_mut().unsliced = budget;
    let end = execute(&mut store, prepared, deadline);
    let fuel_consumed =
        budget.saturating_sub(store.data().unsliced + store.get_fuel().unwrap_or(0));
    let duration = started.elapsed();

    let host = store.into_data();
    let (status, exit_code) = match end {
        End::Returned => (RunStatus::Success, Some(0)),
        End::OutOfTime => (RunStatus::Timeout, None),
        End::NotRunnable(reason) => (RunStatus::Failed(reason), None),
        End::Error(error) => judge(&error, &host.limiter),
    };
    let mut stderr = host.stderr.bytes;
    for (name, truncated) in [
        ("stdout", host.stdout.truncated),
        ("stderr", host.stderr.truncated),
    ] {
        if truncated {
            let note = format!("\n[spinling] {name} was cut at {MAX_OUTPUT_BYTES} bytes.\n");
            stderr.extend_from_slice(note.as_bytes());
        }
    }
    RunOutcome {
        status,
        stdout_cut: host.stdout.truncated,
        stdout: host.stdout.bytes,
        stderr,
        duration,
        exit_code,
        fuel_consumed,
    }
}

/// Instantiates the module (no guest code runs then: [`Prepared`] lifted any start section
/// out), then runs the start function, if any, and `_start`, each in slices of fuel with the
/// wall clock checked between slices. The store holds one slice at a time and the host the
/// rest of the budget (`Host::unsliced`), which host calls also pay from.
fn execute(store: &mut Store<Host>, prepared: &Prepared, deadline: Instant) -> End {
    let module = prepared.module();
    let linker = match wasi::link(store, module) {
        Ok(linker) => linker,
        Err(err) => return End::NotRunnable(PrepareError::from(err).to_string()),
    };
    let first = FUEL_SLICE.min(store.data().unsliced);
    store.data_mut().unsliced -= first;
    if let Err(err) = store.set_fuel(first) {
        return End::Error(err);
    }
    let instance = match linker.instantiate_and_start(&mut *store, module) {
        Ok(instance) => instance,
        Err(err) => return End::Error(err),
    };
    let start = prepared
        .start_export()
        .map(|name| instance.get_func(&*store, name));
    let funcs = match start {
        None => vec![],
        Some(Some(start)) => vec![start],
        Some(None) => return End::NotRunnable("the module's start function is missing".into()),
    };
    let Some(main) = instance.get_func(&*store, "_start") else {
        return End::NotRunnable("the module has no _start function".into());
    };
    for func in funcs.into_iter().chain([main]) {
        if let Some(end) = call_sliced(store, func, deadline) {
            return end;
        }
    }
    End::Returned
}

/// Calls `func` (no parameters, no results) resumably, refilling the store's fuel one slice
/// at a time while the deadline allows. `None` when it returned.
fn call_sliced(store: &mut Store<Host>, func: Func, deadline: Instant) -> Option<End> {
    let mut call = func.call_resumable(&mut *store, &[], &mut []);
    loop {
        match call {
            Ok(ResumableCall::Finished) => return None,
            Ok(ResumableCall::HostTrap(trap)) => return Some(End::Error(trap.into_host_error())),
            Ok(ResumableCall::OutOfFuel(paused)) => {
                let left = store.get_fuel().unwrap_or(0);
                let needed = paused.required_fuel();
                let unsliced = store.data().unsliced;
                let slice = FUEL_SLICE.max(needed).min(unsliced);
                if Instant::now() >= deadline || left + slice < needed || slice == 0 {
                    return Some(End::OutOfTime);
                }
                store.data_mut().unsliced -= slice;
                if let Err(err) = store.set_fuel(left + slice) {
                    return Some(End::Error(err));
                }
                call = paused.resume(&mut *store, &mut []);
            }
            Err(err) => return Some(End::Error(err)),
        }
    }
}

/// Turns the error that ended a run into its status and exit code.
fn judge(error: &wasmi::Error, limiter: &Limiter) -> (RunStatus, Option<i32>) {
    if let Some(code) = error.i32_exit_status() {
        return match code {
            0 => (RunStatus::Success, Some(0)),
            code => (
                RunStatus::Failed(format!("The function exited with code {code}.")),
                Some(code),
            ),
        };
    }
    if error.downcast_ref::<OutOfTime>().is_some() {
        return (RunStatus::Timeout, None);
    }
    if let Some(exhausted) = &limiter.exhausted {
        return (RunStatus::ResourceExhausted(exhausted.clone()), None);
    }
    // A memory (or table) declared larger than the host's address space, such as 65,536
    // pages on wasm32, is refused by the engine before the limiter is asked: as much over the
    // limit as it gets.
    // Instantiation reports the same refusals wrapped in its own error.
    let (memory, table) = match error.kind() {
        ErrorKind::Memory(memory) => (Some(memory), None),
        ErrorKind::Table(table) => (None, Some(table)),
        ErrorKind::Instantiation(InstantiationError::FailedToInstantiateMemory(memory)) => {
            (Some(memory), None)
        }
        ErrorKind::Instantiation(InstantiationError::FailedToInstantiateTable(table)) => {
            (None, Some(table))
        }
        _ => (None, None),
    };
    match (memory, table) {
        (Some(MemoryError::MinimumSizeOverflow | MemoryError::MaximumSizeOverflow), _) => {
            return (
                RunStatus::ResourceExhausted(limiter.memory_exhausted()),
                None,
            )
        }
        (_, Some(TableError::MinimumSizeOverflow | TableError::MaximumSizeOverflow)) => {
            let reason =
                format!("The function needed a table of more than {MAX_TABLE_ELEMENTS} elements.");
            return (RunStatus::ResourceExhausted(reason), None);
        }
        _ => {}
    }
    let status = match error.as_trap_code() {
        Some(TrapCode::OutOfFuel) => RunStatus::Timeout,
        Some(TrapCode::StackOverflow) => {
            RunStatus::ResourceExhausted("The function overflowed its call stack.".into())
        }
        Some(_) => RunStatus::Failed(format!("The function trapped: {error}.")),
        None => RunStatus::Failed(format!("The function failed: {error}.")),
    };
    (status, None)
}
