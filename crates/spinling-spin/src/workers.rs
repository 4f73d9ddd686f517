//! Pings external workers over Spin's outbound HTTP (`wasi:http/outgoing-handler`), blocking:
//! a runtime's status is decided before the create or update returns.

use spinling_core::runtimes::WorkerProbe;
use wasi::http::outgoing_handler;
use wasi::http::types::{Fields, OutgoingRequest, RequestOptions, Scheme};

/// How long a ping may take in total, in nanoseconds (Qinling uses 3 s per try).
const PING_TIMEOUT_NS: u64 = 3_000_000_000;

pub struct HttpWorkerProbe;

impl WorkerProbe for HttpWorkerProbe {
    fn is_up(&self, base_url: &str) -> bool {
        ping(base_url).unwrap_or(false)
    }
}

fn ping(base_url: &str) -> Option<bool> {
    let (scheme, rest) = if let Some(rest) = base_url.strip_prefix("https://") {
        (Scheme::Https, rest)
    } else {
        (Scheme::Http, base_url.strip_prefix("http://")?)
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
        None => (rest, ""),
    };
    let request = OutgoingRequest::new(Fields::new());
    request.set_scheme(Some(&scheme)).ok()?;
    request.set_authority(Some(authority)).ok()?;
    request
        .set_path_with_query(Some(&format!("{path}/ping")))
        .ok()?;
    let options = RequestOptions::new();
    let _ = options.set_connect_timeout(Some(PING_TIMEOUT_NS));
    let _ = options.set_first_byte_timeout(Some(PING_TIMEOUT_NS));
    let future = outgoing_handler::handle(request, Some(options)).ok()?;
    future.subscribe().block();
    let response = future.get()?.ok()?.ok()?;
    Some((200..300).contains(&response.status()))
}
