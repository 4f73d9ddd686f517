//! Scaling out: the app as two replicas (two `spin up`) sharing one redis-server (key-value)
//! and one database, PostgreSQL or sqld (libSQL), every request to the next replica in turn;
//! measured against one replica on local files (`--scale-out`), and soaked under mixed load
//! (`--soak [seconds]`).

use crate::{
    check, compare, example_package, get_from, header, in_mode, report, Fixtures, Floor, Served,
    CLOSE,
};
use serde_json::json;
use spinling_test_support::rig::{write_runtime_config, PostgresServer, RedisServer, SqldServer};
use spinling_test_support::{incompressible, multipart, zip_of};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The database the replicas share.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Backend {
    Postgres,
    Sqld,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Postgres => "PostgreSQL",
            Backend::Sqld => "sqld (libSQL)",
        }
    }
}

/// Two replicas on one Redis and one database.
pub struct ScaleOut {
    pub replicas: Vec<Served>,
    _redis: RedisServer,
    _postgres: Option<PostgresServer>,
    _sqld: Option<SqldServer>,
    _dir: tempfile::TempDir,
}

impl ScaleOut {
    pub fn start(backend: Backend) -> ScaleOut {
        let dir = tempfile::tempdir().unwrap();
        let redis = RedisServer::start(&dir.path().join("redis"));
        let config = dir.path().join("runtime-config.toml");
        let mut variables: Vec<(String, String)> =
            vec![("key_value_scope".into(), "shared".into())];
        let (mut postgres, mut sqld) = (None, None);
        match backend {
            Backend::Postgres => {
                // Durable, as in production: every commit on disk before its answer.
                let server = PostgresServer::start(true);
                server.create_database("spinling");
                variables.extend(server.spin_variables("spinling"));
                postgres = Some(server);
            }
            Backend::Sqld => sqld = Some(SqldServer::start(&dir.path().join("sqld"))),
        }
        write_runtime_config(&config, Some(&redis), sqld.as_ref());
        let variables: Vec<(&str, &str)> = variables
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let replicas = (0..2)
            .map(|_| Served::start_with(&variables, Some(&config)))
            .collect();
        ScaleOut {
            replicas,
            _redis: redis,
            _postgres: postgres,
            _sqld: sqld,
            _dir: dir,
        }
    }

    /// The URL of `path` on the replica call `i` goes to.
    pub fn url(&self, i: usize, path: &str) -> String {
        self.replicas[i % self.replicas.len()].url(path)
    }
}

/// The answer to one request, or why none came.
type Reply = Result<ureq::http::Response<ureq::Body>, ureq::Error>;

