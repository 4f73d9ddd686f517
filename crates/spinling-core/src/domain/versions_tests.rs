use super::*;
use crate::domain::commands::FunctionChanges;
use crate::store::db::testing::TestDb;
use spinling_test_support::zip_of;

fn number(n: i64) -> VersionNumber {
    VersionNumber::new(n).unwrap()
}

fn caller() -> Caller {
    Caller {
        project_id: "p".into(),
        user_id: None,
        is_admin: false,
        policy_enforced: true,
        token: None,
        is_service: false,
    }
}

fn setup(db: &TestDb) -> String {
    crate::testing::package_function(db, &caller(), zip_of(&[("a.wasm", b"one")])).to_string()
}

fn change_code(db: &TestDb, fid: &str, content: &[u8]) {
    let changes = FunctionChanges {
        package: Some(zip_of(&[("a.wasm", content)]).into()),
        ..FunctionChanges::default()
    };
    functions::update(
        db,
        &NoCache,
        &caller(),
        &Rules::default(),
        fid,
        changes,
        None,
    )
    .unwrap();
}

fn publish(db: &TestDb, fid: &str) -> ApiResult<FunctionVersion> {
    publish_version(db, &NoCache, &caller(), &Rules::default(), fid, None, None)
}

#[test]
fn every_write_that_changes_a_function_forgets_its_cached_read() {
    use crate::domain::commands::{ExecutionTarget, NewExecution};
    use crate::store::cache::testing::MemoryCache;
    let db = TestDb::in_memory();
    let cache = MemoryCache::default();
    let fid = setup(&db);
    let shown = || functions::find_cached(&db, &cache, &caller(), &fid).unwrap();
    assert_eq!(shown().latest_version, 0);
    publish_version(&db, &cache, &caller(), &Rules::default(), &fid, None, None).unwrap();
    assert_eq!(shown().latest_version, 1);
    let execution = NewExecution {
        id: None,
        target: ExecutionTarget::Function {
            id: FunctionId::parse(&fid).unwrap(),
            version: VersionRef::Current,
        },
        description: None,
        sync: true,
        input: None,
        routing_key: None,
    };
    crate::domain::executions::create(&db, &cache, &caller(), &execution).unwrap();
    assert_eq!(shown().count, 1);
    let renamed = FunctionChanges {
        name: Some("renamed".into()),
        ..FunctionChanges::default()
    };
    functions::update(
        &db,
        &cache,
        &caller(),
        &Rules::default(),
        &fid,
        renamed,
        None,
    )
    .unwrap();
    assert_eq!(shown().name.as_deref(), Some("renamed"));
    delete(&db, &cache, &caller(), &fid, number(1)).unwrap();
    assert_eq!(shown().latest_version, 0);
    functions::delete(&db, &cache, &caller(), &fid).unwrap();
    let gone = functions::find_cached(&db, &cache, &caller(), &fid).unwrap_err();
    assert_eq!(gone.status(), 404);
}

#[test]
fn every_write_forgets_what_it_changed_in_the_cache() {
    use crate::store::cache::testing::MemoryCache;
    let db = TestDb::in_memory();
    let cache = MemoryCache::default();
    let fid = setup(&db);
    publish(&db, &fid).unwrap();
    let page = crate::store::filters::Page {
        limit: 10,
        marker: None,
    };
    let listed = |cache: &MemoryCache| list(&db, cache, &caller(), &fid, &page).unwrap();
    // A read fills the cache; the next publish must not leave it stale.
    assert_eq!(listed(&cache).items.len(), 1);
    change_code(&db, &fid, b"two");
    publish_version(&db, &cache, &caller(), &Rules::default(), &fid, None, None).unwrap();
    assert_eq!(listed(&cache).items.len(), 2);
    // Showing a version, then deleting it: it is gone from the cache too.
    find(&db, &cache, &caller(), &fid, number(2)).unwrap();
    delete(&db, &cache, &caller(), &fid, number(2)).unwrap();
    assert_eq!(
        find(&db, &cache, &caller(), &fid, number(2))
            .unwrap_err()
            .status(),
        404
    );
    assert_eq!(listed(&cache).items.len(), 1);
    // Detaching forgets the prepared module.
    let prepared = crate::store::cache::prepared_key(&fid, 1);
    cache.set(&prepared, b"module");
    let admin = Caller {
        is_admin: true,
        ..caller()
    };
    detach(&db, &cache, &admin, &fid, VersionRef::Number(number(1))).unwrap();
    assert!(cache.get(&prepared).is_none());
}

