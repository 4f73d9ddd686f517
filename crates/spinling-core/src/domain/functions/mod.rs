//! Functions: the current code ("version 0") and the settings it runs with.

use crate::domain::commands::{FunctionChanges, NewFunction};
use crate::domain::context::{Caller, ListScope};
use crate::domain::forgetting::{forget_function, forget_function_and_versions};
use crate::domain::rules::Rules;
use crate::domain::runtimes;
use crate::domain::types::{CodeSource, FunctionId, VersionRef};
use crate::error::{ApiError, ApiResult, ErrorKind};
use crate::store::cache::{function_key, read_through, Cache};
use crate::store::db::{in_transaction, Database, Row};
use crate::store::packages::{self, Package, StoredPackage};
use crate::time::now_timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value as Json};

mod code;
mod limits;

use code::{check_swift, missing_package};
pub use code::{claimed_md5, source_of};
pub use limits::{Limit, CPU, DEFAULT_ENTRY, MAX_ENTRY, MEMORY, TIMEOUT};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Function {
    pub id: FunctionId,
    pub name: Option<String>,
    pub description: Option<String>,
    pub runtime_id: Option<String>,
    pub cpu: i64,
    pub memory_size: i64,
    pub timeout: i64,
    pub code: Map<String, Json>,
    pub entry: Option<String>,
    pub count: i64,
    /// The newest existing version (0 when there is none).
    pub latest_version: i64,
    /// The highest version number ever given out.
    pub version_seq: i64,
    pub package_digest: Option<String>,
    pub project_id: String,
    pub created_at: String,
    pub updated_at: Option<String>,
}

const COLUMNS: &str = "id, name, description, runtime_id, cpu, memory_size, timeout, code, entry, count,
    (SELECT COALESCE(MAX(v.version_number), 0) FROM function_versions v WHERE v.function_id = functions.id)
        AS latest_version,
    version_seq, package_digest, project_id, created_at, updated_at";

impl Function {
    fn from_row(r: Row) -> Function {
        Function {
            id: FunctionId::from_stored(r.text("id")),
            name: r.opt_text("name"),
            description: r.opt_text("description"),
            runtime_id: r.opt_text("runtime_id"),
            cpu: r.int("cpu"),
            memory_size: r.int("memory_size"),
            timeout: r.int("timeout"),
            code: serde_json::from_str(&r.text("code")).unwrap_or_default(),
            entry: r.opt_text("entry"),
            count: r.int("count"),
            latest_version: r.int("latest_version"),
            version_seq: r.int("version_seq"),
            package_digest: r.opt_text("package_digest"),
            project_id: r.text("project_id"),
            created_at: r.text("created_at"),
            updated_at: r.opt_text("updated_at"),
        }
    }

    /// Where the function's code comes from (always known for a stored function).
    pub fn source(&self) -> Option<CodeSource> {
        self.code
            .get("source")
            .and_then(Json::as_str)
            .and_then(CodeSource::parse)
    }

    pub fn md5sum(&self) -> Option<&str> {
        self.code.get("md5sum").and_then(Json::as_str)
    }

    /// The function's entity tag (quoted, strong): a hash of everything an update can change
    /// (its code object carries the package's md5) and of when it was created and last
    /// updated. Two states differ in some hashed field, so they never share a tag, even two
    /// updates within one second (`updated_at`'s resolution).
    pub fn etag(&self) -> String {
        let state = json!([
            self.id,
            self.name,
            self.description,
            self.runtime_id,
            self.cpu,
            self.memory_size,
            self.timeout,
            Json::Object(self.code.clone()),
            self.entry,
            self.package_digest,
            self.created_at,
            self.updated_at,
        ]);
        let hash = packages::sha256_hex(state.to_string().as_bytes());
        format!("\"{}\"", &hash[..32])
    }

    fn to_json_with_code(&self, code: Json) -> Json {
        json!({
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "cpu": self.cpu,
            "memory_size": self.memory_size,
            "timeout": self.timeout,
            "runtime_id": self.runtime_id,
            "code": code,
            "entry": self.entry,
            "count": self.count,
            "latest_version": self.latest_version,
            "project_id": self.project_id,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        })
    }

    /// The resource as create, show and update return it: `code` is an object.
    pub fn to_json(&self) -> Json {
        self.to_json_with_code(Json::Object(self.code.clone()))
    }

    /// The resource as a list shows it: `code` is a JSON-encoded string, as Qinling's.
    pub fn to_list_json(&self) -> Json {
        self.to_json_with_code(Json::String(crate::domain::json::python_json(
            &Json::Object(self.code.clone()),
        )))
    }
}

pub fn not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("Function not found [id={id}]"))
}

