//! The `spanlake` command line: parses arguments and calls into the library, nothing more.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use spanlake::config::{
    ByteSize, ConfigFile, FalsePositiveRate, HumanDuration, ServeConfig, Target, parse_byte_size, parse_duration,
    parse_tenant_retention,
};
use spanlake::ids::{TenantId, TraceId};
use spanlake::loadgen::{LoadOptions, Protocol};
use spanlake::storage::{Storage, list_blocks, list_tenants, read_block_meta, replaced_blocks};

/// spanlake: a trace store. OTLP in, Parquet blocks with trace-ID bloom filters on object storage
/// (a local folder, S3 or MinIO), trace-by-ID and SQL out.
#[derive(Parser)]
#[command(name = "spanlake", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server: OTLP in on 4317 (gRPC) and 4318 (HTTP), query HTTP API on 3200. With no flags,
    /// the WAL goes to ./spanlake-data/wal and blocks to ./spanlake-data/blocks.
    Serve(Box<ServeArgs>),
    /// List the committed blocks in a storage, per tenant, with their span counts and time ranges (blocks
    /// a compacted block replaces are marked; queries no longer read them).
    Blocks(BlocksArgs),
    /// Send realistic synthetic traces to an OTLP endpoint and report spans/s and ack latency.
    Loadgen(LoadgenArgs),
    /// Check that every span a `loadgen --verify FILE` run saw acknowledged is stored exactly once.
    Verify(VerifyArgs),
    /// Print a trace as a terminal waterfall: the span tree with a timing bar, service, name, duration
    /// and status of each span.
    Trace(TraceArgs),
    /// Run SQL over spans (tables `spans` and `traces`) and print the result as a table, CSV or JSON.
    Sql(SqlArgs),
    /// Run one compaction and retention pass over a storage now, with a progress bar: merge small blocks,
    /// delete replaced blocks past their grace period, expired blocks and crashed uploads' leftovers.
    Compact(CompactArgs),
}

#[derive(Args)]
struct CompactArgs {
    /// Storage URL: file:///path or s3://bucket/prefix. Default: the serve default folder.
    #[arg(long, env = "SPANLAKE_STORAGE")]
    storage: Option<String>,
    /// Only this tenant (default: every tenant found).
    #[arg(long)]
    tenant: Option<TenantId>,
    /// YAML settings file of the server, for its compaction and retention keys.
    #[arg(long, env = "SPANLAKE_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Delete blocks whose spans all ended longer ago than this (default 14d).
    #[arg(long, env = "SPANLAKE_RETENTION", value_parser = parse_duration)]
    retention: Option<Duration>,
    /// Size compacted blocks aim for (default 256MiB).
    #[arg(long, env = "SPANLAKE_COMPACTION_TARGET_BYTES", value_parser = parse_byte_size)]
    compaction_target_bytes: Option<u64>,
    /// How long replaced blocks stay for queries still reading them (default 5m).
    #[arg(long, env = "SPANLAKE_COMPACTION_DELETION_GRACE", value_parser = parse_duration)]
    compaction_deletion_grace: Option<Duration>,
}

#[derive(Args)]
struct SqlArgs {
    /// The query, e.g. "SELECT service_name, count(*) FROM spans GROUP BY 1".
    query: String,
    /// Ask a running server (its query port), which also knows spans not yet flushed to blocks.
    /// Wins over --storage. Default: http://127.0.0.1:3200, falling back to the default storage folder
    /// when nothing answers.
    #[arg(long)]
    server: Option<String>,
    /// Query blocks straight from storage (file:///path or s3://bucket/prefix), no server needed.
    #[arg(long, env = "SPANLAKE_STORAGE")]
    storage: Option<String>,
    /// Tenant (X-Scope-OrgID) whose spans to query.
    #[arg(long)]
    tenant: Option<TenantId>,
    /// table (default), csv, json or ndjson.
    #[arg(long, default_value = "table")]
    format: SqlOutput,
}

#[derive(Clone, Copy, ValueEnum)]
enum SqlOutput {
    Table,
    Csv,
    Json,
    Ndjson,
}

