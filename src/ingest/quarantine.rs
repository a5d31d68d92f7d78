//! Spans the ingester cannot get into a block in the store, kept on local disk instead of retried forever
//! (issue 26, item 13): one bad block used to stall every tenant's uploads, and one WAL record that could
//! not be replayed stopped the server from starting.
//!
//! Each quarantined item is a folder `<wal_dir>/quarantine/<tenant>/<name>/` holding what was kept and a
//! `reason.txt`: an encoded block as its Parquet file, bloom and `meta.json` (DuckDB and pyarrow read the
//! Parquet as is); rows not yet encoded as an Arrow IPC file; WAL records as the OTLP protobuf requests
//! they hold (`<seq>.pb`, which can be sent again: `curl --data-binary @<seq>.pb -H 'content-type:
//! application/x-protobuf' http://host:4318/v1/traces`). The folders stay until an operator removes them;
//! `/ready` names them and `spanlake_quarantined_total` counts them.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use arrow::array::RecordBatch;
use bytes::Bytes;

use crate::ids::TenantId;
use crate::storage::EncodedBlock;
use crate::telemetry;

/// The quarantine folder of one ingester and what it holds.
#[derive(Debug)]
pub struct Quarantine {
    dir: PathBuf,
    /// `<tenant>/<name>` of every item, those found at start-up included.
    items: Mutex<Vec<String>>,
}

impl Quarantine {
    /// The quarantine of the WAL in `wal_dir`, with the items earlier runs left.
    pub fn open(wal_dir: &Path) -> Self {
        let dir = wal_dir.join("quarantine");
        let mut items = Vec::new();
        for tenant in read_names(&dir) {
            items.extend(read_names(&dir.join(&tenant)).into_iter().map(|name| format!("{tenant}/{name}")));
        }
        items.sort();
        Self { dir, items: Mutex::new(items) }
    }

    /// `<tenant>/<name>` of every quarantined item.
    pub fn items(&self) -> Vec<String> {
        self.items.lock().map(|items| items.clone()).unwrap_or_default()
    }

    /// Keeps an encoded block that could not be uploaded.
    pub fn keep_block(&self, block: &EncodedBlock, reason: &str) -> std::io::Result<()> {
        let meta = serde_json::to_vec_pretty(&block.meta).map_err(std::io::Error::other)?;
        let files = [("data.parquet", block.data.clone()), ("bloom", block.bloom.clone()), ("meta.json", meta.into())];
        self.keep(&block.meta.tenant, &block.meta.block_id.to_string(), "block", reason, &files)
    }

    /// Keeps rows that could not be encoded into a block.
    pub fn keep_rows(&self, tenant: &TenantId, name: &str, rows: &[RecordBatch], reason: &str) -> std::io::Result<()> {
        let mut file = Vec::new();
        if let Some(first) = rows.first() {
            let mut writer =
                arrow::ipc::writer::FileWriter::try_new(&mut file, &first.schema()).map_err(std::io::Error::other)?;
            for batch in rows {
                writer.write(batch).map_err(std::io::Error::other)?;
            }
            writer.finish().map_err(std::io::Error::other)?;
        }
        self.keep(tenant, name, "rows", reason, &[("rows.arrow", Bytes::from(file))])
    }

    /// Keeps WAL records (OTLP protobuf requests, by sequence number) that could not be replayed.
    pub fn keep_records(
        &self,
        tenant: &TenantId,
        name: &str,
        records: &[(u64, Bytes)],
        reason: &str,
    ) -> std::io::Result<()> {
        let files: Vec<(String, Bytes)> =
            records.iter().map(|(seq, payload)| (format!("{seq}.pb"), payload.clone())).collect();
        self.keep(tenant, name, "records", reason, &files)
    }

    fn keep(
        &self,
        tenant: &TenantId,
        name: &str,
        kind: &'static str,
        reason: &str,
        files: &[(impl AsRef<str>, Bytes)],
    ) -> std::io::Result<()> {
        let folder = self.dir.join(tenant.as_str()).join(name);
        std::fs::create_dir_all(&folder)?;
        for (file, bytes) in files {
            std::fs::write(folder.join(file.as_ref()), bytes)?;
        }
        std::fs::write(folder.join("reason.txt"), format!("{reason}\n"))?;
        let item = format!("{tenant}/{name}");
        if let Ok(mut items) = self.items.lock()
            && !items.contains(&item)
        {
            items.push(item);
        }
        metrics::counter!(telemetry::QUARANTINED, "kind" => kind).increment(1);
        tracing::error!(%tenant, item = name, kind, folder = %folder.display(), reason, "spans quarantined on local disk");
        Ok(())
    }
}

/// The names in a folder, none if it does not exist.
fn read_names(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    entries.flatten().filter_map(|entry| entry.file_name().into_string().ok()).collect()
}
