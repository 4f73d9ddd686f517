//! The deployment's configuration: Spin variables, read by one reader ([`Variables`]) into
//! [`Settings`] (limits, CORS, hosts, storage) and [`AuthMode`] (how callers are identified).
//!
//! Each endpoint group declares the variables it reads ([`groups`]); its reader reads those
//! and no other, and `spin.toml` maps exactly those into the group's component
//! (`tests/api/tests/manifest.rs` compares the two), so a variable a group reads is never
//! missing from its component.

use crate::domain::json::{JsonLimits, MAX_JSON_DEPTH};
use crate::domain::rules::{Rules, VersionRetention};
use crate::error::ApiError;
use crate::redacted::Redacted;
use crate::store::cache::KeyValueScope;
use crate::store::durability::SqliteSynchronous;
use crate::web::cors::AllowedOrigins;
use crate::web::hosts::AllowedHosts;
use std::fmt;

/// The variables one endpoint group reads, in named sets (see [`groups`]).
pub type Reads = &'static [&'static [&'static str]];

/// What each endpoint group reads, and so what `spin.toml` maps into its component.
pub mod groups {
    use super::Reads;

    /// Read by the adapter: the site guard (`allowed_hosts`, `public_url`, each only for a
    /// request whose `Host` or `Origin` a loopback name does not settle; `auth_mode`), CORS
    /// (`cors_allowed_origins`, whose default follows `auth_mode`), the base of links and
    /// package downloads (`public_url`, when a response gives one) and the body limit.
    pub const SERVING: &[&str] = &[
        "auth_mode",
        "allowed_hosts",
        "public_url",
        "cors_allowed_origins",
        "max_request_body",
    ];
    /// Read by a group that identifies its callers, in auth mode `keystone`.
    pub const IDENTITY: &[&str] = &[
        "keystone_url",
        "keystone_service_user",
        "keystone_service_password",
        "keystone_service_project",
        "keystone_service_domain",
        "token_cache_ttl",
    ];
    /// Read by a group of resources: which database it uses (`postgres_url` only when that
    /// is PostgreSQL), the durability of its writes, the limits of the JSON it takes, the
    /// size of its lists' pages (only by a list).
    pub const RESOURCES: &[&str] = &[
        "database",
        "postgres_url",
        "sqlite_synchronous",
        "max_json_depth",
        "max_json_items",
        "max_page_size",
    ];
    /// Read by a group that caches database reads in key-value: how long it may trust them
    /// (`key_value_scope`, see `cache`).
    pub const CACHING: &[&str] = &["key_value_scope"];
    /// Read only by requests that may change something (a body to parse, rows to write, a
    /// package to take): a read (GET, HEAD, OPTIONS) does not ask Spin for them, since each
    /// variable is a host call that Spin resolves on a blocking thread, and their settings
    /// keep their defaults, which no read uses ([`super::Variables::for_reads`]). The one
    /// read that needs one, a download (`package_write_grace_seconds`), asks for it only once
    /// it knows it sends a package ([`super::package_write_grace_seconds`]).
    pub const WRITES_ONLY: &[&str] = &[
        // A read's body, which no handler reads, is held to the default limit.
        "max_request_body",
        "sqlite_synchronous",
        "max_json_depth",
        "max_json_items",
        "max_versions",
        "version_retention",
        "max_package_size",
        "package_write_grace_seconds",
    ];

    /// `/`, `/v1/` and every unknown path: open to anyone, without storage or a body.
    pub const ROOT: Reads = &[SERVING];
    /// Export and import read and write the whole database, nothing else.
    pub const ADMIN: Reads = &[SERVING, IDENTITY, RESOURCES];
    /// A runtime's worker must live on one of `worker_hosts`.
    pub const RUNTIMES: Reads = &[SERVING, IDENTITY, RESOURCES, &["worker_hosts"]];
    /// Packages are uploaded up to `max_package_size`, and their bytes collected, or kept
    /// for a download, as `package_write_grace_seconds` says.
    pub const FUNCTIONS: Reads = &[
        SERVING,
        IDENTITY,
        RESOURCES,
        CACHING,
        &["max_package_size", "package_write_grace_seconds"],
    ];
    /// A function holds at most `max_versions` versions; `version_retention` says what a
    /// publish at the cap does. A version's package is downloaded, and collected with its last
    /// version, as a function's is.
    pub const VERSIONS: Reads = &[
        SERVING,
        IDENTITY,
        RESOURCES,
        CACHING,
        &[
            "max_versions",
            "version_retention",
            "package_write_grace_seconds",
        ],
    ];
    pub const ALIASES: Reads = &[SERVING, IDENTITY, RESOURCES];
    /// A job runs only on a worker `worker_hosts` still allows.
    pub const EXECUTIONS: Reads = &[SERVING, IDENTITY, RESOURCES, CACHING, &["worker_hosts"]];
    /// An invoke runs a job, as an execution does.
    pub const WEBHOOKS: Reads = &[SERVING, IDENTITY, RESOURCES, CACHING, &["worker_hosts"]];
    /// Jobs fire executions, which run as an execution's do.
    pub const JOBS: Reads = &[SERVING, IDENTITY, RESOURCES, CACHING, &["worker_hosts"]];
}

/// The one reader of Spin variables, for one group: it asks `get` (Spin's variables in the
/// adapter) only for the variables the group declares. A value is trimmed, and a blank one is
/// unset. A variable the group does not declare reads as unset, so its setting keeps its
/// default, which the group's handlers never use.
pub struct Variables<'a> {
    reads: Reads,
    get: &'a dyn Fn(&str) -> Option<String>,
    /// For a request that only reads: [`groups::WRITES_ONLY`] are not asked for.
    reading: bool,
}

