//! The server's own metrics: every metric name in one place, and their Prometheus text rendering for
//! `GET /metrics` (CONTRACTS §4). Modules record through the `metrics` facade with these names; this
//! module installs the recorder. Calls `storage` only to read its request counters at scrape time.
//! Also renders an error with its chain of causes, the one form errors take in logs and on the command
//! line ([`chain`]).

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::storage::Storage;

/// Spans that arrived in OTLP requests, valid or not (label `tenant`).
pub const SPANS_RECEIVED: &str = "spanlake_spans_received_total";
/// Spans acknowledged: durable in the WAL (label `tenant`).
pub const SPANS_ACCEPTED: &str = "spanlake_spans_accepted_total";
/// Spans refused one by one (labels `tenant`, `reason`: `invalid_id`, `attribute_too_large`,
/// `trace_too_large`).
pub const SPANS_REJECTED: &str = "spanlake_spans_rejected_total";
/// Spans a client sent again that the tenant already held in the ingester or committed within the
/// resend window, stored once (issue 26, "Add" 6: retries after a lost acknowledgement).
pub const SPANS_DEDUPLICATED: &str = "spanlake_spans_deduplicated_total";
/// Request body bytes received by the OTLP receivers, before decompression (label `protocol`).
pub const RECEIVED_BYTES: &str = "spanlake_received_bytes_total";
/// Whole requests refused (label `reason`: `invalid`, `too_large`, `unsupported`, `unauthorized`,
/// `memory_limit`, `wal_limit`, `requests_in_flight`, `unavailable`, `slow_body`).
pub const REQUESTS_REFUSED: &str = "spanlake_requests_refused_total";
/// Spans the ingester kept on local disk instead of in a block in the store (label `kind`: `block`, `rows`,
/// `records`).
pub const QUARANTINED: &str = "spanlake_quarantined_total";
/// Bytes OTLP requests in flight hold, as sent, decompressed and decoded (rendered per server).
pub const REQUEST_BYTES_IN_FLIGHT: &str = "spanlake_request_bytes_in_flight";
/// Bytes of WAL segments on disk (rendered per server).
pub const WAL_BYTES: &str = "spanlake_wal_bytes";
/// Bytes held by the ingester: open buffers and blocks not yet committed.
pub const BUFFER_BYTES: &str = "spanlake_ingester_buffer_bytes";
/// Span keys of recently committed blocks the ingester remembers to recognise resent spans.
pub const RESEND_WINDOW_KEYS: &str = "spanlake_ingester_resend_window_keys";
/// Memory those keys hold (`resend_window_bytes`).
pub const RESEND_WINDOW_BYTES: &str = "spanlake_ingester_resend_window_bytes";
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

/// Query latency in seconds (label `endpoint`: `trace_by_id`, `sql`).
pub const QUERY_SECONDS: &str = "spanlake_query_duration_seconds";
/// Trace-by-ID lookups cut short by a limit (label `reason`: `busy`, `timeout`, `too_large`).
pub const TRACE_LOOKUPS_LIMITED: &str = "spanlake_trace_lookups_limited_total";
/// SQL queries answered by point reads without DataFusion planning (`SELECT … FROM spans WHERE trace_id = …`).
pub const SQL_POINT_QUERIES: &str = "spanlake_sql_point_queries_total";
/// Blocks whose trace-ID bloom filter a lookup asked (after the time and ID-range checks).
pub const BLOOM_CHECKS: &str = "spanlake_bloom_checks_total";
/// Blocks read because their bloom said "maybe" that held none of the trace.
pub const BLOOM_FALSE_POSITIVES: &str = "spanlake_bloom_false_positives_total";
/// Blocks in the querier's catalogue, across tenants (rendered per server).
pub const CATALOG_BLOCKS: &str = "spanlake_catalog_blocks";
/// Tenants the querier's catalogue keeps blocks for (rendered per server).
pub const CATALOG_TENANTS: &str = "spanlake_catalog_tenants";
/// Bytes of bloom filters the catalogue holds in memory (rendered per server).
pub const CATALOG_BLOOM_BYTES: &str = "spanlake_catalog_bloom_bytes";
/// Estimated bytes of the distinct tag summaries and value lists the catalogue holds (rendered per server).
pub const CATALOG_TAG_BYTES: &str = "spanlake_catalog_tag_bytes";
/// Bytes of decoded Parquet footers the querier caches (rendered per server).
pub const FOOTER_CACHE_BYTES: &str = "spanlake_footer_cache_bytes";
/// Blocks a compaction pass would still merge (label `tenant`).
pub const COMPACTION_OUTSTANDING_BLOCKS: &str = "spanlake_compaction_blocks_outstanding";
/// Seconds since the oldest block still waiting to be merged was committed (label `tenant`).
pub const COMPACTION_LAG_SECONDS: &str = "spanlake_compaction_lag_seconds";
/// Block bytes (data and bloom) read and written by merges (label `direction`: `in`, `out`).
pub const COMPACTION_BYTES: &str = "spanlake_compaction_bytes_total";
/// Spans read and written by merges (label `direction`); the difference is duplicates removed.
pub const COMPACTION_SPANS: &str = "spanlake_compaction_spans_total";
/// Blocks merged and produced (label `direction`).
pub const COMPACTION_BLOCKS: &str = "spanlake_compaction_blocks_total";
/// Blocks deleted by the compactor (label `reason`: `replaced`, `leftover`).
pub const COMPACTION_DELETED_BLOCKS: &str = "spanlake_compaction_deleted_blocks_total";
/// Compaction passes that stopped on an error (retried at the next interval).
pub const COMPACTION_FAILURES: &str = "spanlake_compaction_failures_total";
/// Blocks deleted by retention (label `tenant`).
pub const RETENTION_DELETED_BLOCKS: &str = "spanlake_retention_deleted_blocks_total";
/// Footer cache lookups (label `result`: `hit`, `miss`).
pub const FOOTER_CACHE: &str = "spanlake_footer_cache_requests_total";
/// Counter: blocks skipped because their own objects cannot be read (label `component`: `catalog`,
/// `compaction`; `reason`: `format_version`, `metadata`, `bloom`).
pub const BLOCKS_SKIPPED: &str = "spanlake_blocks_skipped_total";
/// Counter: tenants whose compaction or catalogue refresh failed in a pass (label `component`); the
/// other tenants' work goes on.
pub const TENANT_FAILURES: &str = "spanlake_tenant_failures_total";
/// Counter: reads of a changed credentials file (label `outcome`: `loaded`, `refused`).
pub const AUTH_RELOADS: &str = "spanlake_auth_reloads_total";
/// Counter: reads of changed TLS certificate files (label `outcome`: `loaded`, `refused`).
pub const TLS_RELOADS: &str = "spanlake_tls_reloads_total";
/// Counter: requests refused for their credentials, on any port (label `reason`: `unauthenticated`,
/// `forbidden`).
pub const AUTH_REFUSED: &str = "spanlake_auth_refused_total";
/// Counter: top-level prefixes of the bucket that name no tenant (found when listing tenants).
pub const FOREIGN_PREFIXES: &str = "spanlake_storage_foreign_prefixes_total";

