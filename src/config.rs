//! Server settings, declared once with their defaults and a doc line each.
//!
//! Owns the meaning and defaults of every setting; the command line (`main.rs`) fills it in. Calls
//! `storage` only to turn a folder into a storage URL.

use std::net::SocketAddr;
use std::path::PathBuf;

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
}

/// `./spanlake-data`, the embedded default (CONTRACTS §1).
pub fn default_data_dir() -> PathBuf {
    PathBuf::from("spanlake-data")
}

/// `0.0.0.0:3200`, Tempo's query port.
pub fn default_http_addr() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 3200))
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self { data_dir: default_data_dir(), storage: None, http_addr: default_http_addr() }
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_storage_is_the_blocks_folder_inside_the_data_dir() {
        let url = ServeConfig::default().storage_url().unwrap();
        assert!(url.starts_with("file:///"), "{url}");
        assert!(url.ends_with("/spanlake-data/blocks/"), "{url}");
        let explicit = ServeConfig { storage: Some("s3://b/p".into()), ..Default::default() };
        assert_eq!(explicit.storage_url().unwrap(), "s3://b/p");
    }
}
