//! An object store wrapper that counts every request and byte, and coalesces range reads.
//!
//! The counters are how tests and `/metrics` prove that pruning works ("an unknown trace ID costs zero
//! requests"). Range reads follow a [`RangeReads`] policy: a local folder or memory store reads exactly
//! the asked ranges in one call (one file open, no wasted bytes); a remote store merges ranges into as
//! few GETs as it can without reading much more than asked. A trace lookup asks for one small page of
//! each of ~40 columns of a row group: merged only across 64 KiB gaps that is 3–5 GETs, because the big
//! columns' chunks lie between the pages; merged across gaps up to 1 MiB it is one GET that reads a few
//! hundred KB more. On S3 a request costs money and a round trip while transfer inside a region is free,
//! so one GET wins.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore, ObjectStoreExt,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, Result,
};

/// Remote stores always merge ranges closer than this.
pub const COALESCE_GAP_BYTES: u64 = 64 * 1024;
/// … and keep merging the closest ranges, across gaps up to this, until one request is left.
pub const STRETCH_GAP_BYTES: u64 = 1024 * 1024;

/// How a batch of range reads (one Parquet fetch) reaches the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RangeReads {
    /// Hand all ranges to the store in one call, counted as one request: right for local files and
    /// memory, where a "request" costs a system call, not a round trip.
    Exact,
    /// Merge ranges closer than `gap_bytes`; then merge the closest remaining neighbours across gaps up
    /// to `stretch_gap_bytes` until a single GET is left (or no gap is small enough). One GET per merged
    /// range, fetched concurrently: right for S3-like stores.
    Coalesce { gap_bytes: u64, stretch_gap_bytes: u64 },
}

/// Request counters, by operation. Totals since the store was opened.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RequestCounts {
    pub get: u64,
    pub get_bytes: u64,
    pub head: u64,
    pub put: u64,
    pub put_bytes: u64,
    pub list: u64,
    pub delete: u64,
    pub copy: u64,
}

impl RequestCounts {
    /// All requests of any kind.
    pub fn total(&self) -> u64 {
        self.get + self.head + self.put + self.list + self.delete + self.copy
    }

    /// Requests and bytes made between `earlier` and `self`.
    pub fn since(&self, earlier: &RequestCounts) -> RequestCounts {
        RequestCounts {
            get: self.get - earlier.get,
            get_bytes: self.get_bytes - earlier.get_bytes,
            head: self.head - earlier.head,
            put: self.put - earlier.put,
            put_bytes: self.put_bytes - earlier.put_bytes,
            list: self.list - earlier.list,
            delete: self.delete - earlier.delete,
            copy: self.copy - earlier.copy,
        }
    }
}

#[derive(Debug, Default)]
struct Counters {
    get: AtomicU64,
    get_bytes: AtomicU64,
    head: AtomicU64,
    put: AtomicU64,
    put_bytes: AtomicU64,
    list: AtomicU64,
    delete: AtomicU64,
    copy: AtomicU64,
}

fn bump(counter: &AtomicU64, by: u64) {
    counter.fetch_add(by, Ordering::Relaxed);
}

/// Counts requests to the wrapped store and coalesces range reads with [`COALESCE_GAP_BYTES`].
#[derive(Debug)]
pub struct InstrumentedStore {
    inner: Arc<dyn ObjectStore>,
    counters: Arc<Counters>,
    range_reads: RangeReads,
}

impl InstrumentedStore {
    /// Wraps a store with fresh counters.
    pub fn new(inner: Arc<dyn ObjectStore>, range_reads: RangeReads) -> Self {
        Self { inner, counters: Arc::default(), range_reads }
    }

    /// The range-read policy in force.
    pub fn range_reads(&self) -> RangeReads {
        self.range_reads
    }

    /// A snapshot of the counters.
    pub fn counts(&self) -> RequestCounts {
        let c = &self.counters;
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        RequestCounts {
            get: load(&c.get),
            get_bytes: load(&c.get_bytes),
            head: load(&c.head),
            put: load(&c.put),
            put_bytes: load(&c.put_bytes),
            list: load(&c.list),
            delete: load(&c.delete),
            copy: load(&c.copy),
        }
    }
}

impl fmt::Display for InstrumentedStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Instrumented({})", self.inner)
    }
}

/// Counts the parts of a multipart upload as puts.
#[derive(Debug)]
struct CountedUpload {
    inner: Box<dyn MultipartUpload>,
    counters: Arc<Counters>,
}

#[async_trait]
impl MultipartUpload for CountedUpload {
    fn put_part(&mut self, data: PutPayload) -> object_store::UploadPart {
        bump(&self.counters.put, 1);
        bump(&self.counters.put_bytes, data.content_length() as u64);
        self.inner.put_part(data)
    }

    async fn complete(&mut self) -> Result<PutResult> {
        bump(&self.counters.put, 1);
        self.inner.complete().await
    }

    async fn abort(&mut self) -> Result<()> {
        bump(&self.counters.delete, 1);
        self.inner.abort().await
    }
}

/// Merged GETs of one batch in flight at once.
const MAX_CONCURRENT_GETS: usize = 8;

