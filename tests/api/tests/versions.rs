use serde_json::json;
use spinling_api_tests::{md5_hex, package, Api};

#[test]
fn the_first_version_is_number_one_and_snapshots_code_and_settings() {
    let api = Api::start();
    let zip = package("a");
    let runtime = api.create_runtime();
    let fid = api.create_function_id(&runtime, &zip);
    let reply = api.post_json(
        &format!("/v1/functions/{fid}/versions"),
        &json!({"description": "first"}),
    );
    reply.assert_status(201);
    let v = reply.json();
    assert_eq!(v["version_number"], 1);
    assert_eq!(v["function_id"], fid.as_str());
    assert_eq!(v["description"], "first");
    assert_eq!(v["count"], 0);
    assert_eq!(v["project_id"], "default");
    assert_eq!(
        v["code"],
        json!({"source": "package", "md5sum": md5_hex(&zip)})
    );
    assert_eq!(
        (
            v["cpu"].as_i64(),
            v["memory_size"].as_i64(),
            v["timeout"].as_i64()
        ),
        (Some(100), Some(33554432), Some(5))
    );
    assert_eq!(v["id"].as_str().unwrap().len(), 36);
    assert!(v["updated_at"].is_null());
    assert_eq!(
        api.get(&format!("/v1/functions/{fid}")).json()["latest_version"],
        1
    );
}

#[test]
fn creating_a_version_of_unchanged_code_is_forbidden() {
    let api = Api::start();
    let fid = api.create_wasm_function(&package("a"), &[]);
    api.publish(&fid).assert_status(201);
    api.publish(&fid).assert_error(
        403,
        "Function package not changed since the latest version 1.",
    );
}

#[test]
fn a_version_after_a_code_change_is_the_next_number() {
    let api = Api::start();
    let fid = api.create_wasm_function(&package("a"), &[]);
    api.publish(&fid).assert_status(201);
    api.update_package(&fid, &package("b")).assert_status(200);
    assert_eq!(api.publish(&fid).json()["version_number"], 2);
}

#[test]
fn changing_a_snapshotted_setting_allows_a_new_version() {
    let api = Api::start();
    let fid = api.create_wasm_function(&package("a"), &[]);
    api.publish(&fid).assert_status(201);
    api.put_json(&format!("/v1/functions/{fid}"), &json!({"timeout": 42}))
        .assert_status(200);
    let v2 = api.publish(&fid);
    v2.assert_status(201);
    assert_eq!(v2.json()["timeout"], 42);
    assert_eq!(
        api.get(&format!("/v1/functions/{fid}/versions/1")).json()["timeout"],
        5
    );
}

#[test]
fn renaming_a_function_is_not_a_change_worth_a_version() {
    let api = Api::start();
    let fid = api.create_wasm_function(&package("a"), &[]);
    api.publish(&fid).assert_status(201);
    api.put_json(&format!("/v1/functions/{fid}"), &json!({"name": "renamed"}))
        .assert_status(200);
    api.publish(&fid).assert_error(
        403,
        "Function package not changed since the latest version 1.",
    );
}

#[test]
fn versions_are_listed_wrapped_and_in_order() {
    let api = Api::start();
    let fid = api.create_wasm_function(&package("a"), &[]);
    for tag in ["b", "c"] {
        api.publish(&fid).assert_status(201);
        api.update_package(&fid, &package(tag)).assert_status(200);
    }
    api.publish(&fid).assert_status(201);
    assert_eq!(api.version_numbers(&fid), vec![1, 2, 3]);
}

#[test]
fn a_version_downloads_as_it_was_published() {
    let api = Api::start();
    let runtime = api.create_runtime();
    let v1_zip = package("one");
    let fid = api.create_function_id(&runtime, &v1_zip);
    api.publish(&fid).assert_status(201);
    api.update_package(&fid, &package("two")).assert_status(200);
    let reply = api.get(&format!("/v1/functions/{fid}/versions/1?download=true"));
    reply.assert_status(200);
    assert_eq!(reply.body, v1_zip);
    assert_eq!(
        reply.header("content-disposition").unwrap(),
        format!("attachment; filename=\"{fid}_1\"")
    );
    assert_eq!(reply.header("content-type").unwrap(), "application/zip");
}

#[test]
fn the_number_of_versions_is_capped() {
    let api = Api::start_with(&[("max_versions", "2")]);
    let fid = api.create_wasm_function(&package("a"), &[]);
    for tag in ["b", "c"] {
        api.publish(&fid).assert_status(201);
        api.update_package(&fid, &package(tag)).assert_status(200);
    }
    api.publish(&fid)
        .assert_error(403, "Can not exceed maximum number(2) of versions");
}

#[test]
fn the_default_cap_is_ten_versions() {
    let api = Api::start();
    let fid = api.create_wasm_function(&package("v0"), &[]);
    for i in 1..=10 {
        api.publish(&fid).assert_status(201);
        api.update_package(&fid, &package(&format!("v{i}")))
            .assert_status(200);
    }
    api.publish(&fid)
        .assert_error(403, "Can not exceed maximum number(10) of versions");
}

