//! Server settings, declared once with their defaults and a doc line each.
//!
//! Owns the meaning and defaults of every setting; the command line (`main.rs`) fills it in. Calls
//! `storage` only to turn a folder into a storage URL, and hands `ingest` and `receive` their options.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::compaction::{CompactionOptions, PlanRules};
use crate::ids::TenantId;
use crate::ingest::IngestOptions;
use crate::query::QueryOptions;
use crate::receive::BodyLimits;
use crate::sql::SqlLimits;
use crate::storage::{BlockWriteOptions, StorageError, StorageLocation};

/// Settings of `spanlake serve`.
#[derive(Clone, Debug, PartialEq)]
pub struct ServeConfig {
    /// Folder for the write-ahead log, and for blocks when no storage URL is given.
    pub data_dir: PathBuf,
    /// Where blocks live: `file:///…` or `s3://bucket/prefix`. Default: `<data_dir>/blocks`.
    pub storage: Option<String>,
    /// Address of the query HTTP API (Tempo's port).
    pub http_addr: SocketAddr,
    /// Address of the OTLP/gRPC receiver.
    pub otlp_grpc_addr: SocketAddr,
    /// Address of the OTLP/HTTP receiver.
    pub otlp_http_addr: SocketAddr,
    /// Take the tenant from `X-Scope-OrgID` (required); off, everything goes to `single-tenant`.
    pub multitenancy: bool,
    /// Request body limits of both receivers.
    pub body_limits: BodyLimits,
    /// Longest a client may take to send a request: its headers on the HTTP ports (else the connection is
    /// closed), then its body on every port (else 408 / `DEADLINE_EXCEEDED`), so slow or stalled clients
    /// cannot hold connections and buffers forever.
    pub read_timeout: Duration,
    /// Cut a tenant's buffer into a block at this many buffered bytes.
    pub max_block_bytes: usize,
    /// ... or when its oldest span has waited this long.
    pub max_block_age: Duration,
    /// Answer 429 past this many bytes held by the ingester.
    pub max_buffer_bytes: usize,
    /// Answer 429 past this many bytes of WAL on disk.
    pub max_wal_bytes: u64,
    /// Flush every buffer to the object store on SIGTERM/SIGINT (the WAL keeps the spans either way).
    pub flush_on_shutdown: bool,
    /// Longest single block upload before it counts as failed and is retried (a stalled store).
    pub upload_timeout: Duration,
    /// How often the querier lists the store for blocks other processes wrote (its own are known at once).
    pub block_refresh_interval: Duration,
    /// Memory for the decoded footers and page indexes of recently read blocks.
    pub footer_cache_bytes: u64,
    /// False-positive rate each new block's trace-ID bloom filter is sized for.
    pub bloom_false_positive_rate: FalsePositiveRate,
    /// Longest an SQL query may run (planning and streaming its rows); past it, 504.
    pub sql_timeout: Duration,
    /// Memory an SQL query's sorts, aggregations and joins may hold; past it, 507 (nothing spills).
    pub sql_memory_limit: u64,
    /// SQL queries running at once; one more gets 429.
    pub sql_max_concurrent: usize,
    /// The roles this process runs.
    pub target: Target,
    /// Time between two compaction passes; 0 turns the compactor off (with `target: all`).
    pub compaction_interval: Duration,
    /// Blocks whose spans start in the same window of this length are merged together.
    pub compaction_window: Duration,
    /// Merge inputs add up to at most this many bytes, so compacted blocks end up near this size.
    pub compaction_target_bytes: u64,
    /// Most blocks merged at once (each holds one decoded batch in memory while merging).
    pub compaction_max_inputs: usize,
    /// How long replaced blocks stay after the switch, for queries still reading them.
    pub compaction_deletion_grace: Duration,
    /// How long objects of a block without metadata stay before they count as a crashed upload's.
    pub compaction_leftover_grace: Duration,
    /// How long a compactor's per-tenant lease lasts without renewal (a dead compactor's takeover wait).
    pub compaction_lease_ttl: Duration,
    /// Merges running at once (each takes a core while it runs).
    pub compaction_concurrency: usize,
    /// Blocks whose spans all ended longer ago than this are deleted.
    pub retention: Duration,
    /// Retention of particular tenants, over `retention`.
    pub tenant_retention: BTreeMap<TenantId, Duration>,
}

