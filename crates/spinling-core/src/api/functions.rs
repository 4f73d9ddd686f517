//! `/v1/functions[/{id}[/detach]]`.

use super::{page_of, wants_download, wrapped, Env};
use crate::cache::{forget_versions, prepared_key};
use crate::context::ListScope;
use crate::error::{ApiError, ApiResult};
use crate::forms::parse_function_form;
use crate::functions::{self, Function};
use crate::http::{ApiRequest, ApiResponse};
use crate::versions;
use crate::wire::require_uuid_path;

pub fn handle(env: &Env, request: &ApiRequest, path: &[&str]) -> ApiResult<ApiResponse> {
    let (db, caller) = (env.db, &env.caller);
    match (request.method.as_str(), path) {
        ("GET", ["v1", "functions"]) => {
            request.only_query_params(&["all_projects", "project_id", "limit", "marker"])?;
            let scope = ListScope::from_request(caller, request)?;
            let page = page_of(env, request)?;
            Ok(wrapped(
                env,
                request,
                "functions",
                &functions::list(db, &scope, &page)?,
                Function::to_list_json,
            ))
        }
        ("POST", ["v1", "functions"]) => {
            let form = parse_function_form(request, &env.settings.json_limits)?;
            let function = functions::create(db, caller, &env.settings, form)?;
            Ok(ApiResponse::created(&function.to_json()))
        }
        (_, ["v1", "functions"]) => Err(ApiError::method_not_allowed()),
        ("GET", ["v1", "functions", id]) => {
            if wants_download(request)? {
                let bytes = functions::download(db, caller, id)?;
                Ok(ApiResponse::attachment(id, bytes))
            } else {
                Ok(ApiResponse::ok(&functions::find(db, caller, id)?.to_json()))
            }
        }
        ("PUT", ["v1", "functions", id]) => {
            let form = parse_function_form(request, &env.settings.json_limits)?;
            let function = functions::update(db, caller, &env.settings, id, form)?;
            Ok(ApiResponse::ok(&function.to_json()))
        }
        ("DELETE", ["v1", "functions", id]) => {
            require_uuid_path(id)?;
            let mut numbers = functions::delete(db, caller, id)?;
            numbers.push(0);
            forget_versions(env.cache, id, &numbers);
            Ok(ApiResponse::empty(204))
        }
        (_, ["v1", "functions", _]) => Err(ApiError::method_not_allowed()),
        ("POST", ["v1", "functions", id, "detach"]) => {
            require_uuid_path(id)?;
            versions::detach(db, caller, id, 0)?;
            env.cache.delete(&prepared_key(id, 0));
            Ok(ApiResponse::empty(202))
        }
        (_, ["v1", "functions", _, "detach"]) => Err(ApiError::method_not_allowed()),
        _ => Err(ApiError::path_not_found()),
    }
}
