//! Everything a Spinling component needs from Spin, in one place: each component's handler is
//! `spinling_spin::serve(request, response_out, Group::X).await`.

mod identity;
pub mod outbound;
mod respond;
mod scheduler;
mod storage;
mod workers;

use respond::send_response;
pub use respond::write_response;
pub use storage::{KeyValueCache, SpinDatabase};
pub use workers::{HttpExecutor, HttpWorkerProbe};

use identity::HttpIdentity;
use spin_sdk::http::{IncomingRequest, Method, ResponseOutparam};
use spinling_core::domain::context::Caller;
use spinling_core::domain::jobs;
use spinling_core::domain::runtimes::AllowedWorkers;
use spinling_core::error::{ApiError, ErrorKind};
use spinling_core::store::cache::{Cache, NoCache};
use spinling_core::store::db::{Database, Dialect};
use spinling_core::store::durability::SqliteSynchronous;
use spinling_core::store::migrations::{migrate_looking, SelfMigrating};
use spinling_core::time::now_unix;
use spinling_core::web::api::{self, Env, Handler};
use spinling_core::web::auth::{caller_without_auth, Keystone};
use spinling_core::web::config::{
    self, configuration_error, groups, AuthMode, DatabaseChoice, Reads, Settings, Variables,
};
use spinling_core::web::cors;
use spinling_core::web::forms::PackageHasher;
use spinling_core::web::hosts;
use spinling_core::web::http::{ApiRequest, ApiResponse, Body, Bytes};
use wasi::io::streams::StreamError;

/// Room for the multipart framing and form fields around an uploaded package.
const FORM_OVERHEAD: u64 = 1024 * 1024;
/// The most one read of a request body asks for.
const BODY_READ_SIZE: u64 = 1024 * 1024;

/// An endpoint group, one per component: its handler and what it needs. Each component names
/// its own group constant, so the linker keeps only that group's handler in its wasm.
#[derive(Clone, Copy)]
pub struct Group {
    handler: Handler,
    /// Root answers without touching storage: discovery must work even on a broken database.
    needs_database: bool,
    /// Root (`/`, `/v1/`, unknown paths) is open to anyone, as in Qinling.
    authenticates: bool,
    /// Paths of an authenticating group that are open to anyone all the same (a webhook's
    /// invoke); they keep the site guard and the body limit.
    open_path: fn(&ApiRequest) -> bool,
    /// Groups that read versions (and cache them) or change them (and forget them).
    uses_cache: bool,
    /// Function create and update carry packages, up to `max_package_size`.
    takes_packages: bool,
    /// The Spin variables it reads: all that `spin.toml` maps into its component.
    variables: Reads,
    /// The jobs group also serves the scheduler's loop (see `scheduler`).
    runs_scheduler: bool,
    /// Its writes may set a job or a rollout running (or import one): whether the scheduler's
    /// loop is wanted is looked at after them. Another group's write looks when it opens the
    /// database, in the statement that checks the schema (`open_database`).
    starts_scheduled_work: bool,
    /// The handler reads the body as it streams in (`Env::take_body_stream`), with no limit
    /// but the caller's: an import of a whole database.
    streams_body: bool,
}

impl Group {
    const fn new(handler: Handler, variables: Reads) -> Group {
        Group {
            handler,
            needs_database: true,
            authenticates: true,
            open_path: |_| false,
            uses_cache: false,
            takes_packages: false,
            variables,
            runs_scheduler: false,
            starts_scheduled_work: false,
            streams_body: false,
        }
    }
    pub const ROOT: Group = Group {
        needs_database: false,
        authenticates: false,
        ..Group::new(api::root::handle, groups::ROOT)
    };
    pub const RUNTIMES: Group = Group::new(api::runtimes::handle, groups::RUNTIMES);
    /// Backup and restore: `/v1/admin/export` and `/v1/admin/import`, admins only.
    pub const ADMIN: Group = Group {
        streams_body: true,
        starts_scheduled_work: true,
        ..Group::new(api::admin::handle, groups::ADMIN)
    };
    pub const FUNCTIONS: Group = Group {
        uses_cache: true,
        takes_packages: true,
        ..Group::new(api::functions::handle, groups::FUNCTIONS)
    };
    pub const VERSIONS: Group = Group {
        uses_cache: true,
        ..Group::new(api::versions::handle, groups::VERSIONS)
    };
    /// An alias's rollout runs on the scheduler's loop.
    pub const ALIASES: Group = Group {
        starts_scheduled_work: true,
        ..Group::new(api::aliases::handle, groups::ALIASES)
    };
    /// Also `GET /healthz`, open to anyone (probes have no token), which starts the loop.
    pub const JOBS: Group = Group {
        uses_cache: true,
        runs_scheduler: true,
        starts_scheduled_work: true,
        open_path: api::jobs::is_open_path,
        ..Group::new(api::jobs::handle, groups::JOBS)
    };
    pub const EXECUTIONS: Group = Group {
        uses_cache: true,
        ..Group::new(api::executions::handle, groups::EXECUTIONS)
    };
    /// `POST /v1/webhooks/{id}/invoke` needs no token (it runs an execution, as executions do).
    pub const WEBHOOKS: Group = Group {
        uses_cache: true,
        open_path: api::webhooks::is_open_path,
        ..Group::new(api::webhooks::handle, groups::WEBHOOKS)
    };
}

