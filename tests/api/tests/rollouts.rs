//! Progressive delivery (issue 25): rollouts that promote or roll back by themselves, sticky
//! routing keys, alias history and per-version numbers. Decisions are driven by
//! `POST /v1/jobs/tick` with short steps (the app's own scheduler loop may decide first:
//! either way each decision is taken once).

use serde_json::{json, Value as Json};
use spinling_api_tests::{wat_package, Api};
use std::time::{Duration, Instant};

/// Exits 0: a healthy version.
const SUCCEEDS: &str = r#"(module (memory (export "memory") 1) (func (export "_start")))"#;
/// The same, with another body: a different package.
const SUCCEEDS_TOO: &str = r#"(module (memory (export "memory") 1) (func (export "_start") nop))"#;
/// Traps: a version whose every execution fails.
const FAILS: &str = r#"(module (memory (export "memory") 1) (func (export "_start") unreachable))"#;

/// A function with version 1 (`first`) and version 2 (`second`), and alias `prod` at 1.
fn function_with_two_versions(api: &Api, first: &str, second: &str) -> String {
    let fid = api.create_wasm_function(&wat_package(first), &[]);
    api.publish(&fid).assert_status(201);
    api.update_package(&fid, &wat_package(second))
        .assert_status(200);
    api.publish(&fid).assert_status(201);
    api.post_json(
        "/v1/aliases",
        &json!({"name": "prod", "function_id": fid, "function_version": 1}),
    )
    .assert_status(201);
    fid
}

fn start_rollout(api: &Api, body: Json) -> Json {
    let reply = api.post_json("/v1/aliases/prod/rollout", &body);
    reply.assert_status(201);
    reply.json()
}

fn rollout(api: &Api) -> Json {
    let reply = api.get("/v1/aliases/prod/rollout");
    reply.assert_status(200);
    reply.json()
}

fn tick(api: &Api) -> Json {
    let reply = api.post_json("/v1/jobs/tick", &json!({}));
    reply.assert_status(200);
    reply.json()
}

/// A sync execution through `prod`, with a routing key if given.
fn execute(api: &Api, key: Option<&str>) -> Json {
    let mut body = json!({"function_alias": "prod"});
    if let Some(key) = key {
        body["routing_key"] = json!(key);
    }
    let reply = api.post_json("/v1/executions", &body);
    reply.assert_status(201);
    reply.json()
}

