use serde_json::{json, Value as Json};
use spinling_api_tests::{example_package, package, Api};
use std::time::{Duration, Instant};

const MISSING: &str = "0d2a8e6c-3e51-4f5a-8c3e-111111111111";

fn create(api: &Api, body: Json) -> Json {
    let reply = api.post_json("/v1/webhooks", &body);
    reply.assert_status(201);
    reply.json()
}

fn id_of(webhook: &Json) -> String {
    webhook["id"].as_str().unwrap().to_string()
}

/// A function whose version 1 is `hello` ("Hello, Spinling!") and whose current code is
/// `echo` (greets its input's `name`).
fn hello_v1_echo_now(api: &Api) -> String {
    let fid = api.create_wasm_function(&example_package("hello"), &[]);
    api.publish(&fid).assert_status(201);
    api.update_package(&fid, &example_package("echo"))
        .assert_status(200);
    fid
}

fn invoke(api: &Api, path: &str, content_type: &str, body: &[u8]) -> String {
    let reply = api.request(
        "POST",
        path,
        &[("content-type", content_type)],
        body.to_vec(),
    );
    reply.assert_status(202);
    let answer = reply.json();
    assert_eq!(
        answer.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["execution_id"]
    );
    answer["execution_id"].as_str().unwrap().to_string()
}

