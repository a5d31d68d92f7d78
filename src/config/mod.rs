//! Server settings, each declared once (below, in `settings!`): its name, type, default and doc line.
//! The YAML key, the flag, the `SPANLAKE_*` variable, the `--help` text with its default and
//! `deploy/spanlake.yaml` all follow from that one declaration, so adding a setting touches one place
//! (plus its use).
//!
//! Owns the meaning and defaults of every setting and how they are layered (defaults, then the file,
//! then variables and flags). Calls `storage` only to turn a folder into a storage URL, and hands `ingest`,
//! `query`, `sql`, `receive` and `compaction` their options; the defaults of those options stay with
//! the modules that use them.

pub(crate) mod declare;
mod values;

use std::marker::PhantomData;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::compaction::{CompactionOptions, PlanRules};
use crate::ingest::IngestOptions;
use crate::query::QueryOptions;
use crate::receive::BodyLimits;
use crate::sql::SqlLimits;
use crate::storage::{BlockWriteOptions, StorageError, StorageLocation};
use declare::{FlagSet, settings, yaml_scalar};

pub use declare::Setting;
pub use values::{ByteSize, FalsePositiveRate, HostPorts, SettingValue, Target, TenantRetention, ValueError};

fn ingest() -> IngestOptions {
    IngestOptions::new(PathBuf::new())
}

fn compaction() -> CompactionOptions {
    CompactionOptions::default()
}

/// The default request budget: room for a few of the largest requests and many ordinary ones (an SDK's
/// export is 0.1–4 MiB), well under the buffer's 512 MiB.
const DEFAULT_INFLIGHT_REQUEST_BYTES: usize = 256 * 1024 * 1024;

fn any_interface(port: u16) -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], port))
}