/// Which roles `spanlake serve` runs (CONTRACTS §1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// Ingest, query and compaction in one process.
    #[default]
    All,
    /// Compaction and retention only (with `/ready` and `/metrics` on the HTTP port).
    Compactor,
}

impl std::str::FromStr for Target {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "all" => Ok(Self::All),
            "compactor" => Ok(Self::Compactor),
            other => Err(format!("unknown target {other:?}; use all or compactor")),
        }
    }
}

/// `./spanlake-data`, the embedded default (CONTRACTS §1).
pub fn default_data_dir() -> PathBuf {
    PathBuf::from("spanlake-data")
}

/// `0.0.0.0:3200`, Tempo's query port.
pub fn default_http_addr() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 3200))
}

/// `0.0.0.0:4317`, the OTLP/gRPC port.
pub fn default_otlp_grpc_addr() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 4317))
}

/// `0.0.0.0:4318`, the OTLP/HTTP port.
pub fn default_otlp_http_addr() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 4318))
}

impl Default for ServeConfig {
    fn default() -> Self {
        let ingest = IngestOptions::new(PathBuf::new());
        let query = QueryOptions::default();
        let sql = SqlLimits::default();
        let compaction = CompactionOptions::default();
        Self {
            data_dir: default_data_dir(),
            storage: None,
            http_addr: default_http_addr(),
            otlp_grpc_addr: default_otlp_grpc_addr(),
            otlp_http_addr: default_otlp_http_addr(),
            multitenancy: false,
            body_limits: BodyLimits::default(),
            read_timeout: Duration::from_secs(30),
            max_block_bytes: ingest.max_block_bytes,
            max_block_age: ingest.max_block_age,
            max_buffer_bytes: ingest.max_buffer_bytes,
            max_wal_bytes: ingest.max_wal_bytes,
            flush_on_shutdown: ingest.flush_on_shutdown,
            upload_timeout: ingest.upload_timeout,
            block_refresh_interval: query.block_refresh_interval,
            footer_cache_bytes: query.footer_cache_bytes,
            bloom_false_positive_rate: FalsePositiveRate(ingest.block.bloom_false_positive_rate),
            sql_timeout: sql.timeout,
            sql_memory_limit: sql.memory_bytes,
            sql_max_concurrent: sql.max_concurrent,
            target: Target::All,
            compaction_interval: compaction.interval,
            compaction_window: compaction.rules.window,
            compaction_target_bytes: compaction.rules.target_bytes,
            compaction_max_inputs: compaction.rules.max_inputs,
            compaction_deletion_grace: compaction.rules.deletion_grace,
            compaction_leftover_grace: compaction.rules.leftover_grace,
            compaction_lease_ttl: compaction.lease_ttl,
            compaction_concurrency: compaction.concurrency,
            retention: compaction.rules.retention,
            tenant_retention: BTreeMap::new(),
        }
    }
}

impl ServeConfig {
    /// The storage URL to open: the configured one, or the `blocks` folder inside the data directory.
    pub fn storage_url(&self) -> Result<String, StorageError> {
        match &self.storage {
            Some(url) => Ok(url.clone()),
            None => StorageLocation::local_folder_url(&self.data_dir.join("blocks")),
        }
    }

    /// The ingester's options: the WAL in `<data_dir>/wal` and the limits above.
    pub fn ingest_options(&self) -> IngestOptions {
        IngestOptions {
            max_block_bytes: self.max_block_bytes,
            max_block_age: self.max_block_age,
            max_buffer_bytes: self.max_buffer_bytes,
            max_wal_bytes: self.max_wal_bytes,
            flush_on_shutdown: self.flush_on_shutdown,
            upload_timeout: self.upload_timeout,
            block: BlockWriteOptions {
                bloom_false_positive_rate: self.bloom_false_positive_rate.0,
                ..Default::default()
            },
            ..IngestOptions::new(self.data_dir.join("wal"))
        }
    }

