//! Replica mode: the app as two `spin up` processes (two Spin replicas) sharing one
//! redis-server (key-value `default`) and one PostgreSQL database (`database = postgres`),
//! with each request sent over HTTP to the next replica in turn.
//!
//! `SPINLING_TEST_REPLICAS=1` puts every `Api::start*` in this mode (scripts/test runs the
//! versions, aliases and executions suites a second time so); tests/replicas.rs uses it
//! directly. Redis keeps its data under the test's state directory, and the state directory
//! names the app's PostgreSQL database, so that `Api::stop` and `Api::start_in` restart the
//! whole deployment on the same data.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use spinling_test_support::rig::{write_runtime_config, RedisServer};

use crate::postgres;

use crate::spin::SpinUp;

/// How many replicas a replicated app runs.
pub const REPLICAS: usize = 2;

/// Whether `SPINLING_TEST_REPLICAS=1` asks for replica mode.
pub fn requested() -> bool {
    std::env::var("SPINLING_TEST_REPLICAS").is_ok_and(|v| v == "1")
}

/// What the replicas share: a Redis, a PostgreSQL database, and the runtime config and
/// variables naming them.
pub struct Rig {
    redis: RedisServer,
    state_dir: PathBuf,
    runtime_config: PathBuf,
}

impl Rig {
    /// Starts (or restarts) Redis on its data under `state_dir/rig`, and makes the app's
    /// database on first use.
    pub fn start(state_dir: &Path) -> Rig {
        let redis = RedisServer::start(&state_dir.join("rig/redis"));
        postgres::database_of(state_dir);
        let runtime_config = state_dir.join("rig/runtime-config.toml");
        write_runtime_config(&runtime_config, Some(&redis), None);
        Rig {
            redis,
            state_dir: state_dir.to_path_buf(),
            runtime_config,
        }
    }

    /// The runtime config file (`--runtime-config-file`) that puts an app on this rig.
    pub fn runtime_config(&self) -> &Path {
        &self.runtime_config
    }

    /// The Spin variables that put an app on this rig's database.
    pub fn variables(&self) -> Vec<(String, String)> {
        postgres::variables(&self.state_dir)
    }

    /// Whether Redis holds `key` (Spin's Redis store ignores the store label).
    pub fn key_value_has(&self, key: &str) -> bool {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(self.redis.addr()).unwrap();
        write!(
            stream,
            "*2\r\n$6\r\nEXISTS\r\n${}\r\n{key}\r\n*1\r\n$4\r\nQUIT\r\n",
            key.len()
        )
        .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        match answer.get(..4) {
            Some(":1\r\n") => true,
            Some(":0\r\n") => false,
            _ => panic!("unexpected answer from Redis: {answer:?}"),
        }
    }

    /// Runs one statement on the app's PostgreSQL database and returns the first column of
    /// each row as text, as `Api::query_database` does for the local file.
    pub fn query_database(&self, sql: &str) -> Vec<String> {
        postgres::query(&self.state_dir, sql)
    }
}

/// The replicas of one app and the rig they share.
pub struct Replicated {
    // Replicas first: they stop before the servers they use.
    replicas: Vec<SpinUp>,
    /// The Spin variables every replica runs with: the rig's, then the test's.
    variables: Vec<(String, String)>,
    rig: Rig,
    next: AtomicUsize,
    /// The replica every request goes to, or `NOT_PINNED` for each in turn.
    pinned: AtomicUsize,
}

const NOT_PINNED: usize = usize::MAX;

impl Replicated {
    pub fn start(state_dir: &Path, variables: &[(&str, &str)]) -> Replicated {
        let rig = Rig::start(state_dir);
        let mut all = rig.variables();
        all.extend(
            variables
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string())),
        );
        let borrowed: Vec<(&str, &str)> =
            all.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        let replicas = (0..REPLICAS)
            .map(|i| {
                SpinUp::start(
                    &state_dir.join(format!("replica-{i}")),
                    Some(rig.runtime_config()),
                    &borrowed,
                )
            })
            .collect();
        Replicated {
            replicas,
            variables: all,
            rig,
            next: AtomicUsize::new(0),
            pinned: AtomicUsize::new(NOT_PINNED),
        }
    }

    pub fn rig(&self) -> &Rig {
        &self.rig
    }

    /// The Spin variables every replica runs with.
    pub fn variables(&self) -> &[(String, String)] {
        &self.variables
    }

    pub fn replica(&self, index: usize) -> &SpinUp {
        &self.replicas[index]
    }

    pub fn replica_mut(&mut self, index: usize) -> &mut SpinUp {
        &mut self.replicas[index]
    }

    /// Sends every request from now on to replica `index`, or (`None`) to each in turn.
    pub fn pin(&self, index: Option<usize>) {
        self.pinned
            .store(index.unwrap_or(NOT_PINNED), Ordering::Relaxed);
    }

    /// Sends `request` to the pinned replica, else to the next one in turn.
    pub fn send(&self, request: http::Request<Bytes>) -> http::Response<Vec<u8>> {
        let index = match self.pinned.load(Ordering::Relaxed) {
            NOT_PINNED => self.next.fetch_add(1, Ordering::Relaxed) % self.replicas.len(),
            pinned => pinned,
        };
        self.send_to(index, request)
    }

    /// Sends `request` to replica `index`.
    pub fn send_to(&self, index: usize, request: http::Request<Bytes>) -> http::Response<Vec<u8>> {
        crate::spin::send(self.replicas[index].addr(), request)
    }
}
