//! `/v1/admin/export` and `/v1/admin/import`: the whole database as one archive, and back
//! into an empty one (see `store::backup`). Admins only.

use super::Env;
use crate::error::{ApiError, ApiResult};
use crate::store::backup::{self, Export};
use crate::web::http::{ApiRequest, ApiResponse};
use serde_json::json;

/// Only an admin may copy every project's data out or in (in auth mode `none` no policy is
/// enforced, as for the other admin routes), and a member learns nothing else first.
pub fn handle(env: &Env, request: &ApiRequest, path: &[&str]) -> ApiResult<ApiResponse> {
    match (request.method.as_str(), path) {
        ("GET", ["v1", "admin", "export"]) => {
            env.caller.require_admin()?;
            request.only_query_params(&[])?;
            Ok(ApiResponse::archive(Export::new()))
        }
        ("POST", ["v1", "admin", "import"]) => {
            env.caller.require_admin()?;
            request.only_query_params(&[])?;
            let mut archive = match env.take_body_stream() {
                Some(stream) => stream,
                // A body the adapter read whole (a test's, or a small one).
                None => Box::new(std::io::Cursor::new(request.body.clone())),
            };
            let imported = backup::import(env.db, &mut archive)?;
            Ok(ApiResponse::created(&json!({
                "rows": imported.rows,
                "packages": imported.packages,
                "chunks": imported.chunks,
            })))
        }
        (_, ["v1", "admin", "export" | "import"]) => Err(ApiError::method_not_allowed()),
        _ => Err(ApiError::path_not_found()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::context::Caller;
    use crate::domain::runtimes::WorkerProbe;
    use crate::domain::workers::{Executor, Job, WorkerFailure, WorkerReply};
    use crate::store::cache::NoCache;
    use crate::store::db::testing::TestDb;
    use crate::web::config::Variables;

    struct Nothing;
    impl WorkerProbe for Nothing {
        fn is_up(&self, _: &str) -> bool {
            false
        }
    }
    impl Executor for Nothing {
        fn execute(&self, _: &Job, _: &str) -> Result<WorkerReply, WorkerFailure> {
            unreachable!("nothing runs here")
        }
    }

    fn answer(caller: Caller, method: &str, path: &str, body: &[u8]) -> ApiResponse {
        let db = TestDb::in_memory();
        crate::store::migrations::migrate(&db).unwrap();
        let env = Env {
            db: &db,
            cache: &NoCache,
            caller,
            settings: Default::default(),
            variables: &Variables::new(&[], &|_| None),
            workers: &Nothing,
            executor: &Nothing,
            service_token: &|| Ok(None),
            deferred: Default::default(),
            body_stream: Default::default(),
        };
        let request = ApiRequest::new(method, &format!("http://h{path}"), vec![], body.to_vec());
        super::super::respond(handle, &env, &request)
    }

    fn member() -> Caller {
        Caller {
            is_admin: false,
            policy_enforced: true,
            ..Caller::unauthenticated(false)
        }
    }

    #[test]
    fn only_an_admin_may_export_or_import() {
        for (method, path) in [("GET", "/v1/admin/export"), ("POST", "/v1/admin/import")] {
            let refused = answer(member(), method, path, b"");
            assert_eq!(refused.status, 403, "{method} {path}");
            let admin = Caller {
                is_admin: true,
                ..member()
            };
            assert_ne!(
                answer(admin, method, path, b"").status,
                403,
                "{method} {path}"
            );
        }
    }

    #[test]
    fn without_a_policy_anyone_may_export() {
        let response = answer(
            Caller::unauthenticated(false),
            "GET",
            "/v1/admin/export",
            b"",
        );
        assert_eq!(response.status, 200);
        assert!(matches!(response.body, crate::web::http::Body::Archive(_)));
    }

    #[test]
    fn an_empty_body_is_refused_as_an_empty_archive() {
        let response = answer(
            Caller::unauthenticated(false),
            "POST",
            "/v1/admin/import",
            b"",
        );
        assert_eq!(response.status, 400);
        let body = String::from_utf8(match response.body {
            crate::web::http::Body::Bytes(b) => b,
            _ => unreachable!(),
        })
        .unwrap();
        assert!(
            body.contains("Invalid backup archive: it is empty."),
            "{body}"
        );
    }
}
