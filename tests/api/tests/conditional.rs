//! Conditional publish (`md5sum` on version create), conditional updates (`ETag` and
//! `If-Match` on a function) and version retention (`version_retention`).

use serde_json::json;
use spinling_api_tests::{md5_hex, package, Api, Reply};

fn publish_with_md5(api: &Api, fid: &str, md5: &str) -> Reply {
    api.post_json(
        &format!("/v1/functions/{fid}/versions"),
        &json!({"md5sum": md5}),
    )
}

fn etag_of(api: &Api, fid: &str) -> String {
    let reply = api.get(&format!("/v1/functions/{fid}"));
    reply.assert_status(200);
    reply.header("etag").expect("function show sends an ETag")
}

fn put_if_match(api: &Api, fid: &str, if_match: &str, body: &serde_json::Value) -> Reply {
    api.request(
        "PUT",
        &format!("/v1/functions/{fid}"),
        &[("content-type", "application/json"), ("if-match", if_match)],
        body.to_string().into_bytes(),
    )
}

/// A function with versions 1..=`n`, each of other code.
fn function_with_versions(api: &Api, n: usize) -> String {
    let fid = api.create_wasm_function(&package("v1"), &[]);
    for i in 1..=n {
        if i > 1 {
            api.update_package(&fid, &package(&format!("v{i}")))
                .assert_status(200);
        }
        api.publish(&fid).assert_status(201);
    }
    fid
}

#[test]
fn a_publish_with_the_current_md5_creates_the_version() {
    let api = Api::start();
    let zip = package("a");
    let fid = api.create_wasm_function(&zip, &[]);
    let reply = publish_with_md5(&api, &fid, &md5_hex(&zip));
    reply.assert_status(201);
    assert_eq!(reply.json()["version_number"], 1);
}

#[test]
fn a_publish_with_another_md5_is_a_412_and_publishes_nothing() {
    let api = Api::start();
    let tested = package("a");
    let fid = api.create_wasm_function(&tested, &[]);
    let current = package("b");
    api.update_package(&fid, &current).assert_status(200);
    publish_with_md5(&api, &fid, &md5_hex(&tested)).assert_error(
        412,
        &format!(
            "Function package changed: expected {}, found {}.",
            md5_hex(&tested),
            md5_hex(&current)
        ),
    );
    assert!(api.version_numbers(&fid).is_empty());
    assert_eq!(
        api.get(&format!("/v1/functions/{fid}")).json()["latest_version"],
        0
    );
}

#[test]
fn function_show_sends_an_etag_that_changes_with_an_update() {
    let api = Api::start();
    let fid = api.create_wasm_function(&package("a"), &[]);
    let before = etag_of(&api, &fid);
    assert!(before.starts_with('"') && before.ends_with('"'), "{before}");
    assert_eq!(etag_of(&api, &fid), before, "reading changes nothing");
    let reply = api.put_json(&format!("/v1/functions/{fid}"), &json!({"timeout": 10}));
    reply.assert_status(200);
    let after = etag_of(&api, &fid);
    assert_ne!(after, before);
    assert_eq!(reply.header("etag").as_deref(), Some(after.as_str()));
}

#[test]
fn two_updates_within_one_second_give_two_etags() {
    let api = Api::start();
    let fid = api.create_wasm_function(&package("a"), &[]);
    let update = |timeout: i64| {
        api.put_json(
            &format!("/v1/functions/{fid}"),
            &json!({"timeout": timeout}),
        )
        .assert_status(200);
        let shown = api.get(&format!("/v1/functions/{fid}"));
        (
            shown.json()["updated_at"].clone(),
            shown.header("etag").unwrap(),
        )
    };
    // Until a pair falls within one second (`updated_at`'s resolution).
    for attempt in 0..10 {
        let (first_at, first) = update(10 + 2 * attempt);
        let (second_at, second) = update(11 + 2 * attempt);
        assert_ne!(first, second);
        if first_at == second_at {
            return;
        }
    }
    panic!("no two updates fell within one second");
}

#[test]
fn an_update_with_a_stale_if_match_is_a_412_and_changes_nothing() {
    let api = Api::start();
    let fid = api.create_wasm_function(&package("a"), &[]);
    let stale = etag_of(&api, &fid);
    api.put_json(&format!("/v1/functions/{fid}"), &json!({"timeout": 10}))
        .assert_status(200);
    let current = etag_of(&api, &fid);
    put_if_match(&api, &fid, &stale, &json!({"timeout": 20})).assert_error(
        412,
        &format!("Function changed since it was read: If-Match {stale} does not match {current}."),
    );
    let shown = api.get(&format!("/v1/functions/{fid}")).json();
    assert_eq!(shown["timeout"], 10);
    assert_eq!(etag_of(&api, &fid), current);
}

