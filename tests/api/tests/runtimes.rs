use serde_json::json;
use spinling_api_tests::Api;
use std::io::{Read, Write};
use std::net::TcpListener;

/// A one-route worker on loopback: answers `GET /ping` with `status`, for `hits` requests.
fn fake_worker(status: u16, hits: usize) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    std::thread::spawn(move || {
        for stream in listener.incoming().take(hits) {
            let mut stream = stream.unwrap();
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let _ = write!(
                stream,
                "HTTP/1.1 {status} X\r\ncontent-length: 4\r\nconnection: close\r\n\r\npong"
            );
        }
    });
    url
}

#[test]
fn the_builtin_wasm_runtime_is_available_at_once() {
    let api = Api::start();
    let reply = api.post_json(
        "/v1/runtimes",
        &json!({"image": "spinling/wasm", "name": "wasm", "description": "d"}),
    );
    reply.assert_status(201);
    let runtime = reply.json();
    assert_eq!(runtime["status"], "available");
    assert_eq!(runtime["image"], "spinling/wasm");
    assert_eq!(runtime["is_public"], true);
    assert_eq!(runtime["trusted"], true);
    assert_eq!(runtime["project_id"], "default");
    assert!(runtime["updated_at"].is_null());
    let created = runtime["created_at"].as_str().unwrap();
    assert_eq!(created.len(), 20);
    assert!(created.ends_with('Z') && created.as_bytes()[10] == b'T');
}

#[test]
fn a_worker_runtime_is_available_when_its_ping_answers() {
    let api = Api::start();
    let url = fake_worker(200, 1);
    let reply = api.post_json("/v1/runtimes", &json!({"image": url}));
    reply.assert_status(201);
    assert_eq!(reply.json()["status"], "available");
}

#[test]
fn a_worker_runtime_whose_ping_fails_is_in_error() {
    let api = Api::start();
    let url = fake_worker(500, 1);
    let reply = api.post_json("/v1/runtimes", &json!({"image": url}));
    reply.assert_status(201);
    assert_eq!(reply.json()["status"], "error");
}

#[test]
fn a_worker_on_a_host_that_is_not_allowed_is_refused() {
    let api = Api::start_with(&[("worker_hosts", "workers.example.org")]);
    let reply = api.post_json("/v1/runtimes", &json!({"image": "http://127.0.0.1:9"}));
    reply.assert_error(
        400,
        "Runtime worker host 127.0.0.1 is not allowed; allowed hosts: workers.example.org.",
    );
}

#[test]
fn an_image_that_is_neither_builtin_nor_a_url_is_refused() {
    let api = Api::start();
    let reply = api.post_json(
        "/v1/runtimes",
        &json!({"image": "openstackqinling/python3-runtime"}),
    );
    assert_eq!(reply.status, 400);
}

#[test]
fn image_is_required() {
    let api = Api::start();
    api.post_json("/v1/runtimes", &json!({"name": "x"}))
        .assert_error(400, "Required param is missing. Required: {'image'}");
}

#[test]
fn status_cannot_be_set_and_unknown_attributes_are_refused() {
    let api = Api::start();
    api.post_json(
        "/v1/runtimes",
        &json!({"image": "spinling/wasm", "status": "available"}),
    )
    .assert_error(
        400,
        "Invalid input for field/attribute status. Value: 'available'. Cannot set read only field.",
    );
    api.post_json("/v1/runtimes", &json!({"image": "spinling/wasm", "foo": 1}))
        .assert_error(400, "Unknown attribute for argument runtime: foo");
}

#[test]
fn runtimes_are_listed_wrapped_shown_updated_and_deleted() {
    let api = Api::start();
    let id = api.create_runtime();
    let list = api.get("/v1/runtimes").json();
    assert_eq!(list["runtimes"].as_array().unwrap().len(), 1);
    assert_eq!(list["runtimes"][0]["id"], id.as_str());
    assert_eq!(
        api.get(&format!("/v1/runtimes/{id}")).json()["id"],
        id.as_str()
    );

    let updated = api.put_json(&format!("/v1/runtimes/{id}"), &json!({"name": "renamed"}));
    updated.assert_status(200);
    assert_eq!(updated.json()["name"], "renamed");
    assert!(updated.json()["updated_at"].is_string());

    api.delete(&format!("/v1/runtimes/{id}")).assert_status(204);
    api.get(&format!("/v1/runtimes/{id}"))
        .assert_error(404, &format!("Runtime not found [id={id}]"));
}

#[test]
fn a_runtime_in_use_cannot_be_deleted() {
    let api = Api::start();
    let id = api.create_runtime();
    api.create_function(&id, &spinling_api_tests::package("a"));
    api.delete(&format!("/v1/runtimes/{id}"))
        .assert_error(403, &format!("Runtime {id} is still in use."));
}

#[test]
fn a_runtime_id_that_is_not_a_uuid_is_a_bad_request() {
    let api = Api::start();
    api.get("/v1/runtimes/nope").assert_error(
        400,
        "Invalid input for field/attribute id. Value: 'nope'. Expected a uuid but received nope.",
    );
}

#[test]
fn showing_a_runtime_execution_or_alias_takes_no_query_parameters() {
    let api = Api::start();
    let runtime = api.create_runtime();
    api.get(&format!("/v1/runtimes/{runtime}?foo=1"))
        .assert_error(400, "Unknown argument: \"foo\"");
    api.get("/v1/executions/0d2a8e6c-3e51-4f5a-8c3e-111111111111?foo=1")
        .assert_error(400, "Unknown argument: \"foo\"");
    api.get("/v1/aliases/prod?foo=1")
        .assert_error(400, "Unknown argument: \"foo\"");
}

#[test]
fn runtime_list_takes_no_query_parameters() {
    let api = Api::start();
    api.get("/v1/runtimes?foo=1")
        .assert_error(400, "Unknown argument: \"foo\"");
}
