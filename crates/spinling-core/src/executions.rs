//! Executions: one run of a function version, and what came of it. The run itself happens in
//! a runtime reached over Qinling's worker protocol (spec §5): the built-in WebAssembly
//! runtime by service chaining, or an external worker by URL.

use crate::cache::{forget_function, forget_version_resources, Cache};
use crate::commands::{ExecutionTarget, NewExecution};
use crate::context::{Caller, ListScope};
use crate::db::{in_transaction, with_short_busy_waits, Database, DbError, Row};
use crate::error::{ApiError, ApiResult};
use crate::filters::Filter;
use crate::limits::JsonLimits;
use crate::time::now_timestamp;
use crate::types::{CodeSource, ExecutionId, ExecutionStatus, FunctionId, VersionRef};
use crate::wire::python_json;
use crate::{aliases, functions, runtimes, versions};
use serde_json::{json, Value as Json};

/// The largest execution input accepted, in characters.
pub const MAX_INPUT: usize = 1024 * 1024;

#[derive(Debug, Clone, PartialEq)]
pub struct Execution {
    pub id: ExecutionId,
    pub function_id: FunctionId,
    pub function_version: VersionRef,
    pub function_alias: Option<String>,
    pub description: Option<String>,
    pub status: ExecutionStatus,
    pub sync: bool,
    /// The stored input: a JSON object, `{"__function_input": raw}` for anything else, or none.
    pub input: Option<Json>,
    /// `{"output": ..., "duration": ...}` once finished.
    pub result: Option<Json>,
    pub project_id: String,
    pub created_at: String,
    pub updated_at: Option<String>,
    /// The run's timeout in seconds (not rendered): how long it may stay `running`.
    pub timeout: Option<i64>,
}

const COLUMNS: &str =
    "id, function_id, function_version, function_alias, description, status, sync, input,
    result, project_id, created_at, updated_at, timeout, output";

/// How long past its timeout an execution may stay `running` before it is settled as failed:
/// a worker call may take the timeout plus 30 s to download and start the code.
pub const STALE_GRACE_SECONDS: i64 = 60;

/// Executions recorded before the timeout was stored ran with at most Qinling's maximum.
const TIMEOUT_OF_OLD_ROWS: i64 = crate::functions::TIMEOUT.max;

impl Execution {
    fn from_row(r: Row) -> Execution {
        let json = |column| {
            r.opt_text(column)
                .and_then(|t| serde_json::from_str(&t).ok())
        };
        Execution {
            id: ExecutionId::from_stored(r.text("id")),
            function_id: FunctionId::from_stored(r.text("function_id")),
            // Only checked references and the three statuses are ever written.
            function_version: VersionRef::from_wire(r.int("function_version"))
                .unwrap_or(VersionRef::Current),
            function_alias: r.opt_text("function_alias"),
            description: r.opt_text("description"),
            status: ExecutionStatus::parse(&r.text("status")).unwrap_or(ExecutionStatus::Failed),
            sync: r.bool("sync"),
            input: json("input"),
            result: with_output(json("result"), r.opt_text("output")),
            project_id: r.text("project_id"),
            created_at: r.text("created_at"),
            updated_at: r.opt_text("updated_at"),
            timeout: r.opt_int("timeout"),
        }
    }

    /// Whether the execution is still `running` although its runtime should have answered
    /// long ago: its instance died, or its worker vanished, before recording an end.
    fn is_stale(&self, now: i64) -> bool {
        let timeout = self.timeout.unwrap_or(TIMEOUT_OF_OLD_ROWS);
        self.status == ExecutionStatus::Running
            && crate::time::parse_timestamp(&self.created_at)
                .is_some_and(|created| now > created + timeout + STALE_GRACE_SECONDS)
    }

    fn stale_message(&self) -> String {
        format!(
            "The execution did not finish: no result was recorded within its timeout of {} seconds and a grace period of {STALE_GRACE_SECONDS} seconds (its runtime stopped answering).",
            self.timeout.unwrap_or(TIMEOUT_OF_OLD_ROWS)
        )
    }

