//! Functions: the current code ("version 0") and the settings it runs with.

use crate::context::{Caller, ListScope, Settings};
use crate::db::{in_transaction, Database, Row};
use crate::error::{ApiError, ApiResult, ErrorKind};
use crate::forms::FunctionForm;
use crate::limits::JsonLimits;
use crate::packages::{self, Package};
use crate::runtimes;
use crate::time::now_timestamp;
use crate::wire::{check_value, Field, FieldType, MAX_TEXT};
use serde_json::{json, Map, Value as Json};

/// Qinling's `[resource_limits]` defaults; a version snapshots the values in force.
pub struct Limit {
    pub field: &'static str,
    label: &'static str,
    unit: &'static str,
    pub default: i64,
    pub min: i64,
    pub max: i64,
}

pub const CPU: Limit = Limit {
    field: "cpu",
    label: "cpu",
    unit: "millicpu",
    default: 100,
    min: 100,
    max: 300,
};
pub const MEMORY: Limit = Limit {
    field: "memory_size",
    label: "memory",
    unit: "bytes",
    default: 33_554_432,
    min: 33_554_432,
    max: 134_217_728,
};
pub const TIMEOUT: Limit = Limit {
    field: "timeout",
    label: "timeout",
    unit: "seconds",
    default: 5,
    min: 1,
    max: 300,
};

/// The entry Qinling gives functions of external (Python) runtimes.
pub const DEFAULT_ENTRY: &str = "main.main";
const MAX_ENTRY: usize = 80;
const SOURCES: &str = "image, package, swift";