/// The GETs that serve `ranges`: sorted, overlapping and near ranges merged (see [`RangeReads::Coalesce`]).
/// Every asked range lies inside exactly one returned range.
pub fn merge_ranges(ranges: &[Range<u64>], gap_bytes: u64, stretch_gap_bytes: u64) -> Vec<Range<u64>> {
    let mut sorted: Vec<Range<u64>> = ranges.iter().filter(|r| r.start < r.end).cloned().collect();
    sorted.sort_by_key(|r| r.start);
    let mut merged: Vec<Range<u64>> = Vec::with_capacity(sorted.len());
    for range in sorted {
        match merged.last_mut() {
            Some(last) if range.start <= last.end.saturating_add(gap_bytes) => last.end = last.end.max(range.end),
            _ => merged.push(range),
        }
    }
    while merged.len() > 1 {
        let Some((index, gap)) =
            merged.windows(2).map(|pair| pair[1].start - pair[0].end).enumerate().min_by_key(|(_, gap)| *gap)
        else {
            break;
        };
        if gap > stretch_gap_bytes {
            break;
        }
        let next = merged.remove(index + 1);
        merged[index].end = merged[index].end.max(next.end);
    }
    merged
}

#[async_trait]
impl ObjectStore for InstrumentedStore {
    async fn put_opts(&self, location: &Path, payload: PutPayload, opts: PutOptions) -> Result<PutResult> {
        bump(&self.counters.put, 1);
        bump(&self.counters.put_bytes, payload.content_length() as u64);
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(&self, location: &Path, opts: PutMultipartOptions) -> Result<Box<dyn MultipartUpload>> {
        bump(&self.counters.put, 1);
        let inner = self.inner.put_multipart_opts(location, opts).await?;
        Ok(Box::new(CountedUpload { inner, counters: self.counters.clone() }))
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        let is_head = options.head;
        bump(if is_head { &self.counters.head } else { &self.counters.get }, 1);
        let result = self.inner.get_opts(location, options).await?;
        if !is_head {
            bump(&self.counters.get_bytes, result.range.end - result.range.start);
        }
        Ok(result)
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        tracing::trace!(%location, ?ranges, "range read");
        match self.range_reads {
            RangeReads::Exact => {
                bump(&self.counters.get, 1);
                let parts = self.inner.get_ranges(location, ranges).await?;
                bump(&self.counters.get_bytes, parts.iter().map(|part| part.len() as u64).sum());
                Ok(parts)
            }
            RangeReads::Coalesce { gap_bytes, stretch_gap_bytes } => {
                let merged = merge_ranges(ranges, gap_bytes, stretch_gap_bytes);
                let fetched: Vec<Bytes> = futures::stream::iter(merged.iter().cloned())
                    .map(|range| self.get_range(location, range))
                    .buffered(MAX_CONCURRENT_GETS)
                    .try_collect()
                    .await?;
                Ok(ranges
                    .iter()
                    .map(|range| {
                        if range.start >= range.end {
                            return Bytes::new();
                        }
                        let index = merged.partition_point(|m| m.end < range.end);
                        let (start, bytes) = (merged[index].start, &fetched[index]);
                        bytes.slice((range.start - start) as usize..(range.end - start) as usize)
                    })
                    .collect())
            }
        }
    }

    fn delete_stream(&self, locations: BoxStream<'static, Result<Path>>) -> BoxStream<'static, Result<Path>> {
        let counters = self.counters.clone();
        let counted = locations.inspect(move |_| bump(&counters.delete, 1)).boxed();
        self.inner.delete_stream(counted)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        bump(&self.counters.list, 1);
        self.inner.list(prefix)
    }

    fn list_with_offset(&self, prefix: Option<&Path>, offset: &Path) -> BoxStream<'static, Result<ObjectMeta>> {
        bump(&self.counters.list, 1);
        self.inner.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        bump(&self.counters.list, 1);
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        bump(&self.counters.copy, 1);
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        bump(&self.counters.copy, 1);
        self.inner.rename_opts(from, to, options).await
    }
}

#[cfg(test)]
mod tests {
    use std::ops::Range;

    use super::merge_ranges;

    #[test]
    fn near_ranges_merge_then_the_closest_merge_until_one_request_within_the_stretch() {
        // 64 KiB gap: the first two merge at once; the others are 200 KB apart.
        let ranges = [0..10, 100..200, 200_000..200_100, 400_000..400_100];
        assert_eq!(merge_ranges(&ranges, 64 * 1024, 0), [0..200, 200_000..200_100, 400_000..400_100]);
        assert_eq!(merge_ranges(&ranges, 64 * 1024, 1 << 20), vec![Range { start: 0, end: 400_100 }]);
        // Past the stretch, the far range stays its own request.
        let far = [0..10, 100..200, 3_000_000..3_000_010];
        assert_eq!(merge_ranges(&far, 64 * 1024, 1 << 20), [0..200, 3_000_000..3_000_010]);
        // Unsorted and overlapping input; every asked range is inside one output range.
        let messy = [500..600, 0..100, 50..550, 10_000_000..10_000_001];
        let merged = merge_ranges(&messy, 0, 0);
        assert_eq!(merged, [0..600, 10_000_000..10_000_001]);
        assert!(messy.iter().all(|r| merged.iter().any(|m| m.start <= r.start && r.end <= m.end)));
        assert!(merge_ranges(&[], 1, 1).is_empty());
    }
}
