//! The app at run time: one pre-instantiated component per manifest component, a fresh store
//! and instance per request, and outbound HTTP with Spin's allow-list and service chaining.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, CONTENT_TYPE, HOST};
use http::{Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Empty, Full};
use wasmtime::component::types::ComponentItem;
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable, ResourceType};
use wasmtime::Store;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::{
    RequestOptions, WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView,
};

use crate::allowed_hosts::AllowedHosts;
use crate::compile;
use crate::manifest::Manifest;
use crate::routes::{RouteMatch, Router};
use crate::runtime_config::RuntimeConfig;
use crate::spin::{self, Databases, KeyValueStores};
use crate::HostOptions;

/// Request and response bodies everywhere in the host: streamed, never buffered.
pub(crate) type Body = http_body_util::combinators::UnsyncBoxBody<Bytes, wasmtime_wasi_http::Error>;

/// Spin's client address for service-chaining requests.
const CHAINED_CLIENT_ADDR: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 0);

/// Interfaces this host implements; imports of any other interface are stubbed with traps.
const HOSTED_INTERFACES: &[&str] = &[
    "wasi:cli/",
    "wasi:clocks/",
    "wasi:filesystem/",
    "wasi:io/",
    "wasi:random/",
    "wasi:sockets/",
    "wasi:http/types@0.2.",
    "wasi:http/outgoing-handler@0.2.",
    "fermyon:spin/key-value@2.0.0",
    "fermyon:spin/sqlite@2.0.0",
    "fermyon:spin/variables@2.0.0",
    "spin:sqlite/sqlite@3.0.0",
];

pub(crate) struct App {
    /// Key-value backends, shared by all requests (as in Spin).
    pub key_value: KeyValueStores,
    pub databases: Databases,
    components: HashMap<String, Arc<AppComponent>>,
    pub router: Router,
}

pub(crate) struct AppComponent {
    pub id: String,
    pre: ProxyPre<InstanceState>,
    pub key_value_stores: Vec<String>,
    pub sqlite_databases: Vec<String>,
    allowed_hosts: AllowedHosts,
    pub variables: HashMap<String, String>,
    environment: Vec<(String, String)>,
}

impl App {
    pub async fn load(opts: &HostOptions) -> Result<Arc<Self>> {
        let manifest = Manifest::load(&opts.manifest, &opts.variables)?;
        let runtime_config = match &opts.runtime_config {
            Some(path) => RuntimeConfig::load(path)?,
            None => RuntimeConfig::default(),
        };
        std::fs::create_dir_all(&opts.state_dir).with_context(|| {
            format!("cannot create state directory {}", opts.state_dir.display())
        })?;

        let linker = base_linker()?;
        let compiled =
            futures::future::try_join_all(manifest.components.iter().map(|c| async move {
                compile::load(&c.source)
                    .await
                    .with_context(|| format!("component {:?}", c.id))
            }))
            .await?;

        let mut components = HashMap::new();
        for (config, component) in manifest.components.into_iter().zip(compiled) {
            let pre = instance_pre(&linker, &component)
                .with_context(|| format!("component {:?} cannot be instantiated", config.id))?;
            components.insert(
                config.id.clone(),
                Arc::new(AppComponent {
                    id: config.id,
                    pre,
                    key_value_stores: config.key_value_stores,
                    sqlite_databases: config.sqlite_databases,
                    allowed_hosts: config.allowed_hosts,
                    variables: config.variables,
                    environment: config.environment,
                }),
            );
        }
        let router = Router::build(
            manifest
                .routes
                .iter()
                .map(|(c, r)| (c.as_str(), r.as_str())),
        )?;

        Ok(Arc::new(Self {
            key_value: KeyValueStores::new(&opts.state_dir, &runtime_config.key_value),
            databases: Databases::new(&opts.state_dir, runtime_config.sqlite),
            components,
            router,
        }))
    }

    /// A request from outside the app (socket, `SpinApp::handle`, or `http://self`).
    pub async fn handle(
        self: &Arc<Self>,
        mut req: Request<Body>,
        client_addr: SocketAddr,
    ) -> Response<Body> {
        // As Spin's `strip_forbidden_headers`: a request from outside may not pose as service
        // chaining by naming `<component>.spin.internal` in its Host.
        let chaining_host = req
            .headers()
            .get(HOST)
            .and_then(|host| host.to_str().ok())
            .is_some_and(is_service_chaining_host);
        if chaining_host {
            req.headers_mut().remove(HOST);
        }
        let path = req.uri().path();
        if let Some(well_known) = path.strip_prefix("/.well-known/spin/") {
            return match well_known {
                "health" => response(StatusCode::OK, "OK"),
                _ => response(StatusCode::NOT_FOUND, ""),
            };
        }
        match self.router.route(path) {
            Some(route) => self.run(route, req, client_addr).await,
            None => response(StatusCode::NOT_FOUND, ""),
        }
    }

