//! `GET /` (version discovery), `GET /v1/`, `GET /v1/openapi.json`, and the 404 for every
//! path no group serves.

use super::Env;
use crate::error::{ApiError, ApiResult};
use crate::web::http::{ApiRequest, ApiResponse};
use serde_json::json;

/// The OpenAPI 3.1 description of the whole API.
pub const OPENAPI: &str = include_str!("../../../openapi.json");

pub fn handle(env: &Env, request: &ApiRequest, path: &[&str]) -> ApiResult<ApiResponse> {
    // Only these two ask for the base URL: `public_url` is a host call.
    let v1_url = || {
        Ok::<_, ApiError>(format!(
            "{}/v1",
            env.base_url(request)?.trim_end_matches('/')
        ))
    };
    match path {
        [] => get_only(request, || {
            Ok(json!({"versions": [{
                "id": "v1.0",
                "status": "CURRENT",
                "links": [{"href": v1_url()?, "target": "v1", "rel": "self"}],
            }]}))
        }),
        ["v1"] => get_only(request, || Ok(json!({"uri": v1_url()?}))),
        ["v1", "openapi.json"] => get_only(request, || {
            Ok(serde_json::from_str(OPENAPI)
                .expect("openapi.json is valid JSON (a unit test checks)"))
        }),
        _ => Err(ApiError::path_not_found()),
    }
}

fn get_only(
    request: &ApiRequest,
    body: impl Fn() -> ApiResult<serde_json::Value>,
) -> ApiResult<ApiResponse> {
    match request.method.as_str() {
        "GET" | "HEAD" => Ok(ApiResponse::ok(&body()?)),
        _ => Err(ApiError::method_not_allowed()),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_openapi_document_is_valid_json_with_paths() {
        let doc: serde_json::Value = serde_json::from_str(super::OPENAPI).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        assert!(doc["paths"]["/v1/functions/{function_id}/versions"].is_object());
    }
}
