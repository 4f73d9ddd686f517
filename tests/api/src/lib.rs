//! A client for black-box tests: the real spin.toml and the real components, served by the
//! real Spin CLI (`spin up`) over a fresh state directory per test, or, with
//! `SPINLING_TEST_REPLICAS=1`, by two `spin up` replicas on Redis and PostgreSQL (see `replicas`);
//! with `SPINLING_TEST_DATABASE=postgres`, one `spin up` on PostgreSQL (see `postgres`).

use serde_json::{json, Value as Json};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;

pub use serde_json;
pub use spinling_test_support::{hostile, incompressible, multipart, wat_package, zip_of};

pub mod keystone;
pub mod postgres;
pub mod replicas;
pub mod spin;

use replicas::Replicated;
use spin::SpinUp;

/// The repository root (where spin.toml is).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// What serves a test's requests.
enum Deployment {
    /// One `spin up` on local files.
    Single(SpinUp),
    /// `spin up` replicas on a shared Redis and PostgreSQL.
    Replicated(Replicated),
}

/// The database a single `spin up` keeps its state in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Database {
    /// Spin's SQLite files in the state directory (the default).
    Sqlite,
    /// A database of its own on the test process's PostgreSQL server (see `postgres`).
    Postgres,
}

impl Database {
    /// The one `SPINLING_TEST_DATABASE` asks for.
    pub fn requested() -> Database {
        match postgres::requested() {
            true => Database::Postgres,
            false => Database::Sqlite,
        }
    }
}

pub struct Api {
    deployment: Deployment,
    variables: Vec<(String, String)>,
    state: tempfile::TempDir,
    /// Where a single `spin up` keeps its state (replicas: on PostgreSQL).
    database: Database,
}

#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Vec<u8>,
}

impl From<http::Response<Vec<u8>>> for Reply {
    fn from(response: http::Response<Vec<u8>>) -> Reply {
        let (parts, body) = response.into_parts();
        Reply {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body,
        }
    }
}

impl Reply {
    pub fn json(&self) -> Json {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
    }
    /// Asserts a Qinling error body with this status and exact faultstring.
    #[track_caller]
    pub fn assert_error(&self, status: u16, faultstring: &str) {
        assert_eq!(self.status, status, "body: {}", self.text());
        let body = self.json();
        assert_eq!(body["faultstring"], faultstring, "body: {body}");
        assert_eq!(
            body["faultcode"],
            if status >= 500 { "Server" } else { "Client" }
        );
        assert!(body["debuginfo"].is_null());
    }
    #[track_caller]
    pub fn assert_status(&self, status: u16) -> &Self {
        assert_eq!(self.status, status, "body: {}", self.text());
        self
    }
}

impl Api {
    pub fn start() -> Api {
        Self::start_with(&[])
    }

    /// Starts the app with Spin variables overridden (`("max_versions", "3")`).
    pub fn start_with(variables: &[(&str, &str)]) -> Api {
        let state = tempfile::tempdir().unwrap();
        Self::start_in(state, variables)
    }

    /// Starts the app over an existing state directory (a "restart"). In replica mode
    /// (`SPINLING_TEST_REPLICAS=1`) the whole deployment: Redis, PostgreSQL and the replicas.
    pub fn start_in(state: tempfile::TempDir, variables: &[(&str, &str)]) -> Api {
        if replicas::requested() {
            Self::start_replicated_in(state, variables)
        } else {
            Self::start_single(state, Database::requested(), variables)
        }
    }

    /// Starts one `spin up` on `database`, whatever `SPINLING_TEST_DATABASE` and
    /// `SPINLING_TEST_REPLICAS` say: for a test that needs both kinds at once.
    pub fn start_on(database: Database, variables: &[(&str, &str)]) -> Api {
        Self::start_single(tempfile::tempdir().unwrap(), database, variables)
    }

