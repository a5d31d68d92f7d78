//! How DataFusion reads a block: footers and page indexes come from the querier's footer cache (shared
//! with trace-by-ID, so a warm block costs no footer read in either), and data pages go through the
//! tenant-scoped store (counted and coalesced like every other read).

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::{ParquetFileMetrics, ParquetFileReaderFactory};
use datafusion::error::{DataFusionError, Result};
use datafusion::physical_plan::metrics::ExecutionPlanMetricsSet;
use futures::FutureExt;
use futures::future::BoxFuture;
use object_store::ObjectStore;
use parquet::arrow::arrow_reader::ArrowReaderOptions;
use parquet::arrow::async_reader::AsyncFileReader;
use parquet::errors::ParquetError;
use parquet::file::metadata::ParquetMetaData;

use crate::query::{CatalogBlock, FooterCache};
use crate::storage::Storage;
use crate::storage::block::{BlockFileReader, ReadTally};

/// Makes one [`BlockReader`] per block a scan opens. Each `PartitionedFile` carries its catalogue entry.
#[derive(Debug)]
pub struct BlockReaderFactory {
    /// The tenant's blocks prefix; file paths are relative to it.
    tenant_store: Arc<dyn ObjectStore>,
    storage: Storage,
    footers: Arc<FooterCache>,
}

impl BlockReaderFactory {
    /// Readers of blocks under `tenant_store`, with footers from `footers`.
    pub fn new(tenant_store: Arc<dyn ObjectStore>, storage: Storage, footers: Arc<FooterCache>) -> Self {
        Self { tenant_store, storage, footers }
    }
}

impl ParquetFileReaderFactory for BlockReaderFactory {
    fn create_reader(
        &self,
        partition_index: usize,
        file: PartitionedFile,
        _metadata_size_hint: Option<usize>,
        metrics: &ExecutionPlanMetricsSet,
    ) -> Result<Box<dyn AsyncFileReader + Send>> {
        let block = file.extension::<Arc<CatalogBlock>>().cloned().ok_or_else(|| {
            DataFusionError::Internal(format!("{} was planned without its block", file.object_meta.location))
        })?;
        let location = file.object_meta.location.clone();
        let metrics = ParquetFileMetrics::new(partition_index, location.as_ref(), metrics);
        // The footer is never fetched through `bytes`: it comes from the cache.
        let bytes = BlockFileReader::new(self.tenant_store.clone(), location, file.object_meta.size, 0);
        Ok(Box::new(BlockReader {
            bytes,
            block,
            storage: self.storage.clone(),
            footers: self.footers.clone(),
            metrics,
        }))
    }
}

/// One block's reader inside a DataFusion scan.
struct BlockReader {
    bytes: BlockFileReader,
    block: Arc<CatalogBlock>,
    storage: Storage,
    footers: Arc<FooterCache>,
    metrics: ParquetFileMetrics,
}

impl AsyncFileReader for BlockReader {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        self.metrics.bytes_scanned.add((range.end - range.start) as usize);
        self.bytes.get_bytes(range)
    }

    fn get_byte_ranges(&mut self, ranges: Vec<Range<u64>>) -> BoxFuture<'_, parquet::errors::Result<Vec<Bytes>>> {
        self.metrics.bytes_scanned.add(ranges.iter().map(|r| (r.end - r.start) as usize).sum());
        self.bytes.get_byte_ranges(ranges)
    }

    fn get_metadata<'a>(
        &'a mut self,
        _options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, parquet::errors::Result<Arc<ParquetMetaData>>> {
        async move {
            let tally = Arc::new(ReadTally::default());
            let footer = self
                .footers
                .get(&self.storage, &self.block.meta, &tally)
                .await
                .map_err(|error| ParquetError::External(Box::new(error)))?;
            Ok(footer.parquet().clone())
        }
        .boxed()
    }
}