#[derive(Args)]
struct TraceArgs {
    /// The trace ID: up to 32 hex characters (shorter IDs are left-padded with zeros).
    trace_id: TraceId,
    /// Ask a running server (its query port), which also knows spans not yet flushed to blocks.
    /// Wins over --storage. Default: http://127.0.0.1:3200, falling back to the default storage folder
    /// when nothing answers.
    #[arg(long)]
    server: Option<String>,
    /// Read blocks straight from storage (file:///path or s3://bucket/prefix) instead of asking a server.
    #[arg(long, env = "SPANLAKE_STORAGE")]
    storage: Option<String>,
    /// Tenant (X-Scope-OrgID) the trace was sent as.
    #[arg(long)]
    tenant: Option<TenantId>,
    /// Columns to draw in (default: the terminal's COLUMNS, else 80).
    #[arg(long)]
    width: Option<usize>,
}

#[derive(Args)]
struct LoadgenArgs {
    /// OTLP endpoint: http://HOST:4317 for gRPC, http://HOST:4318 for HTTP.
    #[arg(long, default_value = "http://127.0.0.1:4317")]
    endpoint: String,
    /// Target spans per second; 0 sends as fast as acknowledgements come back.
    #[arg(long, default_value_t = 10_000)]
    rate: u64,
    /// How long to send (e.g. 60s, 5m).
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
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
    /// Seed of the trace generator: the same seed sends the same traces.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Tenant to send as X-Scope-OrgID.
    #[arg(long)]
    tenant: Option<String>,
    /// Append `trace_id span_id` of every acknowledged span to FILE, for `spanlake verify`.
    #[arg(long, value_name = "FILE")]
    verify: Option<PathBuf>,
}

#[derive(Args)]
struct VerifyArgs {
    /// The file a `loadgen --verify FILE` run wrote.
    #[arg(long, value_name = "FILE")]
    ids: PathBuf,
    /// Storage URL to read: file:///path or s3://bucket/prefix. Default: the serve default folder.
    #[arg(long, env = "SPANLAKE_STORAGE")]
    storage: Option<String>,
    /// Tenant the spans were sent as.
    #[arg(long, default_value = "single-tenant")]
    tenant: TenantId,
}

