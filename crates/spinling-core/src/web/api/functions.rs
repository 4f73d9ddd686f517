//! `/v1/functions[/{id}[/detach]]`.

use super::{scoped_list, wants_download, Env};
use crate::domain::commands::{FunctionChanges, NewFunction};
use crate::domain::functions::{
    self, claimed_md5, source_of, Function, Limit, CPU, MAX_ENTRY, MEMORY, TIMEOUT,
};
use crate::domain::json::JsonLimits;
use crate::domain::types::{CodeSource, VersionRef};
use crate::domain::versions;
use crate::error::{ApiError, ApiResult};
use crate::web::forms::{parse_function_form, FunctionForm};
use crate::web::http::{ApiRequest, ApiResponse};
use crate::web::limits::MAX_TEXT;
use crate::web::wire::{check_value, require_uuid_path, Field, FieldType};
use serde_json::{Map, Value as Json};

/// A text field of the form, at most `max` characters (WSME's messages).
fn text_field(form: &FunctionForm, name: &'static str, max: usize) -> ApiResult<Option<String>> {
    match form.get(name) {
        None => Ok(None),
        Some(v) => {
            let field = Field {
                name,
                ty: FieldType::Text(max),
                read_only: false,
            };
            Ok(check_value(&field, v)?.as_str().map(str::to_owned))
        }
    }
}

/// A resource limit of the form: absent is `None`.
fn limit_field(form: &FunctionForm, limit: &Limit) -> ApiResult<Option<i64>> {
    form.get(limit.field).map(|v| limit.check(v)).transpose()
}

/// `code`, which Qinling wants as a JSON-encoded string (parsed within `limits`); an object
/// is accepted too.
fn code_field(form: &FunctionForm, limits: &JsonLimits) -> ApiResult<Option<Map<String, Json>>> {
    let parsed = match form.get("code") {
        None => return Ok(None),
        Some(Json::String(s)) => limits.parse(s.as_bytes(), "Function code")?.map_err(|e| {
            ApiError::bad_request(format!("Invalid input, code is not valid JSON: {e}"))
        })?,
        Some(other) => other.clone(),
    };
    match parsed {
        Json::Object(map) => Ok(Some(map)),
        _ => Err(ApiError::bad_request(
            "Invalid input, code must be a JSON object.",
        )),
    }
}

/// A create's form, checked field by field in Qinling's order.
fn new_function(mut form: FunctionForm, limits: &JsonLimits) -> ApiResult<NewFunction> {
    let Some(code) = code_field(&form, limits)? else {
        return Err(ApiError::bad_request(
            "Required param is missing. Required: {'code'}",
        ));
    };
    let timeout = limit_field(&form, &TIMEOUT)?.unwrap_or(TIMEOUT.default);
    let cpu = limit_field(&form, &CPU)?.unwrap_or(CPU.default);
    let memory_size = limit_field(&form, &MEMORY)?.unwrap_or(MEMORY.default);
    let name = text_field(&form, "name", MAX_TEXT)?;
    let description = text_field(&form, "description", MAX_TEXT)?;
    let entry = text_field(&form, "entry", MAX_ENTRY)?;
    let source = source_of(&code)?;
    let runtime_id = match source {
        CodeSource::Image => None,
        _ => Some(
            text_field(&form, "runtime_id", MAX_TEXT)?
                .ok_or_else(|| ApiError::bad_request("\"runtime_id\" must be specified."))?,
        ),
    };
    Ok(NewFunction {
        name,
        description,
        entry,
        cpu,
        memory_size,
        timeout,
        code,
        source,
        runtime_id,
        package: form.package.take(),
    })
}

/// An update's form: only the updatable fields are read; anything else is ignored, as
/// Qinling does.
fn function_changes(mut form: FunctionForm, limits: &JsonLimits) -> ApiResult<FunctionChanges> {
    let code = code_field(&form, limits)?;
    let timeout = limit_field(&form, &TIMEOUT)?;
    let cpu = limit_field(&form, &CPU)?;
    let memory_size = limit_field(&form, &MEMORY)?;
    let name = text_field(&form, "name", MAX_TEXT)?;
    let description = text_field(&form, "description", MAX_TEXT)?;
    let entry = text_field(&form, "entry", MAX_ENTRY)?;
    let claimed_md5 = match &code {
        Some(c) => claimed_md5(c)?,
        None => None,
    };
    Ok(FunctionChanges {
        name,
        description,
        entry,
        cpu,
        memory_size,
        timeout,
        code,
        claimed_md5,
        md5sum_field: form.get("md5sum").and_then(Json::as_str).map(str::to_owned),
        package: form.package.take(),
    })
}

/// The function as show and update return it, with its `ETag` (what `If-Match` names).
fn with_etag(function: Function) -> ApiResponse {
    let mut response = ApiResponse::ok(&function.to_json());
    response.headers.push(("etag".into(), function.etag()));
    response
}

pub fn handle(env: &Env, request: &ApiRequest, path: &[&str]) -> ApiResult<ApiResponse> {
    let (db, caller) = (env.db, &env.caller);
    match (request.method.as_str(), path) {
        ("GET", ["v1", "functions"]) => scoped_list(
            env,
            request,
            "functions",
            |scope, page| functions::list(db, scope, page),
            Function::to_list_json,
        ),
        ("POST", ["v1", "functions"]) => {
            let limits = &env.settings.json_limits;
            let new = new_function(parse_function_form(request, limits)?, limits)?;
            let function = functions::create(db, caller, &env.settings.rules, new)?;
            Ok(ApiResponse::created(&function.to_json()))
        }
        (_, ["v1", "functions"]) => Err(ApiError::method_not_allowed()),
        ("GET", ["v1", "functions", id]) => {
            if wants_download(request)? {
                let package = functions::download(db, caller, id)?;
                Ok(ApiResponse::attachment(id, package))
            } else {
                Ok(with_etag(functions::find_cached(
                    db, env.cache, caller, id,
                )?))
            }
        }
        ("PUT", ["v1", "functions", id]) => {
            let limits = &env.settings.json_limits;
            let changes = function_changes(parse_function_form(request, limits)?, limits)?;
            let if_match = request.header("if-match");
            let function = functions::update(
                db,
                env.cache,
                caller,
                &env.settings.rules,
                id,
                changes,
                if_match,
            )?;
            Ok(with_etag(function))
        }
        ("DELETE", ["v1", "functions", id]) => {
            require_uuid_path(id)?;
            functions::delete(db, env.cache, caller, id)?;
            Ok(ApiResponse::empty(204))
        }
        (_, ["v1", "functions", _]) => Err(ApiError::method_not_allowed()),
        ("POST", ["v1", "functions", id, "detach"]) => {
            require_uuid_path(id)?;
            versions::detach(db, env.cache, caller, id, VersionRef::Current)?;
            Ok(ApiResponse::empty(202))
        }
        (_, ["v1", "functions", _, "detach"]) => Err(ApiError::method_not_allowed()),
        ("GET", ["v1", "functions", id, "stats"]) => {
            require_uuid_path(id)?;
            request.only_query_params(&["since"])?;
            let since = match request.query_param("since") {
                Some(t) => crate::domain::jobs::parse_time(t)?,
                None => crate::time::now_unix() - crate::domain::stats::DEFAULT_WINDOW_SECONDS,
            };
            Ok(ApiResponse::ok(&crate::domain::stats::of_function(
                db, caller, id, since,
            )?))
        }
        (_, ["v1", "functions", _, "stats"]) => Err(ApiError::method_not_allowed()),
        _ => Err(ApiError::path_not_found()),
    }
}