    /// Runs the routed component; any failure is a 500 naming it, and the host keeps serving.
    async fn run(
        self: &Arc<Self>,
        route: RouteMatch,
        req: Request<Body>,
        client_addr: SocketAddr,
    ) -> Response<Body> {
        let component = self.components[&route.component_id].clone();
        match self.try_run(&component, &route, req, client_addr).await {
            Ok(response) => response,
            Err(err) => {
                eprintln!(
                    "spin-test-host: component '{}' failed: {err:#}",
                    component.id
                );
                let mut response = response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!(
                        "Error in component '{}': {}\n",
                        component.id,
                        err.root_cause()
                    ),
                );
                response.headers_mut().insert(
                    CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; charset=utf-8"),
                );
                response
            }
        }
    }

    async fn try_run(
        self: &Arc<Self>,
        component: &Arc<AppComponent>,
        route: &RouteMatch,
        mut req: Request<Body>,
        client_addr: SocketAddr,
    ) -> Result<Response<Body>> {
        // Spin gives the guest an absolute URI built from the Host header and adds its headers.
        let host = match req.headers().get(HOST) {
            Some(host) => host
                .to_str()
                .context("'Host' header is not valid UTF-8")?
                .to_owned(),
            None => req
                .uri()
                .authority()
                .context("no 'Host' header present in request")?
                .to_string(),
        };
        let scheme = req.uri().scheme_str().unwrap_or("http").to_owned();
        let path_and_query = req
            .uri()
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned();
        let full_url = format!("{scheme}://{host}{path_and_query}");
        *req.uri_mut() = Uri::builder()
            .scheme(scheme.as_str())
            .authority(host.as_str())
            .path_and_query(path_and_query)
            .build()
            .context("'Host' header contains an invalid authority")?;
        // Appended after the client's headers, as Spin does (`prepare_request_headers`, then
        // `HeaderMap::extend`): a client-sent `spin-full-url` stays, before Spin's own.
        for (name, value) in route.headers(&full_url, client_addr) {
            if let (Ok(name), Ok(value)) =
                (HeaderName::try_from(name), HeaderValue::try_from(value))
            {
                req.headers_mut().append(name, value);
            }
        }

        let mut store = Store::new(
            compile::engine(),
            InstanceState::new(self.clone(), component.clone()),
        );
        let proxy = component.pre.instantiate_async(&mut store).await?;
        let incoming = store
            .data_mut()
            .http()
            .new_incoming_request(Scheme::Http, req)?;
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let outparam = store.data_mut().http().new_response_outparam(sender)?;

        // The guest runs in its own task: it may keep streaming the body after the headers.
        let task = tokio::spawn(async move {
            proxy
                .wasi_http_incoming_handler()
                .call_handle(&mut store, incoming, outparam)
                .await
        });
        match receiver.await {
            Ok(Ok(response)) => {
                let id = component.id.clone();
                tokio::spawn(async move {
                    if let Ok(Err(err)) = task.await {
                        eprintln!("spin-test-host: component '{id}' failed after sending its response: {err:#}");
                    }
                });
                Ok(response)
            }
            Ok(Err(code)) => bail!("the component set an error instead of a response: {code:?}"),
            Err(_) => {
                task.await.context("the component's task panicked")??;
                bail!("the component returned without setting a response")
            }
        }
    }
}

/// A response with a complete body.
pub(crate) fn response(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let body = body.into();
    let body = if body.is_empty() {
        Empty::new().map_err(|never| match never {}).boxed_unsync()
    } else {
        Full::new(body)
            .map_err(|never| match never {})
            .boxed_unsync()
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response
}

fn base_linker() -> Result<Linker<InstanceState>> {
    let mut linker = Linker::new(compile::engine());
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
    spin::SpinImports::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state)?;
    Ok(linker)
}

/// Marks the resources of interfaces this host does not implement.
struct Unsupported;

