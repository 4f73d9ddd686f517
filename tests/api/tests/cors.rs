//! CORS as oslo.middleware with Qinling's defaults: preflights are answered by every component
//! before anything else, and every answer to an allowed origin says so.
//!
//! In auth mode `none` CORS is off unless `cors_allowed_origins` is set (tests/api/tests/
//! laptop.rs), so the tests in that mode set it; in auth mode `keystone` it defaults to `*`.

use spinling_api_tests::{Api, Reply};

const ORIGIN: &str = "https://dashboard.example.org";

/// Auth mode `none` with CORS open to any origin, and `variables`.
fn start_with_any_origin(variables: &[(&str, &str)]) -> Api {
    let mut all = vec![("cors_allowed_origins", "*")];
    all.extend_from_slice(variables);
    Api::start_with(&all)
}

/// Auth mode `keystone` with an Identity that never answers: enough for preflights, which
/// need no token.
fn start_keystone_with(variables: &[(&str, &str)]) -> Api {
    let mut all = vec![
        ("auth_mode", "keystone"),
        ("keystone_url", "http://127.0.0.1:9/v3"),
        ("keystone_service_user", "spinling"),
        ("keystone_service_password", "secret"),
        ("keystone_service_project", "service"),
    ];
    all.extend_from_slice(variables);
    Api::start_with(&all)
}

fn preflight(api: &Api, path: &str, origin: &str, method: &str, headers: &str) -> Reply {
    api.request(
        "OPTIONS",
        path,
        &[
            ("origin", origin),
            ("access-control-request-method", method),
            ("access-control-request-headers", headers),
        ],
        Vec::new(),
    )
}

fn get_from(api: &Api, path: &str, origin: &str) -> Reply {
    api.request("GET", path, &[("origin", origin)], Vec::new())
}

#[track_caller]
fn assert_granted(reply: &Reply) {
    reply.assert_status(200);
    assert_eq!(
        reply.header("access-control-allow-origin").as_deref(),
        Some(ORIGIN)
    );
    assert_eq!(
        reply.header("access-control-allow-methods").as_deref(),
        Some("GET, PUT, POST, DELETE, PATCH")
    );
    let allowed = reply.header("access-control-allow-headers").unwrap();
    for header in [
        "X-Auth-Token",
        "X-Project-Id",
        "Content-Type",
        "If-Match",
        "If-None-Match",
    ] {
        assert!(allowed.contains(header), "{allowed}");
    }
    assert_eq!(
        reply.header("access-control-max-age").as_deref(),
        Some("3600")
    );
    assert_eq!(reply.header("vary").as_deref(), Some("Origin"));
    assert_eq!(reply.header("access-control-allow-credentials"), None);
}

#[track_caller]
fn assert_cors_response(reply: &Reply) {
    assert_eq!(
        reply.header("access-control-allow-origin").as_deref(),
        Some(ORIGIN),
        "{} {}",
        reply.status,
        reply.text()
    );
    assert_eq!(
        reply.header("access-control-expose-headers").as_deref(),
        Some("X-Auth-Token, X-Subject-Token, X-Service-Token, X-Project-Id, X-User-Name, X-Project-Name, ETag")
    );
    assert_eq!(reply.header("vary").as_deref(), Some("Origin"));
    assert_eq!(reply.header("access-control-allow-credentials"), None);
}

#[test]
fn a_preflight_from_an_allowed_origin_is_answered_without_a_token() {
    let api = Api::start_with(&[
        ("auth_mode", "keystone"),
        // Nothing listens there: a preflight must not need Identity at all.
        ("keystone_url", "http://127.0.0.1:9/v3"),
        ("keystone_service_user", "spinling"),
        ("keystone_service_password", "secret"),
        ("keystone_service_project", "service"),
    ]);
    let reply = preflight(
        &api,
        "/v1/functions",
        ORIGIN,
        "POST",
        "X-Auth-Token, Content-Type",
    );
    assert_granted(&reply);
    assert!(reply.body.is_empty());
    assert_ne!(api.get("/v1/functions").status, 200);
}

#[test]
fn every_component_and_unknown_paths_answer_preflights() {
    let api = start_with_any_origin(&[]);
    let id = "0d2a8e6c-3e51-4f5a-8c3e-111111111111";
    for path in [
        "/".to_string(),
        "/v1/".to_string(),
        "/v1/runtimes".to_string(),
        format!("/v1/runtimes/{id}"),
        format!("/v1/functions/{id}"),
        format!("/v1/functions/{id}/versions/1"),
        "/v1/aliases/prod".to_string(),
        format!("/v1/executions/{id}/log"),
        "/v2/nowhere".to_string(),
    ] {
        let reply = preflight(&api, &path, ORIGIN, "DELETE", "x-auth-token");
        assert_granted(&reply);
    }
}