#[test]
fn version_numbers_are_never_reused() {
    let api = Api::start();
    let fid = api.create_wasm_function(&package("a"), &[]);
    api.publish(&fid).assert_status(201);
    api.update_package(&fid, &package("b")).assert_status(200);
    api.publish(&fid).assert_status(201);
    api.delete(&format!("/v1/functions/{fid}/versions/2"))
        .assert_status(204);
    assert_eq!(
        api.get(&format!("/v1/functions/{fid}")).json()["latest_version"],
        1
    );
    let v = api.publish(&fid);
    v.assert_status(201);
    assert_eq!(v.json()["version_number"], 3);
}

#[test]
fn after_deleting_the_newest_the_next_newest_is_compared() {
    let api = Api::start();
    let fid = api.create_wasm_function(&package("a"), &[]);
    api.publish(&fid).assert_status(201);
    api.update_package(&fid, &package("b")).assert_status(200);
    api.publish(&fid).assert_status(201);
    api.update_package(&fid, &package("a")).assert_status(200);
    api.delete(&format!("/v1/functions/{fid}/versions/2"))
        .assert_status(204);
    api.publish(&fid).assert_error(
        403,
        "Function package not changed since the latest version 1.",
    );
}

#[test]
fn an_unknown_version_is_404_with_qinlings_message() {
    let api = Api::start();
    let fid = api.create_wasm_function(&package("a"), &[]);
    let message = format!("FunctionVersion not found [function_id={fid}, version_number=7]");
    api.get(&format!("/v1/functions/{fid}/versions/7"))
        .assert_error(404, &message);
    api.delete(&format!("/v1/functions/{fid}/versions/7"))
        .assert_error(404, &message);
    api.get(&format!("/v1/functions/{fid}/versions/7?download=true"))
        .assert_error(404, &message);
    api.request(
        "POST",
        &format!("/v1/functions/{fid}/versions/7/detach"),
        &[],
        vec![],
    )
    .assert_error(404, &message);
}

#[test]
fn a_version_number_that_is_not_a_positive_integer_is_a_bad_request() {
    let api = Api::start();
    let fid = api.create_wasm_function(&package("a"), &[]);
    for n in ["abc", "0", "-1", "1.5", "1e3"] {
        let reply = api.get(&format!("/v1/functions/{fid}/versions/{n}"));
        assert_eq!(reply.status, 400, "{n}: {}", reply.text());
        assert_eq!(reply.json()["faultcode"], "Client");
    }
}

#[test]
fn a_version_number_too_large_for_any_version_is_an_unknown_version() {
    let api = Api::start();
    let fid = api.create_wasm_function(&package("a"), &[]);
    let n = "99999999999999999999";
    let message = format!("FunctionVersion not found [function_id={fid}, version_number={n}]");
    let version = format!("/v1/functions/{fid}/versions/{n}");
    api.get(&version).assert_error(404, &message);
    api.delete(&version).assert_error(404, &message);
}

#[test]
fn versions_of_an_unknown_function_are_404() {
    let api = Api::start();
    let fid = "0d2a8e6c-3e51-4f5a-8c3e-111111111111";
    let message = format!("Function not found [id={fid}]");
    api.publish(fid).assert_error(404, &message);
    api.get(&format!("/v1/functions/{fid}/versions"))
        .assert_error(404, &message);
    api.post_json(
        &format!("/v1/functions/{fid}/versions/1/detach"),
        &json!({}),
    )
    .assert_error(404, &message);
}

#[test]
fn a_function_id_that_is_not_a_uuid_is_400_on_the_wsme_version_routes() {
    let api = Api::start();
    let bad_uuid = "Invalid input for field/attribute id. Value: 'not-a-uuid'. \
                    Expected a uuid but received not-a-uuid.";
    let versions = "/v1/functions/not-a-uuid/versions";
    api.get(versions).assert_error(400, bad_uuid);
    api.post_json(versions, &json!({}))
        .assert_error(400, bad_uuid);
    api.delete(&format!("{versions}/1"))
        .assert_error(400, bad_uuid);
    api.post_json(&format!("{versions}/1/detach"), &json!({}))
        .assert_error(400, bad_uuid);
    // Showing a version is a Pecan route in Qinling: an unknown version.
    api.get(&format!("{versions}/1")).assert_error(
        404,
        "FunctionVersion not found [function_id=not-a-uuid, version_number=1]",
    );
}

#[test]
fn a_version_of_an_unknown_function_is_an_unknown_version() {
    let api = Api::start();
    let fid = "0d2a8e6c-3e51-4f5a-8c3e-111111111111";
    let message = format!("FunctionVersion not found [function_id={fid}, version_number=1]");
    let version = format!("/v1/functions/{fid}/versions/1");
    api.get(&version).assert_error(404, &message);
    api.get(&format!("{version}?download=true"))
        .assert_error(404, &message);
    api.delete(&version).assert_error(404, &message);
}

