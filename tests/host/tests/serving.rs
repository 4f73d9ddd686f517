//! Serving: real sockets, concurrency, streamed bodies, and failing components.

use crate::common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use common::{get, text};
use http_body::Frame;
use http_body_util::StreamBody;
use spin_test_host::SpinApp;

/// Serves `app` on a loopback port for the rest of the test.
async fn serve(app: &SpinApp) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = app.clone();
    tokio::spawn(async move { app.serve(listener).await });
    addr
}

#[test]
fn serving_over_a_real_socket_works() {
    let state = tempfile::tempdir().unwrap();
    let app = common::load(state.path());
    let addr = app.serve_in_background();

    // A plain blocking client, as curl would do it.
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "GET /echo/hi HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();

    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    assert!(response.contains(r#""spin-path-info":"/hi""#), "{response}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thirty_two_parallel_requests_all_succeed() {
    let state = tempfile::tempdir().unwrap();
    let app = common::load_async(state.path()).await;
    let addr = serve(&app).await;

    let over_socket = (0..32).map(|i| {
        tokio::spawn(async move { common::get_over_socket(addr, &format!("/echo/{i}")).await })
    });
    let writes = (0..32).map(|i| {
        let app = app.clone();
        tokio::spawn(async move {
            let request = http::Request::post("/storage/sql")
                .body(Bytes::from(format!("note {i}")))
                .unwrap();
            app.handle(request).await.unwrap().status()
        })
    });
    let (reads, writes) = tokio::join!(
        futures::future::join_all(over_socket),
        futures::future::join_all(writes)
    );

    for (i, read) in reads.into_iter().enumerate() {
        let (status, body) = read.unwrap();
        assert_eq!(status, 200);
        assert!(String::from_utf8_lossy(&body).contains(&format!(r#""spin-path-info":"/{i}""#)));
    }
    assert!(writes.into_iter().all(|w| w.unwrap() == 201));
    let notes = app
        .handle(
            http::Request::get("/storage/sql")
                .body(Bytes::new())
                .unwrap(),
        )
        .await
        .unwrap();
    let notes: serde_json::Value = serde_json::from_slice(notes.body()).unwrap();
    assert_eq!(notes.as_array().unwrap().len(), 32);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_50_mib_upload_reaches_the_component_whole() {
    const MIB: usize = 1024 * 1024;
    let state = tempfile::tempdir().unwrap();
    let app = common::load_async(state.path()).await;
    let addr = serve(&app).await;

    // Generated chunk by chunk: neither side holds the whole upload.
    let chunks = futures::stream::iter(
        (0..50).map(|_| Ok::<_, Infallible>(Frame::data(Bytes::from(vec![7u8; MIB])))),
    );
    let (status, body) =
        common::send_over_socket(addr, "POST", "/echo/upload", StreamBody::new(chunks)).await;

    assert_eq!(status, 200);
    let report: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(report["body_len"], 50 * MIB);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_component_reads_the_body_before_the_upload_ends() {
    let state = tempfile::tempdir().unwrap();
    let app = common::load_async(state.path()).await;
    let addr = serve(&app).await;

    let (sender, receiver) = tokio::sync::mpsc::channel::<Bytes>(1);
    let body = StreamBody::new(futures::stream::unfold(
        receiver,
        |mut receiver| async move {
            let chunk = receiver.recv().await?;
            Some((Ok::<_, Infallible>(Frame::data(chunk)), receiver))
        },
    ));
    sender
        .send(Bytes::from(vec![1u8; 64 * 1024]))
        .await
        .unwrap();

    // The rest of the upload never comes while we wait: only a streaming host can answer.
    let response = tokio::time::timeout(
        Duration::from_secs(20),
        common::send_over_socket(addr, "POST", "/echo/stream?first-chunk", body),
    )
    .await
    .expect("the component must answer before the upload ends");
    drop(sender);

    let report: serde_json::Value = serde_json::from_slice(&response.1).unwrap();
    let first = report["body_len"].as_u64().unwrap();
    assert!(first > 0 && first <= 64 * 1024, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_50_mib_response_streams_back() {
    let state = tempfile::tempdir().unwrap();
    let app = common::load_async(state.path()).await;
    let addr = serve(&app).await;

    let (status, body) = common::get_over_socket(addr, "/echo/download?bytes=52428800").await;

    assert_eq!(status, 200);
    assert_eq!(body.len(), 52_428_800);
}

#[test]
fn a_trapping_component_answers_500_naming_it_and_the_host_keeps_serving() {
    let state = tempfile::tempdir().unwrap();
    let app = common::load(state.path());

    let trapped = get(&app, "/echo/x?trap");
    let next = get(&app, "/echo/x");

    assert_eq!(trapped.status(), 500);
    assert_eq!(
        trapped.headers()["content-type"],
        "text/plain; charset=utf-8"
    );
    assert!(
        text(&trapped).starts_with("Error in component 'echo': "),
        "{}",
        text(&trapped)
    );
    assert_eq!(next.status(), 200);
}

#[test]
fn an_unsupported_spin_interface_traps_loudly() {
    let state = tempfile::tempdir().unwrap();
    let app = common::load(state.path());

    let response = get(&app, "/echo/x?redis");

    assert_eq!(response.status(), 500);
    let body = text(&response);
    assert!(body.contains("fermyon:spin/redis@2.0.0"), "{body}");
    assert!(
        body.contains("is not supported by the Spinling test host"),
        "{body}"
    );
}
