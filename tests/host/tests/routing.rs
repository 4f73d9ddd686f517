//! Routing and Spin's request headers, through the real echo component.

use crate::common;

use common::{get, json, request};

/// `(name, value)` of each `:name` segment a route captured.
type Captures = &'static [(&'static str, &'static str)];

/// (path, matched route, path info, named captures) for paths the fixture routes.
const ROUTED: &[(&str, &str, &str, Captures)] = &[
    ("/", "", "", &[]),
    ("/v1", "/v1", "", &[]),
    ("/v1/", "/v1", "", &[]),
    ("/v1/other", "/v1/...", "/other", &[]),
    ("/echo", "/echo/...", "", &[]),
    ("/echo/", "/echo/...", "/", &[]),
    ("/echo/a/b/", "/echo/...", "/a/b/", &[]),
    (
        "/v1/functions/f-1",
        "/v1/functions/:function_id",
        "",
        &[("function_id", "f-1")],
    ),
    (
        "/v1/functions/f-1/versions",
        "/v1/functions/:function_id/versions/...",
        "",
        &[("function_id", "f-1")],
    ),
    (
        "/v1/functions/f-1/versions/7/x",
        "/v1/functions/:function_id/versions/...",
        "/7/x",
        &[("function_id", "f-1")],
    ),
    (
        "/v1/functions/special/versions/7",
        "/v1/functions/special/versions/:version",
        "",
        &[("version", "7")],
    ),
    (
        "/v1/functions/f-1/aliases",
        "/v1/...",
        "/functions/f-1/aliases",
        &[],
    ),
];

#[test]
fn each_routing_rule_holds_for_real_requests() {
    let state = tempfile::tempdir().unwrap();
    let app = common::load(state.path());

    for (path, matched, path_info, named) in ROUTED {
        let response = get(&app, path);
        assert_eq!(response.status(), 200, "{path}");
        let headers = &json(&response)["headers"];
        assert_eq!(headers["spin-matched-route"], *matched, "{path}");
        assert_eq!(headers["spin-path-info"], *path_info, "{path}");
        for (name, value) in *named {
            assert_eq!(headers[format!("spin-path-match-{name}")], *value, "{path}");
        }
    }
}

#[test]
fn an_unmatched_path_is_a_plain_404() {
    let state = tempfile::tempdir().unwrap();
    let app = common::load(state.path());

    for path in ["/nothing", "/echoes", "/v2"] {
        let response = get(&app, path);
        assert_eq!(response.status(), 404, "{path}");
        assert!(response.body().is_empty(), "{path}");
    }
}

#[test]
fn a_private_component_is_not_routable_from_outside() {
    let state = tempfile::tempdir().unwrap();
    let app = common::load(state.path());

    assert!(app
        .app()
        .routes()
        .iter()
        .all(|(component, _)| component != "private"));
    assert_eq!(get(&app, "/private").status(), 404);
}

#[test]
fn the_component_sees_spin_headers_for_the_url_the_client_used() {
    let state = tempfile::tempdir().unwrap();
    let app = common::load(state.path());

    let with_host = http::Request::builder()
        .uri("/echo/x?a=1&b=2")
        .header("host", "api.example.test:8080")
        .body(Vec::new())
        .unwrap();
    let headers = json(&app.send(with_host))["headers"].clone();
    let defaulted = json(&app.send(request("GET", "/echo/x", "")))["headers"].clone();

    assert_eq!(
        headers["spin-full-url"],
        "http://api.example.test:8080/echo/x?a=1&b=2"
    );
    assert_eq!(headers["spin-base-path"], "/");
    assert_eq!(headers["spin-raw-component-route"], "/echo/...");
    assert_eq!(headers["spin-component-route"], "/echo");
    assert_eq!(headers["spin-client-addr"], "127.0.0.1:0");
    assert_eq!(defaulted["spin-full-url"], "http://127.0.0.1:3000/echo/x");
}

#[test]
fn the_client_address_is_the_peer_of_the_socket() {
    let state = tempfile::tempdir().unwrap();
    let app = common::load(state.path());
    let addr = app.serve_in_background();

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (_, body) = runtime.block_on(common::get_over_socket(addr, "/echo/peer"));
    let report: serde_json::Value = serde_json::from_slice(&body).unwrap();

    let client = report["headers"]["spin-client-addr"].as_str().unwrap();
    assert!(
        client.starts_with("127.0.0.1:") && !client.ends_with(":0"),
        "{client}"
    );
    assert_eq!(
        report["headers"]["spin-full-url"],
        format!("http://{addr}/echo/peer")
    );
}
