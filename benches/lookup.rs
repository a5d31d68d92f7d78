//! Trace by ID at scale, through the HTTP API as Grafana asks for it (`GET /api/traces/{id}` with
//! `Accept: application/protobuf`): 500 blocks of 20 k realistic spans (and the first 50 of them as a
//! second tenant), on the local folder and on the S3 test server (moto). For each: the catalogue's load,
//! then known IDs cold (footer not cached) and warm, and unknown IDs — p50/p99 latency, object-store
//! requests and bytes per lookup, read from the store's own counters.
//!
//! `cargo bench --bench lookup` runs it at full size (~10 minutes, most of it writing 10 M spans);
//! `cargo test --benches` runs the same code on 6 blocks of 2 k spans. The blocks are kept under
//! `target/bench-data/` between full runs (delete the folder to regenerate).

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use object_store::ObjectStoreExt;
use spanlake::api::Server;
use spanlake::ids::{TenantId, TraceId};
use spanlake::query::BlockCatalog;
use spanlake::storage::{RequestCounts, Storage, list_blocks};
use spanlake::synth::TraceGenerator;

struct Scale {
    blocks: usize,
    spans_per_block: usize,
    small: usize,
    known_lookups: usize,
    unknown_lookups: usize,
}

fn scale() -> Scale {
    common::bench::pick(
        Scale { blocks: 500, spans_per_block: 20_000, small: 50, known_lookups: 200, unknown_lookups: 2_000 },
        Scale { blocks: 6, spans_per_block: 2_000, small: 3, known_lookups: 6, unknown_lookups: 20 },
    )
}

fn tenant(blocks: usize) -> TenantId {
    TenantId::new(&format!("blocks-{blocks}")).expect("valid tenant")
}

/// One trace ID per block, for known-ID lookups.
type KnownIds = Vec<TraceId>;

/// Writes `scale.blocks` blocks for tenant `blocks-N` and copies the first `scale.small` to tenant
/// `blocks-M`, reusing a complete earlier run's folder.
async fn local_dataset(scale: &Scale) -> (Storage, KnownIds, std::path::PathBuf) {
    common::dataset::local_blocks(common::dataset::Blocks {
        name: &format!("lookup-{}x{}", scale.blocks, scale.spans_per_block),
        tenant: tenant(scale.blocks),
        blocks: scale.blocks,
        spans_per_block: scale.spans_per_block,
        clock: |_| None,
        copies: vec![(tenant(scale.small), scale.small)],
    })
    .await
}

/// Copies every object of the local dataset to a fresh bucket of the S3 test server.
async fn copy_to_s3(local: &Storage, prefix: &str) -> Storage {
    let s3 = common::s3::S3Server::shared().new_storage(prefix);
    let (from, to) = (local.object_store(), s3.object_store());
    let started = Instant::now();
    let objects: Vec<_> = from.list(None).try_collect().await.expect("list local");
    futures::stream::iter(objects)
        .map(|object| {
            let (from, to) = (from.clone(), to.clone());
            async move {
                let bytes = from.get(&object.location).await?.bytes().await?;
                to.put(&object.location, bytes.into()).await.map(|_| ())
            }
        })
        .buffer_unordered(8)
        .try_collect::<Vec<()>>()
        .await
        .expect("copy to S3");
    eprintln!("copied the dataset to S3 in {:.0} s", started.elapsed().as_secs_f64());
    s3
}

#[derive(Default)]
struct Sample {
    micros: Vec<u64>,
    requests: Vec<u64>,
    bytes: Vec<u64>,
}

impl Sample {
    fn add(&mut self, elapsed: Duration, used: RequestCounts) {
        self.micros.push(elapsed.as_micros() as u64);
        self.requests.push(used.total());
        self.bytes.push(used.get_bytes);
    }

    fn percentile(values: &[u64], p: f64) -> u64 {
        let mut sorted = values.to_vec();
        sorted.sort_unstable();
        sorted.get(((sorted.len() as f64 - 1.0) * p).round() as usize).copied().unwrap_or(0)
    }

    fn row(&self, store: &str, blocks: usize, what: &str) -> String {
        let mean = |values: &[u64]| values.iter().sum::<u64>() as f64 / values.len().max(1) as f64;
        format!(
            "| {store} | {blocks} | {what} | {} | {:.2} | {:.2} | {:.3} | {} | {:.1} |",
            self.micros.len(),
            Self::percentile(&self.micros, 0.5) as f64 / 1e3,
            Self::percentile(&self.micros, 0.99) as f64 / 1e3,
            mean(&self.requests),
            Self::percentile(&self.requests, 0.99),
            mean(&self.bytes) / 1024.0,
        )
    }
}

struct Http {
    client: Client<HttpConnector, Empty<Bytes>>,
    base: String,
}

