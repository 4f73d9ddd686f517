//! Runtimes whose image is an external worker's URL: the app calls the reference worker
//! (tests/worker/worker.py, Qinling's Python runtime protocol), which downloads the package
//! from the app itself. Executions are therefore created over a real socket: the download URL
//! is built from the base URL the request reached the app through.

#[allow(unused_imports)]
use serde_json::{json, Value as Json};
use spinling_api_tests::{repo_root, zip_of, Api, Reply};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The reference worker, running on a free port; killed when dropped.
struct Worker {
    child: Child,
    url: String,
    _cache: tempfile::TempDir,
}

impl Worker {
    fn start() -> Worker {
        let cache = tempfile::tempdir().unwrap();
        let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
        let mut child = Command::new(&python)
            .arg(repo_root().join("tests/worker/worker.py"))
            .args(["--port", "0", "--quiet", "--cache-dir"])
            .arg(cache.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {python}: {e}"));
        let stdout = child.stdout.take().unwrap();
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = sender.send(line);
        });
        let mut worker = Worker {
            child,
            url: String::new(),
            _cache: cache,
        };
        let line = receiver
            .recv_timeout(Duration::from_secs(30))
            .expect("the worker prints its address within 30 s");
        worker.url = line
            .trim()
            .strip_prefix("Listening on ")
            .unwrap_or_else(|| panic!("unexpected first line from the worker: {line:?}"))
            .to_string();
        worker
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A request to the app over its socket (HTTP/1.1, one connection per request).
fn over_socket(addr: SocketAddr, method: &str, path: &str, body: &Json) -> Reply {
    let body = body.to_string();
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete HTTP response");
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let mut body = raw[split + 4..].to_vec();
    if head.contains("transfer-encoding: chunked") {
        body = dechunk(&body);
    }
    Reply {
        status,
        headers: http::HeaderMap::new(),
        body,
    }
}

fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let end = raw.windows(2).position(|w| w == b"\r\n").unwrap();
        let size = std::str::from_utf8(&raw[..end]).unwrap();
        let size = usize::from_str_radix(size.split(';').next().unwrap().trim(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&raw[end + 2..end + 2 + size]);
        raw = &raw[end + 2 + size + 2..];
    }
}

/// The app, also served on a socket, with a worker runtime in front of `worker`.
fn app_with_worker(worker: &Worker) -> (Api, SocketAddr, String) {
    app_with_runtime(&worker.url)
}

/// The app, also served on a socket, with a runtime in front of the worker at `url`.
fn app_with_runtime(url: &str) -> (Api, SocketAddr, String) {
    let api = Api::start();
    let addr = api.address();
    let reply = api.post_json("/v1/runtimes", &json!({"image": url, "name": "python"}));
    reply.assert_status(201);
    let runtime = reply.json();
    assert_eq!(runtime["status"], "available", "{runtime}");
    let id = runtime["id"].as_str().unwrap().to_string();
    (api, addr, id)
}

fn python_package(main_py: &str) -> Vec<u8> {
    zip_of(&[("main.py", main_py.as_bytes())])
}

/// A function of `main_py` on the worker runtime `runtime`, with extra form fields.
fn python_function(api: &Api, runtime: &str, main_py: &str, fields: &[(&str, &str)]) -> String {
    api.create_function_id_with(runtime, &python_package(main_py), fields)
}

fn execute(addr: SocketAddr, body: Json) -> Json {
    let reply = over_socket(addr, "POST", "/v1/executions", &body);
    reply.assert_status(201);
    reply.json()
}

fn result(execution: &Json) -> Json {
    serde_json::from_str(execution["result"].as_str().expect("a result")).unwrap()
}

#[test]
fn an_external_worker_runs_a_python_function() {
    let worker = Worker::start();
    let (api, addr, runtime) = app_with_worker(&worker);
    let fid = python_function(
        &api,
        &runtime,
        "def main(name=\"World\", **kwargs):\n    print(\"log line\")\n    \
         return {\"greeting\": f\"Hello, {name}!\"}\n",
        &[],
    );
    assert_eq!(
        api.get(&format!("/v1/functions/{fid}")).json()["entry"],
        "main.main"
    );
    let execution = execute(
        addr,
        json!({"function_id": fid, "input": "{\"name\": \"Q\"}"}),
    );
    assert_eq!(execution["status"], "success", "{execution}");
    assert_eq!(
        result(&execution)["output"],
        json!({"greeting": "Hello, Q!"})
    );
    assert!(result(&execution)["duration"].is_number());
    let id = execution["id"].as_str().unwrap();
    let log = api.get(&format!("/v1/executions/{id}/log"));
    log.assert_status(200);
    let log = log.text();
    assert!(log.contains("log line"), "{log:?}");
    assert!(
        log.starts_with(&format!("Start execution: {id}\n")),
        "{log:?}"
    );
    assert!(
        log.ends_with(&format!("Finished execution: {id}\n")),
        "{log:?}"
    );
}

