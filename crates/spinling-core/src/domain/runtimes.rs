//! Runtimes: where functions run. Either the built-in WebAssembly runtime or an external
//! worker speaking Qinling's worker protocol, reached by URL.

use crate::domain::commands::{NewRuntime, RuntimeChanges};
use crate::domain::context::Caller;
use crate::domain::rules::Rules;
use crate::domain::types::{RuntimeId, RuntimeStatus};
use crate::domain::workers::{Executor, Job, WorkerFailure, WorkerReply, BUILTIN_WASM_IMAGE};
use crate::error::{ApiError, ApiResult};
use crate::store::db::{in_transaction, Database, Row};
use crate::time::now_timestamp;
use serde_json::{json, Value as Json};

/// Asks an external worker whether it is up (`GET <url>/ping` answering 2xx).
pub trait WorkerProbe {
    fn is_up(&self, base_url: &str) -> bool;
}

#[derive(Debug, Clone, PartialEq)]
pub struct Runtime {
    pub id: RuntimeId,
    pub name: Option<String>,
    pub description: Option<String>,
    pub image: String,
    pub status: RuntimeStatus,
    pub is_public: bool,
    pub trusted: bool,
    pub project_id: String,
    pub created_at: String,
    pub updated_at: Option<String>,
}

const COLUMNS: &str =
    "id, name, description, image, status, is_public, trusted, project_id, created_at, updated_at";

impl Runtime {
    fn from_row(r: Row) -> Runtime {
        Runtime {
            id: RuntimeId::from_stored(r.text("id")),
            name: r.opt_text("name"),
            description: r.opt_text("description"),
            image: r.text("image"),
            // Only the two statuses are ever written.
            status: RuntimeStatus::parse(&r.text("status")).unwrap_or(RuntimeStatus::Error),
            is_public: r.bool("is_public"),
            trusted: r.bool("trusted"),
            project_id: r.text("project_id"),
            created_at: r.text("created_at"),
            updated_at: r.opt_text("updated_at"),
        }
    }

    pub fn to_json(&self) -> Json {
        json!({
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "image": self.image,
            "status": self.status,
            "is_public": self.is_public,
            "trusted": self.trusted,
            "project_id": self.project_id,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        })
    }

    pub fn is_builtin(&self) -> bool {
        self.image == BUILTIN_WASM_IMAGE
    }

    pub fn is_available(&self) -> bool {
        self.status == RuntimeStatus::Available
    }
}

fn not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("Runtime not found [id={id}]"))
}

/// The runtime with `id`, if the caller can see it (own, public, or admin).
pub fn find(db: &dyn Database, caller: &Caller, id: &str) -> ApiResult<Runtime> {
    db.execute(
        &format!("SELECT {COLUMNS} FROM runtimes WHERE id = ?"),
        &[id.into()],
    )?
    .first()
    .map(Runtime::from_row)
    .filter(|r| r.is_public || caller.may_read(&r.project_id))
    .ok_or_else(|| not_found(id))
}

/// One page of the runtimes the caller sees (its own and the public ones), by `created_at`
/// then `id`.
pub fn list(
    db: &dyn Database,
    caller: &Caller,
    page: &crate::store::filters::Page,
) -> ApiResult<crate::store::filters::Paged<Runtime>> {
    let rows = crate::store::filters::ListQuery::new("runtimes")
        .scope(
            "project_id = ? OR is_public = 1",
            vec![caller.project_id.as_str().into()],
        )
        .fetch(db, COLUMNS, page)?;
    let items = rows.iter().map(Runtime::from_row).collect();
    Ok(crate::store::filters::Paged::of(
        items,
        page.limit,
        |r: &Runtime| r.id.to_string(),
    ))
}

/// Decides the status an image gets: the built-in runtime is always available; a worker URL
/// must be on an allowed host and is `available` when it answers its ping.
fn status_of_image(
    image: &str,
    rules: &Rules,
    probe: &dyn WorkerProbe,
) -> ApiResult<RuntimeStatus> {
    if image == BUILTIN_WASM_IMAGE {
        return Ok(RuntimeStatus::Available);
    }
    let host = worker_host(image).ok_or_else(|| {
        ApiError::bad_request(format!(
            "Invalid runtime image {image}: use \"{BUILTIN_WASM_IMAGE}\" or the http(s):// URL of a worker."
        ))
    })?;
    if !rules.worker_host_allowed(&host) {
        return Err(ApiError::bad_request(format!(
            "Runtime worker host {host} is not allowed; allowed hosts: {}.",
            rules.worker_hosts.join(", ")
        )));
    }
    Ok(if probe.is_up(image) {
        RuntimeStatus::Available
    } else {
        RuntimeStatus::Error
    })
}

