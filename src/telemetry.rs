//! The server's own metrics: every metric name in one place, and their Prometheus text rendering for
//! `GET /metrics` (CONTRACTS §4). Modules record through the `metrics` facade with these names; this
//! module installs the recorder. Calls `storage` only to read its request counters at scrape time.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::storage::Storage;

/// Spans that arrived in OTLP requests, valid or not (label `tenant`).
pub const SPANS_RECEIVED: &str = "spanlake_spans_received_total";
/// Spans acknowledged: durable in the WAL (label `tenant`).
pub const SPANS_ACCEPTED: &str = "spanlake_spans_accepted_total";
/// Spans refused one by one for invalid IDs (label `tenant`).
pub const SPANS_REJECTED: &str = "spanlake_spans_rejected_total";
/// Request body bytes received by the OTLP receivers, before decompression (label `protocol`).
pub const RECEIVED_BYTES: &str = "spanlake_received_bytes_total";
/// Whole requests refused (label `reason`: `invalid`, `too_large`, `unsupported`, `unauthorized`,
/// `memory_limit`, `wal_limit`, `unavailable`).
pub const REQUESTS_REFUSED: &str = "spanlake_requests_refused_total";
/// Bytes of WAL segments on disk.
pub const WAL_BYTES: &str = "spanlake_wal_bytes";
/// Bytes held by the ingester: open buffers and blocks not yet committed.
pub const BUFFER_BYTES: &str = "spanlake_ingester_buffer_bytes";
/// Blocks committed to the object store by this process.
pub const BLOCKS_WRITTEN: &str = "spanlake_blocks_written_total";
/// Spans in blocks committed by this process.
pub const BLOCK_SPANS_WRITTEN: &str = "spanlake_block_spans_written_total";
/// Bytes (data and bloom) of blocks committed by this process.
pub const BLOCK_BYTES_WRITTEN: &str = "spanlake_block_bytes_written_total";
/// Seconds from cutting a block to its commit, retries included.
pub const FLUSH_SECONDS: &str = "spanlake_flush_duration_seconds";
/// Failed block upload attempts (each is retried with backoff).
pub const FLUSH_FAILURES: &str = "spanlake_flush_failures_total";
/// Object-store requests since start (label `operation`).
pub const OBJECT_STORE_REQUESTS: &str = "spanlake_object_store_requests_total";
/// Object-store bytes moved since start (label `direction`: `read`, `written`).
pub const OBJECT_STORE_BYTES: &str = "spanlake_object_store_bytes_total";

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process-wide Prometheus recorder once; later calls (several servers in one test
/// process) share it.
pub fn install() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok().map(|()| handle)
        })
        .as_ref()
}

/// The Prometheus text of every metric, with the object-store counters read fresh from `storage`.
pub fn render(storage: &Storage, wal_bytes: u64, buffer_bytes: usize) -> String {
    let counts = storage.request_counts();
    for (operation, value) in [
        ("get", counts.get),
        ("head", counts.head),
        ("put", counts.put),
        ("list", counts.list),
        ("delete", counts.delete),
        ("copy", counts.copy),
    ] {
        metrics::counter!(OBJECT_STORE_REQUESTS, "operation" => operation).absolute(value);
    }
    metrics::counter!(OBJECT_STORE_BYTES, "direction" => "read").absolute(counts.get_bytes);
    metrics::counter!(OBJECT_STORE_BYTES, "direction" => "written").absolute(counts.put_bytes);
    metrics::gauge!(WAL_BYTES).set(wal_bytes as f64);
    metrics::gauge!(BUFFER_BYTES).set(buffer_bytes as f64);
    install().map(PrometheusHandle::render).unwrap_or_default()
}
