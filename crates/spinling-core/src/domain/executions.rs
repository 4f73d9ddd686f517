//! Executions: one run of a function version, and what came of it. The run itself happens in
//! a runtime reached over Qinling's worker protocol (spec §5): the built-in WebAssembly
//! runtime by service chaining, or an external worker by URL.

use crate::domain::commands::{ExecutionTarget, NewExecution};
use crate::domain::context::{Caller, ListScope};
use crate::domain::forgetting::{forget_function, forget_version_resources};
use crate::domain::json::python_json;
use crate::domain::json::JsonLimits;
use crate::domain::stored_output::{stored_log, stored_result_and_output, with_output};
use crate::domain::types::{CodeSource, ExecutionId, ExecutionStatus, FunctionId, VersionRef};
use crate::domain::workers::{Job, WorkerFailure, WorkerReply};
use crate::error::{ApiError, ApiResult};
use crate::store::cache::Cache;
use crate::store::db::{in_transaction, with_short_busy_waits, Database, DbError, Dialect, Row};
use crate::store::filters::Filter;
use crate::time::now_timestamp;
use crate::{domain::aliases, domain::functions, domain::runtimes, domain::versions};
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
const TIMEOUT_OF_OLD_ROWS: i64 = crate::domain::functions::TIMEOUT.max;

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
            let v = versions::find(
                db,
                &crate::store::cache::NoCache,
                caller,
                function_id.as_str(),
                n,
            )?;
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
            "INSERT INTO executions ({COLUMNS}, logs)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT DO NOTHING RETURNING {COLUMNS}"
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
fn row_size(dialect: Dialect) -> String {
    ["input", "result", "output"]
        .map(|column| format!("COALESCE({}, 0)", dialect.byte_length(column)))
        .join(" + ")
}

pub fn list(
    db: &dyn Database,
    scope: &ListScope,
    filters: &[Filter],
    page: &crate::store::filters::Page,
) -> ApiResult<crate::store::filters::Paged<Execution>> {
    let mut query = crate::store::filters::ListQuery::new("executions");
    if let Some(project) = scope.project() {
        query = query.scope("project_id = ?", vec![project.into()]);
    }
    for filter in filters {
        query = query.filter(filter);
    }
    let (rows, more) =
        query.fetch_within(db, COLUMNS, &row_size(db.dialect()), page, MAX_PAGE_BYTES)?;
    let mut items: Vec<Execution> = rows.iter().map(Execution::from_row).collect();
    settle_stale(db, &mut items)?;
    let next_marker = items.last().filter(|_| more).map(|e| e.id.to_string());
    Ok(crate::store::filters::Paged { items, next_marker })
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
        use crate::store::db::testing::TestDb;
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
        let cache = crate::store::cache::NoCache;
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
}
