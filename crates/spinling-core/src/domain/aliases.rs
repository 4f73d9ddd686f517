//! Aliases: a stable name for a function version, so callers need not know numbers. Unlike
//! Qinling's, an alias can only point at an existing function of the caller's project and an
//! existing version of it (or 0, the function's current code).
//!
//! Beyond Qinling, an alias may carry a weighted `routing` (canary, N-way): extra versions
//! of its function, each taking its weight of the executions created through the alias, its
//! own version the rest. The draw happens when an execution is created (directly, by a
//! webhook or by a job), which records the version that ran. A routing is allowed with the
//! alias at the function's current code (`function_version` 0), unlike Lambda's `$LATEST`.

use crate::domain::commands::{invalid_routing, AliasChanges, NewAlias, Routing};
use crate::domain::context::{Caller, ListScope};
use crate::domain::functions;
use crate::domain::types::{FunctionId, VersionNumber, VersionRef};
use crate::domain::versions;
use crate::error::{ApiError, ApiResult};
use crate::store::db::{in_transaction, Database, DbError, Row};
use crate::time::now_timestamp;
use serde_json::{json, Value as Json};

#[derive(Debug, Clone, PartialEq)]
pub struct Alias {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub function_id: FunctionId,
    pub function_version: VersionRef,
    /// Extra versions and their weights; empty when all go to `function_version`.
    pub routing: Routing,
    pub project_id: String,
    pub created_at: String,
    pub updated_at: Option<String>,
}

const COLUMNS: &str =
    "id, name, description, function_id, function_version, project_id, created_at, updated_at";

impl Alias {
    fn from_row(r: Row) -> Alias {
        Alias {
            id: r.text("id"),
            name: r.text("name"),
            description: r.opt_text("description"),
            function_id: FunctionId::from_stored(r.text("function_id")),
            // Only what `create` and `update` checked is stored.
            function_version: VersionRef::from_wire(r.int("function_version"))
                .unwrap_or(VersionRef::Current),
            // Read by `with_routing`.
            routing: Routing::default(),
            project_id: r.text("project_id"),
            created_at: r.text("created_at"),
            updated_at: r.opt_text("updated_at"),
        }
    }

    /// The version an execution through this alias runs: drawn by weight from its routing,
    /// at random, or, for a `routing_key`, by its stable hash (the same key always gets the
    /// same version while the routing stays, and keys spread by the weights).
    pub fn pick_version(&self, routing_key: Option<&str>) -> ApiResult<VersionRef> {
        if self.routing.is_empty() {
            return Ok(self.function_version);
        }
        if let Some(key) = routing_key {
            return Ok(self.routing.pick(
                self.function_version,
                crate::domain::routing::sticky_draw(key),
            ));
        }
        let bits = getrandom::u64().map_err(|e| {
            ApiError::internal("No random source to route the alias with.").caused_by(e)
        })?;
        // 53 random bits: uniform in [0, 1) at f64's precision.
        let draw = (bits >> 11) as f64 / (1u64 << 53) as f64;
        Ok(self.routing.pick(self.function_version, draw))
    }

    /// What a history entry records of it: its version and routing.
    pub fn target_json(&self) -> Json {
        json!({
            "function_id": self.function_id,
            "function_version": self.function_version,
            "routing": self.routing.to_json(),
        })
    }

