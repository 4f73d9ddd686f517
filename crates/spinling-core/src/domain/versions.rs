//! Function versions: immutable, numbered snapshots of a function's code and the settings it
//! runs with. Numbers start at 1 and are never reused, even after the newest is deleted.

use crate::domain::context::Caller;
use crate::domain::forgetting::{forget_function_and_versions, forget_prepared};
use crate::domain::functions::{self, Function};
use crate::domain::rules::{Rules, VersionRetention};
use crate::domain::types::{CodeSource, FunctionId, VersionNumber, VersionRef};
use crate::error::{ApiError, ApiResult};
use crate::store::cache::{read_through, version_key, version_list_key, Cache, NoCache};
use crate::store::db::{in_transaction, Database, DbError, Dialect, Row};
use crate::store::packages::{self, StoredPackage};
use crate::time::now_timestamp;
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
fn publish_sql(dialect: Dialect) -> String {
    format!(
        "INSERT INTO function_versions (id, function_id, version_number,
        description, count, code, package_digest, entry, cpu, memory_size, timeout, project_id,
        created_at, updated_at)
     SELECT CAST(? AS TEXT), f.id, f.version_seq + 1, CAST(? AS TEXT), 0, f.code,
            f.package_digest, f.entry, f.cpu, f.memory_size, f.timeout, f.project_id,
            CAST(? AS TEXT), NULL
     FROM functions f
     WHERE f.id = ? AND f.project_id = ?
       AND {source} = 'package'
       AND f.package_digest IS NOT NULL
       AND (CAST(? AS TEXT) IS NULL OR {md5sum} IS NOT DISTINCT FROM ?)
       AND (SELECT COUNT(*) FROM function_versions c WHERE c.function_id = f.id) < ?
       AND NOT EXISTS (
           SELECT 1 FROM function_versions v
           WHERE v.function_id = f.id
             AND v.version_number = (SELECT MAX(version_number)
                                     FROM function_versions
                                     WHERE function_id = f.id)
             AND v.package_digest = f.package_digest AND v.entry IS NOT DISTINCT FROM f.entry
             AND v.cpu = f.cpu AND v.memory_size = f.memory_size
             AND v.timeout = f.timeout)
     RETURNING id, function_id, version_number, description, count, code, package_digest,
        entry, cpu, memory_size, timeout, project_id, created_at, updated_at",
        source = dialect.json_text("f.code", "source"),
        md5sum = dialect.json_text("f.code", "md5sum"),
    )
}

/// What a publish asks for.
struct Publish<'a> {
    caller: &'a Caller,
    rules: &'a Rules,
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
            &publish_sql(db.dialect()),
            &[
                crate::id::new_id().into(),
                self.description.clone().into(),
                now_timestamp().into(),
                self.function_id.into(),
                self.caller.project_id.as_str().into(),
                expected.clone().into(),
                expected.into(),
                self.rules.max_versions.into(),
            ],
        )?;
        Ok(rows.first().map(FunctionVersion::from_row))
    }
}

/// Publishes the function's current code and settings as its next version: one INSERT that
/// checks every rule against the rows it reads (on SQLite a write statement holds the write
/// lock from its start, so concurrent publishes of one function are serialised: one wins, the
/// others find nothing changed; on PostgreSQL the losers meet the winner's number in the
/// unique index and try again), and a trigger advances the function's counter. When nothing was
/// inserted, the reads that follow say why. `expected_md5`: the md5 the function's package
/// must have (412 otherwise). At the cap with retention `prune_oldest`, the oldest version
/// nothing references is deleted and the version inserted in one transaction.
pub fn publish_version(
    db: &dyn Database,
    cache: &dyn Cache,
    caller: &Caller,
    rules: &Rules,
    function_id: &str,
    description: Option<String>,
    expected_md5: Option<&str>,
) -> ApiResult<FunctionVersion> {
    let publish = Publish {
        caller,
        rules,
        function_id,
        description,
        expected_md5,
    };
    // Another writer may change the function between a refusal and its diagnosis; then the
    // diagnosis finds nothing wrong and the insert is tried again.
    for _ in 0..PUBLISH_TRIES {
        match crate::store::db::with_short_busy_waits(db, || publish.insert(db)) {
            Ok(Some(version)) => {
                forget_function_and_versions(cache, function_id, &[]);
                return Ok(version);
            }
            Ok(None) => {}
            // PostgreSQL runs concurrent publishes of one function side by side (SQLite's
            // write lock serialises them): the one that lost found the number taken when the
            // winner committed. The next try reads the winner's version, as a later publish
            // on SQLite would.
            Err(e) if e.unique_columns().is_some() => continue,
            Err(e) => return Err(e.into()),
        }
        if why_not_published(db, &publish)? == Blocked::AtCap {
            let (version, pruned) = prune_and_publish(db, &publish)?;
            let pruned: Vec<VersionRef> = pruned.into_iter().map(VersionRef::Number).collect();
            forget_function_and_versions(cache, function_id, &pruned);
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

fn cap_reached(rules: &Rules) -> ApiError {
    ApiError::forbidden(format!(
        "Can not exceed maximum number({}) of versions",
        rules.max_versions
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
    let prune = publish.rules.version_retention == VersionRetention::PruneOldest;
    let at_cap = count_versions(db, publish.function_id)? >= publish.rules.max_versions;
    if at_cap && !prune {
        return Err(cap_reached(publish.rules));
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
            let excess = count_versions(tx, publish.function_id)? - publish.rules.max_versions + 1;
            let victims = prunable(tx, publish.function_id, excess)?;
            if (victims.len() as i64) < excess {
                return Err(cap_reached(publish.rules));
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

/// A version in a list, as the wire shows it: rendered once, when the list is read from the
/// database, so a list served from the cache is sent without decoding and encoding every
/// version again.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ListedVersion {
    pub number: VersionNumber,
    pub json: Box<serde_json::value::RawValue>,
}

impl From<FunctionVersion> for ListedVersion {
    fn from(version: FunctionVersion) -> Self {
        ListedVersion {
            number: version.version_number,
            json: serde_json::value::to_raw_value(&version.to_json())
                .expect("JSON values serialise"),
        }
    }
}

/// The function's project (for visibility) and its versions by number, in one statement.
fn load_list(db: &dyn Database, function_id: &str) -> ApiResult<(String, Vec<ListedVersion>)> {
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
        .map(|r| FunctionVersion::from_row(r).into())
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
    page: &crate::store::filters::Page,
) -> ApiResult<crate::store::filters::Paged<ListedVersion>> {
    let (project, versions) =
        read_through(cache, function_id, &version_list_key(function_id), || {
            load_list(db, function_id)
        })?;
    if !caller.may_read(&project) {
        return Err(functions::not_found(function_id));
    }
    page.slice(versions, |v: &ListedVersion| v.number.to_string())
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
        crate::domain::references::refuse_if_jobs_use_version(tx, function_id, number)?;
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
        if crate::domain::references::alias_or_rollout_uses_version(tx, function_id, number)? {
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
    forget_function_and_versions(cache, function_id, &[VersionRef::Number(number)]);
    Ok(())
}

#[cfg(test)]
#[path = "versions_tests.rs"]
mod tests;