/// Runs jobs with `executor`, but only on a worker whose host `worker_hosts` allows when the
/// job runs: a runtime registered while the variable allowed its host is no longer called once
/// the operator has narrowed it. Such an execution fails, saying why.
pub struct AllowedWorkers<'a> {
    pub rules: &'a Rules,
    pub executor: &'a dyn Executor,
}

impl Executor for AllowedWorkers<'_> {
    fn execute(&self, job: &Job, download_url: &str) -> Result<WorkerReply, WorkerFailure> {
        if job.runtime_image != BUILTIN_WASM_IMAGE {
            let host = worker_host(&job.runtime_image).unwrap_or_default();
            if !self.rules.worker_host_allowed(&host) {
                return Err(WorkerFailure::Rejected(format!(
                    "Runtime worker host {host} is no longer allowed; allowed hosts: {}. Set the Spin variable worker_hosts to run it.",
                    self.rules.worker_hosts.join(", ")
                )));
            }
        }
        self.executor.execute(job, download_url)
    }
}

/// The host of an `http(s)://host[:port][/path]` URL, lower-cased.
pub fn worker_host(url: &str) -> Option<String> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))?;
    let authority = rest.split(['/', '?', '#']).next()?;
    if authority.contains('@') || authority.is_empty() {
        return None;
    }
    let host = if authority.starts_with('[') {
        &authority[..=authority.find(']')?]
    } else {
        authority.split(':').next()?
    };
    if let Some((_, port)) = authority
        .rsplit_once(':')
        .filter(|(h, _)| !h.ends_with('['))
    {
        if !authority.ends_with(']') && port.parse::<u16>().is_err() {
            return None;
        }
    }
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

pub fn create(
    db: &dyn Database,
    caller: &Caller,
    rules: &Rules,
    probe: &dyn WorkerProbe,
    new: NewRuntime,
) -> ApiResult<Runtime> {
    caller.require_admin()?;
    let status = status_of_image(&new.image, rules, probe)?;
    let runtime = Runtime {
        id: new.id.unwrap_or_else(RuntimeId::generate),
        name: new.name,
        description: new.description,
        image: new.image,
        status,
        is_public: new.is_public,
        trusted: new.trusted,
        project_id: caller.project_id.clone(),
        created_at: now_timestamp(),
        updated_at: None,
    };
    let inserted = db.execute(
        &format!(
            "INSERT INTO runtimes ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, NULL)
             ON CONFLICT DO NOTHING RETURNING id"
        ),
        &[
            (&runtime.id).into(),
            runtime.name.clone().into(),
            runtime.description.clone().into(),
            runtime.image.as_str().into(),
            runtime.status.as_str().into(),
            runtime.is_public.into(),
            runtime.trusted.into(),
            runtime.project_id.as_str().into(),
            runtime.created_at.as_str().into(),
        ],
    )?;
    if inserted.first().is_none() {
        return Err(ApiError::bad_request("Duplicate entry for Runtime: ['id']"));
    }
    Ok(runtime)
}

pub fn update(
    db: &dyn Database,
    caller: &Caller,
    rules: &Rules,
    probe: &dyn WorkerProbe,
    id: &str,
    changes: &RuntimeChanges,
) -> ApiResult<Runtime> {
    caller.require_admin()?;
    find(db, caller, id)?;
    // Giving an image (even the same one) probes the worker again, so an admin can bring a
    // runtime in `error` back once its worker is up. The probe is a network call: it runs
    // before the write lock is taken, and the row is read and written in one transaction so
    // that a concurrent update of other fields is never written back over.
    let image = match &changes.image {
        Some(image) => Some((status_of_image(image, rules, probe)?, image.clone())),
        None => None,
    };
    in_transaction(db, |tx| {
        let mut runtime = find(tx, caller, id)?;
        if let Some((status, image)) = &image {
            runtime.status = *status;
            runtime.image = image.clone();
        }
        if let Some(name) = &changes.name {
            runtime.name = Some(name.clone());
        }
        if let Some(description) = &changes.description {
            runtime.description = Some(description.clone());
        }
        runtime.updated_at = Some(now_timestamp());
        tx.execute(
            "UPDATE runtimes SET name = ?, description = ?, image = ?, status = ?, updated_at = ?
             WHERE id = ?",
            &[
                runtime.name.clone().into(),
                runtime.description.clone().into(),
                runtime.image.as_str().into(),
                runtime.status.as_str().into(),
                runtime.updated_at.clone().into(),
                id.into(),
            ],
        )?;
        Ok(runtime)
    })
}

