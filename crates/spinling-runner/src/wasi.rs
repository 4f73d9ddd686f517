//! The WASI preview1 functions a function's module may import, implemented on wasmi over
//! in-memory stdio. There is deliberately no filesystem (no preopens), no environment and no
//! network: a function sees its input on stdin, and nothing else of the host.
//!
//! Every function here is paid for from the run's fuel budget ([`charge`]): a fixed
//! [`HOST_CALL_FUEL`] per call plus what it handles (bytes, iovecs, subscriptions), and every
//! call first checks the run's wall-clock deadline. What one call may ask for is capped
//! ([`MAX_IOVECS`], [`MAX_POLL_SUBSCRIPTIONS`], [`MAX_RANDOM_BYTES`]), so one call's work and
//! the host's allocations stay small whatever the guest passes, and no loop over host calls
//! outlasts the run's timeout.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use wasmi::{
    errors::HostError, Caller, Error, Extern, ExternType, Func, FuncType, Linker, Module, Store,
    Val, ValType,
};

use crate::limits::{
    Limiter, HOST_CALL_FUEL, HOST_FUEL_PER_BYTE, HOST_FUEL_PER_IOVEC, HOST_FUEL_PER_SUBSCRIPTION,
    MAX_IOVECS, MAX_POLL_SUBSCRIPTIONS, MAX_RANDOM_BYTES,
};
/// The only import module a function may use.
pub(crate) const WASI_MODULE: &str = "wasi_snapshot_preview1";

/// Why a module cannot be linked to these functions (a `PrepareError` to its author).
#[derive(Debug)]
pub(crate) enum LinkError {
    /// An import of something other than a WASI function.
    UnsupportedImport { module: String, name: String },
    /// A WASI function imported with another type than WASI gives it.
    WrongImportType {
        name: String,
        wanted: FuncType,
        found: FuncType,
    },
    /// The linker refused the module.
    InvalidModule(String),
}

/// WASI errno values (`wasi_snapshot_preview1` `errno`).
mod errno {
    pub const SUCCESS: i32 = 0;
    pub const BADF: i32 = 8;
    pub const FAULT: i32 = 21;
    pub const INVAL: i32 = 28;
    pub const NOSYS: i32 = 52;
    pub const SPIPE: i32 = 70;
}

const STDIN: i32 = 0;
const STDOUT: i32 = 1;
const STDERR: i32 = 2;

const CLOCK_REALTIME: i32 = 0;
const CLOCK_MONOTONIC: i32 = 1;
const CLOCK_PROCESS_CPUTIME: i32 = 2;
const CLOCK_THREAD_CPUTIME: i32 = 3;

/// Sizes and tags of the `poll_oneoff` records.
const SUBSCRIPTION_SIZE: u32 = 48;
const EVENT_SIZE: u32 = 32;
const EVENT_CLOCK: u8 = 0;
const EVENT_FD_READ: u8 = 1;
const EVENT_FD_WRITE: u8 = 2;
const SUBCLOCK_ABSTIME: u16 = 1;

/// Output captured from the guest, kept up to a cap; what is written beyond it is dropped
/// (but reported to the guest as written, so it does not retry forever).
pub(crate) struct Capture {
    pub(crate) bytes: Vec<u8>,
    cap: usize,
    pub(crate) truncated: bool,
}

impl Capture {
    fn new(cap: usize) -> Self {
        Self {
            bytes: Vec::new(),
            cap,
            truncated: false,
        }
    }

    /// Keeps what fits and returns how many bytes that was.
    fn push(&mut self, bytes: &[u8]) -> usize {
        let room = self.cap - self.bytes.len();
        if bytes.len() > room {
            self.truncated = true;
        }
        let kept = bytes.len().min(room);
        self.bytes.extend_from_slice(&bytes[..kept]);
        kept
    }
}

/// Everything a run's WASI functions can see: the store's data.
pub(crate) struct Host {
    stdin: Vec<u8>,
    stdin_read: usize,
    pub(crate) stdout: Capture,
    pub(crate) stderr: Capture,
    argv0: Vec<u8>,
    started: Instant,
    /// The wall-clock end of the run: no host call starts after it, and a `poll_oneoff`
    /// sleep never goes past it.
    deadline: Instant,
    /// The part of the run's fuel budget not yet handed to the store: the run refills the
    /// store from it slice by slice, and host work the store's slice cannot pay comes out
    /// of it.
    pub(crate) unsliced: u64,
    pub(crate) limiter: Limiter,
}

