//! Who is calling and what the deployment allows: the inputs every operation is judged by.

use crate::cors::AllowedOrigins;
use crate::error::{ApiError, ApiResult};
use crate::hosts::AllowedHosts;
use crate::http::{parse_bool, ApiRequest};
use crate::limits::{JsonLimits, MAX_JSON_DEPTH};
use std::fmt;

/// Stands for a secret in `Debug` output: tokens and passwords never reach a log.
pub(crate) struct Redacted;

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// The caller as Qinling's request context sees it.
#[derive(Clone, PartialEq, Eq)]
pub struct Caller {
    /// The effective project: every row a caller creates belongs to it.
    pub project_id: String,
    pub is_admin: bool,
    /// False in auth mode `none`: as Qinling with auth disabled, no policy is checked.
    pub policy_enforced: bool,
    /// The caller's validated token, which runtimes present to download the package of an
    /// execution on the caller's behalf (auth mode `keystone` only).
    pub token: Option<String>,
}

impl fmt::Debug for Caller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Caller")
            .field("project_id", &self.project_id)
            .field("is_admin", &self.is_admin)
            .field("policy_enforced", &self.policy_enforced)
            .field("token", &self.token.as_ref().map(|_| Redacted))
            .finish()
    }
}

impl Caller {
    /// Auth mode `none`: everyone is project `default`; `X-Roles: admin` still marks an
    /// admin (for visibility rules), and no policy is enforced.
    pub fn unauthenticated(request: &ApiRequest) -> Caller {
        let is_admin = request
            .header("x-roles")
            .is_some_and(|roles| roles.split(',').any(|r| r.trim() == "admin"));
        Caller {
            project_id: "default".into(),
            is_admin,
            policy_enforced: false,
            token: None,
        }
    }

    /// Admin-only operations (runtime writes, detach, `all_projects` lists).
    pub fn require_admin(&self) -> ApiResult<()> {
        if self.policy_enforced && !self.is_admin {
            Err(ApiError::not_allowed())
        } else {
            Ok(())
        }
    }

    /// Whether a row of `project_id` may be read by id: own rows, or any row for an admin.
    pub fn may_read(&self, project_id: &str) -> bool {
        self.is_admin || self.project_id == project_id
    }
}

/// Which projects a list shows, after Qinling's `get_project_params` rules (with
/// `all_projects` parsed as a real boolean).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListScope {
    Project(String),
    AllProjects,
}

impl ListScope {
    pub fn from_request(caller: &Caller, request: &ApiRequest) -> ApiResult<ListScope> {
        let mut all_projects = match request.query_param("all_projects") {
            None => false,
            Some(v) => parse_bool(v).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "Invalid input for field/attribute all_projects. Value: '{v}'. Wrong type. Expected a boolean."
                ))
            })?,
        };
        let mut project = caller.project_id.clone();
        if let Some(requested) = request.query_param("project_id") {
            if caller.is_admin {
                all_projects = true;
                project = requested.to_string();
            }
        }
        if all_projects {
            caller.require_admin()?;
            if request.query_param("project_id").is_some() && caller.is_admin {
                return Ok(ListScope::Project(project));
            }
            return Ok(ListScope::AllProjects);
        }
        Ok(ListScope::Project(project))
    }

    /// The project to filter by, or none.
    pub fn project(&self) -> Option<&str> {
        match self {
            ListScope::Project(p) => Some(p),
            ListScope::AllProjects => None,
        }
    }
}

