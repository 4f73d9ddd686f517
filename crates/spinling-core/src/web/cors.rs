//! Cross-origin resource sharing, as oslo.middleware's CORS filter with Qinling's defaults
//! (spec §1.6): a web page from an allowed origin may call the API, sending its token in
//! `X-Auth-Token`.
//!
//! `Access-Control-Allow-Credentials` is never sent. Tokens travel in a header the page's own
//! script sets, not in cookies, so credentialed requests would gain nothing; allowing them
//! would only let other sites' pages ride on cookies or HTTP authentication a browser holds
//! for this host.

use crate::web::http::{ApiRequest, ApiResponse};

/// Request headers a cross-origin call may send: Qinling's, plus the simple headers oslo
/// always permits (`Content-Type` among them, which JSON bodies need).
const ALLOWED_HEADERS: &[&str] = &[
    "X-Auth-Token",
    "X-Identity-Status",
    "X-Roles",
    "X-Service-Catalog",
    "X-User-Id",
    "X-Tenant-Id",
    "X-Project-Id",
    "X-User-Name",
    "X-Project-Name",
    "Accept",
    "Accept-Language",
    "Content-Type",
    "Cache-Control",
    "Content-Language",
    "Expires",
    "Last-Modified",
    "Pragma",
    // Conditional requests: publish-only-what-you-read (`If-Match` on a function update) and
    // revalidating an immutable version (`If-None-Match`).
    "If-Match",
    "If-None-Match",
];

const ALLOWED_METHODS: &[&str] = &["GET", "PUT", "POST", "DELETE", "PATCH"];

/// Response headers a page's script may read.
const EXPOSED_HEADERS: &[&str] = &[
    "X-Auth-Token",
    "X-Subject-Token",
    "X-Service-Token",
    "X-Project-Id",
    "X-User-Name",
    "X-Project-Name",
    // What a conditional request needs to have read.
    "ETag",
];

/// How long a browser may reuse a preflight's answer, in seconds.
const MAX_AGE: u32 = 3600;

/// The origins browsers may call the API from (variable `cors_allowed_origins`). None turns
/// CORS off: no preflight is answered and no response carries CORS headers.
///
/// The variable's default (empty) depends on the auth mode: `*` in `keystone` mode, where
/// every call needs a token; off in `none` mode, where a page of any site could otherwise
/// drive the API (see `hosts`). `off` turns CORS off in either mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedOrigins(Vec<String>);

impl AllowedOrigins {
    pub fn any() -> AllowedOrigins {
        AllowedOrigins(vec!["*".into()])
    }

    pub fn off() -> AllowedOrigins {
        AllowedOrigins(Vec::new())
    }

    /// Comma-separated origins (`https://app.example.org`, `http://localhost:8080`) or `*`
    /// for any; empty or `off` turns CORS off.
    pub fn parse(text: &str) -> Result<AllowedOrigins, String> {
        if text.trim().eq_ignore_ascii_case("off") {
            return Ok(AllowedOrigins::off());
        }
        let mut origins = Vec::new();
        for origin in text.split(',').map(str::trim).filter(|o| !o.is_empty()) {
            let origin = origin.trim_end_matches('/');
            let host = origin
                .strip_prefix("http://")
                .or_else(|| origin.strip_prefix("https://"));
            if origin != "*" && host.is_none_or(|h| h.is_empty() || h.contains('/')) {
                return Err(format!(
                    "{origin:?} is not an origin: give `*` or scheme://host[:port], such as https://app.example.org"
                ));
            }
            origins.push(origin.to_string());
        }
        Ok(AllowedOrigins(origins))
    }

    /// The request's `Origin`, if CORS is on and that origin is allowed.
    fn allowed<'r>(&self, request: &'r ApiRequest) -> Option<&'r str> {
        let origin = request.header("origin")?;
        self.allows(origin).then_some(origin)
    }

    /// Whether pages of `origin` may call the API (never while CORS is off).
    pub fn allows(&self, origin: &str) -> bool {
        self.0
            .iter()
            .any(|o| o == "*" || o.eq_ignore_ascii_case(origin))
    }

    fn is_on(&self) -> bool {
        !self.0.is_empty()
    }
}

/// The answer to a preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`),
/// on any path, given before authentication, the body and storage: browsers send preflights
/// without the token. As oslo, it is a 200 either way, with permission headers only when the
/// origin, the method and every requested header are allowed. `None` when the request is no
/// preflight or CORS is off.
pub fn preflight(origins: &AllowedOrigins, request: &ApiRequest) -> Option<ApiResponse> {
    let method = request.header("access-control-request-method")?;
    if request.method != "OPTIONS" || !origins.is_on() {
        return None;
    }
    let mut answer = ApiResponse::empty(200);
    answer.headers.push(vary_origin());
    let Some(origin) = origins.allowed(request) else {
        return Some(answer);
    };
    let requested_headers_allowed = request
        .header("access-control-request-headers")
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .all(|h| ALLOWED_HEADERS.iter().any(|a| a.eq_ignore_ascii_case(h)));
    if ALLOWED_METHODS.contains(&method.trim()) && requested_headers_allowed {
        answer.headers.extend([
            ("access-control-allow-origin".into(), origin.to_string()),
            (
                "access-control-allow-methods".into(),
                ALLOWED_METHODS.join(", "),
            ),
            (
                "access-control-allow-headers".into(),
                ALLOWED_HEADERS.join(", "),
            ),
            ("access-control-max-age".into(), MAX_AGE.to_string()),
        ]);
    }
    Some(answer)
}

