use serde_json::json;
use spinling_api_tests::{package, Api};

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
