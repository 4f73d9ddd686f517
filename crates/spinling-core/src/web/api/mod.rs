//! The HTTP handlers of each endpoint group: parse the request, call the domain, render the
//! result. Each Spin component serves one group by calling its `handle`.

pub mod admin;
pub mod aliases;
pub mod executions;
pub mod functions;
pub mod jobs;
pub mod root;
pub mod runtimes;
pub mod versions;
pub mod webhooks;

use crate::domain::context::{Caller, ListScope};
use crate::domain::runtimes::WorkerProbe;
use crate::domain::workers::{Executor, Job};
use crate::error::{ApiError, ApiResult};
use crate::store::cache::Cache;
use crate::store::db::Database;
use crate::store::filters::{Page, Paged};
use crate::web::config::{self, Settings, Variables};
use crate::web::http::{parse_bool, ApiRequest, ApiResponse};
use crate::web::limits::check_query;
use crate::web::listing::{list_scope_of_request, next_link, page_of_request};
use serde_json::Value as Json;
use std::cell::RefCell;

/// What a handler works with besides the request.
pub struct Env<'a> {
    pub db: &'a dyn Database,
    /// Hot reads are cached here; writes forget what they change.
    pub cache: &'a dyn Cache,
    pub caller: Caller,
    pub settings: Settings,
    /// The group's variables, for the settings only some requests read ([`Env::base_url`],
    /// [`Env::max_page_size`]).
    pub variables: &'a Variables<'a>,
    pub workers: &'a dyn WorkerProbe,
    pub executor: &'a dyn Executor,
    /// Spinling's own Keystone token (none in auth mode `none`), for executions that no
    /// caller's token backs: the runtime presents it to fetch their package.
    pub service_token: &'a dyn Fn() -> ApiResult<Option<String>>,
    /// Jobs to run once the response is sent (asynchronous executions), with their
    /// package URLs.
    pub deferred: RefCell<Vec<(Job, String)>>,
    /// The request's body as it streams in, for a group that takes it so (an import: see
    /// `admin`); `None` when the adapter read it into the request.
    pub body_stream: RefCell<Option<Box<dyn std::io::BufRead + 'a>>>,
}

impl<'a> Env<'a> {
    /// Where this API is reached: `public_url`, or else the URL of the request, whose `Host`
    /// the adapter checked (see `hosts`).
    pub fn base_url(&self, request: &ApiRequest) -> ApiResult<String> {
        Ok(config::public_url(self.variables)
            .map_err(config::configuration_error)?
            .unwrap_or_else(|| request.base_url.clone()))
    }

    /// The most rows one page of a list holds (variable `max_page_size`).
    pub fn max_page_size(&self) -> ApiResult<usize> {
        config::max_page_size(self.variables).map_err(config::configuration_error)
    }

    pub fn defer(&self, job: Job, download_url: String) {
        self.deferred.borrow_mut().push((job, download_url));
    }

    /// The request body's stream, once.
    pub fn take_body_stream(&self) -> Option<Box<dyn std::io::BufRead + 'a>> {
        self.body_stream.borrow_mut().take()
    }

    /// Runs the deferred jobs, recording each outcome.
    pub fn run_deferred(&self) {
        for (job, url) in self.deferred.take() {
            let outcome = self.executor.execute(&job, &url);
            if let Err(e) = crate::domain::executions::complete(self.db, &job, outcome) {
                eprintln!(
                    "could not record the end of execution {}: {e}",
                    job.execution_id
                );
            }
        }
    }
}

/// A handler of one endpoint group, given the request and its decoded path segments.
pub type Handler = fn(&Env, &ApiRequest, &[&str]) -> ApiResult<ApiResponse>;

/// Runs a handler, if the query is within its limits, and turns any error into its Qinling
/// error response.
pub fn respond(handler: Handler, env: &Env, request: &ApiRequest) -> ApiResponse {
    let segments = request.segments();
    let path: Vec<&str> = segments.iter().map(String::as_str).collect();
    check_query(request)
        .and_then(|()| handler(env, request, &path))
        .unwrap_or_else(ApiResponse::from)
}

/// `{"<key>": [...]}`: Qinling wraps every list. When more rows follow this page, `"next"`
/// links to the next one (an absolute URL under the public URL, or else the URL the client
/// used); Qinling's clients ignore it.
pub fn wrapped<T, R: serde::Serialize>(
    env: &Env,
    request: &ApiRequest,
    key: &str,
    page: &Paged<T>,
    render: impl Fn(&T) -> R,
) -> ApiResult<ApiResponse> {
    let next = match &page.next_marker {
        Some(marker) => Some(next_link(request, &env.base_url(request)?, marker)),
        None => None,
    };
    Ok(ApiResponse::ok(&WrappedList {
        key,
        items: page.items.iter().map(render).collect(),
        next,
    }))
}

/// A list's body as [`wrapped`] sends it: written straight from the items, in the order a JSON
/// object of the two keys would have them (sorted).
struct WrappedList<'a, R> {
    key: &'a str,
    items: Vec<R>,
    next: Option<String>,
}

impl<R: serde::Serialize> serde::Serialize for WrappedList<'_, R> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(1 + usize::from(self.next.is_some())))?;
        let next_first = self.next.is_some() && "next" < self.key;
        if next_first {
            map.serialize_entry("next", &self.next)?;
        }
        map.serialize_entry(self.key, &self.items)?;
        if !next_first {
            if let Some(next) = &self.next {
                map.serialize_entry("next", next)?;
            }
        }
        map.end()
    }
}

/// A list of one project-scoped resource (`?all_projects=`/`?project_id=`, `?limit=`/
/// `?marker=`), wrapped under `key` as Qinling does.
fn scoped_list<T>(
    env: &Env,
    request: &ApiRequest,
    key: &str,
    list: impl FnOnce(&ListScope, &Page) -> ApiResult<Paged<T>>,
    render: impl Fn(&T) -> Json,
) -> ApiResult<ApiResponse> {
    request.only_query_params(&["all_projects", "project_id", "limit", "marker"])?;
    let scope = list_scope_of_request(&env.caller, request)?;
    let page = page_of(env, request)?;
    wrapped(env, request, key, &list(&scope, &page)?, render)
}

/// The page a list request asks for, within the deployment's maximum page size.
fn page_of(env: &Env, request: &ApiRequest) -> ApiResult<Page> {
    page_of_request(request, env.max_page_size()?)
}

/// Whether `?download=` asks for the package bytes.
fn wants_download(request: &ApiRequest) -> ApiResult<bool> {
    match request.query_param("download") {
        None => Ok(false),
        Some(v) => parse_bool(v).ok_or_else(|| {
            ApiError::bad_request(format!(
                "Invalid input for field/attribute download. Value: '{v}'. Wrong type. Expected a boolean."
            ))
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::WrappedList;
    use serde_json::json;

    #[test]
    fn a_list_body_is_written_as_the_json_object_of_its_keys_would_be() {
        for key in ["functions", "runtimes"] {
            for next in [None, Some("http://h/v1/x?marker=m".to_string())] {
                let items = vec![json!({"b": 1, "a": [2]}), json!(null)];
                let mut object = serde_json::Map::new();
                object.insert(key.into(), items.clone().into());
                if let Some(next) = &next {
                    object.insert("next".into(), next.clone().into());
                }
                let written = serde_json::to_string(&WrappedList { key, items, next }).unwrap();
                assert_eq!(written, serde_json::Value::Object(object).to_string());
            }
        }
    }
}
