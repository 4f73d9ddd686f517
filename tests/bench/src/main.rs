//! `cargo run --release -p spinling-bench`: serves the app with real `spin up` (the Spin CLI a
//! user runs: `$SPIN`, `spin` on `PATH`, or `../shared/spin/bin/spin`), and its floors with a
//! second `spin up` of trivial spin-sdk components (`trivial/spin.toml`: doing nothing, one
//! key-value read, one SQLite row read, or one durable one-row INSERT), and prints, per
//! operation, requests per second, p50/p99 latency and the CPU time the `spin` process spent
//! per request, next to the floor it cannot beat, measured in alternating rounds of the same
//! run. The ratio is the figure; absolute numbers depend on the (shared, noisy) machine.
//!
//! Build first: `cargo build --target wasm32-wasip1 --release $(scripts/components)` (the
//! app's components, the floors' `spinling-bench-trivial` and `examples/hello`).
//!
//! Both client connection modes are measured, each a table. `Connection: close` (a connection
//! per request, like `wrk -H 'Connection: close'`) is what the throughput and p99 targets use:
//! stock Spin does not set `TCP_NODELAY` on its connections, so on a kept-alive connection a
//! response the host writes in more than one piece can wait out the client's delayed ACK
//! (Nagle's algorithm, about 40 ms on Linux), and the figures then measure how a response is
//! cut into writes rather than what it costs. Keep-alive is measured for exactly that: its
//! target is that no GET's p99 is far off the row-read floor's.
//!
//! `--scale-out` adds two replicas on redis-server and sqld against one on local files.

mod scale;
mod spin;

use serde_json::{json, Value as Json};
use spin::{repo_root, SpinUp};
use spinling_test_support::incompressible;
use spinling_test_support::{multipart, zip_of};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Concurrent clients (as `wrk -c16`).
const THREADS: usize = 16;
const BIG: usize = 50 * 1024 * 1024;

/// Whether clients send `Connection: close` (a connection per request) or keep connections.
static CLOSE: AtomicBool = AtomicBool::new(true);

fn mode_name() -> &'static str {
    if CLOSE.load(Ordering::Relaxed) {
        "Connection: close"
    } else {
        "keep-alive"
    }
}

/// A client in the current mode.
fn agent() -> ureq::Agent {
    let close = CLOSE.load(Ordering::Relaxed);
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(REQUEST_TIMEOUT))
        .max_idle_connections(if close { 0 } else { THREADS })
        .max_idle_connections_per_host(if close { 0 } else { THREADS })
        .build()
        .into()
}

/// The request with `Connection: close` in that mode.
fn in_mode<B>(request: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
    if CLOSE.load(Ordering::Relaxed) {
        request.header("connection", "close")
    } else {
        request
    }
}

struct Figures {
    /// CPU time of the serving `spin` process per request.
    cpu: Duration,
    per_second: f64,
    p50: Duration,
    p99: Duration,
}

/// Calls made by one operation in one round.
struct Round {
    latencies: Vec<Duration>,
    elapsed: Duration,
    /// CPU time the serving `spin` process spent meanwhile.
    cpu: Duration,
}

/// One call of an operation: `call(agent, index)`.
type Call<'a> = &'a (dyn Fn(&ureq::Agent, usize) + Sync);

/// An operation against one server: the server (whose CPU time is counted) and the call.
type Op<'a> = (&'a SpinUp, Call<'a>);

