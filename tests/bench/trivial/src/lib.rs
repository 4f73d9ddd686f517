//! GET answers `ok` (or `?bytes=N` zero bytes, or `?kv` the value of one key-value key);
//! any other method reads the whole body and answers its length. The same host, no storage
//! (or one key-value read): what any request costs at the least.

use futures::{SinkExt, StreamExt};
use spin_sdk::http::{Fields, IncomingRequest, OutgoingResponse, ResponseOutparam};
use spin_sdk::http_component;

#[http_component]
async fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
    let query = request.path_with_query().unwrap_or_default();
    let body = if request.method() == spin_sdk::http::Method::Get {
        match query
            .split_once("bytes=")
            .and_then(|(_, n)| n.parse::<usize>().ok())
        {
            Some(n) => vec![0u8; n],
            None if query.ends_with("?kv") => spin_sdk::key_value::Store::open_default()
                .and_then(|store| store.get("trivial"))
                .ok()
                .flatten()
                .unwrap_or_default(),
            None => b"ok".to_vec(),
        }
    } else {
        let mut stream = request.into_body_stream();
        let mut length = 0usize;
        while let Some(Ok(chunk)) = stream.next().await {
            length += chunk.len();
        }
        length.to_string().into_bytes()
    };
    let headers = Fields::from_list(&[(
        "content-length".to_string(),
        body.len().to_string().into_bytes(),
    )])
    .unwrap();
    let response = OutgoingResponse::new(headers);
    let _ = response.set_status_code(200);
    let mut sink = response.take_body();
    response_out.set(response);
    for piece in body.chunks(1024 * 1024) {
        if sink.send(piece.to_vec()).await.is_err() {
            return;
        }
    }
}
