use super::*;
use crate::error::ErrorKind;
use crate::store::db::testing::TestDb;
use crate::store::db::{Database, Value};
use crate::store::packages::{sha256_hex, store, DigestKind, Package, StoredPackage, CHUNK_SIZE};
use spinling_test_support::{incompressible, zip_of};

fn db() -> TestDb {
    let db = TestDb::in_memory();
    crate::store::migrations::migrate(&db).unwrap();
    db
}

fn archive_of(db: &dyn Database) -> Vec<u8> {
    let mut archive = Vec::new();
    for piece in Export::new().pieces(db) {
        archive.extend(piece.unwrap());
    }
    archive
}

fn import_bytes(db: &dyn Database, archive: &[u8]) -> crate::error::ApiResult<Imported> {
    import(db, &mut std::io::BufReader::new(archive))
}

/// Every row of every exported table, in insertion order, and every package's bytes.
fn everything(db: &dyn Database) -> Vec<String> {
    let mut all = Vec::new();
    for table in TABLES.iter().chain([&PACKAGES]) {
        let order = match table.order {
            Order::Inserted => "rowid".to_string(),
            Order::Key(keys) => keys.join(", "),
        };
        let rows = db
            .execute(
                &format!(
                    "SELECT {} FROM {} ORDER BY {order}",
                    table
                        .columns
                        .iter()
                        .map(|c| format!("\"{c}\""))
                        .collect::<Vec<_>>()
                        .join(", "),
                    table.name
                ),
                &[],
            )
            .unwrap();
        for row in rows.rows {
            all.push(format!("{}: {row:?}", table.name));
        }
    }
    let digests = db
        .execute("SELECT digest FROM packages ORDER BY digest", &[])
        .unwrap();
    for row in digests.iter() {
        let digest = row.text(0);
        let package = StoredPackage::open(db, &digest).unwrap().unwrap();
        let bytes: Vec<u8> = package.pieces(db).flat_map(Result::unwrap).collect();
        all.push(format!("bytes of {digest}: {}", sha256_hex(&bytes)));
    }
    all
}

/// Where `needle` first (or, `last`, last) occurs in `archive`, in bytes.
fn position(archive: &[u8], needle: &str, last: bool) -> usize {
    let mut at = archive
        .windows(needle.len())
        .enumerate()
        .filter(|(_, w)| *w == needle.as_bytes());
    let found = match last {
        true => at.next_back(),
        false => at.next(),
    };
    found
        .unwrap_or_else(|| panic!("no {needle} in the archive"))
        .0
}

fn run(db: &dyn Database, sql: &str, params: &[Value]) {
    db.execute(sql, params).unwrap();
}

/// A database with a bit of everything: two projects, a large package in several chunks and
/// one stored under its SHA-256, versions, an alias with routes and history, executions that
/// were counted, a webhook and a job.
fn populated() -> TestDb {
    let db = db();
    let big = Package::from_upload(
        zip_of(&[("main.wasm", &incompressible(7, CHUNK_SIZE * 2 + 99))]),
        None,
        u64::MAX,
    )
    .unwrap();
    store(&db, &big).unwrap();
    let small = Package::from_upload(zip_of(&[("a.py", b"print(1)")]), None, u64::MAX).unwrap();
    let legacy = Package {
        digest: sha256_hex(&small.bytes),
        digest_kind: DigestKind::Sha256,
        ..small
    };
    store(&db, &legacy).unwrap();
    run(&db, "INSERT INTO runtimes (id, name, image, status, project_id, created_at) VALUES ('r1', 'wasm', 'spinling/wasm', 'available', 'admin', '2026-01-01 00:00:00')", &[]);
    for (id, project, digest) in [("f2", "p2", &legacy.digest), ("f1", "p1", &big.digest)] {
        run(
            &db,
            "INSERT INTO functions (id, name, runtime_id, cpu, memory_size, timeout, code, package_digest, project_id, created_at) VALUES (?, 'fn', 'r1', 100, 33554432, 5, '{\"source\": \"package\"}', ?, ?, '2026-01-01 00:00:01')",
            &[id.into(), digest.as_str().into(), project.into()],
        );
    }
    for n in [1, 2] {
        run(
            &db,
            "INSERT INTO function_versions (id, function_id, version_number, code, package_digest, cpu, memory_size, timeout, project_id, created_at) VALUES (?, 'f1', ?, '{}', ?, 100, 33554432, 5, 'p1', '2026-01-01 00:00:02')",
            &[format!("v{n}").into(), Value::Integer(n), big.digest.as_str().into()],
        );
    }
    for (id, version) in [("e1", 1), ("e2", 0), ("e3", 1)] {
        run(
            &db,
            "INSERT INTO executions (id, function_id, function_version, status, input, result, logs, project_id, created_at) VALUES (?, 'f1', ?, 'success', '{\"name\": \"é\"}', '{\"output\": 1.5}', 'a log\nline', 'p1', '2026-01-01 00:00:03')",
            &[id.into(), Value::Integer(version)],
        );
    }
    run(&db, "INSERT INTO function_aliases (id, name, function_id, function_version, project_id, created_at) VALUES ('a1', 'prod', 'f1', 1, 'p1', '2026-01-01 00:00:04')", &[]);
    run(&db, "INSERT INTO function_alias_routes (alias_id, function_id, function_version, weight) VALUES ('a1', 'f1', 2, '0.1')", &[]);
    run(&db, "INSERT INTO alias_history (id, alias_id, alias_name, project_id, cause, after, created_at) VALUES ('h1', 'a1', 'prod', 'p1', 'create', '{}', '2026-01-01 00:00:04')", &[]);
    run(&db, "INSERT INTO webhooks (id, function_id, function_version, project_id, created_at) VALUES ('w1', 'f1', 2, 'p1', '2026-01-01 00:00:05')", &[]);
    run(&db, "INSERT INTO jobs (id, name, pattern, status, next_execution_time, function_id, function_version, project_id, created_at) VALUES ('j1', 'nightly', '0 3 * * *', 'running', '2026-01-02 03:00:00', 'f1', 1, 'p1', '2026-01-01 00:00:06')", &[]);
    db
}

