//! `/v1/jobs[/{id}]`, and `POST /v1/jobs/tick`: one scheduler tick, for an external
//! scheduler (admin-only in auth mode `keystone`); and `GET /healthz`, open to anyone: the
//! probe that checks the database and, through it, keeps the scheduler's loop alive.

use super::executions::download_url;
use super::{scoped_list, Env};
use crate::domain::commands::{JobChanges, NewExecution, NewJob};
use crate::domain::jobs::{self, parse_time, Job};
use crate::domain::types::FunctionId;
use crate::error::{ApiError, ApiResult};
use crate::time::now_unix;
use crate::web::http::{ApiRequest, ApiResponse};
use crate::web::limits::MAX_TEXT;
use crate::web::wire::{parse_body, require_uuid_path, Body, Field, FieldType};
use serde_json::json;

/// Qinling's column sizes: `function_input` VARCHAR(255), `pattern` VARCHAR(32).
const FIELDS: &[Field] = &[
    Field::text("name"),
    Field::uuid("function_id"),
    Field::text("function_alias"),
    Field::int("function_version", 0),
    Field {
        name: "function_input",
        ty: FieldType::Text(MAX_TEXT),
        read_only: false,
    },
    Field::text("status"),
    Field {
        name: "pattern",
        ty: FieldType::Text(32),
        read_only: false,
    },
    Field::int("count", 1),
    Field::text("first_execution_time"),
    Field::text("next_execution_time"),
];

fn new_job(body: &Body) -> ApiResult<NewJob> {
    let target = NewExecution::target(
        body.text("function_alias"),
        body.id("function_id", FunctionId::parse)?,
        body.version_ref("function_version"),
    )?;
    Ok(NewJob {
        name: body.text("name"),
        target,
        pattern: body.text("pattern").filter(|p| !p.is_empty()),
        first_execution_time: body
            .text("first_execution_time")
            .map(|t| parse_time(&t))
            .transpose()?,
        count: body.int("count"),
        function_input: body.text("function_input"),
    })
}

fn job_changes(body: &Body) -> ApiResult<JobChanges> {
    let next_execution_time = match body.text("next_execution_time") {
        None => None,
        Some(t) => Some(
            parse_time(&t)
                .map_err(|e| ApiError::bad_request(format!("Invalid next time: {}", e.message)))?,
        ),
    };
    Ok(JobChanges {
        name: body.text("name"),
        function_input: body.text("function_input"),
        status: body.text("status"),
        pattern: body.text("pattern"),
        next_execution_time,
    })
}

/// The health endpoint needs no token: probes have none.
pub fn is_open_path(request: &ApiRequest) -> bool {
    request.segments() == ["healthz"]
}

pub fn handle(env: &Env, request: &ApiRequest, path: &[&str]) -> ApiResult<ApiResponse> {
    let (db, caller) = (env.db, &env.caller);
    match (request.method.as_str(), path) {
        ("GET" | "HEAD", ["healthz"]) => {
            request.only_query_params(&[])?;
            jobs::check_health(db)?;
            Ok(ApiResponse::ok(&json!({"status": "ok"})))
        }
        (_, ["healthz"]) => Err(ApiError::method_not_allowed()),
        ("GET", ["v1", "jobs"]) => scoped_list(
            env,
            request,
            "jobs",
            |scope, page| jobs::list(db, scope, page),
            Job::to_json,
        ),
        ("POST", ["v1", "jobs"]) => {
            let body = parse_body(&request.body, &env.settings.json_limits, "body", FIELDS)?;
            Ok(ApiResponse::created(
                &jobs::create(db, caller, new_job(&body)?)?.to_json(),
            ))
        }
        (_, ["v1", "jobs"]) => Err(ApiError::method_not_allowed()),
        ("POST", ["v1", "jobs", "tick"]) => {
            request.only_query_params(&[])?;
            caller.require_admin()?;
            // No caller's token backs a job's run: Spinling's own fetches its package.
            let token = (env.service_token)()?;
            let now = now_unix();
            let fired = jobs::tick(db, env.cache, now)?;
            // Rollouts decide in the same tick (issue 25).
            let decided = crate::domain::rollouts::decide_due(db, now)?;
            let answer: Vec<_> = fired
                .iter()
                .map(|f| json!({"job_id": f.job_id, "execution_id": f.execution.id}))
                .collect();
            for f in fired {
                let mut run = f.run;
                run.token = token.clone();
                let url = download_url(&run, &env.base_url(request)?);
                env.defer(run, url);
            }
            let decided: Vec<_> = decided.iter().map(|d| d.to_json()).collect();
            Ok(ApiResponse::ok(
                &json!({ "fired": answer, "decided": decided }),
            ))
        }
        (method, ["v1", "jobs", id]) => {
            require_uuid_path(id)?;
            match method {
                "GET" => {
                    request.only_query_params(&[])?;
                    Ok(ApiResponse::ok(&jobs::find(db, caller, id)?.to_json()))
                }
                "PUT" => {
                    let body =
                        parse_body(&request.body, &env.settings.json_limits, "body", FIELDS)?;
                    Ok(ApiResponse::ok(
                        &jobs::update(db, caller, id, &job_changes(&body)?)?.to_json(),
                    ))
                }
                "DELETE" => {
                    jobs::delete(db, caller, id)?;
                    Ok(ApiResponse::empty(204))
                }
                _ => Err(ApiError::method_not_allowed()),
            }
        }
        _ => Err(ApiError::path_not_found()),
    }
}
