//! Function versions: immutable, numbered snapshots of a function's code and the settings it
//! runs with. Numbers start at 1 and are never reused, even after the newest is deleted.

use crate::cache::{read_through, version_key, version_list_key, Cache, NoCache};
use crate::context::{Caller, Settings};
use crate::db::{in_transaction, Database, Row};
use crate::error::{ApiError, ApiResult};
use crate::functions::{self, Function};
use crate::packages;
use crate::time::now_timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value as Json};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionVersion {
    pub id: String,
    pub function_id: String,
    pub version_number: i64,
    pub description: Option<String>,
    pub count: i64,
    pub code: Map<String, Json>,
    pub package_digest: String,
    pub entry: Option<String>,
    pub cpu: i64,
    pub memory_size: i64,
    pub timeout: i64,
    pub project_id: String,
    pub created_at: String,
    pub updated_at: Option<String>,
}

const COLUMNS: &str = "id, function_id, version_number, description, count, code, package_digest,
    entry, cpu, memory_size, timeout, project_id, created_at, updated_at";

impl FunctionVersion {
    fn from_row(r: Row) -> FunctionVersion {
        FunctionVersion {
            id: r.text(0),
            function_id: r.text(1),
            version_number: r.int(2),
            description: r.opt_text(3),
            count: r.int(4),
            code: serde_json::from_str(&r.text(5)).unwrap_or_default(),
            package_digest: r.text(6),
            entry: r.opt_text(7),
            cpu: r.int(8),
            memory_size: r.int(9),
            timeout: r.int(10),
            project_id: r.text(11),
            created_at: r.text(12),
            updated_at: r.opt_text(13),
        }
    }

    pub fn to_json(&self) -> Json {
        json!({
            "id": self.id,
            "description": self.description,
            "function_id": self.function_id,
            "version_number": self.version_number,
            "count": self.count,
            "status": "available",
            "code": self.code,
            "entry": self.entry,
            "cpu": self.cpu,
            "memory_size": self.memory_size,
            "timeout": self.timeout,
            "project_id": self.project_id,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        })
    }

    /// Whether publishing `function` now would snapshot exactly this version again.
    fn same_as(&self, function: &Function) -> bool {
        function.package_digest.as_deref() == Some(self.package_digest.as_str())
            && function.entry == self.entry
            && function.cpu == self.cpu
            && function.memory_size == self.memory_size
            && function.timeout == self.timeout
    }
}

/// A version number from a request path: a positive integer (0, "the function's current
/// code", only where `allow_zero`).
pub fn parse_number(function_id: &str, raw: &str, allow_zero: bool) -> ApiResult<i64> {
    match raw.parse::<i64>() {
        Ok(n) if n > 0 || (allow_zero && n == 0) => Ok(n),
        // A positive integer too large for any version that can exist: unknown, not bad.
        Err(e) if *e.kind() == std::num::IntErrorKind::PosOverflow => {
            Err(not_found(function_id, raw.trim_start_matches('+')))
        }
        _ => Err(ApiError::bad_request(format!(
            "Invalid version number: '{raw}'. A version number is a positive integer."
        ))),
    }
}

/// How often a publish is tried when the function changes under it.
const PUBLISH_TRIES: u32 = 3;

pub fn not_found(function_id: &str, number: impl std::fmt::Display) -> ApiError {
    ApiError::not_found(format!(
        "FunctionVersion not found [function_id={function_id}, version_number={number}]"
    ))
}

fn select(db: &dyn Database, function_id: &str, number: i64) -> ApiResult<Option<FunctionVersion>> {
    Ok(db
        .execute(
            &format!("SELECT {COLUMNS} FROM function_versions WHERE function_id = ? AND version_number = ?"),
            &[function_id.into(), number.into()],
        )?
        .first()
        .map(FunctionVersion::from_row))
}

fn newest(db: &dyn Database, function_id: &str) -> ApiResult<Option<FunctionVersion>> {
    Ok(db
        .execute(
            &format!(
                "SELECT {COLUMNS} FROM function_versions WHERE function_id = ?
                 ORDER BY version_number DESC LIMIT 1"
            ),
            &[function_id.into()],
        )?
        .first()
        .map(FunctionVersion::from_row))
}

