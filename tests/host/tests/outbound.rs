//! Outbound HTTP: the allow-list, service chaining to private components, `self`, and real
//! HTTP to allowed hosts.

use crate::common;

use common::{get, json};

#[test]
fn an_undeclared_outbound_host_is_refused() {
    let state = tempfile::tempdir().unwrap();
    let app = common::load(state.path());

    let report = json(&get(&app, "/outbound?url=http://example.com/"));

    assert_eq!(report["error"], "Http(ErrorCode::HttpRequestDenied)");
}

#[test]
fn a_component_without_allowed_hosts_cannot_chain_or_call_out() {
    let state = tempfile::tempdir().unwrap();
    let app = common::load(state.path());

    for url in [
        "http://private.spin.internal/",
        "http://self/echo",
        "http://127.0.0.1:9/",
    ] {
        let report = json(&get(&app, &format!("/outbound-none?url={url}")));
        assert_eq!(
            report["error"], "Http(ErrorCode::HttpRequestDenied)",
            "{url}"
        );
    }
}

#[test]
fn a_spin_internal_call_reaches_a_private_component() {
    let state = tempfile::tempdir().unwrap();
    let app = common::load(state.path());

    let report = json(&get(
        &app,
        "/outbound?url=http://private.spin.internal/some/path?q=1",
    ));

    assert_eq!(report["status"], 200, "{report}");
    let echoed: serde_json::Value = serde_json::from_str(report["body"].as_str().unwrap()).unwrap();
    // Spin routes a chained request as if the target were mounted at `/...`.
    assert_eq!(echoed["path_with_query"], "/some/path?q=1");
    assert_eq!(echoed["headers"]["spin-matched-route"], "/...");
    assert_eq!(echoed["headers"]["spin-path-info"], "/some/path");
    assert_eq!(
        echoed["headers"]["spin-full-url"],
        "http://private.spin.internal/some/path?q=1"
    );
}

#[test]
fn a_self_call_goes_through_the_router() {
    let state = tempfile::tempdir().unwrap();
    let app = common::load(state.path());

    let report = json(&get(&app, "/outbound?url=http://self/v1/functions/f-9"));

    let echoed: serde_json::Value = serde_json::from_str(report["body"].as_str().unwrap()).unwrap();
    assert_eq!(
        echoed["headers"]["spin-matched-route"],
        "/v1/functions/:function_id"
    );
    assert_eq!(echoed["headers"]["spin-path-match-function_id"], "f-9");
}

#[test]
fn an_allowed_loopback_host_is_reached_over_real_http() {
    let state = tempfile::tempdir().unwrap();
    let app = common::load(state.path());
    let addr = app.serve_in_background();

    let report = json(&get(
        &app,
        &format!(
            "/outbound?url=http://127.0.0.1:{}/echo/over-the-wire",
            addr.port()
        ),
    ));

    assert_eq!(report["status"], 200, "{report}");
    let echoed: serde_json::Value = serde_json::from_str(report["body"].as_str().unwrap()).unwrap();
    assert_eq!(echoed["headers"]["spin-path-info"], "/over-the-wire");
}

#[test]
fn an_allowed_host_that_is_down_is_a_connection_error_not_a_trap() {
    let state = tempfile::tempdir().unwrap();
    let app = common::load(state.path());
    let unused_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();

    let report = json(&get(
        &app,
        &format!("/outbound?url=http://127.0.0.1:{unused_port}/"),
    ));

    assert!(
        report["error"]
            .as_str()
            .unwrap()
            .contains("ConnectionRefused"),
        "{report}"
    );
}
