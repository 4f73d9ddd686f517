//! The jobs' scheduler on Spin, which has no timer trigger.
//!
//! One loop per database ticks every [`TICK`]: it fires the due jobs (`jobs::tick`, exactly
//! once each however many loops run) and runs their executions. The loop is an ordinary
//! request to the jobs component, `POST /v1/jobs/scheduler` by service chaining: it answers
//! at once and keeps running after its response, as a handler that runs asynchronous
//! executions does (Spin keeps an instance until its handler returns). Who may run it is a
//! lease in the database (`scheduler_lease`): a request of any group that opened the database
//! anyway (every write, and every read the cache cannot answer) and finds the lease expired
//! while jobs are running takes it and starts a loop ([`kick`]; a write of a group that cannot
//! start scheduled work looks at the lease in the statement that checks the schema, and reads
//! it again only if a loop was wanted); the loop renews it
//! every tick, and after [`LIFETIME`] hands it to a fresh instance it starts the same way, so
//! no instance lives long. A loop that dies (its instance killed) leaves the lease to expire
//! within `jobs::LEASE_SECONDS`; the next request starts another. A loop with no running job
//! left gives the lease up and ends.
//!
//! The loop only fires: each execution it fired runs in an instance of its own, started the
//! same way (`POST /v1/jobs/scheduler/run`, answered at once, run after the response), so
//! executions due together run side by side and a long one delays neither the others nor
//! the next tick, and the loop renews its lease every tick.
//!
//! Only the lease's holder id (random, 122 bits, sent in the loop's body) opens the loop's
//! and the run's paths; another caller gets a 404 there, answered after one read, with no
//! write.

use crate::outbound::{call, Call, CallError, Reply};
use spinling_core::domain::executions::complete;
use spinling_core::domain::jobs;
use spinling_core::domain::workers::{Executor, Job, WorkerFailure};
use spinling_core::store::cache::Cache;
use spinling_core::store::db::Database;
use spinling_core::time::now_unix;
use spinling_core::web::api::executions::{worker_download_url, NO_PUBLIC_URL};
use spinling_core::web::http::ApiRequest;
use std::time::Duration;
use wasi::http::types::Method;

/// The loop's path on the jobs component.
pub const LOOP_PATH: &str = "/v1/jobs/scheduler";

/// The path on the jobs component where the loop hands each execution it fired to an
/// instance of its own.
pub const RUN_PATH: &str = "/v1/jobs/scheduler/run";

/// How often a loop ticks: a due job fires within this (plus the time the tick takes) of its
/// `next_execution_time`.
pub const TICK: Duration = Duration::from_secs(2);

/// How long one instance loops before handing over to a fresh one, in seconds.
pub const LIFETIME: i64 = 120;

/// The loop answers at once; do not wait long for a jobs component that does not.
const START_TIMEOUT_NS: u64 = 10_000_000_000;

/// Whether `request` asks to run the loop.
pub fn is_loop_request(request: &ApiRequest) -> bool {
    request.method == "POST" && request.path.trim_end_matches('/') == LOOP_PATH
}

/// Whether `request` hands over an execution the loop fired.
pub fn is_run_request(request: &ApiRequest) -> bool {
    request.method == "POST" && request.path.trim_end_matches('/') == RUN_PATH
}

/// Starts a loop if none runs and some job is running. Cheap otherwise: one read. The loop
/// keeps nothing of the request that started it: external workers download its runs'
/// packages from `public_url`.
pub fn kick(db: &dyn Database) {
    let holder = spinling_core::id::new_id();
    match jobs::take_lease(db, &holder, now_unix()) {
        Ok(true) => start(&holder),
        Ok(false) => {}
        Err(e) => eprintln!("scheduler: could not read its lease: {}", e.log_line()),
    }
}

/// Asks a fresh instance of the jobs component to loop as `holder`. On failure the lease
/// simply expires, and a later request tries again.
fn start(holder: &str) {
    match post_to_jobs(LOOP_PATH, &serde_json::json!({ "holder": holder })) {
        Ok(reply) if reply.status == 202 => {}
        Ok(reply) => eprintln!("scheduler: the jobs component answered {}", reply.status),
        Err(e) => eprintln!("scheduler: could not start a loop: {e:?}"),
    }
}

/// Posts `body` to `path` of a fresh instance of the jobs component (service chaining), which
/// answers 202 at once and works after its response.
fn post_to_jobs(path: &str, body: &serde_json::Value) -> Result<Reply, CallError> {
    let body = body.to_string();
    call(&Call {
        method: Method::Post,
        url: &format!("http://jobs.spin.internal{path}"),
        headers: &[("content-type", "application/json")],
        body: body.as_bytes(),
        timeout_ns: START_TIMEOUT_NS,
    })
}

/// What a loop request carries.
pub struct LoopOrder {
    pub holder: String,
}