    /// The SQL engine's limits.
    pub fn sql_limits(&self) -> SqlLimits {
        SqlLimits {
            timeout: self.sql_timeout,
            memory_bytes: self.sql_memory_limit,
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
                target_bytes: self.compaction_target_bytes,
                max_inputs: self.compaction_max_inputs,
                deletion_grace: self.compaction_deletion_grace,
                leftover_grace: self.compaction_leftover_grace,
                retention: self.retention,
            },
            tenant_retention: self.tenant_retention.iter().map(|(t, d)| (t.clone(), *d)).collect(),
            lease_ttl: self.compaction_lease_ttl,
            concurrency: self.compaction_concurrency,
            block: self.ingest_options().block,
            scratch_dir: self.data_dir.join("compaction"),
        }
    }

    /// The querier's options.
    pub fn query_options(&self) -> QueryOptions {
        QueryOptions {
            block_refresh_interval: self.block_refresh_interval,
            footer_cache_bytes: self.footer_cache_bytes,
        }
    }
}

/// The optional YAML settings file (`spanlake serve --config FILE`): every key of [`ServeConfig`], each
/// optional. Keys it does not know are refused at start-up with their name (CONTRACTS §1). Flags and
/// `SPANLAKE_*` environment variables override it; `deploy/spanlake.yaml` shows every key with its default.
#[derive(Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    pub data_dir: Option<PathBuf>,
    pub storage: Option<String>,
    pub http_addr: Option<SocketAddr>,
    pub otlp_grpc_addr: Option<SocketAddr>,
    pub otlp_http_addr: Option<SocketAddr>,
    pub multitenancy: Option<bool>,
    pub max_request_bytes: Option<ByteSize>,
    pub max_request_decompressed_bytes: Option<ByteSize>,
    pub read_timeout: Option<HumanDuration>,
    pub max_block_bytes: Option<ByteSize>,
    pub max_block_age: Option<HumanDuration>,
    pub max_buffer_bytes: Option<ByteSize>,
    pub max_wal_bytes: Option<ByteSize>,
    pub flush_on_shutdown: Option<bool>,
    pub upload_timeout: Option<HumanDuration>,
    pub block_refresh_interval: Option<HumanDuration>,
    pub footer_cache_bytes: Option<ByteSize>,
    pub bloom_false_positive_rate: Option<FalsePositiveRate>,
    pub sql_timeout: Option<HumanDuration>,
    pub sql_memory_limit: Option<ByteSize>,
    pub sql_max_concurrent: Option<usize>,
    pub target: Option<Target>,
    pub compaction_interval: Option<HumanDuration>,
    pub compaction_window: Option<HumanDuration>,
    pub compaction_target_bytes: Option<ByteSize>,
    pub compaction_max_inputs: Option<usize>,
    pub compaction_deletion_grace: Option<HumanDuration>,
    pub compaction_leftover_grace: Option<HumanDuration>,
    pub compaction_lease_ttl: Option<HumanDuration>,
    pub compaction_concurrency: Option<usize>,
    pub retention: Option<HumanDuration>,
    pub tenant_retention: Option<BTreeMap<TenantId, HumanDuration>>,
}

/// Why the settings file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
}

impl ConfigFile {
    /// Every key set to its value in `config`: with the defaults, exactly what `deploy/spanlake.yaml`
    /// must say (a test holds the file to it). The struct literal names every field, so a new key does
    /// not compile until it is added here.
    pub fn from_config(config: &ServeConfig) -> Self {
        let bytes = |value: usize| Some(ByteSize(value as u64));
        let duration = |value: Duration| Some(HumanDuration(value));
        Self {
            data_dir: Some(config.data_dir.clone()),
            storage: config.storage.clone(),
            http_addr: Some(config.http_addr),
            otlp_grpc_addr: Some(config.otlp_grpc_addr),
            otlp_http_addr: Some(config.otlp_http_addr),
            multitenancy: Some(config.multitenancy),
            max_request_bytes: bytes(config.body_limits.max_compressed_bytes),
            max_request_decompressed_bytes: bytes(config.body_limits.max_decompressed_bytes),
            read_timeout: duration(config.read_timeout),
            max_block_bytes: bytes(config.max_block_bytes),
            max_block_age: duration(config.max_block_age),
            max_buffer_bytes: bytes(config.max_buffer_bytes),
            max_wal_bytes: Some(ByteSize(config.max_wal_bytes)),
            flush_on_shutdown: Some(config.flush_on_shutdown),
            upload_timeout: duration(config.upload_timeout),
            block_refresh_interval: duration(config.block_refresh_interval),
            footer_cache_bytes: Some(ByteSize(config.footer_cache_bytes)),
            bloom_false_positive_rate: Some(config.bloom_false_positive_rate),
            sql_timeout: duration(config.sql_timeout),
            sql_memory_limit: Some(ByteSize(config.sql_memory_limit)),
            sql_max_concurrent: Some(config.sql_max_concurrent),
            target: Some(config.target),
            compaction_interval: duration(config.compaction_interval),
            compaction_window: duration(config.compaction_window),
            compaction_target_bytes: Some(ByteSize(config.compaction_target_bytes)),
            compaction_max_inputs: Some(config.compaction_max_inputs),
            compaction_deletion_grace: duration(config.compaction_deletion_grace),
            compaction_leftover_grace: duration(config.compaction_leftover_grace),
            compaction_lease_ttl: duration(config.compaction_lease_ttl),
            compaction_concurrency: Some(config.compaction_concurrency),
            retention: duration(config.retention),
            tenant_retention: Some(
                config.tenant_retention.iter().map(|(t, d)| (t.clone(), HumanDuration(*d))).collect(),
            ),
        }
    }

