//! Safe by default on a laptop. In auth mode `none` no token protects the API, so any web page
//! the user visits could otherwise drive it: by DNS rebinding (a page of `evil.example` whose
//! name is made to resolve to 127.0.0.1 reads and writes the API as its own origin) or by a
//! plain cross-site form post. So, in that mode, a request is served only when
//!
//! - its `Host` is loopback (`localhost`, `127.0.0.0/8`, `[::1]`, any port), `public_url`'s
//!   host, or one of the variable `allowed_hosts` (`*` for any); and
//! - it carries no `Origin`, or the page's origin is this same host, a loopback or allowed host
//!   (a `*` in `allowed_hosts` does not count here), or one of `cors_allowed_origins`.
//!
//! Service chaining inside the app (`http://<component>.spin.internal`) is always served: Spin
//! removes a `Host` naming `*.spin.internal` from requests that come from outside.
//!
//! In auth mode `keystone` nothing is checked here: every request needs a token, which a page
//! of another site does not have.

use crate::error::{ApiError, ApiResult};
use crate::web::cors::AllowedOrigins;
use crate::web::http::ApiRequest;
use std::net::{Ipv4Addr, Ipv6Addr};

/// The hosts this API may be addressed as in auth mode `none`, besides loopback names
/// (variable `allowed_hosts`, plus `public_url`'s host).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AllowedHosts {
    /// `*` was given: any host is served.
    any: bool,
    /// `host` (any port), `host:port`, or `*.domain`, lower-cased.
    patterns: Vec<Pattern>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Pattern {
    Host(String),
    HostAndPort(String, u16),
    /// `*.example.org`: any name under `.example.org`.
    Domain(String),
}

impl AllowedHosts {
    /// Comma-separated `host`, `host:port`, `*.domain` or `*`; empty: loopback names only.
    pub fn parse(text: &str) -> Result<AllowedHosts, String> {
        let mut hosts = AllowedHosts::default();
        for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            if entry == "*" {
                hosts.any = true;
                continue;
            }
            let bad = || {
                format!(
                    "{entry:?} is not a host: give a name or address, optionally with :port, \
                     `*.domain`, or `*`"
                )
            };
            if let Some(domain) = entry.strip_prefix("*.") {
                let (host, port) = split_authority(domain).ok_or_else(bad)?;
                if port.is_some() {
                    return Err(bad());
                }
                hosts.patterns.push(Pattern::Domain(host));
                continue;
            }
            hosts
                .patterns
                .push(match split_authority(entry).ok_or_else(bad)? {
                    (host, None) => Pattern::Host(host),
                    (host, Some(port)) => Pattern::HostAndPort(host, port),
                });
        }
        Ok(hosts)
    }

    /// Adds `public_url`'s host (any port).
    pub fn with_public_url(mut self, public_url: &str) -> AllowedHosts {
        let authority = public_url
            .split_once("://")
            .map_or(public_url, |(_, rest)| rest)
            .split(['/', '?', '#'])
            .next()
            .unwrap_or_default();
        if let Some((host, _)) = split_authority(authority) {
            self.patterns.push(Pattern::Host(host));
        }
        self
    }

    /// Whether a `host[:port]` is loopback or listed (not counting a `*`).
    fn lists(&self, authority: &str) -> bool {
        let Some((host, port)) = split_authority(authority) else {
            return false;
        };
        is_loopback(&host)
            || self.patterns.iter().any(|pattern| match pattern {
                Pattern::Host(h) => *h == host,
                Pattern::HostAndPort(h, p) => *h == host && port == Some(*p),
                Pattern::Domain(suffix) => host
                    .strip_suffix(suffix.as_str())
                    .is_some_and(|name| name.len() > 1 && name.ends_with('.')),
            })
    }

    /// Whether a request addressed to `authority` (its `Host`) is served.
    pub fn serves(&self, authority: &str) -> bool {
        self.any || is_service_chaining(authority) || self.lists(authority)
    }
}

/// Where a request may come from, as the deployment says (see the module's documentation).
pub struct SiteGuard<'a> {
    /// The hosts this API is served as, in every auth mode: a request's `Host` is also where
    /// links point and where external workers download packages (with a token) when
    /// `public_url` is unset, so no caller may choose it. Asked for only when a loopback or
    /// service-chaining name does not settle the question (each variable it reads is a host
    /// call).
    pub hosts: &'a dyn Fn() -> ApiResult<AllowedHosts>,
    /// Auth mode `none`: pages of other sites are refused too (no token protects the API).
    pub guards_origins: bool,
}

