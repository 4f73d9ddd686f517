//! The pure part of the worker protocol around a run, for the `spinling/wasm` runtime
//! component: checking a downloaded package against the job, the prepared-module cache
//! entry, the input as stdin and the reply made of a run's outcome. The component only does
//! the I/O (download, key-value, HTTP).

use std::time::Duration;

use md5::{Digest as _, Md5};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value as Json};

use crate::{prepare, run, Prepared, RunLimits, RunOutcome, RunStatus, MAX_OUTPUT_BYTES};

/// Qinling's result for a run that timed out.
pub const TIMEOUT_MESSAGE: &str = "Function execution timeout.";

/// Qinling's result for a run that hit a resource limit.
pub const RESOURCE_MESSAGE: &str =
    "Function execution failed because of too much resource consumption";

/// How long a prepared module stays in the cache (1 hour). An older entry is a miss: the
/// package is downloaded, checked and prepared again, and the entry rewritten. This bounds
/// how long a cache entry that was never dropped (a host that lost a detach, an entry
/// written by an older runner) can stand in for the package.
pub const MAX_PREPARED_AGE: Duration = Duration::from_secs(3600);

/// The largest module kept in the cache: hosts cap key-value values at about 1 MB, and the
/// entry's header needs room too. A larger module is simply prepared on every run.
pub const MAX_CACHED_MODULE: usize = 1000 * 1000 - 1024;

/// A job, as the API sends it to `POST /execute`.
#[derive(Debug, Deserialize)]
pub struct ExecuteRequest {
    pub download_url: String,
    pub function_id: String,
    pub function_version: i64,
    pub entry: Option<String>,
    pub input: Option<Json>,
    pub timeout: u64,
    pub memory_size: u64,
    /// Identifies the code, so a module prepared from older code is not run.
    #[serde(default)]
    pub package_md5: String,
    /// The caller's token, for downloading the package when the API checks tokens.
    #[serde(default)]
    pub token: Option<String>,
}

impl ExecuteRequest {
    /// The run's limits: the function's timeout (a second at least) and memory size.
    pub fn limits(&self) -> RunLimits {
        RunLimits {
            timeout_seconds: self.timeout.max(1),
            memory_bytes: self.memory_size,
        }
    }
}

/// The module to run for `request`: the one its cache entry (`cached`) holds when that was
/// prepared from this code at most [`MAX_PREPARED_AGE`] before `now`; else the package
/// `download` fetches (its error says why it could not), checked against the job's md5 and
/// prepared, with the cache entry to keep for the next job (if it is to be cached). A
/// failure is the reply to send.
pub fn module_for(
    request: &ExecuteRequest,
    cached: Option<&[u8]>,
    download: impl FnOnce(&ExecuteRequest) -> Result<Vec<u8>, String>,
    now: u64,
) -> Result<(Prepared, Option<Vec<u8>>), Json> {
    let (md5, entry) = (request.package_md5.as_str(), request.entry.as_deref());
    if let Some(prepared) = cached.and_then(|bytes| from_cache_entry(bytes, md5, entry, now)) {
        return Ok((prepared, None));
    }
    let package = download(request).map_err(|error| {
        failure_reply(format!(
            "Failed to download function package from {}, error: {error}",
            request.download_url
        ))
    })?;
    check_package(&package, md5).map_err(failure_reply)?;
    let prepared = prepare(&package, entry).map_err(|e| failure_reply(e.to_string()))?;
    let new_entry = cache_entry(&prepared, md5, entry, now);
    Ok((prepared, new_entry))
}

/// Runs the job's module on its input within its limits: the worker's reply.
pub fn run_job(request: &ExecuteRequest, prepared: &Prepared) -> Json {
    let stdin = stdin_of(request.input.as_ref());
    reply_of(&run(prepared, &stdin, &request.limits()))
}

