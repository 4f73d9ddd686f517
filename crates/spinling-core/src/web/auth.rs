//! Who a request comes from. In auth mode `keystone` the caller's `X-Auth-Token` is validated
//! with OpenStack Identity v3 (`GET /v3/auth/tokens`) by Spinling's own service account, as
//! keystonemiddleware does for Qinling; project, user and roles come from Keystone's answer.
//! Answers are cached in key-value until the earlier of the token's expiry and
//! `token_cache_ttl`, so a revoked token stops working within that TTL, on every replica:
//! each replica's entry, in its own store or a shared one, was validated before the
//! revocation. Identity that cannot answer is a 503: a request is never accepted without a
//! validated token.

use crate::domain::context::Caller;
use crate::error::{ApiError, ApiResult, ErrorKind};
use crate::store::cache::Cache;
use crate::store::packages::sha256_hex;
use crate::time::parse_timestamp;
use crate::web::config::KeystoneConfig;
use crate::web::http::ApiRequest;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value as Json};

/// The longest token looked at; Keystone's fernet tokens are about 200 characters.
const MAX_TOKEN_LENGTH: usize = 8192;
/// How often a request Identity failed (5xx, no answer) is sent in all.
const IDENTITY_TRIES: u32 = 3;
/// A service token is renewed when less than this is left of it (or half its life).
const SERVICE_TOKEN_MARGIN: i64 = 300;
/// Validated tokens share 16^3 = 4,096 key-value keys, by the first hex digits of their
/// SHA-256: a store without TTL (Redis) would otherwise keep a key for every token ever
/// seen. A slot holds the token validated last in it; its entry names that token's hash.
const TOKEN_SLOT_DIGITS: usize = 3;

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
    /// The token's user (`user.id`). An entry cached before it was recorded reads as none.
    #[serde(default)]
    user_id: Option<String>,
    roles: Vec<String>,
    /// The token is Spinling's own service account's (see `Caller::is_service`).
    #[serde(default)]
    service: bool,
    expires_at: i64,
    /// The cache entry is not used after this.
    trusted_until: i64,
}

/// A token slot's entry (see [`token_key`]): whose token it holds, and what Keystone said.
#[derive(Serialize, Deserialize)]
struct TokenEntry {
    token_sha256: String,
    validated: ValidatedToken,
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

/// The caller of auth mode `none` (and of the paths that need no token): project `default`,
/// an admin for visibility rules when `X-Roles` names `admin`.
pub fn caller_without_auth(request: &ApiRequest) -> Caller {
    let is_admin = request
        .header("x-roles")
        .is_some_and(|roles| roles.split(',').any(|r| r.trim() == "admin"));
    Caller::unauthenticated(is_admin)
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
        let token_sha256 = sha256_hex(token.as_bytes());
        let key = token_key(&token_sha256);
        let validated = match self.cached(&key, &token_sha256, now) {
            Some(validated) => validated,
            None => {
                let validated = self.validate(token, now)?;
                if validated.trusted_until > now {
                    let entry = TokenEntry {
                        token_sha256,
                        validated: validated.clone(),
                    };
                    if let Ok(bytes) = serde_json::to_vec(&entry) {
                        self.cache.set(&key, &bytes);
                    }
                }
                validated
            }
        };
        Ok(Caller {
            is_admin: validated.roles.iter().any(|r| r == "admin"),
            project_id: validated.project_id,
            user_id: validated.user_id,
            policy_enforced: true,
            token: Some(token.to_string()),
            is_service: validated.service,
        })
    }

    /// The cached validation of the token hashed `token_sha256`: none when its slot holds
    /// another token's (left in place) or a stale or unreadable entry (deleted).
    fn cached(&self, key: &str, token_sha256: &str, now: i64) -> Option<ValidatedToken> {
        let bytes = self.cache.get(key)?;
        match serde_json::from_slice::<TokenEntry>(&bytes) {
            Ok(entry) if entry.token_sha256 != token_sha256 => None,
            Ok(TokenEntry { validated: v, .. }) if now < v.trusted_until && now < v.expires_at => {
                Some(v)
            }
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
        let service = self.is_service_user(&token["user"]);
        Validation::Valid(ValidatedToken {
            project_id,
            user_id: text(&token["user"]["id"]),
            roles,
            service,
            expires_at,
            trusted_until: expires_at.min(now.saturating_add(self.config.token_cache_ttl)),
        })
    }

    /// Whether Keystone's `user` of a token is Spinling's own service account: the
    /// configured `keystone_service_user` in `keystone_service_domain` (by id or name).
    fn is_service_user(&self, user: &Json) -> bool {
        let config = self.config;
        let domain = &user["domain"];
        let in_domain = match domain_reference(&config.service_domain) {
            Json::Object(reference) => reference
                .iter()
                .any(|(key, value)| domain[key.as_str()].as_str() == value.as_str()),
            _ => false,
        };
        user["name"].as_str() == Some(config.service_user.as_str()) && in_domain
    }

    /// Spinling's own token, for the runtime to fetch the package of an execution that no
    /// caller's token backs (a webhook invoke). It reads any project's package and nothing
    /// more (`Caller::is_service`).
    pub fn job_token(&self, now: i64) -> ApiResult<String> {
        self.service_token(now, false)
    }

    fn service_token_key(&self) -> String {
        let who = format!(
            "{}\n{}\n{}\n{}",
            self.config.url,
            self.config.service_user,
            self.config.service_project,
            self.config.service_domain
        );
        format!("spinling:v1:service-token:{}", sha256_hex(who.as_bytes()))
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

/// The key-value key of the token hashed `token_sha256`: its slot, one of 4,096.
fn token_key(token_sha256: &str) -> String {
    format!("spinling:v1:token:{}", &token_sha256[..TOKEN_SLOT_DIGITS])
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
#[path = "auth_tests.rs"]
mod tests;
