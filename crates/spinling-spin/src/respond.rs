//! Writing a response to Spin: a body of up to 1 MiB whole before the response is handed
//! over (one segment, so keep-alive clients meet no delayed ACK), a package download a few
//! chunks at a time, renewing its stamp while the client reads nothing, and a backup archive
//! a piece at a time, chunked.

use crate::storage;
use spin_sdk::http::{Fields, OutgoingBody, OutgoingResponse, ResponseOutparam};
use spinling_core::error::ApiError;
use spinling_core::store::db::Database;
use spinling_core::store::packages::Pieces;
use spinling_core::web::http::{ApiResponse, Body};
use wasi::io::streams::{OutputStream, StreamError};

pub async fn write_response(response_out: ResponseOutparam, response: ApiResponse) {
    send_response(response_out, response, &storage::NoDatabase).await
}

/// Sends the response; a stored package's chunks are read from `db` as they are sent. A
/// failure half-way ends the body short of its `Content-Length`, which the client sees.
pub(crate) async fn send_response(
    response_out: ResponseOutparam,
    response: ApiResponse,
    db: &dyn Database,
) {
    let mut headers: Vec<(String, Vec<u8>)> = response
        .headers
        .iter()
        .map(|(k, v)| (k.clone(), v.clone().into_bytes()))
        .collect();
    // Without one (an archive), the body goes chunked, and a failure half-way ends it
    // unfinished.
    if let Some(length) = response.body.content_length() {
        headers.push(("content-length".into(), length.to_string().into_bytes()));
    }
    let fields = Fields::from_list(&headers).unwrap_or_else(|_| Fields::new());
    let outgoing = OutgoingResponse::new(fields);
    let _ = outgoing.set_status_code(response.status);
    let sent = match response.body {
        Body::Bytes(bytes) => send_whole(response_out, outgoing, &bytes),
        // A chunk at a time: the next is read while the host sends the last.
        Body::Package(package) => match outgoing.body() {
            Ok(body) => {
                response_out.set(outgoing);
                send_pieces(body, package.pieces(db))
            }
            Err(()) => {
                response_out.set(outgoing);
                Err("the response body was taken already".into())
            }
        },
        Body::Archive(export) => match outgoing.body() {
            Ok(body) => {
                response_out.set(outgoing);
                send_stream(body, export.pieces(db))
            }
            Err(()) => {
                response_out.set(outgoing);
                Err("the response body was taken already".into())
            }
        },
    };
    if let Err(e) = sent {
        eprintln!("could not write the response body: {e}");
    }
}

/// Sends a response whose body is all in memory: written and finished before the response is
/// handed to Spin whenever the host's buffer takes it all (up to its chunk size, 1 MiB in
/// Spin 4), so that Spin's HTTP server has the head and the whole body at once and writes
/// them to the socket together. Handed over first and written after, a small body can leave
/// in a second segment that Nagle's algorithm holds until the client's delayed ACK (about
/// 40 ms on Linux: stock Spin does not set `TCP_NODELAY`) on a kept-alive connection.
fn send_whole(
    response_out: ResponseOutparam,
    outgoing: OutgoingResponse,
    bytes: &[u8],
) -> Result<(), String> {
    let describe = describe_stream_error;
    let Ok(body) = outgoing.body() else {
        response_out.set(outgoing);
        return Err("the response body was taken already".into());
    };
    let Ok(stream) = body.write() else {
        response_out.set(outgoing);
        return Err("the response body is not writable".into());
    };
    // As much as the host takes before anyone reads.
    let mut written = 0;
    while written < bytes.len() {
        match stream.check_write() {
            Ok(0) => break,
            Ok(room) => {
                let end = bytes.len().min(written + room as usize);
                if let Err(e) = stream.write(&bytes[written..end]) {
                    response_out.set(outgoing);
                    return Err(describe(e));
                }
                written = end;
            }
            Err(e) => {
                response_out.set(outgoing);
                return Err(describe(e));
            }
        }
    }
    if written == bytes.len() {
        drop(stream);
        let finished = OutgoingBody::finish(body, None).map_err(|e| format!("{e:?}"));
        response_out.set(outgoing);
        return finished;
    }
    // A larger body: the rest as the host reads it.
    response_out.set(outgoing);
    write_all(&stream, &bytes[written..])?;
    flush_and_finish(stream, body)
}

