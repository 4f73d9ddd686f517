//! The built-in runtime `spinling/wasm`, reached only by service chaining
//! (`http://wasm-runtime.spin.internal`). It speaks Qinling's worker protocol (spec §5):
//! `GET /ping`, and `POST /execute`, which fetches the package from `download_url`, runs its
//! WebAssembly with `spinling-runner` under the function's timeout and memory size, and
//! answers `{"output", "duration", "logs", "success"}`. A downloaded package must have the
//! md5 the job was created with (`package_md5`), or the job fails without running. The
//! module prepared for a function version is kept in key-value (keyed by version, checked
//! against the package's md5) until the version is detached, for at most
//! [`MAX_PREPARED_AGE`](spinling_runner::worker::MAX_PREPARED_AGE). The protocol's pure
//! logic (cache entry, md5 check, stdin and reply) is `spinling_runner::worker`.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use serde_json::Value as Json;
use spin_sdk::http::{IncomingRequest, ResponseOutparam};
use spin_sdk::http_component;
use spinling_core::cache::{prepared_key, Cache};
use spinling_core::error::ApiError;
use spinling_core::http::{ApiRequest, ApiResponse};
use spinling_runner::worker::{
    cache_entry, check_package, failure_reply, from_cache_entry, reply_of, stdin_of,
};
use spinling_runner::{prepare, run, Prepared, RunLimits};
use spinling_spin::outbound::{call, Call};
use spinling_spin::KeyValueCache;
use wasi::http::types::Method;

/// An execute request is small JSON; the package comes by download.
const BODY_LIMIT: u64 = 2 * 1024 * 1024;
const DOWNLOAD_TIMEOUT_NS: u64 = 30_000_000_000;

#[derive(Deserialize)]
struct ExecuteRequest {
    download_url: String,
    function_id: String,
    function_version: i64,
    entry: Option<String>,
    input: Option<Json>,
    timeout: u64,
    memory_size: u64,
    /// Identifies the code, so a module prepared from older code is not run.
    #[serde(default)]
    package_md5: String,
    /// The caller's token, for downloading the package when the API checks tokens.
    #[serde(default)]
    token: Option<String>,
}

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
            body: b"pong".to_vec(),
        },
        ("POST", "/execute") => match serde_json::from_slice::<ExecuteRequest>(&request.body) {
            Ok(execute) => ApiResponse::ok(&execute_reply(&execute)),
            Err(e) => ApiError::bad_request(format!("Invalid execute request: {e}")).into(),
        },
        _ => ApiError::path_not_found().into(),
    }
}

/// Fetches the package, checks it is the job's code and prepares its module; a failure is
/// the reply to send.
fn download_and_prepare(request: &ExecuteRequest) -> Result<Prepared, Json> {
    let token_header = request.token.as_deref().map(|t| ("x-auth-token", t));
    let headers: Vec<(&str, &str)> = token_header.into_iter().collect();
    let download = Call {
        method: Method::Get,
        url: &request.download_url,
        headers: &headers,
        body: &[],
        timeout_ns: DOWNLOAD_TIMEOUT_NS,
    };
    let package = match call(&download) {
        Ok(reply) if reply.status == 200 => reply.body,
        Ok(reply) => {
            return Err(failure_reply(format!(
                "Failed to download function package from {}, error: {} {}",
                request.download_url,
                reply.status,
                String::from_utf8_lossy(&reply.body)
            )))
        }
        Err(e) => {
            return Err(failure_reply(format!(
                "Failed to download function package from {}, error: {e:?}",
                request.download_url
            )))
        }
    };
    check_package(&package, &request.package_md5).map_err(failure_reply)?;
    prepare(&package, request.entry.as_deref()).map_err(|e| failure_reply(e.to_string()))
}

fn execute_reply(request: &ExecuteRequest) -> Json {
    let cache = KeyValueCache::open();
    let key = prepared_key(&request.function_id, request.function_version);
    let (md5, entry) = (request.package_md5.as_str(), request.entry.as_deref());
    let cached = cache
        .get(&key)
        .and_then(|bytes| from_cache_entry(&bytes, md5, entry, unix_now()));
    let prepared = match cached {
        Some(prepared) => prepared,
        None => match download_and_prepare(request) {
            Ok(prepared) => {
                if let Some(bytes) = cache_entry(&prepared, md5, entry, unix_now()) {
                    cache.set(&key, &bytes);
                }
                prepared
            }
            Err(reply) => return reply,
        },
    };
    let limits = RunLimits {
        timeout_seconds: request.timeout.max(1),
        memory_bytes: request.memory_size,
    };
    reply_of(&run(&prepared, &stdin_of(request.input.as_ref()), &limits))
}
