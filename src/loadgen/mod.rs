//! `spanlake loadgen`: sends seeded, realistic traces to any OTLP endpoint over gRPC or HTTP, at a
//! target rate or flat out, and reports achieved spans/s, acknowledgement latency percentiles and
//! errors (CONTRACTS §6). With a verify file it records every acknowledged span, and [`verify`] later
//! proves each one is stored exactly once. Given several endpoints (several ingesters), it cuts each
//! request into one per endpoint as a Collector's `loadbalancing` exporter would ([`route`]).
//!
//! Owns the client side of OTLP. Calls `synth` for traces and `storage` (in [`verify`]) to read blocks;
//! nothing in the server calls it.

mod client;
mod pool;
pub mod route;
mod split;
pub mod verify;

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};

pub use client::{OtlpClient, Protocol, SendError};
use pool::{PoolRequest, RequestPool};
pub use route::{HashRing, Route};
use route::{Router, ring_key};

/// Why a load run could not start or finish.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadgenError {
    #[error("unknown protocol {0:?}; use grpc or http")]
    UnknownProtocol(String),
    #[error("unknown route {0:?}; use trace-id or spread")]
    UnknownRoute(String),
    #[error("no endpoint to send to")]
    NoEndpoint,
    #[error("invalid endpoint {endpoint:?}: {source}")]
    Endpoint { endpoint: String, source: Box<dyn std::error::Error + Send + Sync> },
    #[error("verify file {path}: {source}")]
    VerifyFile { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Storage(#[from] crate::storage::StorageError),
}

/// What to send, where and how fast.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// `http://host:port` of the OTLP receiver (4317 for gRPC, 4318 for HTTP by convention); several,
    /// comma-separated, to send to several ingesters at once (see [`run_with_route`]).
    pub endpoint: String,
    pub protocol: Protocol,
    /// Target spans per second; 0 sends as fast as acknowledgements come back.
    pub rate: u64,
    pub duration: Duration,
    /// Spans per request (an SDK batch).
    pub spans_per_request: usize,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// Connections the requests share, to each endpoint (0: one per [`REQUESTS_PER_CONNECTION`] in
    /// flight). A server caps the requests open on one HTTP/2 connection (100 by default, as Tempo's), so
    /// many requests in flight over one connection queue in the client, not the server: a fleet of clients
    /// has many connections.
    pub connections: usize,
    pub seed: u64,
    /// Tenant sent as X-Scope-OrgID, if any.
    pub tenant: Option<String>,
    /// Bearer token sent with every request, for a server with auth on.
    pub token: Option<String>,
    /// Appends `trace_id span_id` (hex) of every acknowledged span to this file.
    pub verify_file: Option<PathBuf>,
    /// Resend a request refused retryably (connection lost, 429/503, the gRPC statuses OTLP calls retryable) until
    /// it is acknowledged or the run ends, byte for byte, as an SDK's or the Collector's retry does: a
    /// request whose acknowledgement a crash swallowed arrives twice.
    pub retry: bool,
    /// Longest a request may wait for its acknowledgement before the client gives up on it (OTLP
    /// exporters have such a deadline: 10 s in the SDKs, 5 s in the Collector). A request given up on
    /// counts as failed and, with `retry`, is resent: the server may have stored it all the same.
    pub timeout: Option<Duration>,
    /// Show a progress bar (when stderr is a terminal).
    pub progress: bool,
}

/// The outcome of a run.
#[derive(Debug)]
pub struct LoadReport {
    pub elapsed: Duration,
    pub acked_requests: u64,
    pub acked_spans: u64,
    pub rejected_spans: u64,
    /// Requests that failed, by reason (retryable refusals, connection errors, other statuses).
    pub errors: Vec<(String, u64)>,
    /// What each endpoint acknowledged, in the order given (one entry for a single endpoint).
    pub endpoints: Vec<EndpointReport>,
    /// Acknowledgement latency in microseconds.
    latency_us: Histogram<u64>,
}

/// One endpoint's share of a run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EndpointReport {
    pub endpoint: String,
    pub acked_requests: u64,
    pub acked_spans: u64,
    pub failed_requests: u64,
}