fn count(db: &dyn Database, table: &str) -> i64 {
    db.execute(&format!("SELECT COUNT(*) FROM {table}"), &[])
        .unwrap()
        .first()
        .unwrap()
        .int(0)
}

#[test]
fn the_tables_exported_are_the_schema_s_tables_with_all_their_columns() {
    let db = db();
    let tables = db
        .execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
            &[],
        )
        .unwrap();
    for row in tables.iter() {
        let name = row.text(0);
        if NOT_EXPORTED.contains(&name.as_str()) {
            continue;
        }
        let table = TABLES
            .iter()
            .chain([&PACKAGES])
            .find(|t| t.name == name)
            .unwrap_or_else(|| panic!("table {name} is neither exported nor left out on purpose"));
        let columns = db
            .execute(
                &format!("SELECT name FROM pragma_table_info('{name}') ORDER BY name"),
                &[],
            )
            .unwrap();
        let mut schema: Vec<String> = columns.iter().map(|r| r.text(0)).collect();
        let mut exported: Vec<String> = table.columns.iter().map(|c| c.to_string()).collect();
        schema.sort();
        exported.sort();
        assert_eq!(exported, schema, "the columns of {name}");
    }
}

#[test]
fn an_archive_imported_into_an_empty_database_holds_the_same_rows_and_bytes() {
    let source = populated();
    let archive = archive_of(&source);
    let target = db();
    let imported = import_bytes(&target, &archive).unwrap();
    assert_eq!(imported.packages, 2);
    assert_eq!(imported.chunks, 4);
    assert_eq!(imported.rows["executions"], 3);
    assert_eq!(everything(&target), everything(&source));
    // The counts the executions made were copied, not counted again.
    let counts = target
        .execute(
            "SELECT count FROM function_versions ORDER BY version_number",
            &[],
        )
        .unwrap();
    assert_eq!(counts.iter().map(|r| r.int(0)).collect::<Vec<_>>(), [2, 0]);
    // And exported again, the same archive but for its time.
    let again = archive_of(&target);
    let body = |a: &[u8]| a[a.iter().position(|b| *b == b'\n').unwrap()..].to_vec();
    assert!(body(&again) == body(&archive));
}

#[test]
fn an_archive_of_an_empty_database_is_a_header_and_an_end() {
    let archive = String::from_utf8(archive_of(&db())).unwrap();
    let lines: Vec<&str> = archive.lines().collect();
    assert_eq!(lines.len(), 2, "{archive}");
    assert!(lines[0].starts_with("{\"created_at\":"), "{archive}");
    assert!(lines[0].contains("\"spinling_backup\":1"), "{archive}");
    assert!(lines[1].starts_with("{\"end\":"), "{archive}");
    import_bytes(&db(), archive.as_bytes()).unwrap();
}

