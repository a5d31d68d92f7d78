//! Compaction (issue 6): 1,000 blocks of 5 k realistic spans on the local folder, 18 s apart (5 hours,
//! as an ingester would leave them), compacted with the default rules until nothing is left to merge.
//!
//! Reports compaction throughput (spans written per second, and spans of the dataset per second of the
//! whole run), block count and bytes/span before and after, and — before and after, in the same run —
//! trace-by-ID lookups and SQL (a)–(c) of the SQL benchmark (median of warm runs, 2 partitions).
//!
//! `cargo bench --bench compaction` runs it at full size (the dataset is kept under
//! `target/bench-data/` and copied, since compaction rewrites it); `cargo test --benches` runs the same
//! code on 20 blocks of 500 spans.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use spanlake::compaction::{CompactionOptions, Compactor, PassReport, unix_ms_now};
use spanlake::ids::{TenantId, TraceId};
use spanlake::query::{Querier, QueryOptions};
use spanlake::sql::{SqlEngine, SqlLimits};
use spanlake::storage::{Storage, StorageLocation, list_blocks, read_block_meta};

use common::bench::{Scale, T0};

fn scale() -> Scale {
    common::bench::pick(
        Scale { blocks: 1_000, spans_per_block: 5_000, runs: 5 },
        Scale { blocks: 20, spans_per_block: 500, runs: 1 },
    )
}

/// Blocks, spans and stored bytes (data and bloom) of a tenant.
async fn footprint(storage: &Storage, tenant: &TenantId) -> (usize, u64, u64) {
    let listing = list_blocks(storage, tenant).await.expect("list");
    let (mut spans, mut bytes) = (0, 0);
    for block in &listing.committed {
        let meta = read_block_meta(storage, tenant, *block).await.expect("meta");
        spans += meta.span_count;
        bytes += meta.data_bytes + meta.bloom_bytes;
    }
    (listing.committed.len(), spans, bytes)
}

/// Median lookup time over `traces` (each trace once per run) and SQL (a)–(c), with a fresh querier.
async fn measure(storage: &Storage, tenant: &TenantId, traces: &[TraceId], runs: usize) -> Vec<(String, f64)> {
    let querier = Querier::new(storage.clone(), QueryOptions::default());
    let engine =
        SqlEngine::new(querier.clone(), SqlLimits { partitions: 2, ..SqlLimits::default() }).expect("SQL engine");
    let mut figures = Vec::new();
    let (lookups_ms, _) = common::bench::timed(runs, async || {
        let mut spans = 0;
        for trace in traces {
            spans += querier.find_trace(tenant, trace, Default::default()).await.expect("lookup").span_count;
        }
        spans
    })
    .await;
    figures.push(("trace by ID (ms per lookup)".to_owned(), lookups_ms / traces.len() as f64));
    for (name, sql) in common::bench::sql_queries() {
        let (ms, _) = common::bench::timed(runs, async || common::bench::run_sql(&engine, tenant, &sql).await).await;
        figures.push((format!("SQL {name} (ms)"), ms));
    }
    figures
}

fn main() {
    let scale = scale();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        let tenant = TenantId::new("compaction-bench").expect("tenant");
        let (_, known, folder) = common::dataset::local_blocks(common::dataset::Blocks {
            name: &format!("compaction-{}x{}", scale.blocks, scale.spans_per_block),
            tenant: tenant.clone(),
            blocks: scale.blocks,
            spans_per_block: scale.spans_per_block,
            clock: |index| Some(T0 + index as u64 * 18_000_000_000),
            copies: Vec::new(),
        })
        .await;
        let copy = tempfile::tempdir_in(folder.parent().expect("bench-data")).expect("temp dir");
        let status = std::process::Command::new("cp")
            .args(["-r", &folder.join("blocks").to_string_lossy(), &copy.path().to_string_lossy()])
            .status()
            .expect("cp");
        assert!(status.success(), "copy the dataset");
        let url = StorageLocation::local_folder_url(&copy.path().join("blocks")).expect("absolute");
        let storage = Storage::open(&url).expect("storage");
        let traces: Vec<TraceId> = known.iter().step_by((known.len() / 20).max(1)).copied().collect();

        let (blocks_before, spans, bytes_before) = footprint(&storage, &tenant).await;
        let before = measure(&storage, &tenant, &traces, scale.runs).await;

        // A dedicated compactor: both cores merge.
        let mut options = CompactionOptions { concurrency: 2, ..CompactionOptions::default() };
        options.rules.deletion_grace = Duration::ZERO;
        // The dataset starts at T0 (2026-01-01): a retention reaching 30 days before it keeps it in any year.
        let dataset_age = Duration::from_millis(unix_ms_now().saturating_sub(T0 / 1_000_000));
        options.rules.retention = dataset_age + Duration::from_secs(30 * 86_400);
        let compactor = Compactor::new(storage.clone(), options);
        let started = Instant::now();
        let mut total = PassReport::default();
        let mut passes = 0;
        loop {
            let pass = compactor.compact_tenant_at(&tenant, unix_ms_now(), &|_| {}).await.expect("pass");
            passes += 1;
            total.add(&pass);
            if pass.jobs == 0 {
                break;
            }
        }
        let seconds = started.elapsed().as_secs_f64();
        // The last pass deleted the replaced blocks; the footprint is what remains.
        let (blocks_after, spans_after, bytes_after) = footprint(&storage, &tenant).await;
        assert_eq!(spans_after, spans, "compaction keeps every span (the dataset has no duplicates)");
        let after = measure(&storage, &tenant, &traces, scale.runs).await;

        println!("{spans} spans in {blocks_before} blocks; {passes} passes, {} merges in {seconds:.1} s", total.jobs);
        println!(
            "compaction: {:.0} spans written/s ({} spans rewritten across levels), {:.0} dataset spans/s end to end",
            total.spans_out as f64 / seconds,
            total.spans_out,
            spans as f64 / seconds
        );
        println!(
            "blocks {blocks_before} -> {blocks_after}; bytes/span {:.1} -> {:.1}",
            bytes_before as f64 / spans as f64,
            bytes_after as f64 / spans as f64
        );
        println!("{:<36} {:>10} {:>10} {:>8}", "measure", "before", "after", "ratio");
        for ((name, ours_before), (_, ours_after)) in before.iter().zip(&after) {
            println!("{name:<36} {ours_before:>10.2} {ours_after:>10.2} {:>8.2}", ours_after / ours_before);
        }
    });
}
