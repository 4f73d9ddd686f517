//! Runtimes reached over Qinling's worker protocol (spec §5): pings decide a runtime's status,
//! and executions run on the built-in WebAssembly runtime (by service chaining) or on an
//! external worker (by URL).

use crate::outbound::{call_within, Call, CallError};
use spinling_core::domain::runtimes::WorkerProbe;
use spinling_core::domain::workers::{
    Executor, Job, WorkerFailure, WorkerReply, BUILTIN_WASM_IMAGE, MAX_WORKER_REPLY,
};
use wasi::http::types::Method;

const SECOND_NS: u64 = 1_000_000_000;
/// Qinling waits 3 s per ping.
const PING_TIMEOUT_NS: u64 = 3 * SECOND_NS;
/// How often a worker is pinged before an execution gives up on it (Qinling tries 30 times;
/// a synchronous caller should not wait half a minute for a dead worker).
const PING_TRIES: u32 = 3;
/// How often `POST /execute` is sent again when connecting fails, as Qinling.
const EXECUTE_TRIES: u32 = 10;
/// The most of a ping's answer read: only its status counts.
const MAX_PING_REPLY: usize = 64 * 1024;
/// The built-in runtime, a private component of this app.
pub const BUILTIN_RUNTIME_URL: &str = "http://wasm-runtime.spin.internal";

pub struct HttpWorkerProbe;

impl WorkerProbe for HttpWorkerProbe {
    fn is_up(&self, base_url: &str) -> bool {
        ping(base_url)
    }
}

fn ping(base_url: &str) -> bool {
    let url = format!("{}/ping", base_url.trim_end_matches('/'));
    let request = Call {
        method: Method::Get,
        url: &url,
        headers: &[],
        body: &[],
        timeout_ns: PING_TIMEOUT_NS,
    };
    matches!(call_within(&request, MAX_PING_REPLY), Ok(reply) if (200..300).contains(&reply.status))
}

pub struct HttpExecutor;

impl Executor for HttpExecutor {
    fn execute(&self, job: &Job, download_url: &str) -> Result<WorkerReply, WorkerFailure> {
        let base = if job.runtime_image == BUILTIN_WASM_IMAGE {
            BUILTIN_RUNTIME_URL
        } else {
            if !(0..PING_TRIES).any(|attempt| {
                if attempt > 0 {
                    std::thread::sleep(std::time::Duration::from_secs(1));
                }
                ping(&job.runtime_image)
            }) {
                return Err(WorkerFailure::Unreachable);
            }
            job.runtime_image.trim_end_matches('/')
        };
        let url = format!("{base}/execute");
        let body = job.worker_request(download_url).to_string();
        // The function's own timeout, plus room to download and start it.
        let timeout_ns = (job.timeout.max(1) as u64 + 30) * SECOND_NS;
        let request = Call {
            method: Method::Post,
            url: &url,
            headers: &[("content-type", "application/json")],
            body: body.as_bytes(),
            timeout_ns,
        };
        for attempt in 1..=EXECUTE_TRIES {
            match call_within(&request, MAX_WORKER_REPLY) {
                Ok(reply) => return WorkerReply::parse(reply.status, &reply.body),
                Err(CallError::Connect(_)) if attempt < EXECUTE_TRIES => {
                    std::thread::sleep(std::time::Duration::from_secs(1))
                }
                Err(CallError::Connect(_)) => return Err(WorkerFailure::ConnectionFailed),
                Err(CallError::TooLarge(_)) => return Err(WorkerFailure::ReplyTooLarge),
                Err(CallError::Timeout) | Err(CallError::Other(_)) => {
                    return Err(WorkerFailure::NoReply)
                }
            }
        }
        Err(WorkerFailure::ConnectionFailed)
    }
}