/// Refuses a request addressed to a host that is not allowed (in every auth mode) and, in auth
/// mode `none`, one sent by a page of another site that is not one of the CORS `origins` (see
/// the module's documentation).
pub fn check_site(
    guard: &SiteGuard,
    origins: &AllowedOrigins,
    request: &ApiRequest,
) -> ApiResult<()> {
    let read = std::cell::OnceCell::new();
    let hosts = || -> ApiResult<&AllowedHosts> {
        if read.get().is_none() {
            let _ = read.set((guard.hosts)()?);
        }
        Ok(read.get().expect("set just now"))
    };
    let always_served = is_service_chaining(&request.host) || is_loopback_authority(&request.host);
    if !always_served && !hosts()?.serves(&request.host) {
        return Err(ApiError::forbidden(format!(
            "Host '{}' is not allowed. Set the Spin variable allowed_hosts (or public_url) to serve it.",
            request.host
        )));
    }
    let Some(origin) = request.header("origin").filter(|_| guard.guards_origins) else {
        return Ok(());
    };
    let origin_authority = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .filter(|a| !a.is_empty() && !a.contains(['/', '?', '#', '@']));
    let allowed = match origin_authority {
        _ if origins.allows(origin) => true,
        None => false,
        Some(authority) => {
            authority.eq_ignore_ascii_case(&request.host)
                || is_loopback_authority(authority)
                || hosts()?.lists(authority)
        }
    };
    if allowed {
        Ok(())
    } else {
        Err(ApiError::forbidden(format!(
            "Origin '{origin}' is not allowed. Set the Spin variable cors_allowed_origins (or allowed_hosts) to accept requests from its pages."
        )))
    }
}

/// `host[:port]` as a lower-cased host (an IPv6 address keeps its brackets; one trailing dot
/// is dropped) and its port; `None` if it is not one.
fn split_authority(authority: &str) -> Option<(String, Option<u16>)> {
    let authority = authority.trim().to_ascii_lowercase();
    let (host, port) = if authority.starts_with('[') {
        let end = authority.find(']')?;
        let (host, rest) = authority.split_at(end + 1);
        match rest {
            "" => (host, None),
            _ => (host, Some(rest.strip_prefix(':')?)),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority.as_str(), None),
        }
    };
    let port = match port {
        None => None,
        Some(p) => Some(p.parse::<u16>().ok()?),
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    let valid = !host.is_empty()
        && (host.starts_with('[')
            || host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_'));
    valid.then(|| (host.to_string(), port))
}

fn is_loopback(host: &str) -> bool {
    if host == "localhost" {
        return true;
    }
    if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return v6.parse::<Ipv6Addr>().is_ok_and(|ip| {
            ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        });
    }
    host.parse::<Ipv4Addr>().is_ok_and(|ip| ip.is_loopback())
}

/// Whether `authority` names a loopback host (any port), which every configuration serves.
fn is_loopback_authority(authority: &str) -> bool {
    split_authority(authority).is_some_and(|(host, _)| is_loopback(&host))
}