settings! {
    #[section = "Roles"]
    /// Roles of this process: all (ingest, query, compaction in one), ingester (OTLP and Zipkin ports, WAL,
    /// blocks; /ready, /metrics, /flush and the queriers' internal endpoint on the HTTP address), querier
    /// (query and Jaeger ports, no WAL; recent spans from the ingesters below) or compactor (compaction and
    /// retention only, with /ready and /metrics on the HTTP address). docs/scaling.md.
    target: Target = Target::All;
    /// Querier: the ingesters' HTTP addresses (HOST:PORT, comma-separated), each name resolved again on
    /// every refresh and every address it resolves to read, so a Kubernetes headless Service name finds
    /// them all. An ingester that does not answer makes answers partial (v2 PARTIAL, a Warning header).
    ingesters: HostPorts = HostPorts::default();
    /// Querier: how often the ingesters' names are resolved again.
    ingester_refresh_interval: Duration = crate::query::PeerOptions::default().refresh_interval;
    /// Querier: longest it waits for one ingester's recent spans before answering without them (partial).
    ingester_timeout: Duration = crate::query::PeerOptions::default().timeout;
    /// Querier: the bearer token it sends to the ingesters when they have auth on (an admin credential of
    /// their auth_file). Best given as SPANLAKE_INGESTER_TOKEN.
    ingester_token: Option<String> = None;
    /// Querier: PEM CA certificates that signed the ingesters' certificates (their tls_cert_file). Set: it
    /// speaks TLS to them, and shows its own tls_cert_file as client certificate to ingesters that want
    /// one (their tls_client_ca_file; the certificate must then allow client authentication). Not set: clear
    /// HTTP/2.
    ingester_ca_file: Option<PathBuf> = None;
    /// Ingester: how long it keeps serving the spans of a block it uploaded, so queriers that have not
    /// listed the block yet still see them; keep it above the queriers' block_refresh_interval. Queriers
    /// leave out the copies of blocks they know, so nothing is counted twice. The copies (encoded, about a
    /// tenth of their buffered size) are memory on top of max_buffer_bytes: spanlake_handoff_bytes.
    handoff_retention: Duration = Duration::from_secs(30);

    #[section = "Storage and ports"]
    /// Folder for the write-ahead log, and for blocks when no storage is set.
    data_dir: PathBuf = PathBuf::from("spanlake-data");
    /// Where blocks live: file:///path or s3://bucket/prefix (S3 and MinIO are configured by the standard
    /// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_ENDPOINT_URL, AWS_ALLOW_HTTP variables).
    /// Not set: <data_dir>/blocks on the local disk.
    storage: Option<String> = None;
    /// HOST:PORT of the query HTTP API (Tempo's port: trace by ID, SQL, /ready, /metrics, /flush);
    /// port 0 picks a free port (logged).
    http_addr: SocketAddr = any_interface(3200);
    /// HOST:PORT of the OTLP/gRPC receiver; port 0 picks a free port (logged).
    otlp_grpc_addr: SocketAddr = any_interface(4317);
    /// HOST:PORT of the OTLP/HTTP receiver; port 0 picks a free port (logged).
    otlp_http_addr: SocketAddr = any_interface(4318);
    /// HOST:PORT of Jaeger's query API (Grafana's Jaeger data source, Jaeger tooling); an empty value
    /// turns it off.
    jaeger_addr: Option<SocketAddr> = Some(any_interface(16686));
    /// HOST:PORT of the Zipkin v2 receiver (POST /api/v2/spans, JSON or protobuf); an empty value turns it
    /// off.
    zipkin_addr: Option<SocketAddr> = Some(any_interface(9411));
    /// Take the tenant from the X-Scope-OrgID header (required); off, every span goes to single-tenant.
    multitenancy: bool = false;
    /// Tenants with data this server holds at most (in the store or in its buffers); spans of one more are
    /// refused (HTTP 403, gRPC PERMISSION_DENIED). Queries of tenants without data keep no state.
    max_tenants: usize = crate::api::DEFAULT_MAX_TENANTS;
    /// Credentials file (YAML: bearer tokens and basic-auth users, stored as SHA-256 digests, each bound
    /// to one tenant or to the admin role; `spanlake auth token` makes entries). Set: every port needs
    /// credentials, and the tenant comes from them. Re-read when it changes. Not set: auth off.
    auth_file: Option<PathBuf> = None;
    /// PEM certificate chain for TLS on every port (with tls_key_file); re-read when it changes. Not set:
    /// every port speaks in clear.
    tls_cert_file: Option<PathBuf> = None;
    /// PEM private key of tls_cert_file.
    tls_key_file: Option<PathBuf> = None;
    /// PEM CA certificates: when set, every connection must present a client certificate they signed.
    tls_client_ca_file: Option<PathBuf> = None;

    #[section = "Ingest"]
    /// Largest OTLP request body as sent.
    max_request_bytes: ByteSize = ByteSize::of(BodyLimits::default().max_compressed_bytes);
    /// Largest OTLP request body after decompression.
    max_request_decompressed_bytes: ByteSize = ByteSize::of(BodyLimits::default().max_decompressed_bytes);
    /// Bytes that OTLP requests in flight may hold at once, as sent, decompressed and decoded, from their
    /// first byte until they are in the WAL and the buffer; a request past it gets a retryable 429 /
    /// RESOURCE_EXHAUSTED, one that could never fit 413. At least max_request_bytes +
    /// max_request_decompressed_bytes.
    max_inflight_request_bytes: ByteSize = ByteSize::of(DEFAULT_INFLIGHT_REQUEST_BYTES);
    /// Longest attribute key or value (of a span, its resource, scope, events, links; nested values
    /// together) a span may bring; a span with a longer one is refused (partial success, counted as
    /// spanlake_spans_rejected_total{reason="attribute_too_large"}). 0: no limit.
    max_attribute_bytes: ByteSize = ByteSize::of(crate::ingest::limits::DEFAULT_MAX_ATTRIBUTE_BYTES);
    /// Bytes one trace may hold in its tenant's open buffer (until the next block is cut); its further
    /// spans are refused (partial success, reason="trace_too_large"), as Tempo's max_bytes_per_trace. 0: no
    /// limit.
    max_bytes_per_trace: ByteSize = ByteSize::of(crate::ingest::limits::DEFAULT_MAX_BYTES_PER_TRACE);
    /// Connections each port holds open at once; more wait to be accepted until one closes.
    max_connections: usize = crate::api::DEFAULT_MAX_CONNECTIONS;
    /// HTTP/2 streams (requests) one connection may have open at once, on the gRPC and query ports.
    max_concurrent_streams: usize = crate::api::DEFAULT_MAX_CONCURRENT_STREAMS;
    /// Longest a client may take to send a request: its headers on the HTTP ports (4318, 3200), then its
    /// body on every port. Past it the connection is closed, or the request refused (HTTP 408, gRPC
    /// DEADLINE_EXCEEDED), so slow clients cannot hold connections forever. A client that reads nothing of
    /// its answer for as long is cut off too.
    read_timeout: Duration = Duration::from_secs(30);
    /// Cut a tenant's buffer into a block at this many buffered bytes...
    max_block_bytes: ByteSize = ByteSize::of(ingest().max_block_bytes);
    /// ...or when its oldest span has waited this long.
    max_block_age: Duration = ingest().max_block_age;
    /// Answer 429 past this many bytes held by the ingester.
    max_buffer_bytes: ByteSize = ByteSize::of(ingest().max_buffer_bytes);
    /// Answer 429 past this many bytes of WAL on disk.
    max_wal_bytes: ByteSize = ByteSize(ingest().max_wal_bytes);
    /// How long the span keys of committed blocks are remembered (at least half of it), so a client
    /// resending a request whose acknowledgement it lost does not store its spans twice. Cover your
    /// clients' retry time (the Collector's retry_on_failure gives up after 5 minutes). 0: off.
    resend_window: Duration = ingest().resend_window;
    /// Memory for those keys (about 50 bytes each, on top of max_buffer_bytes); past it the oldest are
    /// forgotten sooner. 0: off.
    resend_window_bytes: ByteSize = ByteSize::of(ingest().resend_window_bytes);
    /// Flush every buffer to the object store on SIGTERM/SIGINT (the WAL keeps the spans either way).
    flush_on_shutdown: bool = ingest().flush_on_shutdown;
    /// Longest single block upload before it counts as failed and is retried (a stalled store).
    upload_timeout: Duration = ingest().upload_timeout;
    /// False-positive rate each new block's trace-ID bloom filter is sized for, e.g. 1e-5 or 0.001%.
    bloom_false_positive_rate: FalsePositiveRate = FalsePositiveRate::new(ingest().block.bloom_false_positive_rate)
        .expect("the ingester's default rate is between 0 and 1");
    /// Write blocks with spanlake's own Parquet encoder (faster, same format). false writes them with the
    /// parquet crate's writer: the way back if a block ever reads wrong (docs/storage-format.md).
    direct_encoding: bool = ingest().block.direct_encoding;

    #[section = "Query"]
    /// How often the querier lists the store for blocks other processes wrote (its own are known at once).
    block_refresh_interval: Duration = QueryOptions::default().block_refresh_interval;
    /// Memory for decoded Parquet footers and page indexes of recently read blocks.
    footer_cache_bytes: ByteSize = ByteSize(QueryOptions::default().footer_cache_bytes);
    /// Decoded spans one trace-by-ID lookup may hold; a larger trace is answered in part (v2: PARTIAL
    /// status; v1: 422), as Tempo answers a trace over its max_bytes_per_trace.
    max_trace_bytes: ByteSize = ByteSize(QueryOptions::default().max_trace_bytes);
    /// Longest a trace-by-ID lookup may take; past it, 504.
    trace_lookup_timeout: Duration = QueryOptions::default().trace_lookup_timeout;
    /// Trace-by-ID lookups running at once; one more gets 429.
    max_concurrent_trace_lookups: usize = QueryOptions::default().max_concurrent_trace_lookups;
    /// Longest an SQL query may run (planning and streaming its rows); past it, 504.
    sql_timeout: Duration = SqlLimits::default().timeout;
    /// Memory one SQL query's sorts, aggregations and joins may hold; past it, 507 (nothing spills).
    sql_memory_limit: ByteSize = ByteSize(SqlLimits::default().memory_bytes);
    /// SQL queries running at once; one more gets 429.
    sql_max_concurrent: usize = SqlLimits::default().max_concurrent;

    #[section = "Compaction and retention"]
    /// Time between compaction passes; 0s turns compaction off (with target all).
    compaction_interval: Duration = compaction().interval;
    /// Blocks whose spans start in the same window of this length are merged together.
    compaction_window: Duration = compaction().rules.window;
    /// Merge inputs add up to at most this much, so compacted blocks end up near this size.
    compaction_target_bytes: ByteSize = ByteSize(compaction().rules.target_bytes);
    /// Most blocks merged at once.
    compaction_max_inputs: usize = compaction().rules.max_inputs;
    /// Decoded rows one merge holds at once (its inputs and output are scratch files on disk): each
    /// input is read in batches small enough to fit. Per merge running at once.
    compaction_merge_memory: ByteSize = ByteSize(compaction().merge_memory_bytes);
    /// How long replaced blocks stay after the switch, for queries still reading them.
    compaction_deletion_grace: Duration = compaction().rules.deletion_grace;
    /// How long objects of a block without metadata stay before they count as a crashed upload's.
    compaction_leftover_grace: Duration = compaction().rules.leftover_grace;
    /// How long a compactor's per-tenant lease lasts without renewal (a dead compactor's takeover wait).
    compaction_lease_ttl: Duration = compaction().lease_ttl;
    /// Merges running at once, each on a core (raise it for a dedicated compactor).
    compaction_concurrency: usize = compaction().concurrency;
    /// Blocks whose spans all ended longer ago than this are deleted.
    retention: Duration = compaction().rules.retention;
    /// Retention of particular tenants, over retention, e.g. {team-a: 30d}. As a flag or environment
    /// variable it is one line, e.g. team-a=30d,team-b=7d.
    tenant_retention: TenantRetention = TenantRetention::default();
}

