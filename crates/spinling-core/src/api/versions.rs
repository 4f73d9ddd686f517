//! `/v1/functions/{id}/versions[/{n}[/detach]]`: the seed's Versions API.

use super::{page_of, wants_download, wrapped, Env};
use crate::cache::{forget_versions, prepared_key};
use crate::error::{ApiError, ApiResult};
use crate::http::{ApiRequest, ApiResponse};
use crate::versions::{self, parse_number, FunctionVersion};
use crate::wire::{parse_body, require_uuid_path, Field};

const FIELDS: &[Field] = &[
    Field::text("description"),
    Field::uuid("function_id").read_only(),
    Field::int("version_number", 0).read_only(),
    Field::int("count", 0).read_only(),
];

pub fn handle(env: &Env, request: &ApiRequest, path: &[&str]) -> ApiResult<ApiResponse> {
    let (db, caller) = (env.db, &env.caller);
    match (request.method.as_str(), path) {
        ("GET", ["v1", "functions", fid, "versions"]) => {
            require_uuid_path(fid)?;
            request.only_query_params(&["limit", "marker"])?;
            let page = page_of(env, request)?;
            Ok(wrapped(
                env,
                request,
                "function_versions",
                &versions::list(db, env.cache, caller, fid, &page)?,
                FunctionVersion::to_json,
            ))
        }
        ("POST", ["v1", "functions", fid, "versions"]) => {
            require_uuid_path(fid)?;
            // Qinling needs a body (`{}` will do); an empty one is a missing argument.
            let body = parse_body(&request.body, &env.settings.json_limits, "body", FIELDS)?;
            let version = versions::publish_version(
                db,
                caller,
                &env.settings,
                fid,
                body.text("description"),
            )?;
            forget_versions(env.cache, fid, &[]);
            Ok(ApiResponse::created(&version.to_json()))
        }
        (_, ["v1", "functions", _, "versions"]) => Err(ApiError::method_not_allowed()),
        (method, ["v1", "functions", fid, "versions", n]) => {
            let n = parse_number(fid, n, false)?;
            match method {
                "GET" if wants_download(request)? => {
                    let bytes = versions::download(db, caller, fid, n)?;
                    Ok(ApiResponse::attachment(&format!("{fid}_{n}"), bytes))
                }
                "GET" => Ok(ApiResponse::ok(
                    &versions::find(db, env.cache, caller, fid, n)?.to_json(),
                )),
                "DELETE" => {
                    require_uuid_path(fid)?;
                    versions::delete(db, caller, fid, n)?;
                    forget_versions(env.cache, fid, &[n]);
                    Ok(ApiResponse::empty(204))
                }
                _ => Err(ApiError::method_not_allowed()),
            }
        }
        ("POST", ["v1", "functions", fid, "versions", n, "detach"]) => {
            require_uuid_path(fid)?;
            let n = parse_number(fid, n, true)?;
            versions::detach(db, caller, fid, n)?;
            env.cache.delete(&prepared_key(fid, n));
            Ok(ApiResponse::empty(202))
        }
        (_, ["v1", "functions", _, "versions", _, "detach"]) => Err(ApiError::method_not_allowed()),
        _ => Err(ApiError::path_not_found()),
    }
}
