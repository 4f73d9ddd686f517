use serde_json::{json, Value as Json};
use spinling_api_tests::{example_package, wat_package, Api};
use std::time::{Duration, Instant};

fn execute(api: &Api, body: Json) -> Json {
    let reply = api.post_json("/v1/executions", &body);
    reply.assert_status(201);
    reply.json()
}

fn result(execution: &Json) -> Json {
    serde_json::from_str(
        execution["result"]
            .as_str()
            .expect("a finished execution has a result"),
    )
    .unwrap()
}

const LOOP: &str =
    r#"(module (memory (export "memory") 1) (func (export "_start") (loop (br 0))))"#;
const MEMORY_BOMB: &str = r#"(module (memory (export "memory") 1)
    (func (export "_start") (loop (drop (memory.grow (i32.const 16))) (br 0))))"#;

#[test]
fn a_sync_execution_runs_the_function_on_its_input() {
    let api = Api::start();
    let fid = api.create_wasm_function(&example_package("echo"), &[]);
    let execution = execute(
        &api,
        json!({"function_id": fid, "input": "{\"name\": \"Spin\"}"}),
    );
    assert_eq!(execution["status"], "success");
    assert_eq!(execution["sync"], true);
    assert_eq!(execution["input"], "{\"name\": \"Spin\"}");
    assert_eq!(
        result(&execution)["output"],
        json!({"greeting": "Hello, Spin!"})
    );
    assert!(result(&execution)["duration"].is_number());
    assert_eq!(api.get(&format!("/v1/functions/{fid}")).json()["count"], 1);
}

#[test]
fn the_log_is_what_the_function_wrote_to_stderr() {
    let api = Api::start();
    let fid = api.create_wasm_function(&example_package("echo"), &[]);
    let id = execute(
        &api,
        json!({"function_id": fid, "input": "{\"name\": \"x\"}"}),
    )["id"]
        .as_str()
        .unwrap()
        .to_string();
    let reply = api.get(&format!("/v1/executions/{id}/log"));
    reply.assert_status(200);
    assert!(reply
        .header("content-type")
        .unwrap()
        .starts_with("text/plain"));
    assert!(!reply.text().is_empty());
}

#[test]
fn a_non_zero_exit_is_failed() {
    let api = Api::start();
    let fid = api.create_wasm_function(&example_package("echo"), &[]);
    let execution = execute(&api, json!({"function_id": fid, "input": "not json"}));
    assert_eq!(execution["status"], "failed");
    assert_eq!(execution["input"], "not json");
}

#[test]
fn a_runaway_loop_ends_as_a_timeout() {
    let api = Api::start();
    let fid = api.create_wasm_function(&wat_package(LOOP), &[("timeout", "1")]);
    let started = Instant::now();
    let execution = execute(&api, json!({"function_id": fid}));
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(execution["status"], "failed");
    assert_eq!(result(&execution)["output"], "Function execution timeout.");
    // The app keeps serving.
    api.get("/v1/").assert_status(200);
}

#[test]
fn memory_exhaustion_ends_as_failed() {
    let api = Api::start();
    let fid = api.create_wasm_function(&wat_package(MEMORY_BOMB), &[]);
    let execution = execute(&api, json!({"function_id": fid}));
    assert_eq!(execution["status"], "failed");
    assert_eq!(
        result(&execution)["output"],
        "Function execution failed because of too much resource consumption"
    );
}

#[test]
fn a_missing_entry_is_failed_with_a_message() {
    let api = Api::start();
    let fid = api.create_wasm_function(&example_package("hello"), &[("entry", "nope.wasm")]);
    let execution = execute(&api, json!({"function_id": fid}));
    assert_eq!(execution["status"], "failed");
    assert!(
        result(&execution)["output"]
            .as_str()
            .unwrap()
            .contains("nope.wasm"),
        "{execution}"
    );
}