impl Host {
    pub(crate) fn new(
        stdin: &[u8],
        argv0: &str,
        output_cap: usize,
        deadline: Instant,
        limiter: Limiter,
    ) -> Self {
        Self {
            stdin: stdin.to_vec(),
            stdin_read: 0,
            stdout: Capture::new(output_cap),
            stderr: Capture::new(output_cap),
            argv0: argv0.as_bytes().to_vec(),
            started: Instant::now(),
            deadline,
            unsliced: 0,
            limiter,
        }
    }

    /// Whether the run's wall-clock time is up.
    pub(crate) fn past_deadline(&self) -> bool {
        Instant::now() >= self.deadline
    }

    /// The time of a WASI clock in nanoseconds, or `None` for an unknown clock. The monotonic
    /// and CPU clocks count from the start of the run (one thread: CPU time ≈ wall time).
    fn now(&self, clock: i32) -> Option<u64> {
        let nanos = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        match clock {
            CLOCK_REALTIME => Some(nanos(
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default(),
            )),
            CLOCK_MONOTONIC | CLOCK_PROCESS_CPUTIME | CLOCK_THREAD_CPUTIME => {
                Some(nanos(self.started.elapsed()))
            }
            _ => None,
        }
    }
}

/// Ends a run from inside a host call: its wall-clock deadline passed (during a
/// `poll_oneoff` sleep, or before the call), or its fuel budget cannot pay for the call.
#[derive(Debug)]
pub(crate) struct OutOfTime;

impl std::fmt::Display for OutOfTime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the function ran out of time")
    }
}

impl HostError for OutOfTime {}

/// Pays `fuel` for host work: from the store's current slice, and what the slice cannot pay
/// from the unsliced budget. Ends the run as out of time when the deadline has passed or
/// the whole budget cannot pay.
fn charge(caller: &mut Caller<'_, Host>, fuel: u64) -> Result<(), Error> {
    if caller.data().past_deadline() {
        return Err(Error::host(OutOfTime));
    }
    let in_store = caller.get_fuel()?;
    if let Some(left) = in_store.checked_sub(fuel) {
        return caller.set_fuel(left);
    }
    caller.set_fuel(0)?;
    let host = caller.data_mut();
    match host.unsliced.checked_sub(fuel - in_store) {
        Some(left) => {
            host.unsliced = left;
            Ok(())
        }
        None => {
            host.unsliced = 0;
            Err(Error::host(OutOfTime))
        }
    }
}

/// The fuel for a call handling `count` items at `each`, `count` as the guest passed it; a
/// call over the `cap` is refused without looking at the items, so they cost nothing.
fn per_item(count: i32, cap: u32, each: u64) -> u64 {
    match u32::try_from(count) {
        Ok(count) if count <= cap => u64::from(count) * each,
        _ => 0,
    }
}

/// Builds the linker for one run: every import of `module` must come from
/// `wasi_snapshot_preview1`; the functions implemented here are checked against the imported
/// types, and any other WASI function gets a stub that answers `ENOSYS`.
///
/// `prepare` calls this on a throwaway store, so a module that would not link is refused
/// before it ever runs.
pub(crate) fn link(store: &mut Store<Host>, module: &Module) -> Result<Linker<Host>, LinkError> {
    let mut linker = Linker::new(store.engine());
    // A module may import the same function twice.
    linker.allow_shadowing(true);
    for import in module.imports() {
        let unsupported = || LinkError::UnsupportedImport {
            module: import.module().to_string(),
            name: import.name().to_string(),
        };
        let ExternType::Func(wanted) = import.ty() else {
            return Err(unsupported());
        };
        if import.module() != WASI_MODULE {
            return Err(unsupported());
        }
        let func = match implemented(store, import.name()) {
            Some(func) => {
                let found = func.ty(&*store);
                if &found != wanted {
                    return Err(LinkError::WrongImportType {
                        name: import.name().to_string(),
                        wanted: wanted.clone(),
                        found,
                    });
                }
                func
            }
            None => not_implemented(store, import.name(), wanted.clone()),
        };
        linker
            .define(WASI_MODULE, import.name(), func)
            .map_err(|err| LinkError::InvalidModule(err.to_string()))?;
    }
    Ok(linker)
}