impl LoadReport {
    /// Acknowledged spans per second over the whole run.
    pub fn spans_per_second(&self) -> f64 {
        self.acked_spans as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Acknowledgement latency at a quantile (0.5, 0.99…).
    pub fn latency(&self, quantile: f64) -> Duration {
        Duration::from_micros(self.latency_us.value_at_quantile(quantile))
    }

    /// A few lines for people, ending in one JSON line for scripts.
    pub fn render(&self) -> String {
        let errors: u64 = self.errors.iter().map(|(_, n)| n).sum();
        let mut text = format!(
            "acknowledged {} spans in {} requests over {:.1} s: {:.0} spans/s\n\
             ack latency p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms\n\
             rejected spans {}, failed requests {}\n",
            self.acked_spans,
            self.acked_requests,
            self.elapsed.as_secs_f64(),
            self.spans_per_second(),
            ms(self.latency(0.5)),
            ms(self.latency(0.9)),
            ms(self.latency(0.99)),
            ms(Duration::from_micros(self.latency_us.max())),
            self.rejected_spans,
            errors,
        );
        for (reason, count) in &self.errors {
            text.push_str(&format!("  {count} × {reason}\n"));
        }
        let mut json = serde_json::json!({
            "acked_spans": self.acked_spans,
            "acked_requests": self.acked_requests,
            "spans_per_second": self.spans_per_second().round(),
            "p50_ms": ms(self.latency(0.5)),
            "p99_ms": ms(self.latency(0.99)),
            "failed_requests": errors,
        });
        // One endpoint: the report reads as it always has.
        if self.endpoints.len() > 1 {
            text.push_str("per endpoint:\n");
            for endpoint in &self.endpoints {
                text.push_str(&format!(
                    "  {}: {} spans in {} requests acknowledged, {} requests failed\n",
                    endpoint.endpoint, endpoint.acked_spans, endpoint.acked_requests, endpoint.failed_requests
                ));
            }
            json["endpoints"] = self
                .endpoints
                .iter()
                .map(|e| {
                    serde_json::json!({
                        "endpoint": e.endpoint,
                        "acked_spans": e.acked_spans,
                        "acked_requests": e.acked_requests,
                        "failed_requests": e.failed_requests,
                    })
                })
                .collect();
        }
        text.push_str(&json.to_string());
        text
    }
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// Shared tallies of the workers.
struct Tally {
    acked_requests: u64,
    acked_spans: u64,
    rejected_spans: u64,
    errors: std::collections::BTreeMap<String, u64>,
    endpoints: Vec<EndpointReport>,
    latency_us: Histogram<u64>,
    verify: Option<std::io::BufWriter<std::fs::File>>,
}

/// Connections for `concurrency` requests in flight: `connections` if set, else one per
/// [`REQUESTS_PER_CONNECTION`].
fn connection_count(concurrency: usize, connections: usize) -> usize {
    match connections {
        0 => concurrency.max(1).div_ceil(REQUESTS_PER_CONNECTION),
        n => n,
    }
}

/// Runs the load and reports; a failed request is counted and the run goes on (a restarting server
/// is part of what it measures). Several endpoints are routed by trace ID ([`Route::TraceId`]).
pub async fn run(options: LoadOptions) -> Result<LoadReport, LoadgenError> {
    run_with_route(options, Route::default()).await
}

/// [`run`], splitting each request over the endpoints by `route` when there are several. Each endpoint's
/// part is its own export: acknowledged, retried and written to the verify file on its own. With one
/// endpoint the request goes whole, as it always has.
pub async fn run_with_route(options: LoadOptions, route: Route) -> Result<LoadReport, LoadgenError> {
    let endpoints = endpoint_list(&options.endpoint);
    if endpoints.is_empty() {
        return Err(LoadgenError::NoEndpoint);
    }
    let router = if endpoints.len() > 1 { Router::new(route, &endpoints) } else { None };
    let connections = connection_count(options.concurrency, options.connections);
    // clients[endpoint][connection]
    let clients = endpoints
        .iter()
        .map(|endpoint| {
            (0..connections)
                .map(|_| {
                    let client = OtlpClient::connect(endpoint, options.protocol, options.tenant.clone())?;
                    Ok(client.with_token(options.token.clone()))
                })
                .collect::<Result<Vec<_>, LoadgenError>>()
        })
        .collect::<Result<Vec<_>, LoadgenError>>()?;
    let verify = match &options.verify_file {
        Some(path) => Some(std::io::BufWriter::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|source| LoadgenError::VerifyFile { path: path.clone(), source })?,
        )),
        None => None,
    };
    let tally = Arc::new(Mutex::new(Tally {
        acked_requests: 0,
        acked_spans: 0,
        rejected_spans: 0,
        errors: Default::default(),
        endpoints: endpoints
            .iter()
            .map(|endpoint| EndpointReport { endpoint: endpoint.clone(), ..Default::default() })
            .collect(),
        latency_us: Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds"),
        verify,
    }));
    let progress = progress_bar(&options);
    let concurrency = options.concurrency.max(1);
    // One pool for all workers, prepared before the clock starts: with hundreds of workers, a pool each
    // cost seconds of CPU and gigabytes inside the measured run, on the cores the server needs.
    let pool_size = REQUEST_POOL_SIZE * concurrency.min(POOL_WORKERS);
    let pool = Arc::new(RequestPool::generate(options.seed, pool_size, options.spans_per_request, now_unix_nano()));
    let router = Arc::new(router);
    let started = Instant::now();
    let deadline = started + options.duration;
    let per_worker_rate = options.rate as f64 / concurrency as f64;
    let workers: Vec<_> = (0..concurrency)
        .map(|worker| {
            // The worker's connection to each endpoint.
            let clients: Vec<OtlpClient> = clients.iter().map(|c| c[worker % c.len()].clone()).collect();
            let (tally, progress, options) = (tally.clone(), progress.clone(), options.clone());
            let (pool, router) = (pool.clone(), router.clone());
            tokio::spawn(async move {
                let seed = options.seed.wrapping_mul(1_000_003).wrapping_add(worker as u64);
                let worker = Worker {
                    seed,
                    spans_per_second: per_worker_rate,
                    deadline,
                    pool: &pool,
                    router: Option::as_ref(&router),
                    clients: &clients,
                };
                run_worker(worker, &options, &tally, &progress).await;
            })
        })
        .collect();
    for worker in workers {
        let _ = worker.await;
    }
    progress.finish_and_clear();
    let elapsed = started.elapsed();
    let mut tally = tally.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(file) = tally.verify.as_mut() {
        let path = options.verify_file.clone().unwrap_or_default();
        file.flush().map_err(|source| LoadgenError::VerifyFile { path, source })?;
    }
    Ok(LoadReport {
        elapsed,
        acked_requests: tally.acked_requests,
        acked_spans: tally.acked_spans,
        rejected_spans: tally.rejected_spans,
        errors: std::mem::take(&mut tally.errors).into_iter().collect(),
        endpoints: std::mem::take(&mut tally.endpoints),
        latency_us: tally.latency_us.clone(),
    })
}

