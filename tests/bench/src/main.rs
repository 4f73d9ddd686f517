//! `cargo run -p spinling-bench`: serves the app and its floors (a trivial component doing
//! nothing, one key-value read, one SQLite row read, or one durable one-row INSERT) from one
//! test host on loopback, and prints, per operation, requests per second and latency next to
//! the floor it cannot beat, measured in the same run. The ratio is the figure; absolute
//! numbers depend on the (shared, noisy) machine.

use serde_json::{json, Value as Json};
use spin_test_host::{BlockingApp, HostOptions};
use spinling_api_tests::{multipart, repo_root, zip_of};
use spinling_test_support::incompressible;
use spinling_test_support::rig::{RedisServer, SqldServer};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Concurrent clients, each with its own keep-alive connection (as `wrk -c16`).
const THREADS: usize = 16;
const BIG: usize = 50 * 1024 * 1024;

struct Figures {
    /// CPU time per request, of the whole process.
    cpu: Duration,
    per_second: f64,
    p50: Duration,
    p99: Duration,
}

/// Calls made by one operation in one round: `op(agent, index)` for `offset..offset + total`,
/// spread over `threads` clients with keep-alive connections.
struct Round {
    latencies: Vec<Duration>,
    elapsed: Duration,
    /// CPU time the whole process (host, guests and clients) spent meanwhile.
    cpu: Duration,
}

/// CPU time this process has used (user and system), from `/proc/self/stat`, in clock ticks
/// of 10 ms: coarse, but summed over hundreds of requests it shows what each costs.
fn process_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let ticks: u64 = after_name
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|t| t.parse::<u64>().ok())
        .sum();
    Duration::from_millis(ticks * 10)
}

