//! The app as users run it: a real `spin up` process (the Spin CLI on `PATH`, or `$SPIN`) on a
//! free loopback port, over a state directory the test owns, and a plain HTTP/1.1 client for
//! it. The components must be built first (`scripts/test` builds them).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use spinling_test_support::rig::ChildGuard;

/// How long `spin up` may take to serve: a first start on a fresh machine compiles every
/// component (Spin caches them under ~/.cache/wasmtime for later starts).
const STARTUP: Duration = Duration::from_secs(300);

/// The Spin CLI: `$SPIN`, else `spin` on `PATH` (`.ci/run` and `scripts/test` put
/// `../shared/spin/bin` first).
pub fn spin_binary() -> PathBuf {
    if let Some(spin) = std::env::var_os("SPIN") {
        return PathBuf::from(spin);
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .map(|dir| dir.join("spin"))
        .find(|candidate| candidate.is_file())
        .expect("the Spin CLI is not on PATH: put ../shared/spin/bin first, or set SPIN")
}

/// One `spin up` of the repository's spin.toml, killed when dropped.
pub struct SpinUp {
    process: ChildGuard,
    addr: SocketAddr,
}

impl SpinUp {
    /// Starts `spin up` with its state (SQLite, key-value, logs) in `state_dir`, on a runtime
    /// config if given, with these Spin variables (`SPIN_VARIABLE_<NAME>`).
    pub fn start(
        state_dir: &Path,
        runtime_config: Option<&Path>,
        variables: &[(&str, &str)],
    ) -> SpinUp {
        std::fs::create_dir_all(state_dir).unwrap();
        let log = state_dir.join("spin-up.log");
        let mut command = Command::new(spin_binary());
        command
            .arg("up")
            .arg("--from")
            .arg(crate::repo_root().join("spin.toml"))
            .args(["--listen", "127.0.0.1:0", "--quiet"])
            .arg("--state-dir")
            .arg(state_dir)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(state_dir.join("spin-up.err")).unwrap());
        if let Some(path) = runtime_config {
            command.arg("--runtime-config-file").arg(path);
        }
        // Only the variables this test sets: none leaks in from the caller's environment.
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("SPIN_VARIABLE_") {
                command.env_remove(name);
            }
        }
        for (name, value) in variables {
            command.env(
                format!("SPIN_VARIABLE_{}", name.to_ascii_uppercase()),
                value,
            );
        }
        let mut process = ChildGuard::spawn(command).expect("spin up starts");
        let deadline = Instant::now() + STARTUP;
        loop {
            let printed = std::fs::read_to_string(&log).unwrap_or_default();
            if let Some(addr) = printed
                .lines()
                .find_map(|line| line.strip_prefix("Serving http://"))
            {
                return SpinUp {
                    process,
                    addr: addr.trim().parse().unwrap(),
                };
            }
            if let Ok(Some(status)) = process.child().try_wait() {
                let errors =
                    std::fs::read_to_string(state_dir.join("spin-up.err")).unwrap_or_default();
                panic!(
                    "spin up exited ({status}) before serving (build the components first: \
                     scripts/test):\n{printed}\n{errors}"
                );
            }
            assert!(
                Instant::now() < deadline,
                "spin up did not serve within {STARTUP:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Sends `request` (origin-form URI, headers exactly as given) to this process.
    pub fn send(&self, request: http::Request<Vec<u8>>) -> http::Response<Vec<u8>> {
        send(self.addr, request.map(Bytes::from))
    }

    /// Kills the process at once, as a crash or an OOM kill would (SIGKILL).
    pub fn kill(&mut self) {
        self.process.kill();
    }
}

/// Sends `request` (origin-form URI, headers exactly as given: no `Host` is added) to `addr`
/// on a connection of its own; panics if the server does not answer.
pub fn send(addr: SocketAddr, request: http::Request<Bytes>) -> http::Response<Vec<u8>> {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    let runtime = RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    });
    runtime.block_on(async move {
        let stream = tokio::net::TcpStream::connect(addr)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to {addr}: {e}"));
        stream.set_nodelay(true).unwrap();
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .expect("HTTP handshake");
        tokio::spawn(connection);
        let response = sender
            .send_request(request.map(Full::new))
            .await
            .unwrap_or_else(|e| panic!("{addr} did not answer: {e}"));
        let (parts, body) = response.into_parts();
        let body = body.collect().await.expect("the response body").to_bytes();
        http::Response::from_parts(parts, body.to_vec())
    })
}
