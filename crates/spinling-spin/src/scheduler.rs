//! The jobs' scheduler on Spin, which has no timer trigger.
//!
//! One loop per database ticks every [`TICK`]: it fires the due jobs (`jobs::tick`, exactly
//! once each however many loops run) and runs their executions. The loop is an ordinary
//! request to the jobs component, `POST /v1/jobs/scheduler` by service chaining: it answers
//! at once and keeps running after its response, as a handler that runs asynchronous
//! executions does (Spin keeps an instance until its handler returns). Who may run it is a
//! lease in the database (`scheduler_lease`): a request of any group that opened the database
//! anyway (every write, and every read the cache cannot answer) and finds the lease expired
//! while jobs are running takes it and starts a loop ([`kick`]); the loop renews it
//! each tick, and after [`LIFETIME`] hands it to a fresh instance it starts the same way, so
//! no instance lives long. A loop that dies (its instance killed) leaves the lease to expire
//! within `jobs::LEASE_SECONDS`; the next request starts another. A loop with no running job
//! left gives the lease up and ends.
//!
//! Only the lease's holder id (random, 122 bits, sent in the loop's body) opens the loop's
//! path: another caller gets a 404 there.

use crate::outbound::{call, Call};
use spinling_core::api::executions::download_url;
use spinling_core::cache::Cache;
use spinling_core::db::Database;
use spinling_core::executions::{complete, Executor};
use spinling_core::http::ApiRequest;
use spinling_core::jobs;
use spinling_core::time::now_unix;
use std::time::Duration;
use wasi::http::types::Method;

/// The loop's path on the jobs component.
pub const LOOP_PATH: &str = "/v1/jobs/scheduler";

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

/// Starts a loop if none runs and some job is running. Cheap otherwise: one read. `base_url`
/// is where external workers reach this API (for their package downloads) when
/// `public_url` is unset.
pub fn kick(db: &dyn Database, base_url: &str) {
    let holder = spinling_core::id::new_id();
    match jobs::take_lease(db, &holder, now_unix()) {
        Ok(true) => start(&holder, base_url),
        Ok(false) => {}
        Err(e) => eprintln!("scheduler: could not read its lease: {}", e.log_line()),
    }
}

/// Asks a fresh instance of the jobs component to loop as `holder`. On failure the lease
/// simply expires, and a later request tries again.
fn start(holder: &str, base_url: &str) {
    let body = serde_json::json!({"holder": holder, "base_url": base_url}).to_string();
    let url = format!("http://jobs.spin.internal{LOOP_PATH}");
    let sent = call(&Call {
        method: Method::Post,
        url: &url,
        headers: &[("content-type", "application/json")],
        body: body.as_bytes(),
        timeout_ns: START_TIMEOUT_NS,
    });
    match sent {
        Ok(reply) if reply.status == 202 => {}
        Ok(reply) => eprintln!("scheduler: the jobs component answered {}", reply.status),
        Err(e) => eprintln!("scheduler: could not start a loop: {e:?}"),
    }
}

/// What a loop request carries.
pub struct LoopOrder {
    pub holder: String,
    pub base_url: String,
}

impl LoopOrder {
    /// The order in a loop request's body, if its holder holds the lease now.
    pub fn accept(db: &dyn Database, body: &[u8]) -> Option<LoopOrder> {
        let body: serde_json::Value = serde_json::from_slice(body).ok()?;
        let order = LoopOrder {
            holder: body["holder"].as_str()?.to_string(),
            base_url: body["base_url"].as_str()?.to_string(),
        };
        jobs::renew_lease(db, &order.holder, now_unix())
            .ok()
            .filter(|held| *held)
            .map(|_| order)
    }
}

/// Ticks until the lease is lost, no job is running, or [`LIFETIME`] is up (then hands
/// over). Runs after the loop request's response is sent.
pub fn run(
    db: &dyn Database,
    cache: &dyn Cache,
    order: &LoopOrder,
    executor: &dyn Executor,
    public_url: Option<&str>,
    service_token: &dyn Fn() -> Option<String>,
) {
    let started = now_unix();
    let mut base = ApiRequest::new("POST", &format!("{}/", order.base_url), vec![], vec![]);
    base.base_url = order.base_url.clone();
    loop {
        match jobs::tick(db, cache, now_unix()) {
            Ok(fired) if !fired.is_empty() => {
                let token = service_token();
                for f in fired {
                    let mut run = f.run;
                    run.token = token.clone();
                    let url = download_url(&run, &base, public_url);
                    let outcome = executor.execute(&run, &url);
                    if let Err(e) = complete(db, &run, outcome) {
                        eprintln!(
                            "scheduler: could not record the end of execution {}: {e}",
                            run.execution_id
                        );
                    }
                }
            }
            Ok(_) => {}
            Err(e) => eprintln!("scheduler: tick failed: {}", e.log_line()),
        }
        // Rollouts' decisions, each once across schedulers (issue 25).
        if let Err(e) = spinling_core::rollouts::decide_due(db, now_unix()) {
            eprintln!("scheduler: rollout decisions failed: {}", e.log_line());
        }
        let now = now_unix();
        if !jobs::any_running(db).unwrap_or(true) {
            let _ = jobs::release_lease(db, &order.holder);
            return;
        }
        if now - started >= LIFETIME {
            let next = spinling_core::id::new_id();
            if jobs::hand_over_lease(db, &order.holder, &next, now).unwrap_or(false) {
                start(&next, &order.base_url);
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
