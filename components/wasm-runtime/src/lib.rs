//! The built-in runtime `spinling/wasm`, reached only by service chaining
//! (`http://wasm-runtime.spin.internal`). It speaks Qinling's worker protocol (spec §5):
//! `GET /ping`, and `POST /execute`, which fetches the package from `download_url`, runs its
//! WebAssembly with `spinling-runner` under the function's timeout and memory size, and
//! answers `{"output", "duration", "logs", "success"}`. The module prepared for a function
//! version is kept in key-value (keyed by version, checked against the package's md5) until
//! the version is detached.

use serde::Deserialize;
use serde_json::{json, Value as Json};
use spin_sdk::http::{IncomingRequest, ResponseOutparam};
use spin_sdk::http_component;
use spinling_core::cache::{prepared_key, Cache};
use spinling_core::error::ApiError;
use spinling_core::http::{ApiRequest, ApiResponse};
use spinling_runner::{prepare, run, Prepared, RunLimits, RunStatus};
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

/// Hosts cap key-value values at about 1 MB; a larger module is simply not cached.
const MAX_CACHED_MODULE: usize = 1000 * 1000 - 1024;

/// What the cache holds for a function version: which code and entry it was prepared from,
/// then the module's bytes.
#[derive(serde::Serialize, Deserialize)]
struct PreparedHeader {
    package_md5: String,
    entry: Option<String>,
    resolved_entry: String,
}

/// The module prepared earlier for this exact code and entry, if the cache has it.
fn cached(cache: &KeyValueCache, key: &str, header: &PreparedHeader) -> Option<Prepared> {
    let bytes = cache.get(key)?;
    let split = bytes.iter().position(|b| *b == b'\n')?;
    let stored: PreparedHeader = serde_json::from_slice(&bytes[..split]).ok()?;
    if stored.package_md5 != header.package_md5 || stored.entry != header.entry {
        return None;
    }
    Prepared::from_wasm(&stored.resolved_entry, bytes[split + 1..].to_vec()).ok()
}

fn remember(cache: &KeyValueCache, key: &str, mut header: PreparedHeader, prepared: &Prepared) {
    if prepared.wasm().len() > MAX_CACHED_MODULE || header.package_md5.is_empty() {
        return;
    }
    header.resolved_entry = prepared.entry().to_string();
    let Ok(mut bytes) = serde_json::to_vec(&header) else {
        return;
    };
    bytes.push(b'\n');
    bytes.extend_from_slice(prepared.wasm());
    cache.set(key, &bytes);
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

fn failure(output: impl Into<String>, logs: String) -> Json {
    json!({"output": output.into(), "duration": 0.0, "logs": logs, "success": false})
}

/// What the function reads on stdin: a raw input as it was given, an object as JSON.
fn stdin_of(input: &Option<Json>) -> Vec<u8> {
    match input {
        None | Some(Json::Null) => Vec::new(),
        Some(object) => match object.get("__function_input") {
            Some(Json::String(raw)) => raw.clone().into_bytes(),
            _ => object.to_string().into_bytes(),
        },
    }
}

/// The function's stdout as its output: JSON when it parses, else the text.
fn output_of(stdout: &[u8]) -> Json {
    let text = String::from_utf8_lossy(stdout);
    let trimmed = text.trim_end_matches(['\n', '\r']);
    if trimmed.is_empty() {
        return Json::Null;
    }
    serde_json::from_str(trimmed).unwrap_or_else(|_| Json::String(trimmed.to_string()))
}

/// Fetches the package and prepares its module; a failure is the reply to send.
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
            return Err(failure(
                format!(
                    "Failed to download function package from {}, error: {} {}",
                    request.download_url,
                    reply.status,
                    String::from_utf8_lossy(&reply.body)
                ),
                String::new(),
            ))
        }
        Err(e) => {
            return Err(failure(
                format!(
                    "Failed to download function package from {}, error: {e:?}",
                    request.download_url
                ),
                String::new(),
            ))
        }
    };
    prepare(&package, request.entry.as_deref()).map_err(|e| failure(e.to_string(), String::new()))
}

fn execute_reply(request: &ExecuteRequest) -> Json {
    let cache = KeyValueCache::open();
    let key = prepared_key(&request.function_id, request.function_version);
    let header = PreparedHeader {
        package_md5: request.package_md5.clone(),
        entry: request.entry.clone(),
        resolved_entry: String::new(),
    };
    let prepared = match cached(&cache, &key, &header) {
        Some(prepared) => prepared,
        None => match download_and_prepare(request) {
            Ok(prepared) => {
                remember(&cache, &key, header, &prepared);
                prepared
            }
            Err(reply) => return reply,
        },
    };
    let limits = RunLimits {
        timeout_seconds: request.timeout.max(1),
        memory_bytes: request.memory_size,
    };
    let outcome = run(&prepared, &stdin_of(&request.input), &limits);
    let logs = String::from_utf8_lossy(&outcome.stderr).into_owned();
    let duration = (outcome.duration.as_secs_f64() * 1000.0).round() / 1000.0;
    let (output, success) = match outcome.status {
        RunStatus::Success => (output_of(&outcome.stdout), true),
        RunStatus::Timeout => (json!("Function execution timeout."), false),
        RunStatus::ResourceExhausted(_) => (
            json!("Function execution failed because of too much resource consumption"),
            false,
        ),
        RunStatus::Failed(message) => (json!(message), false),
    };
    json!({"output": output, "duration": duration, "logs": logs, "success": success})
}
