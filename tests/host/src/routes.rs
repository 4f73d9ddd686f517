//! HTTP routing and the `spin-*` request headers, as Spin 3's `spin-http` router does them.
//!
//! Spin 3 builds its router on the `routefinder` crate, and so does this module, so that
//! precedence and captures are the same:
//! - routes are compared segment by segment from the left: a literal segment beats a `:name`
//!   segment, which beats the `/...` wildcard; so an exact route beats a wildcard, and among
//!   wildcards the longest matching prefix wins;
//! - `:name` matches exactly one non-empty segment and is passed as `spin-path-match-<name>`;
//! - `/prefix/...` matches `/prefix` itself and everything below it;
//! - trailing slashes are not significant, neither in routes nor in paths: Spin strips one
//!   trailing slash from each route (`/v1/` *is* the route `/v1`) and routefinder ignores
//!   trailing slashes in request paths (`/v1/` is served by the route `/v1`). `spin-path-info`
//!   keeps the trailing slash of a wildcard match, as Spin does;
//! - two triggers with the same route text: the last one wins, as in Spin;
//! - private routes (`route = { private = true }`) are never added: only service chaining
//!   reaches them.

use std::net::SocketAddr;

use anyhow::{anyhow, Result};

/// Routes request paths to components.
pub(crate) struct Router {
    inner: routefinder::Router<RouteHandler>,
    /// Routes in manifest order, for the startup listing.
    listing: Vec<(String, String)>,
}

#[derive(Clone, Debug)]
struct RouteHandler {
    component_id: String,
    /// The route with Spin's sanitising applied (one trailing slash stripped), as Spin reports
    /// it in `spin-matched-route`.
    based_route: String,
    /// The route exactly as written in the manifest.
    raw_route: String,
}

/// The outcome of routing one request: what the component sees in its `spin-*` headers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RouteMatch {
    pub component_id: String,
    pub based_route: String,
    pub raw_route: String,
    pub path_info: String,
    pub named: Vec<(String, String)>,
}

impl Router {
    /// Builds the router from `(component id, route)` pairs of the public triggers.
    pub fn build<'a>(routes: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Self> {
        // Spin de-duplicates on the route text: a later trigger replaces an earlier one in place.
        let mut unique: Vec<(&str, &str)> = Vec::new();
        for (component_id, raw_route) in routes {
            match unique.iter_mut().find(|(_, r)| *r == raw_route) {
                Some(slot) => slot.0 = component_id,
                None => unique.push((component_id, raw_route)),
            }
        }

        let mut inner = routefinder::Router::new();
        let mut listing = Vec::new();
        for (component_id, raw_route) in unique {
            let based_route = sanitize(raw_route);
            let (spec, display) = match based_route.strip_suffix("/...") {
                Some(prefix) => (format!("{prefix}/*"), format!("{prefix} (wildcard)")),
                None => (based_route.clone(), based_route.clone()),
            };
            let handler = RouteHandler {
                component_id: component_id.to_owned(),
                based_route,
                raw_route: raw_route.to_owned(),
            };
            inner.add(spec.as_str(), handler).map_err(|e| {
                anyhow!("invalid route {raw_route:?} for component {component_id:?}: {e}")
            })?;
            listing.push((component_id.to_owned(), display));
        }
        Ok(Self { inner, listing })
    }

    /// `(component id, route as Spin prints it)` for every public route, in manifest order.
    pub fn listing(&self) -> &[(String, String)] {
        &self.listing
    }

    /// The best route for a request path (without the query), or `None` (Spin's plain 404).
    pub fn route(&self, path: &str) -> Option<RouteMatch> {
        let best = self.inner.best_match(path)?;
        let handler = best.handler();
        let captures = best.captures();
        // Spin's compatibility rule: the wildcard part keeps a leading slash and the request's
        // trailing slash, which routefinder itself drops.
        let path_info = captures
            .wildcard()
            .map(|w| match (w.is_empty(), path.ends_with('/')) {
                (true, false) => String::new(),
                (true, true) => "/".to_owned(),
                (false, false) => format!("/{w}"),
                (false, true) => format!("/{w}/"),
            })
            .unwrap_or_default();
        Some(RouteMatch {
            component_id: handler.component_id.clone(),
            based_route: handler.based_route.clone(),
            raw_route: handler.raw_route.clone(),
            path_info,
            named: captures
                .iter()
                .map(|(name, value)| (name.to_owned(), value.to_owned()))
                .collect(),
        })
    }
}

