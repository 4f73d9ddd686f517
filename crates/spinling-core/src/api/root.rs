//! `GET /` (version discovery), `GET /v1/`, and the 404 for every path no group serves.

use super::Env;
use crate::error::{ApiError, ApiResult};
use crate::http::{ApiRequest, ApiResponse};
use serde_json::json;

pub fn handle(_env: &Env, request: &ApiRequest, path: &[&str]) -> ApiResult<ApiResponse> {
    match path {
        [] => get_only(request, || {
            json!({"versions": [{
                "id": "v1.0",
                "status": "CURRENT",
                "links": [{"href": request.v1_url(), "target": "v1", "rel": "self"}],
            }]})
        }),
        ["v1"] => get_only(request, || json!({"uri": request.v1_url()})),
        _ => Err(ApiError::path_not_found()),
    }
}

fn get_only(request: &ApiRequest, body: impl Fn() -> serde_json::Value) -> ApiResult<ApiResponse> {
    match request.method.as_str() {
        "GET" | "HEAD" => Ok(ApiResponse::ok(&body())),
        _ => Err(ApiError::method_not_allowed()),
    }
}
