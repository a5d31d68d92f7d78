//! An object store that fails or stalls on demand, wrapped around a real one: writes and reads
//! go through untouched while healthy, fail with an error while failing, and hang while stalling.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU8, Ordering};

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore, PutMultipartOptions,
    PutOptions, PutPayload, PutResult, RenameOptions, Result,
};

/// What the store does with the next request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Fault {
    Healthy = 0,
    Failing = 1,
    Stalling = 2,
}

/// The wrapper; switch its behaviour with [`FaultyStore::set`].
#[derive(Debug)]
pub struct FaultyStore {
    inner: Arc<dyn ObjectStore>,
    fault: AtomicU8,
    /// Writes (puts, multipart starts, deletes) still allowed before every later one fails, as if the
    /// process died there.
    writes_left: AtomicI64,
}

impl fmt::Display for FaultyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "faulty({})", self.inner)
    }
}

impl FaultyStore {
    pub fn new(inner: Arc<dyn ObjectStore>) -> Arc<Self> {
        Arc::new(Self { inner, fault: AtomicU8::new(Fault::Healthy as u8), writes_left: AtomicI64::new(i64::MAX) })
    }

    pub fn set(&self, fault: Fault) {
        self.fault.store(fault as u8, Ordering::SeqCst);
    }

    /// Lets `writes` more writes through, then fails every later one (`i64::MAX`: no limit).
    pub fn fail_writes_after(&self, writes: i64) {
        self.writes_left.store(writes, Ordering::SeqCst);
    }

    /// Whether a write limit was reached since it was set.
    pub fn writes_exhausted(&self) -> bool {
        self.writes_left.load(Ordering::SeqCst) < 0
    }

    fn write_gate(&self) -> Result<()> {
        if self.writes_left.fetch_sub(1, Ordering::SeqCst) <= 0 {
            return Err(object_store::Error::Generic { store: "faulty", source: "injected write failure".into() });
        }
        Ok(())
    }

    async fn gate(&self) -> Result<()> {
        match self.fault.load(Ordering::SeqCst) {
            1 => Err(object_store::Error::Generic { store: "faulty", source: "injected failure".into() }),
            2 => std::future::pending().await,
            _ => Ok(()),
        }
    }
}

#[async_trait]
impl ObjectStore for FaultyStore {
    async fn put_opts(&self, location: &Path, payload: PutPayload, opts: PutOptions) -> Result<PutResult> {
        self.gate().await?;
        self.write_gate()?;
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(&self, location: &Path, opts: PutMultipartOptions) -> Result<Box<dyn MultipartUpload>> {
        self.gate().await?;
        self.write_gate()?;
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.gate().await?;
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        self.gate().await?;
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(&self, locations: BoxStream<'static, Result<Path>>) -> BoxStream<'static, Result<Path>> {
        use futures::StreamExt;
        if let Err(error) = self.write_gate() {
            return futures::stream::once(async move { Err(error) }).boxed();
        }
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.gate().await?;
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.gate().await?;
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        self.gate().await?;
        self.inner.rename_opts(from, to, options).await
    }
}
