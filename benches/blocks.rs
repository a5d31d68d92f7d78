//! Block format benchmarks on realistic synthetic spans (`spanlake::synth`):
//! - block write: sort + Parquet + bloom for 1 M spans arriving as 512-span requests (spans/s; bytes/span
//!   printed), and the same spans in 16 k-span batches as the same-run baseline,
//! - trace lookup in a 1 M-span block on a local folder with the footer cached (time; bytes and reads
//!   per lookup printed from the store's request counters),
//! - bloom checks,
//! - a layout comparison (dictionary on attribute values, page size) printed once, which is how the
//!   defaults in `BlockWriteOptions` were chosen.
//!
//! `cargo bench --bench blocks` runs it at full size; under `cargo test` it runs once on 20 k spans.

use std::hint::black_box;
use std::time::Instant;

use arrow::array::{Array, FixedSizeBinaryArray, RecordBatch};
use arrow::compute::concat_batches;
use criterion::{BenchmarkId, Criterion, Throughput};
use spanlake::ids::{BlockId, TenantId, TraceId};
use spanlake::storage::block::{
    BlockFooter, BlockMeta, BlockWriteOptions, encode_block, find_trace, load_footer, upload_block,
};
use spanlake::storage::{RangeReads, Storage};

mod common;
use common::{full_size, request_batches};

fn sample_trace_ids(batches: &[RecordBatch], count: usize) -> Vec<TraceId> {
    let mut ids = Vec::new();
    let stride = (batches.iter().map(|b| b.num_rows()).sum::<usize>() / count).max(1);
    let mut seen = 0;
    for batch in batches {
        let column = batch.column(0).as_any().downcast_ref::<FixedSizeBinaryArray>().expect("trace_id column");
        for row in 0..column.len() {
            if seen % stride == 0 {
                ids.push(TraceId::from_slice(column.value(row)).expect("valid"));
            }
            seen += 1;
        }
    }
    ids.truncate(count);
    ids
}

struct WrittenBlock {
    storage: Storage,
    /// The same folder read the way a remote (S3) store is: ranges merged across 64 KiB gaps.
    coalescing: Storage,
    meta: BlockMeta,
    footer: BlockFooter,
    _folder: tempfile::TempDir,
}

fn write_to_local_folder(
    runtime: &tokio::runtime::Runtime,
    batches: &[RecordBatch],
    options: &BlockWriteOptions,
) -> WrittenBlock {
    let folder = tempfile::tempdir().expect("temp dir");
    let url = spanlake::storage::StorageLocation::local_folder_url(folder.path()).expect("absolute");
    let storage = Storage::open(&url).expect("local storage");
    let block = encode_block(&TenantId::single_tenant(), BlockId::new_random(), batches, options).expect("encode");
    runtime.block_on(upload_block(&storage, &block)).expect("upload");
    let footer = runtime.block_on(load_footer(&storage, &block.meta)).expect("footer");
    let local = object_store::local::LocalFileSystem::new_with_prefix(folder.path()).expect("folder");
    use spanlake::storage::instrumented::{COALESCE_GAP_BYTES, STRETCH_GAP_BYTES};
    let policy = RangeReads::Coalesce { gap_bytes: COALESCE_GAP_BYTES, stretch_gap_bytes: STRETCH_GAP_BYTES };
    let coalescing = Storage::from_store(std::sync::Arc::new(local), "coalescing", policy);
    WrittenBlock { storage, coalescing, meta: block.meta, footer, _folder: folder }
}

/// Average wall time, bytes read and read requests of lookups with a cached footer.
fn measure_lookups(
    runtime: &tokio::runtime::Runtime,
    storage: &Storage,
    block: &WrittenBlock,
    ids: &[TraceId],
) -> (f64, f64, f64) {
    let before = storage.request_counts();
    let started = Instant::now();
    for id in ids {
        let found = runtime.block_on(find_trace(storage, &block.meta, &block.footer, id)).expect("lookup");
        assert!(!found.is_empty(), "trace {id} must be found");
    }
    let elapsed = started.elapsed().as_secs_f64();
    let used = storage.request_counts().since(&before);
    let n = ids.len() as f64;
    (elapsed / n * 1e3, used.get_bytes as f64 / n, used.get as f64 / n)
}