/// Why the settings could not be put together.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config file {}", path.display())]
    Invalid {
        path: PathBuf,
        #[source]
        source: FileError,
    },
    #[error("settings from the environment")]
    Environment(#[source] clap::Error),
    /// Two settings that are each valid but cannot hold together.
    #[error("settings conflict: {0}")]
    Conflict(String),
}

/// What is wrong inside a settings file; the key at fault is named, with its value's own reason as the
/// cause.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("not YAML")]
    Syntax(#[source] serde_yaml_ng::Error),
    #[error("expected a map of settings (key: value)")]
    NotAMap,
    #[error("unknown key {key}")]
    UnknownKey { key: String },
    /// The value's reason is boxed: it is large and rare, and start-up returns this through every layer.
    #[error("{key}")]
    Value {
        key: String,
        #[source]
        source: Box<ValueError>,
    },
}

impl ConfigFile {
    /// Reads and checks a settings file; an unknown key or a bad value is an error naming it.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        Self::parse(&text).map_err(|source| ConfigError::Invalid { path: path.to_owned(), source })
    }

    /// Parses settings from YAML text (an empty document, or comments only, means "all defaults").
    pub fn parse(text: &str) -> Result<Self, FileError> {
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        match serde_yaml_ng::from_str(text).map_err(FileError::Syntax)? {
            serde_yaml_ng::Value::Mapping(mapping) => Self::from_mapping(mapping),
            serde_yaml_ng::Value::Null => Ok(Self::default()),
            _ => Err(FileError::NotAMap),
        }
    }
}