#[test]
fn a_python_exception_is_failed_with_its_message() {
    let worker = Worker::start();
    let (api, addr, runtime) = app_with_worker(&worker);
    let fid = python_function(
        &api,
        &runtime,
        "def main(**kwargs):\n    raise ValueError(\"no greeting today\")\n",
        &[],
    );
    let execution = execute(addr, json!({"function_id": fid}));
    assert_eq!(execution["status"], "failed", "{execution}");
    assert_eq!(result(&execution)["output"], "no greeting today");
    let id = execution["id"].as_str().unwrap();
    let log = api.get(&format!("/v1/executions/{id}/log")).text();
    assert!(log.contains("ValueError: no greeting today"), "{log:?}");
}

#[test]
fn a_worker_that_is_down_fails_the_execution() {
    let mut worker = Worker::start();
    let (api, addr, runtime) = app_with_worker(&worker);
    let fid = python_function(&api, &runtime, "def main(**kwargs):\n    return 1\n", &[]);
    worker.stop();
    let started = Instant::now();
    let execution = execute(addr, json!({"function_id": fid}));
    assert_eq!(execution["status"], "failed", "{execution}");
    assert_eq!(result(&execution)["output"], "Function execution failed.");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn a_worker_runs_a_published_version_as_published() {
    let worker = Worker::start();
    let (api, addr, runtime) = app_with_worker(&worker);
    let fid = python_function(&api, &runtime, "def main(**kwargs):\n    return 1\n", &[]);
    api.publish(&fid).assert_status(201);
    api.update_package(&fid, &python_package("def main(**kwargs):\n    return 2\n"))
        .assert_status(200);
    let run = |version: i64| {
        let execution = execute(
            addr,
            json!({"function_id": fid, "function_version": version}),
        );
        assert_eq!(execution["status"], "success", "{execution}");
        result(&execution)["output"].clone()
    };
    assert_eq!(run(1), json!(1));
    assert_eq!(run(0), json!(2));
    // Again, now that the worker has both packages cached.
    assert_eq!(run(1), json!(1));
    assert_eq!(run(0), json!(2));
}

#[test]
fn a_worker_timeout_is_failed() {
    let worker = Worker::start();
    let (api, addr, runtime) = app_with_worker(&worker);
    let fid = python_function(
        &api,
        &runtime,
        "import time\n\ndef main(**kwargs):\n    time.sleep(30)\n",
        &[("timeout", "1")],
    );
    let started = Instant::now();
    let execution = execute(addr, json!({"function_id": fid}));
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(execution["status"], "failed", "{execution}");
    assert_eq!(result(&execution)["output"], "Function execution timeout.");
}

#[test]
fn a_worker_whose_host_is_no_longer_allowed_is_not_called() {
    let worker = Worker::start();
    let (api, _, runtime) = app_with_worker(&worker);
    let fid = python_function(&api, &runtime, "def main(**kwargs):\n    return 1\n", &[]);
    // The operator narrows worker_hosts: the worker's 127.0.0.1 is no longer in it.
    let api = Api::start_in(api.stop(), &[("worker_hosts", "localhost")]);
    let addr = api.address();
    let execution = execute(addr, json!({"function_id": fid}));
    assert_eq!(execution["status"], "failed", "{execution}");
    assert_eq!(
        result(&execution)["output"],
        "Runtime worker host 127.0.0.1 is no longer allowed; allowed hosts: localhost. \
         Set the Spin variable worker_hosts to run it."
    );
}

/// The same protocol against OpenStack Qinling's own Python runtime, unmodified
/// (`/work/shared/qinling-runtime`, or `QINLING_RUNTIME`): its server and package sidecar on
/// 127.0.0.1:9090 and :9091, started once per test run with its `start.sh` (a venv under
/// `target/qinling-runtime`; it needs root and python3.11). Skipped, saying why, where it
/// cannot start.
mod qinling_runtime {
    use super::{app_with_runtime, execute, python_function, python_package, result};
    use serde_json::json;
    use std::path::PathBuf;
    use std::process::Command;
    use std::sync::{Mutex, MutexGuard, OnceLock};

    const URL: &str = "http://127.0.0.1:9090";

    /// The runtime, started once; `None` (with the reason printed) where it cannot run. Its
    /// ports are fixed, so the tests take turns.
    fn runtime() -> Option<MutexGuard<'static, ()>> {
        static STARTED: OnceLock<Result<(), String>> = OnceLock::new();
        static TURN: Mutex<()> = Mutex::new(());
        let started = STARTED.get_or_init(|| {
            let dir = std::env::var("QINLING_RUNTIME")
                .map(PathBuf::from)
                .unwrap_or_else(|_| PathBuf::from("/work/shared/qinling-runtime"));
            let start = dir.join("start.sh");
            if !start.exists() {
                return Err(format!("{} is missing", start.display()));
            }
            let state = spinling_api_tests::repo_root().join("target/qinling-runtime");
            let output = Command::new(&start)
                .env("STATE", &state)
                .output()
                .map_err(|e| format!("cannot run {}: {e}", start.display()))?;
            match output.status.success() {
                true => Ok(()),
                false => Err(format!(
                    "{} failed: {}{}",
                    start.display(),
                    String::from_utf8_lossy(&output.stdout),
                    String::from_utf8_lossy(&output.stderr)
                )),
            }
        });
        match started {
            Ok(()) => Some(TURN.lock().unwrap_or_else(|e| e.into_inner())),
            Err(why) => {
                eprintln!("SKIPPED: Qinling's runtime cannot run here: {why}");
                None
            }
        }
    }

    #[test]
    fn qinling_s_runtime_runs_a_function_with_its_log() {
        let Some(_turn) = runtime() else { return };
        let (api, addr, runtime) = app_with_runtime(URL);
        let fid = python_function(
            &api,
            &runtime,
            "def main(name=\"World\", **kwargs):\n    print(\"log line\")\n    \
             return {\"greeting\": \"Hello, \" + name}\n",
            &[],
        );
        let execution = execute(
            addr,
            json!({"function_id": fid, "input": "{\"name\": \"Q\"}"}),
        );
        assert_eq!(execution["status"], "success", "{execution}");
        assert_eq!(
            result(&execution)["output"],
            json!({"greeting": "Hello, Q"})
        );
        let id = execution["id"].as_str().unwrap();
        let log = api.get(&format!("/v1/executions/{id}/log")).text();
        assert!(log.contains("log line"), "{log:?}");
    }

    #[test]
    fn qinling_s_runtime_reports_an_exception_and_a_timeout() {
        let Some(_turn) = runtime() else { return };
        let (api, addr, runtime) = app_with_runtime(URL);
        let raising = python_function(
            &api,
            &runtime,
            "def main(**kwargs):\n    raise ValueError(\"no greeting today\")\n",
            &[],
        );
        let execution = execute(addr, json!({"function_id": raising}));
        assert_eq!(execution["status"], "failed", "{execution}");
        assert_eq!(result(&execution)["output"], "no greeting today");
        let sleeping = python_function(
            &api,
            &runtime,
            "import time\n\ndef main(**kwargs):\n    time.sleep(30)\n",
            &[("timeout", "1")],
        );
        let execution = execute(addr, json!({"function_id": sleeping}));
        assert_eq!(execution["status"], "failed", "{execution}");
        assert_eq!(result(&execution)["output"], "Function execution timeout.");
    }

    /// Its sidecar downloads a `function_id`'s package once and never again; Spinling names
    /// the code in `function_id`, so every version and every update runs its own code on
    /// this one shared worker.
    #[test]
    fn every_version_and_update_runs_its_own_code_on_qinling_s_runtime() {
        let Some(_turn) = runtime() else { return };
        let (api, addr, runtime) = app_with_runtime(URL);
        let code = |n: i64| format!("def main(**kwargs):\n    return {n}\n");
        let fid = python_function(&api, &runtime, &code(1), &[]);
        let run = |version: i64| {
            let execution = execute(
                addr,
                json!({"function_id": fid, "function_version": version}),
            );
            assert_eq!(execution["status"], "success", "{execution}");
            result(&execution)["output"].clone()
        };
        assert_eq!(run(0), json!(1));
        api.publish(&fid).assert_status(201);
        api.update_package(&fid, &python_package(&code(2)))
            .assert_status(200);
        assert_eq!(run(0), json!(2), "the updated function");
        api.publish(&fid).assert_status(201);
        api.update_package(&fid, &python_package(&code(3)))
            .assert_status(200);
        assert_eq!(run(1), json!(1));
        assert_eq!(run(2), json!(2));
        assert_eq!(run(0), json!(3));
        assert_eq!(run(1), json!(1), "again, all three downloaded");
    }
}
