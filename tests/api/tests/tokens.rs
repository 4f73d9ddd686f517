//! No caller chooses where Spinling's tokens go (issue 22, item 1): in every auth mode a
//! request's `Host` must be one the deployment serves, since without `public_url` it is the
//! URL an external worker downloads a package from, with a token; and the scheduler's loop
//! keeps no caller's URL at all.

#[allow(unused_imports)]
use serde_json::json;
use spinling_api_tests::{Api, Reply};
use std::time::{Duration, Instant};

const WEBHOOK: &str = "0d2a8e6c-3e51-4f5a-8c3e-111111111111";

/// Keystone mode with an Identity endpoint that is never reached by these tests.
fn keystone_app(extra: &[(&str, &str)]) -> Api {
    let mut variables = vec![
        ("auth_mode", "keystone"),
        ("keystone_url", "http://127.0.0.1:9/v3"),
        ("keystone_service_user", "spinling"),
        ("keystone_service_password", "secret"),
        ("keystone_service_project", "service"),
    ];
    variables.extend_from_slice(extra);
    Api::start_with(&variables)
}

/// `POST <path>` with an empty JSON body, addressed to this `Host`.
fn post_as(api: &Api, host: &str, path: &str) -> Reply {
    let request = http::Request::post(path)
        .header("host", host)
        .header("content-type", "application/json")
        .body(b"{}".to_vec())
        .unwrap();
    api.send(request)
}

#[test]
fn in_keystone_mode_a_foreign_host_is_refused_before_an_invoke_runs() {
    let api = keystone_app(&[]);
    let reply = post_as(
        &api,
        "attacker.example:9999",
        &format!("/v1/webhooks/{WEBHOOK}/invoke"),
    );
    assert_eq!(reply.status, 403, "{}", reply.text());
    let message = reply.json()["faultstring"].as_str().unwrap().to_string();
    assert_eq!(
        message,
        "Host 'attacker.example:9999' is not allowed. Set the Spin variable allowed_hosts (or public_url) to serve it."
    );
}

#[test]
fn in_keystone_mode_loopback_allowed_hosts_and_public_url_s_host_are_served() {
    let api = keystone_app(&[
        ("allowed_hosts", "faas.lan"),
        ("public_url", "https://faas.example.org"),
    ]);
    let path = format!("/v1/webhooks/{WEBHOOK}/invoke");
    for host in [
        "127.0.0.1:3000",
        "localhost",
        "faas.lan:8080",
        "faas.example.org",
    ] {
        // Served: the invoke finds no such webhook.
        assert_eq!(post_as(&api, host, &path).status, 404, "{host}");
    }
    assert_eq!(post_as(&api, "faas.lan.evil.example", &path).status, 403);
}

/// A job on an external worker, fired by the loop with `public_url` unset: the loop keeps no
/// caller's URL to give the worker, so the run fails saying so (it used to send the URL of
/// whichever request started the loop).
#[test]
fn the_loop_gives_a_worker_no_caller_s_url() {
    let api = Api::start();
    // A worker that answers: the run must fail before it is asked anything but its ping.
    let worker = spinling_api_tests::fake_worker(br#"{"output": "ran"}"#.to_vec());
    let runtime = api.post_json("/v1/runtimes", &json!({"image": worker, "name": "fake"}));
    runtime.assert_status(201);
    let runtime = runtime.json()["id"].as_str().unwrap().to_string();
    let package = spinling_api_tests::zip_of(&[("main.py", b"def main(**kw):\n    return 1\n")]);
    let fid = api.create_function_id(&runtime, &package);
    let job = api.post_json(
        "/v1/jobs",
        &json!({"function_id": fid, "pattern": "* * * * *", "count": 1}),
    );
    job.assert_status(201);
    let job = job.json()["id"].as_str().unwrap().to_string();
    api.query_database(&format!(
        "UPDATE jobs SET next_execution_time = '2000-01-01T00:00:00Z' WHERE id = '{job}'"
    ));
    let deadline = Instant::now() + Duration::from_secs(30);
    let execution = loop {
        let list = api
            .get(&format!("/v1/executions?description=has:{job}"))
            .json();
        let executions = list["executions"].as_array().unwrap().clone();
        if let Some(e) = executions.iter().find(|e| e["status"] != "running") {
            break e.clone();
        }
        assert!(Instant::now() < deadline, "not yet: {list}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(execution["status"], "failed", "{execution}");
    let result: serde_json::Value =
        serde_json::from_str(execution["result"].as_str().unwrap()).unwrap();
    assert_eq!(
        result["output"],
        "No URL to give the worker for the package: a job's run keeps no caller's URL. Set the Spin variable public_url."
    );
}
