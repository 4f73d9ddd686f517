//! The built-in runtime `spinling/wasm`, reached only by service chaining
//! (`http://wasm-runtime.spin.internal`). It speaks Qinling's worker protocol (spec §5):
//! `GET /ping`, and `POST /execute`, which fetches the package from `download_url`, runs its
//! WebAssembly with `spinling-runner` under the function's timeout and memory size, and
//! answers `{"output", "duration", "logs", "success"}`. A downloaded package must have the
//! md5 the job was created with (`package_md5`), or the job fails without running. The
//! module prepared for a function version is kept in key-value (keyed by version, checked
//! against the package's md5) until the version is detached, for at most
//! [`MAX_PREPARED_AGE`](spinling_runner::worker::MAX_PREPARED_AGE). The protocol's logic
//! (the job, the cached or downloaded module, the md5 check, stdin and the reply) is
//! `spinling_runner::worker`; this component does its I/O: HTTP, download and key-value.

use std::time::{SystemTime, UNIX_EPOCH};

use spin_sdk::http::{IncomingRequest, ResponseOutparam};
use spin_sdk::http_component;
use spinling_core::error::ApiError;
use spinling_core::store::cache::{prepared_key, Cache, KeyValueScope};
use spinling_core::web::http::{ApiRequest, ApiResponse};
use spinling_runner::worker::{module_for, run_job, ExecuteRequest};
use spinling_spin::outbound::{call, Call};
use spinling_spin::KeyValueCache;
use wasi::http::types::Method;

/// An execute request is small JSON; the package comes by download.
const BODY_LIMIT: u64 = 2 * 1024 * 1024;
const DOWNLOAD_TIMEOUT_NS: u64 = 30_000_000_000;

/// Seconds since the Unix epoch, for the cache entries' age.
fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[http_component]
async fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
    let response = match spinling_spin::read_request(request, BODY_LIMIT).await {
        Ok(request) => respond(&request),
        Err(e) => e.into(),
    };
    spinling_spin::write_response(response_out, response).await;
}

fn respond(request: &ApiRequest) -> ApiResponse {
    match (request.method.as_str(), request.path.as_str()) {
        ("GET", "/ping") => ApiResponse {
            status: 200,
            headers: vec![],
            body: b"pong".to_vec().into(),
        },
        ("POST", "/execute") => match serde_json::from_slice::<ExecuteRequest>(&request.body) {
            Ok(execute) => ApiResponse::ok(&execute_reply(&execute)),
            Err(e) => ApiError::bad_request(format!("Invalid execute request: {e}")).into(),
        },
        _ => ApiError::path_not_found().into(),
    }
}

/// Fetches the job's package, with the caller's token; the error says why it could not.
fn download(request: &ExecuteRequest) -> Result<Vec<u8>, String> {
    let token_header = request.token.as_deref().map(|t| ("x-auth-token", t));
    let headers: Vec<(&str, &str)> = token_header.into_iter().collect();
    let download = Call {
        method: Method::Get,
        url: &request.download_url,
        headers: &headers,
        body: &[],
        timeout_ns: DOWNLOAD_TIMEOUT_NS,
    };
    match call(&download) {
        Ok(reply) if reply.status == 200 => Ok(reply.body),
        Ok(reply) => Err(format!(
            "{} {}",
            reply.status,
            String::from_utf8_lossy(&reply.body)
        )),
        Err(e) => Err(format!("{e:?}")),
    }
}

/// Runs the job with the version's module, from key-value or freshly prepared (and kept).
fn execute_reply(request: &ExecuteRequest) -> serde_json::Value {
    // A module is used only for the md5 it was prepared from, so whether another replica can
    // forget it makes no difference here: the scope bounds cached database reads only.
    let cache = KeyValueCache::open(KeyValueScope::Replica);
    let key = prepared_key(&request.function_id, request.function_version);
    let cached = cache.get(&key);
    match module_for(request, cached.as_deref(), download, unix_now()) {
        Ok((prepared, entry)) => {
            if let Some(entry) = entry {
                cache.set(&key, &entry);
            }
            run_job(request, &prepared)
        }
        Err(reply) => reply,
    }
}
