//! `/v1/webhooks[/{id}[/invoke]]`. The adapter lets `invoke` through without a token (see
//! `is_open_path`); every other route authenticates as usual.

use super::{scoped_list, Env};
use crate::domain::commands::{NewWebhook, WebhookChanges};
use crate::domain::types::FunctionId;
use crate::domain::webhooks::{self, Webhook};
use crate::error::{ApiError, ApiResult};
use crate::web::http::{ApiRequest, ApiResponse};
use crate::web::limits::urlencoded_form;
use crate::web::wire::{parse_body, Body, Field};
use serde_json::{json, Map, Value as Json};

const FIELDS: &[Field] = &[
    Field::uuid("function_id"),
    Field::int("function_version", 0),
    Field::text("function_alias"),
    Field::text("description"),
    Field::text("webhook_url").read_only(),
];

/// The header of a webhook invoke that carries its routing key.
pub const ROUTING_KEY_HEADER: &str = "x-routing-key";

/// Qinling's exemption from authentication: `^/v1/webhooks/[a-f0-9-]+/invoke$`.
pub fn is_open_path(request: &ApiRequest) -> bool {
    match request.segments().as_slice() {
        [v1, webhooks, id, invoke] => {
            v1 == "v1"
                && webhooks == "webhooks"
                && invoke == "invoke"
                && !id.is_empty()
                && id
                    .bytes()
                    .all(|b| matches!(b, b'a'..=b'f' | b'0'..=b'9' | b'-'))
        }
        _ => false,
    }
}

fn new_webhook(body: &Body) -> ApiResult<NewWebhook> {
    Ok(NewWebhook {
        target: NewWebhook::target(
            body.text("function_alias"),
            body.id("function_id", FunctionId::parse)?,
            body.version_ref("function_version"),
        )?,
        description: body.text("description"),
    })
}

fn webhook_changes(body: &Body) -> ApiResult<WebhookChanges> {
    Ok(WebhookChanges {
        function_id: body.id("function_id", FunctionId::parse)?,
        version: body.version_ref("function_version"),
        alias: body.text("function_alias"),
        description: body.text("description"),
    })
}

/// All the request's parameters, as Qinling passes them on: the query's, then a form's
/// fields or a JSON object body's members (any other body is not read).
fn invoke_params(env: &Env, request: &ApiRequest) -> ApiResult<Map<String, Json>> {
    let mut params: Map<String, Json> = request
        .query
        .iter()
        .map(|(k, v)| (k.clone(), Json::String(v.clone())))
        .collect();
    if request.body.iter().all(u8::is_ascii_whitespace) {
        return Ok(params);
    }
    match request.content_type().as_str() {
        "application/json" => {
            match env
                .settings
                .json_limits
                .parse(&request.body, "Request body")?
            {
                Ok(Json::Object(members)) => params.extend(members),
                _ => {
                    return Err(ApiError::bad_request(
                        "The body of a webhook invoke must be a JSON object.",
                    ))
                }
            }
        }
        "application/x-www-form-urlencoded" => {
            // Held to the same bounds as any form (and JSON) a client sends.
            let text = String::from_utf8_lossy(&request.body);
            params.extend(
                urlencoded_form(&text)?
                    .into_iter()
                    .map(|(k, v)| (k, Json::String(v))),
            );
        }
        _ => {}
    }
    Ok(params)
}

pub fn handle(env: &Env, request: &ApiRequest, path: &[&str]) -> ApiResult<ApiResponse> {
    let (db, caller) = (env.db, &env.caller);
    let base_url = env.base_url(request)?;
    let render = |w: &Webhook| w.to_json(&base_url);
    match (request.method.as_str(), path) {
        ("GET", ["v1", "webhooks"]) => scoped_list(
            env,
            request,
            "webhooks",
            |scope, page| webhooks::list(db, scope, page),
            render,
        ),
        ("POST", ["v1", "webhooks"]) => {
            let body = parse_body(&request.body, &env.settings.json_limits, "body", FIELDS)?;
            let webhook = webhooks::create(db, caller, new_webhook(&body)?)?;
            Ok(ApiResponse::created(&render(&webhook)))
        }
        (_, ["v1", "webhooks"]) => Err(ApiError::method_not_allowed()),
        (method, ["v1", "webhooks", id]) => match method {
            "GET" => {
                request.only_query_params(&[])?;
                Ok(ApiResponse::ok(&render(&webhooks::find(db, caller, id)?)))
            }
            "PUT" => {
                let body = parse_body(&request.body, &env.settings.json_limits, "body", FIELDS)?;
                let webhook = webhooks::update(db, caller, id, &webhook_changes(&body)?)?;
                Ok(ApiResponse::ok(&render(&webhook)))
            }
            "DELETE" => {
                webhooks::delete(db, caller, id)?;
                Ok(ApiResponse::empty(204))
            }
            _ => Err(ApiError::method_not_allowed()),
        },
        ("POST", ["v1", "webhooks", id, "invoke"]) => {
            let params = invoke_params(env, request)?;
            // Sticky routing through a routed alias (issue 25).
            let routing_key = crate::domain::routing::check_routing_key(
                request.header(ROUTING_KEY_HEADER).map(str::to_string),
            )?;
            let (execution, job) =
                webhooks::invoke(db, env.cache, id, params, routing_key, env.service_token)?;
            let url = super::executions::download_url(&job, &env.base_url(request)?);
            env.defer(job, url);
            Ok(ApiResponse::json(
                202,
                &json!({"execution_id": execution.id}),
            ))
        }
        (_, ["v1", "webhooks", _, "invoke"]) => Err(ApiError::method_not_allowed()),
        _ => Err(ApiError::path_not_found()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post(path: &str) -> ApiRequest {
        ApiRequest::new("POST", &format!("http://h{path}"), vec![], vec![])
    }

    #[test]
    fn only_an_invoke_path_is_open_as_qinlings_regex_says() {
        assert!(is_open_path(&post(
            "/v1/webhooks/0d2a8e6c-3e51-4f5a-8c3e-111111111111/invoke"
        )));
        assert!(is_open_path(&post("/v1/webhooks/abc-123/invoke/")));
        for closed in [
            "/v1/webhooks",
            "/v1/webhooks/0d2a8e6c-3e51-4f5a-8c3e-111111111111",
            "/v1/webhooks/XYZ/invoke",
            "/v1/webhooks/%2e%2e/invoke",
            "/v1/webhooks/a/invoke/more",
            "/v1/functions/abc/invoke",
        ] {
            assert!(!is_open_path(&post(closed)), "{closed}");
        }
    }
}