impl LoopOrder {
    /// The order in a loop request's body, if its holder holds the lease now. Anyone may send
    /// one: only a read answers a holder that does not hold the lease, so a flood of them
    /// writes nothing and takes no write lock.
    pub fn accept(db: &dyn Database, body: &[u8]) -> Option<LoopOrder> {
        let body: serde_json::Value = serde_json::from_slice(body).ok()?;
        let order = LoopOrder {
            holder: body["holder"].as_str()?.to_string(),
        };
        let now = now_unix();
        let holds = jobs::holds_lease(db, &order.holder, now).unwrap_or(false);
        (holds && jobs::renew_lease(db, &order.holder, now).unwrap_or(false)).then_some(order)
    }
}

/// Ticks until the lease is lost, no job is running, or [`LIFETIME`] is up (then hands
/// over). Runs after the loop request's response is sent. Each execution fired is handed to
/// an instance of its own ([`dispatch`]), so the loop only fires, and keeps its tick and
/// its lease however long the runs take.
pub fn run(
    db: &dyn Database,
    cache: &dyn Cache,
    order: &LoopOrder,
    executor: &dyn Executor,
    public_url: Option<&str>,
    service_token: &dyn Fn() -> Option<String>,
) {
    let started = now_unix();
    loop {
        match jobs::tick(db, cache, now_unix()) {
            Ok(fired) => {
                for f in fired {
                    if let Err(run) = dispatch(&order.holder, f.run) {
                        // No instance took it: run it here rather than lose it.
                        run_fired(db, executor, public_url, service_token, *run);
                    }
                }
            }
            Err(e) => eprintln!("scheduler: tick failed: {}", e.log_line()),
        }
        // Rollouts' decisions, each once across schedulers (issue 25).
        if let Err(e) = spinling_core::domain::rollouts::decide_due(db, now_unix()) {
            eprintln!("scheduler: rollout decisions failed: {}", e.log_line());
        }
        let now = now_unix();
        // One statement: a job created meanwhile keeps the lease (and this loop) alive.
        if jobs::release_lease_if_idle(db, &order.holder).unwrap_or(false) {
            return;
        }
        if now - started >= LIFETIME {
            let next = spinling_core::id::new_id();
            if jobs::hand_over_lease(db, &order.holder, &next, now).unwrap_or(false) {
                start(&next);
            }
            return;
        }
        std::thread::sleep(TICK);
        if !jobs::renew_lease(db, &order.holder, now_unix()).unwrap_or(false) {
            // Another loop took over (this one stalled past its lease).
            return;
        }
    }
}

/// Hands a fired execution to a fresh instance of the jobs component, which answers at once
/// and runs it after its response ([`RunOrder`]); the job back if none took it.
fn dispatch(holder: &str, run: Job) -> Result<(), Box<Job>> {
    match post_to_jobs(
        RUN_PATH,
        &serde_json::json!({ "holder": holder, "run": run }),
    ) {
        Ok(reply) if reply.status == 202 => Ok(()),
        Ok(reply) => {
            eprintln!(
                "scheduler: the jobs component answered {} to run {}",
                reply.status, run.execution_id
            );
            Err(Box::new(run))
        }
        Err(e) => {
            eprintln!("scheduler: could not hand over {}: {e:?}", run.execution_id);
            Err(Box::new(run))
        }
    }
}

/// A run request: an execution the loop fired, to run in this instance.
pub struct RunOrder {
    pub run: Job,
}

impl RunOrder {
    /// The run in a run request's body, if its holder holds the scheduler's lease now. Only a
    /// read answers anyone else, as for the loop's path.
    pub fn accept(db: &dyn Database, body: &[u8]) -> Option<RunOrder> {
        let mut body: serde_json::Value = serde_json::from_slice(body).ok()?;
        let holder = body["holder"].as_str()?.to_string();
        if !jobs::holds_lease(db, &holder, now_unix()).unwrap_or(false) {
            return None;
        }
        let run = serde_json::from_value(body["run"].take()).ok()?;
        Some(RunOrder { run })
    }
}

/// Runs an execution a job fired, with Spinling's own token (no caller's backs it), and
/// records its end. External workers download its package from `public_url`: no caller's
/// URL is kept.
pub fn run_fired(
    db: &dyn Database,
    executor: &dyn Executor,
    public_url: Option<&str>,
    service_token: &dyn Fn() -> Option<String>,
    mut run: Job,
) {
    run.token = service_token();
    let outcome = match worker_download_url(&run, public_url) {
        Some(url) => executor.execute(&run, &url),
        None => Err(WorkerFailure::Rejected(NO_PUBLIC_URL.into())),
    };
    if let Err(e) = complete(db, &run, outcome) {
        eprintln!(
            "scheduler: could not record the end of execution {}: {e}",
            run.execution_id
        );
    }
}
