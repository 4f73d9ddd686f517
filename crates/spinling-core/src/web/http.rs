//! A framework-free request and response, so that every handler and the error mapping are
//! plain Rust, unit-testable natively; the Spin adapter only converts to and from these.

use crate::error::{ApiError, ApiResult};
use crate::redacted::Redacted;
use crate::store::packages::StoredPackage;
pub use bytes::Bytes;
use serde_json::Value as Json;
use std::fmt;

/// Request headers whose values are credentials: never printed.
const SECRET_HEADERS: &[&str] = &[
    "x-auth-token",
    "x-subject-token",
    "x-service-token",
    "authorization",
    "cookie",
];

#[derive(Clone, Default)]
pub struct ApiRequest {
    /// Upper-case HTTP method.
    pub method: String,
    /// The path as sent, without the query.
    pub path: String,
    /// Decoded query pairs, in order.
    pub query: Vec<(String, String)>,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
    /// Shared, so that a package part of it is taken without copying 50 MiB.
    pub body: Bytes,
    /// `scheme://host[:port]` this API is reached at: `public_url` when set, else the URL
    /// Spin says the request was addressed to (its own `spin-full-url`, never a client's).
    pub base_url: String,
    /// The `host[:port]` the client addressed: its `Host` header, else the URL's authority.
    pub host: String,
    /// The checksums of a multipart body's `package` part, computed while the body streamed
    /// in (`forms::PackageHasher`).
    pub package_checksums: Option<crate::store::packages::BodyChecksums>,
}

impl fmt::Debug for ApiRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers: Vec<(&str, &dyn fmt::Debug)> = self
            .headers
            .iter()
            .map(|(k, v)| {
                let value: &dyn fmt::Debug = if SECRET_HEADERS.contains(&k.as_str()) {
                    &Redacted
                } else {
                    v
                };
                (k.as_str(), value)
            })
            .collect();
        f.debug_struct("ApiRequest")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("query", &self.query)
            .field("headers", &headers)
            .field("body", &format_args!("<{} bytes>", self.body.len()))
            .field("base_url", &self.base_url)
            .field("host", &self.host)
            .finish()
    }
}

impl ApiRequest {
    /// Builds a request from the full URL the client used.
    pub fn new(
        method: &str,
        full_url: &str,
        headers: Vec<(String, String)>,
        body: impl Into<Bytes>,
    ) -> Self {
        let (base_url, path_and_query) = split_url(full_url);
        let (path, query) = match path_and_query.split_once('?') {
            Some((p, q)) => (p, q),
            None => (path_and_query, ""),
        };
        let host = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("host"))
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_else(|| {
                base_url
                    .split_once("://")
                    .map_or("", |(_, authority)| authority)
                    .to_string()
            });
        ApiRequest {
            method: method.to_ascii_uppercase(),
            path: if path.is_empty() {
                "/".into()
            } else {
                path.into()
            },
            query: parse_urlencoded(query),
            headers: headers
                .into_iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v))
                .collect(),
            body: body.into(),
            base_url: base_url.to_string(),
            host,
            package_checksums: None,
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Rejects query parameters other than `allowed`, as WSME does.
    pub fn only_query_params(&self, allowed: &[&str]) -> ApiResult<()> {
        match self
            .query
            .iter()
            .find(|(k, _)| !allowed.contains(&k.as_str()))
        {
            Some((k, _)) => Err(ApiError::bad_request(format!("Unknown argument: \"{k}\""))),
            None => Ok(()),
        }
    }

    /// Percent-decoded path segments; a trailing slash adds no segment.
    pub fn segments(&self) -> Vec<String> {
        self.path
            .trim_start_matches('/')
            .trim_end_matches('/')
            .split('/')
            .filter(|s| !s.is_empty())
            .map(percent_decode)
            .collect()
    }

    pub fn content_type(&self) -> String {
        self.header("content-type")
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase()
    }
}

fn split_url(full_url: &str) -> (&str, &str) {
    if let Some(scheme_end) = full_url.find("://") {
        let rest = &full_url[scheme_end + 3..];
        match rest.find('/') {
            Some(i) => full_url.split_at(scheme_end + 3 + i),
            None => match rest.find('?') {
                Some(i) => full_url.split_at(scheme_end + 3 + i),
                None => (full_url, "/"),
            },
        }
    } else {
        ("", full_url)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ApiResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Body,
}

/// What follows a response's head.
#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    Bytes(Vec<u8>),
    /// A stored package, which the adapter sends a chunk at a time, reading them from the
    /// request's database as it goes (see `StoredPackage`): 50 MiB never sit in memory at once.
    Package(StoredPackage),
    /// A backup archive, which the adapter sends a piece at a time as it reads it from the
    /// request's database (see `store::backup::Export`); its length is not known before.
    Archive(crate::store::backup::Export),
}