/// Publishes the function's current code and settings as its next version: one INSERT that
/// checks every rule against the rows it reads (a write statement holds the write lock from
/// its start, so concurrent publishes of one function are serialised: one wins, the others
/// find nothing changed), and a trigger advances the function's counter. When nothing was
/// inserted, the reads that follow say why.
pub fn publish_version(
    db: &dyn Database,
    caller: &Caller,
    settings: &Settings,
    function_id: &str,
    description: Option<String>,
) -> ApiResult<FunctionVersion> {
    // Another writer may change the function between a refusal and its diagnosis; then the
    // diagnosis finds nothing wrong and the insert is tried again.
    for _ in 0..PUBLISH_TRIES {
        let rows = crate::db::with_short_busy_waits(db, || {
            db.execute(
                &format!(
                    "INSERT INTO function_versions ({COLUMNS})
                 SELECT ?, f.id, f.version_seq + 1, ?, 0, f.code, f.package_digest, f.entry,
                        f.cpu, f.memory_size, f.timeout, f.project_id, ?, NULL
                 FROM functions f
                 WHERE f.id = ? AND f.project_id = ?
                   AND json_extract(f.code, '$.source') = 'package'
                   AND f.package_digest IS NOT NULL
                   AND (SELECT COUNT(*) FROM function_versions c WHERE c.function_id = f.id) < ?
                   AND NOT EXISTS (
                       SELECT 1 FROM function_versions v
                       WHERE v.function_id = f.id
                         AND v.version_number = (SELECT MAX(version_number)
                                                 FROM function_versions
                                                 WHERE function_id = f.id)
                         AND v.package_digest = f.package_digest AND v.entry IS f.entry
                         AND v.cpu = f.cpu AND v.memory_size = f.memory_size
                         AND v.timeout = f.timeout)
                 RETURNING {COLUMNS}"
                ),
                &[
                    crate::id::new_id().into(),
                    description.clone().into(),
                    now_timestamp().into(),
                    function_id.into(),
                    caller.project_id.as_str().into(),
                    settings.max_versions.into(),
                ],
            )
        })?;
        if let Some(row) = rows.first() {
            return Ok(FunctionVersion::from_row(row));
        }
        why_not_published(db, caller, settings, function_id)?;
    }
    Err(ApiError::conflict(
        "The function changed while its version was being published; try again.",
    ))
}

/// The rule that keeps the function's current code from being published, if one does.
fn why_not_published(
    db: &dyn Database,
    caller: &Caller,
    settings: &Settings,
    function_id: &str,
) -> ApiResult<()> {
    let function = functions::find_own(db, caller, function_id)?;
    if function.source() != "package" {
        return Err(ApiError::forbidden(
            "Function versioning only allowed for package type function.",
        ));
    }
    let existing = db
        .execute(
            "SELECT COUNT(*) FROM function_versions WHERE function_id = ?",
            &[function_id.into()],
        )?
        .first()
        .map_or(0, |r| r.int(0));
    if existing >= settings.max_versions {
        return Err(ApiError::forbidden(format!(
            "Can not exceed maximum number({}) of versions",
            settings.max_versions
        )));
    }
    if let Some(latest) = newest(db, function_id)?.filter(|v| v.same_as(&function)) {
        return Err(ApiError::forbidden(format!(
            "Function package not changed since the latest version {}.",
            latest.version_number
        )));
    }
    Ok(())
}

/// The function's project (for visibility) and its versions by number, in one statement.
fn load_list(db: &dyn Database, function_id: &str) -> ApiResult<(String, Vec<FunctionVersion>)> {
    let rows = db.execute(
        &format!(
            "SELECT f.project_id, v.* FROM functions f
             LEFT JOIN (SELECT {COLUMNS} FROM function_versions) v ON v.function_id = f.id
             WHERE f.id = ? ORDER BY v.version_number"
        ),
        &[function_id.into()],
    )?;
    let project = rows
        .first()
        .map(|r| r.text(0))
        .ok_or_else(|| functions::not_found(function_id))?;
    let versions = rows
        .iter()
        .filter(|r| r.opt_text(1).is_some())
        .map(|r| FunctionVersion::from_row(r.skip(1)))
        .collect();
    Ok((project, versions))
}

