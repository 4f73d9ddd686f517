//! The one error type of the API. Every failure a handler can produce is an `ApiError`; the
//! edge turns it into a status code and a Qinling (WSME) error body, nowhere else.

use serde_json::json;
use std::fmt;

/// What went wrong, as far as HTTP is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    Conflict,
    PayloadTooLarge,
    Internal,
    /// A service this API depends on (OpenStack Identity) cannot answer.
    ServiceUnavailable,
}

impl ErrorKind {
    pub fn status(self) -> u16 {
        match self {
            ErrorKind::BadRequest => 400,
            ErrorKind::Unauthorized => 401,
            ErrorKind::Forbidden => 403,
            ErrorKind::NotFound => 404,
            ErrorKind::MethodNotAllowed => 405,
            ErrorKind::Conflict => 409,
            ErrorKind::PayloadTooLarge => 413,
            ErrorKind::Internal => 500,
            ErrorKind::ServiceUnavailable => 503,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub kind: ErrorKind,
    pub message: String,
}

impl ApiError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ApiError {
            kind,
            message: message.into(),
        }
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::BadRequest, message)
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Forbidden, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Conflict, message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }
    /// The policy refusal Qinling gives for admin-only operations.
    pub fn not_allowed() -> Self {
        Self::forbidden("Operation not allowed")
    }
    pub fn method_not_allowed() -> Self {
        Self::new(ErrorKind::MethodNotAllowed, "Method not allowed.")
    }
    pub fn path_not_found() -> Self {
        Self::not_found("The resource could not be found.")
    }

    pub fn status(&self) -> u16 {
        self.kind.status()
    }

    /// `{"faultcode": "Client"|"Server", "faultstring": ..., "debuginfo": null}`.
    pub fn body(&self) -> Vec<u8> {
        let faultcode = if self.status() >= 500 {
            "Server"
        } else {
            "Client"
        };
        serde_json::to_vec(&json!({
            "faultcode": faultcode,
            "faultstring": self.message,
            "debuginfo": null,
        }))
        .expect("an error body always serialises")
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.status(), self.message)
    }
}

impl std::error::Error for ApiError {}

pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_errors_have_faultcode_client_and_null_debuginfo() {
        let body: serde_json::Value =
            serde_json::from_slice(&ApiError::not_found("Function not found [id=x]").body())
                .unwrap();
        assert_eq!(
            body,
            json!({"faultcode": "Client", "faultstring": "Function not found [id=x]", "debuginfo": null})
        );
    }

    #[test]
    fn server_errors_have_faultcode_server() {
        let body: serde_json::Value =
            serde_json::from_slice(&ApiError::internal("boom").body()).unwrap();
        assert_eq!(body["faultcode"], "Server");
    }
}