/// A stub for a WASI function this runner does not provide: it answers `ENOSYS`, or traps if
/// its type has no errno result to answer with.
fn not_implemented(store: &mut Store<Host>, name: &str, ty: wasmi::FuncType) -> Func {
    let name = name.to_string();
    Func::new(store, ty, move |mut caller, _params, results| {
        charge(&mut caller, HOST_CALL_FUEL)?;
        if let [result] = results {
            if result.ty() == ValType::I32 {
                *result = Val::I32(errno::NOSYS);
                return Ok(());
            }
        }
        Err(Error::new(format!(
            "the WASI function {WASI_MODULE}::{name} is not supported"
        )))
    })
}

/// The WASI functions implemented here, by name. Each pays [`HOST_CALL_FUEL`] (and checks the
/// deadline) before it does anything, then what it handles.
fn implemented(store: &mut Store<Host>, name: &str) -> Option<Func> {
    let func = match name {
        "args_sizes_get" => Func::wrap(
            store,
            |mut caller: Caller<'_, Host>, argc: i32, size: i32| -> Result<i32, Error> {
                charge(&mut caller, HOST_CALL_FUEL)?;
                Ok(with_memory(&mut caller, |mem, host| {
                    let len = host.argv0.len() as u32 + 1;
                    write_u32(mem, argc, 1)?;
                    write_u32(mem, size, len)
                }))
            },
        ),
        "args_get" => Func::wrap(
            store,
            |mut caller: Caller<'_, Host>, argv: i32, buf: i32| -> Result<i32, Error> {
                charge(&mut caller, HOST_CALL_FUEL)?;
                Ok(with_memory(&mut caller, |mem, host| {
                    let arg = &host.argv0;
                    write_bytes(mem, buf, arg)?;
                    write_bytes(mem, buf.wrapping_add(arg.len() as i32), &[0])?;
                    write_u32(mem, argv, buf as u32)
                }))
            },
        ),
        "environ_sizes_get" => Func::wrap(
            store,
            |mut caller: Caller<'_, Host>, count: i32, size: i32| -> Result<i32, Error> {
                charge(&mut caller, HOST_CALL_FUEL)?;
                Ok(with_memory(&mut caller, |mem, _| {
                    write_u32(mem, count, 0)?;
                    write_u32(mem, size, 0)
                }))
            },
        ),
        "environ_get" => Func::wrap(
            store,
            |mut caller: Caller<'_, Host>, _environ: i32, _buf: i32| -> Result<i32, Error> {
                charge(&mut caller, HOST_CALL_FUEL)?;
                Ok(errno::SUCCESS)
            },
        ),
        "clock_res_get" => Func::wrap(
            store,
            |mut caller: Caller<'_, Host>, clock: i32, res: i32| -> Result<i32, Error> {
                charge(&mut caller, HOST_CALL_FUEL)?;
                Ok(with_memory(&mut caller, |mem, host| {
                    host.now(clock).ok_or(errno::INVAL)?;
                    write_u64(mem, res, 1_000)
                }))
            },
        ),
        "clock_time_get" => Func::wrap(
            store,
            |mut caller: Caller<'_, Host>,
             clock: i32,
             _precision: i64,
             time: i32|
             -> Result<i32, Error> {
                charge(&mut caller, HOST_CALL_FUEL)?;
                Ok(with_memory(&mut caller, |mem, host| {
                    let now = host.now(clock).ok_or(errno::INVAL)?;
                    write_u64(mem, time, now)
                }))
            },
        ),
        "fd_close" => Func::wrap(
            store,
            |mut caller: Caller<'_, Host>, fd: i32| -> Result<i32, Error> {
                charge(&mut caller, HOST_CALL_FUEL)?;
                Ok(match fd {
                    STDIN | STDOUT | STDERR => errno::SUCCESS,
                    _ => errno::BADF,
                })
            },
        ),
        "fd_fdstat_get" => Func::wrap(
            store,
            |mut caller: Caller<'_, Host>, fd: i32, stat: i32| -> Result<i32, Error> {
                charge(&mut caller, HOST_CALL_FUEL)?;
                Ok(with_memory(&mut caller, |mem, _| {
                    const RIGHT_FD_READ: u64 = 1 << 1;
                    const RIGHT_FD_WRITE: u64 = 1 << 6;
                    let rights = match fd {
                        STDIN => RIGHT_FD_READ,
                        STDOUT | STDERR => RIGHT_FD_WRITE,
                        _ => return Err(errno::BADF),
                    };
                    // filetype 0 (unknown: a pipe, not a terminal), no flags, then the rights.
                    write_bytes(mem, stat, &[0; 8])?;
                    write_u64(mem, stat.wrapping_add(8), rights)?;
                    write_u64(mem, stat.wrapping_add(16), 0)
                }))
            },
        ),
        "fd_seek" => Func::wrap(
            store,
            |mut caller: Caller<'_, Host>,
             fd: i32,
             _offset: i64,
             _whence: i32,
             _new: i32|
             -> Result<i32, Error> {
                charge(&mut caller, HOST_CALL_FUEL)?;
                Ok(match fd {
                    STDIN | STDOUT | STDERR => errno::SPIPE,
                    _ => errno::BADF,
                })
            },
        ),
        "fd_prestat_get" => Func::wrap(
            store,
            |mut caller: Caller<'_, Host>, _fd: i32, _prestat: i32| -> Result<i32, Error> {
                charge(&mut caller, HOST_CALL_FUEL)?;
                Ok(errno::BADF)
            },
        ),
        "fd_prestat_dir_name" => Func::wrap(
            store,
            |mut caller: Caller<'_, Host>, _fd: i32, _path: i32, _len: i32| -> Result<i32, Error> {
                charge(&mut caller, HOST_CALL_FUEL)?;
                Ok(errno::BADF)
            },
        ),
        "fd_read" => Func::wrap(store, fd_read),
        "fd_write" => Func::wrap(store, fd_write),
        "poll_oneoff" => Func::wrap(store, poll_oneoff),
        "proc_exit" => Func::wrap(
            store,
            |_: Caller<'_, Host>, code: i32| -> Result<(), Error> {
                // Unwinds the guest: the run reads the code back from the error.
                Err(Error::i32_exit(code))
            },
        ),
        "random_get" => Func::wrap(
            store,
            |mut caller: Caller<'_, Host>, buf: i32, len: i32| -> Result<i32, Error> {
                let len = len as u32;
                if len > MAX_RANDOM_BYTES {
                    charge(&mut caller, HOST_CALL_FUEL)?;
                    return Ok(errno::INVAL);
                }
                charge(
                    &mut caller,
                    HOST_CALL_FUEL + u64::from(len) * HOST_FUEL_PER_BYTE,
                )?;
                Ok(with_memory(&mut caller, |mem, _| {
                    let bytes = slice_mut(mem, buf, len)?;
                    getrandom::fill(bytes).map_err(|_| errno::NOSYS)
                }))
            },
        ),
        "sched_yield" => Func::wrap(
            store,
            |mut caller: Caller<'_, Host>| -> Result<i32, Error> {
                charge(&mut caller, HOST_CALL_FUEL)?;
                Ok(errno::SUCCESS)
            },
        ),
        _ => return None,
    };
    Some(func)
}

