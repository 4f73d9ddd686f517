//! Aliases: a stable name for a function version, so callers need not know numbers. Unlike
//! Qinling's, an alias can only point at an existing function of the caller's project and an
//! existing version of it (or 0, the function's current code).

use crate::context::{Caller, ListScope};
use crate::db::{in_transaction, Database, DbError, Row};
use crate::error::{ApiError, ApiResult};
use crate::functions;
use crate::time::now_timestamp;
use crate::versions;
use crate::wire::{Body, Field};
use serde_json::{json, Value as Json};

pub const FIELDS: &[Field] = &[
    Field::text("name"),
    Field::text("description"),
    Field::uuid("function_id"),
    Field::int("function_version", 0),
];

#[derive(Debug, Clone, PartialEq)]
pub struct Alias {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub function_id: String,
    pub function_version: i64,
    pub project_id: String,
    pub created_at: String,
    pub updated_at: Option<String>,
}

const COLUMNS: &str =
    "id, name, description, function_id, function_version, project_id, created_at, updated_at";

impl Alias {
    fn from_row(r: Row) -> Alias {
        Alias {
            id: r.text(0),
            name: r.text(1),
            description: r.opt_text(2),
            function_id: r.text(3),
            function_version: r.int(4),
            project_id: r.text(5),
            created_at: r.text(6),
            updated_at: r.opt_text(7),
        }
    }

    pub fn to_json(&self) -> Json {
        json!({
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "function_id": self.function_id,
            "function_version": self.function_version,
            "project_id": self.project_id,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        })
    }
}

pub fn not_found(name: &str) -> ApiError {
    ApiError::not_found(format!("FunctionAlias not found [name={name}]"))
}

/// The alias called `name`: the caller's own, or for an admin any project's.
pub fn find(db: &dyn Database, caller: &Caller, name: &str) -> ApiResult<Alias> {
    let rows = db.execute(
        &format!(
            "SELECT {COLUMNS} FROM function_aliases WHERE name = ?
             ORDER BY project_id = ? DESC, created_at"
        ),
        &[name.into(), caller.project_id.as_str().into()],
    )?;
    let visible = rows
        .iter()
        .map(Alias::from_row)
        .find(|a| caller.may_read(&a.project_id));
    visible.ok_or_else(|| not_found(name))
}

/// The caller's own alias called `name` (what executions resolve).
pub fn find_own(db: &dyn Database, caller: &Caller, name: &str) -> ApiResult<Alias> {
    db.execute(
        &format!("SELECT {COLUMNS} FROM function_aliases WHERE name = ? AND project_id = ?"),
        &[name.into(), caller.project_id.as_str().into()],
    )?
    .first()
    .map(Alias::from_row)
    .ok_or_else(|| not_found(name))
}

/// One page of the aliases in `scope`, by `created_at` then `id`.
pub fn list(
    db: &dyn Database,
    scope: &ListScope,
    page: &crate::filters::Page,
) -> ApiResult<crate::filters::Paged<Alias>> {
    let mut query = crate::filters::ListQuery::new("function_aliases");
    if let Some(project) = scope.project() {
        query = query.scope("project_id = ?", vec![project.into()]);
    }
    let rows = query.fetch(db, COLUMNS, page)?;
    let items = rows.iter().map(Alias::from_row).collect();
    Ok(crate::filters::Paged::of(items, page.limit, |a: &Alias| {
        a.id.clone()
    }))
}

/// The target must be the caller's own function and, unless 0, an existing version of it.
fn check_target(
    db: &dyn Database,
    caller: &Caller,
    function_id: &str,
    version: i64,
) -> ApiResult<()> {
    functions::find_own(db, caller, function_id)?;
    if version > 0 {
        versions::find(db, &crate::cache::NoCache, caller, function_id, version)?;
    }
    Ok(())
}

/// Maps a unique-constraint failure to Qinling's duplicate-entry message.
fn duplicate_or(e: DbError) -> ApiError {
    if e.0.contains("UNIQUE") {
        let columns = if e.0.contains("function_aliases.name") {
            "['project_id', 'name']"
        } else {
            "['project_id', 'function_id', 'function_version']"
        };
        ApiError::bad_request(format!("Duplicate entry for function_aliases: {columns}"))
    } else {
        e.into()
    }
}

pub fn create(db: &dyn Database, caller: &Caller, body: &Body) -> ApiResult<Alias> {
    body.require(&["name", "function_id"])?;
    let alias = Alias {
        id: crate::id::new_id(),
        name: body.text("name").unwrap_or_default(),
        description: body.text("description"),
        function_id: body.text("function_id").unwrap_or_default(),
        function_version: body.int("function_version").unwrap_or(0),
        project_id: caller.project_id.clone(),
        created_at: now_timestamp(),
        updated_at: None,
    };
    if alias.name.trim().is_empty() {
        return Err(ApiError::bad_request(
            "Invalid input for field/attribute name. Value: ''. An alias needs a name.",
        ));
    }
    // One transaction with the check: a function or version deleted meanwhile is either
    // seen as gone (404) or refuses to go because of this alias (403), never left dangling.
    in_transaction(db, |tx| {
        check_target(tx, caller, &alias.function_id, alias.function_version)?;
        tx.execute(
            &format!("INSERT INTO function_aliases ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, NULL)"),
            &[
                alias.id.as_str().into(),
                alias.name.as_str().into(),
                alias.description.clone().into(),
                alias.function_id.as_str().into(),
                alias.function_version.into(),
                alias.project_id.as_str().into(),
                alias.created_at.as_str().into(),
            ],
        )
        .map_err(duplicate_or)?;
        Ok(alias.clone())
    })
}

pub fn update(db: &dyn Database, caller: &Caller, name: &str, body: &Body) -> ApiResult<Alias> {
    in_transaction(db, |tx| update_in(tx, caller, name, body))
}

/// `update`, inside its transaction (see `create`).
fn update_in(db: &dyn Database, caller: &Caller, name: &str, body: &Body) -> ApiResult<Alias> {
    let mut alias = find_own(db, caller, name)?;
    let before = alias.clone();
    if let Some(f) = body.text("function_id") {
        alias.function_id = f;
    }
    if let Some(v) = body.int("function_version") {
        alias.function_version = v;
    }
    if body.has("description") {
        alias.description = body.text("description");
    }
    if alias == before {
        return Ok(alias);
    }
    check_target(db, caller, &alias.function_id, alias.function_version)?;
    alias.updated_at = Some(now_timestamp());
    db.execute(
        "UPDATE function_aliases SET function_id = ?, function_version = ?, description = ?, updated_at = ?
         WHERE id = ?",
        &[
            alias.function_id.as_str().into(),
            alias.function_version.into(),
            alias.description.clone().into(),
            alias.updated_at.clone().into(),
            alias.id.as_str().into(),
        ],
    )
    .map_err(duplicate_or)?;
    Ok(alias)
}

pub fn delete(db: &dyn Database, caller: &Caller, name: &str) -> ApiResult<()> {
    let alias = find_own(db, caller, name)?;
    db.execute(
        "DELETE FROM function_aliases WHERE id = ?",
        &[alias.id.as_str().into()],
    )?;
    Ok(())
}
