//! `/v1/aliases[/{name}]`.

use super::{page_of, scoped_list, wrapped, Env};
use crate::domain::aliases::{self, Alias, HistoryEntry};
use crate::domain::commands::{AliasChanges, NewAlias, Routing};
use crate::domain::rollouts::{self, RolloutPlan};
use crate::domain::types::{FunctionId, VersionRef};
use crate::error::{ApiError, ApiResult};
use crate::web::http::{ApiRequest, ApiResponse};
use crate::web::wire::{parse_body, Body, Field};

const FIELDS: &[Field] = &[
    Field::text("name"),
    Field::text("description"),
    Field::uuid("function_id"),
    Field::int("function_version", 0),
    Field::object("routing"),
];

/// The routing a body gives: `None` when absent, empty when `null` or `{}`.
fn routing(body: &Body) -> ApiResult<Option<Routing>> {
    body.object("routing")
        .map(|given| given.map_or(Ok(Routing::default()), Routing::parse))
        .transpose()
}

fn new_alias(body: &Body) -> ApiResult<NewAlias> {
    body.require(&["name", "function_id"])?;
    let function_id = body
        .id("function_id", FunctionId::parse)?
        .expect("required above");
    NewAlias::new(
        body.text("name").unwrap_or_default(),
        body.text("description"),
        function_id,
        body.version_ref("function_version")
            .unwrap_or(VersionRef::Current),
        routing(body)?.unwrap_or_default(),
    )
}

fn alias_changes(body: &Body) -> ApiResult<AliasChanges> {
    Ok(AliasChanges {
        function_id: body.id("function_id", FunctionId::parse)?,
        version: body.version_ref("function_version"),
        description: body.text("description"),
        routing: routing(body)?,
    })
}

pub fn handle(env: &Env, request: &ApiRequest, path: &[&str]) -> ApiResult<ApiResponse> {
    let (db, caller) = (env.db, &env.caller);
    match (request.method.as_str(), path) {
        // Unlike Qinling, all_projects is admin-only here as on every other list.
        ("GET", ["v1", "aliases"]) => scoped_list(
            env,
            request,
            "function_aliases",
            |scope, page| aliases::list(db, scope, page),
            Alias::to_json,
        ),
        ("POST", ["v1", "aliases"]) => {
            let body = parse_body(&request.body, &env.settings.json_limits, "body", FIELDS)?;
            Ok(ApiResponse::created(
                &aliases::create(db, caller, new_alias(&body)?)?.to_json(),
            ))
        }
        (_, ["v1", "aliases"]) => Err(ApiError::method_not_allowed()),
        (method, ["v1", "aliases", name]) => match method {
            "GET" => {
                request.only_query_params(&[])?;
                Ok(ApiResponse::ok(&aliases::find(db, caller, name)?.to_json()))
            }
            "PUT" => {
                let body = parse_body(&request.body, &env.settings.json_limits, "body", FIELDS)?;
                Ok(ApiResponse::ok(
                    &aliases::update(db, caller, name, &alias_changes(&body)?)?.to_json(),
                ))
            }
            "DELETE" => {
                aliases::delete(db, caller, name)?;
                Ok(ApiResponse::empty(204))
            }
            _ => Err(ApiError::method_not_allowed()),
        },
        ("GET", ["v1", "aliases", name, "history"]) => {
            request.only_query_params(&crate::store::filters::PAGE_PARAMS)?;
            let page = page_of(env, request)?;
            wrapped(
                env,
                request,
                "history",
                &aliases::history(db, caller, name, &page)?,
                HistoryEntry::to_json,
            )
        }
        (_, ["v1", "aliases", _, "history"]) => Err(ApiError::method_not_allowed()),
        (method, ["v1", "aliases", name, "rollout"]) => match method {
            "GET" => {
                request.only_query_params(&[])?;
                Ok(ApiResponse::ok(&rollouts::show(db, caller, name)?))
            }
            "POST" => {
                request.only_query_params(&[])?;
                let body = match env.settings.json_limits.parse(&request.body, "body")? {
                    Ok(body) => body,
                    Err(e) => {
                        return Err(ApiError::bad_request(format!(
                            "The body of a rollout is not JSON: {e}"
                        )))
                    }
                };
                let plan = RolloutPlan::parse(&body)?;
                Ok(ApiResponse::created(&rollouts::start(
                    db, caller, name, plan,
                )?))
            }
            "DELETE" => {
                request.only_query_params(&[])?;
                Ok(ApiResponse::ok(&rollouts::abort(db, caller, name)?))
            }
            _ => Err(ApiError::method_not_allowed()),
        },
        _ => Err(ApiError::path_not_found()),
    }
}