/// Refused with 400 and this in the message, leaving `target` empty.
#[track_caller]
fn assert_refused(target: &TestDb, archive: &[u8], why: &str) {
    let e = import_bytes(target, archive).unwrap_err();
    assert_eq!(e.kind, ErrorKind::BadRequest, "{e}");
    assert!(e.message.starts_with("Invalid backup archive: "), "{e}");
    assert!(e.message.contains(why), "{e}");
    assert!(e.message.ends_with("Nothing was imported."), "{e}");
    for table in TABLES
        .iter()
        .map(|t| t.name)
        .chain(["packages", "package_chunks"])
    {
        assert_eq!(count(target, table), 0, "{table} after: {e}");
    }
}

#[test]
fn a_truncated_archive_is_refused_and_changes_nothing() {
    let archive = archive_of(&populated());
    let target = db();
    let end = archive[..archive.len() - 1]
        .iter()
        .rposition(|b| *b == b'\n')
        .unwrap()
        + 1;
    assert_refused(&target, &archive[..end], "it ends before its end record");
    assert_refused(&target, &archive[..archive.len() / 2], "truncated");
    assert_refused(
        &target,
        &archive[..archive.len() - 3],
        "in the middle of a record",
    );
    assert_refused(&target, b"", "it is empty");
}

#[test]
fn an_altered_archive_is_refused_by_its_end_record() {
    let mut archive = archive_of(&populated());
    let at = position(&archive, "nightly", false);
    archive[at] = b'N';
    let target = db();
    assert_refused(
        &target,
        &archive,
        "does not match the SHA-256 of its end record",
    );
}

/// The archive with the end record's digest made again for what precedes it, as someone
/// who altered it on purpose would.
fn resealed(archive: &[u8]) -> Vec<u8> {
    let end = archive[..archive.len() - 1]
        .iter()
        .rposition(|b| *b == b'\n')
        .unwrap()
        + 1;
    let mut record: serde_json::Value = serde_json::from_slice(&archive[end..]).unwrap();
    record["end"]["sha256"] = sha256_hex(&archive[..end]).into();
    let mut out = archive[..end].to_vec();
    out.extend(serde_json::to_vec(&record).unwrap());
    out.push(b'\n');
    out
}

#[test]
fn a_tampered_package_is_refused_and_changes_nothing() {
    let mut archive = archive_of(&populated());
    // A byte in the middle of the first chunk's bytes.
    let chunk = position(&archive, "{\"chunk\":", false);
    let at = chunk + archive[chunk..].iter().position(|b| *b == b'\n').unwrap() + 1000;
    archive[at] ^= 0xff;
    let target = db();
    assert_refused(
        &target,
        &resealed(&archive),
        "do not match its digest and MD5",
    );
}

#[test]
fn an_archive_missing_a_package_its_versions_use_is_refused() {
    let source = populated();
    let mut archive = archive_of(&source);
    // Cut every package record and its chunks out, and recount.
    let first = position(&archive, "{\"package\":", false);
    let end = position(&archive, "{\"end\":", true);
    archive.drain(first..end);
    let cut = String::from_utf8(archive).unwrap();
    let cut = cut
        .replace("\"chunks\":4", "\"chunks\":0")
        .replace("\"packages\":2", "\"packages\":0");
    assert_refused(&db(), &resealed(cut.as_bytes()), "which it does not hold");
}

#[test]
fn an_archive_of_another_format_or_something_else_is_refused() {
    let target = db();
    assert_refused(&target, b"{\"spinling_backup\":2}\n", "format version 2");
    assert_refused(&target, b"PK\x03\x04 not a backup\n", "not a JSON object");
    assert_refused(
        &target,
        b"{\"hello\":1}\n",
        "does not begin with a Spinling backup header",
    );
    let archive = archive_of(&populated());
    let mut longer = archive.clone();
    longer.extend(b"{}\n");
    assert_refused(&target, &longer, "something follows its end record");
}

#[test]
fn an_import_into_a_database_that_has_functions_is_refused() {
    let archive = archive_of(&populated());
    let target = db();
    run(&target, "INSERT INTO functions (id, cpu, memory_size, timeout, code, project_id, created_at) VALUES ('mine', 1, 1, 1, '{}', 'p', '2026-01-01 00:00:00')", &[]);
    let e = import_bytes(&target, &archive).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Conflict);
    assert_eq!(
        e.message,
        "The database is not empty: it has functions. Import into a new, empty database; \
         nothing was imported."
    );
    assert_eq!(count(&target, "functions"), 1);
    assert_eq!(count(&target, "packages"), 0);
}