impl<'a> Variables<'a> {
    pub fn new(reads: Reads, get: &'a dyn Fn(&str) -> Option<String>) -> Variables<'a> {
        Variables {
            reads,
            get,
            reading: false,
        }
    }

    /// The reader for a request that only reads (GET, HEAD, OPTIONS): the variables only
    /// writes use read as unset, without asking Spin, so their settings keep their defaults
    /// (and a bad value in one of them is reported by the writes that use it).
    pub fn for_reads(self) -> Variables<'a> {
        Variables {
            reading: true,
            ..self
        }
    }

    /// Whether the group declares `name` (and reads it for this request).
    pub fn declares(&self, name: &str) -> bool {
        self.reads.iter().any(|set| set.contains(&name))
            && !(self.reading && groups::WRITES_ONLY.contains(&name))
    }

    /// The value of `name`, if the group declares it and it is set.
    pub fn value(&self, name: &str) -> Option<String> {
        if !self.declares(name) {
            return None;
        }
        (self.get)(name)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    }

    /// A variable counting something: a whole number from 1 to `max`, if set.
    fn whole_number(&self, name: &str, max: u64) -> Result<Option<u64>, String> {
        let Some(value) = self.value(name) else {
            return Ok(None);
        };
        match value.parse().ok().filter(|n| (1..=max).contains(n)) {
            Some(n) => Ok(Some(n)),
            None => Err(format!(
                "variable {name} must be a whole number from 1 to {max}, not {value:?}"
            )),
        }
    }
}

/// Deployment settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// What the domain's rules take from the deployment.
    pub rules: Rules,
    /// The largest request body that is not a package upload, in bytes.
    pub max_request_body: u64,
    /// How deeply JSON from a client may nest, and how many values it may hold.
    pub json_limits: JsonLimits,
    /// The origins browsers may call the API from (CORS). Unset: any in auth mode
    /// `keystone`, none in auth mode `none`.
    pub cors_allowed_origins: AllowedOrigins,
    /// Whether pages of other sites are refused (auth mode `none`, where no token protects the
    /// API); the hosts the API may be addressed as are read only when a request needs them
    /// ([`allowed_hosts`], see `hosts`).
    pub guards_origins: bool,
    /// Whether every replica shares the key-value store, which bounds how long a cached
    /// database read is trusted (see `cache`).
    pub key_value_scope: KeyValueScope,
    /// Seconds the package store leaves alone the bytes of a package an upload or a download
    /// stamped, even when nothing refers to them (see `packages`).
    pub package_write_grace_seconds: i64,
}

/// Where metadata and packages live (variable `database`): `sqlite`, Spin's database
/// `default` (local files, or libSQL through a runtime config), or `postgres`, the PostgreSQL
/// at `postgres_url` (a secret: its `Debug` output is redacted). Not part of [`Settings`]: the
/// adapter reads it when a request opens its database, so a read the cache answers does not
/// ask Spin for it.
#[derive(Clone, PartialEq, Eq, Default)]
pub enum DatabaseChoice {
    #[default]
    Sqlite,
    Postgres {
        url: String,
    },
}

impl fmt::Debug for DatabaseChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DatabaseChoice::Sqlite => f.write_str("Sqlite"),
            DatabaseChoice::Postgres { .. } => {
                f.debug_struct("Postgres").field("url", &Redacted).finish()
            }
        }
    }
}

