//! Server settings, declared once with their defaults and a doc line each.
//!
//! Owns the meaning and defaults of every setting; the command line (`main.rs`) fills it in. Calls
//! `storage` only to turn a folder into a storage URL, and hands `ingest` and `receive` their options.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::ingest::IngestOptions;
use crate::receive::BodyLimits;
use crate::storage::{StorageError, StorageLocation};

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
        Self {
            data_dir: default_data_dir(),
            storage: None,
            http_addr: default_http_addr(),
            otlp_grpc_addr: default_otlp_grpc_addr(),
            otlp_http_addr: default_otlp_http_addr(),
            multitenancy: false,
            body_limits: BodyLimits::default(),
            max_block_bytes: ingest.max_block_bytes,
            max_block_age: ingest.max_block_age,
            max_buffer_bytes: ingest.max_buffer_bytes,
            max_wal_bytes: ingest.max_wal_bytes,
            flush_on_shutdown: ingest.flush_on_shutdown,
            upload_timeout: ingest.upload_timeout,
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
            ..IngestOptions::new(self.data_dir.join("wal"))
        }
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

#[cfg(test)]
mod tests {
    use super::*;

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
