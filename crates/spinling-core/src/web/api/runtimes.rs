//! `/v1/runtimes[/{id}]`.

use super::{page_of, wrapped, Env};
use crate::domain::commands::{NewRuntime, RuntimeChanges};
use crate::domain::runtimes::{self, Runtime};
use crate::domain::types::RuntimeId;
use crate::error::{ApiError, ApiResult};
use crate::web::http::{ApiRequest, ApiResponse};
use crate::web::wire::{parse_body, require_uuid_path, Body, Field};

const FIELDS: &[Field] = &[
    Field::uuid("id"),
    Field::text("name"),
    Field::text("image"),
    Field::text("description"),
    Field::boolean("is_public"),
    Field::boolean("trusted"),
    Field::text("status").read_only(),
];

fn new_runtime(body: &Body) -> ApiResult<NewRuntime> {
    body.require(&["image"])?;
    Ok(NewRuntime {
        id: body.id("id", RuntimeId::parse)?,
        name: body.text("name"),
        description: body.text("description"),
        image: body.text("image").unwrap_or_default(),
        is_public: body.boolean("is_public").unwrap_or(true),
        trusted: body.boolean("trusted").unwrap_or(true),
    })
}

fn runtime_changes(body: &Body) -> RuntimeChanges {
    RuntimeChanges {
        name: body.text("name"),
        description: body.text("description"),
        image: body.text("image"),
    }
}

pub fn handle(env: &Env, request: &ApiRequest, path: &[&str]) -> ApiResult<ApiResponse> {
    let (db, caller) = (env.db, &env.caller);
    match (request.method.as_str(), path) {
        ("GET", ["v1", "runtimes"]) => {
            request.only_query_params(&["limit", "marker"])?;
            let page = page_of(env, request)?;
            wrapped(
                env,
                request,
                "runtimes",
                &runtimes::list(db, caller, &page)?,
                Runtime::to_json,
            )
        }
        ("POST", ["v1", "runtimes"]) => {
            let body = parse_body(&request.body, &env.settings.json_limits, "runtime", FIELDS)?;
            // Only an admin learns what the body lacks, as before.
            caller.require_admin()?;
            let new = new_runtime(&body)?;
            let runtime = runtimes::create(db, caller, &env.settings.rules, env.workers, new)?;
            Ok(ApiResponse::created(&runtime.to_json()))
        }
        (_, ["v1", "runtimes"]) => Err(ApiError::method_not_allowed()),
        (method, ["v1", "runtimes", id]) => {
            require_uuid_path(id)?;
            match method {
                "GET" => {
                    request.only_query_params(&[])?;
                    Ok(ApiResponse::ok(&runtimes::find(db, caller, id)?.to_json()))
                }
                "PUT" => {
                    let body =
                        parse_body(&request.body, &env.settings.json_limits, "runtime", FIELDS)?;
                    let changes = runtime_changes(&body);
                    let runtime = runtimes::update(
                        db,
                        caller,
                        &env.settings.rules,
                        env.workers,
                        id,
                        &changes,
                    )?;
                    Ok(ApiResponse::ok(&runtime.to_json()))
                }
                "DELETE" => {
                    runtimes::delete(db, caller, id)?;
                    Ok(ApiResponse::empty(204))
                }
                _ => Err(ApiError::method_not_allowed()),
            }
        }
        _ => Err(ApiError::path_not_found()),
    }
}