impl DatabaseChoice {
    /// The choice the variables make; `postgres_url` is read only for `postgres`.
    pub fn from_variables(variables: &Variables) -> Result<DatabaseChoice, String> {
        match variables
            .value("database")
            .map(|v| v.to_ascii_lowercase())
            .as_deref()
        {
            None | Some("sqlite") => Ok(DatabaseChoice::Sqlite),
            Some("postgres") => match variables.value("postgres_url") {
                Some(url) => Ok(DatabaseChoice::Postgres { url }),
                None => Err("variable postgres_url must be set when database is postgres".into()),
            },
            Some(_) => Err(format!(
                "variable database must be sqlite or postgres, not {:?}",
                variables.value("database").unwrap_or_default()
            )),
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            rules: Rules::default(),
            max_request_body: 1024 * 1024,
            json_limits: JsonLimits::default(),
            cors_allowed_origins: AllowedOrigins::off(),
            guards_origins: true,
            key_value_scope: KeyValueScope::Replica,
            package_write_grace_seconds: crate::store::packages::WRITE_GRACE_SECONDS,
        }
    }
}

impl Settings {
    /// Reads the settings, keeping the default of each unset one.
    pub fn from_variables(variables: &Variables) -> Result<Settings, String> {
        let mut settings = Settings::default();
        if let Some(v) = variables.value("max_versions") {
            settings.rules.max_versions =
                v.parse().ok().filter(|n: &i64| *n >= 1).ok_or_else(|| {
                    format!("variable max_versions must be a positive integer, not {v:?}")
                })?;
        }
        if let Some(v) = variables.value("version_retention") {
            settings.rules.version_retention = VersionRetention::parse(&v)?;
        }
        if let Some(v) = variables.value("max_package_size") {
            settings.rules.max_package_size =
                v.parse().ok().filter(|n: &u64| *n >= 1).ok_or_else(|| {
                    format!(
                        "variable max_package_size must be a positive number of bytes, not {v:?}"
                    )
                })?;
        }
        if let Some(v) = variables.value("sqlite_synchronous") {
            settings.rules.sqlite_synchronous = SqliteSynchronous::parse(&v)?;
        }
        if let Some(v) = variables.value("key_value_scope") {
            settings.key_value_scope = KeyValueScope::parse(&v)?;
        }
        if let Some(v) = variables.value("worker_hosts") {
            settings.rules.worker_hosts = v
                .split(',')
                .map(|h| h.trim().to_ascii_lowercase())
                .filter(|h| !h.is_empty())
                .collect();
        }
        // A wasm32 instance cannot hold more bytes, let alone values, than this.
        let most = u64::from(u32::MAX);
        if let Some(n) = variables.whole_number("max_request_body", most)? {
            settings.max_request_body = n;
        }
        if let Some(n) = variables.whole_number("max_json_depth", MAX_JSON_DEPTH as u64)? {
            settings.json_limits.max_depth = n as usize;
        }
        if let Some(n) = variables.whole_number("max_json_items", most)? {
            settings.json_limits.max_items = n as usize;
        }
        settings.package_write_grace_seconds = package_write_grace_seconds(variables)?;
        // Tokens protect the API in auth mode `keystone` (an invalid mode is refused when
        // callers are identified; until then, the guarded default holds).
        let keystone = variables.value("auth_mode").as_deref() == Some("keystone");
        settings.cors_allowed_origins = match variables.value("cors_allowed_origins") {
            None if keystone => AllowedOrigins::any(),
            None => AllowedOrigins::off(),
            Some(v) => AllowedOrigins::parse(&v)
                .map_err(|e| format!("variable cors_allowed_origins: {e}"))?,
        };
        settings.guards_origins = !keystone;
        Ok(settings)
    }
}

// Settings only some requests need, each read when one does: every variable is a host call
// that Spin resolves on a blocking thread, and a GET served from the cache needs none of these.
// A bad value in one is reported by the requests that use it.

/// `public_url`: the URL clients and workers reach this API at (e.g.
/// `https://faas.example.org`), or none, when it is the URL each caller used. Workers
/// download packages from it, and lists' `next` links start with it.
pub fn public_url(variables: &Variables) -> Result<Option<String>, String> {
    let Some(url) = variables.value("public_url") else {
        return Ok(None);
    };
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(format!(
            "variable public_url must be an http(s) URL, not {url:?}"
        ));
    }
    Ok(Some(url.trim_end_matches('/').to_string()))
}