    /// As Qinling renders it: `input` and `result` are strings (JSON in Python's style).
    pub fn to_json(&self) -> Json {
        let input = self
            .input
            .as_ref()
            .map(|i| match i.get("__function_input") {
                Some(Json::String(raw)) => raw.clone(),
                _ => python_json(i),
            });
        json!({
            "id": self.id,
            "function_id": self.function_id,
            "function_version": self.function_version,
            "function_alias": self.function_alias,
            "description": self.description,
            "status": self.status,
            "sync": self.sync,
            "input": input,
            "result": self.result.as_ref().map(python_json),
            "project_id": self.project_id,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        })
    }
}

/// Qinling's input rules, without its 500s: a JSON object is kept as it is; any other
/// non-empty text (JSON or not) is kept raw under `__function_input`; empty is no input.
/// Only what may be an object is parsed, within `limits`: beyond them it is a 400.
pub fn parse_input(raw: Option<&str>, limits: &JsonLimits) -> ApiResult<Option<Json>> {
    let Some(raw) = raw.filter(|r| !r.is_empty()) else {
        return Ok(None);
    };
    if raw.trim_start().starts_with('{') {
        if let Ok(object) = limits.parse(raw.as_bytes(), "Execution input")? {
            return Ok(Some(object));
        }
    }
    Ok(Some(json!({ "__function_input": raw })))
}

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
        let function_id = match self.runtime_image == runtimes::BUILTIN_WASM_IMAGE {
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

/// The most of a result stored, in bytes of its JSON (`{"output": ..., "duration": ...}`):
/// the runtime's 1 MiB of stdout fits even if every byte escapes to two (quotes, newlines).
/// Output past it is cut, and ends with [`output_cut_note`].
pub const MAX_STORED_RESULT: usize = 2 * 1024 * 1024;

/// The most of a log stored, in bytes (stored as plain text, not escaped): the runtime's
/// 1 MiB of stderr with room for its closing notes. A longer log is cut and ends with
/// `[spinling] log was cut at N bytes.`
pub const MAX_STORED_LOG: usize = 1024 * 1024 + 4096;

fn output_cut_note() -> String {
    format!("\n[spinling] output was cut: a stored result holds at most {MAX_STORED_RESULT} bytes.")
}

/// The bytes `c` takes inside a JSON string as serde_json writes it.
fn escaped_len(c: char) -> usize {
    match c {
        '"' | '\\' | '\n' | '\r' | '\t' | '\u{8}' | '\u{c}' => 2,
        c if (c as u32) < 0x20 => 6,
        c => c.len_utf8(),
    }
}

/// A result read back: a text output stored in its own column goes back into it.
fn with_output(result: Option<Json>, output: Option<String>) -> Option<Json> {
    let Some(output) = output else {
        return result;
    };
    let mut result = match result {
        Some(Json::Object(fields)) => fields,
        _ => serde_json::Map::new(),
    };
    result.insert("output".into(), Json::String(output));
    Some(Json::Object(result))
}

/// The result as stored: a text output on its own, unescaped, at most [`MAX_STORED_RESULT`]
/// bytes (cut on a character, with [`output_cut_note`]), and the rest as JSON; any other
/// output inside the JSON, as [`stored_result`] keeps it.
pub fn stored_result_and_output(result: &Json) -> (String, Option<String>) {
    let Some(Json::String(text)) = result.get("output") else {
        return (stored_result(result), None);
    };
    let mut rest = result.clone();
    if let Some(fields) = rest.as_object_mut() {
        fields.remove("output");
    }
    let mut output = text.clone();
    if output.len() > MAX_STORED_RESULT {
        let note = output_cut_note();
        let mut end = MAX_STORED_RESULT - note.len();
        while !output.is_char_boundary(end) {
            end -= 1;
        }
        output.truncate(end);
        output.push_str(&note);
    }
    (rest.to_string(), Some(output))
}

/// The result as stored: its JSON text, at most [`MAX_STORED_RESULT`] bytes. Past that the
/// output becomes text (a JSON output its JSON text) cut to fit, with a note that says so.
pub fn stored_result(result: &Json) -> String {
    let whole = result.to_string();
    if whole.len() <= MAX_STORED_RESULT {
        return whole;
    }
    let text = match &result["output"] {
        Json::String(text) => text.clone(),
        other => other.to_string(),
    };
    let note = output_cut_note();
    let mut shell = result.clone();
    shell["output"] = Json::String(String::new());
    let overhead = shell.to_string().len() + note.chars().map(escaped_len).sum::<usize>();
    let mut budget = MAX_STORED_RESULT.saturating_sub(overhead);
    let mut end = 0;
    for (i, c) in text.char_indices() {
        let cost = escaped_len(c);
        if cost > budget {
            break;
        }
        budget -= cost;
        end = i + c.len_utf8();
    }
    shell["output"] = Json::String(format!("{}{note}", &text[..end]));
    shell.to_string()
}

/// The log as stored: plain text of at most [`MAX_STORED_LOG`] bytes, cut (on a character
/// boundary) with a closing note when longer.
pub fn stored_log(mut logs: String) -> String {
    if logs.len() <= MAX_STORED_LOG {
        return logs;
    }
    let mut end = MAX_STORED_LOG - 64;
    while !logs.is_char_boundary(end) {
        end -= 1;
    }
    logs.truncate(end);
    logs.push_str(&format!("\n[spinling] log was cut at {end} bytes.\n"));
    logs
}

/// Runs jobs: the adapter implements it over Spin's outbound HTTP.
pub trait Executor {
    /// Runs `job` on its runtime, which fetches the package from `download_url`.
    fn execute(&self, job: &Job, download_url: &str) -> Result<WorkerReply, WorkerFailure>;
}

fn not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("Execution not found [id={id}]"))
}

