//! SQL over spans against DuckDB and against plain DataFusion, in the same run, over the same Parquet
//! files, on the two layouts users have (issue 25): blocks exactly as the ingester cuts them from
//! 1,000-span protobuf requests (tens of ~70 k-span blocks), and the same blocks after compaction.
//!
//! Queries: group-bys over `service_name`, `name` and `status_code`, filters on them, a map-attribute
//! filter, percentiles, time-bucketed counts (`date_bin`), the `traces` view's slowest traces, and one
//! trace by ID. spanlake runs them in-process through the same engine `POST /api/sql` uses, with
//! 2 partitions; plain DataFusion (the same version, 2 partitions, its own Parquet table over the block
//! files: the reference for what spanlake's table adds) and DuckDB (Python package from the test tools,
//! 2 threads) run the same question. Each warms up once, then the median of several runs is reported,
//! with spanlake's time over DuckDB's and over plain DataFusion's. Every engine must return the same
//! number of rows. (d) is also compared with the trace-by-ID lookup of the same trace.
//!
//! `cargo bench --bench sql [-- WORD…]` runs it at full size (6 M spans; the layouts are kept under
//! `target/bench-data/`), only the queries whose name contains a WORD if any are given;
//! `cargo test --benches` runs the same code on 20 k spans.

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::Path;

use datafusion::prelude::{ParquetReadOptions, SessionConfig, SessionContext};
use futures::StreamExt;
use spanlake::ids::TraceId;
use spanlake::query::{Querier, QueryOptions};
use spanlake::sql::{SqlEngine, SqlLimits, TRACES_VIEW};

use common::dataset::{IngestedLayouts, ingested_layouts};

/// Spans ingested, and timed runs per query.
fn scale() -> (usize, usize) {
    common::bench::pick((6_000_000, 5), (20_000, 1))
}

struct Query {
    name: &'static str,
    spanlake: String,
    /// The same question over the stored columns, where they differ (IDs are binary, an unset status is
    /// NULL); `None`: spanlake's SQL.
    plain: Option<String>,
    /// `{spans}` stands for the files.
    duckdb: String,
}

impl Query {
    fn same(name: &'static str, sql: &str, duckdb: &str) -> Self {
        Self { name, spanlake: sql.to_owned(), plain: None, duckdb: duckdb.to_owned() }
    }
}

fn queries(trace: &TraceId) -> Vec<Query> {
    let hex = trace.to_hex();
    let status = "coalesce(status_code, 'unset')";
    vec![
        Query::same(
            "(a) count, avg by service",
            "SELECT service_name, count(*), avg(duration_ns) FROM spans GROUP BY 1 ORDER BY 2 DESC",
            "SELECT service_name, count(*), avg(duration_ns) FROM {spans} GROUP BY 1 ORDER BY 2 DESC",
        ),
        Query::same(
            "(b) count by name",
            "SELECT name, count(*) FROM spans GROUP BY name",
            "SELECT name, count(*) FROM {spans} GROUP BY name",
        ),
        Query {
            name: "(c) count by status",
            spanlake: "SELECT status_code, count(*) FROM spans GROUP BY status_code".into(),
            plain: Some(format!("SELECT {status}, count(*) FROM spans GROUP BY 1")),
            duckdb: format!("SELECT {status}, count(*) FROM {{spans}} GROUP BY 1"),
        },
        Query {
            name: "(d) errors by service",
            spanlake: "SELECT service_name, count(*) FROM spans WHERE status_code = 'error' GROUP BY 1".into(),
            plain: None,
            duckdb: "SELECT service_name, count(*) FROM {spans} WHERE status_code = 'error' GROUP BY 1".into(),
        },
        Query::same(
            "(e) one service by name",
            "SELECT name, count(*), max(duration_ns) FROM spans WHERE service_name = 'checkout' GROUP BY name",
            "SELECT name, count(*), max(duration_ns) FROM {spans} WHERE service_name = 'checkout' GROUP BY name",
        ),
        Query::same(
            "(f) attribute filter count",
            "SELECT count(*) FROM spans WHERE attributes['http.route'] = '/api/checkout'",
            "SELECT count(*) FROM {spans} WHERE attributes['http.route'] = '/api/checkout'",
        ),
        Query::same(
            "(g) p99 by name",
            "SELECT name, percentile_cont(0.99) WITHIN GROUP (ORDER BY duration_ns) FROM spans GROUP BY name",
            "SELECT name, quantile_cont(duration_ns, 0.99) FROM {spans} GROUP BY name",
        ),
        Query::same(
            "(h) spans per 10 s",
            "SELECT date_bin(INTERVAL '10 seconds', start_time) AS t, count(*) FROM spans GROUP BY 1 ORDER BY 1",
            // DuckDB's `time_bucket` does not take nanosecond timestamps; the same arithmetic by hand.
            "SELECT epoch_ns(start_time) // 10000000000 AS t, count(*) FROM {spans} GROUP BY 1 ORDER BY 1",
        ),
        Query::same(
            "(i) slowest traces",
            "SELECT trace_id, duration_ns FROM traces ORDER BY duration_ns DESC LIMIT 10",
            // Blocks store start and duration; the end is their sum (docs/storage-format.md).
            "SELECT trace_id, max(epoch_ns(start_time) + duration_ns) - min(epoch_ns(start_time)) AS duration_ns \
             FROM {spans} GROUP BY trace_id ORDER BY duration_ns DESC LIMIT 10",
        ),
        Query {
            name: "(j) one trace by trace_id",
            spanlake: format!("SELECT * FROM spans WHERE trace_id = '{hex}'"),
            plain: Some(format!("SELECT * FROM spans WHERE trace_id = X'{hex}'")),
            duckdb: format!("SELECT * FROM {{spans}} WHERE trace_id = unhex('{hex}')"),
        },
    ]
}