/// The endpoints of a comma-separated list, each ingester once: URLs with the same `host:port` (the
/// ring's key, [`route::ring_key`]) name the same ingester, and the first spelling is kept.
pub fn endpoint_list(list: &str) -> Vec<String> {
    let mut endpoints: Vec<String> = Vec::new();
    for endpoint in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        if !endpoints.iter().any(|known| ring_key(known) == ring_key(endpoint)) {
            endpoints.push(endpoint.to_owned());
        }
    }
    endpoints
}

fn progress_bar(options: &LoadOptions) -> ProgressBar {
    if !options.progress {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(options.duration.as_secs().max(1));
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} s  {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar
}

fn now_unix_nano() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

/// What one worker sends: its share of the rate, until the deadline, from the shared pool with trace IDs
/// of its own (`seed`), over its connection to each endpoint.
struct Worker<'a> {
    seed: u64,
    spans_per_second: f64,
    deadline: Instant,
    pool: &'a RequestPool,
    /// How to split requests over several endpoints; `None` with one.
    router: Option<&'a Router>,
    /// One client per endpoint, in the run's endpoint order.
    clients: &'a [OtlpClient],
}

async fn run_worker(worker: Worker<'_>, options: &LoadOptions, tally: &Mutex<Tally>, progress: &ProgressBar) {
    let Worker { seed, spans_per_second, deadline, pool, router, clients } = worker;
    let started = Instant::now();
    let mut sent_spans = 0u64;
    let mut sequence = 0u64;
    let with_ids = options.verify_file.is_some();
    while Instant::now() < deadline {
        let parts = match router {
            None => vec![(0, pool.request(sequence, seed, with_ids))],
            Some(router) => pool.request_parts(sequence, seed, with_ids, |span| router.endpoint_for(span, sequence)),
        };
        sequence += 1;
        let spans: usize = parts.iter().map(|(_, part)| part.spans).sum();
        if spans_per_second > 0.0 {
            // Pace to the target: wait until this worker's share of the rate allows these spans.
            let due = started + Duration::from_secs_f64(sent_spans as f64 / spans_per_second);
            if due > deadline {
                break;
            }
            tokio::time::sleep_until(due.into()).await;
        }
        sent_spans += spans as u64;
        let exports = parts.into_iter().map(|(endpoint, part)| {
            let export = Export { endpoint, client: &clients[endpoint], deadline, started };
            send_until_done(export, part, options, tally, progress)
        });
        futures::future::join_all(exports).await;
    }
}

