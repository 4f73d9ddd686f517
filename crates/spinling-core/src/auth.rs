//! Who a request comes from. In auth mode `keystone` the caller's `X-Auth-Token` is validated
//! with OpenStack Identity v3 (`GET /v3/auth/tokens`) by Spinling's own service account, as
//! keystonemiddleware does for Qinling; project, user and roles come from Keystone's answer.
//! Answers are cached in key-value until the earlier of the token's expiry and
//! `token_cache_ttl`, so a revoked token stops working within that TTL. Identity that cannot
//! answer is a 503: a request is never accepted without a validated token.

use crate::cache::Cache;
use crate::context::Caller;
use crate::error::{ApiError, ApiResult, ErrorKind};
use crate::http::ApiRequest;
use crate::packages::sha256_hex;
use crate::time::parse_timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value as Json};

/// How callers are identified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthMode {
    /// Everyone is project `default` and no policy is checked: a laptop, not exposure.
    None,
    Keystone(KeystoneConfig),
}

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

impl std::fmt::Debug for KeystoneConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeystoneConfig")
            .field("url", &self.url)
            .field("service_user", &self.service_user)
            .field("service_password", &crate::context::Redacted)
            .field("service_project", &self.service_project)
            .field("service_domain", &self.service_domain)
            .field("token_cache_ttl", &self.token_cache_ttl)
            .finish()
    }
}

/// The longest token looked at; Keystone's fernet tokens are about 200 characters.
const MAX_TOKEN_LENGTH: usize = 8192;
/// How often a request Identity failed (5xx, no answer) is sent in all.
const IDENTITY_TRIES: u32 = 3;
/// A service token is renewed when less than this is left of it (or half its life).
const SERVICE_TOKEN_MARGIN: i64 = 300;

