//! Auth mode `keystone` against a real Keystone: tokens, project isolation and the admin
//! policy (spec §1.6–§1.8, with §7's alias-list hole closed).

use serde_json::{json, Value as Json};
use spinling_api_tests::keystone::{start_app, Keystone, Session};
use spinling_api_tests::Api;
use std::time::Duration;

fn start(keystone: &Keystone, token_cache_ttl: &str) -> Api {
    start_app(&keystone.variables(token_cache_ttl))
}

fn session<'a>(api: &'a Api, keystone: &Keystone, user: &str) -> Session<'a> {
    Session {
        api,
        token: keystone.token(user),
    }
}

/// What project alpha owns after a little work: a function with a version, an alias and an
/// execution, on a runtime the cloud admin registered.
struct Alpha {
    function: String,
    alias: String,
    execution: String,
}

fn alpha_world(admin: &Session, alpha: &Session) -> Alpha {
    let function = alpha.published_hello(admin);
    alpha
        .post_json(
            "/v1/aliases",
            &json!({"name": "prod", "function_id": function, "function_version": 1}),
        )
        .assert_status(201);
    let execution = alpha.post_json("/v1/executions", &json!({"function_id": function}));
    execution.assert_status(201);
    assert_eq!(
        execution.json()["status"],
        "success",
        "{}",
        execution.text()
    );
    Alpha {
        function,
        alias: "prod".into(),
        execution: execution.json()["id"].as_str().unwrap().to_string(),
    }
}

fn ids(list: &Json, key: &str, field: &str) -> Vec<String> {
    list[key]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item[field].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn every_protected_route_needs_a_token() {
    let keystone = Keystone::shared();
    let api = start(keystone, "300");
    for (method, path) in [
        ("GET", "/v1/runtimes"),
        ("POST", "/v1/runtimes"),
        ("GET", "/v1/functions"),
        ("POST", "/v1/functions"),
        ("GET", "/v1/functions/0b5e3c1a-52a4-4a3c-9d5e-000000000000"),
        (
            "GET",
            "/v1/functions/0b5e3c1a-52a4-4a3c-9d5e-000000000000/versions",
        ),
        (
            "POST",
            "/v1/functions/0b5e3c1a-52a4-4a3c-9d5e-000000000000/versions",
        ),
        ("GET", "/v1/aliases"),
        ("GET", "/v1/executions"),
        ("POST", "/v1/executions"),
    ] {
        let reply = api.request(method, path, &[], Vec::new());
        reply.assert_error(
            401,
            "Failed to validate access token: Authentication required",
        );
        assert!(
            reply.header("www-authenticate").is_some(),
            "{method} {path}"
        );
    }
}

#[test]
fn an_upload_without_a_token_is_refused_before_its_body_is_read() {
    let keystone = Keystone::shared();
    let api = start(keystone, "300");
    // Announced far over every limit: the 401 comes first, so nothing was read.
    api.request(
        "POST",
        "/v1/functions",
        &[
            ("content-type", "multipart/form-data; boundary=x"),
            ("content-length", "1000000000"),
        ],
        Vec::new(),
    )
    .assert_error(
        401,
        "Failed to validate access token: Authentication required",
    );
}

#[test]
fn a_token_keystone_does_not_know_is_invalid() {
    let keystone = Keystone::shared();
    let api = start(keystone, "300");
    api.request(
        "GET",
        "/v1/functions",
        &[("x-auth-token", "gAAAAABnot-a-token")],
        Vec::new(),
    )
    .assert_error(
        401,
        "Failed to validate access token: Auth token is invalid: gAAAAABnot-a-token",
    );
}

#[test]
fn discovery_needs_no_token() {
    let keystone = Keystone::shared();
    let api = start(keystone, "300");
    api.get("/").assert_status(200);
    api.get("/v1/").assert_status(200);
}

#[test]
fn a_valid_token_works_and_rows_belong_to_its_project() {
    let keystone = Keystone::shared();
    let api = start(keystone, "300");
    let admin = session(&api, keystone, "admin");
    let alpha = session(&api, keystone, "alpha_member");
    let world = alpha_world(&admin, &alpha);
    let function = alpha.get(&format!("/v1/functions/{}", world.function));
    function.assert_status(200);
    assert_eq!(function.json()["project_id"], keystone.project_id("alpha"));
    let execution = alpha.get(&format!("/v1/executions/{}", world.execution));
    assert_eq!(execution.json()["project_id"], keystone.project_id("alpha"));
}

/// Issue 25: an alias's history says who changed it, by the user id of the token Keystone
/// validated.
#[test]
fn an_alias_history_names_the_user_of_each_change() {
    let keystone = Keystone::shared();
    let api = start(keystone, "300");
    let admin = session(&api, keystone, "admin");
    let member = session(&api, keystone, "alpha_member");
    let alpha_admin = session(&api, keystone, "alpha_admin");
    let world = alpha_world(&admin, &member);
    alpha_admin
        .put_json(
            &format!("/v1/aliases/{}", world.alias),
            &json!({"function_version": 0}),
        )
        .assert_status(200);
    let history = member.get(&format!("/v1/aliases/{}/history", world.alias));
    history.assert_status(200);
    let who: Vec<(Json, Json, Json)> = history.json()["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["cause"].clone(),
                e["project_id"].clone(),
                e["user_id"].clone(),
            )
        })
        .collect();
    let alpha = keystone.project_id("alpha");
    assert_eq!(
        who,
        [
            (
                json!("created"),
                json!(alpha),
                json!(keystone.value("KS_ALPHA_MEMBER_ID"))
            ),
            (
                json!("request"),
                json!(alpha),
                json!(keystone.value("KS_ALPHA_ADMIN_ID"))
            ),
        ]
    );
}