    pub fn to_json(&self) -> Json {
        json!({
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "function_id": self.function_id,
            "function_version": self.function_version,
            "routing": self.routing.to_json(),
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
    let alias = visible.ok_or_else(|| not_found(name))?;
    Ok(with_routing(db, vec![alias])?.remove(0))
}

/// `aliases` with their routings read, in one statement.
fn with_routing(db: &dyn Database, mut aliases: Vec<Alias>) -> ApiResult<Vec<Alias>> {
    if aliases.is_empty() {
        return Ok(aliases);
    }
    let marks = vec!["?"; aliases.len()].join(", ");
    let ids: Vec<crate::store::db::Value> = aliases.iter().map(|a| a.id.as_str().into()).collect();
    let rows = db.execute(
        &format!(
            "SELECT alias_id, function_version, weight FROM function_alias_routes
             WHERE alias_id IN ({marks})"
        ),
        &ids,
    )?;
    for alias in &mut aliases {
        let routes = rows
            .iter()
            .filter(|r| r.text("alias_id") == alias.id)
            .filter_map(|r| {
                let number = VersionNumber::new(r.int("function_version"))?;
                let weight = r.text("weight").parse::<f64>().ok()?;
                Some((number, weight))
            })
            .collect();
        alias.routing = Routing::from_routes(routes);
    }
    Ok(aliases)
}

/// The caller's own alias called `name` (what executions resolve).
pub fn find_own(db: &dyn Database, caller: &Caller, name: &str) -> ApiResult<Alias> {
    let alias = db
        .execute(
            &format!("SELECT {COLUMNS} FROM function_aliases WHERE name = ? AND project_id = ?"),
            &[name.into(), caller.project_id.as_str().into()],
        )?
        .first()
        .map(Alias::from_row)
        .ok_or_else(|| not_found(name))?;
    Ok(with_routing(db, vec![alias])?.remove(0))
}

/// One page of the aliases in `scope`, by `created_at` then `id`.
pub fn list(
    db: &dyn Database,
    scope: &ListScope,
    page: &crate::store::filters::Page,
) -> ApiResult<crate::store::filters::Paged<Alias>> {
    let mut query = crate::store::filters::ListQuery::new("function_aliases");
    if let Some(project) = scope.project() {
        query = query.scope("project_id = ?", vec![project.into()]);
    }
    let rows = query.fetch(db, COLUMNS, page)?;
    let items = with_routing(db, rows.iter().map(Alias::from_row).collect())?;
    Ok(crate::store::filters::Paged::of(
        items,
        page.limit,
        |a: &Alias| a.id.clone(),
    ))
}

/// The target must be the caller's own function and, unless its current code, an existing
/// version of it; so must every version of the routing, none of them the alias's own.
fn check_target(db: &dyn Database, caller: &Caller, alias: &Alias) -> ApiResult<()> {
    let function_id = alias.function_id.as_str();
    functions::find_own(db, caller, function_id)?;
    if let VersionRef::Number(n) = alias.function_version {
        versions::find(db, &crate::store::cache::NoCache, caller, function_id, n)?;
    }
    for (n, _) in alias.routing.routes() {
        if VersionRef::Number(*n) == alias.function_version {
            return Err(invalid_routing(
                &alias.routing.to_json(),
                &format!(
                    "Version {n} is the alias's own function_version; the routing names other versions."
                ),
            ));
        }
        versions::find(db, &crate::store::cache::NoCache, caller, function_id, *n)?;
    }
    Ok(())
}

/// Replaces the stored routing of `alias` with its own.
fn store_routing(db: &dyn Database, alias: &Alias) -> ApiResult<()> {
    db.execute(
        "DELETE FROM function_alias_routes WHERE alias_id = ?",
        &[alias.id.as_str().into()],
    )?;
    for (n, weight) in alias.routing.routes() {
        db.execute(
            "INSERT INTO function_alias_routes (alias_id, function_id, function_version, weight)
             VALUES (?, ?, ?, ?)",
            &[
                alias.id.as_str().into(),
                (&alias.function_id).into(),
                n.get().into(),
                weight.to_string().into(),
            ],
        )?;
    }
    Ok(())
}

/// Maps a unique-constraint failure to Qinling's duplicate-entry message.
fn duplicate_or(e: DbError) -> ApiError {
    let Some(constraint) = e.unique_columns() else {
        return e.into();
    };
    let columns = if constraint.contains("function_aliases.name") {
        "['project_id', 'name']"
    } else {
        "['project_id', 'function_id', 'function_version']"
    };
    ApiError::bad_request(format!("Duplicate entry for function_aliases: {columns}"))
}

pub fn create(db: &dyn Database, caller: &Caller, new: NewAlias) -> ApiResult<Alias> {
    let alias = Alias {
        id: crate::id::new_id(),
        name: new.name,
        description: new.description,
        function_id: new.function_id,
        function_version: new.version,
        routing: new.routing,
        project_id: caller.project_id.clone(),
        created_at: now_timestamp(),
        updated_at: None,
    };
    // One transaction with the check: a function or version deleted meanwhile is either
    // seen as gone (404) or refuses to go because of this alias (403), never left dangling.
    in_transaction(db, |tx| {
        check_target(tx, caller, &alias)?;
        tx.execute(
            &format!("INSERT INTO function_aliases ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, NULL)"),
            &[
                alias.id.as_str().into(),
                alias.name.as_str().into(),
                alias.description.clone().into(),
                (&alias.function_id).into(),
                alias.function_version.to_wire().into(),
                alias.project_id.as_str().into(),
                alias.created_at.as_str().into(),
            ],
        )
        .map_err(duplicate_or)?;
        store_routing(tx, &alias)?;
        record_history(tx, &alias, Some(caller), Cause::Created, None, None)?;
        Ok(alias.clone())
    })
}

pub fn update(
    db: &dyn Database,
    caller: &Caller,
    name: &str,
    changes: &AliasChanges,
) -> ApiResult<Alias> {
    in_transaction(db, |tx| update_in(tx, caller, name, changes))
}

/// `update`, inside its transaction (see `create`).
fn update_in(
    db: &dyn Database,
    caller: &Caller,
    name: &str,
    changes: &AliasChanges,
) -> ApiResult<Alias> {
    let mut alias = find_own(db, caller, name)?;
    let before = alias.clone();
    let changes_target =
        changes.function_id.is_some() || changes.version.is_some() || changes.routing.is_some();
    if changes_target {
        crate::domain::references::refuse_if_rollout_runs(db, &alias.id, &alias.name)?;
    }
    if let Some(f) = &changes.function_id {
        alias.function_id = f.clone();
    }
    if let Some(v) = changes.version {
        alias.function_version = v;
    }
    if let Some(d) = &changes.description {
        alias.description = Some(d.clone());
    }
    if let Some(r) = &changes.routing {
        alias.routing = r.clone();
    }
    if alias == before {
        return Ok(alias);
    }
    check_target(db, caller, &alias)?;
    alias.updated_at = Some(now_timestamp());
    db.execute(
        "UPDATE function_aliases SET function_id = ?, function_version = ?, description = ?, updated_at = ?
         WHERE id = ?",
        &[
            (&alias.function_id).into(),
            alias.function_version.to_wire().into(),
            alias.description.clone().into(),
            alias.updated_at.clone().into(),
            alias.id.as_str().into(),
        ],
    )
    .map_err(duplicate_or)?;
    if (&alias.function_id, &alias.routing) != (&before.function_id, &before.routing) {
        store_routing(db, &alias)?;
    }
    if alias.target_json() != before.target_json() {
        record_history(
            db,
            &alias,
            Some(caller),
            Cause::Request,
            None,
            Some(&before),
        )?;
    }
    Ok(alias)
}

/// Points `alias` (as read inside the caller's transaction) at `version` with `routing`,
/// recording why: what a rollout does at each of its decisions. No checks: the rollout
/// checked its versions when it started, and keeps them from being deleted.
pub fn retarget(
    db: &dyn Database,
    alias: &Alias,
    version: VersionRef,
    routing: Routing,
    caller: Option<&Caller>,
    cause: Cause,
    reason: &str,
) -> ApiResult<Alias> {
    let mut after = alias.clone();
    after.function_version = version;
    after.routing = routing;
    after.updated_at = Some(now_timestamp());
    db.execute(
        "UPDATE function_aliases SET function_version = ?, updated_at = ? WHERE id = ?",
        &[
            after.function_version.to_wire().into(),
            after.updated_at.clone().into(),
            after.id.as_str().into(),
        ],
    )
    .map_err(duplicate_or)?;
    store_routing(db, &after)?;
    record_history(db, &after, caller, cause, Some(reason), Some(alias))?;
    Ok(after)
}

/// Why an alias changed, as its history tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// It was created.
    Created,
    /// A request changed it (`PUT /v1/aliases/{name}`).
    Request,
    /// A rollout started: the canary takes its first step's weight.
    RolloutStarted,
    /// A rollout's step ended well: the canary takes the next step's weight.
    RolloutStep,
    /// A rollout's last step ended well: the alias points at the canary.
    Promotion,
    /// The canary's failures tripped the rule: the alias is back where it was.
    Rollback,
    /// A request aborted a rollout: the alias is back where it was.
    Abort,
}

impl Cause {
    pub fn as_str(self) -> &'static str {
        match self {
            Cause::Created => "created",
            Cause::Request => "request",
            Cause::RolloutStarted => "rollout_started",
            Cause::RolloutStep => "rollout_step",
            Cause::Promotion => "promotion",
            Cause::Rollback => "rollback",
            Cause::Abort => "abort",
        }
    }
}

/// Adds an entry to the history of `alias` (now as `alias`, before as `before`).
fn record_history(
    db: &dyn Database,
    alias: &Alias,
    caller: Option<&Caller>,
    cause: Cause,
    reason: Option<&str>,
    before: Option<&Alias>,
) -> ApiResult<()> {
    db.execute(
        "INSERT INTO alias_history (id, alias_id, alias_name, project_id, actor_project_id,
             actor_user_id, cause, reason, before, after, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        &[
            crate::id::new_id().as_str().into(),
            alias.id.as_str().into(),
            alias.name.as_str().into(),
            alias.project_id.as_str().into(),
            caller.map(|c| c.project_id.clone()).into(),
            caller.and_then(|c| c.user_id.clone()).into(),
            cause.as_str().into(),
            reason.map(str::to_string).into(),
            before.map(|b| b.target_json().to_string()).into(),
            alias.target_json().to_string().into(),
            now_timestamp().into(),
        ],
    )?;
    Ok(())
}

/// One entry of an alias's history.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryEntry {
    pub id: String,
    pub alias_name: String,
    pub actor_project_id: Option<String>,
    pub actor_user_id: Option<String>,
    pub cause: String,
    pub reason: Option<String>,
    pub before: Option<Json>,
    pub after: Json,
    pub created_at: String,
}

