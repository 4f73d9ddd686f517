use serde_json::json;
use spinling_api_tests::{example_package, package, Api};

fn function_with_version(api: &Api) -> String {
    let runtime = api.create_runtime();
    let fid = api.create_function_id(&runtime, &package("a"));
    api.publish(&fid).assert_status(201);
    fid
}

#[test]
fn an_alias_is_created_listed_shown_updated_and_deleted() {
    let api = Api::start();
    let fid = function_with_version(&api);
    let reply = api.post_json(
        "/v1/aliases",
        &json!({"name": "prod", "function_id": fid, "function_version": 1, "description": "live"}),
    );
    reply.assert_status(201);
    let alias = reply.json();
    assert_eq!(
        (alias["name"].as_str(), alias["function_version"].as_i64()),
        (Some("prod"), Some(1))
    );
    assert_eq!(alias["id"].as_str().unwrap().len(), 36);

    let list = api.get("/v1/aliases").json();
    assert_eq!(list["function_aliases"][0]["name"], "prod");
    assert_eq!(
        api.get("/v1/aliases/prod").json()["function_id"],
        fid.as_str()
    );

    let updated = api.put_json(
        "/v1/aliases/prod",
        &json!({"function_version": 0, "description": null}),
    );
    updated.assert_status(200);
    assert_eq!(updated.json()["function_version"], 0);
    assert_eq!(updated.json()["description"], "live");

    api.delete("/v1/aliases/prod").assert_status(204);
    api.get("/v1/aliases/prod")
        .assert_error(404, "FunctionAlias not found [name=prod]");
}

#[test]
fn name_and_function_id_are_required() {
    let api = Api::start();
    api.post_json("/v1/aliases", &json!({"description": "x"}))
        .assert_error(
            400,
            "Required param is missing. Required: {'name', 'function_id'}",
        );
}

#[test]
fn an_alias_must_point_at_an_existing_function() {
    let api = Api::start();
    let missing = "0d2a8e6c-3e51-4f5a-8c3e-111111111111";
    api.post_json("/v1/aliases", &json!({"name": "a", "function_id": missing}))
        .assert_error(404, &format!("Function not found [id={missing}]"));
}

#[test]
fn an_alias_must_point_at_an_existing_version() {
    let api = Api::start();
    let fid = function_with_version(&api);
    api.post_json(
        "/v1/aliases",
        &json!({"name": "a", "function_id": fid, "function_version": 2}),
    )
    .assert_error(
        404,
        &format!("FunctionVersion not found [function_id={fid}, version_number=2]"),
    );
    api.post_json("/v1/aliases", &json!({"name": "a", "function_id": fid}))
        .assert_status(201);
    api.put_json("/v1/aliases/a", &json!({"function_version": 9}))
        .assert_status(404);
}

#[test]
fn alias_names_are_unique_and_a_version_has_one_alias() {
    let api = Api::start();
    let fid = function_with_version(&api);
    api.post_json("/v1/aliases", &json!({"name": "a", "function_id": fid}))
        .assert_status(201);
    api.post_json(
        "/v1/aliases",
        &json!({"name": "a", "function_id": fid, "function_version": 1}),
    )
    .assert_error(
        400,
        "Duplicate entry for function_aliases: ['project_id', 'name']",
    );
    api.post_json("/v1/aliases", &json!({"name": "b", "function_id": fid}))
        .assert_error(400, "Duplicate entry for function_aliases: ['project_id', 'function_id', 'function_version']");
}

#[test]
fn a_function_id_that_is_not_a_uuid_is_a_bad_request() {
    let api = Api::start();
    api.post_json("/v1/aliases", &json!({"name": "a", "function_id": "nope"})).assert_error(
        400,
        "Invalid input for field/attribute function_id. Value: 'nope'. Expected a uuid but received nope.",
    );
    api.post_json("/v1/aliases", &json!({"name": "a", "function_id": 5}))
        .assert_status(400);
    api.post_json(
        "/v1/aliases",
        &json!({"name": "a", "function_version": -1, "function_id": "x"}),
    )
    .assert_status(400);
}