#[test]
fn the_first_version_of_a_function_is_one() {
    let db = TestDb::in_memory();
    let fid = setup(&db);
    assert_eq!(publish(&db, &fid).unwrap().version_number, number(1));
}

#[test]
fn unchanged_code_is_not_published_twice() {
    let db = TestDb::in_memory();
    let fid = setup(&db);
    publish(&db, &fid).unwrap();
    let err = publish(&db, &fid).unwrap_err();
    assert_eq!(
        (err.status(), err.message.as_str()),
        (
            403,
            "Function package not changed since the latest version 1."
        )
    );
}

#[test]
fn going_back_to_older_code_is_a_change() {
    let db = TestDb::in_memory();
    let fid = setup(&db);
    publish(&db, &fid).unwrap();
    change_code(&db, &fid, b"two");
    publish(&db, &fid).unwrap();
    change_code(&db, &fid, b"one");
    assert_eq!(publish(&db, &fid).unwrap().version_number, number(3));
}

#[test]
fn a_deleted_newest_number_is_not_given_out_again() {
    let db = TestDb::in_memory();
    let fid = setup(&db);
    publish(&db, &fid).unwrap();
    change_code(&db, &fid, b"two");
    publish(&db, &fid).unwrap();
    delete(&db, &NoCache, &caller(), &fid, number(2)).unwrap();
    assert_eq!(
        functions::find(&db, &caller(), &fid)
            .unwrap()
            .latest_version,
        1
    );
    assert_eq!(publish(&db, &fid).unwrap().version_number, number(3));
}

#[test]
fn the_cap_counts_existing_versions_not_numbers() {
    let db = TestDb::in_memory();
    let fid = setup(&db);
    let rules = Rules {
        max_versions: 1,
        ..Rules::default()
    };
    publish_version(&db, &NoCache, &caller(), &rules, &fid, None, None).unwrap();
    change_code(&db, &fid, b"two");
    let err = publish_version(&db, &NoCache, &caller(), &rules, &fid, None, None).unwrap_err();
    assert_eq!(err.message, "Can not exceed maximum number(1) of versions");
    delete(&db, &NoCache, &caller(), &fid, number(1)).unwrap();
    assert_eq!(
        publish_version(&db, &NoCache, &caller(), &rules, &fid, None, None)
            .unwrap()
            .version_number,
        number(2)
    );
}

fn pruning(max_versions: i64) -> Rules {
    Rules {
        max_versions,
        version_retention: VersionRetention::PruneOldest,
        ..Rules::default()
    }
}

fn numbers(db: &TestDb, fid: &str) -> Vec<i64> {
    db.execute(
        "SELECT version_number FROM function_versions WHERE function_id = ?
         ORDER BY version_number",
        &[fid.into()],
    )
    .unwrap()
    .iter()
    .map(|r| r.int(0))
    .collect()
}

#[test]
fn a_publish_expecting_another_md5_is_refused_and_publishes_nothing() {
    let db = TestDb::in_memory();
    let fid = setup(&db);
    let current = functions::find(&db, &caller(), &fid).unwrap();
    let md5 = current.md5sum().unwrap().to_string();
    let rules = Rules::default();
    let err =
        publish_version(&db, &NoCache, &caller(), &rules, &fid, None, Some("abc")).unwrap_err();
    assert_eq!(
        (err.status(), err.message),
        (
            412,
            format!("Function package changed: expected abc, found {md5}.")
        )
    );
    assert!(numbers(&db, &fid).is_empty());
    let v = publish_version(&db, &NoCache, &caller(), &rules, &fid, None, Some(&md5));
    assert_eq!(v.unwrap().version_number, number(1));
}

#[test]
fn prune_oldest_deletes_the_oldest_unreferenced_version_and_its_bytes() {
    let db = TestDb::in_memory();
    let fid = setup(&db);
    let rules = pruning(2);
    for content in [b"two", b"six"] {
        publish_version(&db, &NoCache, &caller(), &rules, &fid, None, None).unwrap();
        change_code(&db, &fid, content);
    }
    let v = publish_version(&db, &NoCache, &caller(), &rules, &fid, None, None).unwrap();
    assert_eq!(v.version_number, number(3));
    assert_eq!(numbers(&db, &fid), [2, 3]);
    let n = db.execute("SELECT COUNT(*) FROM packages", &[]).unwrap();
    assert_eq!(n.first().unwrap().int(0), 2, "version 1's bytes are freed");
}

