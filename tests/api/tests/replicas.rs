//! Two replicas of the app (two `spin-test-host serve` processes) on one Redis and one libSQL
//! server, as on SpinKube: what one replica writes, the other's next read sees; concurrent
//! publishes spread over both still publish once; a replica killed mid-upload leaves nothing
//! half-written.

use serde_json::{json, Value as Json};
use spinling_api_tests::{
    example_package, incompressible, multipart, package, slow_download, zip_of, Api,
};
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::Duration;

/// The app with every request from now on sent to replica `index`.
fn on(api: &Api, index: usize) -> &Api {
    api.replicated()
        .expect("started with Api::start_replicated")
        .pin(Some(index));
    api
}

fn execute(api: &Api, body: Json) -> Json {
    let reply = api.post_json("/v1/executions", &body);
    reply.assert_status(201);
    reply.json()
}

fn output(execution: &Json) -> Json {
    let result: Json = serde_json::from_str(execution["result"].as_str().unwrap()).unwrap();
    result["output"].clone()
}

#[test]
fn a_version_created_on_one_replica_is_seen_by_the_next_read_on_the_other() {
    let api = Api::start_replicated(&[]);
    let fid = on(&api, 0).create_wasm_function(&package("a"), &[]);
    assert_eq!(on(&api, 1).version_numbers(&fid), Vec::<i64>::new());

    on(&api, 0).publish(&fid).assert_status(201);

    assert_eq!(on(&api, 1).version_numbers(&fid), [1]);
    on(&api, 1)
        .get(&format!("/v1/functions/{fid}/versions/1"))
        .assert_status(200);
}

#[test]
fn a_version_deleted_on_one_replica_is_gone_on_the_other() {
    let api = Api::start_replicated(&[]);
    let fid = on(&api, 0).create_wasm_function(&package("a"), &[]);
    on(&api, 0).publish(&fid).assert_status(201);
    let version = format!("/v1/functions/{fid}/versions/1");
    on(&api, 1).get(&version).assert_status(200);
    assert_eq!(on(&api, 1).version_numbers(&fid), [1]);

    on(&api, 0).delete(&version).assert_status(204);

    on(&api, 1).get(&version).assert_status(404);
    assert_eq!(on(&api, 1).version_numbers(&fid), Vec::<i64>::new());
}

#[test]
fn an_alias_updated_on_one_replica_is_followed_by_the_next_execution_on_the_other() {
    let api = Api::start_replicated(&[]);
    let fid = on(&api, 0).create_wasm_function(&example_package("hello"), &[]);
    on(&api, 0).publish(&fid).assert_status(201);
    on(&api, 0)
        .update_package(&fid, &example_package("echo"))
        .assert_status(200);
    on(&api, 0).publish(&fid).assert_status(201);
    on(&api, 0)
        .post_json(
            "/v1/aliases",
            &json!({"name": "prod", "function_id": fid, "function_version": 1}),
        )
        .assert_status(201);
    let before = execute(on(&api, 1), json!({"function_alias": "prod"}));
    assert_eq!(output(&before), "Hello, Spinling!");

    on(&api, 0)
        .put_json("/v1/aliases/prod", &json!({"function_version": 2}))
        .assert_status(200);

    assert_eq!(
        on(&api, 1).get("/v1/aliases/prod").json()["function_version"],
        2
    );
    let after = execute(
        on(&api, 1),
        json!({"function_alias": "prod", "input": "{\"name\": \"b\"}"}),
    );
    assert_eq!(output(&after), json!({"greeting": "Hello, b!"}));
}

#[test]
fn a_function_updated_on_one_replica_runs_its_new_code_on_the_other() {
    let api = Api::start_replicated(&[]);
    let fid = on(&api, 0).create_wasm_function(&example_package("hello"), &[]);
    let before = execute(on(&api, 1), json!({"function_id": fid}));
    assert_eq!(output(&before), "Hello, Spinling!");

    on(&api, 0)
        .update_package(&fid, &example_package("echo"))
        .assert_status(200);

    let after = execute(
        on(&api, 1),
        json!({"function_id": fid, "input": "{\"name\": \"new\"}"}),
    );
    assert_eq!(output(&after), json!({"greeting": "Hello, new!"}));
}

#[test]
fn an_execution_run_on_one_replica_is_shown_and_counted_by_the_other() {
    let api = Api::start_replicated(&[]);
    let fid = on(&api, 0).create_wasm_function(&example_package("hello"), &[]);
    assert_eq!(
        on(&api, 1).get(&format!("/v1/functions/{fid}")).json()["count"],
        0
    );

    let execution = execute(on(&api, 0), json!({"function_id": fid}));

    let id = execution["id"].as_str().unwrap();
    let shown = on(&api, 1).get(&format!("/v1/executions/{id}")).json();
    assert_eq!(shown["status"], "success", "{shown}");
    assert_eq!(output(&shown), "Hello, Spinling!");
    assert_eq!(
        on(&api, 1).get(&format!("/v1/functions/{fid}")).json()["count"],
        1
    );
}

