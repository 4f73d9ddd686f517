//! Everything a Spinling component needs from Spin, in one place: each component's handler is
//! `spinling_spin::serve(request, response_out, Group::X).await`.

pub mod outbound;
mod storage;
mod workers;

pub use storage::{KeyValueCache, SpinDatabase};
pub use workers::{HttpExecutor, HttpWorkerProbe};

use futures::{SinkExt, StreamExt};
use spin_sdk::http::{Fields, IncomingRequest, OutgoingResponse, ResponseOutparam};
use spinling_core::api::{self, Env, Handler};
use spinling_core::cache::{Cache, NoCache};
use spinling_core::context::{Caller, Settings};
use spinling_core::db::Database;
use spinling_core::error::{ApiError, ErrorKind};
use spinling_core::http::{ApiRequest, ApiResponse};
use spinling_core::migrations::{migrate, SelfMigrating};

/// The largest body a non-upload request may carry.
const JSON_BODY_LIMIT: u64 = 1024 * 1024;
/// Room for the multipart framing and form fields around an uploaded package.
const FORM_OVERHEAD: u64 = 1024 * 1024;
/// The size of the pieces a response body is written in.
const WRITE_CHUNK: usize = 1024 * 1024;

/// An endpoint group, one per component: its handler and what it needs. Each component names
/// its own group constant, so the linker keeps only that group's handler in its wasm.
#[derive(Clone, Copy)]
pub struct Group {
    handler: Handler,
    /// Root answers without touching storage: discovery must work even on a broken database.
    needs_database: bool,
    /// Groups that read versions (and cache them) or drop versions (and forget them).
    uses_cache: bool,
    /// Function create and update carry packages, up to `max_package_size`.
    takes_packages: bool,
}

impl Group {
    const fn new(handler: Handler) -> Group {
        Group {
            handler,
            needs_database: true,
            uses_cache: false,
            takes_packages: false,
        }
    }
    pub const ROOT: Group = Group {
        needs_database: false,
        ..Group::new(api::root::handle)
    };
    pub const RUNTIMES: Group = Group::new(api::runtimes::handle);
    pub const FUNCTIONS: Group = Group {
        uses_cache: true,
        takes_packages: true,
        ..Group::new(api::functions::handle)
    };
    pub const VERSIONS: Group = Group {
        uses_cache: true,
        ..Group::new(api::versions::handle)
    };
    pub const ALIASES: Group = Group::new(api::aliases::handle);
    pub const EXECUTIONS: Group = Group::new(api::executions::handle);
}

/// Reads a Spin variable; an undeclared or unset one reads as `None`.
fn variable(name: &str) -> Option<String> {
    spin_sdk::variables::get(name).ok()
}

fn settings() -> Result<Settings, ApiError> {
    Settings::from_variables(variable).map_err(|e| {
        eprintln!("configuration error: {e}");
        ApiError::internal(format!("Configuration error: {e}"))
    })
}

fn caller(request: &ApiRequest) -> Result<Caller, ApiError> {
    match variable("auth_mode").as_deref().map(str::trim) {
        None | Some("") | Some("none") => Ok(Caller::unauthenticated(request)),
        Some(other) => Err(ApiError::internal(format!(
            "Configuration error: unsupported auth_mode {other:?} (supported: none)"
        ))),
    }
}

/// Serves one request with the group's handler: reads the body within its limit, opens what
/// the group needs, runs the handler, writes the response, and then runs what the handler
/// deferred (asynchronous executions: Spin keeps the instance until this returns).
pub async fn serve(request: IncomingRequest, response_out: ResponseOutparam, group: Group) {
    // Read once: the body limit depends on them, and so does the handler.
    let settings = match settings() {
        Ok(settings) => settings,
        Err(e) => return write_response(response_out, e.into()).await,
    };
    let request = match read_request(request, body_limit(group, &settings)).await {
        Ok(request) => request,
        Err(e) => return write_response(response_out, e.into()).await,
    };
    let resources = match Resources::open(&request, group, settings) {
        Ok(resources) => resources,
        Err(e) => return write_response(response_out, e.into()).await,
    };
    let migrating = resources.db.as_ref().map(|db| SelfMigrating(db));
    let db: &dyn Database = match &migrating {
        Some(db) => db,
        None => &storage::NoDatabase,
    };
    let cache: &dyn Cache = match &resources.cache {
        Some(cache) => cache,
        None => &NoCache,
    };
    let env = Env {
        db,
        cache,
        caller: resources.caller,
        settings: resources.settings,
        workers: &HttpWorkerProbe,
        executor: &HttpExecutor,
        deferred: Default::default(),
    };
    let response = api::respond(group.handler, &env, &request);
    write_response(response_out, response).await;
    env.run_deferred();
}