/// The execution once it has ended.
fn finished(api: &Api, id: &str) -> Json {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let execution = api.get(&format!("/v1/executions/{id}")).json();
        if execution["status"] != "running" {
            return execution;
        }
        assert!(Instant::now() < deadline, "still running: {execution}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn output(execution: &Json) -> Json {
    assert_eq!(execution["status"], "success", "{execution}");
    let result: Json = serde_json::from_str(execution["result"].as_str().unwrap()).unwrap();
    result["output"].clone()
}

fn invoke_path(webhook: &Json) -> String {
    format!("/v1/webhooks/{}/invoke", id_of(webhook))
}

#[test]
fn a_webhook_is_created_listed_shown_updated_and_deleted() {
    let api = Api::start();
    let fid = hello_v1_echo_now(&api);
    let webhook = create(
        &api,
        json!({"function_id": fid, "function_version": 1, "description": "ci"}),
    );
    let id = id_of(&webhook);
    assert_eq!(id.len(), 36);
    assert_eq!(webhook["function_id"], fid.as_str());
    assert_eq!(webhook["function_version"], 1);
    assert_eq!(webhook["function_alias"], Json::Null);
    assert_eq!(webhook["description"], "ci");
    assert_eq!(webhook["project_id"], "default");
    assert_eq!(
        webhook["webhook_url"],
        format!("http://127.0.0.1:3000/v1/webhooks/{id}/invoke")
    );

    let list = api.get("/v1/webhooks").json();
    assert_eq!(list["webhooks"].as_array().unwrap().len(), 1);
    assert_eq!(list["webhooks"][0]["id"], id.as_str());
    assert_eq!(list["webhooks"][0]["webhook_url"], webhook["webhook_url"]);
    assert_eq!(api.get(&format!("/v1/webhooks/{id}")).json(), webhook);

    let updated = api.put_json(
        &format!("/v1/webhooks/{id}"),
        &json!({"function_version": 0, "description": "all"}),
    );
    updated.assert_status(200);
    assert_eq!(updated.json()["function_version"], 0);
    assert_eq!(updated.json()["description"], "all");
    assert!(updated.json()["updated_at"].is_string());

    api.delete(&format!("/v1/webhooks/{id}")).assert_status(204);
    api.get(&format!("/v1/webhooks/{id}"))
        .assert_error(404, &format!("Webhook not found [id={id}]"));
    api.delete(&format!("/v1/webhooks/{id}"))
        .assert_error(404, &format!("Webhook not found [id={id}]"));
}

#[test]
fn a_webhook_without_a_version_stores_null() {
    let api = Api::start();
    let fid = api.create_wasm_function(&example_package("echo"), &[]);
    let webhook = create(&api, json!({"function_id": fid}));
    assert_eq!(webhook["function_version"], Json::Null);
}

#[test]
fn a_webhook_needs_a_function_or_an_alias() {
    let api = Api::start();
    api.post_json("/v1/webhooks", &json!({"description": "x"}))
        .assert_error(
            400,
            "Either function_alias or function_id must be provided.",
        );
}

#[test]
fn a_webhook_must_point_at_an_existing_function_and_version() {
    let api = Api::start();
    api.post_json("/v1/webhooks", &json!({"function_id": MISSING}))
        .assert_error(404, &format!("Function not found [id={MISSING}]"));
    let fid = api.create_function_id(&api.create_runtime(), &package("a"));
    api.post_json(
        "/v1/webhooks",
        &json!({"function_id": fid, "function_version": 3}),
    )
    .assert_error(
        404,
        &format!("FunctionVersion not found [function_id={fid}, version_number=3]"),
    );
}

#[test]
fn a_webhook_with_an_alias_stores_only_the_alias() {
    let api = Api::start();
    api.post_json("/v1/webhooks", &json!({"function_alias": "nope"}))
        .assert_error(404, "FunctionAlias not found [name=nope]");
    let fid = hello_v1_echo_now(&api);
    api.post_json(
        "/v1/aliases",
        &json!({"name": "live", "function_id": fid, "function_version": 1}),
    )
    .assert_status(201);
    let webhook = create(
        &api,
        json!({"function_alias": "live", "function_id": fid, "function_version": 1}),
    );
    assert_eq!(webhook["function_alias"], "live");
    assert_eq!(webhook["function_id"], Json::Null);
    assert_eq!(webhook["function_version"], Json::Null);
}

#[test]
fn an_update_to_a_new_alias_clears_the_function_and_a_new_function_clears_the_alias() {
    let api = Api::start();
    let fid = hello_v1_echo_now(&api);
    api.post_json("/v1/aliases", &json!({"name": "live", "function_id": fid}))
        .assert_status(201);
    let id = id_of(&create(
        &api,
        json!({"function_id": fid, "function_version": 1}),
    ));
    let path = format!("/v1/webhooks/{id}");

    let aliased = api.put_json(&path, &json!({"function_alias": "live"}));
    aliased.assert_status(200);
    let aliased = aliased.json();
    assert_eq!(
        (
            &aliased["function_alias"],
            &aliased["function_id"],
            &aliased["function_version"]
        ),
        (&json!("live"), &Json::Null, &Json::Null)
    );

    let direct = api.put_json(&path, &json!({"function_id": fid, "function_version": 1}));
    direct.assert_status(200);
    let direct = direct.json();
    assert_eq!(
        (
            &direct["function_alias"],
            &direct["function_id"],
            &direct["function_version"]
        ),
        (&Json::Null, &json!(fid), &json!(1))
    );
    assert_eq!(api.get(&path).json(), direct);
}

#[test]
fn an_update_checks_the_new_target() {
    let api = Api::start();
    let fid = hello_v1_echo_now(&api);
    let id = id_of(&create(&api, json!({"function_id": fid})));
    let path = format!("/v1/webhooks/{id}");
    api.put_json(&path, &json!({"function_version": 7}))
        .assert_error(
            404,
            &format!("FunctionVersion not found [function_id={fid}, version_number=7]"),
        );
    api.put_json(&path, &json!({"function_alias": "ghost"}))
        .assert_error(404, "FunctionAlias not found [name=ghost]");
    api.put_json(&path, &json!({"function_id": MISSING}))
        .assert_error(404, &format!("Function not found [id={MISSING}]"));
    api.put_json(&format!("/v1/webhooks/{MISSING}"), &json!({}))
        .assert_error(404, &format!("Webhook not found [id={MISSING}]"));
    let unchanged = api.get(&path).json();
    assert_eq!(unchanged["function_version"], Json::Null);
    assert_eq!(unchanged["updated_at"], Json::Null);
}

#[test]
fn webhook_urls_use_the_public_url_when_one_is_set() {
    let api = Api::start_with(&[("public_url", "https://faas.example.org/")]);
    let fid = api.create_wasm_function(&example_package("echo"), &[]);
    let webhook = create(&api, json!({"function_id": fid}));
    assert_eq!(
        webhook["webhook_url"],
        format!(
            "https://faas.example.org/v1/webhooks/{}/invoke",
            id_of(&webhook)
        )
    );
}

#[test]
fn webhooks_are_listed_in_pages() {
    let api = Api::start();
    let fid = api.create_wasm_function(&example_package("echo"), &[]);
    let ids: Vec<String> = (0..3)
        .map(|_| id_of(&create(&api, json!({"function_id": fid}))))
        .collect();
    let first = api.get("/v1/webhooks?limit=2").json();
    assert_eq!(first["webhooks"].as_array().unwrap().len(), 2);
    let next = first["next"].as_str().expect("a next link");
    let marker = first["webhooks"][1]["id"].as_str().unwrap();
    assert!(next.contains(&format!("marker={marker}")), "{next}");
    let rest = api
        .get(&format!("/v1/webhooks?limit=2&marker={marker}"))
        .json();
    let mut seen: Vec<String> = first["webhooks"]
        .as_array()
        .unwrap()
        .iter()
        .chain(rest["webhooks"].as_array().unwrap())
        .map(|w| w["id"].as_str().unwrap().to_string())
        .collect();
    seen.sort();
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(seen, expected);
    assert!(rest.get("next").is_none());
}

#[test]
fn a_version_with_a_webhook_cannot_be_deleted() {
    let api = Api::start();
    let fid = hello_v1_echo_now(&api);
    let id = id_of(&create(
        &api,
        json!({"function_id": fid, "function_version": 1}),
    ));
    api.delete(&format!("/v1/functions/{fid}/versions/1"))
        .assert_error(
            403,
            "The function version is still associated with webhook.",
        );
    api.delete(&format!("/v1/webhooks/{id}")).assert_status(204);
    api.delete(&format!("/v1/functions/{fid}/versions/1"))
        .assert_status(204);
}

#[test]
fn a_function_with_a_webhook_cannot_be_deleted() {
    let api = Api::start();
    let fid = api.create_wasm_function(&example_package("echo"), &[]);
    let id = id_of(&create(&api, json!({"function_id": fid})));
    api.delete(&format!("/v1/functions/{fid}"))
        .assert_error(403, "The function is still associated with webhook(s).");
    api.delete(&format!("/v1/webhooks/{id}")).assert_status(204);
    api.delete(&format!("/v1/functions/{fid}"))
        .assert_status(204);
}

#[test]
fn invoking_a_webhook_without_a_version_runs_the_current_code_with_its_json_body() {
    let api = Api::start();
    let fid = hello_v1_echo_now(&api);
    let webhook = create(&api, json!({"function_id": fid}));
    let execution_id = invoke(
        &api,
        &invoke_path(&webhook),
        "application/json",
        br#"{"name": "hook"}"#,
    );
    let execution = finished(&api, &execution_id);
    assert_eq!(output(&execution), json!({"greeting": "Hello, hook!"}));
    assert_eq!(execution["function_id"], fid.as_str());
    assert_eq!(execution["function_version"], 0);
    assert_eq!(execution["sync"], false);
    assert_eq!(execution["project_id"], "default");
    assert_eq!(
        execution["description"],
        format!("Created by Webhook {}", id_of(&webhook))
    );
    assert_eq!(execution["input"], "{\"name\": \"hook\"}");
}

#[test]
fn invoking_a_webhook_of_version_n_runs_that_version() {
    let api = Api::start();
    let fid = hello_v1_echo_now(&api);
    let webhook = create(&api, json!({"function_id": fid, "function_version": 1}));
    let execution = finished(
        &api,
        &invoke(&api, &invoke_path(&webhook), "application/json", b""),
    );
    assert_eq!(output(&execution), "Hello, Spinling!");
    assert_eq!(execution["function_version"], 1);
    assert_eq!(execution["input"], "{}");
}

#[test]
fn invoking_a_webhook_with_an_alias_runs_what_the_alias_names_at_that_moment() {
    let api = Api::start();
    let fid = hello_v1_echo_now(&api);
    api.post_json(
        "/v1/aliases",
        &json!({"name": "live", "function_id": fid, "function_version": 1}),
    )
    .assert_status(201);
    let webhook = create(&api, json!({"function_alias": "live"}));
    let path = invoke_path(&webhook);
    let before = finished(&api, &invoke(&api, &path, "application/json", b""));
    assert_eq!(output(&before), "Hello, Spinling!");
    assert_eq!(before["function_alias"], "live");

    api.put_json("/v1/aliases/live", &json!({"function_version": 0}))
        .assert_status(200);
    let after = finished(
        &api,
        &invoke(&api, &path, "application/json", br#"{"name": "alias"}"#),
    );
    assert_eq!(output(&after), json!({"greeting": "Hello, alias!"}));
    assert_eq!(after["function_version"], 0);
}

#[test]
fn invoke_input_is_the_query_and_the_form() {
    let api = Api::start();
    let fid = api.create_wasm_function(&example_package("echo"), &[]);
    let webhook = create(&api, json!({"function_id": fid}));
    let from_query = finished(
        &api,
        &invoke(
            &api,
            &format!("{}?name=query", invoke_path(&webhook)),
            "text/plain",
            b"",
        ),
    );
    assert_eq!(output(&from_query), json!({"greeting": "Hello, query!"}));
    assert_eq!(from_query["input"], "{\"name\": \"query\"}");

    let from_form = finished(
        &api,
        &invoke(
            &api,
            &format!("{}?a=1", invoke_path(&webhook)),
            "application/x-www-form-urlencoded",
            b"name=form+post",
        ),
    );
    assert_eq!(output(&from_form), json!({"greeting": "Hello, form post!"}));
    assert_eq!(
        from_form["input"],
        "{\"a\": \"1\", \"name\": \"form post\"}"
    );
}

#[test]
fn invoke_refuses_a_json_body_that_is_not_an_object() {
    let api = Api::start();
    let fid = api.create_wasm_function(&example_package("echo"), &[]);
    let webhook = create(&api, json!({"function_id": fid}));
    api.post_raw(&invoke_path(&webhook), "application/json", b"[1]")
        .assert_error(400, "The body of a webhook invoke must be a JSON object.");
}

#[test]
fn invoking_an_unknown_webhook_is_a_404() {
    let api = Api::start();
    api.post_json(&format!("/v1/webhooks/{MISSING}/invoke"), &json!({}))
        .assert_error(404, &format!("Webhook not found [id={MISSING}]"));
    api.get(&format!("/v1/webhooks/{MISSING}/invoke"))
        .assert_status(405);
}

#[test]
fn an_invoke_body_is_capped_like_any_request() {
    let api = Api::start_with(&[("max_request_body", "1024")]);
    let fid = api.create_wasm_function(&example_package("echo"), &[]);
    let webhook = create(&api, json!({"function_id": fid}));
    let big = format!(r#"{{"name": "{}"}}"#, "x".repeat(2048));
    api.post_raw(&invoke_path(&webhook), "application/json", big.as_bytes())
        .assert_status(413);
}

/// A POST with exactly these headers (no default `Host`).
fn post_with(api: &Api, path: &str, headers: &[(&str, &str)]) -> u16 {
    let mut builder = http::Request::builder().method("POST").uri(path);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    api.send(builder.body(Vec::new()).unwrap()).status
}

#[test]
fn an_invoke_keeps_the_laptop_guard_against_other_hosts_and_sites() {
    let api = Api::start();
    let fid = api.create_wasm_function(&example_package("echo"), &[]);
    let path = invoke_path(&create(&api, json!({"function_id": fid})));
    assert_eq!(
        post_with(&api, &path, &[("host", "evil.example:3000")]),
        403
    );
    let cross_site = [
        ("host", "127.0.0.1:3000"),
        ("origin", "https://evil.example"),
    ];
    assert_eq!(post_with(&api, &path, &cross_site), 403);
    assert!(api.query_database("SELECT id FROM executions").is_empty());
    assert_eq!(post_with(&api, &path, &[("host", "127.0.0.1:3000")]), 202);
}

mod keystone_mode {
    //! Auth mode `keystone` against a real Keystone (see tests/api/tests/identity.rs).

    use super::{output, MISSING};
    use serde_json::{json, Value as Json};
    use spinling_api_tests::keystone::{start_app, Keystone, Session};
    use spinling_api_tests::{repo_root, zip_of, Api};

    fn session<'a>(api: &'a Api, keystone: &Keystone, user: &str) -> Session<'a> {
        Session {
            api,
            token: keystone.token(user),
        }
    }

    fn create(session: &Session, body: Json) -> String {
        let reply = session.post_json("/v1/webhooks", &body);
        reply.assert_status(201);
        reply.json()["id"].as_str().unwrap().to_string()
    }

    /// Invokes without any token and waits, as `reader`, for the execution to end.
    fn invoke_without_token(api: &Api, reader: &Session, id: &str) -> Json {
        let reply = api.request(
            "POST",
            &format!("/v1/webhooks/{id}/invoke"),
            &[("content-type", "application/json")],
            b"{}".to_vec(),
        );
        reply.assert_status(202);
        let execution_id = reply.json()["execution_id"].as_str().unwrap().to_string();
        finished_as(reader, &execution_id)
    }

    fn finished_as(reader: &Session, id: &str) -> Json {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let execution = reader.get(&format!("/v1/executions/{id}")).json();
            if execution["status"] != "running" {
                return execution;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "still running: {execution}"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }

    #[test]
    fn an_invoke_needs_no_token_and_runs_in_the_webhooks_project_with_spinlings_credentials() {
        let keystone = Keystone::shared();
        let api = start_app(&keystone.variables("300"));
        let admin = session(&api, keystone, "admin");
        let alpha = session(&api, keystone, "alpha_member");
        let function = alpha.published_hello(&admin);
        let current = create(&alpha, json!({"function_id": function}));
        let version = create(
            &alpha,
            json!({"function_id": function, "function_version": 1}),
        );
        for id in [&current, &version] {
            let execution = invoke_without_token(&api, &alpha, id);
            assert_eq!(output(&execution), "Hello, Spinling!");
            assert_eq!(
                execution["project_id"],
                keystone.project_id("alpha"),
                "{execution}"
            );
            assert_eq!(execution["description"], format!("Created by Webhook {id}"));
        }
        // The other routes still need a token; an unknown webhook is a 404, not a 401.
        assert_eq!(api.get("/v1/webhooks").status, 401);
        assert_eq!(api.get(&format!("/v1/webhooks/{current}")).status, 401);
        assert_eq!(api.delete(&format!("/v1/webhooks/{current}")).status, 401);
        api.request(
            "POST",
            &format!("/v1/webhooks/{MISSING}/invoke"),
            &[],
            Vec::new(),
        )
        .assert_error(404, &format!("Webhook not found [id={MISSING}]"));
    }

    #[test]
    fn webhooks_follow_the_visibility_and_admin_rules_of_aliases() {
        let keystone = Keystone::shared();
        let api = start_app(&keystone.variables("300"));
        let admin = session(&api, keystone, "admin");
        let alpha = session(&api, keystone, "alpha_member");
        let beta = session(&api, keystone, "beta_member");
        let function = alpha.published_hello(&admin);
        let id = create(&alpha, json!({"function_id": function}));
        let gone = format!("Webhook not found [id={id}]");
        let path = format!("/v1/webhooks/{id}");

        beta.get(&path).assert_error(404, &gone);
        beta.put_json(&path, &json!({"description": "x"}))
            .assert_error(404, &gone);
        beta.delete(&path).assert_error(404, &gone);
        assert_eq!(beta.get("/v1/webhooks").json()["webhooks"], json!([]));
        beta.get("/v1/webhooks?all_projects=true")
            .assert_error(403, "Operation not allowed");
        // Even an admin cannot expose another project's function.
        for other in [&beta, &admin] {
            other
                .post_json("/v1/webhooks", &json!({"function_id": function}))
                .assert_error(404, &format!("Function not found [id={function}]"));
        }

        // An admin reads any project's webhook, but updates only its own.
        admin.get(&path).assert_status(200);
        admin
            .put_json(&path, &json!({"description": "x"}))
            .assert_error(404, &gone);
        assert_eq!(admin.get("/v1/webhooks").json()["webhooks"], json!([]));
        let all = admin.get("/v1/webhooks?all_projects=true").json();
        assert!(
            all["webhooks"]
                .as_array()
                .unwrap()
                .iter()
                .any(|w| w["id"] == id.as_str()),
            "{all}"
        );
        alpha.get(&path).assert_status(200);
        // As in Qinling, an admin may delete any project's webhook.
        admin.delete(&path).assert_status(204);
        alpha.get(&path).assert_error(404, &gone);
    }

    /// The reference worker (tests/worker/worker.py) on a free port, with its address and
    /// its cache directory (removed when dropped).
    struct Worker(
        std::process::Child,
        String,
        #[allow(dead_code)] tempfile::TempDir,
    );

    impl Worker {
        fn start() -> Worker {
            use std::io::BufRead;
            let cache = tempfile::tempdir().unwrap();
            let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
            let mut child = std::process::Command::new(python)
                .arg(repo_root().join("tests/worker/worker.py"))
                .args(["--port", "0", "--quiet", "--cache-dir"])
                .arg(cache.path())
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            let mut line = String::new();
            std::io::BufReader::new(child.stdout.take().unwrap())
                .read_line(&mut line)
                .unwrap();
            let url = line
                .trim()
                .strip_prefix("Listening on ")
                .unwrap()
                .to_string();
            Worker(child, url, cache)
        }
    }

    impl Drop for Worker {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    /// `POST path` with no token over the app's socket, so that the package's download URL
    /// is one the worker can reach; the answer's status and body.
    fn post_over_socket(addr: std::net::SocketAddr, path: &str) -> (u16, Json) {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        write!(
            stream,
            "POST {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
             content-length: 2\r\nconnection: close\r\n\r\n{{}}"
        )
        .unwrap();
        let mut raw = String::new();
        stream.read_to_string(&mut raw).unwrap();
        let (head, body) = raw.split_once("\r\n\r\n").unwrap();
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        let start = body.find('{').unwrap();
        let end = body.rfind('}').unwrap();
        (status, serde_json::from_str(&body[start..=end]).unwrap())
    }

    #[test]
    fn an_invoke_without_a_token_runs_on_an_external_worker_with_spinlings_credentials() {
        let keystone = Keystone::shared();
        let api = start_app(&keystone.variables("300"));
        let addr = api.address();
        let admin = session(&api, keystone, "admin");
        let alpha = session(&api, keystone, "alpha_member");
        let worker = Worker::start();
        let runtime = admin.post_json(
            "/v1/runtimes",
            &json!({"image": worker.1, "name": "python"}),
        );
        runtime.assert_status(201);
        let runtime = runtime.json()["id"].as_str().unwrap().to_string();
        let main_py = "def main(**kwargs):\n    return 'from the worker'\n";
        let function = alpha.create_function(&runtime, &zip_of(&[("main.py", main_py.as_bytes())]));
        let id = create(&alpha, json!({"function_id": function}));
        let (status, answer) = post_over_socket(addr, &format!("/v1/webhooks/{id}/invoke"));
        assert_eq!(status, 202, "{answer}");
        let execution = finished_as(&alpha, answer["execution_id"].as_str().unwrap());
        assert_eq!(output(&execution), "from the worker");
    }
}

/// A form-encoded invoke is held to the bounds of any form: 20,000 fields are a 400, and a
/// body past `max_request_body` a 413, before anything runs.
#[test]
fn a_form_encoded_invoke_is_held_to_the_form_limits() {
    let api = Api::start_with(&[("max_request_body", "65536")]);
    let fid = api.create_wasm_function(&example_package("echo"), &[]);
    let path = invoke_path(&create(&api, json!({"function_id": fid})));
    let form = |n: usize| vec!["a=1"; n].join("&").into_bytes();
    let form_type = "application/x-www-form-urlencoded";
    api.post_raw(&path, form_type, &form(101))
        .assert_error(400, "Request body has more than 100 form fields.");
    api.post_raw(&path, form_type, &form(20_000))
        .assert_status(413);
    assert!(api.query_database("SELECT id FROM executions").is_empty());
    api.post_raw(&path, form_type, &form(100))
        .assert_status(202);
}