fn select(db: &dyn Database, id: &str) -> ApiResult<Option<Function>> {
    Ok(db
        .execute(
            &format!("SELECT {COLUMNS} FROM functions WHERE id = ?"),
            &[id.into()],
        )?
        .first()
        .map(Function::from_row))
}

/// The function with `id` if the caller may read it (own project, or any for an admin).
pub fn find(db: &dyn Database, caller: &Caller, id: &str) -> ApiResult<Function> {
    select(db, id)?
        .filter(|f| caller.may_read(&f.project_id))
        .ok_or_else(|| not_found(id))
}

/// [`find`] for `GET /v1/functions/{id}`, a hot read: served from `cache` when it can be
/// (every write that changes what a function shows forgets it: [`forget_function`]).
pub fn find_cached(
    db: &dyn Database,
    cache: &dyn Cache,
    caller: &Caller,
    id: &str,
) -> ApiResult<Function> {
    Some(read_through(cache, id, &function_key(id), || {
        select(db, id)?.ok_or_else(|| not_found(id))
    })?)
    .filter(|f| caller.may_read(&f.project_id))
    .ok_or_else(|| not_found(id))
}

/// The function with `id` only if it is the caller's own, even for an admin (version create
/// and delete, as Qinling).
pub fn find_own(db: &dyn Database, caller: &Caller, id: &str) -> ApiResult<Function> {
    select(db, id)?
        .filter(|f| f.project_id == caller.project_id)
        .ok_or_else(|| not_found(id))
}

/// One page of the functions in `scope`, by `created_at` then `id`.
pub fn list(
    db: &dyn Database,
    scope: &ListScope,
    page: &crate::store::filters::Page,
) -> ApiResult<crate::store::filters::Paged<Function>> {
    let mut query = crate::store::filters::ListQuery::new("functions");
    if let Some(project) = scope.project() {
        query = query.scope("project_id = ?", vec![project.into()]);
    }
    let rows = query.fetch(db, COLUMNS, page)?;
    let items = rows.iter().map(Function::from_row).collect();
    Ok(crate::store::filters::Paged::of(
        items,
        page.limit,
        |f: &Function| f.id.to_string(),
    ))
}

pub fn create(
    db: &dyn Database,
    caller: &Caller,
    rules: &Rules,
    new: NewFunction,
) -> ApiResult<Function> {
    let NewFunction {
        name,
        description,
        entry,
        cpu,
        memory_size,
        timeout,
        mut code,
        source,
        runtime_id,
        package,
    } = new;
    let mut default_entry = None;
    if let Some(id) = &runtime_id {
        let runtime = runtimes::find(db, caller, id)?;
        if !runtime.is_available() {
            return Err(ApiError::bad_request(format!(
                "Runtime {id} is not available."
            )));
        }
        // The built-in runtime runs the package's only .wasm unless an entry names one.
        if !runtime.is_builtin() {
            default_entry = Some(DEFAULT_ENTRY.to_string());
        }
    }

    let package = match source {
        CodeSource::Package => {
            let bytes = package.ok_or_else(missing_package)?;
            let package = Package::from_upload(
                bytes,
                claimed_md5(&code)?.as_deref(),
                rules.max_package_size,
            )?
            .keyed_as_stored(db)?;
            code.insert("md5sum".into(), Json::String(package.md5.clone()));
            Some(package)
        }
        CodeSource::Swift => return Err(check_swift(&code).unwrap_err()),
        CodeSource::Image => {
            if !code.get("image").is_some_and(Json::is_string) {
                return Err(ApiError::bad_request(
                    "Invalid input, code.image must be the image name.",
                ));
            }
            None
        }
    };

    let function = Function {
        id: FunctionId::generate(),
        name,
        description,
        runtime_id,
        cpu,
        memory_size,
        timeout,
        entry: match source {
            CodeSource::Image => None,
            _ => entry.or(default_entry),
        },
        code,
        count: 0,
        latest_version: 0,
        version_seq: 0,
        package_digest: package.as_ref().map(|p| p.digest.clone()),
        project_id: caller.project_id.clone(),
        created_at: now_timestamp(),
        updated_at: None,
    };
    // The bytes first, outside the transaction: it stays short however large they are.
    if let Some(package) = &package {
        packages::write_chunks(db, package, rules.sqlite_synchronous)?;
    }
    in_transaction(db, |tx| -> ApiResult<()> {
        if let Some(package) = &package {
            packages::publish(tx, package)?;
        }
        tx.execute(
            "INSERT INTO functions (id, name, description, runtime_id, cpu, memory_size, timeout,
                 code, entry, count, version_seq, package_digest, project_id, created_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0, 0, ?, ?, ?)",
            &[
                (&function.id).into(),
                function.name.clone().into(),
                function.description.clone().into(),
                function.runtime_id.clone().into(),
                function.cpu.into(),
                function.memory_size.into(),
                function.timeout.into(),
                Json::Object(function.code.clone()).to_string().into(),
                function.entry.clone().into(),
                function.package_digest.clone().into(),
                function.project_id.as_str().into(),
                function.created_at.as_str().into(),
            ],
        )?;
        Ok(())
    })?;
    Ok(function)
}

