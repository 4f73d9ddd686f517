//! A test host that runs a Spin app's real `wasm32-wasip1` components the way Spin 3.x does.
//!
//! There is no Spin CLI on the machines this project is built and tested on, so this crate
//! stands in for `spin up` in tests: wasmtime + wasmtime-wasi + wasmtime-wasi-http from
//! crates.io, the same componentization of wasip1 modules as Spin, and the Spin interfaces that
//! spin-sdk 5.2 imports (key-value, SQLite v2/v3, variables, outbound HTTP with service
//! chaining), over real SQLite files in a state directory. It reads `spin.toml` for routes,
//! grants, variables and `allowed_outbound_hosts`. It is test infrastructure, not a product.
//!
//! Where it differs from Spin, on purpose:
//! - `http://self/...` is dispatched in-process through the router (Spin grants `http://self`
//!   for relative URLs and sends them over the network); relative outbound URLs are not
//!   supported (wasmtime-wasi-http rejects them before the host sees them).
//! - A failing component answers 500 with a plain-text body naming the component and the
//!   error (Spin logs the error and sends an empty 500).
//! - Non-default key-value labels and SQLite labels need no runtime config: every store shares
//!   `sqlite_key_value.db`, and database `L` is `sqlite_L.db`. A runtime config file
//!   ([`HostOptions::runtime_config`]) may put labels on other files, Redis or libSQL.
//! - Imports of interfaces that are not hosted (redis, mqtt, postgres, mysql, llm,
//!   wasi:keyvalue, wasi:config, …) trap when called, with "not supported by the Spinling test
//!   host".
//! - `/.well-known/spin/health` answers `OK`; `/.well-known/spin/info` is a 404.

mod allowed_hosts;
mod compile;
mod manifest;
mod routes;
mod runtime;
mod runtime_config;
mod spin;
mod variables;

#[cfg(test)]
mod app_manifest_tests;

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::{anyhow, Result};
use bytes::Bytes;
use http::header::HOST;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use tokio::net::TcpListener;
use wasmtime_wasi_http::io::TokioIo;

use crate::runtime::App;

/// Spin's default listen address, used as the authority of in-process requests without one.
const DEFAULT_AUTHORITY: &str = "127.0.0.1:3000";

/// The client address that in-process requests (`SpinApp::handle`) report.
const IN_PROCESS_CLIENT_ADDR: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 0);

/// What to load: the manifest, where state lives, the runtime config, and variable overrides.
#[derive(Clone, Debug)]
pub struct HostOptions {
    /// Path to `spin.toml`; component sources are relative to its directory.
    pub manifest: PathBuf,
    /// Where SQLite and key-value files live (Spin's `.spin/`).
    pub state_dir: PathBuf,
    /// Overrides keyed by app variable name (lowercase); they win over `SPIN_VARIABLE_<NAME>`
    /// in the environment, which wins over the manifest's defaults.
    pub variables: HashMap<String, String>,
    /// A Spin runtime config file (`spin up --runtime-config-file`): backends for key-value
    /// store and SQLite database labels.
    pub runtime_config: Option<PathBuf>,
}

impl HostOptions {
    pub fn new(manifest: impl Into<PathBuf>, state_dir: impl Into<PathBuf>) -> Self {
        Self {
            manifest: manifest.into(),
            state_dir: state_dir.into(),
            variables: HashMap::new(),
            runtime_config: None,
        }
    }

    /// Reads backends from a Spin runtime config file, as `--runtime-config-file` does.
    pub fn runtime_config(mut self, path: impl Into<PathBuf>) -> Self {
        self.runtime_config = Some(path.into());
        self
    }

    /// Overrides one app variable.
    pub fn variable(mut self, name: &str, value: &str) -> Self {
        self.variables.insert(name.to_owned(), value.to_owned());
        self
    }
}

/// A loaded app. Cheap to clone; every request gets a fresh instance of its component.
#[derive(Clone)]
pub struct SpinApp {
    app: Arc<App>,
}

impl SpinApp {
    /// Loads the manifest, compiles (or reuses) every component and pre-instantiates it.
    pub async fn load(opts: HostOptions) -> Result<SpinApp> {
        Ok(Self {
            app: App::load(&opts).await?,
        })
    }