    /// Reads and checks a settings file; an unknown key or a bad value is an error naming it.
    pub fn load(path: &std::path::Path) -> Result<Self, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        Self::parse(&text).map_err(|reason| ConfigError::Invalid { path: path.to_owned(), reason })
    }

    /// Parses settings from YAML text (an empty document means "all defaults").
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        serde_yaml_ng::from_str(text).map_err(|e| e.to_string())
    }

    /// The settings this file gives, on top of the defaults.
    pub fn apply(self, config: &mut ServeConfig) {
        let set = |target: &mut usize, value: Option<ByteSize>| {
            if let Some(ByteSize(bytes)) = value {
                *target = usize::try_from(bytes).unwrap_or(usize::MAX);
            }
        };
        if let Some(value) = self.data_dir {
            config.data_dir = value;
        }
        if self.storage.is_some() {
            config.storage = self.storage;
        }
        config.http_addr = self.http_addr.unwrap_or(config.http_addr);
        config.otlp_grpc_addr = self.otlp_grpc_addr.unwrap_or(config.otlp_grpc_addr);
        config.otlp_http_addr = self.otlp_http_addr.unwrap_or(config.otlp_http_addr);
        config.multitenancy = self.multitenancy.unwrap_or(config.multitenancy);
        set(&mut config.body_limits.max_compressed_bytes, self.max_request_bytes);
        set(&mut config.body_limits.max_decompressed_bytes, self.max_request_decompressed_bytes);
        config.read_timeout = self.read_timeout.map_or(config.read_timeout, |d| d.0);
        set(&mut config.max_block_bytes, self.max_block_bytes);
        config.max_block_age = self.max_block_age.map_or(config.max_block_age, |d| d.0);
        set(&mut config.max_buffer_bytes, self.max_buffer_bytes);
        config.max_wal_bytes = self.max_wal_bytes.map_or(config.max_wal_bytes, |b| b.0);
        config.flush_on_shutdown = self.flush_on_shutdown.unwrap_or(config.flush_on_shutdown);
        config.upload_timeout = self.upload_timeout.map_or(config.upload_timeout, |d| d.0);
        config.block_refresh_interval = self.block_refresh_interval.map_or(config.block_refresh_interval, |d| d.0);
        config.footer_cache_bytes = self.footer_cache_bytes.map_or(config.footer_cache_bytes, |b| b.0);
        config.bloom_false_positive_rate = self.bloom_false_positive_rate.unwrap_or(config.bloom_false_positive_rate);
        config.sql_timeout = self.sql_timeout.map_or(config.sql_timeout, |d| d.0);
        config.sql_memory_limit = self.sql_memory_limit.map_or(config.sql_memory_limit, |b| b.0);
        config.sql_max_concurrent = self.sql_max_concurrent.unwrap_or(config.sql_max_concurrent);
        config.target = self.target.unwrap_or(config.target);
        let duration = |target: &mut Duration, value: Option<HumanDuration>| {
            if let Some(HumanDuration(value)) = value {
                *target = value;
            }
        };
        duration(&mut config.compaction_interval, self.compaction_interval);
        duration(&mut config.compaction_window, self.compaction_window);
        config.compaction_target_bytes = self.compaction_target_bytes.map_or(config.compaction_target_bytes, |b| b.0);
        config.compaction_max_inputs = self.compaction_max_inputs.unwrap_or(config.compaction_max_inputs);
        duration(&mut config.compaction_deletion_grace, self.compaction_deletion_grace);
        duration(&mut config.compaction_leftover_grace, self.compaction_leftover_grace);
        duration(&mut config.compaction_lease_ttl, self.compaction_lease_ttl);
        config.compaction_concurrency = self.compaction_concurrency.unwrap_or(config.compaction_concurrency);
        duration(&mut config.retention, self.retention);
        if let Some(retention) = self.tenant_retention {
            config.tenant_retention.extend(retention.into_iter().map(|(tenant, d)| (tenant, d.0)));
        }
    }
}

