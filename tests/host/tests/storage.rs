//! Key-value and SQLite state: persisted under the state directory, across requests and
//! restarts, with Spin's per-connection transaction semantics.

use crate::common;

use common::{get, json, request, text};
use spin_test_host::HostOptions;

#[test]
fn data_written_in_one_request_is_read_in_the_next() {
    let state = tempfile::tempdir().unwrap();
    let app = common::load(state.path());

    assert_eq!(
        app.send(request("PUT", "/storage/kv/greeting", "hello"))
            .status(),
        204
    );
    assert_eq!(
        app.send(request("POST", "/storage/sql", "first note"))
            .status(),
        201
    );

    assert_eq!(text(&get(&app, "/storage/kv/greeting")), "hello");
    assert_eq!(get(&app, "/storage/kv/missing").status(), 404);
    assert_eq!(json(&get(&app, "/storage/sql"))[0]["text"], "first note");
}

#[test]
fn data_survives_a_host_restart() {
    let state = tempfile::tempdir().unwrap();
    {
        let app = common::load(state.path());
        app.send(request("PUT", "/storage/kv/kept", "across restarts"));
        app.send(request("POST", "/storage/sql", "kept note"));
    }

    let restarted = common::load(state.path());

    assert_eq!(
        text(&get(&restarted, "/storage/kv/kept")),
        "across restarts"
    );
    assert_eq!(
        json(&get(&restarted, "/storage/sql"))[0]["text"],
        "kept note"
    );
    assert!(state.path().join("sqlite_key_value.db").is_file());
    assert!(state.path().join("sqlite_db.db").is_file());
}

#[test]
fn sqlite_v3_reports_the_last_insert_rowid_and_changes() {
    let state = tempfile::tempdir().unwrap();
    let app = common::load(state.path());

    let first = json(&app.send(request("POST", "/storage/sql", "a")));
    let second = json(&app.send(request("POST", "/storage/sql", "b")));

    assert_eq!(first["id"], 1);
    assert_eq!(second["id"], 2);
    assert_eq!(second["changes"], 1);
}

#[test]
fn a_committed_transaction_is_visible_to_later_requests() {
    let state = tempfile::tempdir().unwrap();
    let app = common::load(state.path());

    assert_eq!(app.send(request("POST", "/storage/tx", "")).status(), 201);

    let notes = json(&get(&app, "/storage/sql"));
    assert_eq!(notes.as_array().unwrap().len(), 2);
}

#[test]
fn a_trap_inside_a_transaction_rolls_it_back_and_releases_the_database() {
    let state = tempfile::tempdir().unwrap();
    let app = common::load(state.path());
    app.send(request("POST", "/storage/sql", "before"));

    assert_eq!(
        app.send(request("POST", "/storage/tx?trap", "")).status(),
        500
    );

    // The trapped instance's connection is gone: its BEGIN IMMEDIATE holds no lock and its
    // insert is rolled back, so the next writer neither waits nor sees it.
    let started = std::time::Instant::now();
    assert_eq!(
        app.send(request("POST", "/storage/sql", "after")).status(),
        201
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(4),
        "the next writer waited for a lock"
    );
    let texts: Vec<_> = json(&get(&app, "/storage/sql"))
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["text"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(texts, ["before", "after"]);
}

#[test]
fn apps_on_different_state_directories_do_not_share_data() {
    let first_state = tempfile::tempdir().unwrap();
    let second_state = tempfile::tempdir().unwrap();
    let first = common::load(first_state.path());
    let second = common::load_with(HostOptions::new(common::manifest(), second_state.path()));

    first.send(request("PUT", "/storage/kv/only-here", "1"));

    assert_eq!(get(&second, "/storage/kv/only-here").status(), 404);
}
