//! The network faces of the server: the query HTTP API (3200), OTLP/HTTP (4318) and OTLP/gRPC (4317),
//! Jaeger's query API (16686) and the Zipkin receiver (9411), the ingester's internal endpoint for queriers
//! of other processes (`internal.rs`), which of them a role opens (`--target`), and the order in which
//! they start and stop around the ingester.
//!
//! Owns routing, the mapping of errors to status codes (`status`) and the server's lifecycle. May call
//! every other module; none calls it.

mod connections;
mod gzip;
mod internal;
mod jaeger;
mod otlp_grpc;
mod otlp_http;
mod query;
mod sql;
mod status;
mod tempo_grpc;
mod tempo_search;
mod tempo_tags;
mod tls;
mod traces;
mod ui;
mod zipkin;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::auth::{AuthError, Credentials, Grant};
use crate::compaction::Compactor;
use crate::config::{ServeConfig, Target};
use crate::ingest::{IngestError, Ingester};
use crate::query::Querier;
use crate::receive::{Admission, BodyLimits};
use crate::search::Searcher;
use crate::sql::SqlEngine;
use crate::storage::{Storage, StorageError};
use crate::telemetry;

pub use status::{Refusal, RpcStatus};
pub use tls::{TlsError, TlsFiles};

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Ingest(#[from] IngestError),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("server: {0}")]
    Io(#[from] std::io::Error),
    #[error("OTLP/gRPC server: {0}")]
    Grpc(#[from] tonic::transport::Error),
    #[error("SQL engine: {0}")]
    Sql(#[from] crate::sql::SqlError),
    #[error("auth_file")]
    Auth(#[from] crate::auth::FileError),
    #[error("TLS")]
    Tls(#[from] TlsError),
    #[error(transparent)]
    PeerTls(#[from] crate::query::peers::PeerTlsError),
}

/// The version and git revision baked in at build time.
pub fn build_info() -> serde_json::Value {
    json!({
        "version": env!("CARGO_PKG_VERSION"),
        "revision": option_env!("SPANLAKE_GIT_REVISION").unwrap_or("unknown"),
        "branch": option_env!("SPANLAKE_GIT_BRANCH").unwrap_or("unknown"),
        "goVersion": "",
    })
}

/// What every handler needs; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// The roles this process runs.
    target: Target,
    /// This process's ingester; `None` for a querier, which reads other processes' ingesters instead.
    ingester: Option<Ingester>,
    querier: Querier,
    sql: SqlEngine,
    search: Searcher,
    storage: Storage,
    multitenancy: bool,
    /// The credentials every request must bring (`auth_file`); `None`: auth off, anyone may do anything.
    credentials: Option<Credentials>,
    /// Tenants with data this server holds at most (`max_tenants`).
    max_tenants: usize,
    body_limits: BodyLimits,
    /// The byte budget OTLP requests in flight share (`max_inflight_request_bytes`).
    admission: Admission,
    /// How long a request's body may take to arrive after its headers (`read_timeout`).
    read_timeout: std::time::Duration,
    ready: Arc<AtomicBool>,
}

impl AppState {
    /// The ingester, for the receivers: they run only in a process that has one.
    fn ingester(&self) -> Result<&Ingester, Refusal> {
        self.ingester.as_ref().ok_or_else(|| Refusal::from(&IngestError::NotAnIngester))
    }

    /// The tenant a request acts for. Auth off: the X-Scope-OrgID header (or `single-tenant`), as
    /// before. Auth on: the credential's tenant; a header naming another is refused (403), and only an
    /// admin credential may choose any tenant by the header. `authorization` is the raw `Authorization`
    /// header (or gRPC metadata) value, `asked` the X-Scope-OrgID one.
    fn tenant_of(
        &self,
        authorization: Option<&[u8]>,
        asked: Option<&str>,
    ) -> Result<crate::ids::TenantId, crate::receive::ReceiveError> {
        let Some(credentials) = &self.credentials else {
            return crate::receive::resolve_tenant(asked, self.multitenancy);
        };
        let granted = match credentials.check(authorization).map_err(counted)? {
            Grant::Admin => return crate::receive::resolve_tenant(asked, self.multitenancy),
            Grant::Tenant(granted) => granted,
        };
        match asked {
            Some(asked) if self.multitenancy && asked != granted.as_str() => {
                Err(counted(AuthError::OtherTenant { granted, asked: asked.to_owned() }).into())
            }
            _ => Ok(granted),
        }
    }

    /// Lets the request through if it may use the operator's routes: anyone with auth off, an admin
    /// credential with it on.
    fn require_admin(&self, authorization: Option<&[u8]>) -> Result<(), AuthError> {
        require_admin(self.credentials.as_ref(), authorization)
    }

    /// Lets spans of `tenant` in unless they would be the first of one tenant too many: tenants count when
    /// they have data, in the store (the catalogue) or in the ingester's buffers. Only a tenant new to both
    /// pays for the count.
    fn admit_tenant(&self, tenant: &crate::ids::TenantId) -> Result<(), crate::receive::ReceiveError> {
        let catalog = self.querier.catalog();
        let Some(ingester) = &self.ingester else { return Ok(()) };
        if catalog.has_tenant(tenant) || ingester.holds_tenant(tenant) {
            return Ok(());
        }
        let buffered_only = ingester.tenants().iter().filter(|held| !catalog.has_tenant(held)).count();
        if catalog.tenant_count() + buffered_only >= self.max_tenants {
            return Err(crate::receive::ReceiveError::TooManyTenants { limit: self.max_tenants });
        }
        Ok(())
    }
}

/// Admits an operator's request: anyone with auth off (`credentials` `None`), an admin credential with it
/// on.
fn require_admin(credentials: Option<&Credentials>, authorization: Option<&[u8]>) -> Result<(), AuthError> {
    let Some(credentials) = credentials else {
        return Ok(());
    };
    match credentials.check(authorization).map_err(counted)? {
        Grant::Admin => Ok(()),
        Grant::Tenant(_) => Err(counted(AuthError::NotAdmin)),
    }
}

/// The credentials the settings name (`None`: auth off), read before any port opens.
fn load_credentials(config: &ServeConfig) -> Result<Option<Credentials>, ServeError> {
    let loaded = config.auth_file.as_deref().map(|path| Credentials::load(path, config.multitenancy));
    Ok(loaded.transpose()?)
}

/// Counts a refusal for its credentials, whichever port and route it came on.
fn counted(error: AuthError) -> AuthError {
    let reason = if error.is_unauthenticated() { "unauthenticated" } else { "forbidden" };
    metrics::counter!(telemetry::AUTH_REFUSED, "reason" => reason).increment(1);
    error
}

/// A running server: its bound addresses, its ingester, and the way to stop it.
pub struct Server {
    http_addr: SocketAddr,
    /// The receivers' addresses, in a process that ingests.
    otlp_http_addr: Option<SocketAddr>,
    otlp_grpc_addr: Option<SocketAddr>,
    jaeger_addr: Option<SocketAddr>,
    zipkin_addr: Option<SocketAddr>,
    state: AppState,
    stop_receivers: watch::Sender<bool>,
    stop_query: watch::Sender<bool>,
    receivers: Vec<JoinHandle<Result<(), ServeError>>>,
    query: JoinHandle<Result<(), ServeError>>,
    /// Jaeger's query port, when on; it stops with the query port.
    jaeger: Option<JoinHandle<Result<(), ServeError>>>,
    /// The catalogue's refresher, in a process that answers queries.
    refresher: Option<JoinHandle<()>>,
    /// The task resolving the ingesters' names again, in a querier.
    resolver: Option<JoinHandle<()>>,
    /// Tasks that re-read the credentials and TLS files when they change.
    reloaders: Vec<JoinHandle<()>>,
    compactor: Option<JoinHandle<()>>,
}

/// HTTP/2 flow-control window of one OTLP/gRPC request (bytes): the largest Collector batch.
const GRPC_STREAM_WINDOW: u32 = 4 << 20;

/// HTTP/2 flow-control window of one OTLP/gRPC connection (bytes): four such requests in flight.
const GRPC_CONNECTION_WINDOW: u32 = 16 << 20;

/// Default of `max_tenants`: tenants with data one server holds.
pub const DEFAULT_MAX_TENANTS: usize = 10_000;

/// Default of `max_connections`: connections each port holds open at once.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;

/// Default of `max_concurrent_streams`: HTTP/2 requests open at once on one connection (Tempo's gRPC
/// server default, `grpc_server_max_concurrent_streams`).
pub const DEFAULT_MAX_CONCURRENT_STREAMS: usize = 100;

async fn bind(addr: SocketAddr) -> Result<TcpListener, ServeError> {
    TcpListener::bind(addr).await.map_err(|source| ServeError::Bind { addr, source })
}

/// Serves an HTTP router on its listener until `stop` turns true, then finishes in-flight requests.
fn spawn_http(
    listener: TcpListener,
    app: axum::Router,
    protocols: connections::Protocols,
    limits: connections::ConnectionLimits,
    tls: Option<tls::Tls>,
    stop: watch::Receiver<bool>,
) -> JoinHandle<Result<(), ServeError>> {
    tokio::spawn(async move {
        connections::serve(listener, app, protocols, limits, tls, stop).await;
        Ok(())
    })
}

/// Binds `addr` and serves `app` on it: the bound address (port 0 picks one) and the serving task.
async fn open_http(
    addr: SocketAddr,
    app: axum::Router,
    protocols: connections::Protocols,
    limits: connections::ConnectionLimits,
    tls: &Option<tls::Tls>,
    stop: watch::Receiver<bool>,
) -> Result<(SocketAddr, JoinHandle<Result<(), ServeError>>), ServeError> {
    let listener = bind(addr).await?;
    let bound = listener.local_addr()?;
    Ok((bound, spawn_http(listener, app, protocols, limits, tls.clone(), stop)))
}

fn connection_limits(config: &ServeConfig) -> connections::ConnectionLimits {
    connections::ConnectionLimits {
        read_timeout: config.read_timeout,
        max_connections: config.max_connections,
        max_concurrent_streams: u32::try_from(config.max_concurrent_streams).unwrap_or(u32::MAX),
    }
}

/// The TLS configuration the settings ask for (`None`: TLS off), loaded before any port opens.
fn load_tls(config: &ServeConfig) -> Result<Option<tls::Tls>, ServeError> {
    let files = TlsFiles::from_settings(
        config.tls_cert_file.as_deref(),
        config.tls_key_file.as_deref(),
        config.tls_client_ca_file.as_deref(),
    )?;
    Ok(files.map(tls::Tls::load).transpose()?)
}

/// The receivers of a process that ingests, open: their addresses and serving tasks.
struct Receivers {
    otlp_http: SocketAddr,
    otlp_grpc: SocketAddr,
    zipkin: Option<SocketAddr>,
    tasks: Vec<JoinHandle<Result<(), ServeError>>>,
}

/// Opens OTLP/HTTP, OTLP/gRPC and (when on) Zipkin; they stop together when `stop` turns true.
async fn open_receivers(
    config: &ServeConfig,
    state: &AppState,
    tls: &Option<tls::Tls>,
    stop: &watch::Sender<bool>,
) -> Result<Receivers, ServeError> {
    let (otlp_http, http_task) = open_http(
        config.otlp_http_addr,
        otlp_http::router(state.clone()),
        connections::Protocols::Http1,
        connection_limits(config),
        tls,
        stop.subscribe(),
    )
    .await?;
    tracing::info!(otlp_http_addr = %otlp_http, "OTLP/HTTP receiver listening");

    let grpc_listener = bind(config.otlp_grpc_addr).await?;
    let otlp_grpc = grpc_listener.local_addr()?;
    let grpc_service = otlp_grpc::service(state.clone());
    let grpc_stop = stopped(stop.subscribe());
    let limits = connection_limits(config);
    let read_timeout = limits.read_timeout;
    let grpc_incoming = connections::incoming(grpc_listener, limits, tls.clone(), tls::Alpn::Http2);
    let grpc_task = tokio::spawn(async move {
        tonic::transport::Server::builder()
            // Idle clients answer pings; half-open connections and clients that stall mid-frame do not.
            .http2_keepalive_interval(Some(read_timeout))
            .http2_keepalive_timeout(Some(read_timeout))
            // Exports are 0.2–4 MiB (512–8,192 spans): windows that size let a request arrive without
            // waiting for WINDOW_UPDATEs, a few requests in flight on one connection.
            .initial_stream_window_size(GRPC_STREAM_WINDOW)
            .initial_connection_window_size(GRPC_CONNECTION_WINDOW)
            .max_concurrent_streams(limits.max_concurrent_streams)
            .add_service(grpc_service)
            .serve_with_incoming_shutdown(grpc_incoming, grpc_stop)
            .await
            .map_err(ServeError::from)
    });
    tracing::info!(otlp_grpc_addr = %otlp_grpc, "OTLP/gRPC receiver listening");
    let mut tasks = vec![http_task, grpc_task];

    // Zipkin's receiver is a receiver like the OTLP ones: it opens after replay and stops with them.
    let zipkin = match config.zipkin_addr {
        Some(addr) => {
            let limits = connection_limits(config);
            let app = zipkin::router(state.clone());
            let (addr, task) =
                open_http(addr, app, connections::Protocols::Http1, limits, tls, stop.subscribe()).await?;
            tasks.push(task);
            tracing::info!(zipkin_addr = %addr, "Zipkin receiver listening");
            Some(addr)
        }
        None => None,
    };
    Ok(Receivers { otlp_http, otlp_grpc, zipkin, tasks })
}

async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopped| *stopped).await;
}

impl Server {
    /// Starts a server on the configured storage (the local folder by default).
    pub async fn start(config: ServeConfig) -> Result<Self, ServeError> {
        let storage = Storage::open(&config.storage_url()?)?;
        Self::start_with_storage(config, storage).await
    }

    /// Starts a server on a storage the caller opened (tests wrap stores in fault injectors). The query
    /// port opens first and answers 503 while the WAL replays; the OTLP ports open after replay. If start
    /// fails, dropping `stop_query` stops the query port again.
    pub async fn start_with_storage(config: ServeConfig, storage: Storage) -> Result<Self, ServeError> {
        telemetry::install();
        tracing::info!(storage = %storage.location(), "storage opened");
        let tls = load_tls(&config)?;
        let credentials = load_credentials(&config)?;
        let query_listener = bind(config.http_addr).await?;
        let http_addr = query_listener.local_addr()?;
        let (stop_query, stop_receivers) = (watch::channel(false).0, watch::channel(false).0);
        let started = Arc::new(OnceLock::new());
        let query = spawn_http(
            query_listener,
            query::starting_router(started.clone()),
            connections::Protocols::Http1AndH2c,
            connection_limits(&config),
            tls.clone(),
            stop_query.subscribe(),
        );
        tracing::info!(http_addr = %http_addr, target = config.target.name(), "HTTP API listening; 503 until the WAL is replayed");
        let target = config.target;
        let ingester = match target {
            Target::All | Target::Ingester => Some(Ingester::start(config.ingest_options(), storage.clone()).await?),
            Target::Querier | Target::Compactor => None,
        };
        let querier = match (&ingester, target) {
            // Every role in one process: the catalogue hears of this ingester's blocks as it commits them.
            (Some(ingester), Target::All) => {
                Querier::with_ingester(storage.clone(), config.query_options(), ingester.clone())
            }
            (_, Target::Querier) => {
                let peers = crate::query::Peers::start(config.peer_options()).await?;
                Querier::new(storage.clone(), config.query_options()).with_peers(peers)
            }
            // An ingester answers no queries: its catalogue stays empty and is never listed.
            _ => Querier::new(storage.clone(), config.query_options()),
        };
        let sql = SqlEngine::new(querier.clone(), config.sql_limits())?;
        let search = Searcher::new(sql.clone());
        let state = AppState {
            target,
            ingester,
            querier,
            sql,
            search,
            storage,
            multitenancy: config.multitenancy,
            credentials,
            max_tenants: config.max_tenants,
            body_limits: config.body_limits(),
            admission: Admission::new(config.max_inflight_request_bytes.as_usize()),
            read_timeout: config.read_timeout,
            ready: Arc::new(AtomicBool::new(false)),
        };
        // Set once, here; the start-up router forwards to it from now on.
        let router = match target {
            Target::Ingester => query::ingester_router(state.clone()),
            _ => query::router(state.clone()),
        };
        let _ = started.set(router);
        let refresher = target.queries_blocks().then(|| state.querier.spawn_refresher(stop_query.subscribe()));
        let resolver = state.querier.spawn_peer_resolver(stop_query.subscribe());
        let mut reloaders: Vec<JoinHandle<()>> = Vec::new();
        reloaders
            .extend(state.credentials.as_ref().map(|credentials| credentials.spawn_reloader(stop_query.subscribe())));
        reloaders.extend(tls.as_ref().map(|tls| tls.spawn_reloader(stop_query.subscribe())));
        tracing::info!("HTTP API serving");
        let compactor = (target == Target::All && !config.compaction_interval.is_zero()).then(|| {
            let compactor = Compactor::new(state.storage.clone(), config.compaction_options());
            state.querier.catalog().follow(&compactor);
            compactor.spawn(stop_query.subscribe())
        });

        let mut receivers = Vec::new();
        let (mut otlp_http_addr, mut otlp_grpc_addr, mut zipkin_addr) = (None, None, None);
        if state.ingester.is_some() {
            let opened = open_receivers(&config, &state, &tls, &stop_receivers).await?;
            (otlp_http_addr, otlp_grpc_addr, zipkin_addr) =
                (Some(opened.otlp_http), Some(opened.otlp_grpc), opened.zipkin);
            receivers = opened.tasks;
        }
        // Jaeger's query API answers from the same querier as the query port, and stops with it.
        let (jaeger_addr, jaeger) = match config.jaeger_addr.filter(|_| target.queries_blocks()) {
            Some(addr) => {
                let (limits, stop) = (connection_limits(&config), stop_query.subscribe());
                let app = jaeger::router(state.clone());
                let (addr, task) =
                    open_http(addr, app, connections::Protocols::Http1AndH2c, limits, &tls, stop).await?;
                tracing::info!(jaeger_addr = %addr, "Jaeger query API listening");
                (Some(addr), Some(task))
            }
            None => (None, None),
        };
        state.ready.store(true, Ordering::Release);
        tracing::info!("ready");
        Ok(Self {
            http_addr,
            otlp_http_addr,
            otlp_grpc_addr,
            jaeger_addr,
            zipkin_addr,
            state,
            stop_receivers,
            stop_query,
            receivers,
            query,
            jaeger,
            refresher,
            resolver,
            reloaders,
            compactor,
        })
    }

    /// Address of the query HTTP API.
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// Address of the OTLP/HTTP receiver (`None` in a process that does not ingest).
    pub fn otlp_http_addr(&self) -> Option<SocketAddr> {
        self.otlp_http_addr
    }

    /// Address of the OTLP/gRPC receiver (`None` in a process that does not ingest).
    pub fn otlp_grpc_addr(&self) -> Option<SocketAddr> {
        self.otlp_grpc_addr
    }

    /// Address of Jaeger's query API, when it is on.
    pub fn jaeger_addr(&self) -> Option<SocketAddr> {
        self.jaeger_addr
    }

    /// Address of the Zipkin receiver, when it is on.
    pub fn zipkin_addr(&self) -> Option<SocketAddr> {
        self.zipkin_addr
    }

    /// Every port the server listens on, named as its setting is (`http_addr`, …): one list, so checks
    /// that hold for every port (TCP_NODELAY, limits) cover a port added later too.
    pub fn ports(&self) -> Vec<(&'static str, SocketAddr)> {
        let mut ports = vec![("http_addr", self.http_addr)];
        ports.extend(self.otlp_http_addr.map(|addr| ("otlp_http_addr", addr)));
        ports.extend(self.otlp_grpc_addr.map(|addr| ("otlp_grpc_addr", addr)));
        ports.extend(self.jaeger_addr.map(|addr| ("jaeger_addr", addr)));
        ports.extend(self.zipkin_addr.map(|addr| ("zipkin_addr", addr)));
        ports
    }

    /// The server's ingester, for in-process tests (`None` for a querier).
    pub fn ingester(&self) -> Option<&Ingester> {
        self.state.ingester.as_ref()
    }

    /// The server's querier, for in-process tests and benchmarks.
    pub fn querier(&self) -> &Querier {
        &self.state.querier
    }

    /// Graceful stop: `/ready` turns 503, the receivers stop accepting and finish in-flight requests,
    /// the ingester flushes (if configured) and closes its WAL, then the query port closes.
    pub async fn shutdown(self) -> Result<(), ServeError> {
        self.state.ready.store(false, Ordering::Release);
        self.stop_receivers.send_replace(true);
        let mut outcome = Ok(());
        for receiver in self.receivers {
            if let Err(error) = drain(receiver, "OTLP receiver").await {
                outcome = Err(error);
            }
        }
        // An ingester flushes its buffers to blocks here (flush_on_shutdown) while the HTTP port still
        // answers: queriers keep reading its recent spans until they are in blocks.
        if let Some(ingester) = &self.state.ingester {
            ingester.shutdown().await;
        }
        self.stop_query.send_replace(true);
        if let Err(error) = drain(self.query, "query API").await {
            outcome = Err(error);
        }
        if let Some(jaeger) = self.jaeger
            && let Err(error) = drain(jaeger, "Jaeger query API").await
        {
            outcome = Err(error);
        }
        for task in self.refresher.into_iter().chain(self.resolver) {
            let _ = task.await;
        }
        for reloader in self.reloaders {
            let _ = reloader.await;
        }
        if let Some(compactor) = self.compactor {
            let _ = compactor.await;
        }
        tracing::info!("stopped");
        outcome
    }
}

/// How long a stopping server waits for clients to finish and close their connections. An idle
/// HTTP/2 client that never answers the server's GOAWAY would otherwise hold the shutdown forever.
const DRAIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Waits for a server task to finish its in-flight requests, then cuts off whatever connections remain.
async fn drain(mut task: JoinHandle<Result<(), ServeError>>, name: &str) -> Result<(), ServeError> {
    match tokio::time::timeout(DRAIN_TIMEOUT, &mut task).await {
        Ok(Ok(result)) => result,
        Ok(Err(_)) => Ok(()),
        Err(_) => {
            tracing::warn!(server = name, "clients still connected after {DRAIN_TIMEOUT:?}; closing their connections");
            task.abort();
            Ok(())
        }
    }
}

/// Runs the server until SIGINT or SIGTERM, then stops it gracefully.
pub async fn serve(config: ServeConfig) -> Result<(), ServeError> {
    if config.target == Target::Compactor {
        return serve_compactor(config).await;
    }
    let signalled = shutdown_signal();
    tokio::pin!(signalled);
    // A signal during start-up (a long WAL replay, say) ends the process there, as a crash would: the
    // WAL still holds every acknowledged span for the next start.
    let server = tokio::select! {
        started = Server::start(config) => started?,
        () = &mut signalled => return Ok(()),
    };
    signalled.await;
    server.shutdown().await
}

/// `--target compactor`: compaction and retention passes on their interval, and `/ready` and `/metrics`
/// on the HTTP address for probes and scrapes. No WAL, no receivers, no queries.
async fn serve_compactor(config: ServeConfig) -> Result<(), ServeError> {
    telemetry::install();
    let storage = Storage::open(&config.storage_url()?)?;
    tracing::info!(storage = %storage.location(), "storage opened");
    let mut options = config.compaction_options();
    if options.interval.is_zero() {
        options.interval = crate::compaction::CompactionOptions::default().interval;
    }
    let compactor = Compactor::new(storage.clone(), options);
    let credentials = load_credentials(&config)?;
    let tls = load_tls(&config)?;
    let signalled = shutdown_signal();
    let stop = watch::channel(false).0;
    if let Some(credentials) = &credentials {
        credentials.spawn_reloader(stop.subscribe());
    }
    if let Some(tls) = &tls {
        tls.spawn_reloader(stop.subscribe());
    }
    let listener = bind(config.http_addr).await?;
    tracing::info!(http_addr = %listener.local_addr()?, "compactor HTTP listening (/ready, /metrics)");
    let ready = || async { ([("x-spanlake-target", Target::Compactor.name())], "ready\ntarget: compactor") };
    let app = axum::Router::new().route("/ready", axum::routing::get(ready)).route(
        "/metrics",
        axum::routing::get(move |headers: axum::http::HeaderMap| {
            let (storage, credentials) = (storage.clone(), credentials.clone());
            async move {
                use axum::response::IntoResponse;
                // As on the full server's query port: with auth on, metrics are the operator's.
                let authorization = headers.get(axum::http::header::AUTHORIZATION).map(|value| value.as_bytes());
                if let Err(error) = require_admin(credentials.as_ref(), authorization) {
                    return query::refusal_response(&Refusal::from(&crate::receive::ReceiveError::Auth(error)));
                }
                let text = telemetry::render(Target::Compactor.name(), &storage, &[]);
                ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
            }
        }),
    );
    let http =
        spawn_http(listener, app, connections::Protocols::Http1, connection_limits(&config), tls, stop.subscribe());
    let passes = compactor.spawn(stop.subscribe());
    tracing::info!("compactor running");
    tracing::info!("ready");
    signalled.await;
    stop.send_replace(true);
    let _ = passes.await;
    drain(http, "compactor HTTP").await
}

/// Resolves on the first SIGINT or SIGTERM received from the moment it is called: both are listened
/// for at once, so a signal that arrives while the server starts (or right after it says "ready") is not
/// met with the default action, which would end the process without flushing.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::SignalKind;
        let interrupt = signal_listener(SignalKind::interrupt(), "SIGINT");
        let terminate = signal_listener(SignalKind::terminate(), "SIGTERM");
        async move {
            tokio::select! {
                _ = interrupt => {}
                _ = terminate => {}
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("interrupt received, shutting down");
    }
}

/// A listener for one signal, registered now; resolves when the signal arrives.
#[cfg(unix)]
fn signal_listener(kind: tokio::signal::unix::SignalKind, name: &'static str) -> impl std::future::Future<Output = ()> {
    let listener = tokio::signal::unix::signal(kind);
    async move {
        match listener {
            Ok(mut listener) => {
                listener.recv().await;
                tracing::info!("{name} received, shutting down");
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for {name}");
                std::future::pending::<()>().await;
            }
        }
    }
}