fn body_limit(group: Group, settings: &Settings) -> u64 {
    if group.takes_packages {
        settings.max_package_size.saturating_add(FORM_OVERHEAD)
    } else {
        JSON_BODY_LIMIT
    }
}

/// What a request is served with.
struct Resources {
    settings: Settings,
    caller: Caller,
    db: Option<SpinDatabase>,
    cache: Option<KeyValueCache>,
}

impl Resources {
    fn open(request: &ApiRequest, group: Group, settings: Settings) -> Result<Resources, ApiError> {
        let caller = caller(request)?;
        let db = match group.needs_database {
            true => Some(open_database(request, &settings)?),
            false => None,
        };
        let cache = group.uses_cache.then(KeyValueCache::open);
        Ok(Resources {
            settings,
            caller,
            db,
            cache,
        })
    }
}

/// Opens the database; a write first brings the schema up to date (a read does so only if it
/// meets a missing table or column: `SelfMigrating`) and sets the configured durability.
fn open_database(request: &ApiRequest, settings: &Settings) -> Result<SpinDatabase, ApiError> {
    let db = SpinDatabase::new();
    if !matches!(request.method.as_str(), "GET" | "HEAD") {
        migrate(&db)?;
        // Per connection; a backend without the pragma (libSQL remote) ignores it.
        let _ = db.execute(
            &format!("PRAGMA synchronous = {}", settings.sqlite_synchronous),
            &[],
        );
    }
    Ok(db)
}

fn too_large(limit: u64) -> ApiError {
    ApiError::new(
        ErrorKind::PayloadTooLarge,
        format!("Request body exceeds the maximum of {limit} bytes."),
    )
}

/// Builds the core's request, reading the body as it streams in and refusing it as soon as
/// it is known to be over `limit` (from Content-Length, or while counting).
pub async fn read_request(request: IncomingRequest, limit: u64) -> Result<ApiRequest, ApiError> {
    let headers: Vec<(String, String)> = request
        .headers()
        .entries()
        .into_iter()
        .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
        .collect();
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    if let Some(length) = header("content-length").and_then(|v| v.trim().parse::<u64>().ok()) {
        if length > limit {
            return Err(too_large(limit));
        }
    }
    let full_url = header("spin-full-url").unwrap_or_else(|| request.uri());
    let method = request.method().to_string();
    let mut body = Vec::new();
    let mut stream = request.into_body_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError::bad_request(format!("Could not read the request body: {e:?}"))
        })?;
        if body.len() as u64 + chunk.len() as u64 > limit {
            return Err(too_large(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(ApiRequest::new(&method, &full_url, headers, body))
}

pub async fn write_response(response_out: ResponseOutparam, response: ApiResponse) {
    let mut headers: Vec<(String, Vec<u8>)> = response
        .headers
        .iter()
        .map(|(k, v)| (k.clone(), v.clone().into_bytes()))
        .collect();
    headers.push((
        "content-length".into(),
        response.body.len().to_string().into_bytes(),
    ));
    let fields = Fields::from_list(&headers).unwrap_or_else(|_| Fields::new());
    let outgoing = OutgoingResponse::new(fields);
    let _ = outgoing.set_status_code(response.status);
    let mut sink = outgoing.take_body();
    response_out.set(outgoing);
    for piece in response.body.chunks(WRITE_CHUNK) {
        if let Err(e) = sink.send(piece.to_vec()).await {
            eprintln!("could not write the response body: {e:?}");
            return;
        }
    }
}