/// One endpoint's part of a request, and where its outcome goes.
struct Export<'a> {
    endpoint: usize,
    client: &'a OtlpClient,
    deadline: Instant,
    /// When the worker started, for the progress bar's rate.
    started: Instant,
}

/// Sends one part, and with `--retry` resends it until it is acknowledged or the run ends.
async fn send_until_done(
    export: Export<'_>,
    part: PoolRequest,
    options: &LoadOptions,
    tally: &Mutex<Tally>,
    progress: &ProgressBar,
) {
    let Export { endpoint, client, deadline, started } = export;
    let mut ids = part.ids;
    loop {
        let sent_at = Instant::now();
        let outcome = match options.timeout {
            Some(limit) => tokio::time::timeout(limit, client.export_encoded(part.bytes.clone()))
                .await
                .unwrap_or(Err(SendError::TimedOut(limit))),
            None => client.export_encoded(part.bytes.clone()).await,
        };
        let latency = sent_at.elapsed();
        let resend = options.retry && outcome.as_ref().is_err_and(SendError::is_connection);
        let acknowledged_ids = if outcome.is_ok() { ids.take() } else { None };
        // A request given up on waits as long as the SDKs' first retry backoff (1 s): the server may
        // still be working on it.
        let gave_up = matches!(outcome, Err(SendError::TimedOut(_)));
        let sent = Sent { endpoint, spans: part.spans, latency, ids: acknowledged_ids };
        let pause = record_outcome(tally, outcome, sent, started, progress);
        if gave_up {
            tokio::time::sleep(TIMED_OUT_BACKOFF).await;
        } else if pause {
            // The server is down, restarting or asking us to back off: try again shortly, don't spin.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if !resend || Instant::now() >= deadline {
            break;
        }
    }
}

/// One export as sent: to which endpoint, how many spans, how long it took, and its verify lines if
/// it was acknowledged.
struct Sent {
    endpoint: usize,
    spans: usize,
    latency: Duration,
    ids: Option<String>,
}

/// Adds one export's outcome to the tally; true when the worker should pause before the next one.
fn record_outcome(
    tally: &Mutex<Tally>,
    outcome: Result<u64, SendError>,
    sent: Sent,
    started: Instant,
    progress: &ProgressBar,
) -> bool {
    let mut tally = tally.lock().unwrap_or_else(|p| p.into_inner());
    match outcome {
        Ok(rejected) => {
            let acked = (sent.spans as u64).saturating_sub(rejected);
            tally.acked_requests += 1;
            tally.acked_spans += acked;
            tally.rejected_spans += rejected;
            let endpoint = &mut tally.endpoints[sent.endpoint];
            endpoint.acked_requests += 1;
            endpoint.acked_spans += acked;
            let _ = tally.latency_us.record(sent.latency.as_micros().max(1) as u64);
            if let (Some(ids), Some(file)) = (sent.ids, tally.verify.as_mut()) {
                let _ = file.write_all(ids.as_bytes());
            }
        }
        Err(error) => {
            *tally.errors.entry(error.kind()).or_insert(0) += 1;
            tally.endpoints[sent.endpoint].failed_requests += 1;
            return error.is_connection();
        }
    }
    let elapsed = started.elapsed().as_secs_f64().max(1e-3);
    progress.set_position(elapsed as u64);
    progress.set_message(format!("{:.0} spans/s acknowledged", tally.acked_spans as f64 / elapsed));
    false
}

