//! Blocking outbound HTTP over `wasi:http/outgoing-handler`, as Spin provides it: worker
//! pings, worker executions, and package downloads by service chaining. Blocking is right
//! here: the request is waiting for the answer anyway.

use wasi::http::outgoing_handler;
use wasi::http::types::{
    ErrorCode, Fields, Method, OutgoingBody, OutgoingRequest, RequestOptions, Scheme,
};
use wasi::io::streams::StreamError;

/// Why a call got no response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    /// Could not connect (refused, unreachable, not allowed, DNS).
    Connect(String),
    /// Connected, but no complete answer in time.
    Timeout,
    /// Anything else (a malformed URL, a broken stream).
    Other(String),
    /// The response body went past this many bytes; reading stopped there.
    TooLarge(usize),
}

pub struct Call<'a> {
    pub method: Method,
    pub url: &'a str,
    pub headers: &'a [(&'a str, &'a str)],
    pub body: &'a [u8],
    /// Connect, first-byte and between-bytes timeouts, in nanoseconds, and the most the
    /// whole call may take: a peer that trickles its answer byte by byte is cut off too.
    pub timeout_ns: u64,
}

fn split(url: &str) -> Result<(Scheme, &str, &str), CallError> {
    let (scheme, rest) = if let Some(rest) = url.strip_prefix("https://") {
        (Scheme::Https, rest)
    } else if let Some(rest) = url.strip_prefix("http://") {
        (Scheme::Http, rest)
    } else {
        return Err(CallError::Other(format!("not an http(s) URL: {url}")));
    };
    Ok(match rest.find('/') {
        Some(i) => (scheme, &rest[..i], &rest[i..]),
        None => (scheme, rest, "/"),
    })
}

fn classify(e: ErrorCode) -> CallError {
    match e {
        ErrorCode::ConnectionTimeout
        | ErrorCode::ConnectionReadTimeout
        | ErrorCode::ConnectionWriteTimeout => CallError::Timeout,
        ErrorCode::DnsTimeout
        | ErrorCode::DnsError(_)
        | ErrorCode::DestinationNotFound
        | ErrorCode::DestinationUnavailable
        | ErrorCode::DestinationIpProhibited
        | ErrorCode::DestinationIpUnroutable
        | ErrorCode::ConnectionRefused
        | ErrorCode::ConnectionTerminated
        | ErrorCode::HttpRequestDenied => CallError::Connect(format!("{e:?}")),
        other => CallError::Other(format!("{other:?}")),
    }
}

/// A whole response.
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Sends the request and reads the whole response.
pub fn call(call: &Call) -> Result<Reply, CallError> {
    call_within(call, usize::MAX)
}

/// Sends the request and reads the response, whose body may hold at most `max_body` bytes:
/// past that, reading stops (the rest is never buffered) and the call fails as `TooLarge`.
pub fn call_within(call: &Call, max_body: usize) -> Result<Reply, CallError> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_nanos(call.timeout_ns);
    let (scheme, authority, path) = split(call.url)?;
    let headers: Vec<(String, Vec<u8>)> = call
        .headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
        .chain(std::iter::once((
            "content-length".to_string(),
            call.body.len().to_string().into_bytes(),
        )))
        .collect();
    let fields = Fields::from_list(&headers).map_err(|e| CallError::Other(format!("{e:?}")))?;
    let request = OutgoingRequest::new(fields);
    let invalid = |what: &str| CallError::Other(format!("invalid {what} in {}", call.url));
    request
        .set_method(&call.method)
        .map_err(|_| invalid("method"))?;
    request
        .set_scheme(Some(&scheme))
        .map_err(|_| invalid("scheme"))?;
    request
        .set_authority(Some(authority))
        .map_err(|_| invalid("authority"))?;
    request
        .set_path_with_query(Some(path))
        .map_err(|_| invalid("path"))?;
    let body = request.body().map_err(|_| invalid("body"))?;
    let options = RequestOptions::new();
    let _ = options.set_connect_timeout(Some(call.timeout_ns));
    let _ = options.set_first_byte_timeout(Some(call.timeout_ns));
    let _ = options.set_between_bytes_timeout(Some(call.timeout_ns));
    let future = outgoing_handler::handle(request, Some(options)).map_err(classify)?;
    write_all(&body, call.body)?;
    OutgoingBody::finish(body, None).map_err(classify)?;
    future.subscribe().block();
    let response = future
        .get()
        .ok_or(CallError::Timeout)?
        .map_err(|_| CallError::Other("response already taken".into()))?
        .map_err(classify)?;
    let status = response.status();
    let headers = response
        .headers()
        .entries()
        .into_iter()
        .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
        .collect();
    let incoming = response
        .consume()
        .map_err(|_| CallError::Other("no body".into()))?;
    let stream = incoming
        .stream()
        .map_err(|_| CallError::Other("no body stream".into()))?;
    let mut bytes = Vec::new();
    loop {
        if bytes.len() > max_body {
            return Err(CallError::TooLarge(max_body));
        }
        // Never more than one byte past the cap: enough to tell that the body is too large.
        let room = (max_body - bytes.len()).saturating_add(1);
        let want = room.min(1024 * 1024) as u64;
        if std::time::Instant::now() > deadline {
            return Err(CallError::Timeout);
        }
        match stream.blocking_read(want) {
            Ok(chunk) => bytes.extend_from_slice(&chunk),
            Err(StreamError::Closed) => break,
            Err(StreamError::LastOperationFailed(e)) => {
                return Err(CallError::Other(e.to_debug_string()))
            }
        }
    }
    Ok(Reply {
        status,
        headers,
        body: bytes,
    })
}

fn write_all(body: &OutgoingBody, bytes: &[u8]) -> Result<(), CallError> {
    if bytes.is_empty() {
        return Ok(());
    }
    let stream = body
        .write()
        .map_err(|_| CallError::Other("body not writable".into()))?;
    for piece in bytes.chunks(4096) {
        stream
            .blocking_write_and_flush(piece)
            .map_err(|e| CallError::Other(format!("could not send the body: {e:?}")))?;
    }
    Ok(())
}