impl Body {
    /// Its length in bytes (a `Content-Length`), when it is known before it is sent.
    pub fn content_length(&self) -> Option<u64> {
        match self {
            Body::Bytes(bytes) => Some(bytes.len() as u64),
            Body::Package(package) => Some(package.size),
            Body::Archive(_) => None,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.content_length() == Some(0)
    }
}

impl From<Vec<u8>> for Body {
    fn from(bytes: Vec<u8>) -> Self {
        Body::Bytes(bytes)
    }
}

impl ApiResponse {
    pub fn json<T: serde::Serialize + ?Sized>(status: u16, value: &T) -> Self {
        ApiResponse {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: serde_json::to_vec(value)
                .expect("JSON values serialise")
                .into(),
        }
    }
    pub fn ok<T: serde::Serialize + ?Sized>(value: &T) -> Self {
        Self::json(200, value)
    }
    pub fn created(value: &Json) -> Self {
        Self::json(201, value)
    }
    pub fn empty(status: u16) -> Self {
        ApiResponse {
            status,
            headers: Vec::new(),
            body: Vec::new().into(),
        }
    }
    /// A backup archive of the whole database, as a download named after its time.
    pub fn archive(export: crate::store::backup::Export) -> Self {
        let stamp: String = export
            .created_at
            .chars()
            .filter(char::is_ascii_digit)
            .collect();
        ApiResponse {
            status: 200,
            headers: vec![
                ("content-type".into(), "application/x-ndjson".into()),
                (
                    "content-disposition".into(),
                    format!("attachment; filename=\"spinling-backup-{stamp}.jsonl\""),
                ),
            ],
            body: Body::Archive(export),
        }
    }

    /// A stored package's download, named as Qinling names it.
    pub fn attachment(filename: &str, package: StoredPackage) -> Self {
        ApiResponse {
            status: 200,
            headers: vec![
                ("content-type".into(), "application/zip".into()),
                (
                    "content-disposition".into(),
                    format!("attachment; filename=\"{filename}\""),
                ),
            ],
            body: Body::Package(package),
        }
    }
}

/// The one mapping of domain errors to HTTP.
impl From<ApiError> for ApiResponse {
    /// The one place an error becomes an answer, and so the one place it is logged: a
    /// server-side failure, with its cause, goes to stderr (Spin's log); a client's mistake
    /// does not.
    fn from(e: ApiError) -> Self {
        if e.status() >= 500 || std::error::Error::source(&e).is_some() {
            eprintln!("error: {}", e.log_line());
        }
        let mut response = ApiResponse {
            status: e.status(),
            headers: vec![("content-type".into(), "application/json".into())],
            body: e.body().into(),
        };
        if e.kind == crate::error::ErrorKind::Unauthorized {
            // As keystonemiddleware and pecan.abort: clients learn where to get a token, and
            // the reason travels in a header too.
            response
                .headers
                .push(("www-authenticate".into(), "Keystone uri=''".into()));
            response
                .headers
                .push(("server-error-message".into(), header_safe(&e.message)));
        }
        response
    }
}

/// `text` as a header value: printable ASCII only.
fn header_safe(text: &str) -> String {
    text.chars()
        .map(|c| if (' '..='~').contains(&c) { c } else { '?' })
        .collect()
}

pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push(h * 16 + l);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// `application/x-www-form-urlencoded` (also the query string): `+` is a space.
pub fn parse_urlencoded(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (
                percent_decode(&k.replace('+', " ")),
                percent_decode(&v.replace('+', " ")),
            )
        })
        .collect()
}

/// oslo's `bool_from_string`, strict: anything else is an error, not `false`.
pub fn parse_bool(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "1" | "t" | "true" | "on" | "y" | "yes" => Some(true),
        "0" | "f" | "false" | "off" | "n" | "no" => Some(false),
        _ => None,
    }
}

/// A strong entity tag for a representation made of `bytes`: its quoted SHA-256.
pub fn strong_etag(bytes: &[u8]) -> String {
    format!("\"{}\"", crate::store::packages::sha256_hex(bytes))
}

