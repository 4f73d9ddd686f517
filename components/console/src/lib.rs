//! The web console: static files under `/ui/`, embedded at build time. It touches no storage
//! and calls nothing; the page itself calls `/v1` on the same origin.

use spin_sdk::http::{Method, Request, Response};
use spin_sdk::http_component;

/// One embedded file of `ui/`, with its strong `ETag` computed when the component is built.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static [u8],
    etag: u64,
}

macro_rules! asset {
    ($path:literal, $file:literal, $content_type:expr) => {
        Asset {
            path: $path,
            content_type: $content_type,
            body: include_bytes!(concat!("../ui/", $file)),
            etag: fnv1a(include_bytes!(concat!("../ui/", $file))),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

const ASSETS: &[Asset] = &[
    asset!("/", "index.html", "text/html; charset=utf-8"),
    asset!("/style.css", "style.css", "text/css; charset=utf-8"),
    asset!("/main.js", "main.js", JS),
    asset!("/api.js", "api.js", JS),
    asset!("/dom.js", "dom.js", JS),
    asset!("/functions.js", "functions.js", JS),
    asset!("/resources.js", "resources.js", JS),
    asset!("/favicon.svg", "favicon.svg", "image/svg+xml"),
];

/// Scripts, styles and API calls from this origin only; no inline script, no framing, no
/// `<base>` rewriting of relative URLs.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'none'; \
     frame-ancestors 'none'; base-uri 'none'";

/// FNV-1a, 64 bits: evaluated at compile time, so a file's tag costs nothing per request.
const fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        i += 1;
    }
    hash
}

#[http_component]
fn handle(request: Request) -> Response {
    let head = match request.method() {
        Method::Get => false,
        Method::Head => true,
        _ => {
            return answer(405, "text/plain; charset=utf-8", b"Method not allowed.")
                .header("allow", "GET, HEAD")
                .build()
        }
    };
    let path = request.path().strip_prefix("/ui").unwrap_or_default();
    if path.is_empty() {
        // `/ui` itself: the page's relative URLs (`main.js`) resolve against `/ui/`.
        return answer(308, "text/plain; charset=utf-8", b"")
            .header("location", "/ui/")
            .build();
    }
    let Some(asset) = ASSETS.iter().find(|asset| asset.path == path) else {
        return answer(404, "text/plain; charset=utf-8", b"Not found.").build();
    };
    let etag = format!("\"{:016x}\"", asset.etag);
    let if_none_match = request
        .header("if-none-match")
        .and_then(|value| value.as_str())
        .unwrap_or_default();
    if matches_etag(if_none_match, &etag) {
        return answer(304, asset.content_type, b"")
            .header("etag", etag)
            .build();
    }
    let body = if head { &[][..] } else { asset.body };
    answer(200, asset.content_type, body)
        .header("etag", etag)
        .build()
}

/// An answer with the headers every console response carries; files are revalidated each
/// time (`no-cache`) so a new build is seen at once, at the cost of a 304.
fn answer(status: u16, content_type: &str, body: &[u8]) -> spin_sdk::http::ResponseBuilder {
    let mut builder = Response::builder();
    builder
        .status(status)
        .header("content-type", content_type)
        .header("cache-control", "no-cache")
        .header("x-content-type-options", "nosniff")
        .header("content-security-policy", CONTENT_SECURITY_POLICY)
        .header("referrer-policy", "no-referrer")
        .body(body.to_vec());
    builder
}

/// `If-None-Match` holds `*` or a list of tags, weak or strong (RFC 9110 §13.1.2 compares
/// them weakly).
fn matches_etag(if_none_match: &str, etag: &str) -> bool {
    if_none_match
        .split(',')
        .map(str::trim)
        .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag)
}