impl RouteMatch {
    /// The match Spin synthesises for a service-chaining request: as if the target component
    /// were mounted at `/...`, whatever its own route (or privacy).
    pub fn chained(component_id: &str, path: &str) -> Self {
        Self {
            component_id: component_id.to_owned(),
            based_route: "/...".to_owned(),
            raw_route: "/...".to_owned(),
            path_info: path.to_owned(),
            named: Vec::new(),
        }
    }

    /// The headers Spin adds to the request before the component sees it.
    pub fn headers(&self, full_url: &str, client_addr: SocketAddr) -> Vec<(String, String)> {
        let component_route = self
            .raw_route
            .strip_suffix("/...")
            .unwrap_or(&self.raw_route);
        let mut headers = vec![
            ("spin-path-info".to_owned(), self.path_info.clone()),
            ("spin-full-url".to_owned(), full_url.to_owned()),
            ("spin-matched-route".to_owned(), self.based_route.clone()),
            ("spin-base-path".to_owned(), "/".to_owned()),
            (
                "spin-raw-component-route".to_owned(),
                self.raw_route.clone(),
            ),
            (
                "spin-component-route".to_owned(),
                component_route.to_owned(),
            ),
            ("spin-client-addr".to_owned(), client_addr.to_string()),
        ];
        for (name, value) in &self.named {
            headers.push((
                format!("spin-path-match-{}", name.to_ascii_lowercase()),
                value.clone(),
            ));
        }
        headers
    }
}

