//! `allowed_outbound_hosts`, parsed and matched as Spin 3's outbound-networking config does.
//!
//! A pattern is `scheme://host[:port]`: the scheme is a name or `*`; the host is a name, `*`,
//! `*.suffix` (any subdomain), or `self`; the port is a number, a range `a..b`, `*`, or absent
//! (the scheme's default port). Not supported here: CIDR hosts (Spin accepts `10.0.0.0/8`),
//! which this test host rejects at load so that nobody relies on them silently.

use anyhow::{bail, Context, Result};

/// One component's outbound allow-list.
#[derive(Clone, Debug, Default)]
pub(crate) struct AllowedHosts(Vec<AllowedHost>);

#[derive(Clone, Debug, PartialEq, Eq)]
struct AllowedHost {
    scheme: Option<String>,
    host: HostPattern,
    port: PortPattern,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum HostPattern {
    Any,
    AnySubdomain(String),
    /// `self`: the app itself. Spin grants only relative URLs with it; this host also routes
    /// the literal host `self` (`http://self/...`) to the app.
    ToSelf,
    Exact(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum PortPattern {
    Any,
    Port(u16),
    Range(u16, u16),
}

impl AllowedHosts {
    /// Parses the (already variable-expanded) patterns of one component.
    pub fn parse(patterns: &[String]) -> Result<Self> {
        patterns
            .iter()
            .map(|p| {
                AllowedHost::parse(p).with_context(|| format!("allowed_outbound_hosts entry {p:?}"))
            })
            .collect::<Result<_>>()
            .map(Self)
    }

    /// Whether a request to `scheme://host[:port]` may leave the component.
    pub fn allows(&self, scheme: &str, host: &str, port: Option<u16>) -> bool {
        self.0.iter().any(|a| a.allows(scheme, host, port))
    }
}

impl AllowedHost {
    fn parse(pattern: &str) -> Result<Self> {
        let pattern = pattern.trim();
        if pattern == "insecure:allow-all" {
            bail!("'insecure:allow-all' is not allowed - use '*://*:*' instead");
        }
        let Some((scheme, rest)) = pattern.split_once("://") else {
            bail!("no scheme (e.g. 'http://' or '*://'); hosts must be <scheme>://<host>[:<port>]");
        };
        let (host, port) = rest.rsplit_once(':').unwrap_or((rest, ""));
        let port = match port.split_once('/') {
            Some((_, path)) if !path.is_empty() => bail!("a host must not have a path"),
            Some((port, _)) => port,
            None => port,
        };
        let scheme = match scheme {
            "*" => None,
            s if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphabetic()) => Some(s.to_owned()),
            s => bail!("invalid scheme {s:?}"),
        };
        let host = host.trim().trim_end_matches('/');
        let host = match host {
            "*" => HostPattern::Any,
            "self" | "self.alt" => HostPattern::ToSelf,
            h if h.starts_with('{') => bail!("host lists are not supported"),
            h if h.contains('/') => {
                bail!("CIDR ranges are not supported by the Spinling test host")
            }
            h => match h.strip_prefix("*.") {
                Some(domain) if domain.contains('*') => {
                    bail!("wildcards are allowed only as a prefix")
                }
                Some(domain) => HostPattern::AnySubdomain(format!(".{domain}")),
                None if h.contains('*') => bail!("wildcards are allowed only as subdomains"),
                None => HostPattern::Exact(h.to_ascii_lowercase()),
            },
        };
        let port = match port {
            "" => PortPattern::Port(
                scheme
                    .as_deref()
                    .and_then(default_port)
                    .context("no port given and the scheme has no default port")?,
            ),
            "*" => PortPattern::Any,
            p => match p.split_once("..") {
                Some((start, end)) => PortPattern::Range(
                    start.parse().context("port range start")?,
                    end.parse().context("port range end")?,
                ),
                None => PortPattern::Port(p.parse().with_context(|| format!("port {p:?}"))?),
            },
        };
        Ok(Self { scheme, host, port })
    }

    fn allows(&self, scheme: &str, host: &str, port: Option<u16>) -> bool {
        let host = host.to_ascii_lowercase();
        let scheme_ok = self.scheme.as_deref().is_none_or(|s| s == scheme);
        let host_ok = match &self.host {
            HostPattern::Any => true,
            HostPattern::AnySubdomain(suffix) => host.ends_with(suffix.as_str()),
            HostPattern::ToSelf => host == "self",
            HostPattern::Exact(h) => *h == host,
        };
        let port_ok = match (&self.port, port.or_else(|| default_port(scheme))) {
            (PortPattern::Any, _) => true,
            (_, None) => false,
            (PortPattern::Port(p), Some(port)) => *p == port,
            (PortPattern::Range(start, end), Some(port)) => (*start..*end).contains(&port),
        };
        scheme_ok && host_ok && port_ok
    }
}

fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" => Some(80),
        "https" => Some(443),
        "postgres" => Some(5432),
        "mysql" => Some(3306),
        "redis" => Some(6379),
        "mqtt" => Some(1883),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_allow_what_spin_allows() {
        // (pattern, scheme, host, port, allowed)
        let cases: &[(&str, &str, &str, Option<u16>, bool)] = &[
            ("http://example.com", "http", "example.com", None, true),
            ("http://example.com", "http", "example.com", Some(80), true),
            (
                "http://example.com",
                "http",
                "example.com",
                Some(8080),
                false,
            ),
            ("http://example.com", "https", "example.com", None, false),
            ("http://example.com", "http", "other.com", None, false),
            ("https://example.com", "https", "example.com", None, true),
            (
                "http://*.spin.internal",
                "http",
                "private.spin.internal",
                None,
                true,
            ),
            (
                "http://*.spin.internal",
                "http",
                "spin.internal",
                None,
                false,
            ),
            (
                "http://private.spin.internal",
                "http",
                "private.spin.internal",
                None,
                true,
            ),
            (
                "http://private.spin.internal",
                "http",
                "other.spin.internal",
                None,
                false,
            ),
            ("http://127.0.0.1:*", "http", "127.0.0.1", Some(41234), true),
            (
                "http://127.0.0.1:*",
                "http",
                "localhost",
                Some(41234),
                false,
            ),
            (
                "http://localhost:3000",
                "http",
                "localhost",
                Some(3000),
                true,
            ),
            (
                "http://localhost:3000..3010",
                "http",
                "localhost",
                Some(3005),
                true,
            ),
            (
                "http://localhost:3000..3010",
                "http",
                "localhost",
                Some(3010),
                false,
            ),
            ("https://*:*", "https", "anything.example", Some(8443), true),
            ("https://*:*", "http", "anything.example", Some(80), false),
            ("*://*:*", "http", "x.spin.internal", None, true),
            ("http://self", "http", "self", None, true),
            ("http://self", "http", "example.com", None, false),
        ];
        for (pattern, scheme, host, port, allowed) in cases {
            let hosts = AllowedHosts::parse(&[pattern.to_string()]).unwrap();
            assert_eq!(
                hosts.allows(scheme, host, *port),
                *allowed,
                "{pattern} for {scheme}://{host}:{port:?}"
            );
        }
    }

    #[test]
    fn malformed_patterns_are_rejected_at_load() {
        for bad in [
            "example.com",
            "*",
            "http://exa*mple.com",
            "http://example.com/path",
            "foo://x",
        ] {
            assert!(AllowedHosts::parse(&[bad.to_owned()]).is_err(), "{bad}");
        }
    }

    #[test]
    fn no_patterns_allow_nothing() {
        assert!(!AllowedHosts::default().allows("http", "example.com", None));
    }
}
