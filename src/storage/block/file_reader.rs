//! Our `AsyncFileReader` for a block's Parquet object: range reads go through the instrumented store
//! (counted and coalesced, see `instrumented.rs`), and the footer is fetched with a size hint because
//! the block metadata already tells us the file size.

use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use futures::FutureExt;
use futures::future::BoxFuture;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::arrow::arrow_reader::ArrowReaderOptions;
use parquet::arrow::async_reader::AsyncFileReader;
use parquet::errors::{ParquetError, Result};
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};

/// What one reader fetched: the cost of one lookup in one block, reported back to the client (Tempo's
/// `inspectedBytes` / `backendReads`) independently of every other request the store serves meanwhile.
#[derive(Debug, Default)]
pub struct ReadTally {
    reads: AtomicU64,
    bytes: AtomicU64,
}

impl ReadTally {
    fn add(&self, reads: u64, bytes: u64) {
        self.reads.fetch_add(reads, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Read calls made (one batch of ranges is one call) and bytes fetched.
    pub fn totals(&self) -> (u64, u64) {
        (self.reads.load(Ordering::Relaxed), self.bytes.load(Ordering::Relaxed))
    }
}

/// Reads one Parquet object of known size.
#[derive(Clone, Debug)]
pub struct BlockFileReader {
    store: Arc<dyn ObjectStore>,
    path: Path,
    file_size: u64,
    footer_hint: usize,
    tally: Arc<ReadTally>,
}

impl BlockFileReader {
    /// A reader of `path`, which is `file_size` bytes long; the first footer read fetches `footer_hint`
    /// bytes from the end.
    pub fn new(store: Arc<dyn ObjectStore>, path: Path, file_size: u64, footer_hint: usize) -> Self {
        Self { store, path, file_size, footer_hint, tally: Arc::default() }
    }

    /// Adds what this reader fetches to `tally`.
    pub fn with_tally(mut self, tally: Arc<ReadTally>) -> Self {
        self.tally = tally;
        self
    }
}

fn external(error: object_store::Error) -> ParquetError {
    ParquetError::External(Box::new(error))
}

impl AsyncFileReader for BlockFileReader {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, Result<Bytes>> {
        async move {
            let bytes = self.store.get_range(&self.path, range).await.map_err(external)?;
            self.tally.add(1, bytes.len() as u64);
            Ok(bytes)
        }
        .boxed()
    }

    fn get_byte_ranges(&mut self, ranges: Vec<Range<u64>>) -> BoxFuture<'_, Result<Vec<Bytes>>> {
        async move {
            let parts = self.store.get_ranges(&self.path, &ranges).await.map_err(external)?;
            self.tally.add(1, parts.iter().map(|part| part.len() as u64).sum());
            Ok(parts)
        }
        .boxed()
    }

    fn get_metadata<'a>(
        &'a mut self,
        options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, Result<Arc<ParquetMetaData>>> {
        async move {
            let hint = self.footer_hint.min(self.file_size as usize);
            let file_size = self.file_size;
            let metadata = ParquetMetaDataReader::new()
                .with_arrow_reader_options(options)
                .with_prefetch_hint(Some(hint))
                .load_and_finish(self, file_size)
                .await?;
            Ok(Arc::new(metadata))
        }
        .boxed()
    }
}
