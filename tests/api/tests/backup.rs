//! Backup and restore (`GET /v1/admin/export`, `POST /v1/admin/import`): a deployment moved
//! from SQLite to PostgreSQL and back serves the same lists and the same bytes, and a bad
//! archive changes nothing.

use spinling_api_tests::serde_json::{json, Value as Json};
use spinling_api_tests::{incompressible, package, zip_of, Api, Database};

/// A deployment with a bit of everything: a runtime, two functions (one with a package of
/// several chunks), versions, an alias with a canary route, executions, a webhook and a job.
fn populated(database: Database) -> (Api, Vec<String>) {
    let api = Api::start_on(database, &[]);
    let runtime = api.create_runtime();
    let big = zip_of(&[("main.wasm", &incompressible(24, 3 << 20))]);
    let first = api.create_function_id(&runtime, &big);
    api.publish(&first).assert_status(201);
    api.update_package(&first, &package("second"))
        .assert_status(200);
    api.publish(&first).assert_status(201);
    let second = api.create_function_id(&runtime, &package("other"));
    api.post_json(
        "/v1/aliases",
        &json!({"name": "prod", "function_id": first, "function_version": 1}),
    )
    .assert_status(201);
    api.put_json("/v1/aliases/prod", &json!({"routing": {"2": 0.1}}))
        .assert_status(200);
    for body in [
        json!({"function_id": first, "function_version": 1}),
        json!({"function_id": first}),
        json!({"function_id": second}),
        json!({"function_alias": "prod"}),
    ] {
        api.post_json("/v1/executions", &body).assert_status(201);
    }
    api.post_json(
        "/v1/webhooks",
        &json!({"function_id": first, "function_version": 2}),
    )
    .assert_status(201);
    api.post_json(
        "/v1/jobs",
        &json!({"function_id": second, "pattern": "0 3 * * *", "name": "nightly"}),
    )
    .assert_status(201);
    (api, vec![first, second])
}

fn export(api: &Api) -> Vec<u8> {
    let reply = api.get("/v1/admin/export");
    reply.assert_status(200);
    assert_eq!(
        reply.header("content-type").as_deref(),
        Some("application/x-ndjson")
    );
    reply.body
}

fn import(api: &Api, archive: &[u8]) -> spinling_api_tests::Reply {
    api.request(
        "POST",
        "/v1/admin/import",
        &[("content-type", "application/x-ndjson")],
        archive.to_vec(),
    )
}

/// Every list the API serves, whole and a page of two at a time, and every package's bytes.
fn everything(api: &Api, functions: &[String]) -> Vec<(String, Json)> {
    let mut paths: Vec<String> = [
        "/v1/runtimes",
        "/v1/functions",
        "/v1/aliases",
        "/v1/aliases/prod",
        "/v1/aliases/prod/history",
        "/v1/executions",
        "/v1/executions?limit=2",
        "/v1/webhooks",
        "/v1/jobs",
    ]
    .map(String::from)
    .to_vec();
    for id in functions {
        paths.push(format!("/v1/functions/{id}"));
        paths.push(format!("/v1/functions/{id}/versions"));
        paths.push(format!("/v1/functions/{id}/versions?limit=1"));
    }
    let mut all = Vec::new();
    for path in paths {
        let reply = api.get(&path);
        reply.assert_status(200);
        let mut body = reply.json();
        // The next page's link names the host the client used: the same here.
        if let Some(next) = body.get_mut("next") {
            *next = Json::String(next.as_str().unwrap().to_string());
        }
        all.push((path, body));
    }
    for id in functions {
        let mut downloads = vec![format!("/v1/functions/{id}?download=true")];
        let versions = api.get(&format!("/v1/functions/{id}/versions")).json();
        for version in versions["function_versions"].as_array().unwrap() {
            let n = &version["version_number"];
            downloads.push(format!("/v1/functions/{id}/versions/{n}?download=true"));
        }
        for path in downloads {
            let reply = api.get(&path);
            reply.assert_status(200);
            let digest = spinling_api_tests::md5_hex(&reply.body);
            all.push((path, json!({"bytes": reply.body.len(), "md5": digest})));
        }
    }
    all
}

#[track_caller]
fn assert_same(left: &[(String, Json)], right: &[(String, Json)]) {
    assert_eq!(left.len(), right.len());
    for ((path, a), (_, b)) in left.iter().zip(right) {
        assert_eq!(a, b, "{path}");
    }
}

