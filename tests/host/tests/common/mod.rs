//! Shared helpers for the test host's own tests: the fixture app and small HTTP clients.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use spin_test_host::{BlockingApp, HostOptions, SpinApp};
use wasmtime_wasi_http::io::TokioIo;

/// The fixture app's manifest (tests/host/fixtures/spin.toml).
pub fn manifest() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/spin.toml")
}

/// A fixture wasm file by crate suffix (`echo`, `storage`, ...), for hand-written manifests.
pub fn fixture_wasm(name: &str) -> PathBuf {
    manifest().parent().unwrap().join(format!(
        "../../../target/wasm32-wasip1/release/spin_test_host_fixture_{name}.wasm"
    ))
}

/// Loads the fixture app on `state_dir`; a missing wasm fails with the build command.
pub fn load(state_dir: &Path) -> BlockingApp {
    load_with(HostOptions::new(manifest(), state_dir))
}

pub fn load_with(opts: HostOptions) -> BlockingApp {
    BlockingApp::load(opts).unwrap_or_else(|err| panic!("cannot load the fixture app: {err:#}"))
}

pub async fn load_async(state_dir: &Path) -> SpinApp {
    SpinApp::load(HostOptions::new(manifest(), state_dir))
        .await
        .unwrap_or_else(|err| panic!("cannot load the fixture app: {err:#}"))
}

pub fn request(method: &str, uri: &str, body: impl Into<Vec<u8>>) -> http::Request<Vec<u8>> {
    http::Request::builder()
        .method(method)
        .uri(uri)
        .body(body.into())
        .unwrap()
}

pub fn get(app: &BlockingApp, uri: &str) -> http::Response<Vec<u8>> {
    app.send(request("GET", uri, ""))
}

pub fn text(response: &http::Response<Vec<u8>>) -> String {
    String::from_utf8_lossy(response.body()).into_owned()
}

pub fn json(response: &http::Response<Vec<u8>>) -> serde_json::Value {
    serde_json::from_slice(response.body())
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(response)))
}

/// One HTTP/1.1 request over a real socket; answers status and the whole body.
pub async fn send_over_socket<B>(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: B,
) -> (http::StatusCode, Bytes)
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("HTTP handshake");
    tokio::spawn(connection);
    let request = http::Request::builder()
        .method(method)
        .uri(path)
        .header(http::header::HOST, addr.to_string())
        .body(body)
        .unwrap();
    let response = sender.send_request(request).await.expect("send request");
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("read body")
        .to_bytes();
    (status, body)
}

pub async fn get_over_socket(addr: SocketAddr, path: &str) -> (http::StatusCode, Bytes) {
    send_over_socket(addr, "GET", path, Full::new(Bytes::new())).await
}