/// The function's project and its version `number`, in one statement.
fn load(db: &dyn Database, function_id: &str, number: i64) -> ApiResult<(String, FunctionVersion)> {
    let rows = db.execute(
        &format!(
            "SELECT f.project_id, v.* FROM functions f
             LEFT JOIN (SELECT {COLUMNS} FROM function_versions) v
               ON v.function_id = f.id AND v.version_number = ?
             WHERE f.id = ?"
        ),
        &[number.into(), function_id.into()],
    )?;
    // No row: no function; a row without version columns: no such version. Either way,
    // as in Qinling, an unknown version.
    let row = rows
        .first()
        .filter(|r| r.opt_text(1).is_some())
        .ok_or_else(|| not_found(function_id, number))?;
    Ok((row.text(0), FunctionVersion::from_row(row.skip(1))))
}

/// The function's versions by number, if the caller may read the function. A hot read:
/// served from `cache` when it can be.
/// One page of the function's versions, by number; the marker is the last version number
/// seen. The whole list (at most `max_versions` long) is what is cached, so the cache stays
/// right whatever the page.
pub fn list(
    db: &dyn Database,
    cache: &dyn Cache,
    caller: &Caller,
    function_id: &str,
    page: &crate::filters::Page,
) -> ApiResult<crate::filters::Paged<FunctionVersion>> {
    let (project, versions) = read_through(cache, &version_list_key(function_id), || {
        load_list(db, function_id)
    })?;
    if !caller.may_read(&project) {
        return Err(functions::not_found(function_id));
    }
    page.slice(versions, |v: &FunctionVersion| v.version_number.to_string())
}

/// The version, if the caller may read its function. A hot read: served from `cache` when
/// it can be. As in Qinling, which looks the version up directly, an unknown or invisible
/// function is an unknown version.
pub fn find(
    db: &dyn Database,
    cache: &dyn Cache,
    caller: &Caller,
    function_id: &str,
    number: i64,
) -> ApiResult<FunctionVersion> {
    let (project, version) = read_through(cache, &version_key(function_id, number), || {
        load(db, function_id, number)
    })?;
    if !caller.may_read(&project) {
        return Err(not_found(function_id, number));
    }
    Ok(version)
}

pub fn download(
    db: &dyn Database,
    caller: &Caller,
    function_id: &str,
    number: i64,
) -> ApiResult<Vec<u8>> {
    let version = find(db, &NoCache, caller, function_id, number)?;
    packages::load(db, &version.package_digest)?.ok_or_else(|| {
        ApiError::not_found(format!(
            "Package of version {number} function {function_id} for project {} not found.",
            version.project_id
        ))
    })
}

/// Detaching makes runtimes forget what they prepared for the version (the handler drops the
/// cached module); its code and rows stay.
/// Admin only. Version 0 is the function's current code.
pub fn detach(db: &dyn Database, caller: &Caller, function_id: &str, number: i64) -> ApiResult<()> {
    caller.require_admin()?;
    functions::find(db, caller, function_id)?;
    if number > 0 {
        select(db, function_id, number)?.ok_or_else(|| not_found(function_id, number))?;
    }
    Ok(())
}