#[test]
fn prune_oldest_keeps_aliased_versions_and_refuses_when_all_are() {
    let db = TestDb::in_memory();
    let fid = setup(&db);
    let rules = pruning(2);
    for content in [b"two", b"six"] {
        publish_version(&db, &NoCache, &caller(), &rules, &fid, None, None).unwrap();
        change_code(&db, &fid, content);
    }
    let alias = |name: &str, version: i64| {
        db.execute(
            "INSERT INTO function_aliases (id, name, function_id, function_version,
                 project_id, created_at)
             VALUES (?, ?, ?, ?, 'p', 'now')",
            &[
                name.into(),
                name.into(),
                fid.as_str().into(),
                version.into(),
            ],
        )
        .unwrap();
    };
    alias("one", 1);
    publish_version(&db, &NoCache, &caller(), &rules, &fid, None, None).unwrap();
    assert_eq!(numbers(&db, &fid), [1, 3]);
    alias("three", 3);
    change_code(&db, &fid, b"ten");
    let err = publish_version(&db, &NoCache, &caller(), &rules, &fid, None, None).unwrap_err();
    assert_eq!(err.message, "Can not exceed maximum number(2) of versions");
    assert_eq!(numbers(&db, &fid), [1, 3]);
}

#[test]
fn prune_oldest_keeps_a_version_an_alias_routes_to() {
    let db = TestDb::in_memory();
    let fid = setup(&db);
    let rules = pruning(2);
    for content in [b"two", b"six"] {
        publish_version(&db, &NoCache, &caller(), &rules, &fid, None, None).unwrap();
        change_code(&db, &fid, content);
    }
    db.execute(
        "INSERT INTO function_alias_routes (alias_id, function_id, function_version, weight)
         VALUES ('a', ?, 1, 0.1)",
        &[fid.as_str().into()],
    )
    .unwrap();
    publish_version(&db, &NoCache, &caller(), &rules, &fid, None, None).unwrap();
    assert_eq!(numbers(&db, &fid), [1, 3]);
}

#[test]
fn a_version_keeps_its_settings_when_the_function_changes() {
    let db = TestDb::in_memory();
    let fid = setup(&db);
    publish(&db, &fid).unwrap();
    let changes = FunctionChanges {
        timeout: Some(60),
        ..FunctionChanges::default()
    };
    functions::update(
        &db,
        &NoCache,
        &caller(),
        &Rules::default(),
        &fid,
        changes,
        None,
    )
    .unwrap();
    assert_eq!(
        find(&db, &NoCache, &caller(), &fid, number(1))
            .unwrap()
            .timeout,
        5
    );
    assert_eq!(publish(&db, &fid).unwrap().timeout, 60);
}

#[test]
fn a_version_shares_the_functions_package_bytes() {
    let db = TestDb::in_memory();
    let fid = setup(&db);
    publish(&db, &fid).unwrap();
    let n = db.execute("SELECT COUNT(*) FROM packages", &[]).unwrap();
    assert_eq!(n.first().unwrap().int(0), 1);
    change_code(&db, &fid, b"two");
    let n = db.execute("SELECT COUNT(*) FROM packages", &[]).unwrap();
    assert_eq!(
        n.first().unwrap().int(0),
        2,
        "the version keeps the old bytes alive"
    );
    delete(&db, &NoCache, &caller(), &fid, number(1)).unwrap();
    let n = db.execute("SELECT COUNT(*) FROM packages", &[]).unwrap();
    assert_eq!(n.first().unwrap().int(0), 1, "unreferenced bytes are freed");
}

#[test]
fn another_projects_function_cannot_be_versioned_even_by_an_admin() {
    let db = TestDb::in_memory();
    let fid = setup(&db);
    let admin = Caller {
        project_id: "other".into(),
        user_id: None,
        is_admin: true,
        policy_enforced: true,
        token: None,
        is_service: false,
    };
    let err =
        publish_version(&db, &NoCache, &admin, &Rules::default(), &fid, None, None).unwrap_err();
    assert_eq!(err.status(), 404);
}

#[test]
fn concurrent_publishes_on_one_file_give_exactly_one_version() {
    let dir = std::env::temp_dir().join(format!("spinling-pub-{}", crate::id::new_id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("db.sqlite");
    let fid = setup(&TestDb::open(&path));
    let results: Vec<ApiResult<FunctionVersion>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..16)
            .map(|_| {
                s.spawn(|| {
                    let db = TestDb::open(&path);
                    db.0.busy_timeout(std::time::Duration::from_secs(5))
                        .unwrap();
                    publish(&db, &fid)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
    assert!(results
        .iter()
        .filter_map(|r| r.as_ref().err())
        .all(|e| e.status() == 403));
    let _ = std::fs::remove_dir_all(dir);
}