pub fn delete(db: &dyn Database, caller: &Caller, id: &str) -> ApiResult<()> {
    caller.require_admin()?;
    in_transaction(db, |tx| {
        find(tx, caller, id)?;
        let in_use = tx
            .execute(
                "SELECT 1 FROM functions WHERE runtime_id = ? LIMIT 1",
                &[id.into()],
            )?
            .first()
            .is_some();
        if in_use {
            return Err(ApiError::forbidden(format!(
                "Runtime {id} is still in use."
            )));
        }
        tx.execute("DELETE FROM runtimes WHERE id = ?", &[id.into()])?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_hosts_are_read_from_urls() {
        assert_eq!(
            worker_host("http://127.0.0.1:9090").as_deref(),
            Some("127.0.0.1")
        );
        assert_eq!(
            worker_host("https://Worker.example.org/base").as_deref(),
            Some("worker.example.org")
        );
        assert_eq!(worker_host("http://[::1]:8080/").as_deref(), Some("[::1]"));
        assert_eq!(worker_host("http://user@host/"), None);
        assert_eq!(worker_host("http://host:notaport/"), None);
        assert_eq!(worker_host("openstackqinling/python3-runtime"), None);
        assert_eq!(worker_host("ftp://host"), None);
    }

    /// Answers every job with a success, counting the calls.
    struct Succeeds(std::cell::Cell<u32>);

    impl Executor for Succeeds {
        fn execute(&self, _: &Job, _: &str) -> Result<WorkerReply, WorkerFailure> {
            self.0.set(self.0.get() + 1);
            Ok(WorkerReply {
                output: json!(1),
                duration: 0.0,
                logs: String::new(),
                success: true,
            })
        }
    }

    fn job(image: &str) -> Job {
        Job {
            execution_id: crate::domain::types::ExecutionId::generate(),
            runtime_image: image.into(),
            function_id: crate::domain::types::FunctionId::generate(),
            function_version: crate::domain::types::VersionRef::Current,
            entry: None,
            cpu: 100,
            memory_size: 1,
            timeout: 1,
            input: None,
            package_md5: String::new(),
            token: None,
        }
    }

    #[test]
    fn a_job_s_token_is_redacted_in_debug_output() {
        let job = Job {
            token: Some("gAAAAAB-secret-token".into()),
            ..job("http://localhost:9090")
        };
        let printed = format!("{job:?}");
        assert!(!printed.contains("secret"), "{printed}");
        assert!(printed.contains("token: Some(<redacted>)"), "{printed}");
    }

    #[test]
    fn a_worker_whose_host_is_no_longer_allowed_is_not_called() {
        let rules = Rules {
            worker_hosts: vec!["localhost".into()],
            ..Rules::default()
        };
        let inner = Succeeds(Default::default());
        let executor = AllowedWorkers {
            rules: &rules,
            executor: &inner,
        };
        let failure = executor
            .execute(&job("http://127.0.0.1:9090"), "http://x")
            .unwrap_err();
        assert_eq!(
            failure.message(),
            "Runtime worker host 127.0.0.1 is no longer allowed; allowed hosts: localhost. Set the Spin variable worker_hosts to run it."
        );
        assert_eq!(inner.0.get(), 0);
        assert!(executor
            .execute(&job("http://localhost:9090"), "http://x")
            .is_ok());
        assert!(executor
            .execute(&job(BUILTIN_WASM_IMAGE), "http://x")
            .is_ok());
        assert_eq!(inner.0.get(), 2);
    }
}