impl Http {
    async fn get(&self, tenant: &TenantId, id: &TraceId) -> (u16, usize) {
        let request = hyper::Request::get(format!("{}/api/traces/{id}", self.base))
            .header("accept", "application/protobuf")
            .header("x-scope-orgid", tenant.as_str())
            .body(Empty::new())
            .expect("request");
        let response = self.client.request(request).await.expect("HTTP");
        let status = response.status().as_u16();
        let body = response.into_body().collect().await.expect("body").to_bytes();
        (status, body.len())
    }
}

/// Catalogue load, then cold and warm known IDs and unknown IDs for one store and block count.
async fn measure(store_name: &str, storage: &Storage, blocks: usize, known: &[TraceId], scale: &Scale) -> Vec<String> {
    let tenant = tenant(blocks);
    let mut rows = Vec::new();

    // The catalogue's load, as a querier starting up pays it once.
    let before = storage.request_counts();
    let started = Instant::now();
    let catalog = BlockCatalog::new(storage.clone());
    let loaded = catalog.refresh(&tenant).await.expect("catalogue loads");
    assert_eq!(loaded.len(), blocks);
    let used = storage.request_counts().since(&before);
    let bloom_bytes: usize = loaded.iter().map(|b| b.bloom_bytes()).sum();
    rows.push(format!(
        "| {store_name} | {blocks} | catalogue load (once per querier start) | 1 | {:.0} | | {} | | {:.0} (bloom in memory: {:.0} KB) |",
        started.elapsed().as_secs_f64() * 1e3,
        used.total(),
        used.get_bytes as f64 / 1024.0,
        bloom_bytes as f64 / 1024.0,
    ));

    let data_dir = tempfile::tempdir().expect("temp dir");
    let mut config = common::server::loopback_config(data_dir.path());
    config.block_refresh_interval = Duration::from_secs(3600);
    config.multitenancy = true;
    let server = Server::start_with_storage(config, storage.clone()).await.expect("server starts");
    let querier = server.querier().clone();
    // The server's first refresh loads every tenant in the store; measure only once it is done.
    while querier.catalog().size().blocks < scale.blocks + scale.small {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let http = Http {
        client: Client::builder(TokioExecutor::new()).build_http(),
        base: format!("http://{}", server.http_addr()),
    };
    // Warm the connection, not the querier.
    assert_eq!(http.get(&tenant, &TraceId::from_hex("1").expect("id")).await.0, 404);

    let ids: Vec<TraceId> = known.iter().take(blocks).cycle().take(scale.known_lookups.max(1)).copied().collect();
    for (pass, what) in [(0, "known ID, cold (footer read)"), (1, "known ID, warm")] {
        let mut sample = Sample::default();
        for id in ids.iter().take(if pass == 0 { blocks.min(ids.len()) } else { ids.len() }) {
            let before = storage.request_counts();
            let started = Instant::now();
            let (status, bytes) = http.get(&tenant, id).await;
            sample.add(started.elapsed(), storage.request_counts().since(&before));
            assert!(status == 200 && bytes > 0, "trace {id}: {status}");
        }
        rows.push(sample.row(store_name, blocks, what));
    }

    let mut generator = TraceGenerator::new(9_999);
    let mut sample = Sample::default();
    for _ in 0..scale.unknown_lookups {
        let trace = generator.next_trace();
        let id = TraceId::from_slice(&trace[0].scope_spans[0].spans[0].trace_id).expect("valid");
        let before = storage.request_counts();
        let started = Instant::now();
        let (status, _) = http.get(&tenant, &id).await;
        sample.add(started.elapsed(), storage.request_counts().since(&before));
        assert_eq!(status, 404);
    }
    rows.push(sample.row(store_name, blocks, "unknown ID"));
    server.shutdown().await.expect("server stops");
    rows
}

fn main() {
    let scale = scale();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    runtime.block_on(async {
        let (local, known, _folder) = local_dataset(&scale).await;
        let listed = list_blocks(&local, &tenant(scale.blocks)).await.expect("list").committed.len();
        assert_eq!(listed, scale.blocks, "dataset complete");
        let s3 = copy_to_s3(&local, "lookup-bench").await;
        let mut rows = vec![
            "| store | blocks | lookup | n | p50 ms | p99 ms | requests/lookup (mean) | requests p99 | KB read/lookup (mean) |"
                .to_owned(),
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |".to_owned(),
        ];
        for (name, storage) in [("local folder", &local), ("S3 (moto)", &s3)] {
            for blocks in [scale.small, scale.blocks] {
                rows.extend(measure(name, storage, blocks, &known, &scale).await);
            }
        }
        println!("trace by ID, {} spans per block:\n{}", scale.spans_per_block, rows.join("\n"));
    });
}
