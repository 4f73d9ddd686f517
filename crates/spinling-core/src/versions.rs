//! Function versions: immutable, numbered snapshots of a function's code and the settings it
//! runs with. Numbers start at 1 and are never reused, even after the newest is deleted.

use crate::cache::{
    forget_function, forget_prepared, forget_version_resources, forget_versions, read_through,
    version_key, version_list_key, Cache, NoCache,
};
use crate::config::{Settings, VersionRetention};
use crate::context::Caller;
use crate::db::{in_transaction, Database, DbError, Row};
use crate::error::{ApiError, ApiResult};
use crate::functions::{self, Function};
use crate::packages::{self, StoredPackage};
use crate::time::now_timestamp;
use crate::types::{CodeSource, FunctionId, VersionNumber, VersionRef};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value as Json};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionVersion {
    pub id: String,
    pub function_id: FunctionId,
    pub version_number: VersionNumber,
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
            id: r.text("id"),
            function_id: FunctionId::from_stored(r.text("function_id")),
            version_number: VersionNumber::new(r.int("version_number"))
                .expect("stored version numbers are positive (version_seq + 1)"),
            description: r.opt_text("description"),
            count: r.int("count"),
            code: serde_json::from_str(&r.text("code")).unwrap_or_default(),
            package_digest: r.text("package_digest"),
            entry: r.opt_text("entry"),
            cpu: r.int("cpu"),
            memory_size: r.int("memory_size"),
            timeout: r.int("timeout"),
            project_id: r.text("project_id"),
            created_at: r.text("created_at"),
            updated_at: r.opt_text("updated_at"),
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

/// How often a publish is tried when the function changes under it.
const PUBLISH_TRIES: u32 = 3;

pub fn not_found(function_id: &str, number: impl std::fmt::Display) -> ApiError {
    ApiError::not_found(format!(
        "FunctionVersion not found [function_id={function_id}, version_number={number}]"
    ))
}

fn select(
    db: &dyn Database,
    function_id: &str,
    number: VersionNumber,
) -> ApiResult<Option<FunctionVersion>> {
    Ok(db
        .execute(
            &format!("SELECT {COLUMNS} FROM function_versions WHERE function_id = ? AND version_number = ?"),
            &[function_id.into(), number.get().into()],
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

/// The publish: one INSERT that checks every rule against the rows it reads. Parameters: the
/// new id, description, created_at, the function's id and project, the md5 the client expects
/// (twice; NULL: any), the cap.
const PUBLISH: &str = "INSERT INTO function_versions (id, function_id, version_number,
        description, count, code, package_digest, entry, cpu, memory_size, timeout, project_id,
        created_at, updated_at)
     SELECT ?, f.id, f.version_seq + 1, ?, 0, f.code, f.package_digest, f.entry,
            f.cpu, f.memory_size, f.timeout, f.project_id, ?, NULL
     FROM functions f
     WHERE f.id = ? AND f.project_id = ?
       AND json_extract(f.code, '$.source') = 'package'
       AND f.package_digest IS NOT NULL
       AND (? IS NULL OR json_extract(f.code, '$.md5sum') IS ?)
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
     RETURNING id, function_id, version_number, description, count, code, package_digest,
        entry, cpu, memory_size, timeout, project_id, created_at, updated_at";

/// What a publish asks for.
struct Publish<'a> {
    caller: &'a Caller,
    settings: &'a Settings,
    function_id: &'a str,
    description: Option<String>,
    /// The md5 the function's current package must have (Lambda's CodeSha256 check).
    expected_md5: Option<&'a str>,
}

impl Publish<'_> {
    /// Runs the publish statement: the new version, or nothing when a rule refused it.
    fn insert(&self, db: &dyn Database) -> Result<Option<FunctionVersion>, DbError> {
        let expected = self.expected_md5.map(str::to_owned);
        let rows = db.execute(
            PUBLISH,
            &[
                crate::id::new_id().into(),
                self.description.clone().into(),
                now_timestamp().into(),
                self.function_id.into(),
                self.caller.project_id.as_str().into(),
                expected.clone().into(),
                expected.into(),
                self.settings.max_versions.into(),
            ],
        )?;
        Ok(rows.first().map(FunctionVersion::from_row))
    }
}

/// Publishes the function's current code and settings as its next version: one INSERT that
/// checks every rule against the rows it reads (a write statement holds the write lock from
/// its start, so concurrent publishes of one function are serialised: one wins, the others
/// find nothing changed), and a trigger advances the function's counter. When nothing was
/// inserted, the reads that follow say why. `expected_md5`: the md5 the function's package
/// must have (412 otherwise). At the cap with retention `prune_oldest`, the oldest version
/// nothing references is deleted and the version inserted in one transaction.
pub fn publish_version(
    db: &dyn Database,
    cache: &dyn Cache,
    caller: &Caller,
    settings: &Settings,
    function_id: &str,
    description: Option<String>,
    expected_md5: Option<&str>,
) -> ApiResult<FunctionVersion> {
    let publish = Publish {
        caller,
        settings,
        function_id,
        description,
        expected_md5,
    };
    // Another writer may change the function between a refusal and its diagnosis; then the
    // diagnosis finds nothing wrong and the insert is tried again.
    for _ in 0..PUBLISH_TRIES {
        if let Some(version) = crate::db::with_short_busy_waits(db, || publish.insert(db))? {
            forget_version_resources(cache, function_id, &[]);
            forget_function(cache, function_id);
            return Ok(version);
        }
        if why_not_published(db, &publish)? == Blocked::AtCap {
            let (version, pruned) = prune_and_publish(db, &publish)?;
            let pruned: Vec<VersionRef> = pruned.into_iter().map(VersionRef::Number).collect();
            forget_versions(cache, function_id, &pruned);
            forget_function(cache, function_id);
            return Ok(version);
        }
    }
    Err(ApiError::conflict(
        "The function changed while its version was being published; try again.",
    ))
}

/// Why a publish inserted nothing, when no error says it.
#[derive(Debug, PartialEq, Eq)]
enum Blocked {
    /// Nothing now: the function changed since the refusal; try again.
    Nothing,
    /// The function has `max_versions` versions and retention `prune_oldest` may make room.
    AtCap,
}

fn cap_reached(settings: &Settings) -> ApiError {
    ApiError::forbidden(format!(
        "Can not exceed maximum number({}) of versions",
        settings.max_versions
    ))
}

fn count_versions(db: &dyn Database, function_id: &str) -> ApiResult<i64> {
    Ok(db
        .execute(
            "SELECT COUNT(*) AS n FROM function_versions WHERE function_id = ?",
            &[function_id.into()],
        )?
        .first()
        .map_or(0, |r| r.int("n")))
}

/// The rule that keeps the function's current code from being published, if one does: as an
/// error, or [`Blocked::AtCap`] when retention `prune_oldest` may make room. Qinling's order
/// (source, cap, unchanged), the client's md5 first; with `prune_oldest`, the cap last (a
/// publish that would be refused anyway prunes nothing).
fn why_not_published(db: &dyn Database, publish: &Publish) -> ApiResult<Blocked> {
    let function = functions::find_own(db, publish.caller, publish.function_id)?;
    if function.source() != Some(CodeSource::Package) {
        return Err(ApiError::forbidden(
            "Function versioning only allowed for package type function.",
        ));
    }
    if let Some(expected) = publish.expected_md5 {
        let found = function.md5sum().unwrap_or_default();
        if found != expected {
            return Err(ApiError::precondition_failed(format!(
                "Function package changed: expected {expected}, found {found}."
            )));
        }
    }
    let prune = publish.settings.version_retention == VersionRetention::PruneOldest;
    let at_cap = count_versions(db, publish.function_id)? >= publish.settings.max_versions;
    if at_cap && !prune {
        return Err(cap_reached(publish.settings));
    }
    if let Some(latest) = newest(db, publish.function_id)?.filter(|v| v.same_as(&function)) {
        return Err(ApiError::forbidden(format!(
            "Function package not changed since the latest version {}.",
            latest.version_number
        )));
    }
    Ok(if at_cap {
        Blocked::AtCap
    } else {
        Blocked::Nothing
    })
}

/// Retention `prune_oldest` at the cap, in one transaction: the rules are judged again under
/// the write lock, the oldest versions nothing references are deleted (as many as make room;
/// their packages collected when nothing else holds them) and the version is inserted. When
/// too few can go, the cap's 403 stands and nothing changes. Returns the new version and the
/// numbers pruned (never given out again: the function's counter only grows).
fn prune_and_publish(
    db: &dyn Database,
    publish: &Publish,
) -> ApiResult<(FunctionVersion, Vec<VersionNumber>)> {
    in_transaction(db, |tx| {
        let mut pruned = Vec::new();
        if why_not_published(tx, publish)? == Blocked::AtCap {
            let excess =
                count_versions(tx, publish.function_id)? - publish.settings.max_versions + 1;
            let victims = prunable(tx, publish.function_id, excess)?;
            if (victims.len() as i64) < excess {
                return Err(cap_reached(publish.settings));
            }
            for (number, id, _) in &victims {
                tx.execute(
                    "DELETE FROM function_versions WHERE id = ?",
                    &[id.as_str().into()],
                )?;
                pruned.push(*number);
            }
            let version = publish.insert(tx)?;
            for (_, _, digest) in &victims {
                packages::collect_garbage(tx, digest)?;
            }
            return version.map(|v| (v, pruned)).ok_or_else(changed_meanwhile);
        }
        publish
            .insert(tx)?
            .map(|v| (v, pruned))
            .ok_or_else(changed_meanwhile)
    })
}

fn changed_meanwhile() -> ApiError {
    ApiError::conflict("The function changed while its version was being published; try again.")
}

/// The function's `limit` oldest versions that nothing references: no alias (as its version
/// or in its routing, table `function_alias_routes` of migration 0008), no webhook, no running
/// or paused job. (number, id, package digest).
fn prunable(
    db: &dyn Database,
    function_id: &str,
    limit: i64,
) -> ApiResult<Vec<(VersionNumber, String, String)>> {
    let rows = db.execute(
        "SELECT v.version_number, v.id, v.package_digest FROM function_versions v
             WHERE v.function_id = ?
               AND NOT EXISTS (SELECT 1 FROM function_aliases a
                   WHERE a.function_id = v.function_id AND a.function_version = v.version_number)
               AND NOT EXISTS (SELECT 1 FROM webhooks w
                   WHERE w.function_id = v.function_id AND w.function_version = v.version_number)
               AND NOT EXISTS (SELECT 1 FROM jobs j
                   WHERE j.function_id = v.function_id AND j.function_version = v.version_number
                     AND j.status IN ('running', 'paused'))
               AND NOT EXISTS (SELECT 1 FROM function_alias_routes r
                   WHERE r.function_id = v.function_id AND r.function_version = v.version_number)
             ORDER BY v.version_number LIMIT ?",
        &[function_id.into(), limit.into()],
    )?;
    Ok(rows
        .iter()
        .filter_map(|r| {
            VersionNumber::new(r.int("version_number"))
                .map(|n| (n, r.text("id"), r.text("package_digest")))
        })
        .collect())
}

/// The function's project (for visibility) and its versions by number, in one statement.
fn load_list(db: &dyn Database, function_id: &str) -> ApiResult<(String, Vec<FunctionVersion>)> {
    let rows = db.execute(
        &format!(
            "SELECT f.project_id AS function_project_id, v.* FROM functions f
             LEFT JOIN (SELECT {COLUMNS} FROM function_versions) v ON v.function_id = f.id
             WHERE f.id = ? ORDER BY v.version_number"
        ),
        &[function_id.into()],
    )?;
    let project = rows
        .first()
        .map(|r| r.text("function_project_id"))
        .ok_or_else(|| functions::not_found(function_id))?;
    let versions = rows
        .iter()
        .filter(|r| r.opt_text("id").is_some())
        .map(FunctionVersion::from_row)
        .collect();
    Ok((project, versions))
}

/// The function's project and its version `number`, in one statement.
fn load(
    db: &dyn Database,
    function_id: &str,
    number: VersionNumber,
) -> ApiResult<(String, FunctionVersion)> {
    let rows = db.execute(
        &format!(
            "SELECT f.project_id AS function_project_id, v.* FROM functions f
             LEFT JOIN (SELECT {COLUMNS} FROM function_versions) v
               ON v.function_id = f.id AND v.version_number = ?
             WHERE f.id = ?"
        ),
        &[number.get().into(), function_id.into()],
    )?;
    // No row: no function; a row without version columns: no such version. Either way,
    // as in Qinling, an unknown version.
    let row = rows
        .first()
        .filter(|r| r.opt_text("id").is_some())
        .ok_or_else(|| not_found(function_id, number))?;
    Ok((
        row.text("function_project_id"),
        FunctionVersion::from_row(row),
    ))
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
    let (project, versions) =
        read_through(cache, function_id, &version_list_key(function_id), || {
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
    number: VersionNumber,
) -> ApiResult<FunctionVersion> {
    let (project, version) = read_through(
        cache,
        function_id,
        &version_key(function_id, number.get()),
        || load(db, function_id, number),
    )?;
    if !caller.may_read(&project) {
        return Err(not_found(function_id, number));
    }
    Ok(version)
}

/// A version's package as a download: its entity tag (the quoted digest: the bytes never
/// change) and the stored package, unless the client holds its bytes already.
pub struct VersionPackage {
    pub etag: String,
    pub package: Option<StoredPackage>,
}

/// The version's package; its bytes are not read when `held(etag)` says the client has them.
pub fn download(
    db: &dyn Database,
    caller: &Caller,
    function_id: &str,
    number: VersionNumber,
    held: impl FnOnce(&str) -> bool,
) -> ApiResult<VersionPackage> {
    let version = find(db, &NoCache, &caller.package_reader(), function_id, number)?;
    let etag = format!("\"{}\"", version.package_digest);
    if held(&etag) {
        return Ok(VersionPackage {
            etag,
            package: None,
        });
    }
    let package = StoredPackage::open(db, &version.package_digest)?.ok_or_else(|| {
        ApiError::not_found(format!(
            "Package of version {number} function {function_id} for project {} not found.",
            version.project_id
        ))
    })?;
    Ok(VersionPackage {
        etag,
        package: Some(package),
    })
}

/// Detaching makes runtimes forget what they prepared for the version (the cached module is
/// dropped); its code and rows stay.
/// Admin only.
pub fn detach(
    db: &dyn Database,
    cache: &dyn Cache,
    caller: &Caller,
    function_id: &str,
    version: VersionRef,
) -> ApiResult<()> {
    caller.require_admin()?;
    functions::find(db, caller, function_id)?;
    if let VersionRef::Number(n) = version {
        select(db, function_id, n)?.ok_or_else(|| not_found(function_id, n))?;
    }
    forget_prepared(cache, function_id, version);
    Ok(())
}

pub fn delete(
    db: &dyn Database,
    cache: &dyn Cache,
    caller: &Caller,
    function_id: &str,
    number: VersionNumber,
) -> ApiResult<()> {
    in_transaction(db, |tx| -> ApiResult<()> {
        functions::find_own(tx, caller, function_id).map_err(|e| match e.status() {
            404 => not_found(function_id, number),
            _ => e,
        })?;
        let version =
            select(tx, function_id, number)?.ok_or_else(|| not_found(function_id, number))?;
        crate::jobs::refuse_if_jobs_use_version(tx, function_id, number)?;
        let hooked = tx
            .execute(
                "SELECT 1 FROM webhooks WHERE function_id = ? AND function_version = ? LIMIT 1",
                &[function_id.into(), number.get().into()],
            )?
            .first()
            .is_some();
        if hooked {
            return Err(ApiError::forbidden(
                "The function version is still associated with webhook.",
            ));
        }
        // As an alias's own version or in its routing.
        if crate::aliases::uses_version(tx, function_id, number)? {
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
    })?;
    forget_versions(cache, function_id, &[VersionRef::Number(number)]);
    forget_function(cache, function_id);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::FunctionChanges;
    use crate::db::testing::TestDb;
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
            &Settings::default(),
            fid,
            changes,
            None,
        )
        .unwrap();
    }

    fn publish(db: &TestDb, fid: &str) -> ApiResult<FunctionVersion> {
        publish_version(
            db,
            &NoCache,
            &caller(),
            &Settings::default(),
            fid,
            None,
            None,
        )
    }

    #[test]
    fn every_write_that_changes_a_function_forgets_its_cached_read() {
        use crate::cache::testing::MemoryCache;
        use crate::commands::{ExecutionTarget, NewExecution};
        let db = TestDb::in_memory();
        let cache = MemoryCache::default();
        let fid = setup(&db);
        let shown = || functions::find_cached(&db, &cache, &caller(), &fid).unwrap();
        assert_eq!(shown().latest_version, 0);
        publish_version(
            &db,
            &cache,
            &caller(),
            &Settings::default(),
            &fid,
            None,
            None,
        )
        .unwrap();
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
        crate::executions::create(&db, &cache, &caller(), &execution).unwrap();
        assert_eq!(shown().count, 1);
        let renamed = FunctionChanges {
            name: Some("renamed".into()),
            ..FunctionChanges::default()
        };
        functions::update(
            &db,
            &cache,
            &caller(),
            &Settings::default(),
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
        use crate::cache::testing::MemoryCache;
        let db = TestDb::in_memory();
        let cache = MemoryCache::default();
        let fid = setup(&db);
        publish(&db, &fid).unwrap();
        let page = crate::filters::Page {
            limit: 10,
            marker: None,
        };
        let listed = |cache: &MemoryCache| list(&db, cache, &caller(), &fid, &page).unwrap();
        // A read fills the cache; the next publish must not leave it stale.
        assert_eq!(listed(&cache).items.len(), 1);
        change_code(&db, &fid, b"two");
        publish_version(
            &db,
            &cache,
            &caller(),
            &Settings::default(),
            &fid,
            None,
            None,
        )
        .unwrap();
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
        let prepared = crate::cache::prepared_key(&fid, 1);
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
        let settings = Settings {
            max_versions: 1,
            ..Settings::default()
        };
        publish_version(&db, &NoCache, &caller(), &settings, &fid, None, None).unwrap();
        change_code(&db, &fid, b"two");
        let err =
            publish_version(&db, &NoCache, &caller(), &settings, &fid, None, None).unwrap_err();
        assert_eq!(err.message, "Can not exceed maximum number(1) of versions");
        delete(&db, &NoCache, &caller(), &fid, number(1)).unwrap();
        assert_eq!(
            publish_version(&db, &NoCache, &caller(), &settings, &fid, None, None)
                .unwrap()
                .version_number,
            number(2)
        );
    }

    fn pruning(max_versions: i64) -> Settings {
        Settings {
            max_versions,
            version_retention: VersionRetention::PruneOldest,
            ..Settings::default()
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
        let settings = Settings::default();
        let err = publish_version(&db, &NoCache, &caller(), &settings, &fid, None, Some("abc"))
            .unwrap_err();
        assert_eq!(
            (err.status(), err.message),
            (
                412,
                format!("Function package changed: expected abc, found {md5}.")
            )
        );
        assert!(numbers(&db, &fid).is_empty());
        let v = publish_version(&db, &NoCache, &caller(), &settings, &fid, None, Some(&md5));
        assert_eq!(v.unwrap().version_number, number(1));
    }

    #[test]
    fn prune_oldest_deletes_the_oldest_unreferenced_version_and_its_bytes() {
        let db = TestDb::in_memory();
        let fid = setup(&db);
        let settings = pruning(2);
        for content in [b"two", b"six"] {
            publish_version(&db, &NoCache, &caller(), &settings, &fid, None, None).unwrap();
            change_code(&db, &fid, content);
        }
        let v = publish_version(&db, &NoCache, &caller(), &settings, &fid, None, None).unwrap();
        assert_eq!(v.version_number, number(3));
        assert_eq!(numbers(&db, &fid), [2, 3]);
        let n = db.execute("SELECT COUNT(*) FROM packages", &[]).unwrap();
        assert_eq!(n.first().unwrap().int(0), 2, "version 1's bytes are freed");
    }

    #[test]
    fn prune_oldest_keeps_aliased_versions_and_refuses_when_all_are() {
        let db = TestDb::in_memory();
        let fid = setup(&db);
        let settings = pruning(2);
        for content in [b"two", b"six"] {
            publish_version(&db, &NoCache, &caller(), &settings, &fid, None, None).unwrap();
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
        publish_version(&db, &NoCache, &caller(), &settings, &fid, None, None).unwrap();
        assert_eq!(numbers(&db, &fid), [1, 3]);
        alias("three", 3);
        change_code(&db, &fid, b"ten");
        let err =
            publish_version(&db, &NoCache, &caller(), &settings, &fid, None, None).unwrap_err();
        assert_eq!(err.message, "Can not exceed maximum number(2) of versions");
        assert_eq!(numbers(&db, &fid), [1, 3]);
    }

    #[test]
    fn prune_oldest_keeps_a_version_an_alias_routes_to() {
        let db = TestDb::in_memory();
        let fid = setup(&db);
        let settings = pruning(2);
        for content in [b"two", b"six"] {
            publish_version(&db, &NoCache, &caller(), &settings, &fid, None, None).unwrap();
            change_code(&db, &fid, content);
        }
        db.execute(
            "INSERT INTO function_alias_routes (alias_id, function_id, function_version, weight)
             VALUES ('a', ?, 1, 0.1)",
            &[fid.as_str().into()],
        )
        .unwrap();
        publish_version(&db, &NoCache, &caller(), &settings, &fid, None, None).unwrap();
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
            &Settings::default(),
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
        let err = publish_version(
            &db,
            &NoCache,
            &admin,
            &Settings::default(),
            &fid,
            None,
            None,
        )
        .unwrap_err();
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
