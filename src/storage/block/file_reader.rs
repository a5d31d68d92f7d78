//! Our `AsyncFileReader` for a block's Parquet object: range reads go through the instrumented store
//! (counted and coalesced, see `instrumented.rs`), and the footer is fetched with a size hint because
//! the block metadata already tells us the file size.

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use futures::FutureExt;
use futures::future::BoxFuture;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::arrow::arrow_reader::ArrowReaderOptions;
use parquet::arrow::async_reader::AsyncFileReader;
use parquet::errors::{ParquetError, Result};
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};

/// Reads one Parquet object of known size.
#[derive(Clone, Debug)]
pub struct BlockFileReader {
    store: Arc<dyn ObjectStore>,
    path: Path,
    file_size: u64,
    footer_hint: usize,
}

impl BlockFileReader {
    /// A reader of `path`, which is `file_size` bytes long; the first footer read fetches `footer_hint`
    /// bytes from the end.
    pub fn new(store: Arc<dyn ObjectStore>, path: Path, file_size: u64, footer_hint: usize) -> Self {
        Self { store, path, file_size, footer_hint }
    }
}

fn external(error: object_store::Error) -> ParquetError {
    ParquetError::External(Box::new(error))
}

impl AsyncFileReader for BlockFileReader {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, Result<Bytes>> {
        async move { self.store.get_range(&self.path, range).await.map_err(external) }.boxed()
    }

    fn get_byte_ranges(&mut self, ranges: Vec<Range<u64>>) -> BoxFuture<'_, Result<Vec<Bytes>>> {
        async move { self.store.get_ranges(&self.path, &ranges).await.map_err(external) }.boxed()
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
