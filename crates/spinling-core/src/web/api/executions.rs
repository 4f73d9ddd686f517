//! `/v1/executions[/{id}[/log]]`.

use super::{page_of, wrapped, Env};
use crate::domain::commands::NewExecution;
use crate::domain::executions::{self, parse_input, Execution, MAX_INPUT};
use crate::domain::json::JsonLimits;
use crate::domain::types::{ExecutionId, FunctionId, VersionRef};
use crate::domain::workers::Job;
use crate::domain::workers::BUILTIN_WASM_IMAGE;
use crate::error::{ApiError, ApiResult};
use crate::store::filters::Filter;
use crate::web::http::{ApiRequest, ApiResponse};
use crate::web::listing::list_scope_of_request;
use crate::web::wire::{parse_body, require_uuid_path, Body, Field, FieldType};

const FIELDS: &[Field] = &[
    Field::uuid("id"),
    Field::uuid("function_id"),
    Field::int("function_version", 0),
    Field::text("function_alias"),
    Field::boolean("sync"),
    Field {
        name: "input",
        ty: FieldType::Text(MAX_INPUT),
        read_only: false,
    },
    Field::text("description"),
    Field {
        name: "routing_key",
        ty: FieldType::Text(crate::domain::routing::MAX_ROUTING_KEY),
        read_only: false,
    },
    Field::text("status").read_only(),
    Field::text("result").read_only(),
];

fn new_execution(body: &Body, limits: &JsonLimits) -> ApiResult<NewExecution> {
    let target = NewExecution::target(
        body.text("function_alias"),
        body.id("function_id", FunctionId::parse)?,
        body.version_ref("function_version"),
    )?;
    Ok(NewExecution {
        id: body.id("id", ExecutionId::parse)?,
        target,
        description: body.text("description"),
        sync: body.boolean("sync").unwrap_or(true),
        input: parse_input(body.text("input").as_deref(), limits)?,
        routing_key: crate::domain::routing::check_routing_key(body.text("routing_key"))?,
    })
}

/// Where the runtime fetches the job's package: through service chaining for the built-in
/// runtime; for an external worker, under `base_url`: the configured public URL, or else the
/// URL of a request whose `Host` was checked (see `hosts`), never one a caller chose.
pub fn download_url(job: &Job, base_url: &str) -> String {
    worker_download_url(job, Some(base_url)).unwrap_or_default()
}

/// As [`download_url`], for a run no request started (a job the scheduler's loop fired): an
/// external worker needs `public_url`, since no caller's URL is kept; `None` without it.
pub fn worker_download_url(job: &Job, public_url: Option<&str>) -> Option<String> {
    if job.runtime_image == BUILTIN_WASM_IMAGE {
        let component = match job.function_version {
            VersionRef::Current => "functions",
            VersionRef::Number(_) => "versions",
        };
        Some(format!(
            "http://{component}.spin.internal{}",
            job.package_path()
        ))
    } else {
        let base = public_url?;
        Some(format!(
            "{}{}",
            base.trim_end_matches('/'),
            job.package_path()
        ))
    }
}

/// Why a run the loop fired on an external worker fails when `public_url` is unset.
pub const NO_PUBLIC_URL: &str = "No URL to give the worker for the package: a job's run keeps no caller's URL. Set the Spin variable public_url.";

pub fn handle(env: &Env, request: &ApiRequest, path: &[&str]) -> ApiResult<ApiResponse> {
    let (db, caller) = (env.db, &env.caller);
    match (request.method.as_str(), path) {
        ("GET", ["v1", "executions"]) => {
            const FILTERS: [&str; 3] = ["function_id", "status", "description"];
            // Unlike Qinling, `function_version` filters too (issue 10).
            request.only_query_params(&[
                "all_projects",
                "project_id",
                FILTERS[0],
                FILTERS[1],
                FILTERS[2],
                "function_version",
                "limit",
                "marker",
            ])?;
            let scope = list_scope_of_request(caller, request)?;
            let mut filters: Vec<Filter> = FILTERS
                .into_iter()
                .filter_map(|column| Some(Filter::parse(column, request.query_param(column)?)))
                .collect();
            if let Some(raw) = request.query_param("function_version") {
                filters.push(Filter::parse_integer("function_version", raw)?);
            }
            let page = page_of(env, request)?;
            wrapped(
                env,
                request,
                "executions",
                &executions::list(db, &scope, &filters, &page)?,
                Execution::to_json,
            )
        }
        ("POST", ["v1", "executions"]) => {
            let body = parse_body(&request.body, &env.settings.json_limits, "body", FIELDS)?;
            let new = new_execution(&body, &env.settings.json_limits)?;
            if !new.sync {
                let (execution, job) = executions::create(db, env.cache, caller, &new)?;
                let url = download_url(&job, &env.base_url(request)?);
                env.defer(job, url);
                return Ok(ApiResponse::created(&execution.to_json()));
            }
            // Run first, then store the ended execution: one commit, not two.
            let (execution, job) = executions::prepare(db, caller, &new)?;
            let url = download_url(&job, &env.base_url(request)?);
            let outcome = env.executor.execute(&job, &url);
            let ended = executions::record_ended(db, env.cache, &execution, outcome)?;
            Ok(ApiResponse::created(&ended.to_json()))
        }
        (_, ["v1", "executions"]) => Err(ApiError::method_not_allowed()),
        (method, ["v1", "executions", id]) => {
            require_uuid_path(id)?;
            match method {
                "GET" => {
                    request.only_query_params(&[])?;
                    Ok(ApiResponse::ok(
                        &executions::find(db, caller, id)?.to_json(),
                    ))
                }
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
                body: logs.into_bytes().into(),
            })
        }
        (_, ["v1", "executions", _, "log"]) => Err(ApiError::method_not_allowed()),
        _ => Err(ApiError::path_not_found()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(image: &str, version: i64) -> Job {
        Job {
            execution_id: ExecutionId::generate(),
            runtime_image: image.into(),
            function_id: FunctionId::from_stored("f".into()),
            function_version: VersionRef::from_wire(version).unwrap(),
            entry: None,
            cpu: 100,
            memory_size: 1,
            timeout: 1,
            input: None,
            package_md5: String::new(),
            token: None,
        }
    }

    #[test]
    fn the_builtin_runtime_downloads_by_service_chaining() {
        assert_eq!(
            download_url(&job(BUILTIN_WASM_IMAGE, 0), "http://client.example"),
            "http://functions.spin.internal/v1/functions/f?download=true"
        );
        assert_eq!(
            worker_download_url(&job(BUILTIN_WASM_IMAGE, 3), None).unwrap(),
            "http://versions.spin.internal/v1/functions/f/versions/3?download=true"
        );
    }

    #[test]
    fn a_worker_downloads_under_the_base_url_given() {
        let worker = job("http://w:9090", 1);
        assert_eq!(
            download_url(&worker, "http://localhost:3000"),
            "http://localhost:3000/v1/functions/f/versions/1?download=true"
        );
        assert_eq!(
            worker_download_url(&worker, Some("https://faas.example.org/")).unwrap(),
            "https://faas.example.org/v1/functions/f/versions/1?download=true"
        );
    }

    #[test]
    fn a_worker_run_no_request_started_needs_the_public_url() {
        assert_eq!(worker_download_url(&job("http://w:9090", 1), None), None);
    }
}
