//! `cargo run -p spinling-bench`: serves the app and a trivial component from one test host
//! on loopback and prints, per operation, requests per second and p99 latency next to the
//! trivial component's in the same run. The ratio is the figure; absolute numbers depend on
//! the (shared, noisy) machine.

use serde_json::{json, Value as Json};
use spin_test_host::{BlockingApp, HostOptions};
use spinling_api_tests::{multipart, repo_root, zip_of};
use std::time::{Duration, Instant};

const THREADS: usize = 4;
const BIG: usize = 50 * 1024 * 1024;

struct Figures {
    per_second: f64,
    p50: Duration,
    p99: Duration,
}

/// Runs `total` calls of `op` spread over `threads` clients with keep-alive connections.
fn measure(threads: usize, total: usize, op: impl Fn(&ureq::Agent, usize) + Sync) -> Figures {
    let per_thread = total / threads;
    let started = Instant::now();
    let mut latencies: Vec<Duration> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let op = &op;
                s.spawn(move || {
                    let agent: ureq::Agent = ureq::Agent::config_builder()
                        .http_status_as_error(false)
                        .build()
                        .into();
                    (0..per_thread)
                        .map(|i| {
                            let start = Instant::now();
                            op(&agent, t * per_thread + i);
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
    let elapsed = started.elapsed();
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    Figures {
        per_second: latencies.len() as f64 / elapsed.as_secs_f64(),
        p50: at(0.5),
        p99: at(0.99),
    }
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

fn report(name: &str, subject: &Figures, baseline: &Figures) {
    println!(
        "{name:<28} {:>9.1} req/s  p50 {:>8.2?}  p99 {:>8.2?}   trivial {:>9.1} req/s  p99 {:>8.2?}   ratio {:.2}",
        subject.per_second,
        subject.p50,
        subject.p99,
        baseline.per_second,
        baseline.p99,
        subject.per_second / baseline.per_second
    );
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
         key_value_stores = [\"default\"]\n",
        root.display()
    );
    let path = dir.join("spin.toml");
    std::fs::write(&path, manifest).unwrap();
    path
}

/// Bytes that do not compress, so a zip of them is as large as they are.
fn incompressible(n: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
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
        let state = tempfile::tempdir().unwrap();
        let mut options =
            HostOptions::new(bench_manifest(state.path()), state.path().join("state"))
                .variable("max_versions", "1000000")
                .variable("max_package_size", &(64 * 1024 * 1024).to_string());
        for (name, value) in variables {
            options = options.variable(name, value);
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

    /// Publishing: each create is the first version of its own function.
    fn measure_creates(&self, creates: usize) -> Figures {
        let fids: Vec<String> = (0..creates)
            .map(|i| self.create_function(&zip_of(&[("main.wasm", format!("f{i}").as_bytes())])))
            .collect();
        measure(THREADS, creates, |a, i| {
            let url = self.url(&format!("/v1/functions/{}/versions", fids[i]));
            check(
                a.post(&url)
                    .header("content-type", "application/json")
                    .send("{}")
                    .unwrap(),
                201,
            );
        })
    }
}

fn main() {
    let app = Served::start(&[]);
    let base = &app.base;
    println!("Spinling through the Spin test host, {THREADS} clients, keep-alive, loopback.");
    let trivial_get = measure(THREADS, 4000, |a, _| {
        check(a.get(&format!("{base}/trivial")).call().unwrap(), 200);
    });
    let no_storage = measure(THREADS, 4000, |a, _| {
        check(a.get(&format!("{base}/v1/")).call().unwrap(), 200);
    });
    report("GET /v1/ (no storage)", &no_storage, &trivial_get);
    // The floor for any request that reads storage: the trivial component reading one key.
    let trivial_kv = measure(THREADS, 4000, |a, _| {
        check(a.get(&format!("{base}/trivial?kv")).call().unwrap(), 200);
    });
    report("trivial + one key-value get", &trivial_kv, &trivial_get);

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
    let get_version = measure(THREADS, 4000, |a, _| {
        check(
            a.get(&format!("{base}/v1/functions/{fid}/versions/1"))
                .call()
                .unwrap(),
            200,
        );
    });
    report("GET a version", &get_version, &trivial_get);
    report("  against the key-value floor", &get_version, &trivial_kv);
    let list_versions = measure(THREADS, 4000, |a, _| {
        check(
            a.get(&format!("{base}/v1/functions/{fid}/versions"))
                .call()
                .unwrap(),
            200,
        );
    });
    report("list versions (10)", &list_versions, &trivial_get);

    let creates = 400;
    let trivial_post = measure(THREADS, creates, |a, _| {
        check(
            a.post(&format!("{base}/trivial"))
                .header("content-type", "application/json")
                .send("{}")
                .unwrap(),
            200,
        );
    });
    let create = app.measure_creates(creates);
    report("create a version", &create, &trivial_post);
    let create_normal = Served::start(&[("sqlite_synchronous", "normal")]).measure_creates(creates);
    report(
        "  with sqlite_synchronous=normal",
        &create_normal,
        &trivial_post,
    );

    // Sync executions of the hello-world example on the built-in runtime.
    let hello = spinling_api_tests::example_package("hello");
    let hello_fid = app.create_function(&hello);
    let run_times = std::sync::Mutex::new(Vec::new());
    let executions = measure(THREADS, 400, |a, _| {
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
    report("sync execution (hello)", &executions, &trivial_post);
    let run_times = run_times.into_inner().unwrap();
    let mean_run = run_times.iter().sum::<f64>() / run_times.len() as f64;
    println!(
        "  latency split: p50 {:.2?} in all, of which the function's run {:.2} ms on average; the rest is API, storage and runtime start",
        executions.p50,
        mean_run * 1000.0
    );

    // 50 MiB packages.
    let big = zip_of(&[("big.bin", &incompressible(BIG))]);
    let runtime = app.post_json("/v1/runtimes", json!({"image": "spinling/wasm"}));
    let (upload_type, upload_body) = multipart(
        &[
            ("code", r#"{"source": "package"}"#),
            ("runtime_id", runtime["id"].as_str().unwrap()),
        ],
        Some(&big),
    );
    let trivial_upload = measure(1, 3, |a, _| {
        check(
            a.post(&format!("{base}/trivial"))
                .header("content-type", &upload_type)
                .send(&upload_body[..])
                .unwrap(),
            200,
        );
    });
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
    let trivial_download = measure(1, 3, |a, _| {
        let bytes = check(
            a.get(&format!("{base}/trivial?bytes={}", big.len()))
                .call()
                .unwrap(),
            200,
        );
        assert_eq!(bytes.len(), big.len());
    });
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
    println!(
        "targets: GET version ratio >= 0.85 ({:.2}), create ratio >= 0.5 ({:.2}; normal {:.2}), 50 MiB upload p99 < 1 s ({:.2?}), download p99 < 1 s ({:.2?})",
        get_version.per_second / trivial_get.per_second,
        create.per_second / trivial_post.per_second,
        create_normal.per_second / trivial_post.per_second,
        upload.p99,
        download.p99
    );
}
