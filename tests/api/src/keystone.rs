//! A real OpenStack Keystone for the identity tests: `tests/keystone/setup.sh` (Keystone 30
//! from PyPI under gunicorn, SQLite, fernet tokens) serves it on loopback with projects
//! `alpha` and `beta`, a member of each, an admin and the `spinling` service user. One
//! Keystone serves every test of a run; `scripts/test` stops it at the end.

use crate::{multipart, repo_root, Api, Reply};
use serde_json::{json, Value as Json};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Mutex, OnceLock};

/// The running Keystone and its fixtures (`KS_*` values printed by setup.sh).
pub struct Keystone {
    env: HashMap<String, String>,
    /// One call at a time from the tests: Keystone on SQLite fails concurrent logins with
    /// "database is locked" (the app retries those; a test's own setup should not need to).
    calls: Mutex<()>,
}

/// Where this checkout's Keystone lives (inside the build directory, like everything a
/// fresh machine lacks), and which port it takes: derived from that place, so two checkouts
/// on one machine do not collide.
pub fn keystone_root() -> PathBuf {
    repo_root().join("target/keystone")
}

pub fn keystone_port() -> u16 {
    if let Some(port) = std::env::var("SPINLING_KEYSTONE_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
    {
        return port;
    }
    let hash = keystone_root()
        .to_string_lossy()
        .bytes()
        .fold(0xcbf29ce484222325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
        });
    15000 + (hash % 1000) as u16
}

impl Keystone {
    /// Starts Keystone once per test run (about 40 s from nothing, 5 s when installed).
    pub fn shared() -> &'static Keystone {
        static KEYSTONE: OnceLock<Keystone> = OnceLock::new();
        KEYSTONE.get_or_init(|| {
            let root = keystone_root();
            std::fs::create_dir_all(&root).unwrap();
            let output = Command::new(repo_root().join("tests/keystone/setup.sh"))
                .env("KS_ROOT", &root)
                .env("KS_PORT", keystone_port().to_string())
                .output()
                .expect("run tests/keystone/setup.sh");
            assert!(
                output.status.success(),
                "Keystone did not start: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            let env = String::from_utf8_lossy(&output.stdout)
                .lines()
                .filter_map(|line| line.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            Keystone {
                env,
                calls: Mutex::new(()),
            }
        })
    }

    pub fn value(&self, name: &str) -> &str {
        self.env
            .get(name)
            .unwrap_or_else(|| panic!("setup.sh printed no {name}"))
    }

    /// The Identity v3 URL, e.g. `http://127.0.0.1:15xxx/v3`.
    pub fn url(&self) -> &str {
        self.value("KS_URL")
    }

    pub fn project_id(&self, project: &str) -> &str {
        self.value(&format!("KS_PROJECT_{}_ID", project.to_uppercase()))
    }

    /// Spin variables that put the app in auth mode `keystone` against this Keystone.
    pub fn variables(&self, token_cache_ttl: &str) -> Vec<(&'static str, String)> {
        vec![
            ("auth_mode", "keystone".into()),
            ("keystone_url", self.url().into()),
            (
                "keystone_service_user",
                self.value("KS_SPINLING_NAME").into(),
            ),
            (
                "keystone_service_password",
                self.value("KS_SPINLING_PASSWORD").into(),
            ),
            (
                "keystone_service_project",
                self.value("KS_SPINLING_PROJECT").into(),
            ),
            ("token_cache_ttl", token_cache_ttl.into()),
        ]
    }

    /// A fresh project-scoped token of a fixture user (`alpha_member`, `beta_member`,
    /// `alpha_admin`, `admin`, `spinling`).
    pub fn token(&self, user: &str) -> String {
        let (password, project) = match user {
            "admin" => (self.value("KS_ADMIN_PASSWORD"), "admin"),
            _ => {
                let key = user.to_uppercase();
                (
                    self.value(&format!("KS_{key}_PASSWORD")),
                    self.value(&format!("KS_{key}_PROJECT")),
                )
            }
        };
        let body = json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": user, "domain": {"id": "default"}, "password": password}}},
            "scope": {"project": {"name": project, "domain": {"id": "default"}}}}});
        let (status, headers, body) = self.call("POST", "/auth/tokens", &[], Some(&body));
        assert_eq!(status, 201, "token for {user}: {body}");
        headers["x-subject-token"].clone()
    }

    /// Revokes `token` (as Spinling's service user, which holds the admin role).
    pub fn revoke(&self, token: &str) {
        let service = self.token("spinling");
        let (status, _, body) = self.call(
            "DELETE",
            "/auth/tokens",
            &[("X-Auth-Token", &service), ("X-Subject-Token", token)],
            None,
        );
        assert_eq!(status, 204, "revoke: {body}");
    }

    /// Makes `url` the only public endpoint of `service_type` in the catalog, as an operator
    /// registers Qinling (`function-engine`) so that clients find it.
    pub fn register_endpoint(&self, service_type: &str, url: &str) {
        let admin = self.token("admin");
        let auth = [("X-Auth-Token", admin.as_str())];
        let (_, _, services) = self.call(
            "GET",
            &format!("/services?type={service_type}"),
            &auth,
            None,
        );
        let services: Json = serde_json::from_str(&services).unwrap();
        let service_id = match services["services"][0]["id"].as_str() {
            Some(id) => id.to_string(),
            None => {
                let body = json!({"service": {"type": service_type, "name": service_type}});
                let (status, _, created) = self.call("POST", "/services", &auth, Some(&body));
                assert_eq!(status, 201, "create service: {created}");
                let created: Json = serde_json::from_str(&created).unwrap();
                created["service"]["id"].as_str().unwrap().to_string()
            }
        };
        let (_, _, endpoints) = self.call(
            "GET",
            &format!("/endpoints?service_id={service_id}"),
            &auth,
            None,
        );
        let endpoints: Json = serde_json::from_str(&endpoints).unwrap();
        for endpoint in endpoints["endpoints"].as_array().unwrap() {
            let id = endpoint["id"].as_str().unwrap();
            self.call("DELETE", &format!("/endpoints/{id}"), &auth, None);
        }
        let body = json!({"endpoint": {"service_id": service_id, "interface": "public",
                                       "url": url, "region_id": "RegionOne"}});
        let (status, _, created) = self.call("POST", "/endpoints", &auth, Some(&body));
        assert_eq!(status, 201, "create endpoint: {created}");
    }

    /// `openstack` options that log in as a fixture user with a password.
    pub fn cli_options(&self, user: &str) -> Vec<String> {
        let key = user.to_uppercase();
        [
            ("--os-auth-url", self.url()),
            ("--os-identity-api-version", "3"),
            ("--os-username", user),
            ("--os-password", self.value(&format!("KS_{key}_PASSWORD"))),
            (
                "--os-project-name",
                self.value(&format!("KS_{key}_PROJECT")),
            ),
            ("--os-user-domain-id", "default"),
            ("--os-project-domain-id", "default"),
            ("--os-region-name", "RegionOne"),
        ]
        .iter()
        .flat_map(|(k, v)| [k.to_string(), v.to_string()])
        .collect()
    }

    /// One HTTP/1.1 exchange with Keystone (plain loopback HTTP; no client crate needed).
    fn call(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&Json>,
    ) -> (u16, HashMap<String, String>, String) {
        let url = self.url().strip_prefix("http://").unwrap();
        let (authority, base) = url.split_once('/').unwrap();
        let body = body.map(Json::to_string).unwrap_or_default();
        let mut request = format!(
            "{method} /{base}{path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        );
        for (k, v) in headers {
            request.push_str(&format!("{k}: {v}\r\n"));
        }
        request.push_str("\r\n");
        request.push_str(&body);
        let _one_at_a_time = self.calls.lock().unwrap_or_else(|e| e.into_inner());
        let mut stream = TcpStream::connect(authority).unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
        let mut lines = head.lines();
        let status = lines
            .next()
            .unwrap()
            .split(' ')
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_lowercase(), v.trim().to_string()))
            .collect();
        (status, headers, body.to_string())
    }
}