/// Records a new `running` execution (its INSERT counts it on the function or version: see
/// migration 0010) and returns it with the job that runs it.
pub fn create(
    db: &dyn Database,
    cache: &dyn Cache,
    caller: &Caller,
    new: &NewExecution,
) -> ApiResult<(Execution, Job)> {
    let (execution, job) = in_transaction(db, |tx| create_in(tx, caller, new))?;
    forget_counted(cache, &execution);
    Ok((execution, job))
}

/// What an execution counted on (a version, or the function for its current code) is cached
/// with its old `count`: forgets it.
pub fn forget_counted(cache: &dyn Cache, execution: &Execution) {
    let function_id = execution.function_id.as_str();
    match execution.function_version {
        VersionRef::Number(n) => forget_version_resources(cache, function_id, &[n]),
        VersionRef::Current => forget_function(cache, function_id),
    }
}

/// `create`, inside the caller's transaction (a job's firing inserts its execution in the
/// transaction that moves the job on). The caller forgets what it counted afterwards
/// (`forget_counted`).
pub fn create_in(
    tx: &dyn Database,
    caller: &Caller,
    new: &NewExecution,
) -> ApiResult<(Execution, Job)> {
    let (execution, job) = prepare(tx, caller, new)?;
    let stored = insert(tx, &execution, None)?.ok_or_else(duplicate_id)?;
    Ok((stored, job))
}