#[test]
fn an_unknown_alias_is_404() {
    let api = Api::start();
    api.get("/v1/aliases/nope")
        .assert_error(404, "FunctionAlias not found [name=nope]");
    api.delete("/v1/aliases/nope")
        .assert_error(404, "FunctionAlias not found [name=nope]");
    api.put_json("/v1/aliases/nope", &json!({}))
        .assert_error(404, "FunctionAlias not found [name=nope]");
}

#[test]
fn an_alias_racing_the_delete_of_its_function_or_version_never_dangles() {
    let api = Api::start();
    let runtime = api.create_runtime();
    for i in 0..12 {
        let fid = api.create_function_id(&runtime, &package(&format!("race{i}")));
        api.publish(&fid).assert_status(201);
        let alias =
            json!({"name": format!("race{i}"), "function_id": fid, "function_version": i % 2});
        // Even rounds race the function's delete, odd rounds its version 1's.
        let target = match i % 2 {
            0 => format!("/v1/functions/{fid}"),
            _ => format!("/v1/functions/{fid}/versions/1"),
        };
        let (created, deleted) = std::thread::scope(|s| {
            let create = s.spawn(|| api.post_json("/v1/aliases", &alias).status);
            let delete = s.spawn(|| api.delete(&target).status);
            (create.join().unwrap(), delete.join().unwrap())
        });
        match (created, deleted) {
            // The alias came first: the delete is refused.
            (201, 403) => api.get(&target).assert_status(200),
            // The delete came first: the alias is refused.
            (404, 204) => api.get(&format!("/v1/aliases/race{i}")).assert_status(404),
            other => panic!("round {i}: alias create and delete answered {other:?}"),
        };
    }
}

// Weighted routing (issue 13): extra versions, each taking its weight of the executions.

/// A wasm function with versions 1 (`hello`) and 2 (`echo`).
fn wasm_function_with_two_versions(api: &Api) -> String {
    let fid = api.create_wasm_function(&example_package("hello"), &[]);
    api.publish(&fid).assert_status(201);
    api.update_package(&fid, &example_package("echo"))
        .assert_status(200);
    api.publish(&fid).assert_status(201);
    fid
}

/// A function of the dummy runtime with versions 1 to `n`.
fn function_with_versions(api: &Api, n: usize) -> String {
    let runtime = api.create_runtime();
    let fid = api.create_function_id(&runtime, &package("v1"));
    api.publish(&fid).assert_status(201);
    for i in 2..=n {
        api.update_package(&fid, &package(&format!("v{i}")))
            .assert_status(200);
        api.publish(&fid).assert_status(201);
    }
    fid
}

fn routing_error(reply: &spinling_api_tests::Reply, value: &str, why: &str) {
    reply.assert_error(
        400,
        &format!("Invalid input for field/attribute routing. Value: '{value}'. {why}"),
    );
}

#[test]
fn an_alias_without_routing_renders_an_empty_one() {
    let api = Api::start();
    let fid = function_with_version(&api);
    let alias = api
        .post_json("/v1/aliases", &json!({"name": "a", "function_id": fid}))
        .json();
    assert_eq!(alias["routing"], json!({}));
    assert_eq!(api.get("/v1/aliases/a").json()["routing"], json!({}));
}

#[test]
fn a_routing_is_created_shown_listed_updated_and_cleared() {
    let api = Api::start();
    let fid = function_with_versions(&api, 3);
    let reply = api.post_json(
        "/v1/aliases",
        &json!({"name": "canary", "function_id": fid, "function_version": 1,
                "routing": {"2": 0.1, "3": 0.05}}),
    );
    reply.assert_status(201);
    assert_eq!(reply.json()["routing"], json!({"2": 0.1, "3": 0.05}));
    assert_eq!(
        api.get("/v1/aliases/canary").json()["routing"],
        json!({"2": 0.1, "3": 0.05})
    );
    assert_eq!(
        api.get("/v1/aliases").json()["function_aliases"][0]["routing"],
        json!({"2": 0.1, "3": 0.05})
    );

    // An update without routing keeps it; a new one replaces it.
    let kept = api.put_json("/v1/aliases/canary", &json!({"description": "x"}));
    assert_eq!(kept.json()["routing"], json!({"2": 0.1, "3": 0.05}));
    let replaced = api.put_json("/v1/aliases/canary", &json!({"routing": {"2": 0.5}}));
    replaced.assert_status(200);
    assert_eq!(replaced.json()["routing"], json!({"2": 0.5}));
    assert_eq!(
        api.get("/v1/aliases/canary").json()["routing"],
        json!({"2": 0.5})
    );

    // `{}` and `null` both clear it.
    let cleared = api.put_json("/v1/aliases/canary", &json!({"routing": {}}));
    assert_eq!(cleared.json()["routing"], json!({}));
    api.put_json("/v1/aliases/canary", &json!({"routing": {"3": 0.2}}))
        .assert_status(200);
    let cleared = api.put_json("/v1/aliases/canary", &json!({"routing": null}));
    assert_eq!(cleared.json()["routing"], json!({}));
    assert_eq!(api.get("/v1/aliases/canary").json()["routing"], json!({}));
}

