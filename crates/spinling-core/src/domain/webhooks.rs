//! Webhooks (spec §2.6): a URL anyone may POST to, without a token, to run a function
//! version, or what an alias names at that moment, asynchronously in the webhook's project.
//! Who may invoke is whoever knows the URL: its id is a random uuid, and deleting and
//! creating the webhook again is how it is rotated.

use crate::domain::commands::{
    ExecutionTarget, NewExecution, NewWebhook, WebhookChanges, WebhookTarget,
};
use crate::domain::context::{Caller, ListScope};
use crate::domain::executions::{self, Execution};
use crate::domain::types::{FunctionId, VersionRef};
use crate::domain::workers::Job;
use crate::error::{ApiError, ApiResult};
use crate::store::cache::Cache;
use crate::store::db::{in_transaction, Database, Row};
use crate::store::filters::{ListQuery, Page, Paged};
use crate::time::now_timestamp;
use crate::{domain::aliases, domain::functions, domain::versions};
use serde_json::{json, Map, Value as Json};

#[derive(Debug, Clone, PartialEq)]
pub struct Webhook {
    pub id: String,
    /// Null when the webhook goes through an alias.
    pub function_id: Option<FunctionId>,
    /// As sent: null when none was (invoked as the current code, never Qinling's 500).
    pub function_version: Option<VersionRef>,
    pub function_alias: Option<String>,
    pub description: Option<String>,
    pub project_id: String,
    pub created_at: String,
    pub updated_at: Option<String>,
}

const COLUMNS: &str =
    "id, function_id, function_version, function_alias, description, project_id, created_at, updated_at";

impl Webhook {
    fn from_row(r: Row) -> Webhook {
        Webhook {
            id: r.text("id"),
            function_id: r.opt_text("function_id").map(FunctionId::from_stored),
            // Only what `create` and `update` checked is stored.
            function_version: r
                .opt_int("function_version")
                .and_then(VersionRef::from_wire),
            function_alias: r.opt_text("function_alias"),
            description: r.opt_text("description"),
            project_id: r.text("project_id"),
            created_at: r.text("created_at"),
            updated_at: r.opt_text("updated_at"),
        }
    }

    /// The webhook as Qinling renders it, with its `webhook_url` under `base_url` (the
    /// deployment's public URL, or else the URL the client used).
    pub fn to_json(&self, base_url: &str) -> Json {
        json!({
            "id": self.id,
            "function_id": self.function_id,
            "function_version": self.function_version,
            "function_alias": self.function_alias,
            "description": self.description,
            "project_id": self.project_id,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "webhook_url": format!(
                "{}/v1/webhooks/{}/invoke",
                base_url.trim_end_matches('/'),
                self.id
            ),
        })
    }

    fn target(&self) -> Option<WebhookTarget> {
        match (&self.function_alias, &self.function_id) {
            (Some(name), _) => Some(WebhookTarget::Alias(name.clone())),
            (None, Some(id)) => Some(WebhookTarget::Function {
                id: id.clone(),
                version: self.function_version,
            }),
            (None, None) => None,
        }
    }
}

pub fn not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("Webhook not found [id={id}]"))
}

fn select(db: &dyn Database, id: &str) -> ApiResult<Option<Webhook>> {
    Ok(db
        .execute(
            &format!("SELECT {COLUMNS} FROM webhooks WHERE id = ?"),
            &[id.into()],
        )?
        .first()
        .map(Webhook::from_row))
}

/// The webhook with `id`: the caller's own, or for an admin any project's.
pub fn find(db: &dyn Database, caller: &Caller, id: &str) -> ApiResult<Webhook> {
    select(db, id)?
        .filter(|w| caller.may_read(&w.project_id))
        .ok_or_else(|| not_found(id))
}

/// The caller's own webhook with `id`, even for an admin (update, as Qinling).
fn find_own(db: &dyn Database, caller: &Caller, id: &str) -> ApiResult<Webhook> {
    select(db, id)?
        .filter(|w| w.project_id == caller.project_id)
        .ok_or_else(|| not_found(id))
}

/// One page of the webhooks in `scope`, by `created_at` then `id`.
pub fn list(db: &dyn Database, scope: &ListScope, page: &Page) -> ApiResult<Paged<Webhook>> {
    let mut query = ListQuery::new("webhooks");
    if let Some(project) = scope.project() {
        query = query.scope("project_id = ?", vec![project.into()]);
    }
    let rows = query.fetch(db, COLUMNS, page)?;
    let items = rows.iter().map(Webhook::from_row).collect();
    Ok(Paged::of(items, page.limit, |w: &Webhook| w.id.clone()))
}

/// "Even admin can not expose normal user's function": an alias must be the caller's own;
/// a function too, and a version above 0 must exist.
fn check_target(db: &dyn Database, caller: &Caller, target: &WebhookTarget) -> ApiResult<()> {
    match target {
        WebhookTarget::Alias(name) => {
            aliases::find_own(db, caller, name)?;
        }
        WebhookTarget::Function { id, version } => {
            functions::find_own(db, caller, id.as_str())?;
            if let Some(VersionRef::Number(n)) = version {
                versions::find(db, &crate::store::cache::NoCache, caller, id.as_str(), *n)?;
            }
        }
    }
    Ok(())
}

