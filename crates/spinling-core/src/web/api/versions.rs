//! `/v1/functions/{id}/versions[/{n}[/detach|/diff/{m}]]`: the seed's Versions API, and the
//! diff of two versions.

use super::{page_of, wants_download, wrapped, Env};
use crate::domain::types::{VersionNumber, VersionRef};
use crate::domain::versions;
use crate::error::{ApiError, ApiResult};
use crate::web::http::{strong_etag, ApiRequest, ApiResponse};
use crate::web::wire::{parse_body, require_uuid_path, Field};

const FIELDS: &[Field] = &[
    Field::text("description"),
    // The md5 the function's current package must have: 412 otherwise, nothing published.
    Field::text("md5sum"),
    Field::uuid("function_id").read_only(),
    Field::int("version_number", 0).read_only(),
    Field::int("count", 0).read_only(),
];

/// A version's package download never changes.
const IMMUTABLE: &str = "private, max-age=31536000, immutable";

/// The version a request path names: `0`, the function's current code, or a version number
/// (a positive integer).
fn version_ref(function_id: &str, raw: &str) -> ApiResult<VersionRef> {
    match raw.parse::<i64>() {
        Ok(n) => VersionRef::from_wire(n).ok_or_else(|| not_a_number(raw)),
        // A positive integer too large for any version that can exist: unknown, not bad.
        Err(e) if *e.kind() == std::num::IntErrorKind::PosOverflow => Err(versions::not_found(
            function_id,
            raw.trim_start_matches('+'),
        )),
        Err(_) => Err(not_a_number(raw)),
    }
}

/// A version number from a request path, where the current code is not a version.
fn version_number(function_id: &str, raw: &str) -> ApiResult<VersionNumber> {
    version_ref(function_id, raw)?
        .number()
        .ok_or_else(|| not_a_number(raw))
}

fn not_a_number(raw: &str) -> ApiError {
    ApiError::bad_request(format!(
        "Invalid version number: '{raw}'. A version number is a positive integer."
    ))
}

pub fn handle(env: &Env, request: &ApiRequest, path: &[&str]) -> ApiResult<ApiResponse> {
    let (db, caller) = (env.db, &env.caller);
    match (request.method.as_str(), path) {
        ("GET", ["v1", "functions", fid, "versions"]) => {
            require_uuid_path(fid)?;
            request.only_query_params(&["limit", "marker"])?;
            let page = page_of(env, request)?;
            wrapped(
                env,
                request,
                "function_versions",
                &versions::list(db, env.cache, caller, fid, &page)?,
                |v| v.json.clone(),
            )
        }
        ("POST", ["v1", "functions", fid, "versions"]) => {
            require_uuid_path(fid)?;
            // Qinling needs a body (`{}` will do); an empty one is a missing argument.
            let body = parse_body(&request.body, &env.settings.json_limits, "body", FIELDS)?;
            let version = versions::publish_version(
                db,
                env.cache,
                caller,
                &env.settings.rules,
                fid,
                body.text("description"),
                body.text("md5sum").as_deref(),
            )?;
            Ok(ApiResponse::created(&version.to_json()))
        }
        (_, ["v1", "functions", _, "versions"]) => Err(ApiError::method_not_allowed()),
        (method, ["v1", "functions", fid, "versions", n]) => {
            let n = version_number(fid, n)?;
            match method {
                // A version never changes: its package is cacheable for good, its JSON (whose
                // count does change) until the next execution.
                "GET" if wants_download(request)? => {
                    let package = versions::download(db, caller, fid, n, |etag| {
                        request.if_none_match_hits(etag)
                    })?;
                    let response = match package.package {
                        None => ApiResponse::not_modified(&package.etag),
                        Some(stored) => ApiResponse::attachment(&format!("{fid}_{n}"), stored)
                            .with_header("etag", &package.etag),
                    };
                    Ok(response.with_header("cache-control", IMMUTABLE))
                }
                "GET" => {
                    let body = versions::find(db, env.cache, caller, fid, n)?.to_json();
                    let etag = strong_etag(body.to_string().as_bytes());
                    if request.if_none_match_hits(&etag) {
                        return Ok(ApiResponse::not_modified(&etag));
                    }
                    Ok(ApiResponse::ok(&body).with_header("etag", &etag))
                }
                "DELETE" => {
                    require_uuid_path(fid)?;
                    versions::delete(db, env.cache, caller, fid, n)?;
                    Ok(ApiResponse::empty(204))
                }
                _ => Err(ApiError::method_not_allowed()),
            }
        }
        ("POST", ["v1", "functions", fid, "versions", n, "detach"]) => {
            require_uuid_path(fid)?;
            let version = version_ref(fid, n)?;
            versions::detach(db, env.cache, caller, fid, version)?;
            Ok(ApiResponse::empty(202))
        }
        (_, ["v1", "functions", _, "versions", _, "detach"]) => Err(ApiError::method_not_allowed()),
        ("GET", ["v1", "functions", fid, "versions", from, "diff", to]) => {
            request.only_query_params(&[])?;
            let (from, to) = (version_ref(fid, from)?, version_ref(fid, to)?);
            let diff = crate::domain::diff::diff(db, env.cache, caller, fid, from, to)?;
            Ok(ApiResponse::ok(&diff.to_json()))
        }
        (_, ["v1", "functions", _, "versions", _, "diff", _]) => {
            Err(ApiError::method_not_allowed())
        }
        _ => Err(ApiError::path_not_found()),
    }
}