/// `op(agent, index)` for `offset..offset + total`, spread over `threads` clients.
fn round(threads: usize, total: usize, offset: usize, (server, op): Op) -> Round {
    let per_thread = total / threads;
    let (started, cpu_before) = (Instant::now(), server.cpu());
    let latencies: Vec<Duration> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || {
                    let agent = agent();
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
        cpu: server.cpu().saturating_sub(cpu_before),
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
fn measure(threads: usize, total: usize, op: Op) -> Figures {
    Figures::of(vec![round(threads, total, 0, op)])
}

/// The longest a request may take: a bench that hangs measures nothing.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Rounds of a comparison: the machine is shared, and its load drifts.
const ROUNDS: usize = 5;

/// Runs `total` calls of `floor` and of `subject` over [`THREADS`] clients, in alternating
/// rounds, so that a change in the machine's load falls on both alike; their figures.
fn compare(total: usize, floor: Op, subject: Op) -> (Figures, Figures) {
    let per_round = total / ROUNDS;
    let (mut floors, mut subjects) = (Vec::new(), Vec::new());
    for r in 0..ROUNDS {
        floors.push(round(THREADS, per_round, r * per_round, floor));
        subjects.push(round(THREADS, per_round, r * per_round, subject));
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

/// A floor: the least a request of some kind costs through the same Spin.
struct Floor {
    name: &'static str,
    figures: Figures,
}

/// One line: the operation's figures, its floor's, and the ratios (throughput: higher is
/// better, at most about 1; p99: lower is better, at least about 1).
fn report(name: &str, subject: &Figures, floor: &Floor) {
    let base = &floor.figures;
    println!(
        "{name:<30} {:>6.0}/s {:>6.2} {:>6.2} {:>5.2} | {:<14} {:>6.0}/s {:>6.2} {:>6.2} {:>5.2} | x{:.2} x{:.2}",
        subject.per_second,
        millis(subject.p50),
        millis(subject.p99),
        millis(subject.cpu),
        floor.name,
        base.per_second,
        millis(base.p50),
        millis(base.p99),
        millis(base.cpu),
        subject.per_second / base.per_second,
        millis(subject.p99) / millis(base.p99)
    );
}

fn header() {
    println!(
        "{:<30} {:>8} {:>6} {:>6} {:>5} | {:<14} {:>8} {:>6} {:>6} {:>5} | rate, p99 ratios",
        "operation (ms)", "rate", "p50", "p99", "cpu", "floor", "rate", "p50", "p99", "cpu",
    );
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The package of an example function (`examples/<name>`, built for wasm32-wasip1).
fn example_package(name: &str) -> Vec<u8> {
    let path = repo_root().join(format!(
        "target/wasm32-wasip1/release/spinling-example-{name}.wasm"
    ));
    let wasm = std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{} ({e}); build the examples first", path.display()));
    zip_of(&[(&format!("{name}.wasm"), &wasm)])
}

/// The app on real `spin up`, with a client for setting it up.
struct Served {
    spin: SpinUp,
    agent: ureq::Agent,
}

impl Served {
    fn start(variables: &[(&str, &str)]) -> Served {
        Served::start_with(variables, None)
    }

    /// The app with its stores where `runtime_config` (a Spin runtime config file) says.
    fn start_with(variables: &[(&str, &str)], runtime_config: Option<&std::path::Path>) -> Served {
        let big = (64 * 1024 * 1024).to_string();
        let mut all = vec![("max_versions", "1000000"), ("max_package_size", &big)];
        all.extend_from_slice(variables);
        let spin = SpinUp::start(&repo_root().join("spin.toml"), &all, runtime_config);
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        Served { spin, agent }
    }

    fn url(&self, path: &str) -> String {
        self.spin.url(path)
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

    /// `count` functions with small distinct packages, none with a version yet.
    fn fresh_functions(&self, tag: &str, count: usize) -> Vec<String> {
        (0..count)
            .map(|i| {
                self.create_function(&zip_of(&[("main.wasm", format!("{tag}{i}").as_bytes())]))
            })
            .collect()
    }
}

/// The floors on their own real `spin up` (their own SQLite and key-value files).
fn start_floors() -> SpinUp {
    let floors = SpinUp::start(
        &repo_root().join("tests/bench/trivial/spin.toml"),
        &[],
        None,
    );
    let setup = check(ureq::post(&floors.url("/?setup")).send("").unwrap(), 200);
    assert_eq!(
        String::from_utf8_lossy(&setup),
        "wal 2",
        "the INSERT floor must commit durably: journal_mode=WAL, synchronous=FULL (2)"
    );
    floors
}

/// An operation: GET `url`, expecting 200.
fn get_from(url: String) -> impl Fn(&ureq::Agent, usize) + Sync {
    move |a, _| {
        check(in_mode(a.get(&url)).call().unwrap(), 200);
    }
}

/// An operation: POST `{}` to `url`, expecting `status`.
fn post_to(url: String, status: u16) -> impl Fn(&ureq::Agent, usize) + Sync {
    move |a, _| {
        check(
            in_mode(a.post(&url))
                .header("content-type", "application/json")
                .send("{}")
                .unwrap(),
            status,
        );
    }
}

/// Untimed calls before a comparison of reads.
const WARM_UP: usize = THREADS * 16;

/// A GET against a GET of a floor, in alternating rounds, after untimed calls of each (a read
/// can be repeated at will; the first requests of a kind are slower): (floor, subject).
fn compare_gets(
    floor: (&SpinUp, &str),
    subject: (&SpinUp, &str),
    total: usize,
) -> (Figures, Figures) {
    let floor_op = get_from(floor.0.url(floor.1));
    let subject_op = get_from(subject.0.url(subject.1));
    let (floor, subject): (Op, Op) = ((floor.0, &floor_op), (subject.0, &subject_op));
    round(THREADS, WARM_UP, 0, floor);
    round(THREADS, WARM_UP, 0, subject);
    compare(total, floor, subject)
}

/// What one mode's table measured, for the targets.
struct Table {
    get_version: (Figures, Floor),
    list_versions: (Figures, Floor),
    get_function: (Figures, Floor),
    create: (Figures, Floor),
    execution: (Figures, Floor),
}

/// The app's fixtures: a function with ten versions, and the hello example.
struct Fixtures {
    fid: String,
    hello: String,
}

const READS: usize = 4000;
const WRITES: usize = 800;

/// Every operation against its floor, in the current connection mode.
fn table(app: &Served, floors: &SpinUp, fixtures: &Fixtures) -> Table {
    let floor = |name, figures| Floor { name, figures };
    let spin = &app.spin;
    println!();
    println!(
        "{} ({THREADS} clients; each operation alternates with its floor in {ROUNDS} rounds, \
         reads after {WARM_UP} untimed calls of each; cpu: the serving spin's CPU time per request)",
        mode_name()
    );
    header();
    let (nothing, no_storage) = compare_gets((floors, "/"), (spin, "/v1/"), READS);
    report(
        "GET /v1/ (no storage)",
        &no_storage,
        &floor("nothing", nothing),
    );
    let (nothing, kv_read) = compare_gets((floors, "/"), (floors, "/?kv"), READS);
    report(
        "floor: one key-value read",
        &kv_read,
        &floor("nothing", nothing),
    );
    let (nothing, variable) = compare_gets((floors, "/"), (floors, "/?vars=1"), READS);
    report(
        "floor: one variable read",
        &variable,
        &floor("nothing", nothing),
    );
    let (nothing, row_read) = compare_gets((floors, "/"), (floors, "/?row"), READS);
    report(
        "floor: one SQLite row read",
        &row_read,
        &floor("nothing", nothing),
    );

    let fid = &fixtures.fid;
    let version_path = format!("/v1/functions/{fid}/versions/1");
    let (row, get_version) = compare_gets((floors, "/?row"), (spin, &version_path), READS);
    let get_version = (get_version, floor("row read", row));
    report("GET a version", &get_version.0, &get_version.1);
    let (kv, again) = compare_gets((floors, "/?kv"), (spin, &version_path), READS);
    report(
        "  against the key-value read",
        &again,
        &floor("kv read", kv),
    );
    let list_path = format!("/v1/functions/{fid}/versions");
    let (row, list) = compare_gets((floors, "/?row"), (spin, &list_path), READS);
    let list_versions = (list, floor("row read", row));
    report("list versions (10)", &list_versions.0, &list_versions.1);
    let function_path = format!("/v1/functions/{fid}");
    let (row, get_function) = compare_gets((floors, "/?row"), (spin, &function_path), READS);
    let get_function = (get_function, floor("row read", row));
    report("GET a function", &get_function.0, &get_function.1);

    let nothing_op = post_to(floors.url("/"), 200);
    let insert_op = post_to(floors.url("/?insert"), 200);
    let (nothing, insert) = compare(WRITES, (floors, &nothing_op), (floors, &insert_op));
    report(
        "floor: one durable INSERT",
        &insert,
        &floor("nothing", nothing),
    );

    // Each create is the first version of its own function.
    let fids = app.fresh_functions(
        if CLOSE.load(Ordering::Relaxed) {
            "c"
        } else {
            "k"
        },
        WRITES,
    );
    let create_op = |a: &ureq::Agent, i: usize| {
        let url = app.url(&format!("/v1/functions/{}/versions", fids[i]));
        check(
            in_mode(a.post(&url))
                .header("content-type", "application/json")
                .send("{}")
                .unwrap(),
            201,
        );
    };
    let (insert, create) = compare(WRITES, (floors, &insert_op), (spin, &create_op));
    let create = (create, floor("durable INSERT", insert));
    report("create a version", &create.0, &create.1);

    // Sync executions of the hello-world example on the built-in runtime.
    let run_times = std::sync::Mutex::new(Vec::new());
    let execute_url = app.url("/v1/executions");
    let execute_body = json!({"function_id": fixtures.hello}).to_string();
    let execute_op = |a: &ureq::Agent, _| {
        let reply = check(
            in_mode(a.post(&execute_url))
                .header("content-type", "application/json")
                .send(&execute_body)
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
    };
    let (insert, executions) = compare(WRITES, (floors, &insert_op), (spin, &execute_op));
    let execution = (executions, floor("durable INSERT", insert));
    report("sync execution (hello)", &execution.0, &execution.1);
    // The platform's least for the same shape: a call to a second component, then one row.
    let chained_op = post_to(floors.url("/?chained-insert"), 200);
    let (chained, again) = compare(WRITES, (floors, &chained_op), (spin, &execute_op));
    report(
        "  against chained call+INSERT",
        &again,
        &floor("chained+INSERT", chained),
    );
    let run_times = run_times.into_inner().unwrap();
    let mean_run = run_times.iter().sum::<f64>() / run_times.len() as f64;
    println!(
        "  of p50 {:.2} ms, the function's own run is {:.2} ms on average; the rest is API, \
         storage and runtime start",
        millis(execution.0.p50),
        mean_run * 1000.0
    );
    Table {
        get_version,
        list_versions,
        get_function,
        create,
        execution,
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let scale = args.iter().any(|a| a == "--scale-out");
    if let Some(at) = args.iter().position(|a| a == "--soak") {
        let seconds = args.get(at + 1).and_then(|s| s.parse().ok());
        let only: Vec<String> = args[at + 1 + usize::from(seconds.is_some())..].to_vec();
        return scale::soak(seconds.unwrap_or(120), &only);
    }
    println!(
        "Spinling on real Spin ({}), loopback; floors: trivial spin-sdk components on a second \
         spin up (tests/bench/trivial).",
        spin::spin_binary().display()
    );
    let floors = start_floors();
    let app = Served::start(&[]);
    println!(
        "app's state, spin.log and component logs: {}",
        app.spin.dir().display()
    );

    // A function with ten versions, and the hello example.
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
    let hello = app.create_function(&example_package("hello"));
    let fixtures = Fixtures { fid, hello };
    if std::env::args().any(|a| a == "--profile") {
        return profile(&app, &fixtures);
    }
    if std::env::args().any(|a| a == "--scale-out-only") {
        scale::scale_out(&app, &fixtures, scale::Backend::Postgres, READS, WRITES / 4);
        scale::scale_out(&app, &fixtures, scale::Backend::Sqld, READS, WRITES / 4);
        return;
    }

    CLOSE.store(true, Ordering::Relaxed);
    let close = table(&app, &floors, &fixtures);
    if std::env::args().any(|a| a == "--quick") {
        return;
    }
    CLOSE.store(false, Ordering::Relaxed);
    let keep_alive = table(&app, &floors, &fixtures);

    // Writes with the faster, less durable setting, for comparison.
    CLOSE.store(true, Ordering::Relaxed);
    {
        let normal = Served::start(&[("sqlite_synchronous", "normal")]);
        let fids = normal.fresh_functions("n", WRITES);
        let insert_op = post_to(floors.url("/?insert"), 200);
        let create_op = |a: &ureq::Agent, i: usize| {
            let url = normal.url(&format!("/v1/functions/{}/versions", fids[i]));
            check(
                in_mode(a.post(&url))
                    .header("content-type", "application/json")
                    .send("{}")
                    .unwrap(),
                201,
            );
        };
        let (insert, create) = compare(WRITES, (&floors, &insert_op), (&normal.spin, &create_op));
        println!();
        header();
        report(
            "create, sqlite_synchronous=normal",
            &create,
            &Floor {
                name: "durable INSERT",
                figures: insert,
            },
        );
    }

    let (upload, download) = big_packages(&app, &floors);

    if scale {
        scale::scale_out(&app, &fixtures, scale::Backend::Postgres, READS, WRITES / 4);
        scale::scale_out(&app, &fixtures, scale::Backend::Sqld, READS, WRITES / 4);
    }

    targets(&close, &keep_alive, &upload, &download);
}

/// `--profile`: keep-alive load of one kind at a time on the app, 10 s each, for a profiler
/// attached to the app's `spin` (its pid is printed).
fn profile(app: &Served, fixtures: &Fixtures) {
    CLOSE.store(false, Ordering::Relaxed);
    println!("app spin pid {}", app.spin.pid());
    let version = get_from(app.url(&format!("/v1/functions/{}/versions/1", fixtures.fid)));
    let root = get_from(app.url("/v1/"));
    let fids = app.fresh_functions("p", 3000);
    let create = |a: &ureq::Agent, i: usize| {
        let url = app.url(&format!("/v1/functions/{}/versions", fids[i]));
        check(in_mode(a.post(&url)).send("{}").unwrap(), 201);
    };
    let body = json!({"function_id": fixtures.hello}).to_string();
    let execute = |a: &ureq::Agent, _| {
        check(
            in_mode(a.post(&app.url("/v1/executions")))
                .header("content-type", "application/json")
                .send(&body)
                .unwrap(),
            201,
        );
    };
    let kinds: [(&str, Call); 4] = [
        ("GET /v1/", &root),
        ("GET a version", &version),
        ("create a version", &create),
        ("sync execution", &execute),
    ];
    for (name, op) in kinds {
        println!("{name}: starting");
        let started = Instant::now();
        let mut done = 0;
        while started.elapsed() < Duration::from_secs(10) {
            round(THREADS, THREADS * 10, done, (&app.spin, op));
            done += THREADS * 10;
        }
        println!(
            "{name}: {:.0}/s",
            done as f64 / started.elapsed().as_secs_f64()
        );
    }
}

/// Uploads and downloads of 50 MiB packages, one client, worst of 3, each a fresh package:
/// (upload, download).
fn big_packages(app: &Served, floors: &SpinUp) -> (Figures, Figures) {
    CLOSE.store(false, Ordering::Relaxed);
    println!();
    println!("50 MiB packages, one client, worst of 3 (each a fresh package)");
    header();
    let runtime = app.post_json("/v1/runtimes", json!({"image": "spinling/wasm"}));
    let packages: Vec<Vec<u8>> = (1..=3)
        .map(|seed| zip_of(&[("big.bin", &incompressible(seed, BIG))]))
        .collect();
    let forms: Vec<(String, Vec<u8>)> = packages
        .iter()
        .map(|package| {
            multipart(
                &[
                    ("code", r#"{"source": "package"}"#),
                    ("runtime_id", runtime["id"].as_str().unwrap()),
                ],
                Some(package),
            )
        })
        .collect();
    let floor_upload = |a: &ureq::Agent, i: usize| {
        let (content_type, body) = &forms[i];
        check(
            a.post(&floors.url("/"))
                .header("content-type", content_type)
                .send(&body[..])
                .unwrap(),
            200,
        );
    };
    let trivial_upload = Floor {
        name: "read the body",
        figures: measure(1, 3, (floors, &floor_upload)),
    };
    let big_fids = std::sync::Mutex::new(vec![String::new(); 3]);
    let upload_op = |a: &ureq::Agent, i: usize| {
        let (content_type, body) = &forms[i];
        let reply = check(
            a.post(&app.url("/v1/functions"))
                .header("content-type", content_type)
                .send(&body[..])
                .unwrap(),
            201,
        );
        big_fids.lock().unwrap()[i] = serde_json::from_slice::<Json>(&reply).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string();
    };
    let upload = measure(1, 3, (&app.spin, &upload_op));
    report("upload 50 MiB package", &upload, &trivial_upload);
    let big_fids = big_fids.into_inner().unwrap();
    let floor_download = |a: &ureq::Agent, _| {
        let url = floors.url(&format!("/?bytes={}", packages[0].len()));
        let bytes = check(a.get(&url).call().unwrap(), 200);
        assert_eq!(bytes.len(), packages[0].len());
    };
    let trivial_download = Floor {
        name: "write the body",
        figures: measure(1, 3, (floors, &floor_download)),
    };
    let download_op = |a: &ureq::Agent, i: usize| {
        let url = app.url(&format!("/v1/functions/{}?download=true", big_fids[i]));
        let bytes = check(a.get(&url).call().unwrap(), 200);
        assert!(bytes == packages[i], "the download differs from the upload");
    };
    let download = measure(1, 3, (&app.spin, &download_op));
    report("download 50 MiB package", &download, &trivial_download);
    (upload, download)
}

/// The targets of issue 21, from one run: rates and p99s with `Connection: close`, and the
/// keep-alive GETs' p99s against the row-read floor's in the same rounds.
fn targets(close: &Table, keep_alive: &Table, upload: &Figures, download: &Figures) {
    let target = |name: &str, got: f64, want: &str, met: bool| {
        println!(
            "  {name:<50} {got:>6.2}  target {want:<8} {}",
            if met { "met" } else { "NOT met" }
        );
    };
    let rate = |(f, floor): &(Figures, Floor)| f.per_second / floor.figures.per_second;
    let tail = |(f, floor): &(Figures, Floor)| millis(f.p99) / millis(floor.figures.p99);
    println!();
    println!("targets (issue 21; Connection: close unless marked):");
    let r = rate(&close.get_version);
    target("GET a version / row read", r, ">= 1.0", r >= 1.0);
    let r = tail(&close.get_version);
    target("  its p99 / the floor's", r, "<= 1.2", r <= 1.2);
    let r = rate(&close.list_versions);
    target("list versions / row read", r, ">= 1.0", r >= 1.0);
    let r = rate(&close.get_function);
    target("GET a function / row read", r, ">= 1.0", r >= 1.0);
    let r = rate(&close.create);
    target("create a version / durable INSERT", r, ">= 0.7", r >= 0.7);
    let r = tail(&close.create);
    target("  its p99 / the floor's", r, "<= 1", r <= 1.0);
    for (name, (figures, floor)) in [
        (
            "keep-alive: GET a version p99 / row read's",
            &keep_alive.get_version,
        ),
        (
            "keep-alive: list versions p99 / row read's",
            &keep_alive.list_versions,
        ),
        (
            "keep-alive: GET a function p99 / row read's",
            &keep_alive.get_function,
        ),
    ] {
        let r = millis(figures.p99) / millis(floor.figures.p99);
        target(name, r, "<= 1.5", r <= 1.5);
    }
    let r = rate(&close.execution);
    target("sync execution / durable INSERT", r, ">= 0.5", r >= 0.5);
    let r = tail(&close.execution);
    target("  its p99 / the floor's", r, "<= 2", r <= 2.0);
    let s = upload.p99.as_secs_f64();
    target(
        "50 MiB upload, seconds (worst of 3)",
        s,
        "<= 0.35",
        s <= 0.35,
    );
    let s = download.p99.as_secs_f64();
    target(
        "50 MiB download, seconds (worst of 3)",
        s,
        "<= 0.15",
        s <= 0.15,
    );
}