/// Conditional GETs (RFC 9110 §13.1.2).
impl ApiRequest {
    /// Whether `If-None-Match` names `etag` (weak comparison: `W/` is ignored) or is `*`:
    /// the client already holds this representation.
    pub fn if_none_match_hits(&self, etag: &str) -> bool {
        let Some(value) = self.header("if-none-match") else {
            return false;
        };
        let wanted = etag.trim_start_matches("W/");
        value.trim() == "*"
            || value
                .split(',')
                .map(|tag| tag.trim().trim_start_matches("W/"))
                .any(|tag| tag == wanted)
    }
}

impl ApiResponse {
    /// `304 Not Modified` for a representation with `etag`: no body.
    pub fn not_modified(etag: &str) -> Self {
        ApiResponse {
            status: 304,
            headers: vec![("etag".into(), etag.into())],
            body: Vec::new().into(),
        }
    }

    /// This response with one more header.
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_a_full_url_into_base_path_and_query() {
        let r = ApiRequest::new(
            "get",
            "http://127.0.0.1:3000/v1/functions/abc?download=true&x=a+b",
            vec![],
            vec![],
        );
        assert_eq!(r.method, "GET");
        assert_eq!(r.base_url, "http://127.0.0.1:3000");
        assert_eq!(r.path, "/v1/functions/abc");
        assert_eq!(r.query_param("download"), Some("true"));
        assert_eq!(r.query_param("x"), Some("a b"));
        assert_eq!(r.segments(), vec!["v1", "functions", "abc"]);
    }

    #[test]
    fn the_host_is_the_host_header_else_the_url_s_authority() {
        let r = ApiRequest::new(
            "GET",
            "http://127.0.0.1:3000/v1",
            vec![("Host".into(), "localhost:3000".into())],
            vec![],
        );
        assert_eq!(r.host, "localhost:3000");
        let r = ApiRequest::new("GET", "http://127.0.0.1:3000/v1", vec![], vec![]);
        assert_eq!(r.host, "127.0.0.1:3000");
    }

    #[test]
    fn credentials_are_redacted_in_debug_output() {
        let r = ApiRequest::new(
            "GET",
            "http://h/v1",
            vec![
                ("X-Auth-Token".into(), "gAAAAAB-secret".into()),
                ("X-Subject-Token".into(), "gAAAAAB-secret".into()),
                ("Accept".into(), "application/json".into()),
            ],
            b"body".to_vec(),
        );
        let printed = format!("{r:?}");
        assert!(!printed.contains("secret"), "{printed}");
        assert!(
            printed.contains("(\"x-auth-token\", <redacted>)"),
            "{printed}"
        );
        assert!(printed.contains("\"application/json\""), "{printed}");
    }

    #[test]
    fn a_url_without_a_path_is_the_root() {
        let r = ApiRequest::new("GET", "http://h:1", vec![], vec![]);
        assert_eq!(r.path, "/");
        assert!(r.segments().is_empty());
    }

    #[test]
    fn percent_escapes_are_decoded_in_segments() {
        let r = ApiRequest::new("GET", "http://h/v1/aliases/my%20alias%2", vec![], vec![]);
        assert_eq!(r.segments()[2], "my alias%2");
    }

    #[test]
    fn booleans_are_parsed_strictly() {
        assert_eq!(parse_bool("false"), Some(false));
        assert_eq!(parse_bool("True"), Some(true));
        assert_eq!(parse_bool("maybe"), None);
    }

    #[test]
    fn unknown_query_parameters_are_refused() {
        let r = ApiRequest::new("GET", "http://h/v1/runtimes?x=1", vec![], vec![]);
        assert_eq!(
            r.only_query_params(&[]).unwrap_err().message,
            "Unknown argument: \"x\""
        );
    }

    #[test]
    fn if_none_match_hits_a_listed_tag_a_weak_one_or_a_star() {
        let with = |value: &str| {
            ApiRequest::new(
                "GET",
                "http://h/v1",
                vec![("If-None-Match".into(), value.into())],
                vec![],
            )
        };
        assert!(with("\"a\", \"b\"").if_none_match_hits("\"b\""));
        assert!(with("W/\"b\"").if_none_match_hits("\"b\""));
        assert!(with("*").if_none_match_hits("\"b\""));
        assert!(!with("\"a\"").if_none_match_hits("\"b\""));
        assert!(!ApiRequest::new("GET", "http://h/v1", vec![], vec![]).if_none_match_hits("\"b\""));
    }
}