/// Reads a Spin variable; one the component does not map, or an unset one, reads as `None`.
fn spin_variable(name: &str) -> Option<String> {
    spin_sdk::variables::get(name).ok()
}

/// The caller as `auth_mode` says: anyone (`none`) or the owner of a validated token.
fn caller(
    request: &ApiRequest,
    group: Group,
    variables: &Variables,
    cache: &dyn Cache,
) -> Result<Caller, ApiError> {
    if !group.authenticates || (group.open_path)(request) {
        return Ok(caller_without_auth(request));
    }
    match AuthMode::from_variables(variables).map_err(configuration_error)? {
        AuthMode::None => Ok(caller_without_auth(request)),
        AuthMode::Keystone(config) => Keystone {
            config: &config,
            transport: &HttpIdentity,
            cache,
        }
        .authenticate(request, now_unix()),
    }
}

/// Spinling's own Keystone token in auth mode `keystone` (cached in key-value, as for
/// validating callers), or none.
fn service_token(variables: &Variables, cache: &dyn Cache) -> Result<Option<String>, ApiError> {
    match AuthMode::from_variables(variables).map_err(configuration_error)? {
        AuthMode::None => Ok(None),
        AuthMode::Keystone(config) => Keystone {
            config: &config,
            transport: &HttpIdentity,
            cache,
        }
        .job_token(now_unix())
        .map(Some),
    }
}