/// What an image function may still change.
const IMAGE_UPDATABLE: &[&str] = &["name", "description", "timeout"];

/// Qinling's refusals of an update, judged against the function as it is. `has_package`:
/// whether the update uploads a package (taken out of `changes` to be hashed).
fn check_update(
    function: &Function,
    changes: &FunctionChanges,
    has_package: bool,
) -> ApiResult<()> {
    if let Some(code) = &changes.code {
        if code.contains_key("source") && Some(source_of(code)?) != function.source() {
            return Err(ApiError::bad_request(
                "The function code type can not be changed.",
            ));
        }
    }
    if function.source() == Some(CodeSource::Image)
        && (has_package || changes.given().iter().any(|g| !IMAGE_UPDATABLE.contains(g)))
    {
        return Err(ApiError::bad_request(
            "The image type function code can not be changed.",
        ));
    }
    if has_package
        && changes.claimed_md5.is_some()
        && changes.claimed_md5.as_deref() == function.md5sum()
    {
        return Err(ApiError::bad_request(
            "The function code checksum is not changed.",
        ));
    }
    Ok(())
}

/// Whether an `If-Match` header value matches the function's tag: `*` (any existing
/// function) or a comma-separated list of tags, one of them this one (strong comparison: a
/// weak tag never matches).
fn if_match_holds(if_match: &str, function: &Function) -> bool {
    let etag = function.etag();
    if_match
        .split(',')
        .map(str::trim)
        .any(|tag| tag == "*" || tag == etag)
}

/// The 412 of an update whose `If-Match` names another state of the function.
fn check_if_match(if_match: Option<&str>, function: &Function) -> ApiResult<()> {
    match if_match {
        Some(value) if !if_match_holds(value, function) => {
            Err(ApiError::precondition_failed(format!(
                "Function changed since it was read: If-Match {} does not match {}.",
                value.trim(),
                function.etag()
            )))
        }
        _ => Ok(()),
    }
}

/// Applies an update. The upload is checked (size, md5, zip) and its chunks written before
/// the write lock is taken; the function is then read, judged and written in one transaction
/// (which publishes the package), so two updates
/// racing each other never write back a stale column (a package reference included) and an
/// old package is freed only once nothing refers to it.
pub fn update(
    db: &dyn Database,
    cache: &dyn Cache,
    caller: &Caller,
    rules: &Rules,
    id: &str,
    mut changes: FunctionChanges,
    if_match: Option<&str>,
) -> ApiResult<Function> {
    // Judged on a first read for the answer's sake (a 404, 412 or 400 before an upload is
    // hashed), and again inside the transaction on what is really there.
    let current = find(db, caller, id)?;
    check_if_match(if_match, &current)?;
    if changes.given().is_empty() {
        return Ok(current);
    }
    let upload = changes.package.take();
    let has_package = upload.is_some();
    check_update(&current, &changes, has_package)?;
    let new_package = match upload {
        Some(bytes) => Some(
            Package::from_upload(bytes, changes.expected_md5(), rules.max_package_size)?
                .keyed_as_stored(db)?,
        ),
        None => None,
    };
    // The bytes first, outside the transaction: it stays short however large they are.
    if let Some(package) = &new_package {
        packages::write_chunks(db, package, rules.sqlite_synchronous)?;
    }

    let updated = in_transaction(db, |tx| -> ApiResult<Function> {
        let mut function = find(tx, caller, id)?;
        // `If-Match` against the row as this transaction reads it: no other write can come
        // between this check and the update.
        check_if_match(if_match, &function)?;
        if has_package
            || changes
                .given()
                .iter()
                .any(|f| !matches!(*f, "name" | "description" | "timeout"))
        {
            crate::domain::references::refuse_if_running_jobs_use_function(tx, id)?;
        }
        check_update(&function, &changes, has_package)?;
        let FunctionChanges {
            name,
            description,
            entry,
            cpu,
            memory_size,
            timeout,
            code,
            ..
        } = &changes;

        // The stored checksum stays authoritative: a new code dict without a new package
        // keeps it.
        if let Some(new_code) = code {
            let mut new_code = new_code.clone();
            let source = function.source().map_or("", CodeSource::as_str);
            new_code.insert("source".into(), Json::String(source.to_string()));
            match (&new_package, function.md5sum()) {
                (Some(p), _) => {
                    new_code.insert("md5sum".into(), Json::String(p.md5.clone()));
                }
                (None, Some(md5)) => {
                    new_code.insert("md5sum".into(), Json::String(md5.to_string()));
                }
                (None, None) => {}
            }
            function.code = new_code;
        } else if let Some(p) = &new_package {
            function
                .code
                .insert("md5sum".into(), Json::String(p.md5.clone()));
        }
        if let Some(v) = name {
            function.name = Some(v.clone());
        }
        if let Some(v) = description {
            function.description = Some(v.clone());
        }
        if let Some(v) = entry {
            function.entry = Some(v.clone());
        }
        function.cpu = cpu.unwrap_or(function.cpu);
        function.memory_size = memory_size.unwrap_or(function.memory_size);
        function.timeout = timeout.unwrap_or(function.timeout);
        function.updated_at = Some(now_timestamp());
        let old_digest = function.package_digest.clone();
        if let Some(p) = &new_package {
            packages::publish(tx, p)?;
            function.package_digest = Some(p.digest.clone());
        }
        tx.execute(
            "UPDATE functions SET name = ?, description = ?, cpu = ?, memory_size = ?, timeout = ?,
                 code = ?, entry = ?, package_digest = ?, updated_at = ?
             WHERE id = ?",
            &[
                function.name.clone().into(),
                function.description.clone().into(),
                function.cpu.into(),
                function.memory_size.into(),
                function.timeout.into(),
                Json::Object(function.code.clone()).to_string().into(),
                function.entry.clone().into(),
                function.package_digest.clone().into(),
                function.updated_at.clone().into(),
                (&function.id).into(),
            ],
        )?;
        if let Some(old) = old_digest.filter(|old| Some(old) != function.package_digest.as_ref()) {
            packages::collect_garbage(tx, &old)?;
        }
        Ok(function)
    })?;
    forget_function(cache, id);
    Ok(updated)
}