/// `fd_read` on stdin: fills the iovecs in order from what is left of the input.
fn fd_read(
    mut caller: Caller<'_, Host>,
    fd: i32,
    iovs: i32,
    iovs_len: i32,
    nread: i32,
) -> Result<i32, Error> {
    charge(
        &mut caller,
        HOST_CALL_FUEL + per_item(iovs_len, MAX_IOVECS, HOST_FUEL_PER_IOVEC),
    )?;
    let mut copied = 0u64;
    let errno = with_memory(&mut caller, |mem, host| {
        if fd != STDIN {
            return Err(errno::BADF);
        }
        let mut total = 0u32;
        for (buf, len) in iovecs(mem, iovs, iovs_len)? {
            let rest = &host.stdin[host.stdin_read..];
            let n = rest.len().min(len as usize);
            write_bytes(mem, buf as i32, &rest[..n])?;
            host.stdin_read += n;
            total += n as u32;
        }
        copied = u64::from(total);
        write_u32(mem, nread, total)
    });
    charge(&mut caller, copied * HOST_FUEL_PER_BYTE)?;
    Ok(errno)
}

/// `fd_write` on stdout or stderr: keeps what fits under the output cap.
fn fd_write(
    mut caller: Caller<'_, Host>,
    fd: i32,
    iovs: i32,
    iovs_len: i32,
    nwritten: i32,
) -> Result<i32, Error> {
    charge(
        &mut caller,
        HOST_CALL_FUEL + per_item(iovs_len, MAX_IOVECS, HOST_FUEL_PER_IOVEC),
    )?;
    let mut copied = 0u64;
    let errno = with_memory(&mut caller, |mem, host| {
        let out = match fd {
            STDOUT => &mut host.stdout,
            STDERR => &mut host.stderr,
            _ => return Err(errno::BADF),
        };
        let mut total = 0u32;
        for (buf, len) in iovecs(mem, iovs, iovs_len)? {
            copied += out.push(slice(mem, buf as i32, len)?) as u64;
            total = total.saturating_add(len);
        }
        write_u32(mem, nwritten, total)
    });
    charge(&mut caller, copied * HOST_FUEL_PER_BYTE)?;
    Ok(errno)
}