#[test]
fn an_async_execution_answers_running_and_finishes_by_itself() {
    let api = Api::start();
    let fid = api.create_wasm_function(&example_package("hello"), &[]);
    let execution = execute(&api, json!({"function_id": fid, "sync": false}));
    assert_eq!(execution["status"], "running");
    assert!(execution["result"].is_null());
    let id = execution["id"].as_str().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let now = api.get(&format!("/v1/executions/{id}")).json();
        if now["status"] != "running" {
            assert_eq!(now["status"], "success", "{now}");
            break;
        }
        assert!(Instant::now() < deadline, "still running: {now}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_version_runs_as_published_and_counts_on_the_version() {
    let api = Api::start();
    let fid = api.create_wasm_function(&example_package("hello"), &[]);
    api.publish(&fid).assert_status(201);
    api.update_package(&fid, &example_package("echo"))
        .assert_status(200);
    let v1 = execute(&api, json!({"function_id": fid, "function_version": 1}));
    assert_eq!(v1["status"], "success", "{v1}");
    assert_eq!(result(&v1)["output"], "Hello, Spinling!");
    let current = execute(
        &api,
        json!({"function_id": fid, "input": "{\"name\": \"now\"}"}),
    );
    assert_eq!(
        result(&current)["output"],
        json!({"greeting": "Hello, now!"})
    );
    assert_eq!(
        api.get(&format!("/v1/functions/{fid}/versions/1")).json()["count"],
        1
    );
    assert_eq!(api.get(&format!("/v1/functions/{fid}")).json()["count"], 1);
}

#[test]
fn a_version_shown_before_it_runs_shows_its_new_count_after() {
    let api = Api::start();
    let fid = api.create_wasm_function(&example_package("hello"), &[]);
    api.publish(&fid).assert_status(201);
    let version = format!("/v1/functions/{fid}/versions/1");
    let list = format!("/v1/functions/{fid}/versions");
    assert_eq!(api.get(&version).json()["count"], 0);
    assert_eq!(api.get(&list).json()["function_versions"][0]["count"], 0);
    execute(&api, json!({"function_id": fid, "function_version": 1}));
    assert_eq!(api.get(&version).json()["count"], 1);
    assert_eq!(api.get(&list).json()["function_versions"][0]["count"], 1);
}

#[test]
fn an_alias_resolves_when_the_execution_is_created() {
    let api = Api::start();
    let fid = api.create_wasm_function(&example_package("hello"), &[]);
    api.publish(&fid).assert_status(201);
    api.update_package(&fid, &example_package("echo"))
        .assert_status(200);
    api.publish(&fid).assert_status(201);
    api.post_json(
        "/v1/aliases",
        &json!({"name": "prod", "function_id": fid, "function_version": 1}),
    )
    .assert_status(201);
    let first = execute(
        &api,
        json!({"function_alias": "prod", "input": "{\"name\": \"a\"}"}),
    );
    assert_eq!(
        (
            first["function_version"].as_i64(),
            first["function_alias"].as_str()
        ),
        (Some(1), Some("prod"))
    );
    assert_eq!(result(&first)["output"], "Hello, Spinling!");
    api.put_json("/v1/aliases/prod", &json!({"function_version": 2}))
        .assert_status(200);
    let second = execute(
        &api,
        json!({"function_alias": "prod", "input": "{\"name\": \"b\"}"}),
    );
    assert_eq!(result(&second)["output"], json!({"greeting": "Hello, b!"}));
}

#[test]
fn executing_a_deleted_version_is_404() {
    let api = Api::start();
    let fid = api.create_wasm_function(&example_package("hello"), &[]);
    api.publish(&fid).assert_status(201);
    api.delete(&format!("/v1/functions/{fid}/versions/1"))
        .assert_status(204);
    api.post_json(
        "/v1/executions",
        &json!({"function_id": fid, "function_version": 1}),
    )
    .assert_error(
        404,
        &format!("FunctionVersion not found [function_id={fid}, version_number=1]"),
    );
}

#[test]
fn a_function_or_alias_is_required() {
    let api = Api::start();
    api.post_json("/v1/executions", &json!({"input": "x"}))
        .assert_error(
            400,
            "Either function_alias or function_id must be provided.",
        );
    api.post_json("/v1/executions", &json!({"function_alias": "nope"}))
        .assert_error(404, "FunctionAlias not found [name=nope]");
}

#[test]
fn executions_are_listed_filtered_shown_and_deleted() {
    let api = Api::start();
    let fid = api.create_wasm_function(&example_package("echo"), &[]);
    let ok = execute(&api, json!({"function_id": fid, "input": "{}"}));
    execute(&api, json!({"function_id": fid, "input": "bad"}));
    let list = api
        .get(&format!("/v1/executions?function_id={fid}&status=success"))
        .json();
    let listed = list["executions"].as_array().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["id"], ok["id"]);
    let id = ok["id"].as_str().unwrap();
    api.get(&format!("/v1/executions/{id}")).assert_status(200);
    api.delete(&format!("/v1/executions/{id}"))
        .assert_status(204);
    api.get(&format!("/v1/executions/{id}"))
        .assert_error(404, &format!("Execution not found [id={id}]"));
    api.get("/v1/executions?bogus=1")
        .assert_error(400, "Unknown argument: \"bogus\"");
}