fn stored(target: &WebhookTarget) -> (Option<FunctionId>, Option<VersionRef>, Option<String>) {
    match target {
        WebhookTarget::Alias(name) => (None, None, Some(name.clone())),
        WebhookTarget::Function { id, version } => (Some(id.clone()), *version, None),
    }
}

pub fn create(db: &dyn Database, caller: &Caller, new: NewWebhook) -> ApiResult<Webhook> {
    let (function_id, function_version, function_alias) = stored(&new.target);
    let webhook = Webhook {
        id: crate::id::new_id(),
        function_id,
        function_version,
        function_alias,
        description: new.description,
        project_id: caller.project_id.clone(),
        created_at: now_timestamp(),
        updated_at: None,
    };
    // One transaction with the check: a function or version deleted meanwhile is either
    // seen as gone (404) or refuses to go because of this webhook (403).
    in_transaction(db, |tx| {
        check_target(tx, caller, &new.target)?;
        tx.execute(
            &format!("INSERT INTO webhooks ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, NULL)"),
            &[
                webhook.id.as_str().into(),
                webhook.function_id.as_ref().into(),
                webhook.function_version.map(VersionRef::to_wire).into(),
                webhook.function_alias.clone().into(),
                webhook.description.clone().into(),
                webhook.project_id.as_str().into(),
                webhook.created_at.as_str().into(),
            ],
        )?;
        Ok(webhook.clone())
    })
}

/// Qinling's update rules: a new alias replaces the function and version (both null); a
/// changed function or version replaces the alias; the resulting target is checked as on
/// create.
pub fn update(
    db: &dyn Database,
    caller: &Caller,
    id: &str,
    changes: &WebhookChanges,
) -> ApiResult<Webhook> {
    in_transaction(db, |tx| update_in(tx, caller, id, changes))
}

fn update_in(
    db: &dyn Database,
    caller: &Caller,
    id: &str,
    changes: &WebhookChanges,
) -> ApiResult<Webhook> {
    let mut webhook = find_own(db, caller, id)?;
    let before = webhook.clone();
    let new_alias = changes
        .alias
        .as_ref()
        .filter(|a| Some(*a) != before.function_alias.as_ref());
    let function_id = changes.function_id.clone().or(before.function_id.clone());
    let version = changes.version.or(before.function_version);
    if let Some(alias) = new_alias {
        webhook.function_alias = Some(alias.clone());
        webhook.function_id = None;
        webhook.function_version = None;
    } else if function_id != before.function_id || version != before.function_version {
        webhook.function_alias = None;
        webhook.function_id = function_id;
        webhook.function_version = version;
    }
    if let Some(d) = &changes.description {
        webhook.description = Some(d.clone());
    }
    if webhook == before {
        return Ok(webhook);
    }
    let target = webhook.target().ok_or_else(|| {
        ApiError::bad_request("Either function_alias or function_id must be provided.")
    })?;
    check_target(db, caller, &target)?;
    webhook.updated_at = Some(now_timestamp());
    db.execute(
        "UPDATE webhooks SET function_id = ?, function_version = ?, function_alias = ?,
         description = ?, updated_at = ? WHERE id = ?",
        &[
            webhook.function_id.as_ref().into(),
            webhook.function_version.map(VersionRef::to_wire).into(),
            webhook.function_alias.clone().into(),
            webhook.description.clone().into(),
            webhook.updated_at.clone().into(),
            webhook.id.as_str().into(),
        ],
    )?;
    Ok(webhook)
}

/// Deletes the webhook (the caller's own, or for an admin any project's, as Qinling).
pub fn delete(db: &dyn Database, caller: &Caller, id: &str) -> ApiResult<()> {
    let webhook = find(db, caller, id)?;
    db.execute(
        "DELETE FROM webhooks WHERE id = ?",
        &[webhook.id.as_str().into()],
    )?;
    Ok(())
}

/// Runs the webhook `id` for a request without a token: an asynchronous execution, in the
/// webhook's project, of its function version or of what its alias names now, with the
/// request's parameters as input. `service_token` gives Spinling's own token (auth mode
/// `keystone`), which the runtime presents to fetch the package.
pub fn invoke(
    db: &dyn Database,
    cache: &dyn Cache,
    id: &str,
    params: Map<String, Json>,
    routing_key: Option<String>,
    service_token: &dyn Fn() -> ApiResult<Option<String>>,
) -> ApiResult<(Execution, Job)> {
    let webhook = select(db, id)?.ok_or_else(|| not_found(id))?;
    let service_token = service_token()?;
    let caller = Caller::acting_for(&webhook.project_id, service_token.is_some(), service_token);
    let target = match webhook.target() {
        Some(WebhookTarget::Alias(name)) => ExecutionTarget::Alias(name),
        Some(WebhookTarget::Function { id, version }) => ExecutionTarget::Function {
            id,
            version: version.unwrap_or(VersionRef::Current),
        },
        None => return Err(not_found(id)),
    };
    executions::create(
        db,
        cache,
        &caller,
        &NewExecution {
            id: None,
            target,
            description: Some(format!("Created by Webhook {}", webhook.id)),
            sync: false,
            input: Some(Json::Object(params)),
            routing_key,
        },
    )
}