#[test]
fn sixty_four_concurrent_creates_over_both_replicas_publish_exactly_one_version() {
    let api = Api::start_replicated(&[]);
    let fid = api.create_wasm_function(&package("a"), &[]);
    api.publish(&fid).assert_status(201);
    api.update_package(&fid, &package("b")).assert_status(200);

    // Unpinned: the requests alternate between the two replicas.
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..64)
            .map(|_| s.spawn(|| api.publish(&fid).status))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });

    let count = |status: u16| statuses.iter().filter(|s| **s == status).count();
    assert_eq!((count(201), count(403)), (1, 63), "{statuses:?}");
    assert_eq!(api.version_numbers(&fid), [1, 2]);
}

#[test]
fn a_download_racing_updates_on_the_other_replica_gets_one_package_whole() {
    let api = Api::start_replicated(&[]);
    let runtime = api.create_runtime();
    let packages = [1, 2].map(|seed| zip_of(&[("lib.bin", &incompressible(seed, 3 << 20))]));
    let id = api.create_function_id(&runtime, &packages[0]);
    // Unpinned: downloads and updates alternate between the replicas.
    api.download_while_updating(&id, &packages, 20);
}

#[test]
fn a_download_read_slower_than_libsql_keeps_a_stream_is_whole_though_the_code_changed() {
    let api = Api::start_replicated(&[]);
    let runtime = api.create_runtime();
    let old = zip_of(&[("lib.bin", &incompressible(3, 24 << 20))]);
    let id = on(&api, 0).create_function_id(&runtime, &old);
    let replica = api.replicated().unwrap().replica(0).addr();
    // sqld drops a stream idle for 10 s; meanwhile the other replica replaces the code, and
    // with it the bytes being sent.
    let replace = || {
        on(&api, 1)
            .update_package(&id, &package("new"))
            .assert_status(200);
        assert_eq!(api.query_database("SELECT COUNT(*) FROM packages"), ["1"]);
    };
    let pause = Duration::from_secs(11);
    let path = format!("/v1/functions/{id}?download=true");
    let body = slow_download(replica, &path, pause, replace);
    assert!(body == old, "{} bytes of {}", body.len(), old.len());
}

/// Package bytes in the database that no function and no version refers to.
const UNREFERENCED_CHUNKS: &str = "SELECT COUNT(*) FROM package_chunks
     WHERE digest NOT IN (SELECT package_digest FROM functions WHERE package_digest IS NOT NULL)
       AND digest NOT IN (SELECT package_digest FROM function_versions)";

fn unreferenced_chunks(api: &Api) -> i64 {
    api.query_database(UNREFERENCED_CHUNKS)[0].parse().unwrap()
}

#[test]
fn killing_a_replica_mid_upload_leaves_nothing_half_written() {
    let mut api = Api::start_replicated(&[]);
    let runtime = on(&api, 1).create_runtime();
    on(&api, 1).create_function_id(&runtime, &package("kept"));
    let functions_before = on(&api, 1).get("/v1/functions").json()["functions"].clone();
    let upload = big_package_upload(&runtime);
    let replica = api.replicated().unwrap().replica(0).addr();
    let uploader = std::thread::spawn(move || slow_upload(replica, &upload));

    // Kill replica 0 as soon as it has written package chunks that nothing refers to yet.
    while unreferenced_chunks(&api) == 0 {
        assert!(
            !uploader.is_finished(),
            "the upload ended before any chunk was written"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    api.replicated_mut().unwrap().replica_mut(0).kill();
    let answer = uploader.join().unwrap();

    assert!(answer.is_none(), "the killed replica answered {answer:?}");
    assert_eq!(
        on(&api, 1).get("/v1/functions").json()["functions"],
        functions_before
    );
    // The killed writer's chunks are left alone for the collector's grace period (see
    // crates/spinling-core/src/store/packages/); stage it as over. The surviving replica's next
    // upload then collects them: no package bytes are left that nothing refers to.
    api.query_database("UPDATE package_writes SET started_at = started_at - 86400");
    on(&api, 1).create_function_id(&runtime, &package("after"));
    assert_eq!(unreferenced_chunks(&api), 0);
    assert_eq!(api.query_database("SELECT COUNT(*) FROM functions"), ["2"]);
}

/// A function create whose package is a 40 MiB zip, as raw HTTP/1.1 request bytes.
fn big_package_upload(runtime: &str) -> Vec<u8> {
    // Incompressible content, so that the zip is as large as its content.
    let content = incompressible(2, 40 << 20);
    let zip = zip_of(&[("main.py", &content)]);
    let (content_type, body) = multipart(
        &[
            ("code", r#"{"source": "package"}"#),
            ("runtime_id", runtime),
        ],
        Some(&zip),
    );
    let mut request = format!(
        "POST /v1/functions HTTP/1.1\r\nHost: 127.0.0.1:3000\r\nContent-Type: {content_type}\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(&body);
    request
}

/// Sends `request` 1 MiB at a time; answers the status line if the server answered at all.
fn slow_upload(addr: SocketAddr, request: &[u8]) -> Option<String> {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    for piece in request.chunks(1 << 20) {
        if stream.write_all(piece).is_err() {
            return None;
        }
        std::thread::sleep(Duration::from_millis(30));
    }
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    answer.lines().next().map(str::to_owned)
}