    /// `(component id, route)` of every public route, in manifest order, printed as Spin does
    /// (`/prefix (wildcard)` for `/prefix/...`).
    pub fn routes(&self) -> Vec<(String, String)> {
        self.app.router.listing().to_vec()
    }

    /// In-process request (no socket). Used by tests.
    ///
    /// The authority comes from the `Host` header or an absolute URI, else
    /// `http://127.0.0.1:3000`. The body is complete here, but the component still reads it
    /// as a stream; the response body is collected. A component failure is a 500 response,
    /// not an error; an error means the response body itself failed mid-stream.
    pub async fn handle(&self, req: http::Request<Bytes>) -> Result<http::Response<Bytes>> {
        let (mut parts, body) = req.into_parts();
        if !parts.headers.contains_key(HOST) {
            let authority = parts
                .uri
                .authority()
                .map_or_else(|| DEFAULT_AUTHORITY.to_owned(), |a| a.to_string());
            parts.headers.insert(HOST, authority.parse()?);
        }
        let body = Full::new(body)
            .map_err(|never| match never {})
            .boxed_unsync();
        let response = self
            .app
            .handle(
                http::Request::from_parts(parts, body),
                IN_PROCESS_CLIENT_ADDR,
            )
            .await;
        let (parts, body) = response.into_parts();
        let body = body
            .collect()
            .await
            .map_err(|e| anyhow!("the response body failed: {e}"))?
            .to_bytes();
        Ok(http::Response::from_parts(parts, body))
    }

    /// Serve over HTTP/1.1 on a bound listener until the future is dropped (which also drops
    /// the open connections).
    pub async fn serve(&self, listener: TcpListener) -> Result<()> {
        let mut connections = tokio::task::JoinSet::new();
        loop {
            let (stream, client_addr) = tokio::select! {
                accepted = listener.accept() => accepted?,
                Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            };
            // As Spin: a response is sent as soon as it is written, never held back by Nagle.
            let _ = stream.set_nodelay(true);
            let app = self.app.clone();
            connections.spawn(async move {
                let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let app = app.clone();
                    async move {
                        let req = req.map(|body| {
                            body.map_err(wasmtime_wasi_http::Error::from).boxed_unsync()
                        });
                        Ok::<_, Infallible>(app.handle(req, client_addr).await)
                    }
                });
                if let Err(err) = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await
                {
                    eprintln!("spin-test-host: error serving {client_addr}: {err}");
                }
            });
        }
    }
}

/// Blocking convenience for `#[test]` functions: owns a multi-thread tokio runtime.
///
/// Do not use it from inside an async runtime (use [`SpinApp`] there).
pub struct BlockingApp {
    app: SpinApp,
    servers: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    runtime: tokio::runtime::Runtime,
}

impl BlockingApp {
    pub fn load(opts: HostOptions) -> Result<BlockingApp> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        let app = runtime.block_on(SpinApp::load(opts))?;
        Ok(Self {
            app,
            servers: Mutex::default(),
            runtime,
        })
    }

    /// The loaded app, for async use on another runtime.
    pub fn app(&self) -> &SpinApp {
        &self.app
    }

    /// Sends one in-process request; panics on host errors (a failing component is a 500).
    pub fn send(&self, req: http::Request<Vec<u8>>) -> http::Response<Vec<u8>> {
        let response = self
            .runtime
            .block_on(self.app.handle(req.map(Bytes::from)))
            .expect("the Spinling test host failed to handle the request");
        response.map(Vec::from)
    }

    /// Starts serving on 127.0.0.1:0 in the background; returns the bound address. Stops
    /// when the `BlockingApp` is dropped.
    pub fn serve_in_background(&self) -> SocketAddr {
        let listener = self
            .runtime
            .block_on(TcpListener::bind("127.0.0.1:0"))
            .expect("cannot bind 127.0.0.1:0");
        let addr = listener
            .local_addr()
            .expect("a bound listener has an address");
        let app = self.app.clone();
        let server = self.runtime.spawn(async move {
            if let Err(err) = app.serve(listener).await {
                eprintln!("spin-test-host: server on {addr} stopped: {err:#}");
            }
        });
        self.servers.lock().expect("server list lock").push(server);
        addr
    }
}

impl Drop for BlockingApp {
    fn drop(&mut self) {
        for server in self.servers.get_mut().expect("server list lock").drain(..) {
            server.abort();
        }
    }
}
