//! Qinling's worker protocol (spec §5), as the domain sees it: what a runtime is asked to run
//! (`Job`), what it answers, how a run can fail, and the `Executor` seam the adapter
//! implements over Spin's outbound HTTP.

use crate::domain::types::{ExecutionId, FunctionId, VersionRef};
use serde_json::{json, Value as Json};

/// The image name of the runtime built into Spinling.
pub const BUILTIN_WASM_IMAGE: &str = "spinling/wasm";

/// Everything a runtime needs to run one execution (spec §5's request, plus the runtime).
/// Its `Debug` output redacts the token, and it is (de)serialised without it: the scheduler
/// hands a job to the instance that runs it, which obtains its own.
#[derive(Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Job {
    pub execution_id: ExecutionId,
    /// `spinling/wasm` or a worker's URL.
    pub runtime_image: String,
    pub function_id: FunctionId,
    pub function_version: VersionRef,
    pub entry: Option<String>,
    pub cpu: i64,
    pub memory_size: i64,
    pub timeout: i64,
    pub input: Option<Json>,
    /// The package's md5: lets a runtime tell whether what it prepared is still this code.
    pub package_md5: String,
    /// The caller's token, which the runtime presents to download the package (auth mode
    /// `keystone`; as Qinling, the worker acts on the caller's behalf).
    #[serde(skip)]
    pub token: Option<String>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("execution_id", &self.execution_id)
            .field("runtime_image", &self.runtime_image)
            .field("function_id", &self.function_id)
            .field("function_version", &self.function_version)
            .field("entry", &self.entry)
            .field("cpu", &self.cpu)
            .field("memory_size", &self.memory_size)
            .field("timeout", &self.timeout)
            .field("input", &self.input)
            .field("package_md5", &self.package_md5)
            .field(
                "token",
                &self.token.as_ref().map(|_| crate::redacted::Redacted),
            )
            .finish()
    }
}

impl Job {
    /// The body of `POST <worker>/execute`. An external worker gets as `function_id` the
    /// name of the code ([`Job::code_id`]), not just of the function.
    pub fn worker_request(&self, download_url: &str) -> Json {
        let function_id = match self.runtime_image == BUILTIN_WASM_IMAGE {
            true => self.function_id.to_string(),
            false => self.code_id(),
        };
        let mut request = json!({
            "execution_id": self.execution_id,
            "cpu": self.cpu,
            "memory_size": self.memory_size,
            "timeout": self.timeout,
            "input": self.input,
            "function_id": function_id,
            "function_version": self.function_version,
            "entry": self.entry,
            "download_url": download_url,
            "request_id": format!("req-{}", self.execution_id),
            "package_md5": self.package_md5,
        });
        if let Some(token) = &self.token {
            request["token"] = json!(token);
        }
        request
    }

    /// What an external worker is told the function is: `<function id>_<package md5>`, a name
    /// of the code itself. Qinling's own Python runtime (its sidecar) downloads a function
    /// id's package once and runs it ever after, as Qinling gave each version a pod of its
    /// own; Spinling shares a worker among every version and update of a function, so the
    /// id it sends changes whenever the code does, and two versions of one code share one
    /// download. Only letters, digits, `-` and `_`: the sidecar cuts its path at the first dot.
    pub fn code_id(&self) -> String {
        match self.package_md5.is_empty() {
            true => self.function_id.to_string(),
            false => format!("{}_{}", self.function_id, self.package_md5),
        }
    }

    /// The API path of the code this job runs (the function's for its current code).
    pub fn package_path(&self) -> String {
        match self.function_version {
            VersionRef::Current => format!("/v1/functions/{}?download=true", self.function_id),
            VersionRef::Number(n) => format!(
                "/v1/functions/{}/versions/{n}?download=true",
                self.function_id
            ),
        }
    }
}

/// A worker's answer to `POST /execute` (spec §5).
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerReply {
    pub output: Json,
    pub duration: f64,
    pub logs: String,
    pub success: bool,
}

/// The most of a worker's non-JSON answer kept as the execution's output.
const MAX_REJECTION: usize = 4096;

impl WorkerReply {
    /// Reads a worker's answer leniently (missing or null fields take their defaults); as in
    /// Qinling, a run succeeded only if the HTTP call did *and* the worker says so. An answer
    /// that is not a JSON object is a rejection whose text (e.g. "Failed to download function
    /// package from ...") becomes the output.
    pub fn parse(status: u16, body: &[u8]) -> Result<WorkerReply, WorkerFailure> {
        let ok = (200..300).contains(&status);
        match serde_json::from_slice::<Json>(body) {
            Ok(Json::Object(reply)) => Ok(WorkerReply {
                output: reply.get("output").cloned().unwrap_or(Json::Null),
                duration: reply.get("duration").and_then(Json::as_f64).unwrap_or(0.0),
                logs: reply
                    .get("logs")
                    .and_then(Json::as_str)
                    .unwrap_or_default()
                    .to_string(),
                success: ok
                    && reply
                        .get("success")
                        .and_then(Json::as_bool)
                        .unwrap_or(false),
            }),
            _ if ok => Err(WorkerFailure::NoReply),
            _ => {
                let text = String::from_utf8_lossy(body);
                let text: String = text.trim().chars().take(MAX_REJECTION).collect();
                Err(WorkerFailure::Rejected(if text.is_empty() {
                    format!("The worker answered {status}.")
                } else {
                    text
                }))
            }
        }
    }
}