fn layout_report(runtime: &tokio::runtime::Runtime, batches: &[RecordBatch], ids: &[TraceId]) {
    let spans: usize = batches.iter().map(|b| b.num_rows()).sum();
    let variants = [
        ("default: 16 k-row groups, 1024-row pages, no attr-value dict", BlockWriteOptions::default()),
        ("default, written by parquet's writer", BlockWriteOptions { direct_encoding: false, ..Default::default() }),
        (
            "dictionary on attribute values, 1024-row pages",
            BlockWriteOptions { dictionary_for_attribute_values: true, ..Default::default() },
        ),
        (
            "parquet defaults: dictionary everywhere, 20k-row pages",
            BlockWriteOptions { dictionary_for_attribute_values: true, data_page_rows: 20_000, ..Default::default() },
        ),
        ("ZSTD level 1", BlockWriteOptions { zstd_level: 1, ..Default::default() }),
        ("sparse columns compressed too", BlockWriteOptions { compress_sparse_columns: true, ..Default::default() }),
        ("16 KiB page byte limit", BlockWriteOptions { data_page_bytes: 16 * 1024, ..Default::default() }),
        ("256-row pages", BlockWriteOptions { data_page_rows: 256, ..Default::default() }),
        ("128 k-row row groups", BlockWriteOptions { max_row_group_rows: 128 * 1024, ..Default::default() }),
        ("1 M-row row groups", BlockWriteOptions { max_row_group_rows: 1 << 20, ..Default::default() }),
    ];
    println!("layout comparison on {spans} spans (one write each, {} lookups each):", ids.len());
    println!(
        "{:<62} {:>10} {:>9} {:>11} {:>11} {:>8}",
        "layout", "bytes/span", "write s", "lookup ms", "lookup KB", "reads"
    );
    for (name, options) in variants {
        let options = BlockWriteOptions { encode_threads: 1, ..options };
        let started = Instant::now();
        let block = write_to_local_folder(runtime, batches, &options);
        let write_seconds = started.elapsed().as_secs_f64();
        let (ms, bytes, reads) = measure_lookups(runtime, &block.storage, &block, ids);
        let (_, remote_bytes, remote_reads) = measure_lookups(runtime, &block.coalescing, &block, ids);
        let per_span = (block.meta.data_bytes + block.meta.bloom_bytes) as f64 / spans as f64;
        println!(
            "{name:<62} {per_span:>10.1} {write_seconds:>9.2} {ms:>10.3} {:>10.1} {reads:>6.1} {:>11.1} {remote_reads:>9.1} {:>10.2}",
            bytes / 1024.0,
            remote_bytes / 1024.0,
            block.footer.memory_size() as f64 / 1e6
        );
    }
}

fn main() {
    let spans = if full_size() { 1_000_000 } else { 20_000 };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let batches = request_batches(spans);
    let ids = sample_trace_ids(&batches, 200);
    let tenant = TenantId::single_tenant();
    // One encoding thread: the write target is per core.
    let options = BlockWriteOptions { encode_threads: 1, ..Default::default() };
    let mut criterion = Criterion::default().configure_from_args().sample_size(10);

    let mut write = criterion.benchmark_group("block_write");
    write.throughput(Throughput::Elements(spans as u64));
    write.bench_function(BenchmarkId::new("zstd3_default_layout", spans), |b| {
        b.iter(|| encode_block(&tenant, BlockId::new_random(), black_box(&batches), &options).expect("encode"))
    });
    // Baseline in the same run: the same rows handed over in a few large batches (as compaction does).
    let large: Vec<RecordBatch> =
        batches.chunks(32).map(|group| concat_batches(&group[0].schema(), group).expect("same schema")).collect();
    write.bench_function(BenchmarkId::new("zstd3_default_layout_from_16k_batches", spans), |b| {
        b.iter(|| encode_block(&tenant, BlockId::new_random(), black_box(&large), &options).expect("encode"))
    });
    drop(large);
    write.finish();

    let block = write_to_local_folder(&runtime, &batches, &options);
    let (ms, bytes, reads) = measure_lookups(&runtime, &block.storage, &block, &ids);
    let (_, remote_bytes, remote_reads) = measure_lookups(&runtime, &block.coalescing, &block, &ids);
    println!(
        "block of {spans} spans: {} bytes data + {} bytes bloom = {:.1} bytes/span, {} row groups, {} traces",
        block.meta.data_bytes,
        block.meta.bloom_bytes,
        (block.meta.data_bytes + block.meta.bloom_bytes) as f64 / spans as f64,
        block.meta.row_groups,
        block.meta.trace_count
    );
    println!("lookup with cached footer: {ms:.3} ms, {:.1} KB read in {reads:.1} reads on average", bytes / 1024.0);
    println!(
        "same lookups with S3-style 64 KiB coalescing: {:.1} KB in {remote_reads:.1} reads on average",
        remote_bytes / 1024.0
    );
    println!("footer + page index in memory: {} bytes", block.footer.memory_size());

    let mut lookup = criterion.benchmark_group("trace_lookup");
    let mut next = ids.iter().cycle();
    lookup.bench_function(BenchmarkId::new("known_id_footer_cached_local_folder", spans), |b| {
        b.iter(|| {
            let id = next.next().expect("cycle never ends");
            runtime.block_on(find_trace(&block.storage, &block.meta, &block.footer, id)).expect("lookup")
        })
    });
    lookup.finish();

    let bloom = runtime.block_on(spanlake::storage::block::load_bloom(&block.storage, &block.meta)).expect("bloom");
    let unknown: Vec<TraceId> =
        (1..=1024u128).map(|i| TraceId::from_slice(&(i << 64 | 0xdead).to_be_bytes()).expect("valid")).collect();
    let mut bloom_group = criterion.benchmark_group("bloom");
    bloom_group.throughput(Throughput::Elements(unknown.len() as u64));
    bloom_group.bench_function("check_1024_unknown_ids", |b| {
        b.iter(|| unknown.iter().filter(|id| bloom.may_contain(black_box(id))).count())
    });
    bloom_group.finish();
    let false_positives = unknown.iter().filter(|id| bloom.may_contain(id)).count();
    println!(
        "bloom: {} bytes for {} traces, {false_positives}/1024 unknown IDs passed",
        bloom.size_bytes(),
        block.meta.trace_count
    );

    if full_size() {
        layout_report(&runtime, &batches, &ids);
    }
    criterion.final_summary();
}
