use serde_json::json;
use spinling_api_tests::{incompressible, md5_hex, multipart, package, slow_download, zip_of, Api};
use std::time::Duration;

#[test]
fn creating_a_package_function_records_the_md5_of_the_upload() {
    let api = Api::start();
    let runtime = api.create_runtime();
    let zip = package("a");
    let function = api.create_function(&runtime, &zip);
    assert_eq!(
        function["code"],
        json!({"source": "package", "md5sum": md5_hex(&zip)})
    );
    assert_eq!(function["runtime_id"], runtime.as_str());
    assert_eq!(function["cpu"], 100);
    assert_eq!(function["memory_size"], 33554432);
    assert_eq!(function["timeout"], 5);
    assert_eq!(function["count"], 0);
    assert_eq!(function["latest_version"], 0);
    assert_eq!(function["project_id"], "default");
}

#[test]
fn a_function_lists_with_code_as_a_json_string_and_shows_with_code_as_an_object() {
    let api = Api::start();
    let runtime = api.create_runtime();
    let id = api.create_function_id(&runtime, &package("a"));
    let list = api.get("/v1/functions").json();
    let code = list["functions"][0]["code"]
        .as_str()
        .expect("code is a string in lists");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(code).unwrap()["source"],
        "package"
    );
    assert!(api.get(&format!("/v1/functions/{id}")).json()["code"].is_object());
}

#[test]
fn downloading_a_function_returns_its_exact_bytes() {
    let api = Api::start();
    let runtime = api.create_runtime();
    let zip = package("download me");
    let id = api.create_function_id(&runtime, &zip);
    let reply = api.get(&format!("/v1/functions/{id}?download=true"));
    reply.assert_status(200);
    assert_eq!(reply.body, zip);
    assert_eq!(reply.header("content-type").unwrap(), "application/zip");
    assert_eq!(
        reply.header("content-disposition").unwrap(),
        format!("attachment; filename=\"{id}\"")
    );
}

#[test]
fn a_download_racing_updates_gets_the_old_package_or_the_new_whole() {
    let api = Api::start();
    let runtime = api.create_runtime();
    // Several stored chunks each, so a download takes more than one read.
    let packages = [1, 2].map(|seed| zip_of(&[("lib.bin", &incompressible(seed, 3 << 20))]));
    let id = api.create_function_id(&runtime, &packages[0]);
    api.download_while_updating(&id, &packages, 20);
}

/// The package store's grace period, shortened (`package_write_grace_seconds`) so that a
/// test outlasts it: bytes nothing refers to are kept this long after an upload or a download
/// last stamped them.
const GRACE_SECONDS: u64 = 2;

/// Package bytes in the database that no function and no version refers to.
fn unreferenced_chunks(api: &Api) -> String {
    api.query_database(
        "SELECT COUNT(*) FROM package_chunks
         WHERE digest NOT IN (SELECT package_digest FROM functions WHERE package_digest IS NOT NULL)
           AND digest NOT IN (SELECT package_digest FROM function_versions)",
    )
    .remove(0)
}

/// Issue 22 item 4: a download in flight is never cut, whatever is uploaded, freed or swept
/// meanwhile, however long its client pauses.
#[test]
fn a_download_paused_past_the_grace_period_is_whole_though_its_bytes_were_uploaded_again_and_freed()
{
    let grace = GRACE_SECONDS.to_string();
    let api = Api::start_with(&[("package_write_grace_seconds", &grace)]);
    let runtime = api.create_runtime();
    // Far more than the socket buffers on the way hold: the app is still reading chunks when
    // the client stops reading.
    let big = zip_of(&[("lib.bin", &incompressible(5, 24 << 20))]);
    let first = api.create_function_id(&runtime, &big);
    let past_the_grace = Duration::from_secs(GRACE_SECONDS + 1);
    let meanwhile = || {
        // The same bytes uploaded again and published (the upload's stamp dropped)...
        let second = api.create_function_id(&runtime, &big);
        // ...and then freed: the collector runs with each delete.
        api.delete(&format!("/v1/functions/{first}"))
            .assert_status(204);
        api.delete(&format!("/v1/functions/{second}"))
            .assert_status(204);
        assert_eq!(api.query_database("SELECT COUNT(*) FROM packages"), ["0"]);
        // The client reads nothing for several grace periods, and the collector sweeps stale
        // stamps at each publish of other bytes.
        for round in 0..2 {
            std::thread::sleep(past_the_grace);
            api.create_function_id(&runtime, &package(&format!("sweep {round}")));
        }
    };
    let path = format!("/v1/functions/{first}?download=true");
    let body = slow_download(api.address(), &path, Duration::ZERO, meanwhile);
    assert!(body == big, "{} bytes of {}", body.len(), big.len());
    // Once the download is over, nothing keeps its bytes past the grace period.
    std::thread::sleep(past_the_grace);
    api.create_function_id(&runtime, &package("sweep after"));
    assert_eq!(unreferenced_chunks(&api), "0");
}