fn causes(api: &Api) -> Vec<String> {
    let reply = api.get("/v1/aliases/prod/history");
    reply.assert_status(200);
    reply.json()["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["cause"].as_str().unwrap().to_string())
        .collect()
}

/// Ticks until the rollout is in `status` at `step`, or panics after `wait`.
fn tick_until(api: &Api, status: &str, step: i64, wait: Duration) -> Json {
    let deadline = Instant::now() + wait;
    loop {
        tick(api);
        let shown = rollout(api);
        if shown["status"] == status && shown["step"] == step {
            return shown;
        }
        assert!(
            Instant::now() < deadline,
            "not yet {status} {step}: {shown}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn a_rollout_to_a_failing_version_rolls_back_after_enough_executions_and_not_before() {
    let api = Api::start();
    let fid = function_with_two_versions(&api, SUCCEEDS, FAILS);
    // All failures trip a limit of 0.5 at the 4th execution: 3/3 has a Wilson lower bound of
    // 0.44, 4/4 of 0.51.
    let started = start_rollout(
        &api,
        json!({"to_version": 2, "steps": [99], "step_seconds": 3600,
               "max_failure_rate": 0.5, "min_executions": 50}),
    );
    assert_eq!(started["status"], "running");
    assert_eq!(started["weight"], 99.0);
    assert_eq!(
        api.get("/v1/aliases/prod").json()["routing"],
        json!({"2": 0.99})
    );
    let mut canary_failures = 0;
    while canary_failures < 3 {
        let e = execute(&api, None);
        if e["function_version"] == 2 {
            assert_eq!(e["status"], "failed", "{e}");
            canary_failures += 1;
        }
    }
    tick(&api);
    let shown = rollout(&api);
    assert_eq!(
        shown["status"], "running",
        "3 failures are not enough: {shown}"
    );
    assert_eq!(shown["current_step"]["canary"]["failures"], 3);
    assert!(
        shown["next"].as_str().unwrap().contains("ends in"),
        "{shown}"
    );
    // The fourth failure trips the rule, long before the step's hour is over.
    loop {
        if execute(&api, None)["function_version"] == 2 {
            break;
        }
    }
    let shown = tick_until(&api, "rolled_back", 1, Duration::from_secs(10));
    let reason = shown["reason"].as_str().unwrap();
    assert!(reason.contains("failed 4 of 4"), "{reason}");
    let alias = api.get("/v1/aliases/prod").json();
    assert_eq!(
        (alias["function_version"].clone(), alias["routing"].clone()),
        (json!(1), json!({}))
    );
    assert_eq!(causes(&api), ["created", "rollout_started", "rollback"]);
    let history = api.get("/v1/aliases/prod/history").json()["history"].clone();
    assert_eq!(history[2]["reason"], reason);
    assert_eq!(history[2]["before"]["routing"], json!({"2": 0.99}));
    // After a rollback every execution runs the stable version.
    assert_eq!(execute(&api, None)["function_version"], 1);
    // Versions are deletable again once the rollout ended.
    api.delete(&format!("/v1/functions/{fid}/versions/2"))
        .assert_status(204);
}

#[test]
fn a_healthy_rollout_promotes_through_every_step() {
    let api = Api::start();
    function_with_two_versions(&api, SUCCEEDS, SUCCEEDS_TOO);
    start_rollout(
        &api,
        json!({"to_version": 2, "steps": [10, 50], "step_seconds": 1,
               "max_failure_rate": 0.05, "min_executions": 2}),
    );
    // Traffic, with a fresh key each time, and a tick after each execution (the app's own
    // scheduler loop may decide first): every step must be seen, in order.
    let mut seen: Vec<(String, i64)> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(90);
    for key in 0.. {
        let e = execute(&api, Some(&format!("user-{key}")));
        assert_eq!(e["status"], "success", "{e}");
        tick(&api);
        let shown = rollout(&api);
        let now = (
            shown["status"].as_str().unwrap().to_string(),
            shown["step"].as_i64().unwrap(),
        );
        if seen.last() != Some(&now) {
            seen.push(now.clone());
        }
        if now.0 != "running" {
            break;
        }
        assert!(Instant::now() < deadline, "not promoted: {shown}");
    }
    assert_eq!(
        seen,
        [
            ("running".to_string(), 1),
            ("running".to_string(), 2),
            ("promoted".to_string(), 2)
        ]
    );
    let alias = api.get("/v1/aliases/prod").json();
    assert_eq!(
        (alias["function_version"].clone(), alias["routing"].clone()),
        (json!(2), json!({}))
    );
    assert_eq!(
        causes(&api),
        ["created", "rollout_started", "rollout_step", "promotion"]
    );
    let shown = rollout(&api);
    assert_eq!(shown["weight"], 100.0);
    assert!(shown["reason"]
        .as_str()
        .unwrap()
        .contains("now points at version 2"));
}

#[test]
fn a_rollout_is_aborted_and_locks_its_alias_and_versions_while_it_runs() {
    let api = Api::start();
    let fid = function_with_two_versions(&api, SUCCEEDS, SUCCEEDS_TOO);
    api.get("/v1/aliases/prod/rollout")
        .assert_error(404, "Rollout not found [alias=prod]");
    start_rollout(
        &api,
        json!({"to_version": 2, "steps": [25], "step_seconds": 3600}),
    );
    api.post_json("/v1/aliases/prod/rollout", &json!({"to_version": 2}))
        .assert_error(409, "FunctionAlias prod already has a running rollout.");
    let locked = "FunctionAlias prod has a running rollout; abort it first (DELETE /v1/aliases/prod/rollout).";
    api.put_json("/v1/aliases/prod", &json!({"function_version": 2}))
        .assert_error(409, locked);
    api.delete("/v1/aliases/prod").assert_error(409, locked);
    for n in [1, 2] {
        api.delete(&format!("/v1/functions/{fid}/versions/{n}"))
            .assert_status(403);
    }
    let aborted = api.delete("/v1/aliases/prod/rollout");
    aborted.assert_status(200);
    assert_eq!(aborted.json()["status"], "aborted");
    let alias = api.get("/v1/aliases/prod").json();
    assert_eq!(
        (alias["function_version"].clone(), alias["routing"].clone()),
        (json!(1), json!({}))
    );
    api.delete("/v1/aliases/prod/rollout").assert_error(
        409,
        "The rollout of FunctionAlias prod is not running (it is aborted).",
    );
    assert_eq!(causes(&api), ["created", "rollout_started", "abort"]);
    // The alias is free again.
    api.put_json("/v1/aliases/prod", &json!({"description": "free"}))
        .assert_status(200);
}

#[test]
fn a_rollout_request_is_checked() {
    let api = Api::start();
    function_with_two_versions(&api, SUCCEEDS, SUCCEEDS_TOO);
    api.post_json("/v1/aliases/nope/rollout", &json!({"to_version": 2}))
        .assert_error(404, "FunctionAlias not found [name=nope]");
    let reply = api.post_json(
        "/v1/aliases/prod/rollout",
        &json!({"to_version": 2, "steps": [50, 10]}),
    );
    reply.assert_status(400);
    assert!(reply.json()["faultstring"]
        .as_str()
        .unwrap()
        .starts_with("Invalid input for field/attribute steps."));
    api.post_json("/v1/aliases/prod/rollout", &json!({}))
        .assert_error(400, "Required param is missing. Required: {'to_version'}");
    api.post_json("/v1/aliases/prod/rollout", &json!({"to_version": 1}))
        .assert_error(400, "FunctionAlias prod already points at version 1.");
    assert_eq!(
        api.post_json("/v1/aliases/prod/rollout", &json!({"to_version": 9}))
            .status,
        404
    );
    api.put_json("/v1/aliases/prod", &json!({"routing": {"2": 0.5}}))
        .assert_status(200);
    api.post_json("/v1/aliases/prod/rollout", &json!({"to_version": 2}))
        .assert_error(
            409,
            "FunctionAlias prod already splits its traffic; clear its routing before a rollout.",
        );
}

#[test]
fn a_routing_key_always_runs_the_same_version_and_keys_spread() {
    let api = Api::start();
    function_with_two_versions(&api, SUCCEEDS, SUCCEEDS_TOO);
    api.put_json("/v1/aliases/prod", &json!({"routing": {"2": 0.5}}))
        .assert_status(200);
    let mut seen = std::collections::BTreeSet::new();
    for i in 0..16 {
        let key = format!("customer-{i}");
        let first = execute(&api, Some(&key))["function_version"].clone();
        for _ in 0..2 {
            assert_eq!(
                execute(&api, Some(&key))["function_version"],
                first,
                "{key}"
            );
        }
        seen.insert(first.as_i64().unwrap());
    }
    assert_eq!(
        seen.into_iter().collect::<Vec<_>>(),
        [1, 2],
        "keys spread by the weights"
    );
    // A webhook invoke carries it in a header.
    let webhook = api.post_json("/v1/webhooks", &json!({"function_alias": "prod"}));
    webhook.assert_status(201);
    let id = webhook.json()["id"].as_str().unwrap().to_string();
    let versions: Vec<Json> = (0..3)
        .map(|_| {
            let invoked = api.request(
                "POST",
                &format!("/v1/webhooks/{id}/invoke"),
                &[
                    ("content-type", "application/json"),
                    ("x-routing-key", "customer-3"),
                ],
                b"{}".to_vec(),
            );
            invoked.assert_status(202);
            let execution = invoked.json()["execution_id"].as_str().unwrap().to_string();
            api.get(&format!("/v1/executions/{execution}")).json()["function_version"].clone()
        })
        .collect();
    let direct = execute(&api, Some("customer-3"))["function_version"].clone();
    assert!(
        versions.iter().all(|v| *v == direct),
        "{versions:?} {direct}"
    );
    let reply = api.post_json(
        "/v1/executions",
        &json!({"function_alias": "prod", "routing_key": "x".repeat(256)}),
    );
    reply.assert_status(400);
}

#[test]
fn every_change_of_an_alias_is_in_its_paged_history() {
    let api = Api::start();
    function_with_two_versions(&api, SUCCEEDS, SUCCEEDS_TOO);
    // In auth mode `none` no token names a user: one a client claims is not recorded.
    api.request(
        "PUT",
        "/v1/aliases/prod",
        &[
            ("content-type", "application/json"),
            ("x-user-id", "mallory"),
        ],
        json!({"function_version": 2}).to_string().into_bytes(),
    )
    .assert_status(200);
    // A description alone changes neither version nor routing: no entry.
    api.put_json("/v1/aliases/prod", &json!({"description": "x"}))
        .assert_status(200);
    api.put_json("/v1/aliases/prod", &json!({"routing": {"1": 0.2}}))
        .assert_status(200);
    assert_eq!(causes(&api), ["created", "request", "request"]);
    let first = api.get("/v1/aliases/prod/history?limit=2").json();
    assert_eq!(first["history"].as_array().unwrap().len(), 2);
    let change = &first["history"][1];
    assert_eq!(change["before"]["function_version"], 1);
    assert_eq!(change["after"]["function_version"], 2);
    assert_eq!(change["project_id"], "default");
    assert!(change["user_id"].is_null(), "{change}");
    assert!(change["created_at"].as_str().unwrap().ends_with('Z'));
    let marker = first["history"][1]["id"].as_str().unwrap();
    let rest = api
        .get(&format!("/v1/aliases/prod/history?limit=2&marker={marker}"))
        .json();
    assert_eq!(rest["history"][0]["after"]["routing"], json!({"1": 0.2}));
    assert!(first["next"].is_string());
    api.get("/v1/aliases/nope/history")
        .assert_error(404, "FunctionAlias not found [name=nope]");
}

#[test]
fn a_functions_stats_give_each_versions_numbers() {
    let api = Api::start();
    let fid = function_with_two_versions(&api, SUCCEEDS, FAILS);
    for n in [1, 1, 1, 2, 2] {
        let reply = api.post_json(
            "/v1/executions",
            &json!({"function_id": fid, "function_version": n}),
        );
        reply.assert_status(201);
    }
    let reply = api.get(&format!(
        "/v1/functions/{fid}/stats?since=2000-01-01T00:00:00Z"
    ));
    reply.assert_status(200);
    let stats = reply.json();
    let versions = stats["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 2, "{stats}");
    assert_eq!(
        (
            versions[0]["function_version"].clone(),
            versions[0]["executions"].clone(),
            versions[0]["failures"].clone()
        ),
        (json!(1), json!(3), json!(0))
    );
    assert_eq!(
        (
            versions[1]["function_version"].clone(),
            versions[1]["executions"].clone(),
            versions[1]["failures"].clone()
        ),
        (json!(2), json!(2), json!(2))
    );
    assert!(versions[0]["duration"]["p50"].is_number(), "{stats}");
    api.get(&format!("/v1/functions/{fid}/stats?since=soon"))
        .assert_error(400, "Unknown string format: soon");
}
