//! Jobs (spec §2.7): their rules and messages, the guards they put on functions and versions,
//! and their firing: by `POST /v1/jobs/tick` (deterministic: a job's time is moved into the
//! past in the database) and by the scheduler loop alone (two tests that wait for a minute,
//! in parallel).

use serde_json::{json, Value as Json};
use spinling_api_tests::{example_package, package, timestamp_in, Api};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn unix(stamp: &str) -> i64 {
    let out = std::process::Command::new("date")
        .args(["-u", "-d", stamp, "+%s"])
        .output()
        .unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

fn create_job(api: &Api, body: Json) -> Json {
    let reply = api.post_json("/v1/jobs", &body);
    reply.assert_status(201);
    reply.json()
}

/// A one-shot job of `fid` two minutes ahead.
fn one_shot(api: &Api, fid: &str) -> Json {
    create_job(
        api,
        json!({"function_id": fid, "first_execution_time": timestamp_in(120)}),
    )
}

/// Makes the job due: its next time a second ago.
fn make_due(api: &Api, job_id: &str) {
    api.query_database(&format!(
        "UPDATE jobs SET next_execution_time = '{}' WHERE id = '{job_id}'",
        timestamp_in(-1)
    ));
}

fn tick(api: &Api) -> Json {
    let reply = api.post_json("/v1/jobs/tick", &json!({}));
    reply.assert_status(200);
    reply.json()
}

/// The executions a job created, once each has finished.
fn finished_executions_of(api: &Api, job_id: &str, want: usize, wait: Duration) -> Vec<Json> {
    let deadline = Instant::now() + wait;
    loop {
        let list = api
            .get(&format!("/v1/executions?description=has:{job_id}"))
            .json();
        let executions = list["executions"].as_array().unwrap().clone();
        if executions.len() >= want && executions.iter().all(|e| e["status"] != "running") {
            return executions;
        }
        assert!(Instant::now() < deadline, "not yet: {list}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_job_is_created_listed_shown_updated_and_deleted() {
    let api = Api::start();
    let fid = api.create_wasm_function(&example_package("echo"), &[]);
    let job = create_job(
        &api,
        json!({"name": "nightly", "function_id": fid, "pattern": "0 3 * * *",
               "function_input": "{\"name\": \"job\"}", "count": 5}),
    );
    assert_eq!(job["status"], "running");
    assert_eq!(job["count"], 5);
    assert_eq!(job["function_version"], 0);
    assert!(job["function_alias"].is_null());
    let next = job["next_execution_time"].as_str().unwrap();
    assert!(next.ends_with("T03:00:00Z"), "{next}");
    assert_eq!(job["first_execution_time"], next);
    let id = job["id"].as_str().unwrap();

    assert_eq!(api.get("/v1/jobs").json()["jobs"][0]["id"], id);
    assert_eq!(api.get(&format!("/v1/jobs/{id}")).json()["name"], "nightly");
    let updated = api.put_json(
        &format!("/v1/jobs/{id}"),
        &json!({"name": "hourly", "pattern": "0 * * * *", "count": 99}),
    );
    updated.assert_status(200);
    let updated = updated.json();
    assert_eq!(
        (&updated["name"], &updated["pattern"], &updated["count"]),
        (&json!("hourly"), &json!("0 * * * *"), &json!(5)),
        "count is not updatable"
    );
    assert!(updated["updated_at"].is_string());

    api.delete(&format!("/v1/jobs/{id}")).assert_status(204);
    api.get(&format!("/v1/jobs/{id}"))
        .assert_error(404, &format!("Job not found [id={id}]"));
}

#[test]
fn a_one_shot_job_counts_once_and_an_alias_job_stores_no_function() {
    let api = Api::start();
    let fid = api.create_wasm_function(&example_package("echo"), &[]);
    let job = one_shot(&api, &fid);
    assert_eq!(job["count"], 1);
    assert!(job["pattern"].is_null());
    assert_eq!(job["first_execution_time"], job["next_execution_time"]);
    api.post_json("/v1/aliases", &json!({"name": "prod", "function_id": fid}))
        .assert_status(201);
    let aliased = create_job(
        &api,
        json!({"function_alias": "prod", "pattern": "* * * * *", "function_id": null}),
    );
    assert!(aliased["function_id"].is_null());
    assert_eq!(aliased["function_alias"], "prod");
    assert!(aliased["count"].is_null());
}

#[test]
fn create_refuses_what_qinling_refuses_with_its_messages() {
    let api = Api::start();
    let fid = api.create_wasm_function(&example_package("echo"), &[]);
    let refused = |body: Json, status: u16, message: &str| {
        api.post_json("/v1/jobs", &body)
            .assert_error(status, message);
    };
    refused(
        json!({"pattern": "* * * * *"}),
        400,
        "Either function_alias or function_id must be provided.",
    );
    refused(
        json!({"function_id": fid}),
        400,
        "pattern or first_execution_time must be specified.",
    );
    refused(
        json!({"function_id": fid, "first_execution_time": "soon"}),
        400,
        "Unknown string format: soon",
    );
    refused(
        json!({"function_id": fid, "first_execution_time": timestamp_in(30)}),
        400,
        "Execution time must be at least 1 minute in the future.",
    );
    refused(
        json!({"function_id": fid, "first_execution_time": timestamp_in(120), "count": 2}),
        400,
        "pattern must be provided if count is greater than 1.",
    );
    refused(
        json!({"function_id": fid, "pattern": "0 0 * * * *"}),
        400,
        "The specified pattern is not valid: 0 0 * * * *",
    );
    refused(
        json!({"function_id": fid, "pattern": "99 * * * *"}),
        400,
        "The specified pattern is not valid: 99 * * * *",
    );
    let missing = "0d2a8e6c-3e51-4f5a-8c3e-111111111111";
    refused(
        json!({"function_id": missing, "pattern": "* * * * *"}),
        404,
        &format!("Function not found [id={missing}]"),
    );
    refused(
        json!({"function_id": fid, "function_version": 3, "pattern": "* * * * *"}),
        404,
        &format!("FunctionVersion not found [function_id={fid}, version_number=3]"),
    );
    refused(
        json!({"function_alias": "nope", "pattern": "* * * * *"}),
        404,
        "FunctionAlias not found [name=nope]",
    );
}

#[test]
fn update_refuses_a_finished_job_a_new_type_and_a_bad_status() {
    let api = Api::start();
    let fid = api.create_wasm_function(&example_package("echo"), &[]);
    let once = one_shot(&api, &fid)["id"].as_str().unwrap().to_string();
    let every = create_job(&api, json!({"function_id": fid, "pattern": "* * * * *"}));
    let every = every["id"].as_str().unwrap();
    let put = |id: &str, body: Json| api.put_json(&format!("/v1/jobs/{id}"), &body);
    put(&once, json!({"pattern": "* * * * *"})).assert_error(400, "Can not change job type.");
    put(every, json!({"pattern": ""})).assert_error(400, "Can not change job type.");
    put(every, json!({"status": "done"})).assert_error(400, "Invalid status.");
    put(every, json!({"next_execution_time": "later"}))
        .assert_error(400, "Invalid next time: Unknown string format: later");
    put(&once, json!({"status": "cancelled"})).assert_status(200);
    put(&once, json!({"name": "x"})).assert_error(400, "Can not update a finished job.");
}

#[test]
fn resuming_a_recurring_job_moves_its_next_time_and_a_one_shot_keeps_it() {
    let api = Api::start();
    let fid = api.create_wasm_function(&example_package("echo"), &[]);
    let every = create_job(&api, json!({"function_id": fid, "pattern": "0 0 1 1 *"}));
    let id = every["id"].as_str().unwrap();
    let put = |id: &str, body: Json| api.put_json(&format!("/v1/jobs/{id}"), &body);
    put(id, json!({"status": "paused"})).assert_status(200);
    // Moved into the past while paused; resuming recomputes it from now.
    api.query_database(&format!(
        "UPDATE jobs SET next_execution_time = '2001-01-01T00:00:00Z' WHERE id = '{id}'"
    ));
    let resumed = put(id, json!({"status": "running"})).json();
    assert_eq!(resumed["next_execution_time"], every["next_execution_time"]);

    let once = one_shot(&api, &fid);
    let once_id = once["id"].as_str().unwrap();
    put(once_id, json!({"status": "paused"})).assert_status(200);
    let resumed = put(once_id, json!({"status": "running"})).json();
    assert_eq!(resumed["next_execution_time"], once["next_execution_time"]);
    put(once_id, json!({"status": "paused"})).assert_status(200);
    make_due(&api, once_id);
    put(once_id, json!({"status": "running"})).assert_error(
        400,
        "Execution time must be at least 1 minute in the future.",
    );
}

#[test]
fn a_running_or_paused_job_keeps_its_version() {
    let api = Api::start();
    let runtime = api.create_runtime();
    let fid = api.create_function_id(&runtime, &package("a"));
    api.publish(&fid).assert_status(201);
    let job = create_job(
        &api,
        json!({"function_id": fid, "function_version": 1, "pattern": "* * * * *"}),
    );
    let id = job["id"].as_str().unwrap();
    let version = format!("/v1/functions/{fid}/versions/1");
    let kept = "The function version is still associated with running job(s).";
    api.delete(&version).assert_error(403, kept);
    api.put_json(&format!("/v1/jobs/{id}"), &json!({"status": "paused"}))
        .assert_status(200);
    api.delete(&version).assert_error(403, kept);
    api.put_json(&format!("/v1/jobs/{id}"), &json!({"status": "cancelled"}))
        .assert_status(200);
    api.delete(&version).assert_status(204);
}

#[test]
fn a_running_job_keeps_its_function_and_its_package() {
    let api = Api::start();
    let runtime = api.create_runtime();
    let fid = api.create_function_id(&runtime, &package("a"));
    let job = create_job(&api, json!({"function_id": fid, "pattern": "* * * * *"}));
    let kept = "The function is still associated with running job(s).";
    api.delete(&format!("/v1/functions/{fid}"))
        .assert_error(403, kept);
    api.update_package(&fid, &package("b"))
        .assert_error(403, kept);
    // Name, description and timeout are not code: they may change.
    api.put_json(&format!("/v1/functions/{fid}"), &json!({"name": "renamed"}))
        .assert_status(200);
    let id = job["id"].as_str().unwrap();
    api.put_json(&format!("/v1/jobs/{id}"), &json!({"status": "cancelled"}))
        .assert_status(200);
    // Finished jobs do not hold the function (spec §7).
    api.delete(&format!("/v1/functions/{fid}"))
        .assert_status(204);
}

#[test]
fn a_due_job_fires_once_on_a_tick_with_its_input() {
    let api = Api::start();
    let fid = api.create_wasm_function(&example_package("echo"), &[]);
    let job = create_job(
        &api,
        json!({"function_id": fid, "first_execution_time": timestamp_in(120),
               "function_input": "{\"name\": \"job\"}"}),
    );
    let id = job["id"].as_str().unwrap();
    api.stop_the_scheduler_loop();
    assert_eq!(tick(&api)["fired"], json!([]), "not yet due");
    make_due(&api, id);
    let fired = tick(&api)["fired"].clone();
    assert_eq!(fired.as_array().unwrap().len(), 1, "{fired}");
    assert_eq!(fired[0]["job_id"], id);
    assert_eq!(tick(&api)["fired"], json!([]), "fires once");

    let executions = finished_executions_of(&api, id, 1, Duration::from_secs(30));
    assert_eq!(executions.len(), 1);
    let execution = &executions[0];
    assert_eq!(execution["id"], fired[0]["execution_id"]);
    assert_eq!(execution["description"], format!("Created by Job {id}"));
    assert_eq!(execution["sync"], false);
    assert_eq!(execution["input"], "{\"name\": \"job\"}");
    assert_eq!(execution["status"], "success", "{execution}");
    let result: Json = serde_json::from_str(execution["result"].as_str().unwrap()).unwrap();
    assert_eq!(result["output"], json!({"greeting": "Hello, job!"}));
    let after = api.get(&format!("/v1/jobs/{id}")).json();
    assert_eq!(
        (&after["status"], &after["count"]),
        (&json!("done"), &json!(0))
    );
}

#[test]
fn two_replicas_on_one_database_fire_a_due_job_once() {
    let api = Api::start();
    let replica = api.replica();
    let fid = api.create_wasm_function(&example_package("echo"), &[]);
    let job = create_job(&api, json!({"function_id": fid, "pattern": "* * * * *"}));
    let id = job["id"].as_str().unwrap();
    api.stop_the_scheduler_loop();
    make_due(&api, id);
    let replica_tick = std::thread::scope(|s| {
        let other = s.spawn(|| {
            let request = http::Request::post("/v1/jobs/tick")
                .header("host", "127.0.0.1:3000")
                .header("content-type", "application/json")
                .body(b"{}".to_vec())
                .unwrap();
            let reply = replica.send(request);
            assert_eq!(reply.status(), 200);
            serde_json::from_slice::<Json>(reply.body()).unwrap()
        });
        let here = tick(&api);
        (here, other.join().unwrap())
    });
    let fired = replica_tick.0["fired"].as_array().unwrap().len()
        + replica_tick.1["fired"].as_array().unwrap().len();
    assert_eq!(fired, 1, "{replica_tick:?}");
    let recorded = api.query_database(&format!(
        "SELECT COUNT(*) FROM executions WHERE description = 'Created by Job {id}'"
    ));
    assert_eq!(recorded, ["1"]);
    let after = api.get(&format!("/v1/jobs/{id}")).json();
    assert_eq!(after["status"], "running");
    assert!(unix(after["next_execution_time"].as_str().unwrap()) > unix(&timestamp_in(0)));
}

#[test]
fn the_tick_endpoint_takes_no_query() {
    let api = Api::start();
    api.post_json("/v1/jobs/tick?x=1", &json!({}))
        .assert_error(400, "Unknown argument: \"x\"");
    api.get("/v1/jobs/not-a-uuid").assert_status(400);
}

/// With nothing but the app running, a one-shot job fires by itself within 5 s of its time.
/// Waits about a minute (jobs are due at least a minute ahead).
#[test]
fn a_one_shot_job_fires_on_time_by_itself() {
    let api = Api::start();
    let fid = api.create_wasm_function(&example_package("echo"), &[]);
    let job = create_job(
        &api,
        json!({"function_id": fid, "first_execution_time": timestamp_in(61),
               "function_input": "{\"name\": \"cron\"}"}),
    );
    let id = job["id"].as_str().unwrap();
    let due = unix(job["next_execution_time"].as_str().unwrap());
    let executions = finished_executions_of(&api, id, 1, Duration::from_secs(90));
    assert_eq!(executions.len(), 1);
    let created = unix(executions[0]["created_at"].as_str().unwrap());
    assert!(
        (due..=due + 5).contains(&created),
        "due {due}, fired {created}"
    );
    assert_eq!(executions[0]["input"], "{\"name\": \"cron\"}");
    assert_eq!(executions[0]["status"], "success", "{}", executions[0]);
    // Nothing more comes of it.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        finished_executions_of(&api, id, 1, Duration::from_secs(1)).len(),
        1
    );
    assert_eq!(api.get(&format!("/v1/jobs/{id}")).json()["status"], "done");
}

/// A `* * * * *` job fires on successive minutes by itself: once at once (its time moved
/// into the past), then on the next minute. Waits up to about a minute.
#[test]
fn a_recurring_job_fires_on_successive_ticks_by_itself() {
    let api = Api::start();
    let fid = api.create_wasm_function(&example_package("hello"), &[]);
    let job = create_job(
        &api,
        json!({"function_id": fid, "pattern": "* * * * *", "count": 2}),
    );
    let id = job["id"].as_str().unwrap();
    make_due(&api, id);
    let executions = finished_executions_of(&api, id, 2, Duration::from_secs(90));
    assert_eq!(executions.len(), 2);
    let times: Vec<i64> = executions
        .iter()
        .map(|e| unix(e["created_at"].as_str().unwrap()))
        .collect();
    assert!(times[1] - times[0] >= 1, "{times:?}");
    // The second fired on a minute, within 5 s.
    assert!(times[1] % 60 <= 5, "{times:?}");
    let after = api.get(&format!("/v1/jobs/{id}")).json();
    assert_eq!(
        (&after["status"], &after["count"]),
        (&json!("done"), &json!(0))
    );
}

/// The loop's path answers a stranger (no lease) with a 404 and writes nothing: not even the
/// schema of a fresh database, so a flood of such requests takes no write lock.
#[test]
fn a_loop_request_without_the_lease_writes_nothing() {
    let api = Api::start();
    for _ in 0..3 {
        api.post_json(
            "/v1/jobs/scheduler",
            &json!({"holder": "guess", "base_url": "http://attacker.example"}),
        )
        .assert_status(404);
    }
    assert_eq!(api.table_count(), 0);
}

/// As on create, a pattern that never matches is a 400 on update (it used to be taken, fire
/// once more and leave the job silently `done`).
#[test]
fn an_update_to_a_pattern_that_never_matches_is_refused() {
    let api = Api::start();
    let fid = api.create_wasm_function(&package("a"), &[]);
    let never = "0 0 30 2 *";
    let message = format!("The specified pattern is not valid: {never}");
    api.post_json("/v1/jobs", &json!({"function_id": fid, "pattern": never}))
        .assert_error(400, &message);
    let job = create_job(&api, json!({"function_id": fid, "pattern": "0 * * * *"}));
    let id = job["id"].as_str().unwrap();
    api.put_json(&format!("/v1/jobs/{id}"), &json!({"pattern": never}))
        .assert_error(400, &message);
    let after = api.get(&format!("/v1/jobs/{id}")).json();
    assert_eq!(
        (&after["pattern"], &after["next_execution_time"]),
        (&job["pattern"], &job["next_execution_time"])
    );
}

/// After a restart, a due job fires on time with no request but the health probe's: the
/// probe (`GET /healthz`, no token) checks the database and starts the loop.
#[test]
fn after_a_restart_the_health_probe_alone_fires_a_due_job_on_time() {
    let api = Api::start();
    let fid = api.create_wasm_function(&example_package("hello"), &[]);
    let job = create_job(&api, json!({"function_id": fid, "pattern": "0 0 * * *"}));
    let id = job["id"].as_str().unwrap().to_string();
    api.stop_the_scheduler_loop();
    let api = Api::start_in(api.stop(), &[]);
    // As a killed instance leaves it: a lease that has just expired.
    api.query_database("UPDATE scheduler_lease SET until = 0");
    let due = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
        + 4;
    api.query_database(&format!(
        "UPDATE jobs SET next_execution_time = '{}' WHERE id = '{id}'",
        timestamp_in(4)
    ));
    let fired = || {
        api.query_database(&format!(
            "SELECT created_at FROM executions WHERE description = 'Created by Job {id}'"
        ))
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while fired().is_empty() {
        assert!(Instant::now() < deadline, "the job did not fire");
        let health = api.get("/healthz");
        health.assert_status(200);
        assert_eq!(health.json(), json!({"status": "ok"}));
        std::thread::sleep(Duration::from_secs(1));
    }
    let created = unix(&fired()[0]);
    assert!(
        (due..=due + 3).contains(&created),
        "due {due}, fired {created}"
    );
}

/// The health probe needs no token, even in auth mode `keystone`.
#[test]
fn the_health_probe_needs_no_token() {
    let api = Api::start_with(&[
        ("auth_mode", "keystone"),
        ("keystone_url", "http://127.0.0.1:9/v3"),
        ("keystone_service_user", "spinling"),
        ("keystone_service_password", "secret"),
        ("keystone_service_project", "service"),
    ]);
    api.get("/healthz").assert_status(200);
    api.get("/v1/jobs").assert_status(401);
    api.post_json("/healthz", &json!({})).assert_status(405);
}

/// A function that sleeps `seconds` (WASI `poll_oneoff` on a relative clock) and prints
/// `"ok"`.
fn sleeper(seconds: u64) -> Vec<u8> {
    spinling_api_tests::wat_package(&format!(
        r#"(module
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 400) "\"ok\"")
  (func (export "_start")
    (i64.store (i32.const 24) (i64.const {}))
    (drop (call $poll (i32.const 0) (i32.const 100) (i32.const 1) (i32.const 200)))
    (i32.store (i32.const 300) (i32.const 400))
    (i32.store (i32.const 304) (i32.const 4))
    (drop (call $fd_write (i32.const 1) (i32.const 300) (i32.const 1) (i32.const 308)))))"#,
        seconds * 1_000_000_000
    ))
}

