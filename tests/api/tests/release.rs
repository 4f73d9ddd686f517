//! Releasing safely: what changed between versions (the diff), and immutable versions as
//! cacheable resources (entity tags, `304 Not Modified`, `Cache-Control`).

use serde_json::json;
use spinling_api_tests::{example_package, incompressible, zip_of, Api};
use std::time::{Duration, Instant};

fn diff(api: &Api, fid: &str, from: &str, to: &str) -> spinling_api_tests::Reply {
    api.get(&format!("/v1/functions/{fid}/versions/{from}/diff/{to}"))
}

/// Version 1 holds `same`, `gone` and `changed`; the current code (published as version 2
/// when `publish_second`) holds `same`, a longer `changed` and `new`, with timeout 60.
fn two_versions(api: &Api, publish_second: bool) -> String {
    let fid = api.create_wasm_function(
        &zip_of(&[("same", b"s"), ("gone", b"gg"), ("changed", b"one")]),
        &[],
    );
    api.publish(&fid).assert_status(201);
    api.update_package(
        &fid,
        &zip_of(&[("same", b"s"), ("changed", b"three"), ("new", b"nnnn")]),
    )
    .assert_status(200);
    api.put_json(&format!("/v1/functions/{fid}"), &json!({"timeout": 60}))
        .assert_status(200);
    if publish_second {
        api.publish(&fid).assert_status(201);
    }
    fid
}

#[test]
fn a_diff_lists_added_removed_and_modified_files_and_changed_settings() {
    let api = Api::start();
    let fid = two_versions(&api, true);
    let reply = diff(&api, &fid, "1", "2");
    reply.assert_status(200);
    assert_eq!(
        reply.json(),
        json!({
            "from": 1,
            "to": 2,
            "files": [
                {"path": "changed", "change": "modified", "size_from": 3, "size_to": 5},
                {"path": "gone", "change": "removed", "size_from": 2, "size_to": null},
                {"path": "new", "change": "added", "size_from": null, "size_to": 4},
            ],
            "settings": {"timeout": {"from": 5, "to": 60}},
        })
    );
}

#[test]
fn a_diff_against_the_current_code_is_read_from_version_zero() {
    let api = Api::start();
    let fid = two_versions(&api, false);
    let reply = diff(&api, &fid, "0", "1");
    reply.assert_status(200);
    assert_eq!(
        reply.json(),
        json!({
            "from": 0,
            "to": 1,
            "files": [
                {"path": "changed", "change": "modified", "size_from": 5, "size_to": 3},
                {"path": "gone", "change": "added", "size_from": null, "size_to": 2},
                {"path": "new", "change": "removed", "size_from": 4, "size_to": null},
            ],
            "settings": {"timeout": {"from": 60, "to": 5}},
        })
    );
}

#[test]
fn the_current_code_against_itself_has_no_differences() {
    let api = Api::start();
    let fid = two_versions(&api, false);
    let reply = diff(&api, &fid, "0", "0");
    reply.assert_status(200);
    assert_eq!(
        reply.json(),
        json!({"from": 0, "to": 0, "files": [], "settings": {}})
    );
}

#[test]
fn a_diff_with_an_unknown_version_is_the_version_404() {
    let api = Api::start();
    let fid = two_versions(&api, false);
    let message = format!("FunctionVersion not found [function_id={fid}, version_number=7]");
    diff(&api, &fid, "1", "7").assert_error(404, &message);
    diff(&api, &fid, "7", "0").assert_error(404, &message);
}

#[test]
fn a_diff_names_versions_as_version_show_does() {
    let api = Api::start();
    let fid = two_versions(&api, false);
    diff(&api, &fid, "one", "1").assert_error(
        400,
        "Invalid version number: 'one'. A version number is a positive integer.",
    );
    diff(&api, &fid, "1", "-2").assert_error(
        400,
        "Invalid version number: '-2'. A version number is a positive integer.",
    );
    api.request(
        "POST",
        &format!("/v1/functions/{fid}/versions/1/diff/0"),
        &[],
        Vec::new(),
    )
    .assert_status(405);
}

#[test]
fn the_current_code_of_an_image_function_cannot_be_diffed() {
    let api = Api::start();
    let fid = api.create_image_function();
    diff(&api, &fid, "0", "0").assert_error(405, "Diff of image function is not allowed.");
}

/// A package of about `files` × 30 KiB of incompressible bytes; file `changed` (if any)
/// gets other bytes.
fn big_package(files: usize, changed: Option<usize>) -> Vec<u8> {
    let contents: Vec<(String, Vec<u8>)> = (0..files)
        .map(|i| {
            let seed = 2 * (i as u64 + 1) + u64::from(changed == Some(i));
            let bytes = incompressible(seed, 30 * 1024);
            (format!("lib/module_{i:04}.bin"), bytes)
        })
        .collect();
    let named: Vec<(&str, &[u8])> = contents
        .iter()
        .map(|(n, b)| (n.as_str(), b.as_slice()))
        .collect();
    zip_of(&named)
}