#[test]
fn a_preflight_with_a_body_over_the_limit_is_answered_without_reading_it() {
    let api = start_with_any_origin(&[("max_request_body", "100")]);
    let reply = api.request(
        "OPTIONS",
        "/v1/aliases",
        &[
            ("origin", ORIGIN),
            ("access-control-request-method", "POST"),
            ("content-length", "5000"),
        ],
        vec![b'x'; 5000],
    );
    assert_granted(&reply);
}

#[test]
fn a_preflight_from_an_origin_not_allowed_gets_no_permission() {
    // In auth mode `none` another site's page is refused outright (laptop.rs).
    let api = start_keystone_with(&[("cors_allowed_origins", ORIGIN)]);
    let reply = preflight(&api, "/v1/runtimes", "https://evil.example", "GET", "");
    reply.assert_status(200);
    assert_eq!(reply.header("access-control-allow-origin"), None);
    assert_eq!(reply.header("access-control-allow-methods"), None);
}

#[test]
fn a_preflight_for_a_method_not_allowed_gets_no_permission() {
    let api = start_with_any_origin(&[]);
    let reply = preflight(&api, "/v1/runtimes", ORIGIN, "TRACE", "");
    reply.assert_status(200);
    assert_eq!(reply.header("access-control-allow-origin"), None);
}

#[test]
fn a_preflight_for_a_header_not_allowed_gets_no_permission() {
    let api = start_with_any_origin(&[]);
    let reply = preflight(
        &api,
        "/v1/runtimes",
        ORIGIN,
        "GET",
        "X-Auth-Token, X-Not-Allowed",
    );
    reply.assert_status(200);
    assert_eq!(reply.header("access-control-allow-origin"), None);
}

#[test]
fn an_options_request_without_cors_headers_is_not_a_preflight() {
    let api = Api::start();
    api.request("OPTIONS", "/v1/runtimes", &[], Vec::new())
        .assert_error(405, "Method not allowed.");
}

#[test]
fn responses_to_an_allowed_origin_say_so() {
    let api = start_with_any_origin(&[]);
    let reply = get_from(&api, "/v1/runtimes", ORIGIN);
    reply.assert_status(200);
    assert_cors_response(&reply);
}

#[test]
fn errors_to_an_allowed_origin_say_so_too() {
    let api = start_with_any_origin(&[("max_request_body", "100")]);
    let not_found = get_from(&api, "/v2/nowhere", ORIGIN);
    not_found.assert_error(404, "The resource could not be found.");
    assert_cors_response(&not_found);
    let bad = api.request(
        "POST",
        "/v1/runtimes",
        &[("origin", ORIGIN), ("content-type", "application/json")],
        b"{".to_vec(),
    );
    bad.assert_error(400, "Request is not in valid JSON format");
    assert_cors_response(&bad);
    let too_large = api.request(
        "POST",
        "/v1/runtimes",
        &[("origin", ORIGIN), ("content-length", "5000")],
        vec![b' '; 5000],
    );
    too_large.assert_error(413, "Request body exceeds the maximum of 100 bytes.");
    assert_cors_response(&too_large);
}

#[test]
fn a_configured_origin_list_allows_only_its_origins() {
    let api = Api::start_with(&[(
        "cors_allowed_origins",
        "http://localhost:8080, https://dashboard.example.org",
    )]);
    assert_cors_response(&get_from(&api, "/v1/runtimes", ORIGIN));
    let other = get_from(&api, "/v1/runtimes", "https://evil.example");
    // Auth mode `none`: another site's page is refused (laptop.rs), with no CORS headers.
    other.assert_status(403);
    assert_eq!(other.header("access-control-allow-origin"), None);
    assert_eq!(other.header("access-control-expose-headers"), None);
}

#[test]
fn cors_allowed_origins_off_turns_cors_off() {
    // The origin's host is allowed, so that its page is served at all in auth mode `none`.
    let api = Api::start_with(&[
        ("cors_allowed_origins", "off"),
        ("allowed_hosts", "dashboard.example.org"),
    ]);
    let reply = preflight(&api, "/v1/runtimes", ORIGIN, "GET", "");
    reply.assert_error(405, "Method not allowed.");
    assert_eq!(reply.header("access-control-allow-origin"), None);
    let reply = get_from(&api, "/v1/runtimes", ORIGIN);
    reply.assert_status(200);
    assert_eq!(reply.header("access-control-allow-origin"), None);
    assert_eq!(reply.header("vary"), None);
}