/// A probability strictly between 0 and 1, as a bloom filter can be sized for.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FalsePositiveRate(pub f64);

impl FalsePositiveRate {
    /// Parses `0.00001`, `1e-5` or `0.001%`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let (number, scale) = match text.strip_suffix('%') {
            Some(number) => (number.trim(), 100.0),
            None => (text, 1.0),
        };
        let value: f64 = number.parse().map_err(|_| format!("{text:?} is not a number"))?;
        Self::new(value / scale)
    }

    /// Checks the range.
    pub fn new(value: f64) -> Result<Self, String> {
        if value > 0.0 && value < 1.0 {
            Ok(Self(value))
        } else {
            Err(format!("a false-positive rate must be between 0 and 1 (exclusive), got {value}"))
        }
    }
}

impl<'de> Deserialize<'de> for FalsePositiveRate {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(f64),
            Text(String),
        }
        match Raw::deserialize(deserializer)? {
            Raw::Number(value) => Self::new(value),
            Raw::Text(text) => Self::parse(&text),
        }
        .map_err(serde::de::Error::custom)
    }
}

impl Serialize for FalsePositiveRate {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_f64(self.0)
    }
}

/// A byte size written as a number of bytes or with a unit (`64MiB`, `4GiB`, `16MB`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ByteSize(pub u64);

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(u64),
            Text(String),
        }
        match Raw::deserialize(deserializer)? {
            Raw::Number(bytes) => Ok(Self(bytes)),
            Raw::Text(text) => parse_byte_size(&text).map(Self).map_err(serde::de::Error::custom),
        }
    }
}

impl Serialize for ByteSize {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(self.0)
    }
}

/// A duration written as text (`30s`, `5m`, `250ms`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        parse_duration(&text).map(Self).map_err(serde::de::Error::custom)
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&humantime::format_duration(self.0).to_string())
    }
}

/// Parses a byte size such as `134217728`, `128MiB`, `4GiB`, `512KiB` or `16MB` (decimal units).
pub fn parse_byte_size(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    let split = trimmed.find(|c: char| !c.is_ascii_digit()).unwrap_or(trimmed.len());
    let (digits, unit) = trimmed.split_at(split);
    let number: u64 = digits.parse().map_err(|_| format!("{text:?} is not a byte size such as 128MiB"))?;
    let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        other => return Err(format!("unknown unit {other:?} in {text:?}; use B, KiB, MiB, GiB, KB, MB or GB")),
    };
    number.checked_mul(multiplier).ok_or_else(|| format!("{text:?} is too large"))
}

/// Parses a duration such as `30s`, `5m`, `250ms` or `1h30m`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim()).map_err(|e| format!("{text:?} is not a duration such as 30s or 5m: {e}"))
}