/// Judges a new execution and builds it (`running`, not yet stored) with its job: the target
/// must exist and be visible, be package code on an available runtime, and a client-chosen id
/// must be new. Reads only.
pub fn prepare(
    db: &dyn Database,
    caller: &Caller,
    new: &NewExecution,
) -> ApiResult<(Execution, Job)> {
    let (function_id, version, alias) = match &new.target {
        ExecutionTarget::Alias(name) => {
            let alias = aliases::find_own(db, caller, name)?;
            // A routed alias draws the version now; the execution records it.
            let version = alias.pick_version(new.routing_key.as_deref())?;
            (alias.function_id, version, Some(name.clone()))
        }
        ExecutionTarget::Function { id, version } => (id.clone(), *version, None),
    };
    let function = functions::find(db, caller, function_id.as_str())?;
    if function.source() != Some(CodeSource::Package) {
        return Err(ApiError::bad_request(match version {
            VersionRef::Number(_) => "Can not specify version for package type function.",
            VersionRef::Current => "Only package functions can be executed by Spinling.",
        }));
    }
    let runtime_id = function.runtime_id.clone().unwrap_or_default();
    let runtime = runtimes::find(db, caller, &runtime_id)?;
    if !runtime.is_available() {
        return Err(ApiError::conflict(format!(
            "Runtime {runtime_id} is not available."
        )));
    }
    // A version runs as published: its own code and settings.
    let (entry, cpu, memory_size, timeout, code) = match version {
        VersionRef::Number(n) => {
            let v = versions::find(db, &crate::cache::NoCache, caller, function_id.as_str(), n)?;
            (v.entry, v.cpu, v.memory_size, v.timeout, v.code)
        }
        VersionRef::Current => (
            function.entry.clone(),
            function.cpu,
            function.memory_size,
            function.timeout,
            function.code.clone(),
        ),
    };
    if let Some(id) = &new.id {
        let taken = db
            .execute("SELECT 1 FROM executions WHERE id = ?", &[id.into()])?
            .first()
            .is_some();
        if taken {
            return Err(duplicate_id());
        }
    }
    let execution = Execution {
        id: new.id.clone().unwrap_or_else(ExecutionId::generate),
        function_id: function_id.clone(),
        function_version: version,
        function_alias: alias,
        description: new.description.clone(),
        status: ExecutionStatus::Running,
        sync: new.sync,
        input: new.input.clone(),
        result: None,
        project_id: caller.project_id.clone(),
        created_at: now_timestamp(),
        updated_at: None,
        timeout: Some(timeout),
    };
    let job = Job {
        execution_id: execution.id.clone(),
        runtime_image: runtime.image,
        function_id,
        function_version: version,
        entry,
        cpu,
        memory_size,
        timeout,
        input: execution.input.clone(),
        package_md5: code
            .get("md5sum")
            .and_then(Json::as_str)
            .unwrap_or_default()
            .to_string(),
        token: caller.token.clone(),
    };
    Ok((execution, job))
}

fn duplicate_id() -> ApiError {
    ApiError::bad_request("Duplicate entry for Execution: ['id']")
}

/// Stores `execution`, `running` or already `ended`, in one INSERT (whose trigger counts it);
/// returns it as stored, or none when its id is taken.
fn insert(
    db: &dyn Database,
    execution: &Execution,
    ended: Option<&Ending>,
) -> Result<Option<Execution>, DbError> {
    let (status, result, output, logs, updated_at) = match ended {
        Some(e) => (
            e.status,
            Some(e.result.clone()),
            e.output.clone(),
            e.logs.clone(),
            Some(now_timestamp()),
        ),
        None => (execution.status, None, None, String::new(), None),
    };
    let stored = db.execute(
        &format!(
            "INSERT OR IGNORE INTO executions ({COLUMNS}, logs)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING {COLUMNS}"
        ),
        &[
            (&execution.id).into(),
            (&execution.function_id).into(),
            execution.function_version.to_wire().into(),
            execution.function_alias.clone().into(),
            execution.description.clone().into(),
            status.as_str().into(),
            execution.sync.into(),
            execution.input.as_ref().map(Json::to_string).into(),
            result.into(),
            execution.project_id.as_str().into(),
            execution.created_at.as_str().into(),
            updated_at.into(),
            execution.timeout.into(),
            output.into(),
            logs.into(),
        ],
    )?;
    Ok(stored.first().map(Execution::from_row))
}

/// A sync execution, once its job has run: stored already ended, in one INSERT and so one
/// commit (an execution in flight is in no row; one whose instance dies mid-run leaves
/// nothing behind, and is not counted). `execution` comes from [`prepare`].
pub fn record_ended(
    db: &dyn Database,
    cache: &dyn Cache,
    execution: &Execution,
    outcome: Result<WorkerReply, WorkerFailure>,
) -> ApiResult<Execution> {
    let ended = ending(outcome);
    let stored = with_short_busy_waits(db, || insert(db, execution, Some(&ended)))?
        .ok_or_else(duplicate_id)?;
    forget_counted(cache, &stored);
    Ok(stored)
}