/// Serves one request with the group's handler: in auth mode `none`, refuses a request for a
/// host or from a site not allowed; answers a CORS preflight at once; otherwise identifies the
/// caller, reads the body within its limit, opens the database, runs the
/// handler, writes the response with its CORS headers, and then runs what the handler deferred (asynchronous
/// executions: Spin keeps the instance until this returns).
pub async fn serve(request: IncomingRequest, response_out: ResponseOutparam, group: Group) {
    // Read once: CORS and the body limit depend on them, and so does the handler. Each read
    // is a host call that Spin resolves on a blocking thread (its environment provider), so
    // none is asked twice in one request.
    let read = std::cell::RefCell::new(Vec::<(String, Option<String>)>::new());
    let memo = |name: &str| {
        if let Some((_, value)) = read.borrow().iter().find(|(n, _)| n == name) {
            return value.clone();
        }
        let value = spin_variable(name);
        read.borrow_mut().push((name.to_string(), value.clone()));
        value
    };
    let variables = Variables::new(group.variables, &memo);
    let variables = match request.method() {
        Method::Get | Method::Head | Method::Options => variables.for_reads(),
        _ => variables,
    };
    let settings = match Settings::from_variables(&variables).map_err(configuration_error) {
        Ok(settings) => settings,
        Err(e) => return write_response(response_out, e.into()).await,
    };
    spinling_core::store::packages::set_write_grace_seconds(settings.package_write_grace_seconds);
    let mut head = request_head(&request);
    // First of all: a page of another site gets nothing from a laptop's API.
    // In every auth mode: the Host decides where links point and, without `public_url`,
    // where workers fetch packages with a token.
    let allowed_hosts = || config::allowed_hosts(&variables).map_err(configuration_error);
    let site_guard = hosts::SiteGuard {
        hosts: &allowed_hosts,
        guards_origins: settings.guards_origins,
    };
    if let Err(e) = hosts::check_site(&site_guard, &settings.cors_allowed_origins, &head) {
        return write_response(response_out, e.into()).await;
    }
    // The scheduler's loop and runs have no token: the lease's holder id opens them.
    if group.runs_scheduler
        && (scheduler::is_loop_request(&head) || scheduler::is_run_request(&head))
    {
        return serve_scheduler(request, response_out, head, &settings, &variables).await;
    }
    // Before authentication, the body and storage: browsers send preflights without a token.
    if let Some(answer) = cors::preflight(&settings.cors_allowed_origins, &head) {
        return write_response(response_out, answer).await;
    }
    // Every answer from here on carries them, a 413 or a 401 too.
    let cors_headers = cors::response_headers(&settings.cors_allowed_origins, &head);
    let with_cors = |mut response: ApiResponse| {
        response.headers.extend(cors_headers.iter().cloned());
        response
    };
    let key_value = KeyValueCache::open(settings.key_value_scope);
    // Before the body: a caller without a valid token does not get to upload 50 MiB.
    let caller = match caller(&head, group, &variables, &key_value) {
        Ok(caller) => caller,
        Err(e) => return write_response(response_out, with_cors(e.into())).await,
    };
    let mut body_stream: Option<Box<dyn std::io::BufRead>> = None;
    if group.streams_body {
        match body_reader(request) {
            Ok(reader) => {
                body_stream = Some(Box::new(std::io::BufReader::with_capacity(
                    BODY_READ_SIZE as usize,
                    reader,
                )))
            }
            Err(e) => return write_response(response_out, with_cors(e.into())).await,
        }
    } else {
        let limit = body_limit(group, &settings, &head);
        let mut package_hasher = match group.takes_packages {
            true => PackageHasher::for_request(&head),
            false => None,
        };
        head.body = match read_body(request, &head, limit, package_hasher.as_mut()).await {
            Ok(body) => body,
            Err(e) => return write_response(response_out, with_cors(e.into())).await,
        };
        head.package_checksums = package_hasher.and_then(PackageHasher::finish);
    }
    let request = head;
    let (spin_db, loop_look) = match group.needs_database {
        true => match open_database(&request, &settings, &variables) {
            Ok((db, look)) => (Some(db), look),
            Err(e) => return write_response(response_out, with_cors(e.into())).await,
        },
        false => (None, None),
    };
    let migrating = spin_db.as_ref().map(|db| SelfMigrating(db));
    let db: &dyn Database = match &migrating {
        Some(db) => db,
        None => &storage::NoDatabase,
    };
    let cache: &dyn Cache = match group.uses_cache {
        true => &key_value,
        false => &NoCache,
    };
    // `worker_hosts` is checked again when a job runs, not only when its runtime was created.
    let worker_rules = settings.rules.clone();
    let executor = AllowedWorkers {
        rules: &worker_rules,
        executor: &HttpExecutor,
    };
    let service_token = || service_token(&variables, &key_value);
    let env = Env {
        db,
        cache,
        caller,
        settings,
        variables: &variables,
        workers: &HttpWorkerProbe,
        executor: &executor,
        service_token: &service_token,
        deferred: Default::default(),
        body_stream: std::cell::RefCell::new(body_stream),
    };
    let response = api::respond(group.handler, &env, &request);
    // A download is a read, whose settings leave the package store's grace period out: it is
    // asked for now, when a package is to be sent (its stamp is renewed within it).
    let response = match response.body {
        Body::Package(_) | Body::Archive(_) => {
            match config::package_write_grace_seconds(&Variables::new(group.variables, &memo)) {
                Ok(grace) => {
                    spinling_core::store::packages::set_write_grace_seconds(grace);
                    response
                }
                Err(e) => configuration_error(e).into(),
            }
        }
        Body::Bytes(_) => response,
    };
    // Before the response: a newer Spin may end the instance's work once it is sent. Only a
    // request that opened the database anyway pays for the look at the lease: a read served
    // from the cache stays free of SQLite.
    if spin_db.as_ref().is_some_and(SpinDatabase::is_open) {
        // A look made before a work that started nothing scheduled still holds after it.
        let not_wanted = loop_look == Some(false) && !group.starts_scheduled_work;
        if !not_wanted {
            scheduler::kick(db);
        }
    }
    send_response(response_out, with_cors(response), db).await;
    // An upload's connection left the checkpoint for after the answer (see `packages`).
    let may_have_uploaded = group.takes_packages && request.content_type() == "multipart/form-data";
    if may_have_uploaded && spin_db.as_ref().is_some_and(SpinDatabase::is_open) {
        spinling_core::store::packages::checkpoint(db);
    }
    env.run_deferred();
}

