//! Object storage: where blocks live, how they are laid out, written, listed, read and deleted.
//!
//! Owns the object store handle (`file://`, `s3://`, `memory://`), the request counters around it, the
//! block format (Parquet data + trace-ID bloom + metadata written last as the commit point) and the
//! per-tenant block listing. Calls `ids` and `spans`; must never call ingest, query or api (they call it).

pub mod block;
pub mod blocks;
pub mod instrumented;
pub mod layout;
mod location;

use std::sync::Arc;

use object_store::ObjectStore;

pub use block::{
    BlockMeta, BlockSidecar, BlockWriteOptions, EncodedBlock, FORMAT_VERSION, TraceBloom, commit_block, encode_block,
    read_encoded, upload_block, upload_spooled_objects,
};
pub use blocks::{
    BlockListing, Replacements, UncommittedBlock, delete_block, delete_leftover, list_blocks, list_tenants,
    read_block_meta, replaced_blocks, replacements,
};
pub use instrumented::{InstrumentedStore, RangeReads, RequestCounts};
pub use location::{StorageLocation, UrlProblem};

/// Everything that can go wrong between spanlake and its object store. One enum for the module; the API
/// layer maps it to HTTP status codes in one place.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    #[error("invalid storage URL {url:?}: {source}")]
    InvalidUrl { url: String, source: UrlProblem },
    #[error("object store: {0}")]
    ObjectStore(#[from] object_store::Error),
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    #[error(transparent)]
    SpanFormat(#[from] crate::spans::SpanFormatError),
    #[error("block {block} uses format version {found}; this spanlake reads versions 1 to {supported}")]
    UnsupportedFormatVersion { block: String, found: u64, supported: u32 },
    #[error("block metadata {path} is not valid: {source}")]
    InvalidMeta { path: String, source: serde_json::Error },
    #[error("bloom filter of block {block} is not valid: {source}")]
    InvalidBloom { block: String, source: block::BloomError },
    #[error("cannot write an empty block")]
    EmptyBlock,
    /// A thread encoding a block's columns panicked; the block is not written (and its spans stay in
    /// the write-ahead log to be written again).
    #[error("a block-encoding thread panicked")]
    EncodeWorkerPanicked,
    #[error("block {0} was not found")]
    BlockNotFound(String),
    #[error("local storage folder {path}: {source}")]
    LocalFolder { path: String, source: std::io::Error },
    #[error("object store did not answer within {0:?}")]
    Timeout(std::time::Duration),
    #[error("background task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    /// A local file holding block data on its way to the store (a compaction's output) could not be read.
    #[error("local block file: {0}")]
    Spool(#[source] std::io::Error),
}

impl StorageError {
    /// True when the error is in a block's own objects (a format version this build does not read,
    /// metadata or bloom that do not parse) and retrying cannot help: such a block is skipped, counted
    /// and logged, never a reason to stop work on the blocks and tenants after it.
    pub fn is_unreadable_block(&self) -> bool {
        matches!(
            self,
            StorageError::UnsupportedFormatVersion { .. }
                | StorageError::InvalidMeta { .. }
                | StorageError::InvalidBloom { .. }
        )
    }

    /// True when the failure is the block's own and would come back on every attempt (its rows cannot be
    /// encoded, its objects are unreadable or refused for their names), not the store's (unreachable,
    /// overloaded, timing out), which retrying outlasts.
    pub fn is_block_fault(&self) -> bool {
        match self {
            StorageError::Parquet(_)
            | StorageError::Arrow(_)
            | StorageError::SpanFormat(_)
            | StorageError::EmptyBlock
            | StorageError::EncodeWorkerPanicked => true,
            StorageError::ObjectStore(error) => matches!(error, object_store::Error::InvalidPath { .. }),
            other => other.is_unreadable_block(),
        }
    }

    /// The `reason` label of [`telemetry::BLOCKS_SKIPPED`](crate::telemetry::BLOCKS_SKIPPED) for an
    /// unreadable block.
    pub fn skip_reason(&self) -> &'static str {
        match self {
            StorageError::UnsupportedFormatVersion { .. } => "format_version",
            StorageError::InvalidBloom { .. } => "bloom",
            _ => "metadata",
        }
    }

    /// What failed, for a reply to a client: the kind of failure without where it happened (local paths,
    /// object names), which only the server's log gets (issue 26, item 18).
    pub fn public_message(&self) -> String {
        match self {
            StorageError::ObjectStore(error) => format!("object store: {}", object_store_failure(error)),
            StorageError::InvalidMeta { .. } => "a block's metadata is not valid".to_owned(),
            StorageError::LocalFolder { source, .. } => format!("local storage folder: {}", source.kind()),
            StorageError::Spool(source) => format!("local block file: {}", source.kind()),
            // Parquet's reader wraps the store's failures (which name the object or local path).
            StorageError::Parquet(parquet::errors::ParquetError::External(inner)) => {
                match inner.downcast_ref::<object_store::Error>() {
                    Some(error) => format!("object store: {}", object_store_failure(error)),
                    None => "a block could not be decoded".to_owned(),
                }
            }
            StorageError::Parquet(_) => "a block could not be decoded".to_owned(),
            other => other.to_string(),
        }
    }
}

/// What an object store failure was, without the object's name or a local path.
pub fn object_store_failure(error: &object_store::Error) -> String {
    match error {
        object_store::Error::NotFound { .. } => "an object was not found".to_owned(),
        object_store::Error::AlreadyExists { .. } => "an object already exists".to_owned(),
        object_store::Error::Precondition { .. } => "a conditional request failed".to_owned(),
        object_store::Error::PermissionDenied { .. } => "permission denied".to_owned(),
        object_store::Error::Unauthenticated { .. } => "not authenticated".to_owned(),
        object_store::Error::Generic { store, .. } => format!("a {store} request failed"),
        _ => "a request failed".to_owned(),
    }
}

/// A handle on the object store holding every tenant's blocks, with request counters around it.
/// Cheap to clone; share one per process so the counters add up.
#[derive(Clone, Debug)]
pub struct Storage {
    store: Arc<InstrumentedStore>,
    location: StorageLocation,
}

impl Storage {
    /// Opens the store a URL names: `file:///path` (the embedded default), `s3://bucket/prefix`
    /// (configured from the standard AWS environment variables) or `memory://` (tests only).
    pub fn open(url: &str) -> Result<Self, StorageError> {
        Self::open_with_options(url, &[])
    }

    /// Like [`Storage::open`], with `object_store` configuration keys (`aws_endpoint`, `aws_region`…)
    /// applied over the environment.
    pub fn open_with_options(url: &str, options: &[(String, String)]) -> Result<Self, StorageError> {
        let location = StorageLocation::parse(url)?;
        let inner = location.build(options)?;
        let range_reads = match location {
            StorageLocation::S3 { .. } => RangeReads::Coalesce {
                gap_bytes: instrumented::COALESCE_GAP_BYTES,
                stretch_gap_bytes: instrumented::STRETCH_GAP_BYTES,
            },
            _ => RangeReads::Exact,
        };
        Ok(Self { store: Arc::new(InstrumentedStore::new(inner, range_reads)), location })
    }

    /// Wraps an existing object store, e.g. a fault-injecting one in tests.
    pub fn from_store(store: Arc<dyn ObjectStore>, description: &str, range_reads: RangeReads) -> Self {
        Self {
            store: Arc::new(InstrumentedStore::new(store, range_reads)),
            location: StorageLocation::Custom(description.to_owned()),
        }
    }

    /// The object store, counted. Paths are relative to the storage root (tenant folders at the top).
    pub fn object_store(&self) -> Arc<dyn ObjectStore> {
        self.store.clone()
    }

    /// Requests made so far through this handle, by operation.
    pub fn request_counts(&self) -> RequestCounts {
        self.store.counts()
    }

    /// How range reads reach the store (exact on local folders, coalesced on S3).
    pub fn range_reads(&self) -> RangeReads {
        self.store.range_reads()
    }

    /// Where this storage points, for logs.
    pub fn location(&self) -> &StorageLocation {
        &self.location
    }
}
