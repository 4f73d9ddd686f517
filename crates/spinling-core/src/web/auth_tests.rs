use super::*;
use crate::store::cache::testing::MemoryCache;
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
    /// The user (name, domain id) of a token, when not the anonymous `u1`.
    users: RefCell<HashMap<String, (String, String)>>,
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
                let user = match self.users.borrow().get(&subject) {
                    Some((name, domain)) => {
                        json!({"id": "u2", "name": name, "domain": {"id": domain, "name": "D"}})
                    }
                    None => json!({"id": "u1"}),
                };
                let mut token = json!({
                    "user": user,
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
    let caller = authenticate(&keystone, &MemoryCache::default(), 300, Some("t1"), NOW).unwrap();
    assert_eq!(caller.project_id, "alpha");
    assert!(!caller.is_admin);
    assert!(caller.policy_enforced);
    assert_eq!(caller.token.as_deref(), Some("t1"));
    assert_eq!(caller.user_id.as_deref(), Some("u1"));
}

#[test]
fn the_tokens_user_is_the_callers_also_from_the_cache() {
    let keystone = user_token("alice", "default");
    let cache = MemoryCache::default();
    for _ in 0..2 {
        let caller = authenticate(&keystone, &cache, 300, Some("t1"), NOW).unwrap();
        assert_eq!(caller.user_id.as_deref(), Some("u2"));
    }
    assert_eq!(
        keystone.validations.get(),
        1,
        "the second came from the cache"
    );
}

#[test]
fn a_caller_without_a_token_has_no_user_whatever_it_claims() {
    let request = ApiRequest::new(
        "GET",
        "http://h/v1/functions",
        vec![("X-User-Id".to_string(), "mallory".to_string())],
        vec![],
    );
    assert_eq!(caller_without_auth(&request).user_id, None);
}

#[test]
fn the_admin_role_makes_an_admin() {
    let keystone = FakeKeystone::with_user("t1", "alpha", &["admin", "member"]);
    let caller = authenticate(&keystone, &MemoryCache::default(), 300, Some("t1"), NOW).unwrap();
    assert!(caller.is_admin);
}

#[test]
fn an_unknown_token_is_invalid() {
    let keystone = FakeKeystone::default();
    let err = authenticate(&keystone, &MemoryCache::default(), 300, Some("nope"), NOW).unwrap_err();
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
    let err = authenticate(&keystone, &MemoryCache::default(), 300, Some("t1"), NOW).unwrap_err();
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
    let err = authenticate(&keystone, &MemoryCache::default(), 300, Some("t1"), NOW).unwrap_err();
    assert_eq!(err.status(), 503);
    assert_eq!(err.message, "Identity service unavailable.");
}

#[test]
fn a_passing_failure_of_identity_is_retried() {
    let keystone = FakeKeystone::with_user("t1", "alpha", &["member"]);
    keystone.failing.set(2);
    let caller = authenticate(&keystone, &MemoryCache::default(), 300, Some("t1"), NOW).unwrap();
    assert_eq!(caller.project_id, "alpha");
}

#[test]
fn an_identity_that_keeps_failing_is_a_503() {
    let keystone = FakeKeystone::with_user("t1", "alpha", &["member"]);
    keystone.failing.set(100);
    let err = authenticate(&keystone, &MemoryCache::default(), 300, Some("t1"), NOW).unwrap_err();
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
    for (key, value) in cache.entries.borrow().iter() {
        assert!(!key.contains("secret-token"));
        assert!(!String::from_utf8_lossy(value).contains("secret-token"));
    }
}

#[test]
fn the_default_domain_is_named_by_its_id() {
    assert_eq!(domain_reference("Default"), json!({"id": "default"}));
    assert_eq!(domain_reference("corp"), json!({"name": "corp"}));
}

/// A token of user `name` in domain `domain`, on project `service` with the `service` role.
fn user_token(name: &str, domain: &str) -> FakeKeystone {
    let keystone = FakeKeystone::with_user("t1", "service", &["service"]);
    keystone
        .users
        .borrow_mut()
        .insert("t1".into(), (name.into(), domain.into()));
    keystone
}

#[test]
fn spinlings_own_service_account_reads_any_projects_packages_and_nothing_more() {
    let keystone = user_token("spinling", "default");
    let caller = authenticate(&keystone, &MemoryCache::default(), 300, Some("t1"), NOW).unwrap();
    assert!(caller.is_service);
    assert!(!caller.is_admin);
    assert!(!caller.may_read("alpha"));
    assert!(caller.package_reader().may_read("alpha"));
}

#[test]
fn another_user_is_not_the_service_account_even_with_its_name_elsewhere() {
    for (name, domain) in [
        ("nova", "default"),
        ("spinling", "0123456789abcdef0123456789abcdef"),
    ] {
        let keystone = user_token(name, domain);
        let caller =
            authenticate(&keystone, &MemoryCache::default(), 300, Some("t1"), NOW).unwrap();
        assert!(!caller.is_service, "{name} in {domain}");
        assert!(!caller.package_reader().may_read("alpha"));
    }
}

#[test]
fn a_job_token_is_spinlings_own_service_token() {
    let keystone = FakeKeystone::default();
    let cache = MemoryCache::default();
    let config = config(300);
    let identity = Keystone {
        config: &config,
        transport: &keystone,
        cache: &cache,
    };
    let token = identity.job_token(NOW).unwrap();
    assert_eq!(token, "service-1");
    assert_eq!(identity.job_token(NOW + 60).unwrap(), token);
    assert_eq!(keystone.issued.get(), 1);
}

/// Two tokens whose hashes share a cache slot.
fn tokens_sharing_a_slot() -> (String, String) {
    let mut seen = HashMap::new();
    for i in 0.. {
        let token = format!("t{i}");
        let slot = token_key(&sha256_hex(token.as_bytes()));
        if let Some(other) = seen.insert(slot, token.clone()) {
            return (other, token);
        }
    }
    unreachable!()
}

#[test]
fn tokens_sharing_a_cache_slot_are_never_taken_for_each_other() {
    let (first, second) = tokens_sharing_a_slot();
    let keystone = FakeKeystone::with_user(&first, "alpha", &["member"]);
    keystone.add(&second, Some("beta"), &["member"], NOW + 3600);
    let cache = MemoryCache::default();
    authenticate(&keystone, &cache, 300, Some(&first), NOW).unwrap();
    let caller = authenticate(&keystone, &cache, 300, Some(&second), NOW).unwrap();
    assert_eq!(caller.project_id, "beta");
    let caller = authenticate(&keystone, &cache, 300, Some(&first), NOW).unwrap();
    assert_eq!(caller.project_id, "alpha");
    assert_eq!(keystone.validations.get(), 3);
}

#[test]
fn validated_tokens_take_at_most_4096_cache_keys() {
    let keystone = FakeKeystone::default();
    let cache = MemoryCache::default();
    for i in 0..6000 {
        let token = format!("t{i}");
        keystone.add(&token, Some("alpha"), &["member"], NOW + 3600);
        authenticate(&keystone, &cache, 300, Some(&token), NOW).unwrap();
    }
    let token_keys = cache
        .entries
        .borrow()
        .keys()
        .filter(|k| k.starts_with("spinling:v1:token:"))
        .count();
    assert!(token_keys <= 4096, "{token_keys} keys");
}