/// Deletes the function and its versions; returns the numbers of the versions deleted.
pub fn delete(db: &dyn Database, cache: &dyn Cache, caller: &Caller, id: &str) -> ApiResult<()> {
    let numbers = in_transaction(db, |tx| {
        let function = find(tx, caller, id)?;
        crate::domain::references::refuse_if_running_jobs_use_function(tx, id)?;
        for (table, what) in [
            ("webhooks", "webhook(s)"),
            ("function_aliases", "function alias(es)"),
        ] {
            let referenced = tx
                .execute(
                    &format!("SELECT 1 FROM {table} WHERE function_id = ? LIMIT 1"),
                    &[id.into()],
                )?
                .first()
                .is_some();
            if referenced {
                return Err(ApiError::forbidden(format!(
                    "The function is still associated with {what}."
                )));
            }
        }
        if function.project_id != caller.project_id {
            return Err(ApiError::forbidden(
                "Function can only be deleted by its owner.",
            ));
        }
        let versions = tx.execute(
            "SELECT version_number, package_digest FROM function_versions WHERE function_id = ?",
            &[id.into()],
        )?;
        let numbers: Vec<VersionRef> = versions
            .iter()
            .filter_map(|r| VersionRef::from_wire(r.int("version_number")))
            .chain([VersionRef::Current])
            .collect();
        let mut digests: Vec<String> = versions.iter().map(|r| r.text("package_digest")).collect();
        digests.extend(function.package_digest.clone());
        digests.sort();
        digests.dedup();
        tx.execute(
            "DELETE FROM function_versions WHERE function_id = ?",
            &[id.into()],
        )?;
        tx.execute("DELETE FROM functions WHERE id = ?", &[id.into()])?;
        for digest in &digests {
            packages::collect_garbage(tx, digest)?;
        }
        Ok(numbers)
    })?;
    forget_function_and_versions(cache, id, &numbers);
    Ok(())
}

/// How often a download reads the function again when its package was replaced (and the old
/// bytes deleted) between reading the function and opening its package.
const DOWNLOAD_TRIES: usize = 3;

/// The function's current package, for `?download=true`: the old package or the new one when
/// an update replaces it meanwhile, never an error for that.
pub fn download(db: &dyn Database, caller: &Caller, id: &str) -> ApiResult<StoredPackage> {
    let mut tries = 0;
    loop {
        let function = find(db, &caller.package_reader(), id)?;
        if function.source() == Some(CodeSource::Image) {
            return Err(ApiError::new(
                ErrorKind::MethodNotAllowed,
                "Download image function is not allowed.",
            ));
        }
        let digest = function.package_digest.as_deref().unwrap_or_default();
        if let Some(package) = StoredPackage::open(db, digest)? {
            return Ok(package);
        }
        tries += 1;
        if tries == DOWNLOAD_TRIES {
            return Err(ApiError::not_found(format!(
                "Package of function {id} for project {} not found.",
                function.project_id
            )));
        }
    }
}
