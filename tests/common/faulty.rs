//! An object store that fails or stalls on demand, wrapped around a real one: writes and reads
//! go through untouched while healthy, fail with an error while failing, and hang while stalling.
//! A test can also hold writes and let them through one at a time, to look at every state a flush or
//! a compaction passes through (see [`FaultyStore::hold_writes`]).

use std::fmt;
use std::ops::Range;
use std::sync::atomic::{AtomicI64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

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
    /// Shared with delete streams, which outlive the call that made them.
    held: Arc<HeldWrites>,
    /// Requests hanging right now because the store is stalling.
    stalled: AtomicUsize,
    /// Writes of objects under this prefix fail, whatever `fault` says (one tenant's objects refused).
    refused_prefix: std::sync::Mutex<Option<String>>,
}

/// Counts a request as stalled for as long as it hangs (its future is dropped when its caller gives up).
struct Stalled<'a>(&'a AtomicUsize);

impl<'a> Stalled<'a> {
    fn enter(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        Self(count)
    }
}

impl Drop for Stalled<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Writes waiting for the test's permission, while [`FaultyStore::hold_writes`] is in force.
#[derive(Debug, Default)]
struct HeldWrites {
    /// `Some` while writes are held: one permit per write the test lets through.
    permits: Mutex<Option<Arc<tokio::sync::Semaphore>>>,
    waiting: AtomicUsize,
}

impl HeldWrites {
    async fn pass(&self) {
        let permits = self.permits.lock().unwrap().clone();
        if let Some(permits) = permits {
            self.waiting.fetch_add(1, Ordering::SeqCst);
            // Closed by `release_writes`: every waiting write goes through.
            if let Ok(permit) = permits.acquire().await {
                permit.forget();
            }
            self.waiting.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

impl fmt::Display for FaultyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "faulty({})", self.inner)
    }
}

impl FaultyStore {
    pub fn new(inner: Arc<dyn ObjectStore>) -> Arc<Self> {
        Arc::new(Self {
            inner,
            fault: AtomicU8::new(Fault::Healthy as u8),
            writes_left: AtomicI64::new(i64::MAX),
            held: Arc::default(),
            stalled: AtomicUsize::new(0),
            refused_prefix: std::sync::Mutex::new(None),
        })
    }

    /// Requests hanging right now because the store is stalling: while it is above zero, whatever made
    /// the request (a lookup, a flush) is stopped in the middle.
    pub fn requests_stalled(&self) -> usize {
        self.stalled.load(Ordering::SeqCst)
    }

    /// From now on every write (put, multipart start, delete, copy, rename) waits until [`FaultyStore::allow_writes`]
    /// lets it through; reads are not held.
    pub fn hold_writes(&self) {
        *self.held.permits.lock().unwrap() = Some(Arc::new(tokio::sync::Semaphore::new(0)));
    }

    /// Lets `writes` held writes through (now, or as they arrive).
    pub fn allow_writes(&self, writes: usize) {
        if let Some(permits) = &*self.held.permits.lock().unwrap() {
            permits.add_permits(writes);
        }
    }

    /// Writes waiting for [`FaultyStore::allow_writes`] right now. While it is above zero, whatever
    /// made the write (a flush, a merge) is stopped in the middle and stays there until the test acts.
    pub fn writes_waiting(&self) -> usize {
        self.held.waiting.load(Ordering::SeqCst)
    }

    /// Ends [`FaultyStore::hold_writes`]: waiting and later writes go through.
    pub fn release_writes(&self) {
        if let Some(permits) = self.held.permits.lock().unwrap().take() {
            permits.close();
        }
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

    /// Makes every write of an object whose name starts with `prefix` fail, as a store refusing one
    /// block's objects would, while the rest of the store works.
    pub fn refuse_writes_under(&self, prefix: &str) {
        *self.refused_prefix.lock().unwrap() = Some(prefix.to_owned());
    }

    fn prefix_gate(&self, location: &Path) -> Result<()> {
        let refused = self.refused_prefix.lock().unwrap();
        if refused.as_deref().is_some_and(|prefix| location.as_ref().starts_with(prefix)) {
            return Err(object_store::Error::Generic {
                store: "faulty",
                source: "injected refusal of this object".into(),
            });
        }
        Ok(())
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
            2 => {
                let _stalled = Stalled::enter(&self.stalled);
                std::future::pending().await
            }
            _ => Ok(()),
        }
    }
}

#[async_trait]
impl ObjectStore for FaultyStore {
    async fn put_opts(&self, location: &Path, payload: PutPayload, opts: PutOptions) -> Result<PutResult> {
        self.held.pass().await;
        self.gate().await?;
        self.prefix_gate(location)?;
        self.write_gate()?;
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(&self, location: &Path, opts: PutMultipartOptions) -> Result<Box<dyn MultipartUpload>> {
        self.held.pass().await;
        self.gate().await?;
        self.prefix_gate(location)?;
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
        let (held, inner) = (self.held.clone(), self.inner.clone());
        futures::stream::once(async move {
            held.pass().await;
            inner.delete_stream(locations)
        })
        .flatten()
        .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.gate().await?;
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.held.pass().await;
        self.gate().await?;
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        self.held.pass().await;
        self.gate().await?;
        self.inner.rename_opts(from, to, options).await
    }
}

/// Runs `operation` (a flush, a compaction) with `store`'s writes held, running `check` before each of
/// its writes is let through, and keeps checking until the operation ends. Returns what the operation
/// returned and how many checks ran while it was stopped at a write: surely mid-way, neither before it
/// began nor after it ended.
pub async fn check_between_writes<T: Send + 'static>(
    store: &FaultyStore,
    operation: impl Future<Output = T> + Send + 'static,
    mut check: impl AsyncFnMut(),
) -> (T, usize) {
    /// Lets writes flow again however this function ends, a failed check included.
    struct Release<'a>(&'a FaultyStore);
    impl Drop for Release<'_> {
        fn drop(&mut self) {
            self.0.release_writes();
        }
    }
    store.hold_writes();
    let _release = Release(store);
    let operation = tokio::spawn(operation);
    let mut checks_mid_way = 0;
    while !operation.is_finished() {
        // Only this loop lets a held write go, so one waiting now waits for the whole check.
        let stopped_at_write = store.writes_waiting() > 0;
        check().await;
        if stopped_at_write {
            checks_mid_way += 1;
            store.allow_writes(1);
        } else {
            tokio::task::yield_now().await;
        }
    }
    (operation.await.expect("the operation does not panic"), checks_mid_way)
}