/// Deployment settings, read from Spin variables by the adapter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// How many versions a function may have at once.
    pub max_versions: i64,
    /// The largest package accepted, in bytes.
    pub max_package_size: u64,
    /// Hosts an external worker runtime may live on (`*` for any).
    pub worker_hosts: Vec<String>,
    /// SQLite's `synchronous` for writes: `FULL` (every commit is on disk before the answer)
    /// or `NORMAL` (in WAL mode, the last commits may be lost on power loss, never corrupted).
    pub sqlite_synchronous: &'static str,
    /// The URL clients and workers reach this API at (e.g. `https://faas.example.org`); when
    /// unset, the URL the caller used. Workers download packages from it.
    pub public_url: Option<String>,
    /// The largest request body that is not a package upload, in bytes.
    pub max_request_body: u64,
    /// How deeply JSON from a client may nest, and how many values it may hold.
    pub json_limits: JsonLimits,
    /// The origins browsers may call the API from (CORS). Unset: any in auth mode
    /// `keystone`, none in auth mode `none`.
    pub cors_allowed_origins: AllowedOrigins,
    /// In auth mode `none`, where no token protects the API: the hosts it may be addressed
    /// as, whose pages may call it too (variable `allowed_hosts`, loopback names and
    /// `public_url`'s host; see `hosts`). `None` in auth mode `keystone`: nothing is checked.
    pub site_guard: Option<AllowedHosts>,
    /// The most rows one page of a list holds (also a list's size without `?limit=`).
    pub max_page_size: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            max_versions: 10,
            max_package_size: 50 * 1024 * 1024,
            worker_hosts: vec!["localhost".into(), "127.0.0.1".into(), "[::1]".into()],
            sqlite_synchronous: "FULL",
            public_url: None,
            max_request_body: 1024 * 1024,
            json_limits: JsonLimits::default(),
            cors_allowed_origins: AllowedOrigins::off(),
            site_guard: Some(AllowedHosts::default()),
            max_page_size: 1000,
        }
    }
}