/// The CORS headers of any other response to `request`, errors included: the origin, if
/// allowed, and what its script may read.
pub fn response_headers(origins: &AllowedOrigins, request: &ApiRequest) -> Vec<(String, String)> {
    if !origins.is_on() {
        return Vec::new();
    }
    let mut headers = vec![vary_origin()];
    if let Some(origin) = origins.allowed(request) {
        headers.extend([
            ("access-control-allow-origin".into(), origin.to_string()),
            (
                "access-control-expose-headers".into(),
                EXPOSED_HEADERS.join(", "),
            ),
        ]);
    }
    headers
}

/// Every answer depends on the request's `Origin` while CORS is on (the allowed origin is
/// echoed, others get none): caches must keep them apart.
fn vary_origin() -> (String, String) {
    ("vary".into(), "Origin".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: &str, headers: &[(&str, &str)]) -> ApiRequest {
        ApiRequest::new(
            method,
            "http://h/v1/functions",
            headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            vec![],
        )
    }

    fn header<'a>(response: &'a ApiResponse, name: &str) -> Option<&'a str> {
        response
            .headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn preflight_from(origin: &str, method: &str, headers: &str) -> ApiRequest {
        request(
            "OPTIONS",
            &[
                ("Origin", origin),
                ("Access-Control-Request-Method", method),
                ("Access-Control-Request-Headers", headers),
            ],
        )
    }

    fn only(origin: &str) -> AllowedOrigins {
        AllowedOrigins::parse(origin).unwrap()
    }

    #[test]
    fn a_preflight_from_an_allowed_origin_is_granted() {
        let answer = preflight(
            &AllowedOrigins::any(),
            &preflight_from("https://app.example", "POST", "x-auth-token, Content-Type"),
        )
        .unwrap();
        assert_eq!(answer.status, 200);
        assert!(answer.body.is_empty());
        assert_eq!(
            header(&answer, "access-control-allow-origin"),
            Some("https://app.example")
        );
        assert_eq!(
            header(&answer, "access-control-allow-methods"),
            Some("GET, PUT, POST, DELETE, PATCH")
        );
        assert!(header(&answer, "access-control-allow-headers")
            .unwrap()
            .starts_with("X-Auth-Token, X-Identity-Status, X-Roles,"));
        assert_eq!(header(&answer, "access-control-max-age"), Some("3600"));
        assert_eq!(header(&answer, "vary"), Some("Origin"));
        assert_eq!(header(&answer, "access-control-allow-credentials"), None);
    }

    #[test]
    fn a_preflight_refused_is_a_200_without_permission() {
        let refused = [
            preflight_from("https://other.example", "GET", ""),
            preflight_from("https://app.example", "TRACE", ""),
            preflight_from("https://app.example", "GET", "X-Auth-Token, X-Secret"),
        ];
        for request in refused {
            let answer = preflight(&only("https://app.example"), &request).unwrap();
            assert_eq!(answer.status, 200);
            assert_eq!(header(&answer, "access-control-allow-origin"), None);
        }
    }

    #[test]
    fn only_options_with_a_requested_method_is_a_preflight() {
        let origins = AllowedOrigins::any();
        assert!(preflight(&origins, &request("OPTIONS", &[("Origin", "https://a")])).is_none());
        assert!(preflight(
            &origins,
            &request(
                "GET",
                &[
                    ("Origin", "https://a"),
                    ("Access-Control-Request-Method", "GET")
                ]
            )
        )
        .is_none());
    }

    #[test]
    fn responses_to_an_allowed_origin_name_it_and_the_exposed_headers() {
        let headers = response_headers(
            &only("https://app.example, http://localhost:8080/"),
            &request("GET", &[("Origin", "http://localhost:8080")]),
        );
        assert_eq!(
            headers,
            vec![
                ("vary".to_string(), "Origin".to_string()),
                (
                    "access-control-allow-origin".to_string(),
                    "http://localhost:8080".to_string()
                ),
                (
                    "access-control-expose-headers".to_string(),
                    "X-Auth-Token, X-Subject-Token, X-Service-Token, X-Project-Id, X-User-Name, X-Project-Name, ETag"
                        .to_string()
                ),
            ]
        );
    }

    #[test]
    fn responses_to_other_origins_only_vary() {
        let headers = response_headers(
            &only("https://app.example"),
            &request("GET", &[("Origin", "https://evil.example")]),
        );
        assert_eq!(headers, vec![vary_origin()]);
    }

    #[test]
    fn no_origins_turn_cors_off() {
        let off = only(" ");
        assert!(response_headers(&off, &request("GET", &[("Origin", "https://a")])).is_empty());
        assert!(preflight(&off, &preflight_from("https://a", "GET", "")).is_none());
    }

    #[test]
    fn off_turns_cors_off() {
        assert_eq!(only(" OFF "), AllowedOrigins::off());
        assert!(!AllowedOrigins::off().allows("https://a"));
        assert!(AllowedOrigins::any().allows("https://a"));
    }

    #[test]
    fn origins_must_be_a_scheme_and_a_host() {
        assert!(AllowedOrigins::parse("*").is_ok());
        assert!(AllowedOrigins::parse("https://a.example:8443, http://b").is_ok());
        for bad in ["a.example", "https://", "https://a.example/app", "ftp://a"] {
            assert!(AllowedOrigins::parse(bad).is_err(), "{bad}");
        }
    }
}