/// Pre-instantiates a component, first linking every import this host does not implement
/// (redis, mqtt, postgres, mysql, llm, wasi:keyvalue, wasi:config, …) to functions that trap
/// when called, so that components importing them still load, and calls fail loudly.
fn instance_pre(
    base: &Linker<InstanceState>,
    component: &Component,
) -> Result<ProxyPre<InstanceState>> {
    let engine = compile::engine();
    let mut linker = base.clone();
    for (name, item) in component.component_type().imports(engine) {
        if HOSTED_INTERFACES
            .iter()
            .any(|hosted| name.starts_with(hosted))
        {
            continue;
        }
        let ComponentItem::ComponentInstance(instance) = item.ty else {
            continue;
        };
        let mut stubs = linker.instance(name)?;
        for (export, item) in instance.exports(engine) {
            match item.ty {
                ComponentItem::ComponentFunc(_) => {
                    let what = format!("{name}#{export}");
                    stubs.func_new(export, move |_, _, _, _| {
                        Err(wasmtime::format_err!(
                            "`{what}` is not supported by the Spinling test host"
                        ))
                    })?;
                }
                ComponentItem::Resource(_) => {
                    stubs.resource(export, ResourceType::host::<Unsupported>(), |_, _| Ok(()))?;
                }
                _ => {}
            }
        }
    }
    // Not `define_unknown_imports_as_traps`: it would shadow the WASI interfaces that the
    // linker provides under another (semver-compatible) 0.2.x version.
    Ok(ProxyPre::new(linker.instantiate_pre(component)?)?)
}

/// The data of one request's store.
pub(crate) struct InstanceState {
    pub app: Arc<App>,
    pub component: Arc<AppComponent>,
    pub table: ResourceTable,
    wasi: WasiCtx,
    http: WasiHttpCtx,
    outbound: Outbound,
}

impl InstanceState {
    fn new(app: Arc<App>, component: Arc<AppComponent>) -> Self {
        let mut wasi = WasiCtx::builder();
        wasi.inherit_stdout().inherit_stderr();
        for (key, value) in &component.environment {
            wasi.env(key, value);
        }
        Self {
            outbound: Outbound {
                app: app.clone(),
                component: component.clone(),
            },
            app,
            component,
            table: ResourceTable::new(),
            wasi: wasi.build(),
            http: WasiHttpCtx::new(),
        }
    }
}

impl WasiView for InstanceState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for InstanceState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.outbound,
        }
    }
}

/// `wasi:http/outgoing-handler` as Spin enforces it: the component's allow-list first, then
/// `<id>.spin.internal` and `self` in-process, everything else over the network.
struct Outbound {
    app: Arc<App>,
    component: Arc<AppComponent>,
}

type IoFuture = Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>;
type SendFuture =
    Box<dyn Future<Output = Result<(Response<Body>, IoFuture), wasmtime_wasi_http::Error>> + Send>;

impl WasiHttpHooks for Outbound {
    fn send_request(
        &mut self,
        request: Request<Body>,
        options: Option<RequestOptions>,
        _request_done: IoFuture,
    ) -> SendFuture {
        use wasmtime_wasi_http::Error;
        let app = self.app.clone();
        let component = self.component.clone();
        Box::new(async move {
            let uri = request.uri();
            let scheme = uri.scheme_str().unwrap_or("http").to_owned();
            let host = uri
                .host()
                .ok_or(Error::HttpRequestUriInvalid)?
                .to_ascii_lowercase();
            if !component
                .allowed_hosts
                .allows(&scheme, &host, uri.port_u16())
            {
                return Err(Error::HttpRequestDenied);
            }
            let in_process = |response| Ok((response, Box::new(async { Ok(()) }) as IoFuture));
            match host.split_once('.') {
                Some((target, "spin.internal")) => {
                    if !app.components.contains_key(target) {
                        return Err(Error::DestinationNotFound);
                    }
                    let route = RouteMatch::chained(target, request.uri().path());
                    return in_process(app.run(route, request, CHAINED_CLIENT_ADDR).await);
                }
                None if host == "self" => {
                    return in_process(app.handle(request, CHAINED_CLIENT_ADDR).await);
                }
                _ => {}
            }
            let (response, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            Ok((
                response.map(BodyExt::boxed_unsync),
                Box::new(io) as IoFuture,
            ))
        })
    }
}

/// Whether a Host names a component by service chaining (`<id>.spin.internal`, any port), as
/// Spin's `is_service_chaining_host`.
fn is_service_chaining_host(host: &str) -> bool {
    let name = host.rsplit_once(':').map_or(host, |(name, _)| name);
    name.to_ascii_lowercase().ends_with(".spin.internal")
}