/// Jobs due together run side by side, each in an instance of its own: 20 jobs due the same
/// second, on functions sleeping up to 10 s, each start within 3 s of their time (each ends
/// within its sleep and 3 s of being fired), and a trivial one among them is not held up.
#[test]
fn jobs_due_together_run_side_by_side() {
    let api = Api::start();
    let sleeps: Vec<u64> = (0..20).map(|i| [0, 2, 4, 6, 8, 10][i % 6]).collect();
    let functions: Vec<String> = [0, 2, 4, 6, 8, 10]
        .iter()
        .map(|s| api.create_wasm_function(&sleeper(*s), &[("timeout", "20")]))
        .collect();
    let jobs: Vec<String> = sleeps
        .iter()
        .map(|s| {
            let fid = &functions[(*s / 2) as usize];
            let job = create_job(
                &api,
                json!({"function_id": fid, "pattern": "0 0 * * *", "count": 1}),
            );
            job["id"].as_str().unwrap().to_string()
        })
        .collect();
    let due = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
        + 3;
    api.query_database(&format!(
        "UPDATE jobs SET next_execution_time = '{}'",
        timestamp_in(3)
    ));
    for (job, sleep) in jobs.iter().zip(&sleeps) {
        let execution = finished_executions_of(&api, job, 1, Duration::from_secs(60))
            .pop()
            .unwrap();
        assert_eq!(execution["status"], "success", "{execution}");
        let created = unix(execution["created_at"].as_str().unwrap());
        let ended = unix(execution["updated_at"].as_str().unwrap());
        assert!(
            (due..=due + 3).contains(&created),
            "due {due}, fired {created}"
        );
        assert!(
            ended <= created + *sleep as i64 + 3,
            "a {sleep} s run fired at {created} ended at {ended}: it waited for others"
        );
    }
}
