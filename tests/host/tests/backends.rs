//! Backends from a Spin runtime config file: key-value on a real redis-server and SQLite on a
//! real libSQL server (sqld), shared by apps that have nothing else in common.

use crate::common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{get, json, request, text};
use spin_test_host::{BlockingApp, HostOptions};
use spinling_test_support::rig::{RedisServer, SqldServer};

/// A redis-server and a sqld, and a runtime config that puts the fixture app on them.
struct Rig {
    redis: RedisServer,
    _sqld: SqldServer,
    runtime_config: PathBuf,
    _dir: tempfile::TempDir,
}

impl Rig {
    fn start() -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let redis = RedisServer::start(&dir.path().join("redis"));
        let sqld = SqldServer::start(&dir.path().join("sqld"));
        let runtime_config = write_config(
            dir.path(),
            &format!(
                "[key_value_store.default]\ntype = \"redis\"\nurl = \"{}\"\n\n\
                 [sqlite_database.default]\ntype = \"libsql\"\nurl = \"{}\"\ntoken = \"\"\n",
                redis.url(0),
                sqld.url()
            ),
        );
        Rig {
            redis,
            _sqld: sqld,
            runtime_config,
            _dir: dir,
        }
    }

    /// The fixture app on the rig, with a state directory of its own.
    fn app(&self) -> (BlockingApp, tempfile::TempDir) {
        let state = tempfile::tempdir().unwrap();
        let app = common::load_with(
            HostOptions::new(common::manifest(), state.path()).runtime_config(&self.runtime_config),
        );
        (app, state)
    }
}

fn write_config(dir: &Path, toml: &str) -> PathBuf {
    let path = dir.join("runtime-config.toml");
    std::fs::write(&path, toml).unwrap();
    path
}

fn note_texts(app: &BlockingApp) -> Vec<String> {
    json(&get(app, "/storage/sql"))
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["text"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn key_value_on_redis_is_shared_by_apps_on_different_state_directories() {
    let rig = Rig::start();
    let (first, first_state) = rig.app();
    let (second, _second_state) = rig.app();

    assert_eq!(
        first
            .send(request("PUT", "/storage/kv/greeting", "hello"))
            .status(),
        204
    );

    assert_eq!(text(&get(&second, "/storage/kv/greeting")), "hello");
    assert!(!first_state.path().join("sqlite_key_value.db").exists());
}

#[test]
fn redis_keys_are_the_bare_keys_whatever_the_store_label() {
    let rig = Rig::start();
    let (app, _state) = rig.app();

    app.send(request("PUT", "/storage/kv/greeting", "hello"));

    let mut redis = std::net::TcpStream::connect(rig.redis.addr()).unwrap();
    redis.write_all(b"GET greeting\r\nQUIT\r\n").unwrap();
    let mut answer = String::new();
    redis.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("$5\r\nhello\r\n"), "{answer:?}");
}

#[test]
fn sqlite_on_libsql_is_shared_by_apps_on_different_state_directories() {
    let rig = Rig::start();
    let (first, first_state) = rig.app();
    let (second, _second_state) = rig.app();

    let created = first.send(request("POST", "/storage/sql", "first note"));

    assert_eq!(created.status(), 201);
    assert_eq!(note_texts(&second), ["first note"]);
    assert!(!first_state.path().join("sqlite_db.db").exists());
}

#[test]
fn libsql_reports_no_last_insert_rowid_and_no_changes_as_in_spin() {
    let rig = Rig::start();
    let (app, _state) = rig.app();

    let created = json(&app.send(request("POST", "/storage/sql", "a note")));

    // Spin runs every statement through libsql 0.5's `Connection::query` (a Hrana cursor),
    // which never updates the counters behind `last_insert_rowid` and `changes`.
    assert_eq!(
        (created["id"].as_i64(), created["changes"].as_i64()),
        (Some(0), Some(0))
    );
}

#[test]
fn a_libsql_transaction_spans_the_statements_of_one_guest_connection() {
    let rig = Rig::start();
    let (app, _state) = rig.app();

    assert_eq!(app.send(request("POST", "/storage/tx", "")).status(), 201);

    assert_eq!(note_texts(&app), ["in transaction 1", "in transaction 2"]);
}

#[test]
fn a_trap_inside_a_libsql_transaction_commits_nothing() {
    let rig = Rig::start();
    let (app, _state) = rig.app();
    app.send(request("POST", "/storage/sql", "before"));

    assert_eq!(
        app.send(request("POST", "/storage/tx?trap", "")).status(),
        500
    );

    assert_eq!(
        app.send(request("POST", "/storage/sql", "after")).status(),
        201
    );
    assert_eq!(note_texts(&app), ["before", "after"]);
}

#[test]
fn an_unreachable_libsql_server_is_an_io_error() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        "[sqlite_database.default]\ntype = \"libsql\"\nurl = \"http://127.0.0.1:9\"\ntoken = \"\"\n",
    );
    let app = common::load_with(
        HostOptions::new(common::manifest(), dir.path().join("state")).runtime_config(&config),
    );

    let response = app.send(request("POST", "/storage/sql", "lost"));

    assert_eq!(response.status(), 500);
    assert!(text(&response).contains("Io("), "{}", text(&response));
}

#[test]
fn the_binary_refuses_a_runtime_config_key_spin_does_not_know() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "[key_value_stores.default]\ntype = \"redis\"\n");

    let output = Command::new(env!("CARGO_BIN_EXE_spin-test-host"))
        .args(["serve", "--listen", "127.0.0.1:0", "--runtime-config-file"])
        .arg(&config)
        .arg("--manifest")
        .arg(common::manifest())
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .output()
        .unwrap();

    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("unused runtime config key(s): key_value_stores"),
        "{stderr}"
    );
}
