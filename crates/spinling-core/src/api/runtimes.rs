//! `/v1/runtimes[/{id}]`.

use super::{page_of, wrapped, Env};
use crate::error::{ApiError, ApiResult};
use crate::http::{ApiRequest, ApiResponse};
use crate::runtimes::{self, Runtime};
use crate::wire::{parse_body, require_uuid_path, Field};

const FIELDS: &[Field] = &[
    Field::uuid("id"),
    Field::text("name"),
    Field::text("image"),
    Field::text("description"),
    Field::boolean("is_public"),
    Field::boolean("trusted"),
    Field::text("status").read_only(),
];

pub fn handle(env: &Env, request: &ApiRequest, path: &[&str]) -> ApiResult<ApiResponse> {
    let (db, caller) = (env.db, &env.caller);
    match (request.method.as_str(), path) {
        ("GET", ["v1", "runtimes"]) => {
            request.only_query_params(&["limit", "marker"])?;
            let page = page_of(env, request)?;
            Ok(wrapped(
                env,
                request,
                "runtimes",
                &runtimes::list(db, caller, &page)?,
                Runtime::to_json,
            ))
        }
        ("POST", ["v1", "runtimes"]) => {
            let body = parse_body(&request.body, &env.settings.json_limits, "runtime", FIELDS)?;
            let runtime = runtimes::create(db, caller, &env.settings, env.workers, &body)?;
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
                    let runtime =
                        runtimes::update(db, caller, &env.settings, env.workers, id, &body)?;
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