/// Answers a loop or run request of the scheduler whose holder holds the lease with 202 and
/// then loops, or runs the execution it hands over (see `scheduler`); any other gets a 404.
async fn serve_scheduler(
    request: IncomingRequest,
    response_out: ResponseOutparam,
    mut head: ApiRequest,
    settings: &Settings,
    variables: &Variables<'_>,
) {
    head.body = match read_body(request, &head, settings.max_request_body, None).await {
        Ok(body) => body,
        Err(e) => return write_response(response_out, e.into()).await,
    };
    // No migration: a loop is only ever started on a database a request has opened, and a
    // stranger's request must not write.
    let db = SpinDatabase::new(|| DatabaseChoice::from_variables(variables));
    let is_run = scheduler::is_run_request(&head);
    let (order, run) = match is_run {
        false => (scheduler::LoopOrder::accept(&db, &head.body), None),
        true => (None, scheduler::RunOrder::accept(&db, &head.body)),
    };
    if order.is_none() && run.is_none() {
        return write_response(response_out, ApiError::path_not_found().into()).await;
    }
    write_response(response_out, ApiResponse::empty(202)).await;
    let key_value = KeyValueCache::open(settings.key_value_scope);
    let executor = AllowedWorkers {
        rules: &settings.rules,
        executor: &HttpExecutor,
    };
    let token = || {
        service_token(variables, &key_value).unwrap_or_else(|e| {
            eprintln!("scheduler: no service token: {}", e.log_line());
            None
        })
    };
    let public_url = config::public_url(variables).unwrap_or_else(|e| {
        eprintln!("scheduler: configuration error: {e}");
        None
    });
    let public_url = public_url.as_deref();
    if let Some(order) = order {
        scheduler::run(&db, &key_value, &order, &executor, public_url, &token);
    }
    if let Some(run) = run {
        scheduler::run_fired(&db, &executor, public_url, &token, run.run);
    }
}

/// Packages travel in multipart bodies only: any other body is held to `max_request_body`.
fn body_limit(group: Group, settings: &Settings, head: &ApiRequest) -> u64 {
    if group.takes_packages && head.content_type() == "multipart/form-data" {
        settings
            .rules
            .max_package_size
            .saturating_add(FORM_OVERHEAD)
    } else {
        settings.max_request_body
    }
}

/// Opens the database; a write first brings the schema up to date (a read does so only if it
/// meets a missing table or column: `SelfMigrating`) and sets the configured durability. A
/// write also looks, in the statement that checks the schema's version, at whether the
/// scheduler's loop is wanted: the look, when it could be made.
fn open_database<'a>(
    request: &ApiRequest,
    settings: &Settings,
    variables: &'a Variables,
) -> Result<(SpinDatabase<'a>, Option<bool>), ApiError> {
    let db = SpinDatabase::new(|| DatabaseChoice::from_variables(variables));
    let mut loop_look = None;
    if !matches!(request.method.as_str(), "GET" | "HEAD") {
        let look = migrate_looking(&db, jobs::LEASE_LOOK, &jobs::lease_look_params())?;
        loop_look = look
            .as_ref()
            .and_then(|rows| rows.first())
            .map(|row| jobs::loop_wanted(&row, now_unix()));
        // Per connection. FULL is SQLite's default (`SQLITE_DEFAULT_SYNCHRONOUS`, which the
        // SQLite Spin bundles through rusqlite keeps; the benchmark checks a fresh connection
        // says so), so only NORMAL costs a statement. A backend without the pragma (libSQL
        // remote) ignores it.
        if settings.rules.sqlite_synchronous != SqliteSynchronous::Full
            && db.dialect() == Dialect::Sqlite
        {
            let _ = db.execute(
                &format!(
                    "PRAGMA synchronous = {}",
                    settings.rules.sqlite_synchronous.pragma_value()
                ),
                &[],
            );
        }
    }
    Ok((db, loop_look))
}

fn too_large(limit: u64) -> ApiError {
    ApiError::new(
        ErrorKind::PayloadTooLarge,
        format!("Request body exceeds the maximum of {limit} bytes."),
    )
}

/// Builds the core's request, reading the body within `limit`.
pub async fn read_request(request: IncomingRequest, limit: u64) -> Result<ApiRequest, ApiError> {
    let mut head = request_head(&request);
    head.body = read_body(request, &head, limit, None).await?;
    Ok(head)
}

/// The core's request before its body is read: method, URL and headers.
///
/// The URL is Spin's `spin-full-url`. Spin keeps the client's headers and appends its own
/// after them (crates/trigger-http: `prepare_request_headers`, then `HeaderMap::extend`, which
/// appends), so a client-sent `spin-full-url` comes first and Spin's own last: the last one is
/// Spin's. A client's copy never decides the path, nor the base URL of links and package
/// downloads.
fn request_head(request: &IncomingRequest) -> ApiRequest {
    let headers: Vec<(String, String)> = request
        .headers()
        .entries()
        .into_iter()
        .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
        .collect();
    let full_url = headers
        .iter()
        .rev()
        .find(|(k, _)| k.eq_ignore_ascii_case("spin-full-url"))
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| request.uri());
    let method = request.method().to_string();
    ApiRequest::new(&method, &full_url, headers, Vec::new())
}