/// Counter: requests to an ingester for its recent spans that failed or timed out (answers partial).
pub const PEER_FAILURES: &str = "spanlake_ingester_requests_failed_total";
/// Gauge: bytes of committed blocks an ingester keeps for queriers that have not listed them yet.
pub const HANDOFF_BYTES: &str = "spanlake_handoff_bytes";
/// Gauge, always 1, labelled with the roles this process runs (`target`: all, ingester, querier,
/// compactor), so a scrape says what it scraped.
pub const TARGET_INFO: &str = "spanlake_target_info";

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

/// The Prometheus text of every metric. The object-store counters and the WAL and buffer gauges are
/// read fresh from this server's own storage and ingester and written here rather than through the
/// process-wide recorder, so two servers in one process (tests, benchmarks) each report their own.
pub fn render(target: &str, storage: &Storage, gauges: &[Gauge]) -> String {
    use std::fmt::Write;
    let counts = storage.request_counts();
    let mut text = install().map(PrometheusHandle::render).unwrap_or_default();
    let _ = writeln!(text, "# HELP {TARGET_INFO} The roles this process runs (--target).");
    let _ = writeln!(text, "# TYPE {TARGET_INFO} gauge\n{TARGET_INFO}{{target=\"{target}\"}} 1");
    let _ = writeln!(text, "# HELP {OBJECT_STORE_REQUESTS} Object-store requests since start, by operation.");
    let _ = writeln!(text, "# TYPE {OBJECT_STORE_REQUESTS} counter");
    for (operation, value) in [
        ("get", counts.get),
        ("head", counts.head),
        ("put", counts.put),
        ("list", counts.list),
        ("delete", counts.delete),
        ("copy", counts.copy),
    ] {
        let _ = writeln!(text, "{OBJECT_STORE_REQUESTS}{{operation=\"{operation}\"}} {value}");
    }
    let _ = writeln!(text, "# HELP {OBJECT_STORE_BYTES} Object-store bytes moved since start.");
    let _ = writeln!(text, "# TYPE {OBJECT_STORE_BYTES} counter");
    let _ = writeln!(text, "{OBJECT_STORE_BYTES}{{direction=\"read\"}} {}", counts.get_bytes);
    let _ = writeln!(text, "{OBJECT_STORE_BYTES}{{direction=\"written\"}} {}", counts.put_bytes);
    for gauge in gauges {
        let (name, help, value) = (gauge.name, gauge.help, gauge.value);
        let _ = writeln!(text, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}");
    }
    text
}

/// A value one server reports about itself at scrape time.
#[derive(Clone, Copy, Debug)]
pub struct Gauge {
    pub name: &'static str,
    pub help: &'static str,
    pub value: f64,
}

/// `error` and its causes on one line, `outer: cause: root cause`, each message once.
///
/// Our errors keep their cause as a `source` and, like `object_store`'s, most also end their message with
/// the cause's; a cause whose message is already part of the text is not repeated.
pub fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(current) = cause {
        let message = current.to_string();
        if !text.contains(&message) {
            text.push_str(": ");
            text.push_str(&message);
        }
        cause = current.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An error whose message leaves its cause out, as `std::io::Error::other` does with a custom one.
    #[derive(Debug, thiserror::Error)]
    #[error("cannot flush")]
    struct Quiet(#[source] std::io::Error);

    #[test]
    fn chain_names_every_cause_once() {
        let disk_full = || std::io::Error::other("disk full");
        let failed = crate::wal::WalError::Failed(std::sync::Arc::new(crate::wal::WalError::Write(disk_full())));
        assert_eq!(
            chain(&failed),
            "the WAL stopped accepting writes after an earlier write failed: WAL write failed: disk full"
        );
        assert_eq!(chain(&Quiet(disk_full())), "cannot flush: disk full");
    }
}