impl AuthMode {
    /// Reads `auth_mode` and, for `keystone`, the Identity settings; unset means default.
    pub fn from_variables(get: impl Fn(&str) -> Option<String>) -> Result<AuthMode, String> {
        let value = |name: &str| {
            get(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        match value("auth_mode").as_deref() {
            None | Some("none") => Ok(AuthMode::None),
            Some("keystone") => {
                let required = |name: &str| {
                    value(name).ok_or_else(|| {
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
                let token_cache_ttl = match value("token_cache_ttl") {
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
                    service_domain: value("keystone_service_domain")
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

/// One HTTP exchange with Identity.
pub struct IdentityRequest {
    pub method: &'static str,
    pub url: String,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

pub struct IdentityResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl IdentityResponse {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// How Identity is reached (outbound HTTP in Spin); an error means no answer at all.
pub trait IdentityTransport {
    fn send(&self, request: &IdentityRequest) -> Result<IdentityResponse, String>;
}

/// What Keystone said about a token, as cached.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct ValidatedToken {
    project_id: String,
    roles: Vec<String>,
    expires_at: i64,
    /// The cache entry is not used after this.
    trusted_until: i64,
}

#[derive(Serialize, Deserialize)]
struct ServiceToken {
    token: String,
    renew_at: i64,
}

/// What became of one validation call.
enum Validation {
    Valid(ValidatedToken),
    Invalid(&'static str),
    /// Keystone refused Spinling's own token (expired, revoked): get another and ask again.
    ServiceTokenRefused,
}

pub fn unauthorized(detail: &str) -> ApiError {
    ApiError::new(
        ErrorKind::Unauthorized,
        format!("Failed to validate access token: {detail}"),
    )
}

fn unavailable(why: String) -> ApiError {
    eprintln!("identity: {why}");
    ApiError::new(
        ErrorKind::ServiceUnavailable,
        "Identity service unavailable.",
    )
}

/// Validates callers' tokens against one Keystone.
pub struct Keystone<'a> {
    pub config: &'a KeystoneConfig,
    pub transport: &'a dyn IdentityTransport,
    pub cache: &'a dyn Cache,
}

impl Keystone<'_> {
    /// The caller of `request`, from its validated `X-Auth-Token`.
    pub fn authenticate(&self, request: &ApiRequest, now: i64) -> ApiResult<Caller> {
        let token = request
            .header("x-auth-token")
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| unauthorized("Authentication required"))?;
        if token.len() > MAX_TOKEN_LENGTH || !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(unauthorized(&format!("Auth token is invalid: {token}")));
        }
        let key = format!("auth:token:{}", sha256_hex(token.as_bytes()));
        let validated = match self.cached(&key, now) {
            Some(validated) => validated,
            None => {
                let validated = self.validate(token, now)?;
                if validated.trusted_until > now {
                    if let Ok(bytes) = serde_json::to_vec(&validated) {
                        self.cache.set(&key, &bytes);
                    }
                }
                validated
            }
        };
        Ok(Caller {
            is_admin: validated.roles.iter().any(|r| r == "admin"),
            project_id: validated.project_id,
            policy_enforced: true,
            token: Some(token.to_string()),
        })
    }

    fn cached(&self, key: &str, now: i64) -> Option<ValidatedToken> {
        let bytes = self.cache.get(key)?;
        match serde_json::from_slice::<ValidatedToken>(&bytes) {
            Ok(v) if now < v.trusted_until && now < v.expires_at => Some(v),
            _ => {
                self.cache.delete(key);
                None
            }
        }
    }

    /// Asks Keystone, with a new service token once if Keystone refuses the cached one.
    fn validate(&self, token: &str, now: i64) -> ApiResult<ValidatedToken> {
        let mut renewed = false;
        loop {
            let service_token = self.service_token(now, renewed)?;
            match self.ask(&service_token, token, now).map_err(unavailable)? {
                Validation::Valid(v) => return Ok(v),
                Validation::Invalid(detail) => {
                    return Err(unauthorized(&format!("{detail}: {token}")))
                }
                Validation::ServiceTokenRefused if !renewed => renewed = true,
                Validation::ServiceTokenRefused => {
                    return Err(unavailable(
                        "Keystone refuses a freshly issued service token".into(),
                    ))
                }
            }
        }
    }

    /// Sends `request`, again after a short pause when Identity fails or cannot be reached:
    /// such failures are often transient (Keystone on SQLite answers 500 "database is
    /// locked" under concurrent logins), and a caller should not see them if a retry helps.
    fn send(&self, request: &IdentityRequest) -> Result<IdentityResponse, String> {
        let mut attempt = 1;
        loop {
            let outcome = self.transport.send(request);
            let transient = match &outcome {
                Ok(response) => response.status >= 500,
                Err(_) => true,
            };
            if !transient || attempt == IDENTITY_TRIES {
                return outcome;
            }
            std::thread::sleep(std::time::Duration::from_millis(100 * u64::from(attempt)));
            attempt += 1;
        }
    }

    fn ask(&self, service_token: &str, token: &str, now: i64) -> Result<Validation, String> {
        let response = self.send(&IdentityRequest {
            method: "GET",
            url: format!("{}/auth/tokens?nocatalog", self.config.url),
            headers: vec![
                ("x-auth-token", service_token.to_string()),
                ("x-subject-token", token.to_string()),
                ("accept", "application/json".into()),
            ],
            body: Vec::new(),
        })?;
        match response.status {
            200 => Ok(self.read_validation(&response.body, now)),
            // 404: unknown, expired or revoked; 400: not a token at all.
            400 | 404 => Ok(Validation::Invalid("Auth token is invalid")),
            401 | 403 => Ok(Validation::ServiceTokenRefused),
            status => Err(format!("token validation answered {status}")),
        }
    }

    fn read_validation(&self, body: &[u8], now: i64) -> Validation {
        let Ok(body) = serde_json::from_slice::<Json>(body) else {
            return Validation::Invalid("Auth token is invalid");
        };
        let token = &body["token"];
        let text = |v: &Json| v.as_str().map(str::to_string);
        let Some(expires_at) = token["expires_at"].as_str().and_then(parse_timestamp) else {
            return Validation::Invalid("Auth token is invalid");
        };
        if expires_at <= now {
            return Validation::Invalid("Auth token is invalid");
        }
        let Some(project_id) = text(&token["project"]["id"]) else {
            return Validation::Invalid("Auth token is not scoped to a project");
        };
        let roles = token["roles"]
            .as_array()
            .map(|roles| roles.iter().filter_map(|r| text(&r["name"])).collect())
            .unwrap_or_default();
        Validation::Valid(ValidatedToken {
            project_id,
            roles,
            expires_at,
            trusted_until: expires_at.min(now.saturating_add(self.config.token_cache_ttl)),
        })
    }

    fn service_token_key(&self) -> String {
        let who = format!(
            "{}\n{}\n{}\n{}",
            self.config.url,
            self.config.service_user,
            self.config.service_project,
            self.config.service_domain
        );
        format!("auth:service-token:{}", sha256_hex(who.as_bytes()))
    }

    /// Spinling's own token: the cached one unless it is due for renewal or `fresh` is asked.
    fn service_token(&self, now: i64, fresh: bool) -> ApiResult<String> {
        let key = self.service_token_key();
        if !fresh {
            if let Some(cached) = self
                .cache
                .get(&key)
                .and_then(|bytes| serde_json::from_slice::<ServiceToken>(&bytes).ok())
                .filter(|t| now < t.renew_at)
            {
                return Ok(cached.token);
            }
        }
        let issued = self.issue_service_token(now).map_err(unavailable)?;
        if let Ok(bytes) = serde_json::to_vec(&issued) {
            self.cache.set(&key, &bytes);
        }
        Ok(issued.token)
    }

    fn issue_service_token(&self, now: i64) -> Result<ServiceToken, String> {
        let config = self.config;
        let domain = domain_reference(&config.service_domain);
        let body = json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": config.service_user,
                "domain": domain,
                "password": config.service_password,
            }}},
            "scope": {"project": {"name": config.service_project, "domain": domain}},
        }});
        let response = self.send(&IdentityRequest {
            method: "POST",
            url: format!("{}/auth/tokens?nocatalog", config.url),
            headers: vec![
                ("content-type", "application/json".into()),
                ("accept", "application/json".into()),
            ],
            body: body.to_string().into_bytes(),
        })?;
        if response.status != 201 {
            return Err(format!(
                "Keystone refused the service credentials of {:?}: {} {}",
                config.service_user,
                response.status,
                String::from_utf8_lossy(&response.body)
            ));
        }
        let token = response
            .header("x-subject-token")
            .ok_or("Keystone issued no X-Subject-Token")?
            .to_string();
        let expires_at = serde_json::from_slice::<Json>(&response.body)
            .ok()
            .and_then(|b| b["token"]["expires_at"].as_str().and_then(parse_timestamp))
            .ok_or("Keystone issued a token without expires_at")?;
        let margin = SERVICE_TOKEN_MARGIN.min((expires_at - now) / 2);
        Ok(ServiceToken {
            token,
            renew_at: expires_at - margin,
        })
    }
}

/// `default` (any case) and 32-hex ids are domain ids; anything else is a domain name.
fn domain_reference(domain: &str) -> Json {
    let is_id = domain.eq_ignore_ascii_case("default")
        || (domain.len() == 32 && domain.bytes().all(|b| b.is_ascii_hexdigit()));
    match is_id {
        true if domain.eq_ignore_ascii_case("default") => json!({"id": "default"}),
        true => json!({"id": domain}),
        false => json!({"name": domain}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::testing::MemoryCache;
    use crate::time::format_timestamp;
    use std::cell::{Cell, RefCell};
    use std::collections::HashMap;

    const NOW: i64 = 1_800_000_000;

    /// What Keystone knows of a user token: its project, roles and expiry.
    type UserToken = (Option<String>, Vec<String>, i64);

    /// A Keystone in memory: user tokens, Spinling's service tokens, and call counts.
    #[derive(Default)]
    struct FakeKeystone {
        tokens: RefCell<HashMap<String, UserToken>>,
        service_tokens: RefCell<Vec<String>>,
        issued: Cell<u32>,
        validations: Cell<u32>,
        down: Cell<bool>,
        /// How many of the next requests answer 500, as Keystone on a locked SQLite.
        failing: Cell<u32>,
    }

    impl FakeKeystone {
        fn with_user(token: &str, project: &str, roles: &[&str]) -> FakeKeystone {
            let keystone = FakeKeystone::default();
            keystone.add(token, Some(project), roles, NOW + 3600);
            keystone
        }
        fn add(&self, token: &str, project: Option<&str>, roles: &[&str], expires_at: i64) {
            self.tokens.borrow_mut().insert(
                token.into(),
                (
                    project.map(String::from),
                    roles.iter().map(|r| r.to_string()).collect(),
                    expires_at,
                ),
            );
        }
        fn revoke(&self, token: &str) {
            self.tokens.borrow_mut().remove(token);
        }
    }

    fn reply(status: u16, headers: Vec<(String, String)>, body: Json) -> IdentityResponse {
        IdentityResponse {
            status,
            headers,
            body: body.to_string().into_bytes(),
        }
    }

    impl IdentityTransport for FakeKeystone {
        fn send(&self, request: &IdentityRequest) -> Result<IdentityResponse, String> {
            if self.down.get() {
                return Err("connection refused".into());
            }
            if self.failing.get() > 0 {
                self.failing.set(self.failing.get() - 1);
                return Ok(reply(500, vec![], json!({})));
            }
            let header = |name: &str| {
                request
                    .headers
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.clone())
            };
            assert_eq!(request.url, "http://ks/v3/auth/tokens?nocatalog");
            if request.method == "POST" {
                let body: Json = serde_json::from_slice(&request.body).unwrap();
                let user = &body["auth"]["identity"]["password"]["user"];
                if user["name"] != "spinling" || user["password"] != "pw" {
                    return Ok(reply(401, vec![], json!({})));
                }
                self.issued.set(self.issued.get() + 1);
                let token = format!("service-{}", self.issued.get());
                self.service_tokens.borrow_mut().push(token.clone());
                let expires = format_timestamp(NOW + 3600);
                return Ok(reply(
                    201,
                    vec![("X-Subject-Token".into(), token)],
                    json!({"token": {"expires_at": expires}}),
                ));
            }
            self.validations.set(self.validations.get() + 1);
            let service = header("x-auth-token").unwrap();
            if !self.service_tokens.borrow().contains(&service) {
                return Ok(reply(401, vec![], json!({})));
            }
            let subject = header("x-subject-token").unwrap();
            Ok(match self.tokens.borrow().get(&subject) {
                None => reply(404, vec![], json!({})),
                Some((project, roles, expires)) => {
                    let roles: Vec<Json> = roles.iter().map(|r| json!({"name": r})).collect();
                    let mut token = json!({
                        "user": {"id": "u1"},
                        "roles": roles,
                        "expires_at": format_timestamp(*expires) .replace('Z', ".000000Z"),
                    });
                    if let Some(p) = project {
                        token["project"] = json!({"id": p});
                    }
                    reply(200, vec![], json!({"token": token}))
                }
            })
        }
    }

    fn config(ttl: i64) -> KeystoneConfig {
        KeystoneConfig {
            url: "http://ks/v3".into(),
            service_user: "spinling".into(),
            service_password: "pw".into(),
            service_project: "service".into(),
            service_domain: "Default".into(),
            token_cache_ttl: ttl,
        }
    }

    fn request(token: Option<&str>) -> ApiRequest {
        let headers = token
            .map(|t| vec![("X-Auth-Token".to_string(), t.to_string())])
            .unwrap_or_default();
        ApiRequest::new("GET", "http://h/v1/functions", headers, vec![])
    }

    fn authenticate(
        keystone: &FakeKeystone,
        cache: &MemoryCache,
        ttl: i64,
        token: Option<&str>,
        now: i64,
    ) -> ApiResult<Caller> {
        let config = config(ttl);
        let identity = Keystone {
            config: &config,
            transport: keystone,
            cache,
        };
        identity.authenticate(&request(token), now)
    }

    #[test]
    fn a_request_without_a_token_is_refused_without_asking_keystone() {
        let keystone = FakeKeystone::default();
        let err = authenticate(&keystone, &MemoryCache::default(), 300, None, NOW).unwrap_err();
        assert_eq!(err.status(), 401);
        assert_eq!(
            err.message,
            "Failed to validate access token: Authentication required"
        );
        assert_eq!(keystone.issued.get() + keystone.validations.get(), 0);
    }

    #[test]
    fn a_valid_token_gives_its_project_and_roles() {
        let keystone = FakeKeystone::with_user("t1", "alpha", &["member", "reader"]);
        let caller =
            authenticate(&keystone, &MemoryCache::default(), 300, Some("t1"), NOW).unwrap();
        assert_eq!(caller.project_id, "alpha");
        assert!(!caller.is_admin);
        assert!(caller.policy_enforced);
        assert_eq!(caller.token.as_deref(), Some("t1"));
    }

    #[test]
    fn the_admin_role_makes_an_admin() {
        let keystone = FakeKeystone::with_user("t1", "alpha", &["admin", "member"]);
        let caller =
            authenticate(&keystone, &MemoryCache::default(), 300, Some("t1"), NOW).unwrap();
        assert!(caller.is_admin);
    }

    #[test]
    fn an_unknown_token_is_invalid() {
        let keystone = FakeKeystone::default();
        let err =
            authenticate(&keystone, &MemoryCache::default(), 300, Some("nope"), NOW).unwrap_err();
        assert_eq!(err.status(), 401);
        assert_eq!(
            err.message,
            "Failed to validate access token: Auth token is invalid: nope"
        );
    }

    #[test]
    fn a_token_without_a_project_is_refused() {
        let keystone = FakeKeystone::default();
        keystone.add("t1", None, &["admin"], NOW + 3600);
        let err =
            authenticate(&keystone, &MemoryCache::default(), 300, Some("t1"), NOW).unwrap_err();
        assert_eq!(err.status(), 401);
    }

    #[test]
    fn a_validation_is_reused_within_the_ttl() {
        let keystone = FakeKeystone::with_user("t1", "alpha", &["member"]);
        let cache = MemoryCache::default();
        authenticate(&keystone, &cache, 300, Some("t1"), NOW).unwrap();
        authenticate(&keystone, &cache, 300, Some("t1"), NOW + 299).unwrap();
        assert_eq!(keystone.validations.get(), 1);
    }

    #[test]
    fn a_revoked_token_stops_working_once_the_ttl_has_passed() {
        let keystone = FakeKeystone::with_user("t1", "alpha", &["member"]);
        let cache = MemoryCache::default();
        authenticate(&keystone, &cache, 10, Some("t1"), NOW).unwrap();
        keystone.revoke("t1");
        authenticate(&keystone, &cache, 10, Some("t1"), NOW + 5).unwrap();
        let err = authenticate(&keystone, &cache, 10, Some("t1"), NOW + 10).unwrap_err();
        assert_eq!(err.status(), 401);
    }

    #[test]
    fn a_cached_validation_is_never_trusted_past_the_tokens_expiry() {
        let keystone = FakeKeystone::default();
        keystone.add("t1", Some("alpha"), &["member"], NOW + 60);
        let cache = MemoryCache::default();
        authenticate(&keystone, &cache, 3600, Some("t1"), NOW).unwrap();
        keystone.revoke("t1");
        let err = authenticate(&keystone, &cache, 3600, Some("t1"), NOW + 60).unwrap_err();
        assert_eq!(err.status(), 401);
    }

    #[test]
    fn a_zero_ttl_asks_keystone_every_time() {
        let keystone = FakeKeystone::with_user("t1", "alpha", &["member"]);
        let cache = MemoryCache::default();
        authenticate(&keystone, &cache, 0, Some("t1"), NOW).unwrap();
        authenticate(&keystone, &cache, 0, Some("t1"), NOW).unwrap();
        assert_eq!(keystone.validations.get(), 2);
    }

    #[test]
    fn keystone_unreachable_is_a_503_never_an_accepted_request() {
        let keystone = FakeKeystone::with_user("t1", "alpha", &["member"]);
        keystone.down.set(true);
        let err =
            authenticate(&keystone, &MemoryCache::default(), 300, Some("t1"), NOW).unwrap_err();
        assert_eq!(err.status(), 503);
        assert_eq!(err.message, "Identity service unavailable.");
    }

    #[test]
    fn a_passing_failure_of_identity_is_retried() {
        let keystone = FakeKeystone::with_user("t1", "alpha", &["member"]);
        keystone.failing.set(2);
        let caller =
            authenticate(&keystone, &MemoryCache::default(), 300, Some("t1"), NOW).unwrap();
        assert_eq!(caller.project_id, "alpha");
    }

    #[test]
    fn an_identity_that_keeps_failing_is_a_503() {
        let keystone = FakeKeystone::with_user("t1", "alpha", &["member"]);
        keystone.failing.set(100);
        let err =
            authenticate(&keystone, &MemoryCache::default(), 300, Some("t1"), NOW).unwrap_err();
        assert_eq!(err.status(), 503);
    }

    #[test]
    fn wrong_service_credentials_are_a_503() {
        let keystone = FakeKeystone::with_user("t1", "alpha", &["member"]);
        let mut config = config(300);
        config.service_password = "wrong".into();
        let cache = MemoryCache::default();
        let identity = Keystone {
            config: &config,
            transport: &keystone,
            cache: &cache,
        };
        let err = identity
            .authenticate(&request(Some("t1")), NOW)
            .unwrap_err();
        assert_eq!(err.status(), 503);
    }

    #[test]
    fn the_service_token_is_issued_once_and_reused() {
        let keystone = FakeKeystone::with_user("t1", "alpha", &["member"]);
        keystone.add("t2", Some("beta"), &["member"], NOW + 3600);
        let cache = MemoryCache::default();
        authenticate(&keystone, &cache, 300, Some("t1"), NOW).unwrap();
        authenticate(&keystone, &cache, 300, Some("t2"), NOW).unwrap();
        assert_eq!(keystone.issued.get(), 1);
    }

    #[test]
    fn the_service_token_is_renewed_before_it_expires() {
        let keystone = FakeKeystone::with_user("t1", "alpha", &["member"]);
        keystone.add("t2", Some("beta"), &["member"], NOW + 7200);
        let cache = MemoryCache::default();
        authenticate(&keystone, &cache, 300, Some("t1"), NOW).unwrap();
        authenticate(&keystone, &cache, 300, Some("t2"), NOW + 3600 - 299).unwrap();
        assert_eq!(keystone.issued.get(), 2);
    }

    #[test]
    fn a_refused_service_token_is_replaced_and_the_question_asked_again() {
        let keystone = FakeKeystone::with_user("t1", "alpha", &["member"]);
        let cache = MemoryCache::default();
        authenticate(&keystone, &cache, 0, Some("t1"), NOW).unwrap();
        keystone.service_tokens.borrow_mut().clear();
        let caller = authenticate(&keystone, &cache, 0, Some("t1"), NOW).unwrap();
        assert_eq!(caller.project_id, "alpha");
        assert_eq!(keystone.issued.get(), 2);
    }

    #[test]
    fn the_cache_never_holds_the_token_itself() {
        let keystone = FakeKeystone::with_user("secret-token", "alpha", &["member"]);
        let cache = MemoryCache::default();
        authenticate(&keystone, &cache, 300, Some("secret-token"), NOW).unwrap();
        for (key, value) in cache.0.borrow().iter() {
            assert!(!key.contains("secret-token"));
            assert!(!String::from_utf8_lossy(value).contains("secret-token"));
        }
    }

    fn variables(pairs: &[(&str, &str)]) -> Result<AuthMode, String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        AuthMode::from_variables(|name| map.get(name).cloned())
    }

    #[test]
    fn auth_mode_defaults_to_none() {
        assert_eq!(variables(&[]), Ok(AuthMode::None));
        assert_eq!(variables(&[("auth_mode", "")]), Ok(AuthMode::None));
        assert!(variables(&[("auth_mode", "noauth")]).is_err());
    }

    #[test]
    fn keystone_mode_needs_its_endpoint_and_account() {
        assert!(variables(&[("auth_mode", "keystone")]).is_err());
        let mode = variables(&[
            ("auth_mode", "keystone"),
            ("keystone_url", "http://127.0.0.1:5000/"),
            ("keystone_service_user", "spinling"),
            ("keystone_service_password", "pw"),
            ("keystone_service_project", "service"),
        ])
        .unwrap();
        let AuthMode::Keystone(config) = mode else {
            panic!("not keystone")
        };
        assert_eq!(config.url, "http://127.0.0.1:5000/v3");
        assert_eq!(config.service_domain, "Default");
        assert_eq!(config.token_cache_ttl, 300);
    }

    #[test]
    fn the_service_password_is_redacted_in_debug_output() {
        let config = KeystoneConfig {
            service_password: "s3cret-password".into(),
            ..config(300)
        };
        let printed = format!("{:?}", AuthMode::Keystone(config));
        assert!(!printed.contains("s3cret"), "{printed}");
        assert!(
            printed.contains("service_password: <redacted>"),
            "{printed}"
        );
        assert!(printed.contains("service_user: \"spinling\""), "{printed}");
    }

    #[test]
    fn the_default_domain_is_named_by_its_id() {
        assert_eq!(domain_reference("Default"), json!({"id": "default"}));
        assert_eq!(domain_reference("corp"), json!({"name": "corp"}));
    }
}