/// `<component>.spin.internal`: a request from another component of this app.
fn is_service_chaining(authority: &str) -> bool {
    split_authority(authority).is_some_and(|(host, _)| {
        host.strip_suffix(".spin.internal")
            .is_some_and(|component| !component.is_empty() && !component.contains('.'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(host: &str, origin: Option<&str>) -> ApiRequest {
        let mut headers = vec![("Host".to_string(), host.to_string())];
        if let Some(origin) = origin {
            headers.push(("Origin".to_string(), origin.to_string()));
        }
        ApiRequest::new("POST", "http://x/v1/functions", headers, vec![])
    }

    /// Checks `request` in auth mode `none` with `hosts` allowed, without CORS.
    fn check(hosts: &str, request: &ApiRequest) -> ApiResult<()> {
        let hosts = || Ok(AllowedHosts::parse(hosts).unwrap());
        check_site(&none_mode(&hosts), &AllowedOrigins::off(), request)
    }

    #[test]
    fn loopback_hosts_are_served_with_any_port() {
        let hosts = AllowedHosts::default();
        for host in [
            "localhost",
            "LOCALHOST:3000",
            "localhost.:80",
            "127.0.0.1",
            "127.0.0.1:3000",
            "127.254.3.9:8080",
            "[::1]",
            "[::1]:3000",
            "[::ffff:127.0.0.1]:3000",
        ] {
            assert!(hosts.serves(host), "{host}");
        }
    }

    #[test]
    fn other_hosts_are_refused_unless_listed() {
        let hosts = AllowedHosts::default();
        for host in [
            "evil.example",
            "evil.example:3000",
            "localhost.evil.example",
            "127.0.0.1.evil.example",
            "128.0.0.1",
            "0.0.0.0:3000",
            "[::2]:3000",
            "[::1",
            "",
            "spin.internal",
            "a.b.spin.internal",
        ] {
            assert!(!hosts.serves(host), "{host}");
        }
    }

    #[test]
    fn configured_hosts_match_by_name_port_or_domain() {
        let hosts =
            AllowedHosts::parse("faas.lan, box:8080, *.example.org, [fd00::1]:3000").unwrap();
        assert!(hosts.serves("FAAS.lan:3000"));
        assert!(hosts.serves("box:8080"));
        assert!(!hosts.serves("box:8081"));
        assert!(!hosts.serves("box"));
        assert!(hosts.serves("a.example.org:1"));
        assert!(!hosts.serves("example.org"));
        assert!(!hosts.serves("evilexample.org"));
        assert!(hosts.serves("[fd00::1]:3000"));
        assert!(AllowedHosts::parse("*")
            .unwrap()
            .serves("anything.example:9"));
    }

    #[test]
    fn public_url_s_host_is_served_on_any_port() {
        let hosts = AllowedHosts::default().with_public_url("https://FaaS.example.org/base");
        assert!(hosts.serves("faas.example.org"));
        assert!(hosts.serves("faas.example.org:8443"));
        assert!(!hosts.serves("example.org"));
    }

    #[test]
    fn service_chaining_is_always_served() {
        assert!(AllowedHosts::default().serves("functions.spin.internal"));
    }

    #[test]
    fn entries_that_are_not_hosts_are_configuration_errors() {
        for bad in ["http://a.example", "a.example/x", "a:port", "*.a:1", "a b"] {
            assert!(AllowedHosts::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_foreign_host_is_refused_naming_the_variable() {
        let err = check("", &request("evil.example:3000", None)).unwrap_err();
        assert_eq!(err.status(), 403);
        assert_eq!(
            err.message,
            "Host 'evil.example:3000' is not allowed. Set the Spin variable allowed_hosts (or public_url) to serve it."
        );
    }

    #[test]
    fn pages_of_the_same_or_a_loopback_host_may_call() {
        for (host, origin) in [
            ("127.0.0.1:3000", "http://127.0.0.1:3000"),
            ("127.0.0.1:3000", "http://localhost:8080"),
            ("mybox:3000", "http://MYBOX:3000"),
        ] {
            assert!(check("*", &request(host, Some(origin))).is_ok());
        }
    }

    #[test]
    fn pages_of_other_sites_are_refused_even_when_any_host_is_served() {
        for origin in ["https://evil.example", "null", "http://mybox:3001"] {
            let err = check("*", &request("mybox:3000", Some(origin))).unwrap_err();
            assert_eq!(err.status(), 403);
            assert_eq!(
                err.message,
                format!("Origin '{origin}' is not allowed. Set the Spin variable cors_allowed_origins (or allowed_hosts) to accept requests from its pages.")
            );
        }
    }

    #[test]
    fn an_origin_allowed_for_cors_may_call() {
        let hosts = || Ok(AllowedHosts::default());
        let origins = AllowedOrigins::parse("https://app.example").unwrap();
        let guard = none_mode(&hosts);
        let check = |origin| check_site(&guard, &origins, &request("localhost", Some(origin)));
        assert!(check("https://app.example").is_ok());
        assert!(check("https://b.example").is_err());
    }

    fn none_mode<'a>(hosts: &'a dyn Fn() -> ApiResult<AllowedHosts>) -> SiteGuard<'a> {
        SiteGuard {
            hosts,
            guards_origins: true,
        }
    }

    fn keystone_mode<'a>(hosts: &'a dyn Fn() -> ApiResult<AllowedHosts>) -> SiteGuard<'a> {
        SiteGuard {
            hosts,
            guards_origins: false,
        }
    }

    #[test]
    fn with_tokens_pages_of_other_sites_may_call() {
        let request = request("localhost:3000", Some("https://evil.example"));
        let hosts = || Ok(AllowedHosts::default());
        assert!(check_site(&keystone_mode(&hosts), &AllowedOrigins::any(), &request).is_ok());
    }

    #[test]
    fn loopback_and_same_host_requests_are_judged_without_reading_the_hosts() {
        let unreadable = || Err(ApiError::internal("read"));
        for (host, origin) in [
            ("127.0.0.1:3000", None),
            ("jobs.spin.internal", None),
            ("localhost:3000", Some("http://localhost:3000")),
            ("localhost:3000", Some("http://127.0.0.1:8080")),
        ] {
            let request = request(host, origin);
            let guard = none_mode(&unreadable);
            assert!(check_site(&guard, &AllowedOrigins::off(), &request).is_ok());
        }
        let foreign = request("faas.lan", None);
        let guard = none_mode(&unreadable);
        assert_eq!(
            check_site(&guard, &AllowedOrigins::off(), &foreign)
                .unwrap_err()
                .status(),
            500
        );
    }

    #[test]
    fn with_tokens_a_foreign_host_is_refused_all_the_same() {
        // It would otherwise choose where workers fetch packages with Spinling's token.
        let hosts = || Ok(AllowedHosts::parse("faas.lan").unwrap());
        let guard = keystone_mode(&hosts);
        let err = check_site(
            &guard,
            &AllowedOrigins::any(),
            &request("attacker.example:9999", None),
        )
        .unwrap_err();
        assert_eq!(err.status(), 403);
        assert!(err.message.contains("allowed_hosts"), "{}", err.message);
        for host in ["faas.lan:443", "localhost:3000", "jobs.spin.internal"] {
            assert!(check_site(&guard, &AllowedOrigins::any(), &request(host, None)).is_ok());
        }
    }
}