/// The header of the example config: how keys, variables and flags relate.
const EXAMPLE_HEADER: &str = "\
# spanlake settings: every key with its default. `spanlake serve --config spanlake.yaml`.
# Each key can also be set by its environment variable (SPANLAKE_ + the key in capitals, for example
# SPANLAKE_STORAGE) or by its flag (--storage); flags and environment win over this file.
# An unknown key stops the start with its name. Sizes take B, KiB, MiB, GiB, KB, MB, GB; durations
# take ms, s, m, h, d. Generated from src/config/mod.rs: `SPANLAKE_BLESS=1 cargo test --test deploy`
# rewrites it.
";

/// `deploy/spanlake.yaml` as it must read: every key with its doc and default, in declaration order
/// (keys without a default are shown commented out). A test holds the file to it.
pub fn example_yaml() -> String {
    let mut out = String::from(EXAMPLE_HEADER);
    for (setting, default) in SETTINGS.iter().zip(ConfigFile::rendered_defaults()) {
        if let Some(section) = setting.section {
            out.push_str(&format!("\n# ---- {section} ----\n"));
        }
        for line in setting.doc {
            out.push_str(&format!("#{}\n", line.trim_end()));
        }
        match default {
            Some(value) => out.push_str(&format!("{}: {}\n", setting.key, yaml_scalar(&value))),
            None => out.push_str(&format!("# {}:\n", setting.key)),
        }
    }
    out
}