/// The hosts the API may be addressed as, in every auth mode: `allowed_hosts` and
/// `public_url`'s host (loopback names and service chaining always; see `hosts`), which in
/// auth mode `none` also says whose pages may call it.
pub fn allowed_hosts(variables: &Variables) -> Result<AllowedHosts, String> {
    let hosts = AllowedHosts::parse(&variables.value("allowed_hosts").unwrap_or_default())
        .map_err(|e| format!("variable allowed_hosts: {e}"))?;
    Ok(match public_url(variables)? {
        Some(url) => hosts.with_public_url(&url),
        None => hosts,
    })
}

/// The most rows one page of a list holds (also a list's size without `?limit=`):
/// `max_page_size`, 1000 when unset.
pub fn max_page_size(variables: &Variables) -> Result<usize, String> {
    Ok(variables
        .whole_number("max_page_size", u64::from(u32::MAX))?
        .map_or(DEFAULT_MAX_PAGE_SIZE, |n| n as usize))
}

const DEFAULT_MAX_PAGE_SIZE: usize = 1000;

/// The answer to a request that met a variable it cannot use: a 500 naming it (and a line in
/// the component's log for the operator).
pub fn configuration_error(e: String) -> ApiError {
    eprintln!("configuration error: {e}");
    ApiError::configuration(&e)
}

/// The longest `package_write_grace_seconds`: a week. Chunks of a writer killed half-way
/// stay this long.
pub const MAX_PACKAGE_WRITE_GRACE_SECONDS: u64 = 7 * 24 * 3600;

/// `package_write_grace_seconds`, or its default when unset. A download (a read, which leaves
/// it out of its [`Settings`]: see [`groups::WRITES_ONLY`]) asks for it with a reader of its
/// own only once it knows it sends a package.
pub fn package_write_grace_seconds(variables: &Variables) -> Result<i64, String> {
    Ok(variables
        .whole_number(
            "package_write_grace_seconds",
            MAX_PACKAGE_WRITE_GRACE_SECONDS,
        )?
        .map_or(crate::store::packages::WRITE_GRACE_SECONDS, |n| n as i64))
}

/// How callers are identified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthMode {
    /// Everyone is project `default` and no policy is checked: a laptop, not exposure.
    None,
    Keystone(KeystoneConfig),
}

/// Where Keystone is and Spinling's own account there (see `auth`).
#[derive(Clone, PartialEq, Eq)]
pub struct KeystoneConfig {
    /// The Identity v3 endpoint, ending in `/v3`.
    pub url: String,
    pub service_user: String,
    pub service_password: String,
    pub service_project: String,
    /// Domain of the service user and project: a name, or an id.
    pub service_domain: String,
    /// Seconds a validation is trusted without asking again (0: ask every time).
    pub token_cache_ttl: i64,
}

impl fmt::Debug for KeystoneConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeystoneConfig")
            .field("url", &self.url)
            .field("service_user", &self.service_user)
            .field("service_password", &Redacted)
            .field("service_project", &self.service_project)
            .field("service_domain", &self.service_domain)
            .field("token_cache_ttl", &self.token_cache_ttl)
            .finish()
    }
}

impl AuthMode {
    /// Reads `auth_mode` and, for `keystone`, the Identity settings; unset means default.
    pub fn from_variables(variables: &Variables) -> Result<AuthMode, String> {
        match variables.value("auth_mode").as_deref() {
            None | Some("none") => Ok(AuthMode::None),
            Some("keystone") => {
                let required = |name: &str| {
                    variables.value(name).ok_or_else(|| {
                        format!("variable {name} is required when auth_mode is keystone")
                    })
                };
                let url = required("keystone_url")?;
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(format!(
                        "variable keystone_url must be an http(s) URL, not {url:?}"
                    ));
                }
                let url = url.trim_end_matches('/');
                let url = match url.ends_with("/v3") {
                    true => url.to_string(),
                    false => format!("{url}/v3"),
                };
                let token_cache_ttl = match variables.value("token_cache_ttl") {
                    None => 300,
                    Some(v) => v.parse().ok().filter(|n: &i64| *n >= 0).ok_or_else(|| {
                        format!("variable token_cache_ttl must be a number of seconds, not {v:?}")
                    })?,
                };
                Ok(AuthMode::Keystone(KeystoneConfig {
                    url,
                    service_user: required("keystone_service_user")?,
                    service_password: required("keystone_service_password")?,
                    service_project: required("keystone_service_project")?,
                    service_domain: variables
                        .value("keystone_service_domain")
                        .unwrap_or_else(|| "Default".into()),
                    token_cache_ttl,
                }))
            }
            Some(other) => Err(format!(
                "variable auth_mode must be none or keystone, not {other:?}"
            )),
        }
    }
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