/// Plain DataFusion over a layout's block files: its own listing table, under a view that adds the end
/// time the blocks do not store (as a DataFusion user would), and the same `traces` view.
async fn plain_datafusion(layouts: &IngestedLayouts, folder: &Path) -> SessionContext {
    // DataFusion's defaults (text read as Utf8View, no row filters), except that each block is a folder.
    let config = SessionConfig::new()
        .with_target_partitions(2)
        .set_bool("datafusion.execution.listing_table_ignore_subdirectory", false);
    let context = SessionContext::new_with_config(config);
    let blocks = folder.join(format!("blocks/{}/blocks/", layouts.tenant));
    let options = ParquetReadOptions::default().file_extension("data.parquet");
    context.register_parquet("blocks", blocks.to_string_lossy(), options).await.expect("register the block files");
    let spans = "CREATE VIEW spans AS SELECT *, \
                 to_timestamp_nanos(CAST(start_time AS BIGINT) + duration_ns) AS end_time FROM blocks";
    context.sql(spans).await.expect("the spans view");
    context.sql(&format!("CREATE VIEW traces AS {TRACES_VIEW}")).await.expect("the traces view");
    context
}

async fn run_plain(context: &SessionContext, sql: &str) -> usize {
    let frame = context.sql(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    let mut stream = frame.execute_stream().await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    let mut rows = 0;
    while let Some(batch) = stream.next().await {
        rows += batch.unwrap_or_else(|e| panic!("{sql}: {e}")).num_rows();
    }
    rows
}

fn main() {
    let (spans, runs) = scale();
    let words: Vec<String> = std::env::args().skip(1).filter(|arg| !arg.starts_with("--")).collect();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        let layouts = ingested_layouts(spans).await;
        let trace = layouts.known[layouts.known.len() / 2];
        let queries: Vec<Query> = queries(&trace)
            .into_iter()
            .filter(|query| words.is_empty() || words.iter().any(|word| query.name.contains(word.as_str())))
            .collect();
        for (layout, folder) in [("as ingested", &layouts.ingested), ("compacted", &layouts.compacted)] {
            let storage = IngestedLayouts::storage(folder);
            let querier = Querier::new(storage, QueryOptions::default());
            let engine = SqlEngine::new(querier.clone(), SqlLimits { partitions: 2, ..SqlLimits::default() })
                .expect("SQL engine");
            let blocks = querier.catalog().blocks(&layouts.tenant).await.expect("catalogue").len();
            let plain = plain_datafusion(&layouts, folder).await;
            let duck_queries: Vec<(&str, &str)> = queries.iter().map(|q| (q.name, q.duckdb.as_str())).collect();
            let duck = common::bench::duckdb(&layouts.glob(folder), runs, &duck_queries);

            println!("\n{spans} spans {layout}: {blocks} blocks; median of {runs} warm runs, 2 partitions / 2 threads");
            println!(
                "{:<28} {:>10} {:>10} {:>10} {:>8} {:>8} {:>7}",
                "query", "spanlake", "DataFusion", "DuckDB", "/DuckDB", "/DF", "rows"
            );
            for query in &queries {
                let (ours, rows) = common::bench::timed(runs, async || {
                    common::bench::run_sql(&engine, &layouts.tenant, &query.spanlake).await
                })
                .await;
                let plain_sql = query.plain.as_deref().unwrap_or(&query.spanlake);
                let (reference, reference_rows) =
                    common::bench::timed(runs, async || run_plain(&plain, plain_sql).await).await;
                let theirs = &duck[query.name];
                let duck_ms = theirs["median_ms"].as_f64().expect("DuckDB timing");
                assert_eq!(theirs["rows"].as_u64(), Some(rows as u64), "{}: DuckDB returns as many rows", query.name);
                assert_eq!(reference_rows, rows, "{}: DataFusion returns as many rows", query.name);
                println!(
                    "{:<28} {:>10.1} {:>10.1} {:>10.1} {:>8.2} {:>8.2} {:>7}",
                    query.name,
                    ours,
                    reference,
                    duck_ms,
                    ours / duck_ms,
                    ours / reference,
                    rows
                );
            }
            if queries.iter().any(|query| query.name.starts_with("(j)")) {
                let (lookup_ms, spans) = common::bench::timed(runs * 10, async || {
                    querier.find_trace(&layouts.tenant, &trace, Default::default()).await.expect("lookup").span_count
                })
                .await;
                println!(
                    "{:<28} {lookup_ms:>10.2} {:>10} {:>10} {:>8} {:>8} {spans:>7}",
                    "(j) as a lookup", "", "", "", ""
                );
            }
        }
    });
}