impl ServeConfig {
    /// Defaults, then the file at `config` (if any), then `flags` (flags and environment variables).
    pub fn layered(config: Option<&Path>, flags: ConfigFile) -> Result<Self, ConfigError> {
        let mut settings = Self::default();
        if let Some(path) = config {
            ConfigFile::load(path)?.apply(&mut settings);
        }
        flags.apply(&mut settings);
        settings.check()?;
        Ok(settings)
    }

    /// Refuses settings that contradict each other, at start-up rather than at the first request (or,
    /// worse, at the replay after a crash).
    fn check(&self) -> Result<(), ConfigError> {
        let decompressed = self.max_request_decompressed_bytes.as_usize();
        if decompressed > crate::wal::MAX_SPANS_PAYLOAD_BYTES {
            return Err(ConfigError::Conflict(format!(
                "max_request_decompressed_bytes is {decompressed} bytes, but a WAL record holds at most {} bytes \
                 of request: an acknowledged request that large could not be replayed after a crash",
                crate::wal::MAX_SPANS_PAYLOAD_BYTES
            )));
        }
        let (sent, inflight) = (self.max_request_bytes.as_usize(), self.max_inflight_request_bytes.as_usize());
        if inflight < sent.saturating_add(decompressed) {
            return Err(ConfigError::Conflict(format!(
                "max_inflight_request_bytes is {inflight} bytes, less than max_request_bytes + \
                 max_request_decompressed_bytes ({sent} + {decompressed}): a request within the limits could \
                 never be admitted"
            )));
        }
        if self.max_connections == 0 || self.max_concurrent_streams == 0 || self.max_tenants == 0 {
            return Err(ConfigError::Conflict(
                "max_connections, max_concurrent_streams and max_tenants must be at least 1: no request could be \
                 served"
                    .into(),
            ));
        }
        Ok(())
    }

    /// Defaults, then the `SPANLAKE_*` environment variables: what `spanlake serve` runs with when given
    /// no file and no flags. Tests start in-process servers from it, so one variable (say
    /// `SPANLAKE_DIRECT_ENCODING=false`) switches a whole suite the way it switches the binary.
    pub fn from_env() -> Result<Self, ConfigError> {
        let command = clap::Command::new("spanlake").no_binary_name(true).args(ConfigFile::flags::<AllSettings>());
        let matches = command.try_get_matches_from(std::iter::empty::<String>()).map_err(ConfigError::Environment)?;
        Self::layered(None, ConfigFile::from_matches(&matches))
    }

    /// The storage URL to open: the configured one, or the `blocks` folder inside the data directory.
    pub fn storage_url(&self) -> Result<String, StorageError> {
        match &self.storage {
            Some(url) => Ok(url.clone()),
            None => StorageLocation::local_folder_url(&self.data_dir.join("blocks")),
        }
    }

    /// The receivers' body limits.
    pub fn body_limits(&self) -> BodyLimits {
        BodyLimits {
            max_compressed_bytes: self.max_request_bytes.as_usize(),
            max_decompressed_bytes: self.max_request_decompressed_bytes.as_usize(),
        }
    }

    /// How blocks are written, by the ingester and the compactor alike.
    pub fn block_options(&self) -> BlockWriteOptions {
        BlockWriteOptions {
            bloom_false_positive_rate: self.bloom_false_positive_rate.get(),
            direct_encoding: self.direct_encoding,
            ..Default::default()
        }
    }

    /// The ingester's options: the WAL in `<data_dir>/wal` and the limits above.
    pub fn ingest_options(&self) -> IngestOptions {
        IngestOptions {
            max_block_bytes: self.max_block_bytes.as_usize(),
            max_block_age: self.max_block_age,
            max_buffer_bytes: self.max_buffer_bytes.as_usize(),
            max_wal_bytes: self.max_wal_bytes.0,
            flush_on_shutdown: self.flush_on_shutdown,
            // With every role in one process the querier learns of a block before its spans leave the
            // buffer; only queriers elsewhere need the copies.
            handoff_retention: match self.target {
                Target::Ingester => self.handoff_retention,
                _ => Duration::ZERO,
            },
            upload_timeout: self.upload_timeout,
            resend_window: self.resend_window,
            resend_window_bytes: self.resend_window_bytes.as_usize(),
            block: self.block_options(),
            limits: crate::ingest::limits::SpanLimits {
                max_attribute_bytes: self.max_attribute_bytes.as_usize(),
                max_bytes_per_trace: self.max_bytes_per_trace.as_usize(),
            },
            ..IngestOptions::new(self.data_dir.join("wal"))
        }
    }