/// How a run ended when the runtime could not give a reply of its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkerFailure {
    /// The worker never answered its ping.
    Unreachable,
    /// Connecting kept failing.
    ConnectionFailed,
    /// No (valid) reply in time.
    NoReply,
    /// The worker refused the job with an error that is not a reply (its text).
    Rejected(String),
    /// The reply went past [`MAX_WORKER_REPLY`] bytes; reading stopped there.
    ReplyTooLarge,
}

impl WorkerFailure {
    /// Qinling's message for each failure.
    pub fn message(&self) -> &str {
        match self {
            WorkerFailure::Unreachable => "Function execution failed.",
            WorkerFailure::ConnectionFailed => "Internal service error.",
            WorkerFailure::NoReply => "Function execution timeout.",
            WorkerFailure::Rejected(text) => text,
            WorkerFailure::ReplyTooLarge => REPLY_TOO_LARGE,
        }
    }
}

/// The most of a runtime's reply to `POST /execute` that is read, in bytes: room for the
/// built-in runtime's 1 MiB of stdout and 1 MiB of stderr even if every byte is a control
/// byte, which JSON escapes to six (`\u0001`).
pub const MAX_WORKER_REPLY: usize = 16 * 1024 * 1024;

const REPLY_TOO_LARGE: &str =
    "The runtime's reply was larger than 16777216 bytes; it was not read past that.";

/// Runs jobs: the adapter implements it over Spin's outbound HTTP.
pub trait Executor {
    /// Runs `job` on its runtime, which fetches the package from `download_url`.
    fn execute(&self, job: &Job, download_url: &str) -> Result<WorkerReply, WorkerFailure>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_worker_reply_is_read_leniently() {
        let reply = WorkerReply::parse(
            200,
            br#"{"output": 1, "logs": null, "duration": null, "success": true}"#,
        )
        .unwrap();
        assert_eq!(
            (
                reply.output,
                reply.logs.as_str(),
                reply.duration,
                reply.success
            ),
            (json!(1), "", 0.0, true)
        );
    }

    #[test]
    fn a_reply_with_a_failing_status_is_not_a_success() {
        assert!(
            !WorkerReply::parse(500, br#"{"output": 1, "success": true}"#)
                .unwrap()
                .success
        );
    }

    #[test]
    fn a_non_json_error_is_a_rejection_with_its_text() {
        assert_eq!(
            WorkerReply::parse(500, b"Failed to download function package from u"),
            Err(WorkerFailure::Rejected(
                "Failed to download function package from u".into()
            ))
        );
        assert_eq!(
            WorkerReply::parse(200, b"pong"),
            Err(WorkerFailure::NoReply)
        );
    }

    #[test]
    fn a_version_job_downloads_the_versions_package() {
        let function_id = FunctionId::generate();
        let job = Job {
            execution_id: ExecutionId::generate(),
            runtime_image: "spinling/wasm".into(),
            function_id: function_id.clone(),
            function_version: VersionRef::from_wire(2).unwrap(),
            entry: None,
            cpu: 100,
            memory_size: 1,
            timeout: 1,
            input: None,
            package_md5: "m".into(),
            token: None,
        };
        assert_eq!(
            job.package_path(),
            format!("/v1/functions/{function_id}/versions/2?download=true")
        );
        assert_eq!(job.worker_request("u")["download_url"], "u");
        assert_eq!(job.worker_request("u")["function_id"], json!(function_id));
    }

    #[test]
    fn an_external_worker_is_told_the_code_not_just_the_function() {
        let function_id = FunctionId::generate();
        let job = |md5: &str| Job {
            execution_id: ExecutionId::generate(),
            runtime_image: "http://127.0.0.1:9090".into(),
            function_id: function_id.clone(),
            function_version: VersionRef::from_wire(1).unwrap(),
            entry: None,
            cpu: 100,
            memory_size: 1,
            timeout: 1,
            input: None,
            package_md5: md5.into(),
            token: None,
        };
        let v1 = job("0123456789abcdef0123456789abcdef").worker_request("u");
        assert_eq!(
            v1["function_id"],
            format!("{function_id}_0123456789abcdef0123456789abcdef")
        );
        assert!(!v1["function_id"].as_str().unwrap().contains('.'));
        let v2 = job("fedcba9876543210fedcba9876543210").worker_request("u");
        assert_ne!(v1["function_id"], v2["function_id"]);
        assert_eq!(v1["function_version"], 1);
    }
}