#[test]
fn another_project_cannot_see_or_touch_a_function_or_its_versions() {
    let keystone = Keystone::shared();
    let api = start(keystone, "300");
    let admin = session(&api, keystone, "admin");
    let alpha = session(&api, keystone, "alpha_member");
    let beta = session(&api, keystone, "beta_member");
    let world = alpha_world(&admin, &alpha);
    let fid = &world.function;
    let not_found = format!("Function not found [id={fid}]");
    beta.get(&format!("/v1/functions/{fid}"))
        .assert_error(404, &not_found);
    assert_eq!(
        beta.get(&format!("/v1/functions/{fid}?download=true"))
            .status,
        404
    );
    assert_eq!(
        beta.put_json(&format!("/v1/functions/{fid}"), &json!({"name": "x"}))
            .status,
        404
    );
    beta.get(&format!("/v1/functions/{fid}/versions"))
        .assert_error(404, &not_found);
    assert_eq!(
        beta.get(&format!("/v1/functions/{fid}/versions/1")).status,
        404
    );
    assert_eq!(
        beta.get(&format!("/v1/functions/{fid}/versions/1?download=true"))
            .status,
        404
    );
    assert_eq!(
        beta.post_json(&format!("/v1/functions/{fid}/versions"), &json!({}))
            .status,
        404
    );
    assert_eq!(
        beta.delete(&format!("/v1/functions/{fid}/versions/1"))
            .status,
        404
    );
    assert_eq!(beta.delete(&format!("/v1/functions/{fid}")).status, 404);
    assert!(ids(&beta.get("/v1/functions").json(), "functions", "id").is_empty());
    // Still all there for its owner.
    alpha
        .get(&format!("/v1/functions/{fid}/versions/1"))
        .assert_status(200);
}

#[test]
fn another_project_cannot_see_aliases_or_executions_or_run_the_function() {
    let keystone = Keystone::shared();
    let api = start(keystone, "300");
    let admin = session(&api, keystone, "admin");
    let alpha = session(&api, keystone, "alpha_member");
    let beta = session(&api, keystone, "beta_member");
    let world = alpha_world(&admin, &alpha);
    beta.get(&format!("/v1/aliases/{}", world.alias))
        .assert_error(404, "FunctionAlias not found [name=prod]");
    assert!(ids(&beta.get("/v1/aliases").json(), "function_aliases", "name").is_empty());
    let execution = &world.execution;
    let gone = format!("Execution not found [id={execution}]");
    beta.get(&format!("/v1/executions/{execution}"))
        .assert_error(404, &gone);
    assert_eq!(
        beta.get(&format!("/v1/executions/{execution}/log")).status,
        404
    );
    assert_eq!(
        beta.delete(&format!("/v1/executions/{execution}")).status,
        404
    );
    assert!(ids(&beta.get("/v1/executions").json(), "executions", "id").is_empty());
    beta.post_json("/v1/executions", &json!({"function_id": world.function}))
        .assert_error(404, &format!("Function not found [id={}]", world.function));
    assert_eq!(
        beta.post_json("/v1/executions", &json!({"function_alias": "prod"}))
            .status,
        404
    );
    assert_eq!(
        beta.post_json(
            "/v1/aliases",
            &json!({"name": "mine", "function_id": world.function, "function_version": 1}),
        )
        .status,
        404
    );
}

#[test]
fn a_member_cannot_use_admin_operations() {
    let keystone = Keystone::shared();
    let api = start(keystone, "300");
    let admin = session(&api, keystone, "admin");
    let alpha = session(&api, keystone, "alpha_member");
    let world = alpha_world(&admin, &alpha);
    let runtime = ids(&alpha.get("/v1/runtimes").json(), "runtimes", "id")[0].clone();
    let fid = &world.function;
    for reply in [
        alpha.post_json("/v1/runtimes", &json!({"image": "spinling/wasm"})),
        alpha.put_json(&format!("/v1/runtimes/{runtime}"), &json!({"name": "x"})),
        alpha.delete(&format!("/v1/runtimes/{runtime}")),
        alpha.post_json(&format!("/v1/functions/{fid}/detach"), &json!({})),
        alpha.post_json(
            &format!("/v1/functions/{fid}/versions/1/detach"),
            &json!({}),
        ),
        alpha.get("/v1/functions?all_projects=true"),
        alpha.get("/v1/executions?all_projects=true"),
        // Qinling let anyone list every project's aliases (spec §7 #1).
        alpha.get("/v1/aliases?all_projects=true"),
    ] {
        reply.assert_error(403, "Operation not allowed");
    }
}