/// Flags of `serve`. Every one can also come from its environment variable or from the `--config`
/// file; flags and environment win over the file, the file over the defaults.
#[derive(Args)]
struct ServeArgs {
    /// YAML settings file; every key is optional (see deploy/spanlake.yaml). Unknown keys are an error.
    #[arg(long, env = "SPANLAKE_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Folder for the WAL, and for blocks when --storage is not given (default ./spanlake-data).
    #[arg(long, env = "SPANLAKE_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Where blocks live: file:///path or s3://bucket/prefix (AWS_* environment variables configure S3).
    #[arg(long, env = "SPANLAKE_STORAGE")]
    storage: Option<String>,
    /// HOST:PORT of the query HTTP API (default 0.0.0.0:3200); port 0 picks a free port (logged).
    #[arg(long, env = "SPANLAKE_HTTP_ADDR")]
    http_addr: Option<SocketAddr>,
    /// HOST:PORT of the OTLP/gRPC receiver (default 0.0.0.0:4317); port 0 picks a free port (logged).
    #[arg(long, env = "SPANLAKE_OTLP_GRPC_ADDR")]
    otlp_grpc_addr: Option<SocketAddr>,
    /// HOST:PORT of the OTLP/HTTP receiver (default 0.0.0.0:4318); port 0 picks a free port (logged).
    #[arg(long, env = "SPANLAKE_OTLP_HTTP_ADDR")]
    otlp_http_addr: Option<SocketAddr>,
    /// Take each request's tenant from the X-Scope-OrgID header (required); without it every span goes
    /// to the tenant "single-tenant".
    #[arg(long, env = "SPANLAKE_MULTITENANCY", num_args = 0..=1, default_missing_value = "true")]
    multitenancy: Option<bool>,
    /// Largest OTLP request body as sent (default 16MiB).
    #[arg(long, env = "SPANLAKE_MAX_REQUEST_BYTES", value_parser = parse_byte_size)]
    max_request_bytes: Option<u64>,
    /// Largest OTLP request body after decompression (default 64MiB).
    #[arg(long, env = "SPANLAKE_MAX_REQUEST_DECOMPRESSED_BYTES", value_parser = parse_byte_size)]
    max_request_decompressed_bytes: Option<u64>,
    /// Longest a client may take to send a request (default 30s): its headers on the HTTP ports, then its
    /// body on every port; past it the connection is closed, or the request refused (408 / DEADLINE_EXCEEDED).
    #[arg(long, env = "SPANLAKE_READ_TIMEOUT", value_parser = parse_duration)]
    read_timeout: Option<Duration>,
    /// Cut a tenant's buffer into a block once it holds this much (default 64MiB).
    #[arg(long, env = "SPANLAKE_MAX_BLOCK_BYTES", value_parser = parse_byte_size)]
    max_block_bytes: Option<u64>,
    /// Cut a tenant's buffer into a block once its oldest span has waited this long (default 5m).
    #[arg(long, env = "SPANLAKE_MAX_BLOCK_AGE", value_parser = parse_duration)]
    max_block_age: Option<Duration>,
    /// Answer 429 once the ingester holds this much in memory (default 512MiB).
    #[arg(long, env = "SPANLAKE_MAX_BUFFER_BYTES", value_parser = parse_byte_size)]
    max_buffer_bytes: Option<u64>,
    /// Answer 429 once the WAL holds this much on disk (default 4GiB).
    #[arg(long, env = "SPANLAKE_MAX_WAL_BYTES", value_parser = parse_byte_size)]
    max_wal_bytes: Option<u64>,
    /// Flush every buffer to the object store on SIGTERM/SIGINT (default true).
    #[arg(long, env = "SPANLAKE_FLUSH_ON_SHUTDOWN")]
    flush_on_shutdown: Option<bool>,
    /// Longest single block upload before it is retried (default 2m).
    #[arg(long, env = "SPANLAKE_UPLOAD_TIMEOUT", value_parser = parse_duration)]
    upload_timeout: Option<Duration>,
    /// How often the querier lists the store for blocks written by other processes (default 15s).
    #[arg(long, env = "SPANLAKE_BLOCK_REFRESH_INTERVAL", value_parser = parse_duration)]
    block_refresh_interval: Option<Duration>,
    /// Memory for cached Parquet footers of recently read blocks (default 256MiB).
    #[arg(long, env = "SPANLAKE_FOOTER_CACHE_BYTES", value_parser = parse_byte_size)]
    footer_cache_bytes: Option<u64>,
    /// False-positive rate of each new block's trace-ID bloom filter, e.g. 1e-5 (the default) or 0.1%.
    #[arg(long, env = "SPANLAKE_BLOOM_FALSE_POSITIVE_RATE", value_parser = FalsePositiveRate::parse)]
    bloom_false_positive_rate: Option<FalsePositiveRate>,
    /// Longest an SQL query may run (default 60s).
    #[arg(long, env = "SPANLAKE_SQL_TIMEOUT", value_parser = parse_duration)]
    sql_timeout: Option<Duration>,
    /// Memory one SQL query's sorts, aggregations and joins may use (default 1GiB).
    #[arg(long, env = "SPANLAKE_SQL_MEMORY_LIMIT", value_parser = parse_byte_size)]
    sql_memory_limit: Option<u64>,
    /// SQL queries running at once; one more is answered 429 (default 4).
    #[arg(long, env = "SPANLAKE_SQL_MAX_CONCURRENT")]
    sql_max_concurrent: Option<usize>,
    /// Roles to run: all (ingest, query, compaction; the default) or compactor (compaction and retention
    /// only, with /ready and /metrics on the HTTP address).
    #[arg(long, env = "SPANLAKE_TARGET")]
    target: Option<Target>,
    /// Time between compaction passes (default 30s); 0s turns compaction off.
    #[arg(long, env = "SPANLAKE_COMPACTION_INTERVAL", value_parser = parse_duration)]
    compaction_interval: Option<Duration>,
    /// Size compacted blocks aim for (default 256MiB).
    #[arg(long, env = "SPANLAKE_COMPACTION_TARGET_BYTES", value_parser = parse_byte_size)]
    compaction_target_bytes: Option<u64>,
    /// Blocks whose spans start in the same window of this length are merged together (default 1h).
    #[arg(long, env = "SPANLAKE_COMPACTION_WINDOW", value_parser = parse_duration)]
    compaction_window: Option<Duration>,
    /// Most blocks merged at once (default 64).
    #[arg(long, env = "SPANLAKE_COMPACTION_MAX_INPUTS")]
    compaction_max_inputs: Option<usize>,
    /// How long replaced blocks stay for queries still reading them (default 5m).
    #[arg(long, env = "SPANLAKE_COMPACTION_DELETION_GRACE", value_parser = parse_duration)]
    compaction_deletion_grace: Option<Duration>,
    /// How long objects of a block without metadata stay before they count as a crashed upload's (default 1h).
    #[arg(long, env = "SPANLAKE_COMPACTION_LEFTOVER_GRACE", value_parser = parse_duration)]
    compaction_leftover_grace: Option<Duration>,
    /// How long a compactor's per-tenant lease lasts without renewal (default 2m).
    #[arg(long, env = "SPANLAKE_COMPACTION_LEASE_TTL", value_parser = parse_duration)]
    compaction_lease_ttl: Option<Duration>,
    /// Merges running at once, each on a core (default 1).
    #[arg(long, env = "SPANLAKE_COMPACTION_CONCURRENCY")]
    compaction_concurrency: Option<usize>,
    /// Delete blocks whose spans all ended longer ago than this (default 14d).
    #[arg(long, env = "SPANLAKE_RETENTION", value_parser = parse_duration)]
    retention: Option<Duration>,
    /// Retention of particular tenants, over --retention: TENANT=DURATION,… (e.g. team-a=30d,team-b=7d).
    #[arg(long, env = "SPANLAKE_TENANT_RETENTION", value_parser = parse_tenant_retention)]
    tenant_retention: Option<BTreeMap<TenantId, HumanDuration>>,
}

