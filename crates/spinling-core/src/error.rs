//! The one error type of the API. Every failure a handler can produce is an `ApiError`; the
//! edge turns it into a status code and a Qinling (WSME) error body, nowhere else.

use serde_json::json;
use std::fmt;
use std::sync::Arc;

/// What went wrong, as far as HTTP is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    Conflict,
    /// A client's precondition (`If-Match`, a version create's `md5sum`) does not hold.
    PreconditionFailed,
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
            ErrorKind::PreconditionFailed => 412,
            ErrorKind::PayloadTooLarge => 413,
            ErrorKind::Internal => 500,
            ErrorKind::ServiceUnavailable => 503,
        }
    }
}

#[derive(Debug, Clone)]
pub struct ApiError {
    pub kind: ErrorKind,
    /// What the client is told.
    pub message: String,
    /// What really went wrong, when the message hides it (a database failure behind a 500):
    /// for the log, never for the client.
    source: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

/// Two errors are the same answer when they tell the client the same; the cause is not part
/// of the answer.
impl PartialEq for ApiError {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind && self.message == other.message
    }
}

impl Eq for ApiError {}

impl ApiError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ApiError {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// The same answer, remembering its cause.
    pub fn caused_by(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Arc::new(source));
        self
    }

    /// One line for the log: the answer and, when there is one, its cause.
    pub fn log_line(&self) -> String {
        match &self.source {
            Some(source) => format!("{self} (caused by: {source})"),
            None => self.to_string(),
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
    pub fn precondition_failed(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::PreconditionFailed, message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }
    /// A variable the operator set that Spinling cannot use: a 500 that names it, for the
    /// operator to fix.
    pub fn configuration(problem: &str) -> Self {
        Self::internal(format!("Configuration error: {problem}"))
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

impl std::error::Error for ApiError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

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
    fn a_database_failure_is_a_generic_500_that_keeps_its_cause_for_the_log() {
        let error = ApiError::from(crate::store::db::DbError::from_sqlite_message(
            "disk I/O error",
        ));
        assert_eq!(error, ApiError::internal("Internal server error."));
        assert!(std::error::Error::source(&error).is_some());
        assert_eq!(
            error.log_line(),
            "500 Internal server error. (caused by: disk I/O error)"
        );
        assert!(!String::from_utf8(error.body()).unwrap().contains("disk"));
    }

    #[test]
    fn server_errors_have_faultcode_server() {
        let body: serde_json::Value =
            serde_json::from_slice(&ApiError::internal("boom").body()).unwrap();
        assert_eq!(body["faultcode"], "Server");
    }
}
