//! Benchmark datasets: many blocks of realistic synthetic spans written straight to a local folder
//! (no server), kept under `target/bench-data/` between runs because writing 10 M spans takes minutes.

use std::path::{Path, PathBuf};
use std::time::Instant;

use super::encoding::block_write_options;
use futures::StreamExt;
use spanlake::ids::{BlockId, TenantId, TraceId};
use spanlake::spans::SpanBatchBuilder;
use spanlake::storage::block::{encode_block, upload_block};
use spanlake::storage::{Storage, StorageLocation};
use spanlake::synth::TraceGenerator;

/// What to write.
pub struct Blocks<'a> {
    /// Folder name under `target/bench-data/`.
    pub name: &'a str,
    pub tenant: TenantId,
    pub blocks: usize,
    pub spans_per_block: usize,
    /// Unix ns each block's generator starts its clock at (`None`: the generator's default, so every
    /// block covers the same few seconds).
    pub clock: fn(usize) -> Option<u64>,
    /// Tenants that also get a copy of each block with index below their number.
    pub copies: Vec<(TenantId, usize)>,
}

/// The dataset's storage, the first trace ID of each block, and its folder; reuses a complete earlier
/// run's folder.
pub async fn local_blocks(spec: Blocks<'_>) -> (Storage, Vec<TraceId>, PathBuf) {
    let folder = bench_data().join(spec.name);
    let ids_file = folder.join("known-ids.txt");
    std::fs::create_dir_all(folder.join("blocks")).expect("bench data folder");
    let storage = Storage::open(&StorageLocation::local_folder_url(&folder.join("blocks")).expect("absolute"))
        .expect("local storage");
    if let Ok(text) = std::fs::read_to_string(&ids_file) {
        let ids: Vec<TraceId> = text.lines().map(|line| TraceId::from_hex(line).expect("trace ID")).collect();
        if ids.len() == spec.blocks {
            eprintln!("reusing {} blocks in {}", spec.blocks, folder.display());
            return (storage, ids, folder);
        }
    }
    eprintln!("writing {} blocks of {} spans to {}", spec.blocks, spec.spans_per_block, folder.display());
    let started = Instant::now();
    let spec = &spec;
    let ids: Vec<TraceId> = futures::stream::iter(0..spec.blocks)
        .map(|index| {
            let (storage, tenant, spans, clock) =
                (storage.clone(), spec.tenant.clone(), spec.spans_per_block, (spec.clock)(index));
            async move {
                let (block, first) = tokio::task::spawn_blocking(move || {
                    let mut generator = TraceGenerator::new(index as u64 + 1);
                    if let Some(at) = clock {
                        generator.set_clock(at);
                    }
                    let mut builder = SpanBatchBuilder::new();
                    let mut first = None;
                    while builder.len() < spans {
                        let trace = generator.next_trace();
                        first.get_or_insert_with(|| trace[0].scope_spans[0].spans[0].trace_id.clone());
                        trace.iter().for_each(|rs| drop(builder.append_resource_spans(rs)));
                    }
                    let batch = builder.finish().expect("synthetic spans encode");
                    let options = block_write_options();
                    let block = encode_block(&tenant, BlockId::new_random(), &[batch], &options).expect("encode");
                    (block, TraceId::from_slice(&first.expect("a trace")).expect("valid"))
                })
                .await
                .expect("encoder task");
                upload_block(&storage, &block).await.expect("upload");
                for (copy_tenant, below) in &spec.copies {
                    if index < *below {
                        let mut copy = block.clone();
                        copy.meta.tenant = copy_tenant.clone();
                        upload_block(&storage, &copy).await.expect("upload copy");
                    }
                }
                first
            }
        })
        .buffered(2)
        .collect()
        .await;
    std::fs::write(&ids_file, ids.iter().map(|id| format!("{id}\n")).collect::<String>()).expect("write IDs");
    eprintln!("wrote {} blocks in {:.0} s", spec.blocks, started.elapsed().as_secs_f64());
    (storage, ids, folder)
}

/// Seconds between the starts of consecutive blocks of the SQL data set.
pub const SQL_BLOCK_SPACING_S: u64 = 36;

/// The SQL benchmark's data set, which the search benchmark reads too (one folder per size, written once):
/// `blocks` blocks of `spans_per_block` realistic spans for tenant `sql-bench`, [`SQL_BLOCK_SPACING_S`]
/// apart from [`super::bench::T0`], as an ingester would have cut them. Returns what [`local_blocks`] does.
pub async fn sql_blocks(blocks: usize, spans_per_block: usize) -> (Storage, Vec<TraceId>, PathBuf) {
    local_blocks(Blocks {
        name: &format!("sql-{blocks}x{spans_per_block}"),
        tenant: sql_tenant(),
        blocks,
        spans_per_block,
        clock: |index| Some(super::bench::T0 + index as u64 * SQL_BLOCK_SPACING_S * 1_000_000_000),
        copies: Vec::new(),
    })
    .await
}

/// The tenant of [`sql_blocks`].
pub fn sql_tenant() -> TenantId {
    TenantId::new("sql-bench").expect("a valid tenant")
}

/// Where bench data is kept: one folder per block format version, so data of an older format is never
/// measured as if this build had written it.
fn bench_data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(format!("target/bench-data/format-v{}", spanlake::storage::FORMAT_VERSION))
}