/// How a run ended, as stored.
struct Ending {
    status: ExecutionStatus,
    result: String,
    output: Option<String>,
    logs: String,
}

fn ending(outcome: Result<WorkerReply, WorkerFailure>) -> Ending {
    let (status, result, logs) = match outcome {
        Ok(reply) => (
            if reply.success {
                ExecutionStatus::Success
            } else {
                ExecutionStatus::Failed
            },
            json!({"output": reply.output, "duration": reply.duration}),
            reply.logs,
        ),
        Err(failure) => (
            ExecutionStatus::Failed,
            json!({"output": failure.message()}),
            String::new(),
        ),
    };
    let (result, output) = stored_result_and_output(&result);
    Ending {
        status,
        result,
        output,
        logs: stored_log(logs),
    }
}

/// Records how an asynchronous job ended: `success` or `failed` with Qinling's result and the
/// logs. Only a `running` execution is ended: one already settled as stale (see
/// [`settle_stale`]) keeps that end, whatever a late runtime reports.
pub fn complete(
    db: &dyn Database,
    job: &Job,
    outcome: Result<WorkerReply, WorkerFailure>,
) -> ApiResult<()> {
    let ended = ending(outcome);
    db.execute(
        "UPDATE executions SET status = ?, result = ?, output = ?, logs = ?, updated_at = ?
         WHERE id = ? AND status = 'running'",
        &[
            ended.status.as_str().into(),
            ended.result.into(),
            ended.output.into(),
            ended.logs.into(),
            now_timestamp().into(),
            (&job.execution_id).into(),
        ],
    )?;
    Ok(())
}

/// The execution with `id`, if the caller may read it.
pub fn find(db: &dyn Database, caller: &Caller, id: &str) -> ApiResult<Execution> {
    let mut execution = db
        .execute(
            &format!("SELECT {COLUMNS} FROM executions WHERE id = ?"),
            &[id.into()],
        )?
        .first()
        .map(Execution::from_row)
        .filter(|e| caller.may_read(&e.project_id))
        .ok_or_else(|| not_found(id))?;
    settle_stale(db, std::slice::from_mut(&mut execution))?;
    Ok(execution)
}

/// Ends as `failed` every execution among `executions` that stayed `running` past its
/// timeout and the grace period, in the database (only if still `running` there) and in the
/// slice. Reads pay for it only when they meet such an execution.
pub fn settle_stale(db: &dyn Database, executions: &mut [Execution]) -> ApiResult<()> {
    let now = crate::time::now_unix();
    for execution in executions.iter_mut().filter(|e| e.is_stale(now)) {
        let result = json!({"output": execution.stale_message(), "duration": 0.0});
        let updated_at = now_timestamp();
        db.execute(
            "UPDATE executions SET status = 'failed', result = ?, updated_at = ?
             WHERE id = ? AND status = 'running'",
            &[
                result.to_string().into(),
                updated_at.as_str().into(),
                execution.id.as_str().into(),
            ],
        )?;
        execution.status = ExecutionStatus::Failed;
        execution.result = Some(result);
        execution.updated_at = Some(updated_at);
    }
    Ok(())
}

pub fn logs(db: &dyn Database, caller: &Caller, id: &str) -> ApiResult<String> {
    find(db, caller, id)?;
    Ok(db
        .execute("SELECT logs FROM executions WHERE id = ?", &[id.into()])?
        .first()
        .map(|r| r.text("logs"))
        .unwrap_or_default())
}

/// One page of the executions in `scope` that pass every filter, by `created_at` then `id`.
/// The most bytes of inputs, results and outputs one page of the execution list carries (an
/// execution may hold 1 MiB of input and 2 MiB of output): a page is cut short past it, and
/// its `next` link goes on from there. A page always holds at least one execution.
pub const MAX_PAGE_BYTES: i64 = 8 * 1024 * 1024;

/// The size of what an execution's row puts on a list page.
const ROW_SIZE: &str = "COALESCE(length(CAST(input AS BLOB)), 0)
    + COALESCE(length(CAST(result AS BLOB)), 0) + COALESCE(length(CAST(output AS BLOB)), 0)";