    fn start_single(
        state: tempfile::TempDir,
        database: Database,
        variables: &[(&str, &str)],
    ) -> Api {
        // On PostgreSQL, the variables that choose it come first: a test's own win.
        let mut all = match database {
            Database::Postgres => postgres::variables(state.path()),
            Database::Sqlite => Vec::new(),
        };
        all.extend(owned(variables));
        let borrowed: Vec<(&str, &str)> =
            all.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        Api {
            deployment: Deployment::Single(SpinUp::start(state.path(), None, &borrowed)),
            variables: all,
            state,
            database,
        }
    }

    /// Starts the app as replica processes on a shared Redis and PostgreSQL, whatever
    /// `SPINLING_TEST_REPLICAS` says.
    pub fn start_replicated(variables: &[(&str, &str)]) -> Api {
        Self::start_replicated_in(tempfile::tempdir().unwrap(), variables)
    }

    fn start_replicated_in(state: tempfile::TempDir, variables: &[(&str, &str)]) -> Api {
        let replicated = Replicated::start(state.path(), variables);
        Api {
            variables: replicated.variables().to_vec(),
            deployment: Deployment::Replicated(replicated),
            state,
            database: Database::Postgres,
        }
    }

    /// The replica processes, in replica mode.
    pub fn replicated(&self) -> Option<&Replicated> {
        match &self.deployment {
            Deployment::Replicated(replicated) => Some(replicated),
            Deployment::Single(_) => None,
        }
    }

    /// The replica processes, in replica mode (to kill one).
    pub fn replicated_mut(&mut self) -> Option<&mut Replicated> {
        match &mut self.deployment {
            Deployment::Replicated(replicated) => Some(replicated),
            Deployment::Single(_) => None,
        }
    }

    /// The loopback address the app listens on (in replica mode, the first replica's), for a
    /// client or a worker that talks to it directly.
    pub fn address(&self) -> SocketAddr {
        match &self.deployment {
            Deployment::Single(app) => app.addr(),
            Deployment::Replicated(replicated) => replicated.replica(0).addr(),
        }
    }

    /// Whether the app's key-value store `default` holds `key` (read from Spin's key-value
    /// file in the state directory, or from Redis in replica mode).
    pub fn key_value_has(&self, key: &str) -> bool {
        if let Some(replicated) = self.replicated() {
            return replicated.rig().key_value_has(key);
        }
        let path = self.state.path().join("sqlite_key_value.db");
        let db = rusqlite::Connection::open(path).unwrap();
        db.query_row(
            "SELECT COUNT(*) FROM spin_key_value WHERE store = 'default' AND key = ?",
            [key],
            |row| row.get::<_, i64>(0),
        )
        .unwrap()
            > 0
    }

    /// Runs one SQL statement on the app's SQLite database `default` (Spin's
    /// `sqlite_db.db` in the state directory) and returns the first column of each row as
    /// text: for checks the API cannot make (no package bytes left unreferenced), or to stage
    /// what only a crash leaves behind. On PostgreSQL (and in replica mode) it runs there.
    pub fn query_database(&self, sql: &str) -> Vec<String> {
        if let Some(replicated) = self.replicated() {
            return replicated.rig().query_database(sql);
        }
        if self.database == Database::Postgres {
            return postgres::query(self.state.path(), sql);
        }
        let db = rusqlite::Connection::open(self.state.path().join("sqlite_db.db")).unwrap();
        db.busy_timeout(std::time::Duration::from_secs(10)).unwrap();
        let mut statement = db.prepare(sql).unwrap();
        let rows = statement
            .query_map([], |row| {
                Ok(match row.get::<_, rusqlite::types::Value>(0)? {
                    rusqlite::types::Value::Integer(i) => i.to_string(),
                    rusqlite::types::Value::Text(t) => t,
                    other => format!("{other:?}"),
                })
            })
            .unwrap();
        rows.map(Result::unwrap).collect()
    }

    /// Stops the app's own scheduler loop, so only `POST /v1/jobs/tick` fires jobs: the lease
    /// goes to a holder that never runs, far into the future; a running loop finds it lost at
    /// its next renewal (within a tick) and ends.
    pub fn stop_the_scheduler_loop(&self) {
        self.query_database(
            "INSERT INTO scheduler_lease (name, holder, until) VALUES ('jobs', 'test', 9999999999)
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until",
        );
        std::thread::sleep(std::time::Duration::from_millis(2500));
    }

