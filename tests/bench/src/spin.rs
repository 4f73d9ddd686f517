//! Real `spin up` as a child process on a free loopback port, and the CPU time it spends.

use spinling_test_support::rig::ChildGuard;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long `spin up` may take to answer its first request: it compiles every component
/// (Wasmtime caches the result, so only a first run is slow).
const STARTUP: Duration = Duration::from_secs(300);

/// The repository root (where spin.toml is).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// The Spin CLI: `$SPIN`, else `spin` on `PATH`, else `../shared/spin/bin/spin` beside the
/// repository (where every checkout and CI have it; see its README).
pub fn spin_binary() -> PathBuf {
    if let Some(spin) = std::env::var_os("SPIN").filter(|s| !s.is_empty()) {
        return PathBuf::from(spin);
    }
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("spin"))
            .find(|candidate| candidate.is_file())
    });
    on_path.unwrap_or_else(|| repo_root().join("../shared/spin/bin/spin"))
}

/// One `spin up` serving a manifest over its own state directory (SQLite and key-value files,
/// component logs). Killed when dropped.
pub struct SpinUp {
    process: ChildGuard,
    pid: u32,
    pub base: String,
    state: tempfile::TempDir,
}

impl SpinUp {
    /// `spin up --from manifest`, each `(name, value)` as `SPIN_VARIABLE_<NAME>`, with
    /// `runtime_config` if given.
    pub fn start(
        manifest: &Path,
        variables: &[(&str, &str)],
        runtime_config: Option<&Path>,
    ) -> SpinUp {
        let spin = spin_binary();
        let state = tempfile::tempdir().unwrap();
        for _ in 0..5 {
            let addr = free_port();
            let log = std::fs::File::create(state.path().join("spin.log")).unwrap();
            let mut command = Command::new(&spin);
            command
                .arg("up")
                .arg("--from")
                .arg(manifest)
                .args(["--listen", &addr.to_string()])
                .arg("--state-dir")
                .arg(state.path().join("state"))
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log);
            if let Some(config) = runtime_config {
                command.arg("--runtime-config-file").arg(config);
            }
            for (name, value) in variables {
                command.env(
                    format!("SPIN_VARIABLE_{}", name.to_ascii_uppercase()),
                    value,
                );
            }
            let mut process = ChildGuard::spawn(command)
                .unwrap_or_else(|e| panic!("cannot start {} ({e})", spin.display()));
            let pid = process.child().id();
            let deadline = Instant::now() + STARTUP;
            while Instant::now() < deadline {
                if matches!(process.child().try_wait(), Ok(Some(_))) {
                    break;
                }
                if answers_http(addr) {
                    return SpinUp {
                        process,
                        pid,
                        base: format!("http://{addr}"),
                        state,
                    };
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            process.kill();
            let log = std::fs::read_to_string(state.path().join("spin.log")).unwrap_or_default();
            eprintln!("spin up did not serve on {addr}:\n{log}");
        }
        panic!(
            "{} up --from {} did not start; build the components first (see tests/bench)",
            spin.display(),
            manifest.display()
        );
    }

    /// CPU time (user and system) that this `spin up` and every process under it have used.
    pub fn cpu(&self) -> Duration {
        process_tree_cpu(self.pid)
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Its state directory: `state/` (SQLite, key-value), `state/logs/` (components' output)
    /// and `spin.log` (Spin's own).
    pub fn dir(&self) -> &Path {
        self.state.path()
    }
}

impl Drop for SpinUp {
    fn drop(&mut self) {
        self.process.kill();
    }
}

fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
}

/// Whether something answers HTTP/1.1 on `addr`.
fn answers_http(addr: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let request = format!("GET / HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut answer = [0u8; 16];
    matches!(stream.read(&mut answer), Ok(n) if answer[..n].starts_with(b"HTTP/1.1"))
}

/// Clock ticks per second of `/proc/<pid>/stat`'s times.
fn clock_ticks() -> u64 {
    // SAFETY: sysconf reads a constant.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as u64
    } else {
        100
    }
}

/// `(ppid, utime + stime + cutime + cstime)` of a process, from `/proc/<pid>/stat`.
fn stat_of(pid: u32) -> Option<(u32, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ppid = fields.get(1)?.parse().ok()?;
    let ticks = fields
        .get(11..15)?
        .iter()
        .filter_map(|t| t.parse::<u64>().ok())
        .sum();
    Some((ppid, ticks))
}

/// CPU time of `root` and of its live descendants (and of those already reaped, which the
/// kernel adds to their parent's `cutime`/`cstime`).
fn process_tree_cpu(root: u32) -> Duration {
    let mut processes: Vec<(u32, u32, u64)> = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
                continue;
            };
            if let Some((ppid, ticks)) = stat_of(pid) {
                processes.push((pid, ppid, ticks));
            }
        }
    }
    let mut tree = vec![root];
    let mut total = 0;
    while let Some(pid) = tree.pop() {
        for &(child, ppid, ticks) in &processes {
            if child == pid {
                total += ticks;
            }
            if ppid == pid {
                tree.push(child);
            }
        }
    }
    Duration::from_micros(total * 1_000_000 / clock_ticks())
}