pub fn list(
    db: &dyn Database,
    scope: &ListScope,
    filters: &[Filter],
    page: &crate::filters::Page,
) -> ApiResult<crate::filters::Paged<Execution>> {
    let mut query = crate::filters::ListQuery::new("executions");
    if let Some(project) = scope.project() {
        query = query.scope("project_id = ?", vec![project.into()]);
    }
    for filter in filters {
        query = query.filter(filter);
    }
    let (rows, more) = query.fetch_within(db, COLUMNS, ROW_SIZE, page, MAX_PAGE_BYTES)?;
    let mut items: Vec<Execution> = rows.iter().map(Execution::from_row).collect();
    settle_stale(db, &mut items)?;
    let next_marker = items.last().filter(|_| more).map(|e| e.id.to_string());
    Ok(crate::filters::Paged { items, next_marker })
}

pub fn delete(db: &dyn Database, caller: &Caller, id: &str) -> ApiResult<()> {
    find(db, caller, id)?;
    db.execute("DELETE FROM executions WHERE id = ?", &[id.into()])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn running_since(seconds_ago: i64, timeout: Option<i64>) -> Execution {
        Execution {
            id: ExecutionId::generate(),
            function_id: FunctionId::generate(),
            function_version: VersionRef::Current,
            function_alias: None,
            description: None,
            status: ExecutionStatus::Running,
            sync: false,
            input: None,
            result: None,
            project_id: "p".into(),
            created_at: crate::time::format_timestamp(crate::time::now_unix() - seconds_ago),
            updated_at: None,
            timeout,
        }
    }

    #[test]
    fn a_sync_execution_is_stored_ended_and_counted_only_once_it_has_run() {
        use crate::db::testing::TestDb;
        let db = TestDb::in_memory();
        let caller = Caller {
            project_id: "p".into(),
            user_id: None,
            is_admin: false,
            policy_enforced: true,
            token: None,
            is_service: false,
        };
        let fid = crate::testing::package_function(
            &db,
            &caller,
            spinling_test_support::zip_of(&[("a.wasm", b"x")]),
        );
        let new = NewExecution {
            id: None,
            target: ExecutionTarget::Function {
                id: fid.clone(),
                version: VersionRef::Current,
            },
            description: None,
            sync: true,
            input: None,
            routing_key: None,
        };
        let (execution, _job) = prepare(&db, &caller, &new).unwrap();
        let count = || functions::find(&db, &caller, fid.as_str()).unwrap().count;
        assert!(find(&db, &caller, execution.id.as_str()).is_err());
        assert_eq!(count(), 0);
        let reply = WorkerReply {
            output: json!("hi"),
            duration: 0.1,
            logs: "log".into(),
            success: true,
        };
        let cache = crate::cache::NoCache;
        let stored = record_ended(&db, &cache, &execution, Ok(reply)).unwrap();
        assert_eq!(stored.status, ExecutionStatus::Success);
        assert_eq!(find(&db, &caller, execution.id.as_str()).unwrap(), stored);
        assert_eq!(count(), 1);
    }

    #[test]
    fn a_running_execution_is_stale_only_past_its_timeout_and_the_grace() {
        let now = crate::time::now_unix();
        assert!(!running_since(5 + STALE_GRACE_SECONDS - 2, Some(5)).is_stale(now));
        assert!(running_since(5 + STALE_GRACE_SECONDS + 2, Some(5)).is_stale(now));
        // Rows from before the timeout was stored wait out Qinling's largest timeout.
        assert!(!running_since(200, None).is_stale(now));
        assert!(running_since(300 + STALE_GRACE_SECONDS + 2, None).is_stale(now));
        let mut finished = running_since(1000, Some(1));
        finished.status = ExecutionStatus::Success;
        assert!(!finished.is_stale(now));
    }

    #[test]
    fn object_input_is_kept_and_anything_else_is_raw() {
        let input = |raw| parse_input(raw, &JsonLimits::default()).unwrap();
        assert_eq!(input(Some(r#"{"a": 1}"#)), Some(json!({"a": 1})));
        assert_eq!(
            input(Some("[1, 2]")),
            Some(json!({"__function_input": "[1, 2]"}))
        );
        assert_eq!(
            input(Some("hello")),
            Some(json!({"__function_input": "hello"}))
        );
        assert_eq!(
            input(Some("{not json")),
            Some(json!({"__function_input": "{not json"}))
        );
        assert_eq!(input(Some("")), None);
        assert_eq!(input(None), None);
    }

    #[test]
    fn object_input_beyond_the_json_limits_is_a_bad_request() {
        let deep = format!(r#"{{"a": {}}}"#, "[".repeat(100_000));
        let err = parse_input(Some(&deep), &JsonLimits::default()).unwrap_err();
        assert_eq!(err.message, "Execution input nests deeper than 32 levels.");
        let many = JsonLimits {
            max_depth: 32,
            max_items: 2,
        };
        let err = parse_input(Some(r#"{"a": 1, "b": 2}"#), &many).unwrap_err();
        assert_eq!(err.message, "Execution input has more than 2 values.");
    }

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

    #[test]
    fn a_text_output_is_stored_unescaped_and_read_back_whole() {
        let output = "\u{1}".repeat(1 << 20);
        let result = json!({"output": output, "duration": 0.5});
        let (rest, stored) = stored_result_and_output(&result);
        assert_eq!(stored.as_deref(), Some(output.as_str()));
        assert_eq!(rest, r#"{"duration":0.5}"#);
        let back = with_output(serde_json::from_str(&rest).ok(), stored);
        assert_eq!(back, Some(result));
    }

    #[test]
    fn a_text_output_past_the_cap_is_cut_on_a_character_and_says_so() {
        let result = json!({"output": "é".repeat(MAX_STORED_RESULT), "duration": 0.5});
        let (_, stored) = stored_result_and_output(&result);
        let stored = stored.unwrap();
        assert!(stored.len() <= MAX_STORED_RESULT);
        assert!(stored.ends_with(&output_cut_note()));
    }

    #[test]
    fn a_json_output_stays_inside_the_result() {
        let result = json!({"output": {"a": 1}, "duration": 0.5});
        assert_eq!(
            stored_result_and_output(&result),
            (result.to_string(), None)
        );
    }

    #[test]
    fn a_result_within_the_cap_is_stored_whole() {
        let result = json!({"output": "a\u{1}b", "duration": 0.5});
        assert_eq!(stored_result(&result), result.to_string());
    }

    #[test]
    fn control_bytes_are_cut_after_encoding_so_a_stored_result_stays_within_its_cap() {
        let result = json!({"output": "\u{1}".repeat(1 << 20), "duration": 0.5});
        let stored = stored_result(&result);
        assert!(stored.len() <= MAX_STORED_RESULT, "{}", stored.len());
        assert!(stored.len() > MAX_STORED_RESULT - 16, "{}", stored.len());
        let back: Json = serde_json::from_str(&stored).unwrap();
        assert_eq!(back["duration"], 0.5);
        let output = back["output"].as_str().unwrap();
        assert!(output.starts_with('\u{1}'));
        assert!(output.ends_with(&output_cut_note()));
    }

    #[test]
    fn a_json_output_past_the_cap_becomes_its_cut_text() {
        let big: Vec<Json> = (0..400_000).map(|i| json!({"i": i})).collect();
        let stored = stored_result(&json!({"output": big, "duration": 1.0}));
        assert!(stored.len() <= MAX_STORED_RESULT);
        let back: Json = serde_json::from_str(&stored).unwrap();
        assert!(back["output"].as_str().unwrap().starts_with("[{\"i\":0}"));
    }

    #[test]
    fn a_log_past_the_cap_is_cut_on_a_character_and_says_where() {
        assert_eq!(stored_log("short".into()), "short");
        let log = stored_log("é".repeat(MAX_STORED_LOG));
        assert!(log.len() <= MAX_STORED_LOG);
        let (kept, note) = log.split_once('\n').unwrap();
        assert!(kept.chars().all(|c| c == 'é'));
        assert_eq!(
            note,
            format!("[spinling] log was cut at {} bytes.\n", kept.len())
        );
    }
}