#[test]
fn only_package_functions_have_versions() {
    let api = Api::start();
    let fid = api.create_image_function();
    api.publish(&fid).assert_error(
        403,
        "Function versioning only allowed for package type function.",
    );
}

#[test]
fn creating_a_version_needs_a_body() {
    let api = Api::start();
    let fid = api.create_wasm_function(&package("a"), &[]);
    api.request(
        "POST",
        &format!("/v1/functions/{fid}/versions"),
        &[],
        vec![],
    )
    .assert_error(400, "Missing argument: \"body\"");
    api.post_json(
        &format!("/v1/functions/{fid}/versions"),
        &json!({"version_number": 5}),
    )
    .assert_error(
        400,
        "Invalid input for field/attribute version_number. Value: '5'. Cannot set read only field.",
    );
    api.post_json(
        &format!("/v1/functions/{fid}/versions"),
        &json!({"description": "x".repeat(256)}),
    )
    .assert_status(400);
}

#[test]
fn a_version_with_an_alias_cannot_be_deleted() {
    let api = Api::start();
    let fid = api.create_wasm_function(&package("a"), &[]);
    api.publish(&fid).assert_status(201);
    api.post_json(
        "/v1/aliases",
        &json!({"name": "prod", "function_id": fid, "function_version": 1}),
    )
    .assert_status(201);
    api.delete(&format!("/v1/functions/{fid}/versions/1"))
        .assert_error(403, "The function version is still associated with alias.");
}

#[test]
fn detaching_a_version_is_accepted_with_an_empty_body() {
    let api = Api::start();
    let fid = api.create_wasm_function(&package("a"), &[]);
    api.publish(&fid).assert_status(201);
    let reply = api.request(
        "POST",
        &format!("/v1/functions/{fid}/versions/1/detach"),
        &[],
        vec![],
    );
    reply.assert_status(202);
    assert!(reply.body.is_empty());
}

#[test]
fn sixty_four_concurrent_creates_after_one_change_publish_exactly_one_version() {
    let api = Api::start();
    let fid = api.create_wasm_function(&package("a"), &[]);
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..64)
            .map(|_| s.spawn(|| api.publish(&fid).status))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 403).count(),
        63,
        "{statuses:?}"
    );
    let list = api.get(&format!("/v1/functions/{fid}/versions")).json();
    assert_eq!(list["function_versions"].as_array().unwrap().len(), 1);
}

#[test]
fn concurrent_creates_on_different_functions_all_succeed_with_number_one() {
    let api = Api::start();
    let runtime = api.create_runtime();
    let fids: Vec<String> = (0..16)
        .map(|i| api.create_function_id(&runtime, &package(&format!("f{i}"))))
        .collect();
    let numbers: Vec<i64> = std::thread::scope(|s| {
        let handles: Vec<_> = fids
            .iter()
            .map(|fid| s.spawn(|| api.publish(fid)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap().json()["version_number"].as_i64().unwrap())
            .collect()
    });
    assert!(numbers.iter().all(|n| *n == 1), "{numbers:?}");
}

#[test]
fn versions_survive_a_restart() {
    let api = Api::start();
    let fid = api.create_wasm_function(&package("a"), &[]);
    api.publish(&fid).assert_status(201);
    let state = api.stop();
    let api = Api::start_in(state, &[]);
    api.get(&format!("/v1/functions/{fid}/versions/1"))
        .assert_status(200);
}

#[test]
fn reads_served_from_the_cache_follow_publishes_and_deletes() {
    let api = Api::start();
    let fid = api.create_wasm_function(&package("a"), &[]);
    api.publish(&fid).assert_status(201);
    let list = |api: &Api| {
        let body = api.get(&format!("/v1/functions/{fid}/versions")).json();
        body["function_versions"].as_array().unwrap().len()
    };
    // Twice each: the second read is a cache hit.
    for _ in 0..2 {
        api.get(&format!("/v1/functions/{fid}/versions/1"))
            .assert_status(200);
        assert_eq!(list(&api), 1);
    }
    api.update_package(&fid, &package("b")).assert_status(200);
    api.publish(&fid).assert_status(201);
    assert_eq!(list(&api), 2);
    api.delete(&format!("/v1/functions/{fid}/versions/1"))
        .assert_status(204);
    api.get(&format!("/v1/functions/{fid}/versions/1"))
        .assert_status(404);
    assert_eq!(list(&api), 1);
    api.delete(&format!("/v1/functions/{fid}"))
        .assert_status(204);
    api.get(&format!("/v1/functions/{fid}/versions/2"))
        .assert_status(404);
    api.get(&format!("/v1/functions/{fid}/versions"))
        .assert_status(404);
}