#[test]
fn two_packages_near_the_size_limit_are_diffed_within_a_second() {
    let api = Api::start();
    let first = big_package(1600, None);
    let second = big_package(1601, Some(7));
    assert!(first.len() > 45 * 1024 * 1024 && second.len() <= 50 * 1024 * 1024);
    let fid = api.create_wasm_function(&first, &[]);
    api.publish(&fid).assert_status(201);
    api.update_package(&fid, &second).assert_status(200);
    api.publish(&fid).assert_status(201);
    let started = Instant::now();
    let reply = diff(&api, &fid, "1", "2");
    let took = started.elapsed();
    eprintln!(
        "diff of two packages of {} and {} bytes: {took:?}",
        first.len(),
        second.len()
    );
    reply.assert_status(200);
    assert_eq!(
        reply.json()["files"],
        json!([
            {"path": "lib/module_0007.bin", "change": "modified",
             "size_from": 30720, "size_to": 30720},
            {"path": "lib/module_1600.bin", "change": "added",
             "size_from": null, "size_to": 30720},
        ])
    );
    assert!(took < Duration::from_secs(2), "{took:?}");
}

#[test]
fn a_version_shown_again_unchanged_is_not_modified() {
    let api = Api::start();
    let fid = api.create_wasm_function(&example_package("hello"), &[]);
    api.publish(&fid).assert_status(201);
    let path = format!("/v1/functions/{fid}/versions/1");
    let shown = api.get(&path);
    shown.assert_status(200);
    let etag = shown
        .header("etag")
        .expect("a version is shown with an ETag");
    assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");
    for held in [etag.clone(), format!("\"other\", {etag}"), "*".to_string()] {
        let again = api.request("GET", &path, &[("if-none-match", &held)], Vec::new());
        again.assert_status(304);
        assert!(again.body.is_empty());
        assert_eq!(again.header("etag").as_deref(), Some(etag.as_str()));
    }
    api.request("GET", &path, &[("if-none-match", "\"other\"")], Vec::new())
        .assert_status(200);
}

#[test]
fn a_version_shown_after_it_ran_has_another_etag() {
    let api = Api::start();
    let fid = api.create_wasm_function(&example_package("hello"), &[]);
    api.publish(&fid).assert_status(201);
    let path = format!("/v1/functions/{fid}/versions/1");
    let before = api.get(&path).header("etag").unwrap();
    api.post_json(
        "/v1/executions",
        &json!({"function_id": fid, "function_version": 1}),
    )
    .assert_status(201);
    let after = api.request("GET", &path, &[("if-none-match", &before)], Vec::new());
    after.assert_status(200);
    assert_eq!(after.json()["count"], 1);
    assert_ne!(after.header("etag").unwrap(), before);
}

#[test]
fn a_version_download_is_cacheable_for_good_and_not_modified_when_held() {
    let api = Api::start();
    let package = example_package("hello");
    let fid = api.create_wasm_function(&package, &[]);
    api.publish(&fid).assert_status(201);
    let path = format!("/v1/functions/{fid}/versions/1?download=true");
    let downloaded = api.get(&path);
    downloaded.assert_status(200);
    assert_eq!(downloaded.body, package);
    assert_eq!(
        downloaded.header("cache-control").as_deref(),
        Some("private, max-age=31536000, immutable")
    );
    let etag = downloaded.header("etag").expect("a download has an ETag");
    let again = api.request("GET", &path, &[("if-none-match", &etag)], Vec::new());
    again.assert_status(304);
    assert!(again.body.is_empty());
    assert_eq!(again.header("etag"), Some(etag));
}

#[test]
fn the_current_code_download_is_not_declared_immutable() {
    let api = Api::start();
    let fid = api.create_wasm_function(&example_package("hello"), &[]);
    let downloaded = api.get(&format!("/v1/functions/{fid}?download=true"));
    downloaded.assert_status(200);
    assert_eq!(downloaded.header("cache-control"), None);
}

#[test]
fn a_diff_against_the_current_code_during_package_updates_is_never_a_server_error() {
    let api = Api::start();
    let packages = [1, 2].map(|seed| zip_of(&[("lib.bin", &incompressible(seed, 3 << 20))]));
    let fid = api.create_wasm_function(&packages[0], &[]);
    api.publish(&fid).assert_status(201);
    let updating = std::sync::atomic::AtomicBool::new(true);
    std::thread::scope(|s| {
        s.spawn(|| {
            for i in 1..=40 {
                api.update_package(&fid, &packages[i % 2])
                    .assert_status(200);
            }
            updating.store(false, std::sync::atomic::Ordering::SeqCst);
        });
        let mut diffs = 0;
        while updating.load(std::sync::atomic::Ordering::SeqCst) || diffs < 40 {
            let reply = diff(&api, &fid, "1", "0");
            assert_eq!(reply.status, 200, "diff {diffs}: {}", reply.text());
            diffs += 1;
        }
    });
}
