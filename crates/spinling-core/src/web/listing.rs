//! What a list request asks for: its page (`?limit=`, `?marker=`), the projects it covers
//! (`?all_projects=`, `?project_id=`), and the link to its next page.

use crate::domain::context::{Caller, ListScope};
use crate::error::{ApiError, ApiResult};
use crate::store::filters::Page;
use crate::web::http::{parse_bool, ApiRequest};

/// `?limit=` and `?marker=` of a list request: the limit clamped to the deployment's maximum
/// page size, which is also the default.
pub fn page_of_request(request: &ApiRequest, max_page_size: usize) -> ApiResult<Page> {
    let limit = match request.query_param("limit") {
        None => max_page_size,
        // Digits only, not all zeros: any larger number is simply clamped.
        Some(v) => Some(v)
            .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
            .filter(|v| v.bytes().any(|b| b != b'0'))
            .map(|v| v.parse::<usize>().unwrap_or(usize::MAX).min(max_page_size))
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "Invalid input for field/attribute limit. Value: '{v}'. Wrong type. Expected a positive integer."
                ))
            })?,
    };
    Ok(Page {
        limit: limit.max(1),
        marker: request.query_param("marker").map(str::to_string),
    })
}

/// The absolute URL of the page after `marker`: the request's own path and query, with
/// `marker` set, under `base_url` (the public URL, or the one the client used).
pub fn next_link(request: &ApiRequest, base_url: &str, marker: &str) -> String {
    let query: Vec<String> = request
        .query
        .iter()
        .filter(|(k, _)| k != "marker")
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .chain(std::iter::once(("marker", marker)))
        .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
        .collect();
    format!(
        "{}{}?{}",
        base_url.trim_end_matches('/'),
        request.path,
        query.join("&")
    )
}

/// `text` with every byte but RFC 3986's unreserved characters percent-encoded.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Which projects a list shows, after Qinling's `get_project_params` rules (with
/// `all_projects` parsed as a real boolean).
pub fn list_scope_of_request(caller: &Caller, request: &ApiRequest) -> ApiResult<ListScope> {
    let mut all_projects = match request.query_param("all_projects") {
        None => false,
        Some(v) => parse_bool(v).ok_or_else(|| {
            ApiError::bad_request(format!(
                "Invalid input for field/attribute all_projects. Value: '{v}'. Wrong type. Expected a boolean."
            ))
        })?,
    };
    let mut project = caller.project_id.clone();
    if let Some(requested) = request.query_param("project_id") {
        if caller.is_admin {
            all_projects = true;
            project = requested.to_string();
        }
    }
    if all_projects {
        caller.require_admin()?;
        if request.query_param("project_id").is_some() && caller.is_admin {
            return Ok(ListScope::Project(project));
        }
        return Ok(ListScope::AllProjects);
    }
    Ok(ListScope::Project(project))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(url: &str) -> ApiRequest {
        ApiRequest::new("GET", url, vec![], vec![])
    }

    #[test]
    fn a_limit_is_clamped_to_the_maximum_page_size_which_is_also_the_default() {
        let page = |url| page_of_request(&request(url), 50).unwrap();
        assert_eq!(page("http://h/v1/functions").limit, 50);
        assert_eq!(page("http://h/v1/functions?limit=7").limit, 7);
        assert_eq!(
            page("http://h/v1/functions?limit=99999999999999999999").limit,
            50
        );
        for bad in ["0", "-3", "x", ""] {
            let err =
                page_of_request(&request(&format!("http://h/x?limit={bad}")), 50).unwrap_err();
            assert_eq!(err.status(), 400);
        }
    }

    #[test]
    fn a_next_link_keeps_the_query_and_replaces_the_marker() {
        let r = request("http://client/v1/executions?status=has:%25x&marker=old&limit=2");
        assert_eq!(
            next_link(&r, "https://faas.example.org/", "a b"),
            "https://faas.example.org/v1/executions?status=has%3A%25x&limit=2&marker=a%20b"
        );
    }

    use crate::testing::member_of_p1 as user;

    #[test]
    fn all_projects_false_means_false() {
        let scope =
            list_scope_of_request(&user(true), &request("http://h/x?all_projects=false")).unwrap();
        assert_eq!(scope, ListScope::Project("p1".into()));
    }

    #[test]
    fn all_projects_is_admin_only_when_policy_is_enforced() {
        let err = list_scope_of_request(&user(true), &request("http://h/x?all_projects=true"))
            .unwrap_err();
        assert_eq!(err.status(), 403);
        assert_eq!(err.message, "Operation not allowed");
    }

    #[test]
    fn without_policy_all_projects_is_allowed() {
        let scope =
            list_scope_of_request(&user(false), &request("http://h/x?all_projects=1")).unwrap();
        assert_eq!(scope, ListScope::AllProjects);
    }

    #[test]
    fn a_normal_user_cannot_list_another_project_by_id() {
        let scope =
            list_scope_of_request(&user(true), &request("http://h/x?project_id=p2")).unwrap();
        assert_eq!(scope, ListScope::Project("p1".into()));
    }

    #[test]
    fn an_admin_may_list_one_other_project() {
        let admin = Caller {
            is_admin: true,
            ..user(true)
        };
        let scope = list_scope_of_request(&admin, &request("http://h/x?project_id=p2")).unwrap();
        assert_eq!(scope, ListScope::Project("p2".into()));
    }

    #[test]
    fn a_garbage_boolean_is_a_bad_request() {
        let err = list_scope_of_request(&user(false), &request("http://h/x?all_projects=perhaps"))
            .unwrap_err();
        assert_eq!(err.status(), 400);
    }
}