/// Parses per-tenant retention as flags and environment variables give it: `team-a=30d,team-b=7d`.
pub fn parse_tenant_retention(text: &str) -> Result<BTreeMap<TenantId, HumanDuration>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(|entry| {
            let (tenant, duration) =
                entry.split_once('=').ok_or_else(|| format!("{entry:?} is not TENANT=DURATION, e.g. team-a=30d"))?;
            let tenant = TenantId::new(tenant.trim()).map_err(|e| format!("{entry:?}: {e}"))?;
            Ok((tenant, HumanDuration(parse_duration(duration)?)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_retention_parses_from_one_line_and_names_what_is_wrong() {
        let parsed = parse_tenant_retention("team-a=30d, team-b=12h,").unwrap();
        let days = |d: u64| HumanDuration(Duration::from_secs(d * 86_400));
        assert_eq!(parsed[&TenantId::new("team-a").unwrap()], days(30));
        assert_eq!(parsed[&TenantId::new("team-b").unwrap()], HumanDuration(Duration::from_secs(12 * 3600)));
        assert!(parse_tenant_retention("").unwrap().is_empty());
        assert!(parse_tenant_retention("team-a").unwrap_err().contains("TENANT=DURATION"));
        assert!(parse_tenant_retention("team-a=soon").unwrap_err().contains("not a duration"));
        assert!(parse_tenant_retention("../x=1d").unwrap_err().contains("../x"));
    }

    #[test]
    fn sizes_and_durations_parse_with_their_units() {
        assert_eq!(parse_byte_size("128MiB").unwrap(), 128 << 20);
        assert_eq!(parse_byte_size("42").unwrap(), 42);
        assert_eq!(parse_byte_size("16MB").unwrap(), 16_000_000);
        assert!(parse_byte_size("12 parsecs").unwrap_err().contains("parsecs"));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn a_config_file_sets_keys_and_refuses_unknown_ones_by_name() {
        let file = ConfigFile::parse(
            "storage: s3://traces/prod\nmultitenancy: true\nmax_block_bytes: 32MiB\nmax_wal_bytes: 1000\nmax_block_age: 90s\n",
        )
        .unwrap();
        let mut config = ServeConfig::default();
        file.apply(&mut config);
        assert_eq!(config.storage.as_deref(), Some("s3://traces/prod"));
        assert!(config.multitenancy);
        assert_eq!((config.max_block_bytes, config.max_wal_bytes), (32 << 20, 1000));
        assert_eq!(config.max_block_age, Duration::from_secs(90));
        assert_eq!(config.http_addr, default_http_addr(), "keys not in the file keep their defaults");

        let unknown = ConfigFile::parse("max_blok_bytes: 1MiB\n").unwrap_err();
        assert!(unknown.contains("max_blok_bytes"), "{unknown}");
        let bad = ConfigFile::parse("max_block_age: soon\n").unwrap_err();
        assert!(bad.contains("soon"), "{bad}");
        let bad = ConfigFile::parse("target: querier-ish\n").unwrap_err();
        assert!(bad.contains("querier-ish"), "{bad}");
        let bad = ConfigFile::parse("tenant_retention:\n  ../x: 1d\n").unwrap_err();
        assert!(bad.contains("tenant ID"), "{bad}");
        assert_eq!(ConfigFile::parse("").unwrap(), ConfigFile::default());
    }

    #[test]
    fn compaction_and_retention_come_from_the_file_with_per_tenant_overrides() {
        let file = ConfigFile::parse(
            "target: compactor\ncompaction_interval: 0s\ncompaction_target_bytes: 64MiB\nretention: 7d\n\
             tenant_retention:\n  team-a: 30d\n",
        )
        .unwrap();
        let mut config = ServeConfig::default();
        assert_eq!(config.retention, Duration::from_secs(14 * 86_400), "14 days by default");
        file.apply(&mut config);
        assert_eq!(config.target, Target::Compactor);
        let options = config.compaction_options();
        assert_eq!(options.interval, Duration::ZERO);
        assert_eq!(options.rules.target_bytes, 64 << 20);
        assert_eq!(options.rules.retention, Duration::from_secs(7 * 86_400));
        assert_eq!(options.tenant_retention[&TenantId::new("team-a").unwrap()], Duration::from_secs(30 * 86_400));
    }

    #[test]
    fn default_storage_is_the_blocks_folder_inside_the_data_dir() {
        let url = ServeConfig::default().storage_url().unwrap();
        assert!(url.starts_with("file:///"), "{url}");
        assert!(url.ends_with("/spanlake-data/blocks/"), "{url}");
        let explicit = ServeConfig { storage: Some("s3://b/p".into()), ..Default::default() };
        assert_eq!(explicit.storage_url().unwrap(), "s3://b/p");
    }

    #[test]
    fn the_wal_lives_in_the_data_dir() {
        let options = ServeConfig::default().ingest_options();
        assert_eq!(options.wal_dir, PathBuf::from("spanlake-data/wal"));
    }
}