/// `poll_oneoff`: fd subscriptions are always ready (stdio is in memory); with only clock
/// subscriptions it really sleeps until the earliest one, but never past the run's deadline.
/// At most [`MAX_POLL_SUBSCRIPTIONS`] subscriptions per call.
fn poll_oneoff(
    mut caller: Caller<'_, Host>,
    subs: i32,
    events: i32,
    nsubs: i32,
    nevents: i32,
) -> Result<i32, Error> {
    charge(
        &mut caller,
        HOST_CALL_FUEL + per_item(nsubs, MAX_POLL_SUBSCRIPTIONS, HOST_FUEL_PER_SUBSCRIPTION),
    )?;
    let mut sleep = None;
    let polled = with_memory(&mut caller, |mem, host| {
        if nsubs <= 0 || nsubs as u32 > MAX_POLL_SUBSCRIPTIONS {
            return Err(errno::INVAL);
        }
        let mut ready = Vec::new();
        let mut earliest: Option<(u64, u64)> = None;
        for i in 0..nsubs as u32 {
            let sub = (subs as u32).wrapping_add(i.wrapping_mul(SUBSCRIPTION_SIZE)) as i32;
            let userdata = read_u64(mem, sub)?;
            let tag = slice(mem, sub.wrapping_add(8), 1)?[0];
            match tag {
                EVENT_CLOCK => {
                    let clock = read_u32(mem, sub.wrapping_add(16))? as i32;
                    let timeout = read_u64(mem, sub.wrapping_add(24))?;
                    let flags = u16::from_le_bytes(
                        slice(mem, sub.wrapping_add(40), 2)?
                            .try_into()
                            .unwrap_or_default(),
                    );
                    let now = host.now(clock).ok_or(errno::INVAL)?;
                    let wait = if flags & SUBCLOCK_ABSTIME != 0 {
                        timeout.saturating_sub(now)
                    } else {
                        timeout
                    };
                    if earliest.is_none_or(|(w, _)| wait < w) {
                        earliest = Some((wait, userdata));
                    }
                }
                EVENT_FD_READ | EVENT_FD_WRITE => {
                    let fd = read_u32(mem, sub.wrapping_add(16))? as i32;
                    let (error, nbytes) = match (tag, fd) {
                        (EVENT_FD_READ, STDIN) => (0, (host.stdin.len() - host.stdin_read) as u64),
                        (EVENT_FD_WRITE, STDOUT | STDERR) => (0, 0),
                        _ => (errno::BADF as u16, 0),
                    };
                    ready.push((userdata, error, tag, nbytes));
                }
                _ => return Err(errno::INVAL),
            }
        }
        if ready.is_empty() {
            if let Some((wait, userdata)) = earliest {
                sleep = Some(Duration::from_nanos(wait));
                ready.push((userdata, 0, EVENT_CLOCK, 0));
            }
        }
        for (i, (userdata, error, tag, nbytes)) in ready.iter().enumerate() {
            let event = (events as u32).wrapping_add(i as u32 * EVENT_SIZE) as i32;
            let mut record = [0u8; EVENT_SIZE as usize];
            record[0..8].copy_from_slice(&userdata.to_le_bytes());
            record[8..10].copy_from_slice(&error.to_le_bytes());
            record[10] = *tag;
            record[16..24].copy_from_slice(&nbytes.to_le_bytes());
            write_bytes(mem, event, &record)?;
        }
        write_u32(mem, nevents, ready.len() as u32)
    });
    if let (errno::SUCCESS, Some(wait)) = (polled, sleep) {
        let deadline = caller.data().deadline;
        let now = Instant::now();
        if now + wait >= deadline {
            std::thread::sleep(deadline.saturating_duration_since(now));
            return Err(Error::host(OutOfTime));
        }
        std::thread::sleep(wait);
    }
    Ok(polled)
}