/// Spans as an ingester cuts them into blocks and as the compactor then merges them: the two layouts
/// every SQL benchmark is measured on (issue 25). Both are written once per size and kept.
pub struct IngestedLayouts {
    pub tenant: TenantId,
    /// Blocks exactly as `Ingester` cut them from 1,000-span protobuf requests (default block size).
    pub ingested: PathBuf,
    /// A copy of `ingested` compacted with the default rules until nothing was left to merge.
    pub compacted: PathBuf,
    /// One trace ID from every 50th request, all stored in both layouts.
    pub known: Vec<TraceId>,
}

impl IngestedLayouts {
    /// The storage of a layout's folder.
    pub fn storage(folder: &Path) -> Storage {
        Storage::open(&StorageLocation::local_folder_url(&folder.join("blocks")).expect("absolute")).expect("storage")
    }

    /// The glob of a layout's data files, for DuckDB.
    pub fn glob(&self, folder: &Path) -> String {
        folder.join(format!("blocks/{}/blocks/*/data.parquet", self.tenant)).to_string_lossy().into_owned()
    }
}

/// `spans` realistic spans (at least) sent through an in-process `Ingester` with its default options as
/// 1,000-span protobuf requests from a generator whose clock starts at [`super::bench::T0`], then the same
/// blocks compacted; reuses a complete earlier run's folders under `target/bench-data/`.
pub async fn ingested_layouts(spans: usize) -> IngestedLayouts {
    use prost::Message;
    use spanlake::compaction::{CompactionOptions, Compactor, unix_ms_now};
    use spanlake::ingest::{IngestOptions, Ingester, NewSpans};

    let tenant = TenantId::new("sql-bench").expect("a valid tenant");
    let root = bench_data();
    let ingested = root.join(format!("ingested-{spans}"));
    let compacted = root.join(format!("ingested-{spans}-compacted"));
    let ids_file = compacted.join("known-ids.txt");
    if let Ok(text) = std::fs::read_to_string(&ids_file) {
        eprintln!("reusing {} and {}", ingested.display(), compacted.display());
        let known = text.lines().map(|line| TraceId::from_hex(line).expect("trace ID")).collect();
        return IngestedLayouts { tenant, ingested, compacted, known };
    }
    for folder in [&ingested, &compacted] {
        let _ = std::fs::remove_dir_all(folder);
        std::fs::create_dir_all(folder.join("blocks")).expect("bench data folder");
    }

    let started = Instant::now();
    let mut options = IngestOptions::new(ingested.join("wal"));
    options.block = block_write_options();
    let ingester = Ingester::start(options, IngestedLayouts::storage(&ingested)).await.expect("ingester");
    let (requests, mut rx) = tokio::sync::mpsc::channel::<(bytes::Bytes, TraceId)>(8);
    let generator = tokio::task::spawn_blocking(move || {
        let mut generator = TraceGenerator::new(25);
        generator.set_clock(super::bench::T0);
        let mut sent = 0;
        while sent < spans {
            let request = generator.next_request(1_000);
            sent += spanlake::spans::span_count(&request.resource_spans);
            let first = TraceId::from_slice(&request.resource_spans[0].scope_spans[0].spans[0].trace_id).expect("ID");
            if requests.blocking_send((bytes::Bytes::from(request.encode_to_vec()), first)).is_err() {
                return;
            }
        }
    });
    let mut known = Vec::new();
    let mut count = 0usize;
    while let Some((body, first)) = rx.recv().await {
        if count.is_multiple_of(50) {
            known.push(first);
        }
        count += 1;
        loop {
            let spans = NewSpans::from_protobuf(body.clone()).expect("the generator's requests decode");
            match ingester.push(&tenant, spans).await {
                Ok(_) => break,
                // The buffers are full until the block cutter catches up, as a client would be told.
                Err(error) if error.is_backpressure() => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
                Err(error) => panic!("ingest: {error}"),
            }
        }
    }
    generator.await.expect("generator");
    ingester.flush().await.expect("flush");
    ingester.shutdown().await;
    std::fs::remove_dir_all(ingested.join("wal")).expect("remove the WAL");
    eprintln!("ingested {count} requests in {:.0} s", started.elapsed().as_secs_f64());

    let copied = std::process::Command::new("cp")
        .args(["-r", &ingested.join("blocks").to_string_lossy(), &compacted.to_string_lossy()])
        .status()
        .expect("cp");
    assert!(copied.success(), "copy the ingested blocks");
    let mut options = CompactionOptions { concurrency: 2, ..CompactionOptions::default() };
    options.rules.deletion_grace = std::time::Duration::ZERO;
    let dataset_age = std::time::Duration::from_millis(unix_ms_now().saturating_sub(super::bench::T0 / 1_000_000));
    options.rules.retention = dataset_age + std::time::Duration::from_secs(30 * 86_400);
    options.block = block_write_options();
    let compactor = Compactor::new(IngestedLayouts::storage(&compacted), options);
    while compactor.compact_tenant_at(&tenant, unix_ms_now(), &|_| {}).await.expect("compaction pass").jobs > 0 {}
    std::fs::write(&ids_file, known.iter().map(|id| format!("{id}\n")).collect::<String>()).expect("write IDs");
    eprintln!("ingested and compacted in {:.0} s", started.elapsed().as_secs_f64());
    IngestedLayouts { tenant, ingested, compacted, known }
}