/// Writes `bytes` as the host takes them, waiting while it has no room.
fn write_all(stream: &OutputStream, bytes: &[u8]) -> Result<(), String> {
    let mut written = 0;
    while written < bytes.len() {
        let room = stream.check_write().map_err(describe_stream_error)?;
        if room == 0 {
            stream.subscribe().block();
            continue;
        }
        let end = bytes.len().min(written + room as usize);
        stream
            .write(&bytes[written..end])
            .map_err(describe_stream_error)?;
        written = end;
    }
    Ok(())
}

/// Flushes what is written, waits until the host has taken it, and ends the body.
fn flush_and_finish(stream: OutputStream, body: OutgoingBody) -> Result<(), String> {
    stream.flush().map_err(describe_stream_error)?;
    while stream.check_write().map_err(describe_stream_error)? == 0 {
        stream.subscribe().block();
    }
    drop(stream);
    OutgoingBody::finish(body, None).map_err(|e| format!("{e:?}"))
}

/// Sends pieces as the client takes them; an error ends the body unfinished, so the client
/// sees it cut short.
fn send_stream(
    body: OutgoingBody,
    pieces: impl Iterator<Item = Result<Vec<u8>, ApiError>>,
) -> Result<(), String> {
    let Ok(stream) = body.write() else {
        return Err("the response body is not writable".into());
    };
    for piece in pieces {
        write_all(&stream, &piece.map_err(|e| e.log_line())?)?;
    }
    flush_and_finish(stream, body)
}

fn describe_stream_error(e: StreamError) -> String {
    match e {
        StreamError::Closed => "closed".to_string(),
        StreamError::LastOperationFailed(e) => e.to_debug_string(),
    }
}

/// Sends a stored package's pieces as the client takes them. While the host's buffer is full
/// (a client reading slowly, or not at all for a while), the package's stamp is renewed every
/// [`Pieces::stamp_interval`], so the collector leaves the chunks still to be sent alone
/// however long the client pauses (see `spinling_core::store::packages`).
fn send_pieces(body: OutgoingBody, mut pieces: Pieces<'_>) -> Result<(), String> {
    let describe = describe_stream_error;
    let Ok(stream) = body.write() else {
        return Err("the response body is not writable".into());
    };
    // Until the host takes more: renew the stamp at each interval meanwhile. A renewal that
    // fails is tried again at the next (the download goes on: its chunks may well stay).
    let wait = |pieces: &mut Pieces<'_>| {
        let writable = stream.subscribe();
        loop {
            let nanos = Pieces::stamp_interval().as_nanos() as u64;
            let timer = wasi::clocks::monotonic_clock::subscribe_duration(nanos);
            if wasi::io::poll::poll(&[&writable, &timer]).contains(&0) {
                return;
            }
            if let Err(e) = pieces.keep_stamp() {
                eprintln!("could not renew a download's stamp: {}", e.log_line());
            }
        }
    };
    while let Some(piece) = pieces.next() {
        let piece = piece.map_err(|e| e.log_line())?;
        let mut written = 0;
        while written < piece.len() {
            let room = stream.check_write().map_err(describe)?;
            if room == 0 {
                wait(&mut pieces);
                continue;
            }
            let end = piece.len().min(written + room as usize);
            stream.write(&piece[written..end]).map_err(describe)?;
            written = end;
        }
    }
    stream.flush().map_err(describe)?;
    while stream.check_write().map_err(describe)? == 0 {
        wait(&mut pieces);
    }
    drop(stream);
    OutgoingBody::finish(body, None).map_err(|e| format!("{e:?}"))
}