pub fn delete(db: &dyn Database, caller: &Caller, function_id: &str, number: i64) -> ApiResult<()> {
    in_transaction(db, |tx| {
        functions::find_own(tx, caller, function_id).map_err(|e| match e.status() {
            404 => not_found(function_id, number),
            _ => e,
        })?;
        let version =
            select(tx, function_id, number)?.ok_or_else(|| not_found(function_id, number))?;
        let aliased = tx
            .execute(
                "SELECT 1 FROM function_aliases WHERE function_id = ? AND function_version = ? LIMIT 1",
                &[function_id.into(), number.into()],
            )?
            .first()
            .is_some();
        if aliased {
            return Err(ApiError::forbidden(
                "The function version is still associated with alias.",
            ));
        }
        tx.execute(
            "DELETE FROM function_versions WHERE id = ?",
            &[version.id.as_str().into()],
        )?;
        packages::collect_garbage(tx, &version.package_digest)?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::testing::TestDb;
    use crate::forms::FunctionForm;
    use serde_json::Value as Json;
    use spinling_test_support::zip_of;

    fn caller() -> Caller {
        Caller {
            project_id: "p".into(),
            is_admin: false,
            policy_enforced: true,
            token: None,
        }
    }

    fn setup(db: &TestDb) -> String {
        crate::migrations::migrate(db).unwrap();
        db.execute(
            "INSERT INTO runtimes (id, image, status, project_id, created_at)
             VALUES ('r', 'spinling/wasm', 'available', 'p', 'now')",
            &[],
        )
        .unwrap();
        let form = FunctionForm {
            fields: vec![
                (
                    "code".into(),
                    Json::String(r#"{"source": "package"}"#.into()),
                ),
                ("runtime_id".into(), Json::String("r".into())),
            ],
            package: Some(zip_of(&[("a.wasm", b"one")])),
        };
        functions::create(db, &caller(), &Settings::default(), form)
            .unwrap()
            .id
    }

    fn change_code(db: &TestDb, fid: &str, content: &[u8]) {
        let form = FunctionForm {
            fields: vec![],
            package: Some(zip_of(&[("a.wasm", content)])),
        };
        functions::update(db, &caller(), &Settings::default(), fid, form).unwrap();
    }

    fn publish(db: &TestDb, fid: &str) -> ApiResult<FunctionVersion> {
        publish_version(db, &caller(), &Settings::default(), fid, None)
    }

    #[test]
    fn the_first_version_of_a_function_is_one() {
        let db = TestDb::in_memory();
        let fid = setup(&db);
        assert_eq!(publish(&db, &fid).unwrap().version_number, 1);
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
        assert_eq!(publish(&db, &fid).unwrap().version_number, 3);
    }

    #[test]
    fn a_deleted_newest_number_is_not_given_out_again() {
        let db = TestDb::in_memory();
        let fid = setup(&db);
        publish(&db, &fid).unwrap();
        change_code(&db, &fid, b"two");
        publish(&db, &fid).unwrap();
        delete(&db, &caller(), &fid, 2).unwrap();
        assert_eq!(
            functions::find(&db, &caller(), &fid)
                .unwrap()
                .latest_version,
            1
        );
        assert_eq!(publish(&db, &fid).unwrap().version_number, 3);
    }

    #[test]
    fn the_cap_counts_existing_versions_not_numbers() {
        let db = TestDb::in_memory();
        let fid = setup(&db);
        let settings = Settings {
            max_versions: 1,
            ..Settings::default()
        };
        publish_version(&db, &caller(), &settings, &fid, None).unwrap();
        change_code(&db, &fid, b"two");
        let err = publish_version(&db, &caller(), &settings, &fid, None).unwrap_err();
        assert_eq!(err.message, "Can not exceed maximum number(1) of versions");
        delete(&db, &caller(), &fid, 1).unwrap();
        assert_eq!(
            publish_version(&db, &caller(), &settings, &fid, None)
                .unwrap()
                .version_number,
            2
        );
    }

    #[test]
    fn a_version_keeps_its_settings_when_the_function_changes() {
        let db = TestDb::in_memory();
        let fid = setup(&db);
        publish(&db, &fid).unwrap();
        let form = FunctionForm {
            fields: vec![("timeout".into(), Json::from(60))],
            package: None,
        };
        functions::update(&db, &caller(), &Settings::default(), &fid, form).unwrap();
        assert_eq!(find(&db, &NoCache, &caller(), &fid, 1).unwrap().timeout, 5);
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
        delete(&db, &caller(), &fid, 1).unwrap();
        let n = db.execute("SELECT COUNT(*) FROM packages", &[]).unwrap();
        assert_eq!(n.first().unwrap().int(0), 1, "unreferenced bytes are freed");
    }

    #[test]
    fn another_projects_function_cannot_be_versioned_even_by_an_admin() {
        let db = TestDb::in_memory();
        let fid = setup(&db);
        let admin = Caller {
            project_id: "other".into(),
            is_admin: true,
            policy_enforced: true,
            token: None,
        };
        let err = publish_version(&db, &admin, &Settings::default(), &fid, None).unwrap_err();
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
}
