//! Real servers for tests that need shared state across app replicas: `redis-server` (Debian's
//! package), `sqld` (the libSQL server; tests/support/install-sqld.sh puts it under
//! `target/sqld/`) and PostgreSQL (Debian's package), each on a free loopback port with its
//! data in a directory of its own.
//! A server is killed when its handle is dropped, and also when the thread that started it
//! ends (`PR_SET_PDEATHSIG`), so a test that panics or is interrupted leaves no process behind.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a server may take to answer its first request.
const STARTUP: Duration = Duration::from_secs(20);

/// A child process that is killed when dropped.
pub struct ChildGuard {
    child: Child,
    /// Whether it was killed and reaped already: its pid may name another process now.
    reaped: bool,
}

impl ChildGuard {
    /// Starts `command` so that it dies with the thread that started it, in a process group
    /// of its own: killing the guard kills every process it started too (`spin up` runs the
    /// app in a child process, `spin trigger http`, which outlives a killed `spin up`).
    pub fn spawn(mut command: Command) -> std::io::Result<ChildGuard> {
        command.process_group(0);
        // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        command.spawn().map(|child| ChildGuard {
            child,
            reaped: false,
        })
    }

    pub fn child(&mut self) -> &mut Child {
        &mut self.child
    }

    /// Kills the process and every process it started at once (SIGKILL to its process
    /// group, as a crash or an OOM kill) and reaps it.
    pub fn kill(&mut self) {
        if self.reaped {
            return;
        }
        if let Ok(pid) = i32::try_from(self.child.id()) {
            // SAFETY: a plain syscall; the group is the child's own (`process_group(0)`) and
            // its leader is not reaped yet, so the id names no other group.
            unsafe { libc::kill(-pid, libc::SIGKILL) };
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.reaped = true;
    }

    fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A `redis-server` without persistence to disk beyond its append-only file in `data_dir`.
pub struct RedisServer {
    /// Killed when the server handle is dropped.
    _process: ChildGuard,
    addr: SocketAddr,
}

impl RedisServer {
    /// Starts redis-server with its files in `data_dir` (created if missing); a restart on
    /// the same directory finds the same keys.
    pub fn start(data_dir: &Path) -> RedisServer {
        std::fs::create_dir_all(data_dir).unwrap();
        let (process, addr) = start_on_free_port(
            "redis-server",
            |port| {
                let mut command = Command::new("redis-server");
                command
                    .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
                    .args(["--save", "", "--appendonly", "yes", "--appendfsync", "no"])
                    .args(["--protected-mode", "no"])
                    .arg("--dir")
                    .arg(data_dir)
                    .arg("--logfile")
                    .arg(data_dir.join("redis.log"));
                command
            },
            redis_answers_ping,
        );
        RedisServer {
            _process: process,
            addr,
        }
    }

    /// `redis://127.0.0.1:<port>/<db>`.
    pub fn url(&self, db: u8) -> String {
        format!("redis://{}/{db}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

/// A libSQL server (`sqld`), Hrana over HTTP, no authentication.
pub struct SqldServer {
    /// Killed when the server handle is dropped.
    _process: ChildGuard,
    addr: SocketAddr,
}

impl SqldServer {
    /// Starts sqld with its database in `data_dir`; a restart on the same directory finds
    /// the same data.
    pub fn start(data_dir: &Path) -> SqldServer {
        let sqld = sqld_binary();
        let (process, addr) = start_on_free_port(
            "sqld",
            |port| {
                let mut command = Command::new(&sqld);
                command
                    .arg("--no-welcome")
                    .arg("--db-path")
                    .arg(data_dir)
                    .args(["--http-listen-addr", &format!("127.0.0.1:{port}")])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null());
                command
            },
            sqld_is_healthy,
        );
        SqldServer {
            _process: process,
            addr,
        }
    }

    /// The URL Spin's runtime config takes (`[sqlite_database.<label>] url = …`).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// `target/sqld/sqld-0.24.32`, installed by tests/support/install-sqld.sh on first use.
fn sqld_binary() -> PathBuf {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let binary = repo.join("target/sqld/sqld-0.24.32");
    if !binary.is_file() {
        let status = Command::new(repo.join("tests/support/install-sqld.sh"))
            .status()
            .expect("tests/support/install-sqld.sh runs");
        assert!(status.success(), "tests/support/install-sqld.sh failed");
    }
    binary
}

/// Starts a server on a port that was free a moment ago, again on another port if it lost
/// the race for it, and waits until `ready` says it answers.
fn start_on_free_port(
    name: &str,
    command: impl Fn(u16) -> Command,
    ready: fn(SocketAddr) -> bool,
) -> (ChildGuard, SocketAddr) {
    for _ in 0..5 {
        let addr = free_port();
        let mut process = ChildGuard::spawn(command(addr.port()))
            .unwrap_or_else(|e| panic!("cannot start {name} ({e}); see .ci/run for its install"));
        let deadline = Instant::now() + STARTUP;
        while Instant::now() < deadline && !process.exited() {
            if ready(addr) {
                return (process, addr);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    panic!("{name} did not start on a loopback port");
}

fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
}

fn exchange(addr: SocketAddr, request: &[u8]) -> Option<String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    stream.write_all(request).ok()?;
    let mut answer = [0u8; 64];
    let n = stream.read(&mut answer).ok()?;
    Some(String::from_utf8_lossy(&answer[..n]).into_owned())
}

fn redis_answers_ping(addr: SocketAddr) -> bool {
    exchange(addr, b"PING\r\n").is_some_and(|a| a.starts_with("+PONG"))
}

fn sqld_is_healthy(addr: SocketAddr) -> bool {
    let request = format!("GET /health HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    exchange(addr, request.as_bytes()).is_some_and(|a| a.starts_with("HTTP/1.1 200"))
}

/// A PostgreSQL server (Debian's `postgresql`, 15), on a free loopback port with its cluster
/// in a fresh directory of its own, trusting loopback connections (no password). PostgreSQL
/// refuses to run as root: as root, the cluster belongs to the `postgres` user the package
/// creates, and the server runs as that user.
pub struct PostgresServer {
    /// Killed when the server handle is dropped.
    _process: ChildGuard,
    addr: SocketAddr,
    dir: PathBuf,
    bin: PathBuf,
}

impl PostgresServer {
    /// Starts a fresh cluster. `durable`: every commit is on disk before its answer, as in
    /// production (for the benchmark); otherwise the server skips its disk syncs, which
    /// tests of behaviour do not need.
    pub fn start(durable: bool) -> PostgresServer {
        let bin = postgres_bin();
        let user = postgres_user();
        static COUNT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = COUNT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("spinling-postgres-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        if let Some((uid, gid)) = user {
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).unwrap();
        }
        let data = dir.join("data");
        let mut initdb = as_postgres(Command::new(bin.join("initdb")), user);
        initdb
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"])
            .current_dir(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let status = initdb
            .status()
            .expect("initdb runs; see .ci/run for its install");
        assert!(status.success(), "initdb failed in {}", dir.display());
        let (process, addr) = start_on_free_port(
            "postgres",
            |port| {
                let mut command = as_postgres(Command::new(bin.join("postgres")), user);
                command
                    .arg("-D")
                    .arg(&data)
                    .args(["-p", &port.to_string(), "-c", "listen_addresses=127.0.0.1"])
                    .arg("-k")
                    .arg(&dir)
                    // Replicas hold up to 64 pooled connections each.
                    .args(["-c", "max_connections=300"])
                    .current_dir(&dir)
                    .stdout(Stdio::null())
                    .stderr(
                        std::fs::File::create(dir.join(format!("postgres-{port}.log"))).unwrap(),
                    );
                if let Some((uid, gid)) = user {
                    let _ = std::os::unix::fs::chown(
                        dir.join(format!("postgres-{port}.log")),
                        Some(uid),
                        Some(gid),
                    );
                }
                if !durable {
                    command.args(["-c", "fsync=off", "-c", "synchronous_commit=off"]);
                    command.args(["-c", "full_page_writes=off"]);
                }
                command
            },
            postgres_accepts,
        );
        let server = PostgresServer {
            _process: process,
            addr,
            dir,
            bin,
        };
        // Accepting connections is not yet ready for queries.
        let deadline = Instant::now() + STARTUP;
        while server.try_psql("postgres", "SELECT 1").is_err() {
            assert!(Instant::now() < deadline, "postgres did not get ready");
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    /// Creates an empty database `name` (letters, digits and `_`).
    pub fn create_database(&self, name: &str) {
        assert!(name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'));
        self.psql("postgres", &format!("CREATE DATABASE {name}"));
    }

    /// The URL Spin's PostgreSQL interface takes for database `name`.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://postgres@{}/{name}?sslmode=disable", self.addr)
    }

    /// `host:port`, as `allowed_outbound_hosts` names it (`postgres://host:port`).
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// The Spin variables that put an app on database `name` of this server.
    pub fn spin_variables(&self, name: &str) -> Vec<(String, String)> {
        vec![
            ("database".into(), "postgres".into()),
            ("postgres_url".into(), self.url(name)),
            ("postgres_host".into(), self.host()),
        ]
    }

    /// Runs `sql` in database `name` with psql; its output, unaligned without headers.
    pub fn psql(&self, name: &str, sql: &str) -> String {
        self.try_psql(name, sql)
            .unwrap_or_else(|e| panic!("psql {sql:?} failed: {e}"))
    }

    fn try_psql(&self, name: &str, sql: &str) -> Result<String, String> {
        let psql = self.bin.join("psql");
        let output = Command::new(if psql.is_file() { psql } else { "psql".into() })
            .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.addr.port().to_string(),
                "-U",
                "postgres",
            ])
            .args(["-d", name, "-c", sql])
            .output()
            .map_err(|e| e.to_string())?;
        match output.status.success() {
            true => Ok(String::from_utf8_lossy(&output.stdout).trim().to_string()),
            false => Err(String::from_utf8_lossy(&output.stderr).into_owned()),
        }
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        // The server first, then its files.
        self._process.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs `command` as the `postgres` user when there is one to switch to.
fn as_postgres(mut command: Command, user: Option<(u32, u32)>) -> Command {
    if let Some((uid, gid)) = user {
        command.uid(uid).gid(gid).env("HOME", "/tmp");
    }
    command
}

/// The `postgres` user's uid and gid, when running as root (PostgreSQL refuses root).
fn postgres_user() -> Option<(u32, u32)> {
    // SAFETY: plain syscalls.
    if unsafe { libc::getuid() } != 0 {
        return None;
    }
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let line = passwd
        .lines()
        .find(|l| l.starts_with("postgres:"))
        .expect("a postgres user (Debian's postgresql package makes it; see .ci/run)");
    let fields: Vec<&str> = line.split(':').collect();
    Some((fields[2].parse().unwrap(), fields[3].parse().unwrap()))
}

/// Debian's server binaries: `/usr/lib/postgresql/<version>/bin`, the newest there.
fn postgres_bin() -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("Debian's postgresql package (see .ci/run)")
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|bin| bin.join("postgres").is_file())
        .collect();
    versions.sort();
    versions
        .pop()
        .expect("a PostgreSQL server under /usr/lib/postgresql")
}

fn postgres_accepts(addr: SocketAddr) -> bool {
    TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
}

/// Writes a Spin runtime config putting the key-value store `default` on `redis` and the
/// SQLite database `default` on `sqld`, each when given (else the app keeps Spin's default
/// file for it). A PostgreSQL database is chosen by variables instead
/// ([`PostgresServer::spin_variables`]).
pub fn write_runtime_config(path: &Path, redis: Option<&RedisServer>, sqld: Option<&SqldServer>) {
    let mut config = String::new();
    if let Some(redis) = redis {
        config += &format!(
            "[key_value_store.default]\ntype = \"redis\"\nurl = \"{}\"\n\n",
            redis.url(0)
        );
    }
    if let Some(sqld) = sqld {
        config += &format!(
            "[sqlite_database.default]\ntype = \"libsql\"\nurl = \"{}\"\ntoken = \"\"\n",
            sqld.url()
        );
    }
    std::fs::write(path, config).unwrap();
}
