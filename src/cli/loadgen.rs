//! `spanlake loadgen` and `spanlake verify`: send realistic traces, then check every acknowledged span
//! was stored exactly once.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use spanlake::config::{SettingFlags, SettingValue, StorageSetting};
use spanlake::ids::TenantId;
use spanlake::loadgen::{LoadOptions, Protocol, Route};

use super::{CliError, open_storage};

#[derive(Args)]
pub struct LoadgenArgs {
    /// OTLP endpoint: http://HOST:4317 for gRPC, http://HOST:4318 for HTTP. Repeat it (or separate with
    /// commas) to send to several ingesters at once, split as --route says.
    #[arg(long, value_delimiter = ',', default_value = "http://127.0.0.1:4317")]
    endpoint: Vec<String>,
    /// With several endpoints: trace-id sends each trace whole to the endpoint a Collector's loadbalancing
    /// exporter (routing_key: traceID) would pick, keyed by each endpoint's HOST:PORT; spread sends the
    /// spans of each trace to the endpoints in turn, so every trace of two or more spans is split.
    #[arg(long, default_value = "trace-id")]
    route: Route,
    /// Target spans per second; 0 sends as fast as acknowledgements come back.
    #[arg(long, default_value_t = 10_000)]
    rate: u64,
    /// How long to send (e.g. 60s, 5m).
    #[arg(long, default_value = "30s", value_parser = Duration::parse)]
    duration: Duration,
    /// grpc or http (OTLP/HTTP with protobuf bodies).
    #[arg(long, default_value = "grpc")]
    protocol: Protocol,
    /// Spans per request, like an SDK's batch size.
    #[arg(long, default_value_t = 512)]
    spans_per_request: usize,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Connections the requests share, to each endpoint (0: one per 64 requests in flight, under the
    /// server's cap of requests open on one HTTP/2 connection, as a fleet of clients would be).
    #[arg(long, default_value_t = 0)]
    connections: usize,
    /// Seed of the trace generator: the same seed sends the same traces.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Tenant to send as X-Scope-OrgID.
    #[arg(long)]
    tenant: Option<String>,
    /// Bearer token for a server with auth on (`spanlake auth token`).
    #[arg(long, env = "SPANLAKE_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Append `trace_id span_id` of every acknowledged span to FILE, for `spanlake verify`.
    #[arg(long, value_name = "FILE")]
    verify: Option<PathBuf>,
    /// Resend a request that failed retryably (connection lost, 429, 503, a gRPC status OTLP calls retryable) until it is
    /// acknowledged, the same bytes, as an SDK or the Collector retries.
    #[arg(long)]
    retry: bool,
    /// Give up on a request after this long (e.g. 10s, an SDK exporter's default; 5s, the Collector's) and
    /// count it as failed; with --retry it is resent, though the server may have stored it meanwhile.
    #[arg(long, value_parser = Duration::parse)]
    timeout: Option<Duration>,
}

#[derive(Args)]
pub struct VerifyArgs {
    /// The file a `loadgen --verify FILE` run wrote.
    #[arg(long, value_name = "FILE")]
    ids: PathBuf,
    #[command(flatten)]
    storage: SettingFlags<StorageSetting>,
    /// Tenant the spans were sent as.
    #[arg(long, default_value = "single-tenant")]
    tenant: TenantId,
}

/// Sends load and prints the achieved rate, latencies and errors.
pub async fn run(args: LoadgenArgs) -> Result<(), CliError> {
    let options = LoadOptions {
        endpoint: args.endpoint.join(","),
        protocol: args.protocol,
        rate: args.rate,
        duration: args.duration,
        spans_per_request: args.spans_per_request.max(1),
        concurrency: args.concurrency.max(1),
        connections: args.connections,
        seed: args.seed,
        tenant: args.tenant,
        token: args.token,
        verify_file: args.verify,
        retry: args.retry,
        timeout: args.timeout,
        progress: std::io::IsTerminal::is_terminal(&std::io::stderr()),
    };
    let report = spanlake::loadgen::run_with_route(options, args.route).await?;
    println!("{}", report.render());
    Ok(())
}

/// Compares the acknowledged IDs with the stored spans; fails when any is missing or doubled.
pub async fn verify(args: VerifyArgs) -> Result<(), CliError> {
    let storage = open_storage(args.storage.given)?;
    let report = spanlake::loadgen::verify::verify(&args.ids, &storage, &args.tenant).await?;
    println!(
        "{} acknowledged spans, {} stored: {} missing, {} stored more than once",
        report.acknowledged, report.stored, report.missing, report.duplicated
    );
    if report.passed() { Ok(()) } else { Err(CliError::VerificationFailed { examples: report.missing_examples }) }
}