fn round(
    threads: usize,
    total: usize,
    offset: usize,
    op: &(impl Fn(&ureq::Agent, usize) + Sync),
) -> Round {
    let per_thread = total / threads;
    let (started, cpu_before) = (Instant::now(), process_cpu());
    let latencies: Vec<Duration> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || {
                    let agent: ureq::Agent = ureq::Agent::config_builder()
                        .http_status_as_error(false)
                        .timeout_global(Some(REQUEST_TIMEOUT))
                        .build()
                        .into();
                    (0..per_thread)
                        .map(|i| {
                            let start = Instant::now();
                            op(&agent, offset + t * per_thread + i);
                            start.elapsed()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    Round {
        latencies,
        elapsed: started.elapsed(),
        cpu: process_cpu().saturating_sub(cpu_before),
    }
}

impl Figures {
    fn of(rounds: Vec<Round>) -> Figures {
        let elapsed: Duration = rounds.iter().map(|r| r.elapsed).sum();
        let cpu: Duration = rounds.iter().map(|r| r.cpu).sum();
        let mut latencies: Vec<Duration> = rounds.into_iter().flat_map(|r| r.latencies).collect();
        latencies.sort();
        let at =
            |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
        Figures {
            cpu: cpu / latencies.len().max(1) as u32,
            per_second: latencies.len() as f64 / elapsed.as_secs_f64(),
            p50: at(0.5),
            p99: at(0.99),
        }
    }
}

/// Runs `total` calls of `op` over `threads` clients.
fn measure(threads: usize, total: usize, op: impl Fn(&ureq::Agent, usize) + Sync) -> Figures {
    Figures::of(vec![round(threads, total, 0, &op)])
}

/// The longest a request may take: a bench that hangs measures nothing.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Rounds of a comparison: the machine is shared, and its load drifts.
const ROUNDS: usize = 5;

/// Runs `total` calls of `floor` and of `subject` over [`THREADS`] clients, in alternating
/// rounds, so that a change in the machine's load falls on both alike; their figures.
fn compare(
    total: usize,
    floor: impl Fn(&ureq::Agent, usize) + Sync,
    subject: impl Fn(&ureq::Agent, usize) + Sync,
) -> (Figures, Figures) {
    let per_round = total / ROUNDS;
    let (mut floors, mut subjects) = (Vec::new(), Vec::new());
    for r in 0..ROUNDS {
        floors.push(round(THREADS, per_round, r * per_round, &floor));
        subjects.push(round(THREADS, per_round, r * per_round, &subject));
    }
    (Figures::of(floors), Figures::of(subjects))
}

fn check(response: ureq::http::Response<ureq::Body>, status: u16) -> Vec<u8> {
    let got = response.status().as_u16();
    let body = response
        .into_body()
        .with_config()
        .limit(u64::MAX)
        .read_to_vec()
        .unwrap();
    assert_eq!(
        got,
        status,
        "{}",
        String::from_utf8_lossy(&body[..body.len().min(300)])
    );
    body
}

/// A floor: the least a request of some kind costs through the same host.
struct Floor {
    name: &'static str,
    figures: Figures,
}

/// One line: the operation's figures, its floor's, and the ratios (throughput: higher is
/// better, at most about 1; p99: lower is better, at least about 1).
fn report(name: &str, subject: &Figures, floor: &Floor) {
    let base = &floor.figures;
    println!(
        "{name:<32} {:>7.0}/s {:>6.2} {:>7.2} {:>5.2} | {:<14} {:>7.0}/s {:>7.2} {:>5.2} | x{:.2} x{:.2}",
        subject.per_second,
        millis(subject.p50),
        millis(subject.p99),
        millis(subject.cpu),
        floor.name,
        base.per_second,
        millis(base.p99),
        millis(base.cpu),
        subject.per_second / base.per_second,
        millis(subject.p99) / millis(base.p99)
    );
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The app's manifest plus the trivial component at `/trivial`, with absolute sources.
fn bench_manifest(dir: &std::path::Path) -> std::path::PathBuf {
    let root = repo_root();
    let manifest = std::fs::read_to_string(root.join("spin.toml"))
        .unwrap()
        .replace(
            "source = \"target/",
            &format!("source = \"{}/target/", root.display()),
        );
    let manifest = format!(
        "{manifest}\n[[trigger.http]]\nroute = \"/trivial/...\"\ncomponent = \"trivial\"\n\n\
         [component.trivial]\nsource = \"{}/target/wasm32-wasip1/release/spinling_bench_trivial.wasm\"\n\
         key_value_stores = [\"default\"]\nsqlite_databases = [\"default\"]\n",
        root.display()
    );
    let path = dir.join("spin.toml");
    std::fs::write(&path, manifest).unwrap();
    path
}

/// One app served on loopback, with a client for setting it up.
struct Served {
    _app: BlockingApp,
    _state: tempfile::TempDir,
    base: String,
    agent: ureq::Agent,
}

impl Served {
    fn start(variables: &[(&str, &str)]) -> Served {
        Served::start_with(variables, None)
    }

    /// The app with its stores where `runtime_config` (a Spin runtime config file) says.
    fn start_with(variables: &[(&str, &str)], runtime_config: Option<&Path>) -> Served {
        let state = tempfile::tempdir().unwrap();
        let mut options =
            HostOptions::new(bench_manifest(state.path()), state.path().join("state"))
                .variable("max_versions", "1000000")
                .variable("max_package_size", &(64 * 1024 * 1024).to_string());
        for (name, value) in variables {
            options = options.variable(name, value);
        }
        if let Some(path) = runtime_config {
            options = options.runtime_config(path);
        }
        let app = BlockingApp::load(options).expect("build the components first: scripts/test");
        let base = format!("http://{}", app.serve_in_background());
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        Served {
            _app: app,
            _state: state,
            base,
            agent,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn post_json(&self, path: &str, body: Json) -> Json {
        let reply = self
            .agent
            .post(&self.url(path))
            .header("content-type", "application/json")
            .send(body.to_string());
        serde_json::from_slice(&check(reply.unwrap(), 201)).unwrap()
    }

    fn send_form(
        &self,
        method: &str,
        path: &str,
        package: &[u8],
        fields: &[(&str, &str)],
        status: u16,
    ) -> Json {
        let (content_type, body) = multipart(fields, Some(package));
        let request = ureq::http::Request::builder()
            .method(method)
            .uri(self.url(path))
            .header("content-type", content_type)
            .body(body)
            .unwrap();
        serde_json::from_slice(&check(self.agent.run(request).unwrap(), status)).unwrap()
    }

    fn create_function(&self, package: &[u8]) -> String {
        let runtime = self.post_json("/v1/runtimes", json!({"image": "spinling/wasm"}));
        let fields = [
            ("code", r#"{"source": "package"}"#),
            ("runtime_id", runtime["id"].as_str().unwrap()),
        ];
        self.send_form("POST", "/v1/functions", package, &fields, 201)["id"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// Creates the floors' table and row in the app's database file, which they share with
    /// it, and checks that the INSERT floor commits durably.
    fn set_up_floors(&self) {
        let setup = check(
            self.agent
                .post(&self.url("/trivial?setup"))
                .send("")
                .unwrap(),
            200,
        );
        assert_eq!(
            String::from_utf8_lossy(&setup),
            "wal 2",
            "the INSERT floor must commit durably: journal_mode=WAL, synchronous=FULL (2)"
        );
    }

    /// Publishing, each create the first version of its own function, against the durable
    /// INSERT floor: (floor, creates).
    fn compare_creates(&self, creates: usize) -> (Figures, Figures) {
        let fids: Vec<String> = (0..creates)
            .map(|i| self.create_function(&zip_of(&[("main.wasm", format!("f{i}").as_bytes())])))
            .collect();
        compare(
            creates,
            post_to(&self.url("/trivial?insert"), 200),
            |a, i| {
                let url = self.url(&format!("/v1/functions/{}/versions", fids[i]));
                check(
                    a.post(&url)
                        .header("content-type", "application/json")
                        .send("{}")
                        .unwrap(),
                    201,
                );
            },
        )
    }
}

/// An operation: GET `url`, expecting 200.
fn get_from(url: &str) -> impl Fn(&ureq::Agent, usize) + Sync + '_ {
    move |a, _| {
        check(a.get(url).call().unwrap(), 200);
    }
}

/// An operation: POST `{}` to `url`, expecting `status`.
fn post_to(url: &str, status: u16) -> impl Fn(&ureq::Agent, usize) + Sync + '_ {
    move |a, _| {
        check(
            a.post(url)
                .header("content-type", "application/json")
                .send("{}")
                .unwrap(),
            status,
        );
    }
}

/// A GET of `path` against a GET of the floor at `floor_path`, in alternating rounds:
/// (floor, subject). Both are warmed up first, untimed (a read can be repeated at will): the
/// first requests to a component are slower, and the floors' components are warm already.
fn compare_gets(base: &str, floor_path: &str, path: &str, total: usize) -> (Figures, Figures) {
    let (floor, subject) = (format!("{base}{floor_path}"), format!("{base}{path}"));
    let (floor, subject) = (get_from(&floor), get_from(&subject));
    round(THREADS, WARM_UP, 0, &floor);
    round(THREADS, WARM_UP, 0, &subject);
    compare(total, floor, subject)
}

/// Untimed calls before a comparison of reads.
const WARM_UP: usize = THREADS * 16;

fn main() {
    let app = Served::start(&[]);
    let base = &app.base;
    println!(
        "Spinling through the Spin test host, {THREADS} clients, keep-alive, loopback; each \
         operation alternates with its floor in {ROUNDS} rounds (reads after {WARM_UP} untimed \
         calls of each)."
    );
    println!(
        "{:<32} {:>9} {:>6} {:>7} {:>5} | {:<14} {:>9} {:>7} {:>5} | rate, p99 ratios",
        "operation (ms)", "rate", "p50", "p99", "cpu", "floor", "rate", "p99", "cpu",
    );
    app.set_up_floors();
    let reads = 4000;
    let floor = |name, figures| Floor { name, figures };
    let (nothing, no_storage) = compare_gets(base, "/trivial", "/v1/", reads);
    report(
        "GET /v1/ (no storage)",
        &no_storage,
        &floor("nothing", nothing),
    );
    let (nothing, kv_read) = compare_gets(base, "/trivial", "/trivial?kv", reads);
    report(
        "floor: one key-value read",
        &kv_read,
        &floor("nothing", nothing),
    );
    let (nothing, row_read) = compare_gets(base, "/trivial", "/trivial?row", reads);
    report(
        "floor: one SQLite row read",
        &row_read,
        &floor("nothing", nothing),
    );

    // A function with ten versions.
    let fid = app.create_function(&zip_of(&[("main.wasm", b"v0")]));
    for i in 1..=10 {
        app.post_json(&format!("/v1/functions/{fid}/versions"), json!({}));
        app.send_form(
            "PUT",
            &format!("/v1/functions/{fid}"),
            &zip_of(&[("main.wasm", format!("v{i}").as_bytes())]),
            &[],
            200,
        );
    }
    let version_path = format!("/v1/functions/{fid}/versions/1");
    let (row, get_version) = compare_gets(base, "/trivial?row", &version_path, reads);
    let get_version_floor = floor("row read", row);
    report("GET a version", &get_version, &get_version_floor);
    let (kv, get_version_again) = compare_gets(base, "/trivial?kv", &version_path, reads);
    report(
        "  against the key-value read",
        &get_version_again,
        &floor("kv read", kv),
    );
    let list_path = format!("/v1/functions/{fid}/versions");
    let (row, list_versions) = compare_gets(base, "/trivial?row", &list_path, reads);
    report(
        "list versions (10)",
        &list_versions,
        &floor("row read", row),
    );
    let function_path = format!("/v1/functions/{fid}");
    let (row, get_function) = compare_gets(base, "/trivial?row", &function_path, reads);
    let get_function_floor = floor("row read", row);
    report("GET a function", &get_function, &get_function_floor);

    let writes = 800;
    let (nothing, insert) = compare(
        writes,
        post_to(&format!("{base}/trivial"), 200),
        post_to(&format!("{base}/trivial?insert"), 200),
    );
    report(
        "floor: one durable INSERT",
        &insert,
        &floor("nothing", nothing),
    );
    let (insert, create) = app.compare_creates(writes);
    let create_floor = floor("durable INSERT", insert);
    report("create a version", &create, &create_floor);
    let normal = Served::start(&[("sqlite_synchronous", "normal")]);
    normal.set_up_floors();
    let (insert, create_normal) = normal.compare_creates(writes);
    report(
        "  with sqlite_synchronous=normal",
        &create_normal,
        &floor("durable INSERT", insert),
    );
    drop(normal);

    // Sync executions of the hello-world example on the built-in runtime.
    let hello = spinling_api_tests::example_package("hello");
    let hello_fid = app.create_function(&hello);
    let run_times = std::sync::Mutex::new(Vec::new());
    let insert_url = format!("{base}/trivial?insert");
    let (insert, executions) = compare(writes, post_to(&insert_url, 200), |a, _| {
        let reply = check(
            a.post(&format!("{base}/v1/executions"))
                .header("content-type", "application/json")
                .send(json!({"function_id": hello_fid}).to_string())
                .unwrap(),
            201,
        );
        let execution: Json = serde_json::from_slice(&reply).unwrap();
        assert_eq!(execution["status"], "success", "{execution}");
        let result: Json = serde_json::from_str(execution["result"].as_str().unwrap()).unwrap();
        run_times
            .lock()
            .unwrap()
            .push(result["duration"].as_f64().unwrap());
    });
    let execution_floor = floor("durable INSERT", insert);
    report("sync execution (hello)", &executions, &execution_floor);
    let run_times = run_times.into_inner().unwrap();
    let mean_run = run_times.iter().sum::<f64>() / run_times.len() as f64;
    println!(
        "  of p50 {:.2} ms, the function's own run is {:.2} ms on average; the rest is API, storage and runtime start",
        millis(executions.p50),
        mean_run * 1000.0
    );

    // 50 MiB packages, one client.
    let big = zip_of(&[("big.bin", &incompressible(1, BIG))]);
    let runtime = app.post_json("/v1/runtimes", json!({"image": "spinling/wasm"}));
    let (upload_type, upload_body) = multipart(
        &[
            ("code", r#"{"source": "package"}"#),
            ("runtime_id", runtime["id"].as_str().unwrap()),
        ],
        Some(&big),
    );
    let trivial_upload = Floor {
        name: "read the body",
        figures: measure(1, 3, |a, _| {
            check(
                a.post(&format!("{base}/trivial"))
                    .header("content-type", &upload_type)
                    .send(&upload_body[..])
                    .unwrap(),
                200,
            );
        }),
    };
    let big_fid = std::sync::Mutex::new(String::new());
    let upload = measure(1, 3, |a, _| {
        let reply = check(
            a.post(&format!("{base}/v1/functions"))
                .header("content-type", &upload_type)
                .send(&upload_body[..])
                .unwrap(),
            201,
        );
        *big_fid.lock().unwrap() = serde_json::from_slice::<Json>(&reply).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string();
    });
    report("upload 50 MiB package", &upload, &trivial_upload);
    let big_fid = big_fid.into_inner().unwrap();
    let trivial_download = Floor {
        name: "write the body",
        figures: measure(1, 3, |a, _| {
            let bytes = check(
                a.get(&format!("{base}/trivial?bytes={}", big.len()))
                    .call()
                    .unwrap(),
                200,
            );
            assert_eq!(bytes.len(), big.len());
        }),
    };
    let download = measure(1, 3, |a, _| {
        let bytes = check(
            a.get(&format!("{base}/v1/functions/{big_fid}?download=true"))
                .call()
                .unwrap(),
            200,
        );
        assert!(bytes == big, "the download differs from the upload");
    });
    report("download 50 MiB package", &download, &trivial_download);

    // Fewer writes: each costs a round trip to sqld per statement.
    scale_out(&app, &version_path, &hello_fid, reads, writes / 4);

    let target = |name: &str, got: f64, want: &str, met: bool| {
        println!(
            "  {name:<40} {got:>6.2}  target {want:<8} {}",
            if met { "met" } else { "NOT met" }
        );
    };
    let rate = |f: &Figures, floor: &Floor| f.per_second / floor.figures.per_second;
    let tail = |f: &Figures, floor: &Floor| millis(f.p99) / millis(floor.figures.p99);
    println!("targets (issue 15):");
    let r = rate(&create, &create_floor);
    target("create a version / durable INSERT", r, ">= 0.7", r >= 0.7);
    let r = tail(&create, &create_floor);
    target("  its p99 / the floor's", r, "<= 2", r <= 2.0);
    let r = rate(&executions, &execution_floor);
    target("sync execution / durable INSERT", r, ">= 0.5", r >= 0.5);
    let r = tail(&executions, &execution_floor);
    target("  its p99 / the floor's", r, "<= 3", r <= 3.0);
    let r = rate(&get_function, &get_function_floor);
    target("GET a function / row read", r, ">= 0.85", r >= 0.85);
    let r = rate(&get_version, &get_version_floor);
    target("GET a version / row read", r, ">= 1.0", r >= 1.0);
    let r = tail(&get_version, &get_version_floor);
    target("  its p99 / the floor's", r, "<= 1", r <= 1.0);
    let s = upload.p99.as_secs_f64();
    target("50 MiB upload, seconds (p99 of 3)", s, "<= 0.5", s <= 0.5);
    let s = download.p99.as_secs_f64();
    target(
        "50 MiB download, seconds (p99 of 3)",
        s,
        "<= 0.15",
        s <= 0.15,
    );
}

/// The app as deployed to scale out: two replicas (two hosts) sharing one redis-server
/// (key-value) and one sqld (SQLite, over libSQL), every request to the next replica in turn.
struct ScaleOut {
    replicas: Vec<Served>,
    _redis: RedisServer,
    _sqld: SqldServer,
    _dir: tempfile::TempDir,
}

impl ScaleOut {
    fn start() -> ScaleOut {
        let dir = tempfile::tempdir().unwrap();
        let redis = RedisServer::start(&dir.path().join("redis"));
        let sqld = SqldServer::start(&dir.path().join("sqld"));
        let config = dir.path().join("runtime-config.toml");
        std::fs::write(
            &config,
            format!(
                "[key_value_store.default]\ntype = \"redis\"\nurl = \"{}\"\n\n\
                 [sqlite_database.default]\ntype = \"libsql\"\nurl = \"{}\"\ntoken = \"\"\n",
                redis.url(0),
                sqld.url()
            ),
        )
        .unwrap();
        let shared = [("key_value_scope", "shared")];
        let replicas = (0..2)
            .map(|_| Served::start_with(&shared, Some(&config)))
            .collect();
        ScaleOut {
            replicas,
            _redis: redis,
            _sqld: sqld,
            _dir: dir,
        }
    }

    /// The URL of `path` on the replica call `i` goes to.
    fn url(&self, i: usize, path: &str) -> String {
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
/// against two replicas on Redis + sqld, in alternating rounds.
fn scale_out(app: &Served, version_path: &str, hello_fid: &str, reads: usize, writes: usize) {
    println!("scale-out: two replicas on redis-server + sqld against one on local files");
    let rig = ScaleOut::start();
    let errors = AtomicUsize::new(0);
    let first = &rig.replicas[0];
    let fid = first.create_function(&zip_of(&[("main.wasm", b"v0")]));
    first.post_json(&format!("/v1/functions/{fid}/versions"), json!({}));
    let (local, scaled) = compare(
        reads,
        get_from(&app.url(version_path)),
        tolerant(&errors, 200, |a, i| {
            let url = rig.url(i, &format!("/v1/functions/{fid}/versions/1"));
            a.get(&url).call()
        }),
    );
    report(
        "GET a version",
        &scaled,
        &Floor {
            name: "one replica",
            figures: local,
        },
    );

    let package = |i: usize| zip_of(&[("main.wasm", format!("s{i}").as_bytes())]);
    let local_fids: Vec<String> = (0..writes)
        .map(|i| app.create_function(&package(i)))
        .collect();
    let rig_fids: Vec<String> = (0..writes)
        .map(|i| first.create_function(&package(i)))
        .collect();
    let publish = |a: &ureq::Agent, url: &str| {
        a.post(url)
            .header("content-type", "application/json")
            .send("{}")
    };
    let (local, scaled) = compare(
        writes,
        |a, i| {
            let url = app.url(&format!("/v1/functions/{}/versions", local_fids[i]));
            check(publish(a, &url).unwrap(), 201);
        },
        tolerant(&errors, 201, |a, i| {
            publish(
                a,
                &rig.url(i, &format!("/v1/functions/{}/versions", rig_fids[i])),
            )
        }),
    );
    report(
        "create a version",
        &scaled,
        &Floor {
            name: "one replica",
            figures: local,
        },
    );

    let hello = spinling_api_tests::example_package("hello");
    let rig_hello = first.create_function(&hello);
    let execute = |a: &ureq::Agent, url: &str, fid: &str| {
        a.post(url)
            .header("content-type", "application/json")
            .send(json!({"function_id": fid}).to_string())
    };
    let (local, scaled) = compare(
        writes,
        |a, _| {
            check(
                execute(a, &app.url("/v1/executions"), hello_fid).unwrap(),
                201,
            );
        },
        tolerant(&errors, 201, |a, i| {
            execute(a, &rig.url(i, "/v1/executions"), &rig_hello)
        }),
    );
    report(
        "sync execution (hello)",
        &scaled,
        &Floor {
            name: "one replica",
            figures: local,
        },
    );
    println!(
        "  answers other than 200/201 on the replicas: {}",
        errors.load(Ordering::Relaxed)
    );
}