#[test]
fn a_routing_may_go_with_an_alias_at_the_current_code() {
    let api = Api::start();
    let fid = function_with_version(&api);
    let reply = api.post_json(
        "/v1/aliases",
        &json!({"name": "a", "function_id": fid, "function_version": 0, "routing": {"1": 0.3}}),
    );
    reply.assert_status(201);
    assert_eq!(reply.json()["routing"], json!({"1": 0.3}));
}

#[test]
fn routing_keys_must_be_version_numbers() {
    let api = Api::start();
    let fid = function_with_version(&api);
    for key in ["0", "-1", "two", "01"] {
        let reply = api.post_json(
            "/v1/aliases",
            &json!({"name": "a", "function_id": fid, "routing": {key: 0.1}}),
        );
        routing_error(
            &reply,
            &format!(r#"{{"{key}":0.1}}"#),
            &format!("Routing keys are version numbers (1 or more), not '{key}'."),
        );
    }
}

#[test]
fn a_routing_weight_must_be_a_number_between_0_and_1() {
    let api = Api::start();
    let fid = function_with_versions(&api, 2);
    for weight in [json!(0), json!(1), json!(1.5), json!(-0.2), json!("0.1")] {
        let reply = api.post_json(
            "/v1/aliases",
            &json!({"name": "a", "function_id": fid, "function_version": 1,
                    "routing": {"2": weight}}),
        );
        routing_error(
            &reply,
            &format!(r#"{{"2":{weight}}}"#),
            &format!(
                "The weight of version 2 must be a number between 0 and 1 (both excluded), not {weight}."
            ),
        );
    }
}

#[test]
fn routing_weights_must_add_up_to_less_than_1() {
    let api = Api::start();
    let fid = function_with_versions(&api, 3);
    let reply = api.post_json(
        "/v1/aliases",
        &json!({"name": "a", "function_id": fid, "function_version": 1,
                "routing": {"2": 0.5, "3": 0.5}}),
    );
    routing_error(
        &reply,
        r#"{"2":0.5,"3":0.5}"#,
        "The weights add up to 1; they must add up to less than 1, the alias's own version taking the rest.",
    );
    api.get("/v1/aliases/a").assert_status(404);
}

#[test]
fn a_routing_must_not_repeat_the_aliass_own_version() {
    let api = Api::start();
    let fid = function_with_versions(&api, 2);
    let reply = api.post_json(
        "/v1/aliases",
        &json!({"name": "a", "function_id": fid, "function_version": 1, "routing": {"1": 0.2}}),
    );
    let why = "Version 1 is the alias's own function_version; the routing names other versions.";
    routing_error(&reply, r#"{"1":0.2}"#, why);
    // Nor may an update make the alias's own version one of its routing's.
    api.post_json(
        "/v1/aliases",
        &json!({"name": "a", "function_id": fid, "function_version": 1, "routing": {"2": 0.2}}),
    )
    .assert_status(201);
    let reply = api.put_json("/v1/aliases/a", &json!({"function_version": 2}));
    routing_error(
        &reply,
        r#"{"2":0.2}"#,
        "Version 2 is the alias's own function_version; the routing names other versions.",
    );
    assert_eq!(api.get("/v1/aliases/a").json()["function_version"], 1);
}

#[test]
fn a_routing_to_an_unknown_version_is_the_version_404() {
    let api = Api::start();
    let fid = function_with_version(&api);
    let message = format!("FunctionVersion not found [function_id={fid}, version_number=7]");
    api.post_json(
        "/v1/aliases",
        &json!({"name": "a", "function_id": fid, "routing": {"7": 0.1}}),
    )
    .assert_error(404, &message);
    api.get("/v1/aliases/a").assert_status(404);
    api.post_json("/v1/aliases", &json!({"name": "a", "function_id": fid}))
        .assert_status(201);
    api.put_json("/v1/aliases/a", &json!({"routing": {"7": 0.1}}))
        .assert_error(404, &message);
    assert_eq!(api.get("/v1/aliases/a").json()["routing"], json!({}));
}

#[test]
fn a_routing_that_is_not_an_object_is_a_bad_request() {
    let api = Api::start();
    let fid = function_with_version(&api);
    api.post_json(
        "/v1/aliases",
        &json!({"name": "a", "function_id": fid, "routing": [1]}),
    )
    .assert_error(
        400,
        "Invalid input for field/attribute routing. Value: '[1]'. Wrong type. Expected 'dict', got 'list'",
    );
}

#[test]
fn a_version_in_an_aliass_routing_cannot_be_deleted() {
    let api = Api::start();
    let fid = function_with_versions(&api, 2);
    api.post_json(
        "/v1/aliases",
        &json!({"name": "a", "function_id": fid, "function_version": 1, "routing": {"2": 0.1}}),
    )
    .assert_status(201);
    let version_2 = format!("/v1/functions/{fid}/versions/2");
    api.delete(&version_2)
        .assert_error(403, "The function version is still associated with alias.");
    api.put_json("/v1/aliases/a", &json!({"routing": null}))
        .assert_status(200);
    api.delete(&version_2).assert_status(204);
}

#[test]
fn deleting_a_routed_alias_frees_its_versions() {
    let api = Api::start();
    let fid = function_with_versions(&api, 2);
    api.post_json(
        "/v1/aliases",
        &json!({"name": "a", "function_id": fid, "function_version": 1, "routing": {"2": 0.1}}),
    )
    .assert_status(201);
    api.delete("/v1/aliases/a").assert_status(204);
    api.delete(&format!("/v1/functions/{fid}/versions/2"))
        .assert_status(204);
}

/// The versions `total` sync executions through alias `name` ran, from 4 threads.
fn versions_run_through(api: &Api, name: &str, total: usize) -> Vec<i64> {
    std::thread::scope(|s| {
        let threads: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| {
                    (0..total / 4)
                        .map(|_| {
                            let reply =
                                api.post_json("/v1/executions", &json!({"function_alias": name}));
                            reply.assert_status(201);
                            let execution = reply.json();
                            assert_eq!(execution["function_alias"], name);
                            execution["function_version"].as_i64().unwrap()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect()
    })
}

#[test]
fn executions_through_a_routed_alias_split_by_weight_and_all_go_to_its_version_once_cleared() {
    let api = Api::start();
    let fid = wasm_function_with_two_versions(&api);
    api.post_json(
        "/v1/aliases",
        &json!({"name": "canary", "function_id": fid, "function_version": 1,
                "routing": {"2": 0.1}}),
    )
    .assert_status(201);
    let ran = versions_run_through(&api, "canary", 2000);
    let on_2 = ran.iter().filter(|v| **v == 2).count();
    assert!(
        ran.iter().all(|v| *v == 1 || *v == 2),
        "{:?}",
        ran.iter()
            .filter(|v| **v != 1 && **v != 2)
            .collect::<Vec<_>>()
    );
    assert!((140..=260).contains(&on_2), "{on_2} of 2000 ran version 2");
    // Each version counted its own executions; the filter sees them per version.
    let count =
        |n: i64| api.get(&format!("/v1/functions/{fid}/versions/{n}")).json()["count"].clone();
    assert_eq!(count(2), on_2);
    assert_eq!(count(1), 2000 - on_2);

    api.put_json("/v1/aliases/canary", &json!({"routing": {}}))
        .assert_status(200);
    let ran = versions_run_through(&api, "canary", 400);
    assert!(ran.iter().all(|v| *v == 1), "{ran:?}");
}

#[test]
fn executions_through_a_routed_alias_record_the_version_that_ran() {
    let api = Api::start();
    let fid = wasm_function_with_two_versions(&api);
    api.post_json(
        "/v1/aliases",
        &json!({"name": "half", "function_id": fid, "function_version": 1,
                "routing": {"2": 0.5}}),
    )
    .assert_status(201);
    let mut seen = std::collections::BTreeMap::new();
    for _ in 0..40 {
        let execution = api
            .post_json(
                "/v1/executions",
                &json!({"function_alias": "half", "input": "{\"name\": \"b\"}"}),
            )
            .json();
        let result: serde_json::Value =
            serde_json::from_str(execution["result"].as_str().unwrap()).unwrap();
        // Version 1 is `hello`, version 2 `echo`: the output says which one ran.
        let expected = match execution["function_version"].as_i64() {
            Some(1) => json!("Hello, Spinling!"),
            Some(2) => json!({"greeting": "Hello, b!"}),
            other => panic!("ran {other:?}"),
        };
        assert_eq!(result["output"], expected);
        *seen
            .entry(execution["function_version"].as_i64().unwrap())
            .or_insert(0) += 1;
    }
    // Both ran (each misses all 40 with probability 2^-40).
    assert_eq!(seen.len(), 2, "{seen:?}");
}

#[test]
fn webhook_invokes_through_a_routed_alias_pick_by_weight() {
    let api = Api::start();
    let fid = wasm_function_with_two_versions(&api);
    api.post_json(
        "/v1/aliases",
        &json!({"name": "live", "function_id": fid, "function_version": 1,
                "routing": {"2": 0.5}}),
    )
    .assert_status(201);
    let webhook = api.post_json("/v1/webhooks", &json!({"function_alias": "live"}));
    webhook.assert_status(201);
    let path = format!(
        "/v1/webhooks/{}/invoke",
        webhook.json()["id"].as_str().unwrap()
    );
    let mut on_2 = 0;
    for _ in 0..200 {
        let reply = api.post_json(&path, &json!({}));
        reply.assert_status(202);
        let id = reply.json()["execution_id"].as_str().unwrap().to_string();
        let execution = api.get(&format!("/v1/executions/{id}")).json();
        assert_eq!(execution["function_alias"], "live");
        match execution["function_version"].as_i64() {
            Some(1) => {}
            Some(2) => on_2 += 1,
            other => panic!("ran {other:?}"),
        }
    }
    // Half of 200, within 5.6 standard deviations.
    assert!((60..=140).contains(&on_2), "{on_2} of 200 ran version 2");
}

#[test]
fn jobs_through_a_routed_alias_pick_by_weight_each_time_they_fire() {
    let api = Api::start();
    let fid = wasm_function_with_two_versions(&api);
    api.post_json(
        "/v1/aliases",
        &json!({"name": "nightly", "function_id": fid, "function_version": 1,
                "routing": {"2": 0.5}}),
    )
    .assert_status(201);
    let job = api.post_json(
        "/v1/jobs",
        &json!({"function_alias": "nightly", "pattern": "* * * * *"}),
    );
    job.assert_status(201);
    let job_id = job.json()["id"].as_str().unwrap().to_string();
    // Only `POST /v1/jobs/tick` fires it (see jobs.rs): the scheduler's lease goes elsewhere.
    api.stop_the_scheduler_loop();
    let mut seen = std::collections::BTreeMap::new();
    for _ in 0..40 {
        api.query_database(&format!(
            "UPDATE jobs SET next_execution_time = '2000-01-01T00:00:00Z' WHERE id = '{job_id}'"
        ));
        let tick = api.post_json("/v1/jobs/tick", &json!({}));
        tick.assert_status(200);
        let fired = tick.json()["fired"].clone();
        assert_eq!(fired.as_array().unwrap().len(), 1, "{fired}");
        let execution_id = fired[0]["execution_id"].as_str().unwrap().to_string();
        let execution = api.get(&format!("/v1/executions/{execution_id}")).json();
        assert_eq!(execution["function_alias"], "nightly");
        *seen
            .entry(execution["function_version"].as_i64().unwrap())
            .or_insert(0) += 1;
    }
    // Both versions ran (each misses all 40 firings with probability 2^-40), and only they.
    assert_eq!(seen.keys().copied().collect::<Vec<_>>(), [1, 2], "{seen:?}");
}