#[test]
fn an_update_with_the_current_if_match_is_applied() {
    let api = Api::start();
    let fid = api.create_wasm_function(&package("a"), &[]);
    let current = etag_of(&api, &fid);
    let reply = put_if_match(&api, &fid, &current, &json!({"timeout": 20}));
    reply.assert_status(200);
    assert_eq!(reply.json()["timeout"], 20);
}

#[test]
fn an_update_with_if_match_star_is_applied_to_any_existing_function() {
    let api = Api::start();
    let fid = api.create_wasm_function(&package("a"), &[]);
    api.put_json(&format!("/v1/functions/{fid}"), &json!({"timeout": 10}))
        .assert_status(200);
    let reply = put_if_match(&api, &fid, "*", &json!({"timeout": 20}));
    reply.assert_status(200);
    assert_eq!(reply.json()["timeout"], 20);
}

#[test]
fn by_default_a_publish_at_the_cap_is_refused() {
    let api = Api::start_with(&[("max_versions", "2")]);
    let fid = function_with_versions(&api, 2);
    api.update_package(&fid, &package("v3")).assert_status(200);
    api.publish(&fid)
        .assert_error(403, "Can not exceed maximum number(2) of versions");
    assert_eq!(api.version_numbers(&fid), [1, 2]);
}

#[test]
fn prune_oldest_deletes_the_oldest_version_to_publish_at_the_cap() {
    let api = Api::start_with(&[("max_versions", "2"), ("version_retention", "prune_oldest")]);
    let fid = function_with_versions(&api, 2);
    api.update_package(&fid, &package("v3")).assert_status(200);
    let reply = api.publish(&fid);
    reply.assert_status(201);
    assert_eq!(reply.json()["version_number"], 3);
    assert_eq!(api.version_numbers(&fid), [2, 3]);
    api.get(&format!("/v1/functions/{fid}/versions/1"))
        .assert_status(404);
    // The pruned package's bytes are gone: only v2's and v3's (the function's) remain.
    assert_eq!(api.query_database("SELECT COUNT(*) FROM packages"), ["2"]);
}

#[test]
fn pruned_numbers_are_never_given_out_again() {
    let api = Api::start_with(&[("max_versions", "2"), ("version_retention", "prune_oldest")]);
    let fid = function_with_versions(&api, 2);
    for (tag, expected) in [("v3", 3), ("v4", 4)] {
        api.update_package(&fid, &package(tag)).assert_status(200);
        assert_eq!(api.publish(&fid).json()["version_number"], expected);
    }
    assert_eq!(api.version_numbers(&fid), [3, 4]);
}

#[test]
fn prune_oldest_skips_a_version_an_alias_points_at() {
    let api = Api::start_with(&[("max_versions", "2"), ("version_retention", "prune_oldest")]);
    let fid = function_with_versions(&api, 2);
    api.post_json(
        "/v1/aliases",
        &json!({"name": "prod", "function_id": fid, "function_version": 1}),
    )
    .assert_status(201);
    api.update_package(&fid, &package("v3")).assert_status(200);
    api.publish(&fid).assert_status(201);
    assert_eq!(api.version_numbers(&fid), [1, 3]);
}

#[test]
fn prune_oldest_still_refuses_when_every_version_is_referenced() {
    let api = Api::start_with(&[("max_versions", "2"), ("version_retention", "prune_oldest")]);
    let fid = function_with_versions(&api, 2);
    for (name, version) in [("prod", 1), ("beta", 2)] {
        api.post_json(
            "/v1/aliases",
            &json!({"name": name, "function_id": fid, "function_version": version}),
        )
        .assert_status(201);
    }
    api.update_package(&fid, &package("v3")).assert_status(200);
    api.publish(&fid)
        .assert_error(403, "Can not exceed maximum number(2) of versions");
    assert_eq!(api.version_numbers(&fid), [1, 2]);
}

#[test]
fn prune_oldest_prunes_nothing_for_a_publish_refused_anyway() {
    let api = Api::start_with(&[("max_versions", "2"), ("version_retention", "prune_oldest")]);
    let fid = function_with_versions(&api, 2);
    api.publish(&fid).assert_error(
        403,
        "Function package not changed since the latest version 2.",
    );
    api.update_package(&fid, &package("v3")).assert_status(200);
    publish_with_md5(&api, &fid, &md5_hex(&package("v2"))).assert_status(412);
    assert_eq!(api.version_numbers(&fid), [1, 2]);
}

#[test]
fn prune_oldest_skips_a_version_a_webhook_names() {
    let api = Api::start_with(&[("max_versions", "2"), ("version_retention", "prune_oldest")]);
    let fid = function_with_versions(&api, 2);
    api.post_json(
        "/v1/webhooks",
        &json!({"function_id": fid, "function_version": 1}),
    )
    .assert_status(201);
    api.update_package(&fid, &package("v3")).assert_status(200);
    api.publish(&fid).assert_status(201);
    assert_eq!(api.version_numbers(&fid), [1, 3]);
}