#[test]
fn an_export_imported_into_postgres_and_back_into_sqlite_serves_the_same_lists_and_bytes() {
    let (sqlite, functions) = populated(Database::Sqlite);
    let before = everything(&sqlite, &functions);
    assert!(before
        .iter()
        .any(|(_, body)| body["bytes"].as_u64() > Some(3 << 20)));

    let postgres = Api::start_on(Database::Postgres, &[]);
    let imported = import(&postgres, &export(&sqlite));
    imported.assert_status(201);
    assert_eq!(imported.json()["rows"]["function_versions"], 2);
    assert_eq!(imported.json()["rows"]["executions"], 4);
    assert_same(&everything(&postgres, &functions), &before);

    let back = Api::start_on(Database::Sqlite, &[]);
    import(&back, &export(&postgres)).assert_status(201);
    assert_same(&everything(&back, &functions), &before);

    // Still a working deployment: a new version is numbered after the imported ones.
    back.update_package(&functions[0], &package("third"))
        .assert_status(200);
    back.publish(&functions[0]).assert_status(201);
    assert_eq!(back.version_numbers(&functions[0]), [1, 2, 3]);
}

/// The target has no functions, runtimes, packages or executions: nothing was imported.
#[track_caller]
fn assert_empty(api: &Api) {
    for (path, key) in [
        ("/v1/runtimes", "runtimes"),
        ("/v1/functions", "functions"),
        ("/v1/executions", "executions"),
    ] {
        assert_eq!(api.get(path).json()[key], json!([]), "{path}");
    }
    assert_eq!(api.query_database("SELECT COUNT(*) FROM packages"), ["0"]);
    assert_eq!(
        api.query_database("SELECT COUNT(*) FROM package_chunks"),
        ["0"]
    );
}

#[test]
fn a_truncated_archive_is_refused_and_changes_nothing() {
    let (source, _) = populated(Database::requested());
    let archive = export(&source);
    let target = Api::start_on(Database::requested(), &[]);
    import(&target, &archive[..archive.len() * 2 / 3]).assert_error(
        400,
        "Invalid backup archive: it is truncated: it ends in the middle of a chunk. \
         Nothing was imported.",
    );
    let last_line = archive[..archive.len() - 1]
        .iter()
        .rposition(|b| *b == b'\n')
        .unwrap();
    import(&target, &archive[..last_line + 1]).assert_error(
        400,
        "Invalid backup archive: it is truncated: it ends before its end record. \
         Nothing was imported.",
    );
    assert_empty(&target);
    // And the whole archive goes in after all.
    import(&target, &archive).assert_status(201);
}

#[test]
fn a_tampered_package_is_refused_and_changes_nothing() {
    let (source, _) = populated(Database::requested());
    let mut archive = export(&source);
    let chunk = archive
        .windows(9)
        .position(|w| w == b"{\"chunk\":")
        .unwrap();
    let bytes = chunk + archive[chunk..].iter().position(|b| *b == b'\n').unwrap() + 1;
    archive[bytes + 100] ^= 1;
    let target = Api::start_on(Database::requested(), &[]);
    let reply = import(&target, &archive);
    reply.assert_status(400);
    let fault = reply.json()["faultstring"].as_str().unwrap().to_string();
    assert!(
        fault.starts_with("Invalid backup archive: the bytes of package ")
            && fault.ends_with(
                " do not match its digest and MD5: they were damaged or altered. \
                 Nothing was imported."
            ),
        "{fault}"
    );
    assert_empty(&target);
}

#[test]
fn an_import_into_a_database_that_has_functions_is_refused() {
    let (source, _) = populated(Database::requested());
    let archive = export(&source);
    let target = Api::start_on(Database::requested(), &[]);
    let runtime = target.create_runtime();
    let mine = target.create_function_id(&runtime, &package("mine"));
    target.post_json("/v1/runtimes", &json!({"image": "x"}));
    // Runtimes come first in the archive's tables, and the target has one.
    import(&target, &archive).assert_error(
        409,
        "The database is not empty: it has runtimes. Import into a new, empty database; \
         nothing was imported.",
    );
    let functions = target.get("/v1/functions").json();
    assert_eq!(functions["functions"].as_array().unwrap().len(), 1);
    assert_eq!(functions["functions"][0]["id"], mine.as_str());
}

#[test]
fn in_auth_mode_none_the_admin_routes_are_open_to_the_caller() {
    // As every admin route in auth mode none: no policy is enforced (a laptop). In keystone
    // mode a member gets 403 (the unit test `only_an_admin_may_export_or_import`).
    let api = Api::start_on(Database::requested(), &[]);
    let archive = export(&api);
    assert!(archive.starts_with(b"{\"created_at\":"));
    import(&api, &archive).assert_status(201);
    api.request("PUT", "/v1/admin/export", &[], Vec::new())
        .assert_status(405);
}