/// Pause before resending a request the client gave up waiting for (the OpenTelemetry SDKs' first
/// retry backoff).
const TIMED_OUT_BACKOFF: Duration = Duration::from_secs(1);

/// Distinct requests prepared per worker, for at most [`POOL_WORKERS`] workers; re-sent with fresh trace IDs.
const REQUEST_POOL_SIZE: usize = 32;
/// More workers share the same requests (each with its own trace IDs).
const POOL_WORKERS: usize = 8;
/// Requests in flight per connection when `connections` is 0: under a server's default cap of open
/// HTTP/2 requests per connection (100), as each client of a fleet stays under it.
pub const REQUESTS_PER_CONNECTION: usize = 64;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn many_requests_in_flight_spread_over_connections_under_the_servers_stream_cap() {
        assert_eq!(connection_count(8, 0), 1);
        assert_eq!(connection_count(REQUESTS_PER_CONNECTION, 0), 1);
        assert_eq!(connection_count(REQUESTS_PER_CONNECTION + 1, 0), 2);
        assert_eq!(connection_count(1024, 0), 16, "each under the server's 100 open requests per connection");
        assert_eq!(connection_count(1024, 3), 3, "as asked");
        const { assert!(REQUESTS_PER_CONNECTION < crate::api::DEFAULT_MAX_CONCURRENT_STREAMS) };
    }

    #[test]
    fn endpoints_come_comma_separated_and_each_ingester_once() {
        assert_eq!(endpoint_list("http://127.0.0.1:4317"), ["http://127.0.0.1:4317"]);
        assert_eq!(
            endpoint_list("http://127.0.0.1:4317, http://127.0.0.1:4417,,http://127.0.0.1:4317/"),
            ["http://127.0.0.1:4317", "http://127.0.0.1:4417"]
        );
        assert!(endpoint_list(" , ").is_empty());
    }

    fn report(endpoints: Vec<EndpointReport>) -> LoadReport {
        let mut latency_us = Histogram::new_with_bounds(1, 600_000_000, 3).unwrap();
        latency_us.record(2_000).unwrap();
        LoadReport {
            elapsed: Duration::from_secs(2),
            acked_requests: endpoints.iter().map(|e| e.acked_requests).sum(),
            acked_spans: endpoints.iter().map(|e| e.acked_spans).sum(),
            rejected_spans: 0,
            errors: vec![("connection error".into(), 1)],
            endpoints,
            latency_us,
        }
    }

    fn endpoint(name: &str, spans: u64) -> EndpointReport {
        EndpointReport { endpoint: name.into(), acked_requests: spans / 10, acked_spans: spans, failed_requests: 0 }
    }

    #[test]
    fn a_single_endpoint_report_reads_as_before() {
        let text = report(vec![endpoint("http://127.0.0.1:4317", 100)]).render();
        assert!(text.starts_with("acknowledged 100 spans in 10 requests over 2.0 s: 50 spans/s\n"), "{text}");
        assert!(!text.contains("per endpoint"), "{text}");
        let json: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
        assert_eq!(json["acked_spans"], 100);
        assert!(json.get("endpoints").is_none());
    }

    #[test]
    fn a_multi_endpoint_report_shows_each_endpoints_share_and_still_ends_in_json() {
        let text = report(vec![endpoint("http://127.0.0.1:4317", 60), endpoint("http://127.0.0.1:4417", 40)]).render();
        assert!(
            text.contains("  http://127.0.0.1:4417: 40 spans in 4 requests acknowledged, 0 requests failed\n"),
            "{text}"
        );
        // Scripts read error counts as `  N × reason` lines; the per-endpoint lines must not look like one.
        let error_lines: Vec<&str> = text.lines().filter(|l| l.trim_start().split(' ').nth(1) == Some("×")).collect();
        assert_eq!(error_lines, ["  1 × connection error"]);
        let json: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
        assert_eq!(json["acked_spans"], 100);
        assert_eq!(json["endpoints"][1]["endpoint"], "http://127.0.0.1:4417");
        assert_eq!(json["endpoints"][1]["acked_spans"], 40);
    }
}
