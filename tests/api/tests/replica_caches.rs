//! Cached version reads on two replicas (`key_value_scope`; docs/operations.md, "Running several
//! replicas"): two `spin up` processes on one libSQL server, each with its own
//! key-value store (Spin's default file) or both on one Redis. With their own stores a write on
//! one replica is seen on the other within 2 s; with one Redis, at once.

use serde_json::{json, Value as Json};
use spinling_api_tests::spin::{self, SpinUp};
use spinling_api_tests::{listed_version_numbers, multipart, package};
use spinling_test_support::rig::{write_runtime_config, RedisServer, SqldServer};
use std::time::{Duration, Instant};

/// How long a replica's own cache may show what another replica changed.
const REPLICA_BOUND: Duration = Duration::from_secs(2);

/// Two replicas on one sqld; on one Redis too when `shared`.
struct Deployment {
    // Replicas first: they stop before the servers they use.
    replicas: Vec<SpinUp>,
    _redis: Option<RedisServer>,
    _sqld: SqldServer,
    _state: tempfile::TempDir,
}

impl Deployment {
    /// With `shared`, one Redis for both replicas and `key_value_scope = shared`; else each
    /// replica's default store in its own state directory and `key_value_scope = replica`.
    fn start(shared: bool) -> Deployment {
        let state = tempfile::tempdir().unwrap();
        let sqld = SqldServer::start(&state.path().join("sqld"));
        let redis = shared.then(|| RedisServer::start(&state.path().join("redis")));
        let config_path = state.path().join("runtime-config.toml");
        write_runtime_config(&config_path, redis.as_ref(), Some(&sqld));
        let scope = if shared { "shared" } else { "replica" };
        let replicas = (0..2)
            .map(|i| {
                SpinUp::start(
                    &state.path().join(format!("replica-{i}")),
                    Some(&config_path),
                    &[("key_value_scope", scope)],
                )
            })
            .collect();
        Deployment {
            replicas,
            _redis: redis,
            _sqld: sqld,
            _state: state,
        }
    }

    /// Sends a request to replica `index`: its status and JSON body (null when none).
    fn send(
        &self,
        index: usize,
        method: &str,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> (u16, Json) {
        let request = http::Request::builder()
            .method(method)
            .uri(path)
            .header("host", "127.0.0.1")
            .header("content-type", content_type)
            .body(body.into())
            .unwrap();
        let response = spin::send(self.replicas[index].addr(), request);
        let json = serde_json::from_slice(response.body()).unwrap_or(Json::Null);
        (response.status().as_u16(), json)
    }

    fn get(&self, index: usize, path: &str) -> (u16, Json) {
        self.send(index, "GET", path, "application/json", Vec::new())
    }

    /// A function on the built-in runtime with version 1 published, made on replica 0.
    fn published_function(&self) -> String {
        let runtime = json!({"image": "spinling/wasm", "name": "wasm"});
        let body = runtime.to_string().into_bytes();
        let (status, runtime) = self.send(0, "POST", "/v1/runtimes", "application/json", body);
        assert_eq!(status, 201, "{runtime}");
        let fields = [
            ("code", r#"{"source": "package"}"#),
            ("runtime_id", runtime["id"].as_str().unwrap()),
        ];
        let (content_type, body) = multipart(&fields, Some(&package("a")));
        let (status, function) = self.send(0, "POST", "/v1/functions", &content_type, body);
        assert_eq!(status, 201, "{function}");
        let fid = function["id"].as_str().unwrap().to_string();
        let path = format!("/v1/functions/{fid}/versions");
        let body = b"{}".to_vec();
        let (status, version) = self.send(0, "POST", &path, "application/json", body);
        assert_eq!(status, 201, "{version}");
        fid
    }

    /// The version numbers replica `index` lists for the function.
    fn version_numbers(&self, index: usize, fid: &str) -> Vec<i64> {
        let (status, list) = self.get(index, &format!("/v1/functions/{fid}/versions"));
        assert_eq!(status, 200, "{list}");
        listed_version_numbers(&list)
    }

    /// Replica 1 reads version 1 and the list (twice: the second read is served from its
    /// cache), then replica 0 deletes version 1: when the delete was answered.
    fn delete_what_replica_1_cached(&self, fid: &str) -> Instant {
        let version = format!("/v1/functions/{fid}/versions/1");
        for _ in 0..2 {
            assert_eq!(self.get(1, &version).0, 200);
            assert_eq!(self.version_numbers(1, fid), [1]);
        }
        let (status, _) = self.send(0, "DELETE", &version, "application/json", Vec::new());
        assert_eq!(status, 204);
        Instant::now()
    }

    /// Whether replica 1 shows version 1 deleted, in its resource and in the list.
    fn replica_1_sees_the_delete(&self, fid: &str) -> bool {
        let version = format!("/v1/functions/{fid}/versions/1");
        self.get(1, &version).0 == 404 && self.version_numbers(1, fid).is_empty()
    }
}

#[test]
fn on_per_replica_stores_a_delete_on_one_replica_is_seen_on_the_other_within_two_seconds() {
    let deployment = Deployment::start(false);
    let fid = deployment.published_function();

    let deleted = deployment.delete_what_replica_1_cached(&fid);

    std::thread::sleep((deleted + REPLICA_BOUND).saturating_duration_since(Instant::now()));
    assert!(deployment.replica_1_sees_the_delete(&fid));
}

#[test]
fn on_one_shared_redis_a_delete_on_one_replica_is_seen_at_once_on_the_other() {
    let deployment = Deployment::start(true);
    let fid = deployment.published_function();

    deployment.delete_what_replica_1_cached(&fid);

    assert!(deployment.replica_1_sees_the_delete(&fid));
}