#[test]
fn list_filters_take_qinling_operators() {
    let api = Api::start();
    let fid = api.create_wasm_function(&example_package("echo"), &[]);
    let nightly = execute(
        &api,
        json!({"function_id": fid, "input": "{}", "description": "nightly run"}),
    );
    let adhoc = execute(
        &api,
        json!({"function_id": fid, "input": "bad", "description": "adhoc"}),
    );
    assert_eq!(adhoc["status"], "failed", "{adhoc}");
    // Ids, sorted: two executions created within one second list in id order.
    let ids = |query: &str| -> Vec<String> {
        let reply = api.get(&format!("/v1/executions?{query}"));
        reply.assert_status(200);
        let list = reply.json()["executions"].as_array().unwrap().clone();
        let mut ids: Vec<String> = list.iter().map(|e| e["id"].to_string()).collect();
        ids.sort();
        ids
    };
    let (nightly, adhoc) = (nightly["id"].to_string(), adhoc["id"].to_string());
    let mut both = vec![nightly.clone(), adhoc.clone()];
    both.sort();
    assert_eq!(ids("status=in:success,failed"), both);
    assert_eq!(ids(&format!("function_id=eq:{fid}")), both);
    assert_eq!(ids("description=has:night"), vec![nightly]);
    assert_eq!(ids("status=neq:success"), vec![adhoc]);
    assert_eq!(ids("status=nin:success,failed"), Vec::<String>::new());
    assert_eq!(ids("description=has:%25"), Vec::<String>::new());
    assert_eq!(ids("status=bogus:success"), Vec::<String>::new());
}

