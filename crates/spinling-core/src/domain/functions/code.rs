//! A function's `code` field: where its code comes from (a package, Swift or an image) and
//! the md5 a client claims for its package.

use crate::domain::types::CodeSource;
use crate::error::{ApiError, ApiResult};
use serde_json::{Map, Value as Json};

/// The md5 a `code` object claims for its package.
pub fn claimed_md5(code: &Map<String, Json>) -> ApiResult<Option<String>> {
    match code.get("md5sum") {
        None | Some(Json::Null) => Ok(None),
        Some(Json::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ApiError::bad_request(
            "Invalid input, code.md5sum must be a string.",
        )),
    }
}

/// The source a `code` object names.
pub fn source_of(code: &Map<String, Json>) -> ApiResult<CodeSource> {
    code.get("source")
        .and_then(Json::as_str)
        .and_then(CodeSource::parse)
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "Invalid code source specified, available sources: {}",
                CodeSource::ALL
            ))
        })
}

pub(super) fn check_swift(code: &Map<String, Json>) -> ApiResult<()> {
    let swift = code.get("swift").and_then(Json::as_object);
    let has = |k: &str| swift.and_then(|s| s.get(k)).is_some_and(|v| !v.is_null());
    if !has("container") || !has("object") {
        return Err(ApiError::bad_request(
            "Both container and object must be provided for swift type function.",
        ));
    }
    Err(ApiError::bad_request("Swift object not supported."))
}

pub(super) fn missing_package() -> ApiError {
    ApiError::bad_request("Package file is required for package type function.")
}
