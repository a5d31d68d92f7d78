//! Fixtures shared by the integration tests.

#![allow(dead_code)]

pub mod bench;
pub mod dataset;
pub mod encoding;
pub mod faulty;
pub mod http;
pub mod otlp;
pub mod process;
pub mod s3;
pub mod sdk;
pub mod search;
pub mod server;
pub mod sql;
pub mod tagged;
pub mod tools;

use spanlake::storage::Storage;

/// A storage backend under test, with whatever must live as long as it (a temporary folder). Keep the
/// `Backend` itself, not only its `storage`: a local folder is deleted when the `Backend` is dropped, and
/// a store still writing afterwards re-creates it outside any cleanup.
pub struct Backend {
    pub storage: Storage,
    pub name: &'static str,
    _folder: Option<tempfile::TempDir>,
}

impl Backend {
    /// The embedded default: a local folder.
    pub fn local() -> Self {
        let folder = tempfile::tempdir().expect("temp dir");
        let url = url_of(folder.path());
        Self { storage: Storage::open(&url).expect("open local storage"), name: "local", _folder: Some(folder) }
    }

    /// `object_store`'s in-memory store.
    pub fn memory() -> Self {
        Self { storage: Storage::open("memory://").expect("open memory storage"), name: "memory", _folder: None }
    }

    /// A fresh bucket on the real S3-compatible test server.
    pub fn s3() -> Self {
        Self { storage: s3::S3Server::shared().new_storage("tenants"), name: "s3", _folder: None }
    }
}

/// A store whose lifetime the caller looks after (S3 buckets, stores wrapped in fault injectors).
impl From<Storage> for Backend {
    fn from(storage: Storage) -> Self {
        Self { storage, name: "given", _folder: None }
    }
}

/// A loopback address no one listens on right now, for a server that must be told its port up front.
pub fn free_addr() -> std::net::SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port")
}

/// `file://` URL of a folder.
pub fn url_of(path: &std::path::Path) -> String {
    spanlake::storage::StorageLocation::local_folder_url(path).expect("absolute folder")
}

/// The start of the hour `hours` hours before now, in unix nanoseconds: a start for synthetic spans that
/// stay recent in any year (the generator's own clock starts on a fixed date, which retention and
/// `now()` would treat as older every day), and that puts a few seconds of spans in one compaction window.
pub fn hours_ago_unix_nano(hours: u64) -> u64 {
    const HOUR_NS: u64 = 3_600_000_000_000;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("after 1970").as_nanos();
    (now as u64 / HOUR_NS - hours) * HOUR_NS
}

/// Makes every committed block of `tenant` committed after `unix_ms` look as if it had been written
/// then (its `meta.json` rewritten), so retention, which keeps a block at least its retention after it
/// was written, can be tested on blocks "from 40 days ago" without waiting 40 days.
pub async fn backdate_blocks(storage: &Storage, tenant: &spanlake::ids::TenantId, unix_ms: u64) {
    use object_store::ObjectStoreExt;
    let listing = spanlake::storage::list_blocks(storage, tenant).await.expect("list blocks");
    for block in listing.committed {
        let mut meta = spanlake::storage::read_block_meta(storage, tenant, block).await.expect("block meta");
        if meta.created_unix_ms > unix_ms {
            meta.created_unix_ms = unix_ms;
            let path = spanlake::storage::layout::meta_path(tenant, block);
            storage.object_store().put(&path, meta.to_json().into()).await.expect("rewrite meta.json");
        }
    }
}