impl Settings {
    /// Builds settings from variable values, keeping the default for an unset (empty) one.
    pub fn from_variables(get: impl Fn(&str) -> Option<String>) -> Result<Settings, String> {
        let mut settings = Settings::default();
        let value = |name: &str| {
            get(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        if let Some(v) = value("max_versions") {
            settings.max_versions = v.parse().ok().filter(|n: &i64| *n >= 1).ok_or_else(|| {
                format!("variable max_versions must be a positive integer, not {v:?}")
            })?;
        }
        if let Some(v) = value("max_package_size") {
            settings.max_package_size =
                v.parse().ok().filter(|n: &u64| *n >= 1).ok_or_else(|| {
                    format!(
                        "variable max_package_size must be a positive number of bytes, not {v:?}"
                    )
                })?;
        }
        if let Some(v) = value("sqlite_synchronous") {
            settings.sqlite_synchronous = match v.to_ascii_lowercase().as_str() {
                "full" => "FULL",
                "normal" => "NORMAL",
                _ => {
                    return Err(format!(
                        "variable sqlite_synchronous must be full or normal, not {v:?}"
                    ))
                }
            };
        }
        if let Some(v) = value("public_url") {
            if !(v.starts_with("http://") || v.starts_with("https://")) {
                return Err(format!(
                    "variable public_url must be an http(s) URL, not {v:?}"
                ));
            }
            settings.public_url = Some(v.trim_end_matches('/').to_string());
        }
        if let Some(v) = value("worker_hosts") {
            settings.worker_hosts = v
                .split(',')
                .map(|h| h.trim().to_ascii_lowercase())
                .filter(|h| !h.is_empty())
                .collect();
        }
        // A wasm32 instance cannot hold more bytes, let alone values, than this.
        let most = u64::from(u32::MAX);
        if let Some(v) = value("max_request_body") {
            settings.max_request_body = whole_number("max_request_body", &v, most)?;
        }
        if let Some(v) = value("max_json_depth") {
            settings.json_limits.max_depth =
                whole_number("max_json_depth", &v, MAX_JSON_DEPTH as u64)? as usize;
        }
        if let Some(v) = value("max_json_items") {
            settings.json_limits.max_items = whole_number("max_json_items", &v, most)? as usize;
        }
        if let Some(v) = value("max_page_size") {
            settings.max_page_size = whole_number("max_page_size", &v, most)? as usize;
        }
        // Tokens protect the API in auth mode `keystone` (an invalid mode is refused when
        // callers are identified; until then, the guarded default holds).
        let keystone = value("auth_mode").as_deref() == Some("keystone");
        settings.cors_allowed_origins = match value("cors_allowed_origins") {
            None if keystone => AllowedOrigins::any(),
            None => AllowedOrigins::off(),
            Some(v) => AllowedOrigins::parse(&v)
                .map_err(|e| format!("variable cors_allowed_origins: {e}"))?,
        };
        let mut hosts = AllowedHosts::parse(&value("allowed_hosts").unwrap_or_default())
            .map_err(|e| format!("variable allowed_hosts: {e}"))?;
        if let Some(url) = &settings.public_url {
            hosts = hosts.with_public_url(url);
        }
        settings.site_guard = (!keystone).then_some(hosts);
        Ok(settings)
    }

    pub fn worker_host_allowed(&self, host: &str) -> bool {
        let host = host.to_ascii_lowercase();
        self.worker_hosts.iter().any(|allowed| {
            allowed == "*"
                || *allowed == host
                || allowed
                    .strip_prefix("*.")
                    .is_some_and(|suffix| host.ends_with(&format!(".{suffix}")))
        })
    }
}

/// A variable counting something: a whole number from 1 to `max`.
fn whole_number(name: &str, value: &str, max: u64) -> Result<u64, String> {
    value
        .parse()
        .ok()
        .filter(|n| (1..=max).contains(n))
        .ok_or_else(|| {
            format!("variable {name} must be a whole number from 1 to {max}, not {value:?}")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(url: &str) -> ApiRequest {
        ApiRequest::new("GET", url, vec![], vec![])
    }

    fn user(policy: bool) -> Caller {
        Caller {
            project_id: "p1".into(),
            is_admin: false,
            policy_enforced: policy,
            token: None,
        }
    }

    #[test]
    fn all_projects_false_means_false() {
        let scope = ListScope::from_request(&user(true), &request("http://h/x?all_projects=false"))
            .unwrap();
        assert_eq!(scope, ListScope::Project("p1".into()));
    }

    #[test]
    fn all_projects_is_admin_only_when_policy_is_enforced() {
        let err = ListScope::from_request(&user(true), &request("http://h/x?all_projects=true"))
            .unwrap_err();
        assert_eq!(err.status(), 403);
        assert_eq!(err.message, "Operation not allowed");
    }

    #[test]
    fn without_policy_all_projects_is_allowed() {
        let scope =
            ListScope::from_request(&user(false), &request("http://h/x?all_projects=1")).unwrap();
        assert_eq!(scope, ListScope::AllProjects);
    }

    #[test]
    fn a_normal_user_cannot_list_another_project_by_id() {
        let scope =
            ListScope::from_request(&user(true), &request("http://h/x?project_id=p2")).unwrap();
        assert_eq!(scope, ListScope::Project("p1".into()));
    }

    #[test]
    fn an_admin_may_list_one_other_project() {
        let admin = Caller {
            is_admin: true,
            ..user(true)
        };
        let scope = ListScope::from_request(&admin, &request("http://h/x?project_id=p2")).unwrap();
        assert_eq!(scope, ListScope::Project("p2".into()));
    }

    #[test]
    fn a_garbage_boolean_is_a_bad_request() {
        let err =
            ListScope::from_request(&user(false), &request("http://h/x?all_projects=perhaps"))
                .unwrap_err();
        assert_eq!(err.status(), 400);
    }

    #[test]
    fn settings_use_defaults_for_unset_variables() {
        let s = Settings::from_variables(|_| None).unwrap();
        assert_eq!(s, Settings::default());
        let s =
            Settings::from_variables(|n| (n == "max_versions").then(|| "3".to_string())).unwrap();
        assert_eq!(s.max_versions, 3);
        let s =
            Settings::from_variables(|n| (n == "max_page_size").then(|| "25".to_string())).unwrap();
        assert_eq!(s.max_page_size, 25);
        assert!(Settings::from_variables(|_| Some("x".into())).is_err());
    }

    #[test]
    fn request_limits_are_read_from_variables() {
        let variables = [
            ("max_request_body", "2048"),
            ("max_json_depth", "4"),
            ("max_json_items", "50"),
            (
                "cors_allowed_origins",
                "https://app.example.org, http://localhost:8080",
            ),
        ];
        let s = Settings::from_variables(|n| {
            variables
                .iter()
                .find(|(name, _)| *name == n)
                .map(|(_, v)| v.to_string())
        })
        .unwrap();
        assert_eq!(s.max_request_body, 2048);
        assert_eq!(
            s.json_limits,
            JsonLimits {
                max_depth: 4,
                max_items: 50
            }
        );
        assert_eq!(
            s.cors_allowed_origins,
            AllowedOrigins::parse("https://app.example.org,http://localhost:8080").unwrap()
        );
    }

    fn settings_of(variables: &[(&str, &str)]) -> Result<Settings, String> {
        Settings::from_variables(|n| {
            variables
                .iter()
                .find(|(name, _)| *name == n)
                .map(|(_, v)| v.to_string())
        })
    }

    #[test]
    fn cors_is_off_by_default_in_auth_mode_none() {
        for variables in [
            &[][..],
            &[("cors_allowed_origins", "")],
            &[("auth_mode", "none"), ("cors_allowed_origins", " ")],
        ] {
            let s = settings_of(variables).unwrap();
            assert_eq!(s.cors_allowed_origins, AllowedOrigins::off());
        }
    }

    #[test]
    fn cors_allows_any_origin_by_default_in_auth_mode_keystone() {
        let s = settings_of(&[("auth_mode", "keystone"), ("cors_allowed_origins", "")]).unwrap();
        assert_eq!(s.cors_allowed_origins, AllowedOrigins::any());
        let s = settings_of(&[("auth_mode", "keystone")]).unwrap();
        assert_eq!(s.cors_allowed_origins, AllowedOrigins::any());
        let off = settings_of(&[("auth_mode", "keystone"), ("cors_allowed_origins", "off")]);
        assert_eq!(off.unwrap().cors_allowed_origins, AllowedOrigins::off());
    }

    #[test]
    fn configured_cors_origins_hold_in_either_mode() {
        for mode in ["none", "keystone"] {
            let s = settings_of(&[("auth_mode", mode), ("cors_allowed_origins", "*")]).unwrap();
            assert_eq!(s.cors_allowed_origins, AllowedOrigins::any());
        }
    }

    #[test]
    fn hosts_are_guarded_in_auth_mode_none_only() {
        let none = settings_of(&[
            ("allowed_hosts", "faas.lan"),
            ("public_url", "https://faas.example.org"),
        ])
        .unwrap();
        let guard = none.site_guard.unwrap();
        assert!(guard.serves("faas.lan:3000"));
        assert!(guard.serves("faas.example.org"));
        assert!(guard.serves("localhost:3000"));
        assert!(!guard.serves("evil.example"));
        let keystone = settings_of(&[("auth_mode", "keystone")]).unwrap();
        assert_eq!(keystone.site_guard, None);
        let err = settings_of(&[("allowed_hosts", "http://faas.lan")]).unwrap_err();
        assert!(err.starts_with("variable allowed_hosts: "), "{err}");
    }

    #[test]
    fn a_caller_s_token_is_redacted_in_debug_output() {
        let caller = Caller {
            token: Some("gAAAAAB-secret-token".into()),
            ..user(true)
        };
        let printed = format!("{caller:?}");
        assert!(!printed.contains("secret"), "{printed}");
        assert!(printed.contains("token: Some(<redacted>)"), "{printed}");
        assert!(format!("{:?}", user(true)).contains("token: None"));
    }

    #[test]
    fn bad_limit_variables_are_configuration_errors() {
        let bad = [
            ("max_request_body", "0"),
            ("max_request_body", "1MB"),
            ("max_json_depth", "128"),
            ("max_json_depth", "-1"),
            ("max_json_items", "0"),
            ("max_page_size", "0"),
            ("cors_allowed_origins", "app.example.org"),
        ];
        for (name, value) in bad {
            let err =
                Settings::from_variables(|n| (n == name).then(|| value.to_string())).unwrap_err();
            assert!(err.starts_with(&format!("variable {name}")), "{err}");
        }
        let err = Settings::from_variables(|n| (n == "max_json_depth").then(|| "500".into()))
            .unwrap_err();
        assert_eq!(
            err,
            "variable max_json_depth must be a whole number from 1 to 127, not \"500\""
        );
    }

    #[test]
    fn worker_hosts_match_exactly_or_by_wildcard_suffix() {
        let s = Settings {
            worker_hosts: vec!["*.example.org".into(), "w1".into()],
            ..Settings::default()
        };
        assert!(s.worker_host_allowed("a.example.org"));
        assert!(s.worker_host_allowed("W1"));
        assert!(!s.worker_host_allowed("example.org"));
        assert!(!s.worker_host_allowed("w2"));
    }
}