/// Starts the app with Spin variables given as owned values (`Keystone::variables`).
pub fn start_app(variables: &[(&str, String)]) -> Api {
    let pairs: Vec<(&str, &str)> = variables.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Api::start_with(&pairs)
}

/// The app as one caller sees it: every request carries that caller's token.
pub struct Session<'a> {
    pub api: &'a Api,
    pub token: String,
}

impl Session<'_> {
    pub fn request(&self, method: &str, path: &str, content_type: &str, body: Vec<u8>) -> Reply {
        self.api.request(
            method,
            path,
            &[
                ("x-auth-token", &self.token),
                ("content-type", content_type),
            ],
            body,
        )
    }
    pub fn get(&self, path: &str) -> Reply {
        self.request("GET", path, "application/json", Vec::new())
    }
    pub fn delete(&self, path: &str) -> Reply {
        self.request("DELETE", path, "application/json", Vec::new())
    }
    pub fn post_json(&self, path: &str, body: &Json) -> Reply {
        self.request(
            "POST",
            path,
            "application/json",
            body.to_string().into_bytes(),
        )
    }
    /// Creates a package function on `runtime_id` (multipart, as the CLI does); its id.
    pub fn create_function(&self, runtime_id: &str, package: &[u8]) -> String {
        let (content_type, body) = multipart(
            &[
                ("code", r#"{"source": "package"}"#),
                ("runtime_id", runtime_id),
            ],
            Some(package),
        );
        let reply = self.request("POST", "/v1/functions", &content_type, body);
        reply.assert_status(201);
        reply.json()["id"].as_str().unwrap().to_string()
    }
    /// The `hello` example as this project's function, published as version 1, on a new
    /// built-in runtime that `admin` registers.
    pub fn published_hello(&self, admin: &Session) -> String {
        let runtime = admin.post_json(
            "/v1/runtimes",
            &json!({"image": "spinling/wasm", "name": "wasm"}),
        );
        runtime.assert_status(201);
        let runtime = runtime.json()["id"].as_str().unwrap().to_string();
        let function = self.create_function(&runtime, &crate::example_package("hello"));
        self.post_json(&format!("/v1/functions/{function}/versions"), &json!({}))
            .assert_status(201);
        function
    }

    pub fn put_json(&self, path: &str, body: &Json) -> Reply {
        self.request(
            "PUT",
            path,
            "application/json",
            body.to_string().into_bytes(),
        )
    }
}