#[test]
fn a_json_body_with_code_as_an_object_creates_an_image_function() {
    let api = Api::start();
    let reply = api.post_json(
        "/v1/functions",
        &json!({"name": "img", "code": {"source": "image", "image": "alpine"}}),
    );
    reply.assert_status(201);
    let function = reply.json();
    assert!(function["entry"].is_null());
    assert!(function["runtime_id"].is_null());
    let id = function["id"].as_str().unwrap();
    api.get(&format!("/v1/functions/{id}?download=true"))
        .assert_error(405, "Download image function is not allowed.");
}

#[test]
fn a_form_body_creates_an_image_function() {
    let api = Api::start();
    let reply = api.post_raw(
        "/v1/functions",
        "application/x-www-form-urlencoded",
        b"code=%7B%22source%22%3A+%22image%22%2C+%22image%22%3A+%22alpine%22%7D&timeout=10",
    );
    reply.assert_status(201);
    assert_eq!(reply.json()["timeout"], 10);
}

#[test]
fn code_is_required() {
    let api = Api::start();
    api.post_json("/v1/functions", &json!({"name": "x"}))
        .assert_error(400, "Required param is missing. Required: {'code'}");
}

#[test]
fn code_that_is_not_json_is_a_bad_request() {
    let api = Api::start();
    let reply = api.post_json("/v1/functions", &json!({"code": "{not json"}));
    assert_eq!(reply.status, 400);
    assert!(reply.json()["faultstring"]
        .as_str()
        .unwrap()
        .starts_with("Invalid input"));
}

#[test]
fn an_unknown_code_source_is_refused() {
    let api = Api::start();
    api.post_json("/v1/functions", &json!({"code": "{\"source\": \"ftp\"}"}))
        .assert_error(
            400,
            "Invalid code source specified, available sources: image, package, swift",
        );
}

#[test]
fn swift_is_not_supported() {
    let api = Api::start();
    let runtime = api.create_runtime();
    api.post_json(
        "/v1/functions",
        &json!({"runtime_id": runtime, "code": {"source": "swift", "swift": {"container": "c", "object": "o"}}}),
    )
    .assert_error(400, "Swift object not supported.");
}

#[test]
fn resource_limits_are_enforced_with_qinlings_messages() {
    let api = Api::start();
    let runtime = api.create_runtime();
    let zip = package("a");
    let cases = [
        ("timeout", "0", "timeout resource limitation not within the allowable range: 1 ~ 300(seconds)."),
        ("timeout", "abc", "Invalid timeout resource specified. An integer is required."),
        ("cpu", "99", "cpu resource limitation not within the allowable range: 100 ~ 300(millicpu)."),
        ("cpu", "1e99", "Invalid cpu resource specified. An integer is required."),
        (
            "timeout",
            "99999999999999999999",
            "timeout resource limitation not within the allowable range: 1 ~ 300(seconds).",
        ),
        (
            "memory_size",
            "1",
            "memory resource limitation not within the allowable range: 33554432 ~ 134217728(bytes).",
        ),
    ];
    for (field, value, message) in cases {
        api.create_function_with(&runtime, &zip, &[(field, value)])
            .assert_error(400, message);
    }
}