#[test]
fn identity_headers_sent_by_a_client_are_ignored() {
    let keystone = Keystone::shared();
    let api = start(keystone, "300");
    let token = keystone.token("alpha_member");
    let beta = keystone.project_id("beta");
    let reply = api.request(
        "POST",
        "/v1/runtimes",
        &[
            ("x-auth-token", &token),
            ("x-roles", "admin"),
            ("x-project-id", beta),
            ("x-identity-status", "Confirmed"),
            ("content-type", "application/json"),
        ],
        json!({"image": "spinling/wasm"}).to_string().into_bytes(),
    );
    reply.assert_error(403, "Operation not allowed");
}

#[test]
fn an_admin_reads_any_project_by_id_but_lists_it_only_when_asked() {
    let keystone = Keystone::shared();
    let api = start(keystone, "300");
    let admin = session(&api, keystone, "admin");
    let alpha = session(&api, keystone, "alpha_member");
    let world = alpha_world(&admin, &alpha);
    let fid = &world.function;
    admin
        .get(&format!("/v1/functions/{fid}"))
        .assert_status(200);
    admin
        .get(&format!("/v1/functions/{fid}/versions/1"))
        .assert_status(200);
    admin.get("/v1/aliases/prod").assert_status(200);
    admin
        .get(&format!("/v1/executions/{}", world.execution))
        .assert_status(200);
    assert!(ids(&admin.get("/v1/functions").json(), "functions", "id").is_empty());
    assert_eq!(
        ids(
            &admin.get("/v1/functions?all_projects=true").json(),
            "functions",
            "id"
        ),
        vec![fid.clone()]
    );
    let alpha_id = keystone.project_id("alpha");
    assert_eq!(
        ids(
            &admin
                .get(&format!("/v1/executions?project_id={alpha_id}"))
                .json(),
            "executions",
            "id"
        ),
        vec![world.execution.clone()]
    );
    assert_eq!(
        ids(
            &admin.get("/v1/aliases?all_projects=true").json(),
            "function_aliases",
            "name"
        ),
        vec!["prod".to_string()]
    );
    admin
        .post_json(
            &format!("/v1/functions/{fid}/versions/1/detach"),
            &json!({}),
        )
        .assert_status(202);
}

#[test]
fn an_admin_cannot_delete_or_version_another_projects_function() {
    let keystone = Keystone::shared();
    let api = start(keystone, "300");
    let admin = session(&api, keystone, "admin");
    let alpha = session(&api, keystone, "alpha_member");
    let world = alpha_world(&admin, &alpha);
    let fid = &world.function;
    alpha
        .delete(&format!("/v1/aliases/{}", world.alias))
        .assert_status(204);
    admin
        .delete(&format!("/v1/functions/{fid}"))
        .assert_error(403, "Function can only be deleted by its owner.");
    assert_eq!(
        admin
            .post_json(&format!("/v1/functions/{fid}/versions"), &json!({}))
            .status,
        404
    );
    assert_eq!(
        admin
            .delete(&format!("/v1/functions/{fid}/versions/1"))
            .status,
        404
    );
}

#[test]
fn a_revoked_token_stops_working_within_the_cache_ttl() {
    let keystone = Keystone::shared();
    let api = start(keystone, "2");
    let alpha = session(&api, keystone, "alpha_member");
    alpha.get("/v1/functions").assert_status(200);
    keystone.revoke(&alpha.token);
    std::thread::sleep(Duration::from_millis(2500));
    alpha.get("/v1/functions").assert_error(
        401,
        &format!(
            "Failed to validate access token: Auth token is invalid: {}",
            alpha.token
        ),
    );
}

#[test]
fn identity_that_cannot_be_reached_is_a_503() {
    let keystone = Keystone::shared();
    let token = keystone.token("alpha_member");
    let mut variables = keystone.variables("300");
    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v3", closed.local_addr().unwrap());
    drop(closed);
    variables[1].1 = url;
    let api = start_app(&variables);
    api.request(
        "GET",
        "/v1/functions",
        &[("x-auth-token", &token)],
        Vec::new(),
    )
    .assert_error(503, "Identity service unavailable.");
}

#[test]
fn wrong_service_credentials_are_a_503_not_an_accepted_request() {
    let keystone = Keystone::shared();
    let token = keystone.token("alpha_member");
    let mut variables = keystone.variables("300");
    variables[3].1 = "not-the-password".into();
    let api = start_app(&variables);
    api.request(
        "GET",
        "/v1/functions",
        &[("x-auth-token", &token)],
        Vec::new(),
    )
    .assert_error(503, "Identity service unavailable.");
}