/// An operation that counts answers other than `status` (and requests that got none) in
/// `errors` instead of failing: over sqld, a busy database is a 503 the client may retry.
fn tolerant<'a>(
    errors: &'a AtomicUsize,
    status: u16,
    send: impl Fn(&ureq::Agent, usize) -> Reply + Sync + 'a,
) -> impl Fn(&ureq::Agent, usize) + Sync + 'a {
    move |a, i| match send(a, i) {
        Ok(reply) if reply.status().as_u16() == status => {
            let _ = reply.into_body().read_to_vec();
        }
        _ => {
            errors.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// GET a version, create a version and a sync execution: one replica on local files (`app`)
/// against two replicas on Redis and `backend`, in alternating rounds (the CPU column: the
/// first replica's only).
pub fn scale_out(app: &Served, fixtures: &Fixtures, backend: Backend, reads: usize, writes: usize) {
    CLOSE.store(true, Ordering::Relaxed);
    println!();
    println!(
        "scale-out: two replicas on redis-server + {} against one on local files ({})",
        backend.name(),
        crate::mode_name()
    );
    header();
    let rig = ScaleOut::start(backend);
    let errors = AtomicUsize::new(0);
    let first = &rig.replicas[0];
    let fid = first.create_function(&zip_of(&[("main.wasm", b"v0")]));
    first.post_json(&format!("/v1/functions/{fid}/versions"), json!({}));
    let local_get = get_from(app.url(&format!("/v1/functions/{}/versions/1", fixtures.fid)));
    let scaled_get = tolerant(&errors, 200, |a, i| {
        let url = rig.url(i, &format!("/v1/functions/{fid}/versions/1"));
        in_mode(a.get(&url)).call()
    });
    let (local, scaled) = compare(reads, (&app.spin, &local_get), (&first.spin, &scaled_get));
    let one_replica = |figures| Floor {
        name: "one replica",
        figures,
    };
    report("GET a version", &scaled, &one_replica(local));

    let local_fids = app.fresh_functions("s", writes);
    let rig_fids = first.fresh_functions("s", writes);
    let publish = |a: &ureq::Agent, url: &str| {
        in_mode(a.post(url))
            .header("content-type", "application/json")
            .send("{}")
    };
    let local_create = |a: &ureq::Agent, i: usize| {
        let url = app.url(&format!("/v1/functions/{}/versions", local_fids[i]));
        check(publish(a, &url).unwrap(), 201);
    };
    let scaled_create = tolerant(&errors, 201, |a, i| {
        publish(
            a,
            &rig.url(i, &format!("/v1/functions/{}/versions", rig_fids[i])),
        )
    });
    let (local, scaled) = compare(
        writes,
        (&app.spin, &local_create),
        (&first.spin, &scaled_create),
    );
    report("create a version", &scaled, &one_replica(local));

    let rig_hello = first.create_function(&example_package("hello"));
    let execute = |a: &ureq::Agent, url: &str, fid: &str| {
        in_mode(a.post(url))
            .header("content-type", "application/json")
            .send(json!({"function_id": fid}).to_string())
    };
    let local_execute = |a: &ureq::Agent, _| {
        check(
            execute(a, &app.url("/v1/executions"), &fixtures.hello).unwrap(),
            201,
        );
    };
    let scaled_execute = tolerant(&errors, 201, |a, i| {
        execute(a, &rig.url(i, "/v1/executions"), &rig_hello)
    });
    let (local, scaled) = compare(
        writes,
        (&app.spin, &local_execute),
        (&first.spin, &scaled_execute),
    );
    report("sync execution (hello)", &scaled, &one_replica(local));
    println!(
        "  answers other than 200/201 on the replicas: {}",
        errors.load(Ordering::Relaxed)
    );
}

/// How many clients a soak runs.
const SOAK_CLIENTS: usize = 16;

/// A request slower than this is a soak failure.
const SOAK_SLOW: Duration = Duration::from_secs(5);

/// What one soak saw.
#[derive(Default)]
struct Soaked {
    /// Latencies by operation: create, publish, GET the version, sync execution.
    latencies: [Vec<Duration>; 4],
    errors: usize,
    /// The first few errors, for the report.
    examples: Vec<String>,
    /// Loops finished (all four operations answered as expected).
    loops: usize,
}

const SOAK_OPS: [&str; 4] = [
    "create a function (0-200 KB)",
    "publish a version",
    "GET the version",
    "sync execution",
];

/// `--soak [seconds]` (120 by default; 600 for the long mode): 16 clients, each looping
/// create a function with a 0-200 KB package → publish it → GET the version → a sync
/// execution of `hello`, on two replicas on PostgreSQL + Redis, on one replica on local
/// files, and on two replicas on sqld + Redis. Prints errors, requests over 5 s, loops per
/// second and p50/p99 per operation.
/// Soaks each deployment in turn, or only those whose short name (`postgres`, `files`, `sqld`)
/// is in `only` when it is not empty.
pub fn soak(seconds: u64, only: &[String]) {
    CLOSE.store(true, Ordering::Relaxed);
    let duration = Duration::from_secs(seconds);
    println!();
    println!(
        "soak: {SOAK_CLIENTS} clients for {seconds} s, each looping create (0-200 KB) → publish → GET → sync execution ({})",
        crate::mode_name()
    );
    let runs: [(&str, &str, StartDeployment); 3] = [
        (
            "postgres",
            "two replicas, PostgreSQL + Redis",
            Box::new(|| Deployment::Replicas(ScaleOut::start(Backend::Postgres))),
        ),
        (
            "files",
            "one replica, local files",
            Box::new(|| Deployment::One(Served::start(&[]))),
        ),
        (
            "sqld",
            "two replicas, sqld + Redis",
            Box::new(|| Deployment::Replicas(ScaleOut::start(Backend::Sqld))),
        ),
    ];
    println!(
        "{:<34} {:>7} {:>6} {:>6} {:>8}  p50 / p99 ms per operation",
        "deployment", "loops/s", "errors", ">5 s", "max ms"
    );
    for (short, name, start) in runs {
        if !only.is_empty() && !only.iter().any(|o| o == short) {
            continue;
        }
        let deployment = start();
        let soaked = soak_one(&deployment, duration);
        let slow = soaked
            .latencies
            .iter()
            .flatten()
            .filter(|d| **d > SOAK_SLOW)
            .count();
        let max = soaked
            .latencies
            .iter()
            .flatten()
            .max()
            .copied()
            .unwrap_or_default();
        let per_op: Vec<String> = soaked
            .latencies
            .iter()
            .zip(SOAK_OPS)
            .map(|(l, op)| format!("{op}: {}", percentiles(l)))
            .collect();
        println!(
            "{:<34} {:>7.1} {:>6} {:>6} {:>8.0}  {}",
            name,
            soaked.loops as f64 / duration.as_secs_f64(),
            soaked.errors,
            slow,
            max.as_secs_f64() * 1000.0,
            per_op.join("; ")
        );
        for example in &soaked.examples {
            println!("    e.g. {example}");
        }
    }
}

/// How a soak starts the deployment it loads.
type StartDeployment = Box<dyn Fn() -> Deployment>;

enum Deployment {
    One(Served),
    Replicas(ScaleOut),
}

impl Deployment {
    fn url(&self, i: usize, path: &str) -> String {
        match self {
            Deployment::One(app) => app.url(path),
            Deployment::Replicas(rig) => rig.url(i, path),
        }
    }

    fn first(&self) -> &Served {
        match self {
            Deployment::One(app) => app,
            Deployment::Replicas(rig) => &rig.replicas[0],
        }
    }
}

fn percentiles(latencies: &[Duration]) -> String {
    if latencies.is_empty() {
        return "-".into();
    }
    let mut sorted = latencies.to_vec();
    sorted.sort();
    let at = |q: f64| sorted[((sorted.len() as f64 * q) as usize).min(sorted.len() - 1)];
    format!(
        "{:.0}/{:.0}",
        at(0.5).as_secs_f64() * 1000.0,
        at(0.99).as_secs_f64() * 1000.0
    )
}

fn soak_one(deployment: &Deployment, duration: Duration) -> Soaked {
    let first = deployment.first();
    let runtime = first.post_json("/v1/runtimes", json!({"image": "spinling/wasm"}));
    let runtime = runtime["id"].as_str().unwrap().to_string();
    let hello = first.create_function(&example_package("hello"));
    let soaked = Mutex::new(Soaked::default());
    let stop = AtomicBool::new(false);
    let deadline = Instant::now() + duration;
    std::thread::scope(|s| {
        for client in 0..SOAK_CLIENTS {
            let (soaked, stop, runtime, hello) = (&soaked, &stop, &runtime, &hello);
            s.spawn(move || {
                let agent: ureq::Agent = ureq::Agent::config_builder()
                    .http_status_as_error(false)
                    .timeout_global(Some(Duration::from_secs(60)))
                    .max_idle_connections(0)
                    .build()
                    .into();
                let mut n = client;
                while Instant::now() < deadline && !stop.load(Ordering::Relaxed) {
                    n += SOAK_CLIENTS;
                    let outcome = one_loop(deployment, &agent, n, runtime, hello);
                    let mut soaked = soaked.lock().unwrap();
                    match outcome {
                        Ok(latencies) => {
                            for (i, l) in latencies.into_iter().enumerate() {
                                soaked.latencies[i].push(l);
                            }
                            soaked.loops += 1;
                        }
                        Err((latencies, error)) => {
                            for (i, l) in latencies.into_iter().enumerate() {
                                soaked.latencies[i].push(l);
                            }
                            soaked.errors += 1;
                            if soaked.examples.len() < 3 {
                                soaked.examples.push(error);
                            }
                        }
                    }
                }
            });
        }
    });
    soaked.into_inner().unwrap()
}

type LoopError = (Vec<Duration>, String);

/// One client's loop `n`: create → publish → GET → execute, each timed; stops at the first
/// answer that is not the one expected.
fn one_loop(
    deployment: &Deployment,
    agent: &ureq::Agent,
    n: usize,
    runtime: &str,
    hello: &str,
) -> Result<Vec<Duration>, LoopError> {
    let mut latencies = Vec::new();
    let timed = |latencies: &mut Vec<Duration>,
                 what: &str,
                 expected: u16,
                 request: ureq::http::Request<Vec<u8>>|
     -> Result<Vec<u8>, String> {
        let started = Instant::now();
        let reply = agent.run(request);
        latencies.push(started.elapsed());
        match reply {
            Ok(reply) if reply.status().as_u16() == expected => reply
                .into_body()
                .read_to_vec()
                .map_err(|e| format!("{what}: {e}")),
            Ok(reply) => {
                let status = reply.status().as_u16();
                let body = reply.into_body().read_to_string().unwrap_or_default();
                Err(format!(
                    "{what}: {status} {}",
                    body.chars().take(200).collect::<String>()
                ))
            }
            Err(e) => Err(format!("{what}: {e}")),
        }
    };
    // A package of 0-200 KB, different each loop.
    let size = (n * 7919) % (200 * 1024);
    let mut content = format!("loop {n}").into_bytes();
    content.extend(incompressible(n as u64, size));
    let package = zip_of(&[("main.wasm", &content)]);
    let fields = [
        ("code", r#"{"source": "package"}"#),
        ("runtime_id", runtime),
    ];
    let (content_type, body) = multipart(&fields, Some(&package));
    let request = |method: &str, path: &str, content_type: &str, body: Vec<u8>| {
        ureq::http::Request::builder()
            .method(method)
            .uri(deployment.url(n, path))
            .header("content-type", content_type)
            .header("connection", "close")
            .body(body)
            .unwrap()
    };
    let created = timed(
        &mut latencies,
        "create",
        201,
        request("POST", "/v1/functions", &content_type, body),
    )
    .map_err(|e| (latencies.clone(), e))?;
    let fid = serde_json::from_slice::<serde_json::Value>(&created).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let path = format!("/v1/functions/{fid}/versions");
    timed(
        &mut latencies,
        "publish",
        201,
        request("POST", &path, "application/json", b"{}".to_vec()),
    )
    .map_err(|e| (latencies.clone(), e))?;
    timed(
        &mut latencies,
        "GET the version",
        200,
        request("GET", &format!("{path}/1"), "application/json", Vec::new()),
    )
    .map_err(|e| (latencies.clone(), e))?;
    let execution = json!({"function_id": hello}).to_string().into_bytes();
    timed(
        &mut latencies,
        "sync execution",
        201,
        request("POST", "/v1/executions", "application/json", execution),
    )
    .map_err(|e| (latencies.clone(), e))?;
    Ok(latencies)
}
