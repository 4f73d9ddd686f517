//! `/v1/executions[/{id}[/log]]`.

use super::{wrapped, Env};
use crate::context::ListScope;
use crate::error::{ApiError, ApiResult};
use crate::executions::{self, Execution, Job, FIELDS};
use crate::http::{ApiRequest, ApiResponse};
use crate::runtimes::BUILTIN_WASM_IMAGE;
use crate::wire::{parse_body, require_uuid_path};

/// Where the runtime fetches the job's package: through service chaining for the built-in
/// runtime, through this API's public URL for an external worker.
pub fn download_url(job: &Job, request: &ApiRequest) -> String {
    if job.runtime_image == BUILTIN_WASM_IMAGE {
        let component = if job.function_version == 0 {
            "functions"
        } else {
            "versions"
        };
        format!("http://{component}.spin.internal{}", job.package_path())
    } else {
        format!(
            "{}{}",
            request.base_url.trim_end_matches('/'),
            job.package_path()
        )
    }
}

pub fn handle(env: &Env, request: &ApiRequest, path: &[&str]) -> ApiResult<ApiResponse> {
    let (db, caller) = (env.db, &env.caller);
    match (request.method.as_str(), path) {
        ("GET", ["v1", "executions"]) => {
            request.only_query_params(&[
                "all_projects",
                "project_id",
                "function_id",
                "function_version",
                "status",
            ])?;
            let scope = ListScope::from_request(caller, request)?;
            let mut filters = Vec::new();
            for column in ["function_id", "function_version", "status"] {
                if let Some(value) = request.query_param(column) {
                    filters.push((column, value.to_string()));
                }
            }
            Ok(wrapped(
                "executions",
                &executions::list(db, &scope, &filters)?,
                Execution::to_json,
            ))
        }
        ("POST", ["v1", "executions"]) => {
            let body = parse_body(&request.body, "body", FIELDS)?;
            let (execution, job) = executions::create(db, caller, &body)?;
            let url = download_url(&job, request);
            if !execution.sync {
                env.defer(job, url);
                return Ok(ApiResponse::created(&execution.to_json()));
            }
            executions::complete(db, &job, env.executor.execute(&job, &url))?;
            Ok(ApiResponse::created(
                &executions::find(db, caller, &execution.id)?.to_json(),
            ))
        }
        (_, ["v1", "executions"]) => Err(ApiError::method_not_allowed()),
        (method, ["v1", "executions", id]) => {
            require_uuid_path(id)?;
            match method {
                "GET" => Ok(ApiResponse::ok(
                    &executions::find(db, caller, id)?.to_json(),
                )),
                "DELETE" => {
                    executions::delete(db, caller, id)?;
                    Ok(ApiResponse::empty(204))
                }
                _ => Err(ApiError::method_not_allowed()),
            }
        }
        ("GET", ["v1", "executions", id, "log"]) => {
            let logs = executions::logs(db, caller, id)?;
            Ok(ApiResponse {
                status: 200,
                headers: vec![("content-type".into(), "text/plain; charset=utf-8".into())],
                body: logs.into_bytes(),
            })
        }
        (_, ["v1", "executions", _, "log"]) => Err(ApiError::method_not_allowed()),
        _ => Err(ApiError::path_not_found()),
    }
}