/// Spin's `sanitize_with_base` with the base `/`: make the route absolute, strip one trailing
/// slash (so `/` becomes the empty route, which matches only `/`).
fn sanitize(raw_route: &str) -> String {
    let absolute = if raw_route.starts_with('/') {
        raw_route.to_owned()
    } else {
        format!("/{raw_route}")
    };
    match absolute.strip_suffix('/') {
        Some(stripped) => stripped.to_owned(),
        None => absolute,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Expected outcome of routing one path.
    struct Case {
        rule: &'static str,
        routes: &'static [(&'static str, &'static str)],
        path: &'static str,
        /// `None`: no route matches (404).
        expect: Option<Expect>,
    }

    struct Expect {
        component: &'static str,
        matched_route: &'static str,
        path_info: &'static str,
        named: &'static [(&'static str, &'static str)],
    }

    const fn hit(
        component: &'static str,
        matched_route: &'static str,
        path_info: &'static str,
    ) -> Option<Expect> {
        Some(Expect {
            component,
            matched_route,
            path_info,
            named: &[],
        })
    }

    const API: &[(&str, &str)] = &[
        ("root", "/"),
        ("v1-exact", "/v1"),
        ("v1-wild", "/v1/..."),
        ("functions", "/v1/functions/..."),
        ("function", "/v1/functions/:function_id"),
        ("versions", "/v1/functions/:function_id/versions/..."),
        ("version", "/v1/functions/:function_id/versions/:version"),
        ("special", "/v1/functions/special/versions/:version"),
    ];

    const CASES: &[Case] = &[
        Case {
            rule: "an exact route matches its path",
            routes: API,
            path: "/v1",
            expect: hit("v1-exact", "/v1", ""),
        },
        Case {
            rule: "exact beats a wildcard that also matches",
            routes: &[("wild", "/..."), ("exact", "/one")],
            path: "/one",
            expect: hit("exact", "/one", ""),
        },
        Case {
            rule: "a wildcard matches its prefix itself, with empty path info",
            routes: &[("wild", "/files/...")],
            path: "/files",
            expect: hit("wild", "/files/...", ""),
        },
        Case {
            rule: "a wildcard matches its prefix with a slash, path info keeps the slash",
            routes: &[("wild", "/files/...")],
            path: "/files/",
            expect: hit("wild", "/files/...", "/"),
        },
        Case {
            rule: "a wildcard matches everything below its prefix",
            routes: &[("wild", "/files/...")],
            path: "/files/a/b.txt",
            expect: hit("wild", "/files/...", "/a/b.txt"),
        },
        Case {
            rule: "path info keeps a trailing slash",
            routes: &[("wild", "/files/...")],
            path: "/files/a/",
            expect: hit("wild", "/files/...", "/a/"),
        },
        Case {
            rule: "a wildcard prefix matches whole segments only",
            routes: &[("wild", "/files/...")],
            path: "/filesystem",
            expect: None,
        },
        Case {
            rule: "the root wildcard catches everything",
            routes: &[("wild", "/...")],
            path: "/a/b",
            expect: hit("wild", "/...", "/a/b"),
        },
        Case {
            rule: "the root wildcard catches the root",
            routes: &[("wild", "/...")],
            path: "/",
            expect: hit("wild", "/...", "/"),
        },
        Case {
            rule: "among wildcards the longest prefix wins",
            routes: &[
                ("one", "/one/..."),
                ("three", "/one/two/three/..."),
                ("two", "/one/two/..."),
            ],
            path: "/one/two/three/four",
            expect: hit("three", "/one/two/three/...", "/four"),
        },
        Case {
            rule: "a shorter wildcard takes what the longer one does not cover",
            routes: &[("one", "/one/..."), ("two", "/one/two/...")],
            path: "/one/other",
            expect: hit("one", "/one/...", "/other"),
        },
        Case {
            rule: "a :name segment matches one segment and is captured",
            routes: API,
            path: "/v1/functions/f-1",
            expect: Some(Expect {
                component: "function",
                matched_route: "/v1/functions/:function_id",
                path_info: "",
                named: &[("function_id", "f-1")],
            }),
        },
        Case {
            rule: "a :name segment never matches more than one segment",
            routes: &[("one", "/a/:x")],
            path: "/a/b/c",
            expect: None,
        },
        Case {
            rule: "a :name segment never matches an empty segment",
            routes: &[("one", "/a/:x")],
            path: "/a/",
            expect: None,
        },
        Case {
            rule: ":name segments combine with a wildcard suffix",
            routes: API,
            path: "/v1/functions/f-1/versions/3/logs",
            expect: Some(Expect {
                component: "versions",
                matched_route: "/v1/functions/:function_id/versions/...",
                path_info: "/3/logs",
                named: &[("function_id", "f-1")],
            }),
        },
        Case {
            rule: "a :name wildcard route matches its prefix itself",
            routes: API,
            path: "/v1/functions/f-1/versions",
            expect: Some(Expect {
                component: "versions",
                matched_route: "/v1/functions/:function_id/versions/...",
                path_info: "",
                named: &[("function_id", "f-1")],
            }),
        },
        Case {
            rule: "a longer route with :name beats a shorter wildcard",
            routes: API,
            path: "/v1/functions/f-1/versions/3",
            expect: Some(Expect {
                component: "version",
                matched_route: "/v1/functions/:function_id/versions/:version",
                path_info: "",
                named: &[("function_id", "f-1"), ("version", "3")],
            }),
        },
        Case {
            rule: "for equal length a literal segment beats a :name segment",
            routes: API,
            path: "/v1/functions/special/versions/3",
            expect: Some(Expect {
                component: "special",
                matched_route: "/v1/functions/special/versions/:version",
                path_info: "",
                named: &[("version", "3")],
            }),
        },
        Case {
            rule: "literals are compared from the left: the first differing segment decides",
            routes: &[("param-first", "/:a/b"), ("literal-first", "/a/:b")],
            path: "/a/b",
            expect: Some(Expect {
                component: "literal-first",
                matched_route: "/a/:b",
                path_info: "",
                named: &[("b", "b")],
            }),
        },
        Case {
            rule: "a route with :name is not a wildcard: deeper paths fall to a wildcard",
            routes: API,
            path: "/v1/functions/f-1/aliases",
            expect: hit("functions", "/v1/functions/...", "/f-1/aliases"),
        },
        Case {
            rule: "the root route matches only the root",
            routes: &[("root", "/")],
            path: "/",
            expect: hit("root", "", ""),
        },
        Case {
            rule: "the root route does not match below the root",
            routes: &[("root", "/")],
            path: "/x",
            expect: None,
        },
        Case {
            rule: "a request path with a trailing slash reaches the exact route without it",
            routes: &[("exact", "/v1")],
            path: "/v1/",
            expect: hit("exact", "/v1", ""),
        },
        Case {
            rule: "a route written with a trailing slash is the route without it",
            routes: &[("slash", "/v1/")],
            path: "/v1",
            expect: hit("slash", "/v1", ""),
        },
        Case {
            rule: "an exact route does not match below itself",
            routes: &[("exact", "/v1")],
            path: "/v1/x",
            expect: None,
        },
        Case {
            rule: "an exact route does not match a longer segment",
            routes: &[("exact", "/v1")],
            path: "/v1x",
            expect: None,
        },
        Case {
            rule: "no matching route is a 404",
            routes: &[("exact", "/a")],
            path: "/b",
            expect: None,
        },
        Case {
            rule: "a duplicated route text: the last trigger wins",
            routes: &[("first", "/dup"), ("second", "/dup")],
            path: "/dup",
            expect: hit("second", "/dup", ""),
        },
    ];

    #[test]
    fn routing_follows_spin_rules() {
        let mut failures = Vec::new();
        for case in CASES {
            let router = Router::build(case.routes.iter().copied()).unwrap();
            let got = router.route(case.path);
            let want = case.expect.as_ref().map(|e| RouteMatch {
                component_id: e.component.to_owned(),
                based_route: e.matched_route.to_owned(),
                raw_route: case
                    .routes
                    .iter()
                    .rev()
                    .find(|(c, _)| *c == e.component)
                    .map(|(_, r)| r.to_string())
                    .unwrap(),
                path_info: e.path_info.to_owned(),
                named: e
                    .named
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            });
            if got != want {
                failures.push(format!(
                    "{}: {} -> got {got:?}, want {want:?}",
                    case.rule, case.path
                ));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn headers_are_the_ones_spin_sets() {
        let router = Router::build([("c", "/foo/:userid/...")]).unwrap();
        let m = router.route("/foo/42/bar").unwrap();
        let headers = m.headers(
            "https://fermyon.dev/foo/42/bar?k=v",
            "127.0.0.1:8777".parse().unwrap(),
        );
        let get = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(
            get("spin-full-url"),
            Some("https://fermyon.dev/foo/42/bar?k=v")
        );
        assert_eq!(get("spin-path-info"), Some("/bar"));
        assert_eq!(get("spin-matched-route"), Some("/foo/:userid/..."));
        assert_eq!(get("spin-base-path"), Some("/"));
        assert_eq!(get("spin-raw-component-route"), Some("/foo/:userid/..."));
        assert_eq!(get("spin-component-route"), Some("/foo/:userid"));
        assert_eq!(get("spin-client-addr"), Some("127.0.0.1:8777"));
        assert_eq!(get("spin-path-match-userid"), Some("42"));
    }

    #[test]
    fn a_chained_request_is_routed_as_if_mounted_at_the_root_wildcard() {
        let m = RouteMatch::chained("private", "/a/b");
        assert_eq!(m.based_route, "/...");
        assert_eq!(m.path_info, "/a/b");
        let headers = m.headers("http://private.spin.internal/a/b", ([0, 0, 0, 0], 0).into());
        assert!(headers.contains(&("spin-component-route".to_owned(), String::new())));
    }

    #[test]
    fn the_listing_marks_wildcards_as_spin_prints_them() {
        let router = Router::build([("a", "/"), ("b", "/x/..."), ("c", "/...")]).unwrap();
        let listing: Vec<_> = router.listing().iter().map(|(_, r)| r.as_str()).collect();
        assert_eq!(listing, ["", "/x (wildcard)", " (wildcard)"]);
    }
}
