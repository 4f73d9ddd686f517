//! Safe by default on a laptop: in auth mode `none` (no token protects the API) a web page of
//! another site cannot drive it, neither by DNS rebinding (a foreign `Host`) nor by a
//! cross-site request (a foreign `Origin`), and no client header decides the URLs the API
//! hands out.

use serde_json::json;
use spinling_api_tests::{Api, Reply};

/// A request with exactly these headers: no default `Host` is added.
fn send(api: &Api, method: &str, path: &str, headers: &[(&str, &str)]) -> Reply {
    let mut builder = http::Request::builder().method(method).uri(path);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let body = match method {
        "POST" => json!({"image": "spinling/wasm"}).to_string().into_bytes(),
        _ => Vec::new(),
    };
    if method == "POST" {
        builder = builder.header("content-type", "application/json");
    }
    api.send(builder.body(body).unwrap())
}

fn get_as(api: &Api, host: &str) -> Reply {
    send(api, "GET", "/v1/runtimes", &[("host", host)])
}

#[track_caller]
fn assert_no_cors_headers(reply: &Reply) {
    for name in [
        "access-control-allow-origin",
        "access-control-allow-methods",
        "access-control-expose-headers",
        "vary",
    ] {
        assert_eq!(reply.header(name), None, "{name}");
    }
}

#[test]
fn a_foreign_host_is_refused_in_none_mode() {
    let api = Api::start();
    get_as(&api, "evil.example:3000").assert_error(
        403,
        "Host 'evil.example:3000' is not allowed. Set the Spin variable allowed_hosts (or public_url) to serve it.",
    );
}

#[test]
fn by_default_only_loopback_hosts_are_served() {
    let api = Api::start();
    for host in [
        "localhost",
        "localhost:3000",
        "127.0.0.1:3000",
        "127.8.9.10:8080",
        "[::1]:3000",
    ] {
        get_as(&api, host).assert_status(200);
    }
    for host in ["192.168.1.20:3000", "localhost.evil.example", "[::2]:3000"] {
        get_as(&api, host).assert_status(403);
    }
}

#[test]
fn a_configured_allowed_host_is_served() {
    let api = Api::start_with(&[("allowed_hosts", "faas.lan, *.example.org")]);
    get_as(&api, "faas.lan:3000").assert_status(200);
    get_as(&api, "api.example.org").assert_status(200);
    get_as(&api, "example.org").assert_status(403);
}

#[test]
fn public_url_s_host_is_served_and_named_in_links() {
    let api = Api::start_with(&[("public_url", "https://faas.example.org")]);
    let reply = send(&api, "GET", "/", &[("host", "faas.example.org")]);
    reply.assert_status(200);
    assert_eq!(
        reply.json()["versions"][0]["links"][0]["href"],
        "https://faas.example.org/v1"
    );
}

#[test]
fn a_cross_site_origin_is_refused_in_none_mode_without_cors_headers() {
    let api = Api::start();
    let reply = send(
        &api,
        "POST",
        "/v1/runtimes",
        &[
            ("host", "127.0.0.1:3000"),
            ("origin", "https://evil.example"),
        ],
    );
    reply.assert_error(
        403,
        "Origin 'https://evil.example' is not allowed. Set the Spin variable cors_allowed_origins (or allowed_hosts) to accept requests from its pages.",
    );
    assert_no_cors_headers(&reply);
    assert_eq!(api.get("/v1/runtimes").json()["runtimes"], json!([]));
}

#[test]
fn a_preflight_from_another_site_gets_no_cors_headers_by_default() {
    let api = Api::start();
    let reply = send(
        &api,
        "OPTIONS",
        "/v1/runtimes",
        &[
            ("host", "127.0.0.1:3000"),
            ("origin", "https://evil.example"),
            ("access-control-request-method", "POST"),
        ],
    );
    reply.assert_status(403);
    assert_no_cors_headers(&reply);
}

#[test]
fn by_default_only_pages_of_loopback_hosts_may_call() {
    let api = Api::start();
    let from = |origin: &str| {
        send(
            &api,
            "POST",
            "/v1/runtimes",
            &[("host", "localhost:3000"), ("origin", origin)],
        )
    };
    for origin in ["http://localhost:3000", "http://127.0.0.1:8080"] {
        from(origin).assert_status(201);
    }
    for origin in [
        "null",
        "http://192.168.1.20:3000",
        "https://localhost.evil.example",
    ] {
        from(origin).assert_status(403);
    }
}

#[test]
fn a_client_sent_spin_full_url_does_not_change_the_links() {
    let api = Api::start();
    let reply = send(
        &api,
        "GET",
        "/",
        &[
            ("host", "127.0.0.1:3000"),
            ("spin-full-url", "http://evil.example:666/"),
        ],
    );
    reply.assert_status(200);
    assert_eq!(
        reply.json()["versions"][0]["links"][0]["href"],
        "http://127.0.0.1:3000/v1"
    );
}

#[test]
fn a_client_sent_spin_full_url_does_not_change_the_path() {
    let api = Api::start();
    let reply = send(
        &api,
        "GET",
        "/v1/runtimes",
        &[
            ("host", "127.0.0.1:3000"),
            ("spin-full-url", "http://127.0.0.1:3000/v2/nowhere"),
        ],
    );
    reply.assert_status(200);
    assert_eq!(reply.json()["runtimes"], json!([]));
}