impl ServeArgs {
    /// Defaults, then the config file, then flags and environment variables.
    fn into_config(self) -> Result<ServeConfig, String> {
        let mut config = ServeConfig::default();
        if let Some(path) = &self.config {
            ConfigFile::load(path).map_err(|e| e.to_string())?.apply(&mut config);
        }
        let flags = ConfigFile {
            data_dir: self.data_dir,
            storage: self.storage,
            http_addr: self.http_addr,
            otlp_grpc_addr: self.otlp_grpc_addr,
            otlp_http_addr: self.otlp_http_addr,
            multitenancy: self.multitenancy,
            max_request_bytes: self.max_request_bytes.map(ByteSize),
            max_request_decompressed_bytes: self.max_request_decompressed_bytes.map(ByteSize),
            read_timeout: self.read_timeout.map(HumanDuration),
            max_block_bytes: self.max_block_bytes.map(ByteSize),
            max_block_age: self.max_block_age.map(HumanDuration),
            max_buffer_bytes: self.max_buffer_bytes.map(ByteSize),
            max_wal_bytes: self.max_wal_bytes.map(ByteSize),
            flush_on_shutdown: self.flush_on_shutdown,
            upload_timeout: self.upload_timeout.map(HumanDuration),
            block_refresh_interval: self.block_refresh_interval.map(HumanDuration),
            footer_cache_bytes: self.footer_cache_bytes.map(ByteSize),
            bloom_false_positive_rate: self.bloom_false_positive_rate,
            sql_timeout: self.sql_timeout.map(HumanDuration),
            sql_memory_limit: self.sql_memory_limit.map(ByteSize),
            sql_max_concurrent: self.sql_max_concurrent,
            target: self.target,
            compaction_interval: self.compaction_interval.map(HumanDuration),
            compaction_target_bytes: self.compaction_target_bytes.map(ByteSize),
            compaction_window: self.compaction_window.map(HumanDuration),
            compaction_max_inputs: self.compaction_max_inputs,
            compaction_deletion_grace: self.compaction_deletion_grace.map(HumanDuration),
            compaction_leftover_grace: self.compaction_leftover_grace.map(HumanDuration),
            compaction_lease_ttl: self.compaction_lease_ttl.map(HumanDuration),
            compaction_concurrency: self.compaction_concurrency,
            retention: self.retention.map(HumanDuration),
            tenant_retention: self.tenant_retention,
        };
        flags.apply(&mut config);
        Ok(config)
    }
}