    /// How many tables the app's database has (0: nothing ever wrote to it).
    pub fn table_count(&self) -> usize {
        let sql = match self.database {
            Database::Postgres => {
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
            }
            Database::Sqlite => "SELECT count(*) FROM sqlite_master WHERE type = 'table'",
        };
        self.query_database(sql)[0].parse().unwrap()
    }

    /// Stops the app (in replica mode the replicas and Redis) and hands back its
    /// state, to start it again.
    pub fn stop(self) -> tempfile::TempDir {
        drop(self.deployment);
        self.state
    }

    /// A second `spin up` of the app over this one's state (another replica on the same
    /// database and key-value store), with the same variables.
    pub fn replica(&self) -> SpinUp {
        let variables: Vec<(&str, &str)> = self
            .variables
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
            .collect();
        match self.replicated() {
            Some(replicated) => SpinUp::start(
                &self.state.path().join("another-replica"),
                Some(replicated.rig().runtime_config()),
                &variables,
            ),
            None => SpinUp::start(self.state.path(), None, &variables),
        }
    }

    /// Sends `request` exactly as built (no `Host` is added) and returns the reply.
    pub fn send(&self, request: http::Request<Vec<u8>>) -> Reply {
        let request = request.map(bytes::Bytes::from);
        match &self.deployment {
            Deployment::Single(app) => spin::send(app.addr(), request),
            Deployment::Replicated(replicated) => replicated.send(request),
        }
        .into()
    }