    /// The SQL engine's limits.
    pub fn sql_limits(&self) -> SqlLimits {
        SqlLimits {
            timeout: self.sql_timeout,
            memory_bytes: self.sql_memory_limit.0,
            max_concurrent: self.sql_max_concurrent,
            ..SqlLimits::default()
        }
    }

    /// The compactor's options (blocks written with the ingester's layout).
    pub fn compaction_options(&self) -> CompactionOptions {
        CompactionOptions {
            interval: self.compaction_interval,
            rules: PlanRules {
                window: self.compaction_window,
                target_bytes: self.compaction_target_bytes.0,
                max_inputs: self.compaction_max_inputs,
                deletion_grace: self.compaction_deletion_grace,
                leftover_grace: self.compaction_leftover_grace,
                retention: self.retention,
            },
            tenant_retention: self.tenant_retention.0.iter().map(|(t, d)| (t.clone(), *d)).collect(),
            lease_ttl: self.compaction_lease_ttl,
            concurrency: self.compaction_concurrency,
            merge_memory_bytes: self.compaction_merge_memory.0,
            block: self.block_options(),
            scratch_dir: self.data_dir.join("compaction"),
        }
    }

    /// How a querier finds and asks the ingesters (`target: querier`).
    pub fn peer_options(&self) -> crate::query::PeerOptions {
        crate::query::PeerOptions {
            ingesters: self.ingesters.0.clone(),
            refresh_interval: self.ingester_refresh_interval,
            timeout: self.ingester_timeout,
            token: self.ingester_token.clone(),
            tls: self.ingester_ca_file.clone().map(|ca_file| crate::query::peers::PeerTls {
                ca_file,
                client_certificate: self.tls_cert_file.clone().zip(self.tls_key_file.clone()),
            }),
        }
    }

    /// The querier's options.
    pub fn query_options(&self) -> QueryOptions {
        QueryOptions {
            block_refresh_interval: self.block_refresh_interval,
            footer_cache_bytes: self.footer_cache_bytes.0,
            max_trace_bytes: self.max_trace_bytes.0,
            trace_lookup_timeout: self.trace_lookup_timeout,
            max_concurrent_trace_lookups: self.max_concurrent_trace_lookups,
        }
    }
}

/// Every setting as a flag: `spanlake serve`'s.
pub struct AllSettings;

impl FlagSet for AllSettings {
    const KEYS: Option<&'static [&'static str]> = None;
}

/// The settings `spanlake compact` shares with the server: where blocks are and how to compact them.
pub struct CompactSettings;

impl FlagSet for CompactSettings {
    const KEYS: Option<&'static [&'static str]> =
        Some(&["storage", "retention", "compaction_target_bytes", "compaction_deletion_grace"]);
}

/// The one setting the read-only commands (`blocks`, `verify`) share with the server: the storage.
pub struct StorageSetting;

impl FlagSet for StorageSetting {
    const KEYS: Option<&'static [&'static str]> = Some(&["storage"]);
}

/// The flags (and variables) of the settings `S` offers, as a clap argument group to flatten into a
/// command: `#[command(flatten)] settings: SettingFlags<AllSettings>`.
pub struct SettingFlags<S> {
    /// What the flags and variables set.
    pub given: ConfigFile,
    offered: PhantomData<S>,
}

impl<S> std::fmt::Debug for SettingFlags<S> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.given.fmt(formatter)
    }
}

impl<S: FlagSet> clap::FromArgMatches for SettingFlags<S> {
    fn from_arg_matches(matches: &clap::ArgMatches) -> Result<Self, clap::Error> {
        Ok(Self { given: ConfigFile::from_matches(matches), offered: PhantomData })
    }

    fn update_from_arg_matches(&mut self, matches: &clap::ArgMatches) -> Result<(), clap::Error> {
        self.given = ConfigFile::from_matches(matches).or(std::mem::take(&mut self.given));
        Ok(())
    }
}

impl<S: FlagSet> clap::Args for SettingFlags<S> {
    fn augment_args(command: clap::Command) -> clap::Command {
        command.args(ConfigFile::flags::<S>())
    }

    fn augment_args_for_update(command: clap::Command) -> clap::Command {
        Self::augment_args(command)
    }
}

#[cfg(test)]
mod tests;
