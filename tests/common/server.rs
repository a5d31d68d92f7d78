//! An in-process `spanlake serve` on ephemeral loopback ports with its own data folder, and an async
//! HTTP client to talk to it.

use std::net::SocketAddr;

use super::Backend;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use spanlake::api::Server;
use spanlake::config::ServeConfig;

/// A running server, the folder holding its WAL, and the storage backend it writes blocks to (kept here
/// so that a local folder lives exactly as long as the server writing into it).
pub struct TestServer {
    pub server: Server,
    pub data_dir: tempfile::TempDir,
    pub backend: Backend,
}

/// Settings for a test server: loopback, port 0 everywhere, data in `data_dir`. Starts from the
/// `SPANLAKE_*` environment as the binary does, so CI can run a suite again with one setting switched
/// (`SPANLAKE_DIRECT_ENCODING=false`, parquet's own writer).
pub fn loopback_config(data_dir: &std::path::Path) -> ServeConfig {
    let any_port = SocketAddr::from(([127, 0, 0, 1], 0));
    let from_env = ServeConfig::from_env().expect("SPANLAKE_* variables are valid settings");
    ServeConfig {
        data_dir: data_dir.to_owned(),
        http_addr: any_port,
        otlp_grpc_addr: any_port,
        otlp_http_addr: any_port,
        jaeger_addr: Some(any_port),
        zipkin_addr: Some(any_port),
        flush_on_shutdown: false,
        // Tests that want compaction turn it on; elsewhere it would merge blocks under their feet.
        compaction_interval: std::time::Duration::ZERO,
        ..from_env
    }
}

impl TestServer {
    /// Starts a server on `backend` (a [`Backend`] or a bare `Storage`); `adjust` changes the settings
    /// first.
    pub async fn start(backend: impl Into<Backend>, adjust: impl FnOnce(&mut ServeConfig)) -> Self {
        let backend = backend.into();
        let data_dir = tempfile::tempdir().expect("temp dir");
        let mut config = loopback_config(data_dir.path());
        adjust(&mut config);
        let server = Server::start_with_storage(config, backend.storage.clone()).await.expect("server starts");
        Self { server, data_dir, backend }
    }

    /// `http://` URL of the query port.
    pub fn query_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.server.http_addr())
    }

    /// `http://` URL of the OTLP/HTTP receiver's trace endpoint.
    pub fn traces_url(&self) -> String {
        format!("http://{}/v1/traces", self.server.otlp_http_addr().expect("OTLP/HTTP"))
    }

    /// `http://` URL of the OTLP/gRPC receiver.
    pub fn grpc_url(&self) -> String {
        format!("http://{}", self.server.otlp_grpc_addr().expect("OTLP/gRPC"))
    }
}

/// A reply as the tests look at it.
pub struct Reply {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub body: Bytes,
}

impl Reply {
    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends a request with headers and a body.
pub async fn send(method: &str, url: &str, headers: &[(&str, &str)], body: impl Into<Bytes>) -> Reply {
    try_send(method, url, headers, body).await.expect("HTTP request")
}

/// Like [`send`], but a connection the server closed is an `Err`, not a panic.
pub async fn try_send(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Result<Reply, String> {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let mut request = hyper::Request::builder().method(method).uri(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = client.request(request.body(Full::new(body.into())).unwrap()).await.map_err(|e| e.to_string())?;
    let (parts, body) = response.into_parts();
    let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
    Ok(Reply { status: parts.status.as_u16(), headers: parts.headers, body })
}

/// A metric from the server's `/metrics`, summed over its label sets (e.g. object-store requests over
/// operations); 0 when it has no series yet.
pub async fn metric(server: &TestServer, name: &str) -> f64 {
    metric_at(server.server.http_addr(), name).await
}

/// [`metric`] of a server listening for queries on `http` (one started without a [`TestServer`]).
pub async fn metric_at(http: SocketAddr, name: &str) -> f64 {
    let text = send("GET", &format!("http://{http}/metrics"), &[], Vec::new()).await.text();
    text.lines()
        .filter(|line| line.starts_with(name) && line[name.len()..].starts_with([' ', '{']))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// What a `spanlake serve` process logged up to its "ready" line.
pub struct StartupLog {
    /// Address of the query HTTP API.
    pub http: Option<SocketAddr>,
    /// Address of the OTLP/gRPC receiver.
    pub grpc: Option<SocketAddr>,
    /// Every line up to and including "ready".
    pub lines: Vec<String>,
}

/// Reads a server process's log until it says "ready", picking out the addresses it bound (port 0 picks
/// them); panics if the process exits first.
pub fn read_until_ready(log: &mut impl std::io::BufRead) -> StartupLog {
    let mut started = StartupLog { http: None, grpc: None, lines: Vec::new() };
    loop {
        let mut line = String::new();
        assert!(log.read_line(&mut line).expect("server log") > 0, "server exited before it was ready");
        let address = |key: &str| line.split(key).nth(1)?.split_whitespace().next()?.parse().ok();
        started.http = started.http.or_else(|| address(" http_addr="));
        started.grpc = started.grpc.or_else(|| address("otlp_grpc_addr="));
        let ready = line.trim_end().ends_with(" ready");
        started.lines.push(line);
        if ready {
            return started;
        }
    }
}

/// Sends `traces` synthetic traces (seeded) in one OTLP/HTTP protobuf request and asserts it was
/// accepted; returns their IDs, each once, in the order sent.
pub async fn send_synthetic_traces(server: &TestServer, seed: u64, traces: usize) -> Vec<spanlake::ids::TraceId> {
    use prost::Message;
    let mut generator = spanlake::synth::TraceGenerator::new(seed);
    let resource_spans: Vec<_> = (0..traces).flat_map(|_| generator.next_trace()).collect();
    let request = opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest {
        resource_spans: resource_spans.clone(),
    };
    let headers = [("content-type", "application/x-protobuf")];
    assert_eq!(send("POST", &server.traces_url(), &headers, request.encode_to_vec()).await.status, 200);
    let mut ids: Vec<spanlake::ids::TraceId> = resource_spans
        .iter()
        .flat_map(|rs| &rs.scope_spans)
        .flat_map(|ss| &ss.spans)
        .map(|span| spanlake::ids::TraceId::from_slice(&span.trace_id).expect("16-byte trace IDs"))
        .collect();
    // A trace's spans are generated together, so removing neighbours leaves each trace once.
    ids.dedup();
    ids
}