/// Reads the body as it streams in, refusing it as soon as it is known to be over `limit`
/// (from the `head`'s Content-Length, or while counting), and feeding each piece to
/// `package_hasher`.
async fn read_body(
    request: IncomingRequest,
    head: &ApiRequest,
    limit: u64,
    mut package_hasher: Option<&mut PackageHasher>,
) -> Result<Bytes, ApiError> {
    let declared = head
        .header("content-length")
        .and_then(|v| v.trim().parse::<u64>().ok());
    // A GET or HEAD that announces no body (neither Content-Length nor Transfer-Encoding)
    // has none over HTTP/1.1, and no read uses one: not asking Spin for it saves three host
    // calls on every read.
    let bodiless = matches!(head.method.as_str(), "GET" | "HEAD")
        && declared.is_none()
        && head.header("transfer-encoding").is_none();
    if bodiless {
        return Ok(Bytes::default());
    }
    let unreadable =
        |e: String| ApiError::bad_request(format!("Could not read the request body: {e}"));
    let incoming = request
        .consume()
        .map_err(|()| unreadable("already read".into()))?;
    let stream = incoming
        .stream()
        .map_err(|()| unreadable("already read".into()))?;
    if let Some(length) = declared.filter(|length| *length > limit) {
        // A body far over any size worth reading is refused without waiting for it.
        if length > limit + REFUSED_BODY_DRAIN as u64 {
            return Err(too_large(limit));
        }
        return Err(refuse_too_large(&stream, limit));
    }
    // The declared length at once, so the body is not copied as it grows; and large reads:
    // the SDK's body stream asks for 16 KiB at a time, thousands of host calls for a package.
    let mut body = Vec::with_capacity(declared.unwrap_or(0).min(limit) as usize);
    loop {
        match stream.blocking_read(BODY_READ_SIZE) {
            Ok(piece) => {
                if body.len() as u64 + piece.len() as u64 > limit {
                    return Err(refuse_too_large(&stream, limit));
                }
                body.extend_from_slice(&piece);
                if let Some(hasher) = package_hasher.as_deref_mut() {
                    hasher.advance(&body);
                }
            }
            Err(StreamError::Closed) => break,
            Err(StreamError::LastOperationFailed(e)) => {
                return Err(unreadable(e.to_debug_string()))
            }
        }
    }
    Ok(body.into())
}

/// How much of a refused body is still read (and dropped) before the 413 is sent.
const REFUSED_BODY_DRAIN: usize = 16 << 20;

/// The 413 for a body over `limit`, after reading what is left of it, up to
/// [`REFUSED_BODY_DRAIN`]: Spin closes the connection once the handler returns, and a close
/// with unread bytes resets it, so a client still sending would lose the answer to a
/// connection reset. A larger body is cut off all the same, and one announced larger than
/// that is refused before it is read.
fn refuse_too_large(stream: &wasi::io::streams::InputStream, limit: u64) -> ApiError {
    let mut drained = 0;
    while drained < REFUSED_BODY_DRAIN {
        match stream.blocking_read(BODY_READ_SIZE) {
            Ok(piece) => drained += piece.len(),
            Err(_) => break,
        }
    }
    too_large(limit)
}

/// A request body as `Read`, as it streams in, for a group that takes its body so.
struct BodyReader<Body> {
    // Before the body it belongs to: a stream is dropped before its body.
    stream: wasi::io::streams::InputStream,
    _body: Body,
}

/// The request's body as a [`BodyReader`].
fn body_reader(request: IncomingRequest) -> Result<impl std::io::Read, ApiError> {
    let unreadable = || ApiError::bad_request("Could not read the request body: already read");
    let body = request.consume().map_err(|()| unreadable())?;
    let stream = body.stream().map_err(|()| unreadable())?;
    Ok(BodyReader {
        stream,
        _body: body,
    })
}

impl<Body> std::io::Read for BodyReader<Body> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self.stream.blocking_read(buf.len() as u64) {
            Ok(piece) => {
                buf[..piece.len()].copy_from_slice(&piece);
                Ok(piece.len())
            }
            Err(StreamError::Closed) => Ok(0),
            Err(StreamError::LastOperationFailed(e)) => {
                Err(std::io::Error::other(e.to_debug_string()))
            }
        }
    }
}