#[derive(Args)]
struct BlocksArgs {
    /// Storage URL to read: file:///path or s3://bucket/prefix. Default: the serve default folder.
    #[arg(long, env = "SPANLAKE_STORAGE")]
    storage: Option<String>,
    /// Only this tenant (default: every tenant found).
    #[arg(long)]
    tenant: Option<TenantId>,
}

/// Ingest allocates and frees many small buffers per span on several threads; with mimalloc the server's
/// steady-state RSS at 100 k spans/s fell from 450 to 335 MiB for the same CPU (BENCHMARKS.md, ingest).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Threads of the async runtime's blocking pool per core, with [`MIN_BLOCKING_THREADS`] at least.
const BLOCKING_THREADS_PER_CORE: usize = 4;
const MIN_BLOCKING_THREADS: usize = 8;

/// The async runtime, with a blocking pool sized to the machine rather than tokio's 512 threads. Request
/// decoding, block encoding, merges and local-file I/O all run there; under flat-out ingest with a merge
/// running, an unbounded pool grew to 60–240 threads, and every thread's allocator heap keeps freed
/// memory: peak RSS 2.0 GiB with 60 threads, 1.4 GiB with 14, at the same throughput (BENCHMARKS.md,
/// ingest). Nothing running there waits for another blocking task, so a full pool only queues work.
fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads((cores * BLOCKING_THREADS_PER_CORE).max(MIN_BLOCKING_THREADS))
        .build()
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SPANLAKE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    let runtime = match runtime() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => serve(*args).await,
            Command::Blocks(args) => blocks(args).await,
            Command::Loadgen(args) => loadgen(args).await,
            Command::Verify(args) => verify(args).await,
            Command::Trace(args) => trace(args).await,
            Command::Sql(args) => sql(args).await,
            Command::Compact(args) => compact(args).await,
        }
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(args: ServeArgs) -> Result<(), String> {
    let config = args.into_config()?;
    spanlake::api::serve(config).await.map_err(|e| e.to_string())
}

async fn blocks(args: BlocksArgs) -> Result<(), String> {
    let config = ServeConfig { storage: args.storage, ..Default::default() };
    let storage = Storage::open(&config.storage_url().map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
    let tenants = match args.tenant {
        Some(tenant) => vec![tenant],
        None => list_tenants(&storage).await.map_err(|e| e.to_string())?,
    };
    println!("{:<20} {:<36} {:>10} {:>8} {:>12}  start range (unix ns)", "tenant", "block", "spans", "traces", "bytes");
    for tenant in tenants {
        let listing = list_blocks(&storage, &tenant).await.map_err(|e| e.to_string())?;
        let mut metas = Vec::new();
        for block in listing.committed {
            metas.push(read_block_meta(&storage, &tenant, block).await.map_err(|e| e.to_string())?);
        }
        let replaced = replaced_blocks(&metas);
        for meta in &metas {
            println!(
                "{:<20} {:<36} {:>10} {:>8} {:>12}  {}..{}{}",
                tenant.as_str(),
                meta.block_id.to_string(),
                meta.span_count,
                meta.trace_count,
                meta.data_bytes + meta.bloom_bytes,
                meta.min_start_unix_nano,
                meta.max_start_unix_nano,
                if replaced.contains(&meta.block_id) { "  (replaced)" } else { "" }
            );
        }
        if !listing.uncommitted.is_empty() {
            eprintln!("{tenant}: {} uncommitted block folder(s) (no meta.json) ignored", listing.uncommitted.len());
        }
    }
    Ok(())
}

async fn compact(args: CompactArgs) -> Result<(), String> {
    use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
    use spanlake::compaction::{Compactor, Progress, unix_ms_now};
    let mut config = ServeConfig::default();
    if let Some(path) = &args.config {
        ConfigFile::load(path).map_err(|e| e.to_string())?.apply(&mut config);
    }
    ConfigFile {
        storage: args.storage,
        retention: args.retention.map(HumanDuration),
        compaction_target_bytes: args.compaction_target_bytes.map(ByteSize),
        compaction_deletion_grace: args.compaction_deletion_grace.map(HumanDuration),
        ..Default::default()
    }
    .apply(&mut config);
    let storage = Storage::open(&config.storage_url().map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
    let compactor = Compactor::new(storage, config.compaction_options());
    let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {binary_bytes}/{binary_total_bytes} {msg}",
        )
        .map_err(|e| e.to_string())?,
    );
    let spans = std::sync::atomic::AtomicU64::new(0);
    let progress = |event: Progress| match event {
        Progress::Planned { tenant, jobs, bytes } => {
            bar.inc_length(bytes);
            bar.set_message(format!("{tenant}: {jobs} merge(s) planned"));
        }
        Progress::Merged { tenant, bytes_in, spans_out } => {
            bar.inc(bytes_in);
            let total = spans.fetch_add(spans_out, std::sync::atomic::Ordering::Relaxed) + spans_out;
            bar.set_message(format!("{tenant}: {total} spans written"));
        }
    };
    let now = unix_ms_now();
    let report = match &args.tenant {
        Some(tenant) => compactor.compact_tenant_at(tenant, now, &progress).await,
        None => compactor.pass_at(now, &progress).await,
    }
    .map_err(|e| e.to_string())?;
    bar.finish_and_clear();
    println!(
        "{} tenant(s){}: {} merge(s), {} blocks -> {}, {} spans -> {} ({} duplicates removed), {} -> {} bytes; \
         deleted {} replaced, {} expired, {} leftover block(s)",
        report.tenants,
        if report.tenants_leased_elsewhere > 0 {
            format!(" ({} skipped: another compactor holds the lease)", report.tenants_leased_elsewhere)
        } else {
            String::new()
        },
        report.jobs,
        report.blocks_in,
        report.blocks_out,
        report.spans_in,
        report.spans_out,
        report.duplicates_removed,
        report.bytes_in,
        report.bytes_out,
        report.deleted_replaced,
        report.deleted_expired,
        report.deleted_leftovers,
    );
    Ok(())
}