/// Hex MD5 of a package (Qinling's `code.md5sum`).
pub fn md5_hex(bytes: &[u8]) -> String {
    Md5::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Checks a downloaded package against the md5 the job was created with, so a package
/// replaced between the execution's creation and its run is never run in its place. An
/// empty `expected` (a job that names no md5) checks nothing. The error is the run's result.
pub fn check_package(package: &[u8], expected: &str) -> Result<(), String> {
    if expected.is_empty() {
        return Ok(());
    }
    let found = md5_hex(package);
    if found.eq_ignore_ascii_case(expected) {
        Ok(())
    } else {
        Err(format!(
            "The function's package changed since the execution was created (expected md5 \
             {expected}, found {found})."
        ))
    }
}

/// What a cache entry says about its module: one line of JSON before the module's bytes.
#[derive(Serialize, Deserialize)]
struct Header {
    /// The md5 of the package the module came from.
    package_md5: String,
    /// The entry the function named (or none), as the job gave it.
    entry: Option<String>,
    /// The module's path in the package.
    resolved_entry: String,
    /// When the module was prepared, in seconds since the Unix epoch.
    prepared_at: u64,
}

/// The cache entry for a module prepared from the package with md5 `package_md5` for the
/// function's `entry`, at `now` (seconds since the Unix epoch). `None` when it is not to be
/// cached: a module over [`MAX_CACHED_MODULE`], or no md5 to check a later job against.
pub fn cache_entry(
    prepared: &Prepared,
    package_md5: &str,
    entry: Option<&str>,
    now: u64,
) -> Option<Vec<u8>> {
    if prepared.wasm().len() > MAX_CACHED_MODULE || package_md5.is_empty() {
        return None;
    }
    let header = Header {
        package_md5: package_md5.to_string(),
        entry: entry.map(str::to_string),
        resolved_entry: prepared.entry().to_string(),
        prepared_at: now,
    };
    let mut bytes = serde_json::to_vec(&header).ok()?;
    bytes.push(b'\n');
    bytes.extend_from_slice(prepared.wasm());
    Some(bytes)
}

/// The module a cache entry holds, if it was prepared from this exact package and entry, no
/// longer than [`MAX_PREPARED_AGE`] before `now` (an entry dated after `now` is a miss too),
/// and still prepares. Anything else (another md5 or entry, an old or unreadable entry) is
/// a miss.
pub fn from_cache_entry(
    bytes: &[u8],
    package_md5: &str,
    entry: Option<&str>,
    now: u64,
) -> Option<Prepared> {
    let split = bytes.iter().position(|b| *b == b'\n')?;
    let header: Header = serde_json::from_slice(&bytes[..split]).ok()?;
    let age = now.checked_sub(header.prepared_at)?;
    if package_md5.is_empty()
        || header.package_md5 != package_md5
        || header.entry.as_deref() != entry
        || age >= MAX_PREPARED_AGE.as_secs()
    {
        return None;
    }
    Prepared::from_prepared_wasm(&header.resolved_entry, bytes[split + 1..].to_vec()).ok()
}

/// What the function reads on stdin: a raw input as it was given, an object as JSON.
pub fn stdin_of(input: Option<&Json>) -> Vec<u8> {
    match input {
        None | Some(Json::Null) => Vec::new(),
        Some(object) => match object.get("__function_input") {
            Some(Json::String(raw)) => raw.clone().into_bytes(),
            _ => object.to_string().into_bytes(),
        },
    }
}

/// The function's stdout as its output: JSON when it parses, else the text.
pub fn output_of(stdout: &[u8]) -> Json {
    let text = String::from_utf8_lossy(stdout);
    let trimmed = text.trim_end_matches(['\n', '\r']);
    if trimmed.is_empty() {
        return Json::Null;
    }
    serde_json::from_str(trimmed).unwrap_or_else(|_| Json::String(trimmed.to_string()))
}

/// The output of a function that wrote more to stdout than was kept: the text it did keep
/// (cut JSON is no JSON), marked as cut.
fn cut_output_of(stdout: &[u8]) -> Json {
    let text = String::from_utf8_lossy(stdout);
    Json::String(format!(
        "{text}\n[spinling] stdout was cut at {MAX_OUTPUT_BYTES} bytes."
    ))
}

/// The worker's reply for a run: `{"output", "duration", "logs", "success"}`.
pub fn reply_of(outcome: &RunOutcome) -> Json {
    let logs = String::from_utf8_lossy(&outcome.stderr).into_owned();
    let duration = (outcome.duration.as_secs_f64() * 1000.0).round() / 1000.0;
    let (output, success) = match &outcome.status {
        RunStatus::Success if outcome.stdout_cut => (cut_output_of(&outcome.stdout), true),
        RunStatus::Success => (output_of(&outcome.stdout), true),
        RunStatus::Timeout => (json!(TIMEOUT_MESSAGE), false),
        RunStatus::ResourceExhausted(_) => (json!(RESOURCE_MESSAGE), false),
        RunStatus::Failed(message) => (json!(message), false),
    };
    json!({"output": output, "duration": duration, "logs": logs, "success": success})
}

/// The worker's reply for a job that could not run (`output` says why).
pub fn failure_reply(output: impl Into<String>) -> Json {
    json!({"output": output.into(), "duration": 0.0, "logs": "", "success": false})
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: u64 = 3600;
    const NOW: u64 = 1_800_000_000;

    fn hello() -> Prepared {
        let wasm = wat::parse_str(r#"(module (func (export "_start")))"#).unwrap();
        Prepared::from_wasm("bin/hello.wasm", wasm).unwrap()
    }

    fn job(package_md5: &str) -> ExecuteRequest {
        serde_json::from_value(json!({
            "download_url": "http://api/v1/functions/f1?download=true",
            "function_id": "f1",
            "function_version": 0,
            "timeout": 0,
            "memory_size": 1 << 20,
            "package_md5": package_md5,
        }))
        .unwrap()
    }

    fn hello_package() -> Vec<u8> {
        let wasm = wat::parse_str(r#"(module (func (export "_start")))"#).unwrap();
        spinling_test_support::zip_of(&[("hello.wasm", &wasm)])
    }

    #[test]
    fn a_job_needs_no_md5_nor_token_and_runs_a_second_at_least() {
        let job = job("");
        assert_eq!((job.package_md5.as_str(), job.token.as_deref()), ("", None));
        assert_eq!(job.limits().timeout_seconds, 1);
        assert_eq!(job.limits().memory_bytes, 1 << 20);
    }

    #[test]
    fn a_module_prepared_now_comes_with_its_cache_entry() {
        let package = hello_package();
        let job = job(&md5_hex(&package));
        let (prepared, entry) = module_for(&job, None, |_| Ok(package.clone()), NOW).unwrap();
        assert_eq!(prepared.entry(), "hello.wasm");
        let entry = entry.unwrap();
        let again = from_cache_entry(&entry, &job.package_md5, None, NOW + 1).unwrap();
        assert_eq!(again.wasm(), prepared.wasm());
    }

    #[test]
    fn a_cached_module_runs_without_a_download() {
        let package = hello_package();
        let job = job(&md5_hex(&package));
        let (_, entry) = module_for(&job, None, |_| Ok(package.clone()), NOW).unwrap();
        let download = |_: &ExecuteRequest| -> Result<Vec<u8>, String> { panic!("downloaded") };
        let (prepared, entry) = module_for(&job, entry.as_deref(), download, NOW + 1).unwrap();
        assert_eq!(prepared.entry(), "hello.wasm");
        assert!(entry.is_none(), "a hit rewrites no entry");
        assert_eq!(run_job(&job, &prepared)["success"], true);
    }

    /// An entry another replica kept for this function version, or one of its older code,
    /// is never run for a job of other code: the job's package is downloaded, prepared and
    /// kept in its place.
    #[test]
    fn a_module_cached_from_other_code_is_replaced_by_the_jobs_code() {
        let stale = cache_entry(&hello(), &md5_hex(b"older code"), None, NOW).unwrap();
        let package = hello_package();
        let job = job(&md5_hex(&package));
        let downloads = std::cell::Cell::new(0);
        let download = |_: &ExecuteRequest| {
            downloads.set(downloads.get() + 1);
            Ok(package.clone())
        };
        let (prepared, entry) = module_for(&job, Some(&stale), download, NOW + 1).unwrap();
        assert_eq!((downloads.get(), prepared.entry()), (1, "hello.wasm"));
        let entry = entry.expect("the job's module replaces the stale entry");
        assert!(from_cache_entry(&entry, &job.package_md5, None, NOW + 1).is_some());
    }

    #[test]
    fn a_failed_download_is_the_reply_naming_the_url() {
        let reply = module_for(&job(""), None, |_| Err("404 gone".into()), NOW).unwrap_err();
        assert_eq!(
            reply["output"],
            "Failed to download function package from \
             http://api/v1/functions/f1?download=true, error: 404 gone"
        );
        assert_eq!(reply["success"], false);
    }

    #[test]
    fn a_package_that_is_not_the_job_s_code_is_not_run() {
        let job = job(&md5_hex(b"the job's code"));
        let reply = module_for(&job, None, |_| Ok(hello_package()), NOW).unwrap_err();
        let output = reply["output"].as_str().unwrap();
        assert!(
            output.starts_with("The function's package changed"),
            "{output}"
        );
    }

    #[test]
    fn a_package_that_does_not_prepare_replies_why() {
        let reply = module_for(&job(""), None, |_| Ok(b"not a zip".to_vec()), NOW).unwrap_err();
        let output = reply["output"].as_str().unwrap();
        assert!(
            output.starts_with("The package is not a valid zip archive"),
            "{output}"
        );
    }

    #[test]
    fn a_package_with_the_job_s_md5_passes_whatever_its_case() {
        let package = b"zip bytes";
        let md5 = md5_hex(package);
        assert_eq!(check_package(package, &md5), Ok(()));
        assert_eq!(check_package(package, &md5.to_uppercase()), Ok(()));
    }

    #[test]
    fn a_package_that_changed_since_the_job_is_refused_with_both_md5s() {
        let expected = md5_hex(b"old package");
        let found = md5_hex(b"new package");
        assert_eq!(
            check_package(b"new package", &expected),
            Err(format!(
                "The function's package changed since the execution was created (expected \
                 md5 {expected}, found {found})."
            ))
        );
    }

    #[test]
    fn a_job_without_an_md5_checks_nothing() {
        assert_eq!(check_package(b"anything", ""), Ok(()));
    }

    #[test]
    fn md5_is_qinling_s_hex() {
        assert_eq!(md5_hex(b""), "d41d8cd98f00b204e9800998ecf8427e");
    }

    #[test]
    fn a_cache_entry_gives_back_its_module_for_the_same_code_and_entry() {
        let prepared = hello();
        let bytes = cache_entry(&prepared, "abc", Some("bin/hello.wasm"), NOW).unwrap();
        let back = from_cache_entry(&bytes, "abc", Some("bin/hello.wasm"), NOW + 10).unwrap();
        assert_eq!(back.entry(), "bin/hello.wasm");
        assert_eq!(back.wasm(), prepared.wasm());
    }

    #[test]
    fn a_cache_entry_for_other_code_or_another_entry_is_a_miss() {
        let bytes = cache_entry(&hello(), "abc", None, NOW).unwrap();
        assert!(from_cache_entry(&bytes, "abc", None, NOW).is_some());
        assert!(from_cache_entry(&bytes, "abd", None, NOW).is_none());
        assert!(from_cache_entry(&bytes, "abc", Some("bin/hello.wasm"), NOW).is_none());
        assert!(from_cache_entry(&bytes, "", None, NOW).is_none());
    }

    #[test]
    fn a_cache_entry_expires_after_an_hour() {
        let bytes = cache_entry(&hello(), "abc", None, NOW).unwrap();
        assert!(from_cache_entry(&bytes, "abc", None, NOW + HOUR - 1).is_some());
        assert!(from_cache_entry(&bytes, "abc", None, NOW + HOUR).is_none());
        // An entry dated in the future (the clock went back) is not trusted either.
        assert!(from_cache_entry(&bytes, "abc", None, NOW - 1).is_none());
    }

    #[test]
    fn a_cache_entry_whose_code_does_not_validate_fails_the_run_that_calls_it() {
        // Validated as it is called, not before: a damaged entry still never runs unchecked.
        let wasm =
            wat::parse_str(r#"(module (func (export "_start") (i64.const 1) (drop) (i32.add)))"#)
                .unwrap();
        let mut entry = br#"{"package_md5":"abc","entry":null,"resolved_entry":"main.wasm","prepared_at":1800000000}"#.to_vec();
        entry.push(b'\n');
        entry.extend_from_slice(&wasm);
        assert!(Prepared::from_wasm("main.wasm", wasm).is_err());
        let prepared = from_cache_entry(&entry, "abc", None, NOW).unwrap();
        let outcome = crate::run(&prepared, b"", &job("abc").limits());
        assert!(
            matches!(outcome.status, crate::RunStatus::Failed(_)),
            "{:?}",
            outcome.status
        );
    }

    #[test]
    fn an_entry_without_a_preparation_time_is_a_miss() {
        // The format before entries expired.
        let mut old =
            br#"{"package_md5":"abc","entry":null,"resolved_entry":"main.wasm"}"#.to_vec();
        old.push(b'\n');
        old.extend_from_slice(hello().wasm());
        assert!(from_cache_entry(&old, "abc", None, NOW).is_none());
        assert!(from_cache_entry(b"garbage", "abc", None, NOW).is_none());
    }

    #[test]
    fn code_without_an_md5_or_too_large_a_module_is_not_cached() {
        assert!(cache_entry(&hello(), "", None, NOW).is_none());
        let mut big = wat::parse_str(r#"(module (func (export "_start")))"#).unwrap();
        // A custom section makes the module larger than a key-value value.
        big.push(0);
        let payload = vec![0u8; MAX_CACHED_MODULE];
        let mut contents = vec![1, b'x'];
        contents.extend_from_slice(&payload);
        let mut size = contents.len();
        loop {
            let byte = (size & 0x7f) as u8;
            size >>= 7;
            big.push(if size == 0 { byte } else { byte | 0x80 });
            if size == 0 {
                break;
            }
        }
        big.extend_from_slice(&contents);
        let big = Prepared::from_wasm("big.wasm", big).unwrap();
        assert!(cache_entry(&big, "abc", None, NOW).is_none());
    }

    #[test]
    fn raw_input_is_stdin_as_given_and_an_object_as_json() {
        assert_eq!(stdin_of(None), b"");
        assert_eq!(stdin_of(Some(&Json::Null)), b"");
        assert_eq!(
            stdin_of(Some(&json!({"__function_input": "not json"}))),
            b"not json"
        );
        assert_eq!(
            stdin_of(Some(&json!({"name": "Spin"}))),
            br#"{"name":"Spin"}"#
        );
    }

    #[test]
    fn stdout_is_the_output_as_json_when_it_parses() {
        assert_eq!(output_of(b"{\"a\": 1}\n"), json!({"a": 1}));
        assert_eq!(output_of(b"hello\r\n"), json!("hello"));
        assert_eq!(output_of(b"\n"), Json::Null);
    }

    fn outcome(status: RunStatus, stdout: &[u8]) -> RunOutcome {
        RunOutcome {
            status,
            stdout_cut: false,
            stdout: stdout.to_vec(),
            stderr: b"log".to_vec(),
            duration: Duration::from_micros(1_234_567),
            exit_code: None,
            fuel_consumed: 0,
        }
    }

    #[test]
    fn an_output_that_was_cut_says_so_in_the_output() {
        let mut cut = outcome(RunStatus::Success, b"{\"a\": [1, 2");
        cut.stdout_cut = true;
        assert_eq!(
            reply_of(&cut)["output"],
            format!("{{\"a\": [1, 2\n[spinling] stdout was cut at {MAX_OUTPUT_BYTES} bytes.")
        );
    }

    #[test]
    fn a_successful_run_replies_its_output_logs_and_duration() {
        assert_eq!(
            reply_of(&outcome(RunStatus::Success, b"\"hi\"")),
            json!({"output": "hi", "duration": 1.235, "logs": "log", "success": true})
        );
    }

    #[test]
    fn a_timeout_replies_qinling_s_timeout_message() {
        let reply = reply_of(&outcome(RunStatus::Timeout, b"partial"));
        assert_eq!(reply["output"], "Function execution timeout.");
        assert_eq!(reply["success"], false);
    }

    #[test]
    fn a_resource_limit_and_a_failure_reply_their_messages() {
        let reply = reply_of(&outcome(RunStatus::ResourceExhausted("memory".into()), b""));
        assert_eq!(reply["output"], RESOURCE_MESSAGE);
        let reply = reply_of(&outcome(RunStatus::Failed("exit 3".into()), b""));
        assert_eq!(reply["output"], "exit 3");
        assert_eq!(reply["success"], false);
    }
}
