//! OpenStack Identity reached over Spin's outbound HTTP (the component's
//! `allowed_outbound_hosts` must admit `keystone_url`).

use crate::outbound::{call, Call};
use spinling_core::web::auth::{IdentityRequest, IdentityResponse, IdentityTransport};
use wasi::http::types::Method;

/// Keystone answers in tens of milliseconds; a caller should not wait long for a dead one.
const IDENTITY_TIMEOUT_NS: u64 = 10_000_000_000;

pub struct HttpIdentity;

impl IdentityTransport for HttpIdentity {
    fn send(&self, request: &IdentityRequest) -> Result<IdentityResponse, String> {
        let method = match request.method {
            "POST" => Method::Post,
            _ => Method::Get,
        };
        let headers: Vec<(&str, &str)> = request
            .headers
            .iter()
            .map(|(k, v)| (*k, v.as_str()))
            .collect();
        let reply = call(&Call {
            method,
            url: &request.url,
            headers: &headers,
            body: &request.body,
            timeout_ns: IDENTITY_TIMEOUT_NS,
        })
        .map_err(|e| format!("{} {}: {e:?}", request.method, request.url))?;
        Ok(IdentityResponse {
            status: reply.status,
            headers: reply.headers,
            body: reply.body,
        })
    }
}