async fn loadgen(args: LoadgenArgs) -> Result<(), String> {
    let options = LoadOptions {
        endpoint: args.endpoint,
        protocol: args.protocol,
        rate: args.rate,
        duration: args.duration,
        spans_per_request: args.spans_per_request.max(1),
        concurrency: args.concurrency.max(1),
        seed: args.seed,
        tenant: args.tenant,
        verify_file: args.verify,
        progress: std::io::IsTerminal::is_terminal(&std::io::stderr()),
    };
    let report = spanlake::loadgen::run(options).await.map_err(|e| e.to_string())?;
    println!("{}", report.render());
    Ok(())
}

async fn verify(args: VerifyArgs) -> Result<(), String> {
    let config = ServeConfig { storage: args.storage, ..Default::default() };
    let storage = Storage::open(&config.storage_url().map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
    let report =
        spanlake::loadgen::verify::verify(&args.ids, &storage, &args.tenant).await.map_err(|e| e.to_string())?;
    println!(
        "{} acknowledged spans, {} stored: {} missing, {} stored more than once",
        report.acknowledged, report.stored, report.missing, report.duplicated
    );
    if report.passed() {
        Ok(())
    } else {
        Err(format!("verification failed; missing for example: {:?}", report.missing_examples))
    }
}

/// Where `spanlake trace` looks when told nothing: a server on this machine's default query port.
const DEFAULT_SERVER: &str = "http://127.0.0.1:3200";

async fn trace(args: TraceArgs) -> Result<(), String> {
    use spanlake::query::remote::{RemoteError, fetch_trace};
    use spanlake::query::{Querier, QueryOptions, waterfall, waterfall_spans};
    let from_storage = |url: Option<String>| async {
        let config = ServeConfig { storage: url, ..Default::default() };
        let storage = Storage::open(&config.storage_url().map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
        let tenant = args.tenant.clone().unwrap_or_else(TenantId::single_tenant);
        let querier = Querier::new(storage, QueryOptions::default());
        let found = querier.find_trace(&tenant, &args.trace_id, Default::default()).await.map_err(|e| e.to_string())?;
        match &found.incomplete {
            Some(why) if found.is_empty() => return Err(why.clone()),
            Some(why) => eprintln!("warning: the trace may be incomplete: {why}"),
            None => {}
        }
        Ok::<_, String>((!found.is_empty()).then_some(found.resource_spans))
    };
    let found = match (&args.server, &args.storage) {
        (Some(server), _) => {
            fetch_trace(server, args.tenant.as_ref(), &args.trace_id).await.map_err(|e| e.to_string())?
        }
        (None, Some(storage)) => from_storage(Some(storage.clone())).await?,
        (None, None) => match fetch_trace(DEFAULT_SERVER, args.tenant.as_ref(), &args.trace_id).await {
            Err(RemoteError::Unreachable { .. }) => {
                eprintln!("no server at {DEFAULT_SERVER}; reading the default storage folder (flushed spans only)");
                from_storage(None).await?
            }
            other => other.map_err(|e| e.to_string())?,
        },
    };
    let Some(resource_spans) = found else {
        return Err(format!("trace {} not found", args.trace_id));
    };
    let width = args.width.or_else(|| std::env::var("COLUMNS").ok()?.parse().ok()).unwrap_or(80);
    print!("{}", waterfall::render(&args.trace_id.to_hex(), &waterfall_spans(&resource_spans), width));
    Ok(())
}

async fn sql(args: SqlArgs) -> Result<(), String> {
    use spanlake::query::remote::{RemoteError, fetch_sql};
    let wire = match args.format {
        SqlOutput::Table => "arrow",
        SqlOutput::Csv => "csv",
        SqlOutput::Json => "json",
        SqlOutput::Ndjson => "ndjson",
    };
    let remote = |server: String| {
        let (tenant, query) = (args.tenant.clone(), args.query.clone());
        async move { fetch_sql(&server, tenant.as_ref(), &query, wire).await }
    };
    let body = match (&args.server, &args.storage) {
        (Some(server), _) => remote(server.clone()).await.map_err(|e| e.to_string())?,
        (None, Some(storage)) => return sql_embedded(&args, Some(storage.clone())).await,
        (None, None) => match remote(DEFAULT_SERVER.to_owned()).await {
            Err(RemoteError::Unreachable { .. }) => {
                eprintln!("no server at {DEFAULT_SERVER}; reading the default storage folder (flushed spans only)");
                return sql_embedded(&args, None).await;
            }
            other => other.map_err(|e| e.to_string())?,
        },
    };
    if matches!(args.format, SqlOutput::Table) {
        let reader = arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(body), None)
            .map_err(|e| format!("unreadable result: {e}"))?;
        let schema = reader.schema();
        let batches = reader.collect::<Result<Vec<_>, _>>().map_err(|e| format!("unreadable result: {e}"))?;
        println!("{}", spanlake::sql::render_table(&schema, &batches).map_err(|e| e.to_string())?);
    } else {
        std::io::stdout().write_all(&body).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// `spanlake sql` without a server: the same engine, over the blocks in storage.
async fn sql_embedded(args: &SqlArgs, storage: Option<String>) -> Result<(), String> {
    use futures::StreamExt;
    use spanlake::query::{Querier, QueryOptions};
    use spanlake::sql::{ResultFormat, ResultWriter, SqlEngine, SqlLimits, render_table};
    let config = ServeConfig { storage, ..Default::default() };
    let storage = Storage::open(&config.storage_url().map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
    let tenant = args.tenant.clone().unwrap_or_else(TenantId::single_tenant);
    let engine = SqlEngine::new(Querier::new(storage, QueryOptions::default()), SqlLimits::default())
        .map_err(|e| e.to_string())?;
    let mut rows = engine.query(&tenant, &args.query).await.map_err(|e| e.to_string())?;
    let format = match args.format {
        SqlOutput::Table => {
            let schema = rows.schema();
            let batches = rows.collect().await.map_err(|e| e.to_string())?;
            println!("{}", render_table(&schema, &batches).map_err(|e| e.to_string())?);
            return Ok(());
        }
        SqlOutput::Csv => ResultFormat::Csv,
        SqlOutput::Json => ResultFormat::Json,
        SqlOutput::Ndjson => ResultFormat::Ndjson,
    };
    let mut out = std::io::stdout().lock();
    let mut writer = ResultWriter::new(rows.schema(), format);
    out.write_all(&writer.begin().map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
    while let Some(batch) = rows.next().await {
        let bytes = writer.batch(&batch.map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
        out.write_all(&bytes).map_err(|e| e.to_string())?;
    }
    out.write_all(&writer.finish().map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
    Ok(())
}
