//! Replica mode: the app as two `spin up` processes (two Spin replicas) sharing one
//! redis-server (key-value `default`) and one sqld (SQLite `default`, libSQL), with each
//! request sent over HTTP to the next replica in turn.
//!
//! `SPINLING_TEST_REPLICAS=1` puts every `Api::start*` in this mode (scripts/test runs the
//! versions, aliases and executions suites a second time so); tests/replicas.rs uses it
//! directly. The servers keep their data under the test's state directory, so that
//! `Api::stop` and `Api::start_in` restart the whole deployment on the same data.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use serde_json::{json, Value as Json};
use spinling_test_support::rig::{RedisServer, SqldServer};

use crate::spin::SpinUp;

/// How many replicas a replicated app runs.
pub const REPLICAS: usize = 2;

/// Whether `SPINLING_TEST_REPLICAS=1` asks for replica mode.
pub fn requested() -> bool {
    std::env::var("SPINLING_TEST_REPLICAS").is_ok_and(|v| v == "1")
}

/// Writes a Spin runtime config putting database `default` on `sqld` and, when given, the
/// key-value store `default` on `redis` (else each app keeps Spin's default file store).
pub fn write_runtime_config(path: &Path, sqld: &SqldServer, redis: Option<&RedisServer>) {
    let mut config = format!(
        "[sqlite_database.default]\ntype = \"libsql\"\nurl = \"{}\"\ntoken = \"\"\n",
        sqld.url()
    );
    if let Some(redis) = redis {
        config += &format!(
            "\n[key_value_store.default]\ntype = \"redis\"\nurl = \"{}\"\n",
            redis.url(0)
        );
    }
    std::fs::write(path, config).unwrap();
}

/// What the replicas share: a Redis and a libSQL server, and the runtime config naming them.
pub struct Rig {
    redis: RedisServer,
    sqld: SqldServer,
    runtime_config: PathBuf,
}

impl Rig {
    /// Starts (or restarts) the servers on their data under `state_dir/rig`.
    pub fn start(state_dir: &Path) -> Rig {
        let redis = RedisServer::start(&state_dir.join("rig/redis"));
        let sqld = SqldServer::start(&state_dir.join("rig/sqld"));
        let runtime_config = state_dir.join("rig/runtime-config.toml");
        write_runtime_config(&runtime_config, &sqld, Some(&redis));
        Rig {
            redis,
            sqld,
            runtime_config,
        }
    }

    /// The runtime config file (`--runtime-config-file`) that puts an app on this rig.
    pub fn runtime_config(&self) -> &Path {
        &self.runtime_config
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

    /// Runs one statement on sqld (Hrana's `/v2/pipeline`) and returns the first column of
    /// each row as text, as `Api::query_database` does for the local file.
    pub fn query_database(&self, sql: &str) -> Vec<String> {
        let body = json!({"requests": [
            {"type": "execute", "stmt": {"sql": sql}},
            {"type": "close"},
        ]});
        let request = http::Request::post("/v2/pipeline")
            .header("host", self.sqld.url().trim_start_matches("http://"))
            .header("content-type", "application/json")
            .body(Bytes::from(body.to_string()))
            .unwrap();
        let response = crate::spin::send(self.sqld_addr(), request);
        let answer: Json = serde_json::from_slice(response.body()).unwrap();
        let result = &answer["results"][0];
        assert_eq!(result["type"], "ok", "{sql}: {answer}");
        result["response"]["result"]["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|row| match &row[0] {
                cell if cell["type"] == "integer" || cell["type"] == "text" => {
                    cell["value"].as_str().unwrap().to_owned()
                }
                other => format!("{other}"),
            })
            .collect()
    }

    fn sqld_addr(&self) -> SocketAddr {
        self.sqld
            .url()
            .trim_start_matches("http://")
            .parse()
            .unwrap()
    }
}

/// The replicas of one app and the rig they share.
pub struct Replicated {
    // Replicas first: they stop before the servers they use.
    replicas: Vec<SpinUp>,
    rig: Rig,
    next: AtomicUsize,
    /// The replica every request goes to, or `NOT_PINNED` for each in turn.
    pinned: AtomicUsize,
}

const NOT_PINNED: usize = usize::MAX;

impl Replicated {
    pub fn start(state_dir: &Path, variables: &[(&str, &str)]) -> Replicated {
        let rig = Rig::start(state_dir);
        let replicas = (0..REPLICAS)
            .map(|i| {
                SpinUp::start(
                    &state_dir.join(format!("replica-{i}")),
                    Some(rig.runtime_config()),
                    variables,
                )
            })
            .collect();
        Replicated {
            replicas,
            rig,
            next: AtomicUsize::new(0),
            pinned: AtomicUsize::new(NOT_PINNED),
        }
    }

    pub fn rig(&self) -> &Rig {
        &self.rig
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
