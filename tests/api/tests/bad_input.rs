//! Hostile and careless input never produces a 5xx, and every error is a Qinling JSON body.

use serde_json::json;
use spinling_api_tests::{package, Api};

#[test]
fn garbage_bodies_on_every_write_route_are_client_errors() {
    let api = Api::start();
    let runtime = api.create_runtime();
    let fid = api.create_function_id(&runtime, &package("a"));
    api.publish(&fid).assert_status(201);
    api.post_json("/v1/aliases", &json!({"name": "x", "function_id": fid}))
        .assert_status(201);

    let routes = [
        ("POST", "/v1/runtimes".to_string()),
        ("PUT", format!("/v1/runtimes/{runtime}")),
        ("POST", "/v1/functions".to_string()),
        ("PUT", format!("/v1/functions/{fid}")),
        ("POST", format!("/v1/functions/{fid}/versions")),
        ("POST", "/v1/aliases".to_string()),
        ("PUT", "/v1/aliases/x".to_string()),
    ];
    let bodies: [(&str, &[u8]); 9] = [
        ("application/json", b"{"),
        ("application/json", b"[1, 2]"),
        ("application/json", b"\"str\""),
        ("application/json", b"null"),
        (
            "application/json",
            b"{\"name\": {\"deep\": [1]}, \"cpu\": [], \"timeout\": {}}",
        ),
        ("application/json", b"\xff\xfe\x00garbage"),
        ("multipart/form-data; boundary=zz", b"--zz\r\nbroken"),
        ("multipart/form-data", b"no boundary"),
        ("application/x-www-form-urlencoded", b"code=%ZZ&cpu=%FF%FF"),
    ];
    for (method, path) in &routes {
        for (content_type, body) in &bodies {
            let reply = api.request(
                method,
                path,
                &[("content-type", content_type)],
                body.to_vec(),
            );
            assert!(
                (400..500).contains(&reply.status),
                "{method} {path} with {content_type} {:?}: {} {}",
                String::from_utf8_lossy(body),
                reply.status,
                reply.text()
            );
            assert_eq!(reply.json()["faultcode"], "Client", "{method} {path}");
        }
    }
}

#[test]
fn wrong_types_and_absurd_numbers_are_bad_requests() {
    let api = Api::start();
    let runtime = api.create_runtime();
    let cases = [
        json!({"code": {"source": "package"}, "runtime_id": runtime, "cpu": 1e300}),
        json!({"code": {"source": "package"}, "runtime_id": runtime, "memory_size": -99999999999999i64}),
        json!({"code": {"source": "package"}, "runtime_id": runtime, "timeout": "9".repeat(40)}),
        json!({"code": {"source": "image", "image": 7}}),
        json!({"code": [1, 2]}),
        json!({"code": {"source": "image", "image": "a"}, "name": "x".repeat(300)}),
        json!({"code": {"source": "image", "image": "a"}, "name": 12}),
        json!({"code": {"source": "package"}, "runtime_id": {"id": 1}}),
    ];
    for body in cases {
        let reply = api.post_json("/v1/functions", &body);
        assert_eq!(reply.status, 400, "{body}: {}", reply.text());
    }
}

#[test]
fn over_long_strings_are_refused_everywhere() {
    let api = Api::start();
    let long = "x".repeat(256);
    api.post_json(
        "/v1/runtimes",
        &json!({"image": "spinling/wasm", "name": long}),
    )
    .assert_status(400);
    api.post_json(
        "/v1/aliases",
        &json!({"name": long, "function_id": "0d2a8e6c-3e51-4f5a-8c3e-111111111111"}),
    )
    .assert_status(400);
}

#[test]
fn an_oversized_json_body_is_refused() {
    let api = Api::start();
    let huge = format!("{{\"description\": \"{}\"}}", "x".repeat(2 * 1024 * 1024));
    let reply = api.post_raw("/v1/aliases", "application/json", huge.as_bytes());
    assert_eq!(reply.status, 413, "{}", reply.text());
}

/// A function form whose multipart boundary is `boundary`.
fn form_with_boundary(boundary: &str) -> (String, Vec<u8>) {
    let body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"code\"\r\n\r\n\
         {{\"source\": \"image\", \"image\": \"alpine\"}}\r\n--{boundary}--\r\n"
    );
    (
        format!("multipart/form-data; boundary={boundary}"),
        body.into_bytes(),
    )
}

#[test]
fn a_multipart_boundary_over_70_characters_is_refused() {
    let api = Api::start();
    let (content_type, body) = form_with_boundary(&"b".repeat(71));
    api.post_raw("/v1/functions", &content_type, &body)
        .assert_error(
            400,
            "Multipart boundary is 71 characters long; at most 70 are allowed.",
        );
    let (content_type, body) = form_with_boundary(&"b".repeat(70));
    api.post_raw("/v1/functions", &content_type, &body)
        .assert_status(201);
}