/// Qinling refuses `function_version` here (spec §2.5); issue 10 asks for it as a filter.
#[test]
fn function_version_is_a_list_filter() {
    let api = Api::start();
    let fid = api.create_wasm_function(&example_package("hello"), &[]);
    api.publish(&fid).assert_status(201);
    let latest = execute(&api, json!({"function_id": fid}))["id"].clone();
    let v1 = execute(&api, json!({"function_id": fid, "function_version": 1}))["id"].clone();
    let ids = |query: &str| -> Vec<Json> {
        let reply = api.get(&format!("/v1/executions?{query}"));
        reply.assert_status(200);
        reply.json()["executions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].clone())
            .collect()
    };
    assert_eq!(ids("function_version=1"), vec![v1.clone()]);
    assert_eq!(ids("function_version=lt:1"), vec![latest]);
    assert_eq!(ids("function_version=gte:1"), vec![v1]);
}

#[test]
fn a_client_chosen_execution_id_is_kept_and_cannot_be_taken_twice() {
    let api = Api::start();
    let fid = api.create_wasm_function(&example_package("hello"), &[]);
    let id = "11111111-2222-4333-8444-aaaaaaaaaaaa";
    let execution = execute(&api, json!({"function_id": fid, "id": id}));
    assert_eq!(execution["id"], id);
    api.get(&format!("/v1/executions/{id}")).assert_status(200);
    api.post_json("/v1/executions", &json!({"function_id": fid, "id": id}))
        .assert_error(400, "Duplicate entry for Execution: ['id']");
    // The refused execution was not counted.
    assert_eq!(api.get(&format!("/v1/functions/{fid}")).json()["count"], 1);
}

#[test]
fn counting_an_execution_updates_what_it_counts_on() {
    let api = Api::start();
    let fid = api.create_wasm_function(&example_package("hello"), &[]);
    let function = format!("/v1/functions/{fid}");
    assert_eq!(api.get(&function).json()["updated_at"], Json::Null);
    execute(&api, json!({"function_id": fid}));
    assert!(api.get(&function).json()["updated_at"].is_string());
    api.publish(&fid).assert_status(201);
    let version = format!("/v1/functions/{fid}/versions/1");
    assert_eq!(api.get(&version).json()["updated_at"], Json::Null);
    execute(&api, json!({"function_id": fid, "function_version": 1}));
    assert!(api.get(&version).json()["updated_at"].is_string());
}

#[test]
fn input_that_is_not_an_object_is_kept_raw_and_empty_input_is_none() {
    let api = Api::start();
    let fid = api.create_wasm_function(&example_package("hello"), &[]);
    let list = execute(&api, json!({"function_id": fid, "input": "[1, 2]"}));
    assert_eq!(list["input"], "[1, 2]");
    let empty = execute(&api, json!({"function_id": fid, "input": ""}));
    assert!(empty["input"].is_null());
}

#[test]
fn detaching_a_version_drops_its_prepared_module_and_the_next_run_rebuilds_it() {
    let api = Api::start();
    let fid = api.create_wasm_function(&example_package("hello"), &[]);
    api.publish(&fid).assert_status(201);
    let key = format!("spinling:v1:prepared:{fid}:1");
    let run = |api: &Api| execute(api, json!({"function_id": fid, "function_version": 1}));
    assert_eq!(run(&api)["status"], "success");
    assert!(api.key_value_has(&key), "the module is kept after a run");
    api.request(
        "POST",
        &format!("/v1/functions/{fid}/versions/1/detach"),
        &[],
        vec![],
    )
    .assert_status(202);
    assert!(!api.key_value_has(&key), "detach drops it");
    assert_eq!(run(&api)["status"], "success");
    assert!(api.key_value_has(&key), "the next run prepares it again");
}

#[test]
fn a_changed_function_never_runs_its_old_prepared_module() {
    let api = Api::start();
    let fid = api.create_wasm_function(&example_package("hello"), &[]);
    assert_eq!(
        result(&execute(&api, json!({"function_id": fid})))["output"],
        "Hello, Spinling!"
    );
    api.update_package(&fid, &example_package("echo"))
        .assert_status(200);
    let after = execute(
        &api,
        json!({"function_id": fid, "input": "{\"name\": \"new\"}"}),
    );
    assert_eq!(result(&after)["output"], json!({"greeting": "Hello, new!"}));
}

#[test]
fn a_runaway_function_does_not_slow_other_requests() {
    let api = Api::start();
    let fid = api.create_wasm_function(&wat_package(LOOP), &[("timeout", "3")]);
    std::thread::scope(|s| {
        let runaway = s.spawn(|| execute(&api, json!({"function_id": fid})));
        std::thread::sleep(Duration::from_millis(300));
        let started = Instant::now();
        api.get("/v1/runtimes").assert_status(200);
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "took {:?}",
            started.elapsed()
        );
        assert_eq!(runaway.join().unwrap()["status"], "failed");
    });
}

#[test]
fn an_execution_left_running_past_its_timeout_and_grace_is_failed() {
    let api = Api::start();
    let fid = api.create_wasm_function(&example_package("hello"), &[("timeout", "2")]);
    let id = execute(&api, json!({"function_id": fid}))["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (fresh, stale) = (
        execute(&api, json!({"function_id": fid}))["id"]
            .as_str()
            .unwrap()
            .to_string(),
        id,
    );
    // What an instance that died mid-run leaves behind: a `running` row and no result. One
    // died 63 s ago (past 2 s + 60 s of grace), the other just now.
    let staged = |id: &str, age: i64| {
        api.query_database(&format!(
            "UPDATE executions SET status = 'running', result = NULL, created_at = '{}'
             WHERE id = '{id}'",
            spinling_api_tests::timestamp_in(-age)
        ));
    };
    staged(&stale, 63);
    staged(&fresh, 0);

    let shown = api.get(&format!("/v1/executions/{stale}")).json();
    assert_eq!(shown["status"], "failed", "{shown}");
    assert!(
        result(&shown)["output"]
            .as_str()
            .unwrap()
            .contains("did not finish"),
        "{shown}"
    );
    assert_eq!(
        api.query_database(&format!(
            "SELECT status FROM executions WHERE id = '{stale}'"
        )),
        ["failed"]
    );
    let listed = api.get("/v1/executions").json();
    let status_of = |id: &str| {
        listed["executions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["id"] == id)
            .map(|e| e["status"].clone())
    };
    assert_eq!(status_of(&stale), Some(json!("failed")));
    assert_eq!(status_of(&fresh), Some(json!("running")));
}