#[test]
fn a_runtime_is_required_and_must_exist() {
    let api = Api::start();
    let (content_type, body) =
        multipart(&[("code", r#"{"source": "package"}"#)], Some(&package("a")));
    api.post_raw("/v1/functions", &content_type, &body)
        .assert_error(400, "\"runtime_id\" must be specified.");
    let missing = "0d2a8e6c-3e51-4f5a-8c3e-111111111111";
    api.create_function_with(missing, &package("a"), &[])
        .assert_error(404, &format!("Runtime not found [id={missing}]"));
}

#[test]
fn a_package_function_needs_a_package() {
    let api = Api::start();
    let runtime = api.create_runtime();
    let (content_type, body) = multipart(
        &[
            ("code", r#"{"source": "package"}"#),
            ("runtime_id", &runtime),
        ],
        None,
    );
    api.post_raw("/v1/functions", &content_type, &body)
        .assert_error(400, "Package file is required for package type function.");
}

#[test]
fn a_package_with_the_wrong_md5_is_refused() {
    let api = Api::start();
    let runtime = api.create_runtime();
    let (content_type, body) = multipart(
        &[
            (
                "code",
                r#"{"source": "package", "md5sum": "00000000000000000000000000000000"}"#,
            ),
            ("runtime_id", &runtime),
        ],
        Some(&package("a")),
    );
    api.post_raw("/v1/functions", &content_type, &body)
        .assert_error(400, "Package md5 mismatch.");
}

#[test]
fn a_package_that_is_not_a_zip_is_refused() {
    let api = Api::start();
    let runtime = api.create_runtime();
    api.create_function_with(&runtime, b"just text", &[])
        .assert_error(400, "Package is not a valid ZIP package.");
}

#[test]
fn a_package_over_the_size_limit_is_413() {
    let api = Api::start_with(&[("max_package_size", "1000")]);
    let runtime = api.create_runtime();
    let big: Vec<u8> = (0..5000u32).flat_map(|i| i.to_le_bytes()).collect();
    let zip = spinling_api_tests::zip_of(&[("big.bin", &big)]);
    let reply = api.create_function_with(&runtime, &zip, &[]);
    assert_eq!(reply.status, 413, "{}", reply.text());
    assert_eq!(reply.json()["faultcode"], "Client");
}

#[test]
fn an_upload_announced_larger_than_the_limit_is_refused_before_it_is_read() {
    let api = Api::start_with(&[("max_package_size", "1000")]);
    let reply = api.request(
        "POST",
        "/v1/functions",
        &[
            ("content-type", "multipart/form-data; boundary=x"),
            ("content-length", "999999999"),
        ],
        Vec::new(),
    );
    assert_eq!(reply.status, 413, "{}", reply.text());
}

#[test]
fn updating_the_package_changes_the_md5_and_the_download() {
    let api = Api::start();
    let runtime = api.create_runtime();
    let id = api.create_function_id(&runtime, &package("a"));
    let new = package("b");
    let reply = api.update_package(&id, &new);
    reply.assert_status(200);
    assert_eq!(reply.json()["code"]["md5sum"], md5_hex(&new));
    assert!(reply.json()["updated_at"].is_string());
    assert_eq!(
        api.get(&format!("/v1/functions/{id}?download=true")).body,
        new
    );
}

#[test]
fn updating_with_an_unchanged_checksum_is_refused() {
    let api = Api::start();
    let runtime = api.create_runtime();
    let zip = package("a");
    let id = api.create_function_id(&runtime, &zip);
    let code = format!(r#"{{"source": "package", "md5sum": "{}"}}"#, md5_hex(&zip));
    let (content_type, body) = multipart(&[("code", &code)], Some(&zip));
    api.request(
        "PUT",
        &format!("/v1/functions/{id}"),
        &[("content-type", &content_type)],
        body,
    )
    .assert_error(400, "The function code checksum is not changed.");
}

#[test]
fn updating_settings_keeps_the_package() {
    let api = Api::start();
    let runtime = api.create_runtime();
    let zip = package("a");
    let id = api.create_function_id(&runtime, &zip);
    let reply = api.put_json(
        &format!("/v1/functions/{id}"),
        &json!({"name": "n", "timeout": 30, "cpu": 200}),
    );
    reply.assert_status(200);
    let f = reply.json();
    assert_eq!(
        (f["name"].as_str(), f["timeout"].as_i64(), f["cpu"].as_i64()),
        (Some("n"), Some(30), Some(200))
    );
    assert_eq!(f["code"]["md5sum"], md5_hex(&zip));
    api.put_json(&format!("/v1/functions/{id}"), &json!({"timeout": 0}))
        .assert_error(
            400,
            "timeout resource limitation not within the allowable range: 1 ~ 300(seconds).",
        );
}

#[test]
fn an_image_function_cannot_change_its_code_type_or_code() {
    let api = Api::start();
    let id = api.create_image_function();
    api.put_json(
        &format!("/v1/functions/{id}"),
        &json!({"code": "{\"source\": \"package\"}"}),
    )
    .assert_error(400, "The function code type can not be changed.");
    api.put_json(&format!("/v1/functions/{id}"), &json!({"cpu": 200}))
        .assert_error(400, "The image type function code can not be changed.");
    api.put_json(&format!("/v1/functions/{id}"), &json!({"timeout": 9}))
        .assert_status(200);
}

#[test]
fn an_unknown_function_is_404_with_its_id() {
    let api = Api::start();
    let id = "0d2a8e6c-3e51-4f5a-8c3e-111111111111";
    let path = format!("/v1/functions/{id}");
    let message = format!("Function not found [id={id}]");
    api.get(&path).assert_error(404, &message);
    api.delete(&path).assert_error(404, &message);
    api.post_json(&format!("{path}/detach"), &json!({}))
        .assert_error(404, &message);
}

#[test]
fn a_function_id_that_is_not_a_uuid_is_404_to_show_and_400_to_delete_or_detach() {
    let api = Api::start();
    // Show is a Pecan route in Qinling, delete and detach are WSME routes typed uuid.
    api.get("/v1/functions/not-a-uuid")
        .assert_error(404, "Function not found [id=not-a-uuid]");
    let bad_uuid = "Invalid input for field/attribute id. Value: 'not-a-uuid'. \
                    Expected a uuid but received not-a-uuid.";
    api.delete("/v1/functions/not-a-uuid")
        .assert_error(400, bad_uuid);
    api.post_json("/v1/functions/not-a-uuid/detach", &json!({}))
        .assert_error(400, bad_uuid);
}

#[test]
fn deleting_a_function_deletes_its_versions() {
    let api = Api::start();
    let runtime = api.create_runtime();
    let id = api.create_function_id(&runtime, &package("a"));
    api.publish(&id).assert_status(201);
    api.delete(&format!("/v1/functions/{id}"))
        .assert_status(204);
    api.get(&format!("/v1/functions/{id}")).assert_status(404);
    api.get(&format!("/v1/functions/{id}/versions/1"))
        .assert_status(404);
}

#[test]
fn a_function_with_an_alias_cannot_be_deleted() {
    let api = Api::start();
    let runtime = api.create_runtime();
    let id = api.create_function_id(&runtime, &package("a"));
    api.post_json("/v1/aliases", &json!({"name": "prod", "function_id": id}))
        .assert_status(201);
    api.delete(&format!("/v1/functions/{id}")).assert_error(
        403,
        "The function is still associated with function alias(es).",
    );
}

#[test]
fn all_projects_false_lists_only_the_callers_project() {
    let api = Api::start();
    api.get("/v1/functions?all_projects=false")
        .assert_status(200);
    api.get("/v1/functions?all_projects=banana")
        .assert_status(400);
    api.get("/v1/functions?bogus=1")
        .assert_error(400, "Unknown argument: \"bogus\"");
}

#[test]
fn function_detach_is_accepted() {
    let api = Api::start();
    let runtime = api.create_runtime();
    let id = api.create_function_id(&runtime, &package("a"));
    let reply = api.request("POST", &format!("/v1/functions/{id}/detach"), &[], vec![]);
    reply.assert_status(202);
    assert!(reply.body.is_empty());
}

#[test]
fn racing_a_package_update_against_a_settings_update_never_loses_the_package() {
    let api = Api::start();
    let runtime = api.create_runtime();
    let functions: Vec<String> = (0..10)
        .map(|f| api.create_function_id(&runtime, &package(&format!("race{f}-start"))))
        .collect();
    for round in 0..200 {
        let id = &functions[round % functions.len()];
        let new = package(&format!("race-round-{round}"));
        let (uploaded, described) = std::thread::scope(|s| {
            let upload = s.spawn(|| api.update_package(id, &new).status);
            let describe = s.spawn(|| {
                api.put_json(
                    &format!("/v1/functions/{id}"),
                    &json!({"description": format!("round {round}")}),
                )
                .status
            });
            (upload.join().unwrap(), describe.join().unwrap())
        });
        assert_eq!((uploaded, described), (200, 200), "round {round}");
        let download = api.get(&format!("/v1/functions/{id}?download=true"));
        assert_eq!(download.status, 200, "round {round}: {}", download.text());
        assert!(
            download.body == new,
            "round {round}: the new package was lost"
        );
        let shown = api.get(&format!("/v1/functions/{id}")).json();
        assert_eq!(shown["code"]["md5sum"], md5_hex(&new), "round {round}");
        assert_eq!(
            shown["description"],
            format!("round {round}"),
            "round {round}"
        );
    }
    let unreferenced = api.query_database(
        "SELECT digest FROM packages
         WHERE digest NOT IN (SELECT package_digest FROM functions WHERE package_digest IS NOT NULL)
           AND digest NOT IN (SELECT package_digest FROM function_versions)",
    );
    assert!(
        unreferenced.is_empty(),
        "unreferenced packages: {unreferenced:?}"
    );
    let orphan_chunks =
        api.query_database("SELECT DISTINCT digest FROM package_chunks WHERE digest NOT IN (SELECT digest FROM packages)");
    assert!(orphan_chunks.is_empty(), "orphan chunks: {orphan_chunks:?}");
}