/// Runs `f` on the guest's exported `memory` and the host state, turning its result into a
/// WASI errno. A module without a `memory` export gets `EFAULT` for any pointer use.
fn with_memory(
    caller: &mut Caller<'_, Host>,
    f: impl FnOnce(&mut [u8], &mut Host) -> Result<(), i32>,
) -> i32 {
    let Some(memory) = caller.get_export("memory").and_then(Extern::into_memory) else {
        return errno::FAULT;
    };
    let (mem, host) = memory.data_and_store_mut(caller);
    match f(mem, host) {
        Ok(()) => errno::SUCCESS,
        Err(errno) => errno,
    }
}

/// Guest pointers are `i32` in the WASI signatures but addresses are unsigned.
fn range(ptr: i32, len: u32) -> Result<std::ops::Range<usize>, i32> {
    let start = ptr as u32 as usize;
    Ok(start..start.checked_add(len as usize).ok_or(errno::FAULT)?)
}

fn slice(mem: &[u8], ptr: i32, len: u32) -> Result<&[u8], i32> {
    mem.get(range(ptr, len)?).ok_or(errno::FAULT)
}

fn slice_mut(mem: &mut [u8], ptr: i32, len: u32) -> Result<&mut [u8], i32> {
    mem.get_mut(range(ptr, len)?).ok_or(errno::FAULT)
}

fn write_bytes(mem: &mut [u8], ptr: i32, bytes: &[u8]) -> Result<(), i32> {
    slice_mut(mem, ptr, bytes.len() as u32)?.copy_from_slice(bytes);
    Ok(())
}

fn write_u32(mem: &mut [u8], ptr: i32, value: u32) -> Result<(), i32> {
    write_bytes(mem, ptr, &value.to_le_bytes())
}

fn write_u64(mem: &mut [u8], ptr: i32, value: u64) -> Result<(), i32> {
    write_bytes(mem, ptr, &value.to_le_bytes())
}

fn read_u32(mem: &[u8], ptr: i32) -> Result<u32, i32> {
    let bytes = slice(mem, ptr, 4)?;
    Ok(u32::from_le_bytes(
        bytes.try_into().map_err(|_| errno::FAULT)?,
    ))
}

fn read_u64(mem: &[u8], ptr: i32) -> Result<u64, i32> {
    let bytes = slice(mem, ptr, 8)?;
    Ok(u64::from_le_bytes(
        bytes.try_into().map_err(|_| errno::FAULT)?,
    ))
}

/// The `(buf, buf_len)` pairs of an iovec array of at most [`MAX_IOVECS`].
fn iovecs(mem: &[u8], iovs: i32, len: i32) -> Result<Vec<(u32, u32)>, i32> {
    let len = u32::try_from(len).map_err(|_| errno::INVAL)?;
    if len > MAX_IOVECS {
        return Err(errno::INVAL);
    }
    let array = slice(mem, iovs, len.checked_mul(8).ok_or(errno::FAULT)?)?;
    Ok(array
        .chunks_exact(8)
        .map(|iov| {
            let word = |i: usize| u32::from_le_bytes([iov[i], iov[i + 1], iov[i + 2], iov[i + 3]]);
            (word(0), word(4))
        })
        .collect())
}