    /// Sends a request with these headers, as a client that addressed the app as
    /// `127.0.0.1:3000` (`spin up`'s default address) would.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Reply {
        let mut builder = http::Request::builder()
            .method(method)
            .uri(path)
            .header("host", "127.0.0.1:3000");
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        self.send(builder.body(body).unwrap())
    }

    pub fn get(&self, path: &str) -> Reply {
        self.request("GET", path, &[], Vec::new())
    }
    pub fn delete(&self, path: &str) -> Reply {
        self.request("DELETE", path, &[], Vec::new())
    }
    pub fn post_json(&self, path: &str, body: &Json) -> Reply {
        self.request(
            "POST",
            path,
            &[("content-type", "application/json")],
            body.to_string().into_bytes(),
        )
    }
    pub fn put_json(&self, path: &str, body: &Json) -> Reply {
        self.request(
            "PUT",
            path,
            &[("content-type", "application/json")],
            body.to_string().into_bytes(),
        )
    }
    pub fn post_raw(&self, path: &str, content_type: &str, body: &[u8]) -> Reply {
        self.request(
            "POST",
            path,
            &[("content-type", content_type)],
            body.to_vec(),
        )
    }

    /// Creates a runtime on the built-in image and returns its id.
    pub fn create_runtime(&self) -> String {
        let reply = self.post_json(
            "/v1/runtimes",
            &json!({"image": "spinling/wasm", "name": "wasm"}),
        );
        reply.assert_status(201);
        reply.json()["id"].as_str().unwrap().to_string()
    }

    /// Creates a package function from `package` (multipart, as the CLI does).
    pub fn create_function(&self, runtime_id: &str, package: &[u8]) -> Json {
        let reply = self.create_function_with(runtime_id, package, &[]);
        reply.assert_status(201);
        reply.json()
    }

    /// Creates an image function (no package) and returns its id.
    pub fn create_image_function(&self) -> String {
        let reply = self.post_json(
            "/v1/functions",
            &json!({"code": {"source": "image", "image": "alpine"}}),
        );
        reply.assert_status(201);
        reply.json()["id"].as_str().unwrap().to_string()
    }

    /// Creates a package function and returns its id.
    pub fn create_function_id(&self, runtime_id: &str, package: &[u8]) -> String {
        self.create_function(runtime_id, package)["id"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// Creates a package function with extra form fields (`("timeout", "1")`) and returns
    /// its id.
    pub fn create_function_id_with(
        &self,
        runtime_id: &str,
        package: &[u8],
        fields: &[(&str, &str)],
    ) -> String {
        let reply = self.create_function_with(runtime_id, package, fields);
        reply.assert_status(201);
        reply.json()["id"].as_str().unwrap().to_string()
    }

    /// Creates a package function, with extra form fields, on a new runtime of the built-in
    /// wasm image, and returns its id.
    pub fn create_wasm_function(&self, package: &[u8], fields: &[(&str, &str)]) -> String {
        let runtime = self.create_runtime();
        self.create_function_id_with(&runtime, package, fields)
    }

    pub fn create_function_with(
        &self,
        runtime_id: &str,
        package: &[u8],
        fields: &[(&str, &str)],
    ) -> Reply {
        let mut all = vec![
            ("code", r#"{"source": "package"}"#),
            ("runtime_id", runtime_id),
        ];
        all.extend_from_slice(fields);
        let (content_type, body) = multipart(&all, Some(package));
        self.post_raw("/v1/functions", &content_type, &body)
    }

    /// Replaces a function's package (multipart PUT, as the CLI does).
    pub fn update_package(&self, function_id: &str, package: &[u8]) -> Reply {
        let (content_type, body) = multipart(&[], Some(package));
        self.request(
            "PUT",
            &format!("/v1/functions/{function_id}"),
            &[("content-type", &content_type)],
            body,
        )
    }

    pub fn publish(&self, function_id: &str) -> Reply {
        self.post_json(&format!("/v1/functions/{function_id}/versions"), &json!({}))
    }

    /// The version numbers the function's version list shows, in its order.
    /// Downloads the function's package over and over while another client replaces it, back
    /// and forth between `packages[0]` and `packages[1]` (each update frees the bytes it
    /// replaces), until it has done `updates` updates and the downloads as many: each download
    /// must be 200 and one of the two, whole.
    pub fn download_while_updating(
        &self,
        function_id: &str,
        packages: &[Vec<u8>; 2],
        updates: usize,
    ) {
        let updating = std::sync::atomic::AtomicBool::new(true);
        std::thread::scope(|s| {
            s.spawn(|| {
                for i in 1..=updates {
                    self.update_package(function_id, &packages[i % 2])
                        .assert_status(200);
                }
                updating.store(false, std::sync::atomic::Ordering::SeqCst);
            });
            let mut downloads = 0;
            while updating.load(std::sync::atomic::Ordering::SeqCst) || downloads < updates {
                let reply = self.get(&format!("/v1/functions/{function_id}?download=true"));
                reply.assert_status(200);
                assert!(
                    packages.contains(&reply.body),
                    "download {downloads}: {} bytes, neither package",
                    reply.body.len()
                );
                downloads += 1;
            }
        });
    }

    pub fn version_numbers(&self, function_id: &str) -> Vec<i64> {
        let list = self.get(&format!("/v1/functions/{function_id}/versions"));
        listed_version_numbers(&list.json())
    }
}

/// The version numbers a page of `GET /v1/functions/{id}/versions` lists, in its order.
pub fn listed_version_numbers(page: &Json) -> Vec<i64> {
    page["function_versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version_number"].as_i64().unwrap())
        .collect()
}

/// A small distinct package per `tag`.
pub fn package(tag: &str) -> Vec<u8> {
    zip_of(&[(
        "main.py",
        format!("def main(**kwargs):\n    return {tag:?}\n").as_bytes(),
    )])
}

fn owned(variables: &[(&str, &str)]) -> Vec<(String, String)> {
    variables
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect()
}

pub fn md5_hex(bytes: &[u8]) -> String {
    use md5::Digest;
    md5::Md5::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A Python command-line tool from PyPI, installed on first use into a venv under
/// `target/<venv>`. `None` (with the reason printed) only when PyPI cannot be reached; any
/// other install failure fails the test.
///
/// Tests run in parallel and two may want the same tool: installs are serialised, and a venv
/// counts as installed only once its marker is written, so nobody runs a half-built one (nor
/// deletes the venv another test is installing into).
pub fn python_tool(venv: &str, packages: &[&str], executable: &str) -> Option<PathBuf> {
    static INSTALLING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_at_a_time = INSTALLING.lock().unwrap_or_else(|e| e.into_inner());
    let venv = repo_root().join("target").join(venv);
    let exe = venv.join("bin").join(executable);
    let installed = venv.join(".spinling-installed");
    let wanted = packages.join("\n");
    if std::fs::read_to_string(&installed).is_ok_and(|done| done == wanted) && exe.exists() {
        return Some(exe);
    }
    let _ = std::fs::remove_dir_all(&venv);
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let status = std::process::Command::new(&python)
        .args(["-m", "venv"])
        .arg(&venv)
        .status()
        .expect("python3 runs");
    assert!(status.success(), "could not create a venv with {python}");
    let output = std::process::Command::new(venv.join("bin/pip"))
        .args(["install", "--disable-pip-version-check", "-q"])
        .args(packages)
        .output()
        .expect("pip runs");
    if output.status.success() {
        std::fs::write(&installed, wanted).expect("venv marker is written");
        return Some(exe);
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let _ = std::fs::remove_dir_all(&venv);
    let unreachable = [
        "NewConnectionError",
        "Max retries",
        "Temporary failure in name resolution",
        "Network is unreachable",
        "No matching distribution",
    ];
    if unreachable.iter().any(|m| stderr.contains(m)) {
        eprintln!("SKIPPED: PyPI is unreachable, could not install {packages:?}:\n{stderr}");
        return None;
    }
    panic!("pip install {packages:?} failed:\n{stderr}");
}

/// The body of a GET of `path` from `addr` through a small receive window: read 1 MiB, then
/// `meanwhile` and a `pause`, then the rest; empty unless the answer is a 200.
pub fn slow_download(
    addr: SocketAddr,
    path: &str,
    pause: std::time::Duration,
    meanwhile: impl FnOnce(),
) -> Vec<u8> {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(64 << 10).unwrap();
    socket.connect(&addr.into()).unwrap();
    let mut stream: std::net::TcpStream = socket.into();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = vec![0; 1 << 20];
    stream.read_exact(&mut answer).unwrap();
    meanwhile();
    std::thread::sleep(pause);
    // A body cut short ends the connection early: what came is what is checked.
    let _ = stream.read_to_end(&mut answer);
    let head_end = answer.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    match answer.starts_with(b"HTTP/1.1 200") {
        true => answer.split_off(head_end),
        false => Vec::new(),
    }
}

/// A package holding one of the example functions (built by scripts/test) as `<name>.wasm`.
pub fn example_package(name: &str) -> Vec<u8> {
    let path = repo_root().join(format!(
        "target/wasm32-wasip1/release/spinling-example-{name}.wasm"
    ));
    let wasm = std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{} ({e}); build the examples first: scripts/test",
            path.display()
        )
    });
    zip_of(&[(&format!("{name}.wasm"), &wasm)])
}

/// A worker on loopback that answers every ping, and every `POST /execute` with `reply`.
pub fn fake_worker(reply: Vec<u8>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let reply = Arc::new(reply);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let reply = Arc::clone(&reply);
            std::thread::spawn(move || answer(stream, &reply));
        }
    });
    url
}

/// Answers one request of `fake_worker`.
fn answer(stream: TcpStream, reply: &[u8]) {
    let mut reader = BufReader::new(stream);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).is_err() || line.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0u8; length];
    let _ = reader.read_exact(&mut body);
    let body: &[u8] = if request_line.starts_with("GET /ping") {
        b"pong"
    } else {
        reply
    };
    let mut stream = reader.into_inner();
    let _ = write!(
        stream,
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         connection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(body);
}

/// A UTC time `seconds` from now, as Qinling writes times.
pub fn timestamp_in(seconds: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let t = now + seconds;
    let (days, secs) = (t.div_euclid(86_400), t.rem_euclid(86_400));
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        (secs % 3600) / 60,
        secs % 60
    )
}