impl HistoryEntry {
    fn from_row(r: Row) -> HistoryEntry {
        let json = |column| {
            r.opt_text(column)
                .and_then(|t| serde_json::from_str::<Json>(&t).ok())
        };
        HistoryEntry {
            id: r.text("id"),
            alias_name: r.text("alias_name"),
            actor_project_id: r.opt_text("actor_project_id"),
            actor_user_id: r.opt_text("actor_user_id"),
            cause: r.text("cause"),
            reason: r.opt_text("reason"),
            before: json("before"),
            after: json("after").unwrap_or(Json::Null),
            created_at: r.text("created_at"),
        }
    }

    pub fn to_json(&self) -> Json {
        json!({
            "id": self.id,
            "alias": self.alias_name,
            "project_id": self.actor_project_id,
            "user_id": self.actor_user_id,
            "cause": self.cause,
            "reason": self.reason,
            "before": self.before,
            "after": self.after,
            "created_at": self.created_at,
        })
    }
}

/// One page of the history of the alias called `name` (visible to the caller), oldest first.
pub fn history(
    db: &dyn Database,
    caller: &Caller,
    name: &str,
    page: &crate::store::filters::Page,
) -> ApiResult<crate::store::filters::Paged<HistoryEntry>> {
    let alias = find(db, caller, name)?;
    let query = crate::store::filters::ListQuery::new("alias_history")
        .scope("alias_id = ?", vec![alias.id.as_str().into()]);
    let rows = query.fetch(
        db,
        "id, alias_name, actor_project_id, actor_user_id, cause, reason, before, after, created_at",
        page,
    )?;
    let items = rows.iter().map(HistoryEntry::from_row).collect();
    Ok(crate::store::filters::Paged::of(
        items,
        page.limit,
        |e: &HistoryEntry| e.id.clone(),
    ))
}

pub fn delete(db: &dyn Database, caller: &Caller, name: &str) -> ApiResult<()> {
    in_transaction(db, |tx| {
        let alias = find_own(tx, caller, name)?;
        crate::domain::references::refuse_if_rollout_runs(tx, &alias.id, &alias.name)?;
        tx.execute(
            "DELETE FROM function_alias_routes WHERE alias_id = ?",
            &[alias.id.as_str().into()],
        )?;
        tx.execute(
            "DELETE FROM function_aliases WHERE id = ?",
            &[alias.id.as_str().into()],
        )?;
        Ok(())
    })
}