impl Limit {
    /// Reads the limit's field from a form: absent is `None`; present must be an integer
    /// within the range (Qinling's messages).
    fn read(&self, form: &FunctionForm) -> ApiResult<Option<i64>> {
        let Some(value) = form.get(self.field) else {
            return Ok(None);
        };
        // Wide enough that any integer, however large (Python's `int()` takes them all), is
        // judged by the range; float-to-int casts saturate.
        let n: i128 = match value {
            Json::Number(n) => n
                .as_i64()
                .map(i128::from)
                .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i128)),
            Json::String(s) => {
                let digits = s.trim();
                match digits.parse::<i128>() {
                    Ok(n) => Some(n),
                    Err(e) if *e.kind() == std::num::IntErrorKind::PosOverflow => Some(i128::MAX),
                    Err(e) if *e.kind() == std::num::IntErrorKind::NegOverflow => Some(i128::MIN),
                    Err(_) => None,
                }
            }
            _ => None,
        }
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "Invalid {} resource specified. An integer is required.",
                self.label
            ))
        })?;
        match i64::try_from(n) {
            Ok(n) if (self.min..=self.max).contains(&n) => Ok(Some(n)),
            _ => Err(ApiError::bad_request(format!(
                "{} resource limitation not within the allowable range: {} ~ {}({}).",
                self.label, self.min, self.max, self.unit
            ))),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Function {
    pub id: String,
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
    (SELECT COALESCE(MAX(v.version_number), 0) FROM function_versions v WHERE v.function_id = functions.id),
    version_seq, package_digest, project_id, created_at, updated_at";

impl Function {
    fn from_row(r: Row) -> Function {
        Function {
            id: r.text(0),
            name: r.opt_text(1),
            description: r.opt_text(2),
            runtime_id: r.opt_text(3),
            cpu: r.int(4),
            memory_size: r.int(5),
            timeout: r.int(6),
            code: serde_json::from_str(&r.text(7)).unwrap_or_default(),
            entry: r.opt_text(8),
            count: r.int(9),
            latest_version: r.int(10),
            version_seq: r.int(11),
            package_digest: r.opt_text(12),
            project_id: r.text(13),
            created_at: r.text(14),
            updated_at: r.opt_text(15),
        }
    }

    pub fn source(&self) -> &str {
        self.code.get("source").and_then(Json::as_str).unwrap_or("")
    }

    pub fn md5sum(&self) -> Option<&str> {
        self.code.get("md5sum").and_then(Json::as_str)
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
        self.to_json_with_code(Json::String(crate::wire::python_json(&Json::Object(
            self.code.clone(),
        ))))
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
    page: &crate::filters::Page,
) -> ApiResult<crate::filters::Paged<Function>> {
    let mut query = crate::filters::ListQuery::new("functions");
    if let Some(project) = scope.project() {
        query = query.scope("project_id = ?", vec![project.into()]);
    }
    let rows = query.fetch(db, COLUMNS, page)?;
    let items = rows.iter().map(Function::from_row).collect();
    Ok(crate::filters::Paged::of(
        items,
        page.limit,
        |f: &Function| f.id.clone(),
    ))
}

fn text_field(form: &FunctionForm, name: &'static str, max: usize) -> ApiResult<Option<String>> {
    match form.get(name) {
        None => Ok(None),
        Some(v) => {
            let field = Field {
                name,
                ty: FieldType::Text(max),
                read_only: false,
            };
            Ok(check_value(&field, v)?.as_str().map(str::to_owned))
        }
    }
}

/// `code`, which Qinling wants as a JSON-encoded string (parsed within `limits`); an object
/// is accepted too.
fn code_field(form: &FunctionForm, limits: &JsonLimits) -> ApiResult<Option<Map<String, Json>>> {
    let parsed = match form.get("code") {
        None => return Ok(None),
        Some(Json::String(s)) => limits.parse(s.as_bytes(), "Function code")?.map_err(|e| {
            ApiError::bad_request(format!("Invalid input, code is not valid JSON: {e}"))
        })?,
        Some(other) => other.clone(),
    };
    match parsed {
        Json::Object(map) => Ok(Some(map)),
        _ => Err(ApiError::bad_request(
            "Invalid input, code must be a JSON object.",
        )),
    }
}

fn claimed_md5(code: &Map<String, Json>) -> ApiResult<Option<String>> {
    match code.get("md5sum") {
        None | Some(Json::Null) => Ok(None),
        Some(Json::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ApiError::bad_request(
            "Invalid input, code.md5sum must be a string.",
        )),
    }
}

fn source_of(code: &Map<String, Json>) -> ApiResult<String> {
    match code.get("source").and_then(Json::as_str) {
        Some(s @ ("package" | "swift" | "image")) => Ok(s.to_string()),
        _ => Err(ApiError::bad_request(format!(
            "Invalid code source specified, available sources: {SOURCES}"
        ))),
    }
}

fn check_swift(code: &Map<String, Json>) -> ApiResult<()> {
    let swift = code.get("swift").and_then(Json::as_object);
    let has = |k: &str| swift.and_then(|s| s.get(k)).is_some_and(|v| !v.is_null());
    if !has("container") || !has("object") {
        return Err(ApiError::bad_request(
            "Both container and object must be provided for swift type function.",
        ));
    }
    Err(ApiError::bad_request("Swift object not supported."))
}

fn missing_package() -> ApiError {
    ApiError::bad_request("Package file is required for package type function.")
}

pub fn create(
    db: &dyn Database,
    caller: &Caller,
    settings: &Settings,
    mut form: FunctionForm,
) -> ApiResult<Function> {
    let Some(mut code) = code_field(&form, &settings.json_limits)? else {
        return Err(ApiError::bad_request(
            "Required param is missing. Required: {'code'}",
        ));
    };
    let timeout = TIMEOUT.read(&form)?.unwrap_or(TIMEOUT.default);
    let cpu = CPU.read(&form)?.unwrap_or(CPU.default);
    let memory_size = MEMORY.read(&form)?.unwrap_or(MEMORY.default);
    let name = text_field(&form, "name", MAX_TEXT)?;
    let description = text_field(&form, "description", MAX_TEXT)?;
    let entry = text_field(&form, "entry", MAX_ENTRY)?;
    let source = source_of(&code)?;

    let mut runtime_id = None;
    let mut default_entry = None;
    if source != "image" {
        let Some(id) = text_field(&form, "runtime_id", MAX_TEXT)? else {
            return Err(ApiError::bad_request("\"runtime_id\" must be specified."));
        };
        let runtime = runtimes::find(db, caller, &id)?;
        if !runtime.is_available() {
            return Err(ApiError::bad_request(format!(
                "Runtime {id} is not available."
            )));
        }
        // The built-in runtime runs the package's only .wasm unless an entry names one.
        if !runtime.is_builtin() {
            default_entry = Some(DEFAULT_ENTRY.to_string());
        }
        runtime_id = Some(id);
    }

    let package = match source.as_str() {
        "package" => {
            let bytes = form.package.take().ok_or_else(missing_package)?;
            let package = Package::from_upload(
                bytes,
                claimed_md5(&code)?.as_deref(),
                settings.max_package_size,
            )?;
            code.insert("md5sum".into(), Json::String(package.md5.clone()));
            Some(package)
        }
        "swift" => return Err(check_swift(&code).unwrap_err()),
        _ => {
            if !code.get("image").is_some_and(Json::is_string) {
                return Err(ApiError::bad_request(
                    "Invalid input, code.image must be the image name.",
                ));
            }
            None
        }
    };

    let function = Function {
        id: crate::id::new_id(),
        name,
        description,
        runtime_id,
        cpu,
        memory_size,
        timeout,
        entry: if source == "image" {
            None
        } else {
            entry.or(default_entry)
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
    in_transaction(db, |tx| -> ApiResult<()> {
        if let Some(package) = &package {
            packages::store(tx, package)?;
        }
        tx.execute(
            "INSERT INTO functions (id, name, description, runtime_id, cpu, memory_size, timeout,
                 code, entry, count, version_seq, package_digest, project_id, created_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0, 0, ?, ?, ?)",
            &[
                function.id.as_str().into(),
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

/// The fields a function update reads; anything else in the form is ignored, as Qinling does.
const UPDATABLE: &[&str] = &[
    "name",
    "description",
    "code",
    "entry",
    "cpu",
    "memory_size",
    "timeout",
];
/// What an image function may still change.
const IMAGE_UPDATABLE: &[&str] = &["name", "description", "timeout"];

/// What an update asks for, as far as the rules that refuse it are concerned.
struct UpdateShape<'a> {
    code: Option<&'a Map<String, Json>>,
    given: &'a [String],
    claimed: Option<&'a str>,
    has_package: bool,
}

/// Qinling's refusals of an update, judged against the function as it is.
fn check_update(function: &Function, update: &UpdateShape) -> ApiResult<()> {
    if let Some(code) = update.code {
        if code.contains_key("source") && source_of(code)? != function.source() {
            return Err(ApiError::bad_request(
                "The function code type can not be changed.",
            ));
        }
    }
    if function.source() == "image"
        && update
            .given
            .iter()
            .any(|g| !IMAGE_UPDATABLE.contains(&g.as_str()))
    {
        return Err(ApiError::bad_request(
            "The image type function code can not be changed.",
        ));
    }
    if update.has_package && update.claimed.is_some() && update.claimed == function.md5sum() {
        return Err(ApiError::bad_request(
            "The function code checksum is not changed.",
        ));
    }
    Ok(())
}

/// Applies an update. The upload is checked (size, md5, zip) before the write lock is
/// taken; the function is then read, judged and written in one transaction, so two updates
/// racing each other never write back a stale column (a package reference included) and an
/// old package is freed only once nothing refers to it.
pub fn update(
    db: &dyn Database,
    caller: &Caller,
    settings: &Settings,
    id: &str,
    mut form: FunctionForm,
) -> ApiResult<Function> {
    let code = code_field(&form, &settings.json_limits)?;
    let timeout = TIMEOUT.read(&form)?;
    let cpu = CPU.read(&form)?;
    let memory_size = MEMORY.read(&form)?;
    let name = text_field(&form, "name", MAX_TEXT)?;
    let description = text_field(&form, "description", MAX_TEXT)?;
    let entry = text_field(&form, "entry", MAX_ENTRY)?;
    let given: Vec<String> = form
        .names()
        .filter(|n| UPDATABLE.contains(n))
        .map(str::to_owned)
        .chain(form.package.is_some().then(|| "package".to_string()))
        .collect();
    let claimed = match &code {
        Some(c) => claimed_md5(c)?,
        None => None,
    };

    // Judged on a first read for the answer's sake (a 404 or 400 before an upload is
    // hashed), and again inside the transaction on what is really there.
    let current = find(db, caller, id)?;
    if given.is_empty() {
        return Ok(current);
    }
    let update = UpdateShape {
        code: code.as_ref(),
        given: &given,
        claimed: claimed.as_deref(),
        has_package: form.package.is_some(),
    };
    check_update(&current, &update)?;
    let new_package = match form.package.take() {
        Some(bytes) => {
            // python-qinlingclient sends the code dict's keys as top-level fields on update
            // (`md5sum=...`); that checksum still guards the upload's integrity.
            let top_level = form.get("md5sum").and_then(Json::as_str).map(str::to_owned);
            let expected = claimed.clone().or(top_level);
            Some(Package::from_upload(
                bytes,
                expected.as_deref(),
                settings.max_package_size,
            )?)
        }
        None => None,
    };

    in_transaction(db, |tx| -> ApiResult<Function> {
        let mut function = find(tx, caller, id)?;
        check_update(&function, &update)?;

        // The stored checksum stays authoritative: a new code dict without a new package
        // keeps it.
        if let Some(new_code) = &code {
            let mut new_code = new_code.clone();
            new_code.insert("source".into(), Json::String(function.source().to_string()));
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
        if let Some(v) = &name {
            function.name = Some(v.clone());
        }
        if let Some(v) = &description {
            function.description = Some(v.clone());
        }
        if let Some(v) = &entry {
            function.entry = Some(v.clone());
        }
        function.cpu = cpu.unwrap_or(function.cpu);
        function.memory_size = memory_size.unwrap_or(function.memory_size);
        function.timeout = timeout.unwrap_or(function.timeout);
        function.updated_at = Some(now_timestamp());
        let old_digest = function.package_digest.clone();
        if let Some(p) = &new_package {
            packages::store(tx, p)?;
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
                function.id.as_str().into(),
            ],
        )?;
        if let Some(old) = old_digest.filter(|old| Some(old) != function.package_digest.as_ref()) {
            packages::collect_garbage(tx, &old)?;
        }
        Ok(function)
    })
}

/// Deletes the function and its versions; returns the numbers of the versions deleted.
pub fn delete(db: &dyn Database, caller: &Caller, id: &str) -> ApiResult<Vec<i64>> {
    in_transaction(db, |tx| {
        let function = find(tx, caller, id)?;
        let aliased = tx
            .execute(
                "SELECT 1 FROM function_aliases WHERE function_id = ? LIMIT 1",
                &[id.into()],
            )?
            .first()
            .is_some();
        if aliased {
            return Err(ApiError::forbidden(
                "The function is still associated with function alias(es).",
            ));
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
        let numbers: Vec<i64> = versions.iter().map(|r| r.int(0)).collect();
        let mut digests: Vec<String> = versions.iter().map(|r| r.text(1)).collect();
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
    })
}

/// The function's current package bytes, for `?download=true`.
pub fn download(db: &dyn Database, caller: &Caller, id: &str) -> ApiResult<Vec<u8>> {
    let function = find(db, caller, id)?;
    if function.source() == "image" {
        return Err(ApiError::new(
            ErrorKind::MethodNotAllowed,
            "Download image function is not allowed.",
        ));
    }
    let digest = function.package_digest.as_deref().unwrap_or_default();
    packages::load(db, digest)?.ok_or_else(|| {
        ApiError::not_found(format!(
            "Package of function {id} for project {} not found.",
            function.project_id
        ))
    })
}
