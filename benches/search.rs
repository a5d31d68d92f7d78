//! Tempo's search against DuckDB, in the same run, over the same Parquet files (issue 24): the SQL
//! benchmark's data set (500 blocks of 20 k realistic spans on the local folder, 36 s apart: 5 hours as
//! an ingester would have cut them).
//!
//! Searches, as Grafana sends them (limit 20): (a) one of the 16 services over the last hour; (b) server
//! errors slower than 100 ms, whole store; (c) an attribute value present in one trace only, whole store;
//! (d) a structural query, whole store; (e) the values of a resource and of a span attribute (the TraceQL
//! editor's autocomplete). Each runs through the same `Searcher` that `GET /api/search`
//! uses, 2 partitions, p50 and p99 over many runs after a warm-up; DuckDB (2 threads) runs the SQL a
//! user would write for the same question on the same files, median of its runs.
//!
//! `cargo bench --bench search [-- WORD…]` runs it at full size (only the searches whose names hold a
//! WORD, when given; the data set is shared with `cargo bench --bench
//! sql` under `target/bench-data/`); `cargo test --benches` runs the same code on 6 blocks of 2 k spans.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Instant;

use common::bench::{Scale, T0};
use common::dataset::SQL_BLOCK_SPACING_S;
use spanlake::ids::TenantId;
use spanlake::query::{Querier, QueryOptions};
use spanlake::search::{SearchRequest, Searcher, TagParams, TagsRequest};
use spanlake::sql::{SqlEngine, SqlLimits};

fn scale() -> Scale {
    common::bench::pick(
        Scale { blocks: 500, spans_per_block: 20_000, runs: 50 },
        Scale { blocks: 6, spans_per_block: 2_000, runs: 3 },
    )
}

struct Search {
    name: &'static str,
    traceql: String,
    /// Unix ns window, as Grafana's `start`/`end` (whole seconds).
    window: Option<(i64, i64)>,
    duckdb: String,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

/// A value of a high-cardinality attribute held by exactly one trace, found with SQL in the middle block.
async fn rare_offset(engine: &SqlEngine, tenant: &TenantId, blocks: usize) -> String {
    let middle = T0 as i64 + (blocks as i64 / 2) * SQL_BLOCK_SPACING_S as i64 * 1_000_000_000;
    let sql = format!(
        "SELECT attributes['messaging.kafka.message.offset'] AS v FROM spans \
         WHERE start_time >= to_timestamp_nanos({middle}) AND attributes['messaging.kafka.message.offset'] IS NOT NULL \
         GROUP BY v HAVING count(DISTINCT trace_id) = 1 ORDER BY v LIMIT 1"
    );
    let batches = engine.query(tenant, &sql).await.expect("query").collect().await.expect("rows");
    let column = arrow::compute::cast(batches[0].column(0), &arrow::datatypes::DataType::Utf8).unwrap();
    use arrow::array::AsArray;
    column.as_string::<i32>().value(0).to_owned()
}

fn main() {
    let scale = scale();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        let tenant = common::dataset::sql_tenant();
        let (storage, _known, folder) = common::dataset::sql_blocks(scale.blocks, scale.spans_per_block).await;
        let querier = Querier::new(storage, QueryOptions::default());
        let engine =
            SqlEngine::new(querier.clone(), SqlLimits { partitions: 2, ..SqlLimits::default() }).expect("SQL engine");
        let searcher = Searcher::new(engine.clone());
        let offset = rare_offset(&engine, &tenant, scale.blocks).await;

        let last = T0 as i64 + scale.blocks as i64 * SQL_BLOCK_SPACING_S as i64 * 1_000_000_000;
        let hour_start = (last - 3_600_000_000_000).max(T0 as i64);
        let rfc3339 = |ns: i64| {
            humantime::format_rfc3339_nanos(std::time::UNIX_EPOCH + std::time::Duration::from_nanos(ns as u64))
        };
        // DuckDB reads the column as TIMESTAMPTZ_NS, which it compares only with literals of that type.
        let duck_window = format!(
            "start_time >= '{}'::TIMESTAMPTZ_NS AND start_time <= '{}'::TIMESTAMPTZ_NS",
            rfc3339(hour_start),
            rfc3339(last)
        );
        let newest = "GROUP BY trace_id ORDER BY min(start_time) DESC, trace_id LIMIT 20";
        let searches = vec![
            Search {
                name: "(a) one service, last hour",
                traceql: r#"{resource.service.name="checkout"}"#.into(),
                window: Some((hour_start, last)),
                duckdb: format!(
                    "SELECT trace_id, min(start_time) FROM {{spans}} WHERE service_name = 'checkout' AND {duck_window} {newest}"
                ),
            },
            Search {
                name: "(b) 5xx slower than 100 ms",
                traceql: "{span.http.response.status_code >= 500 && duration > 100ms}".into(),
                window: None,
                duckdb: format!(
                    "SELECT trace_id, min(start_time) FROM {{spans}} WHERE \
                     TRY_CAST(attributes['http.response.status_code'] AS DOUBLE) >= 500 AND duration_ns > 100000000 {newest}"
                ),
            },
            Search {
                name: "(c) rare value, whole store",
                traceql: format!("{{span.messaging.kafka.message.offset = {offset}}}"),
                window: None,
                duckdb: format!(
                    "SELECT trace_id, min(start_time) FROM {{spans}} WHERE \
                     attributes['messaging.kafka.message.offset'] = '{offset}' {newest}"
                ),
            },
            Search {
                name: "(d) frontend >> error",
                traceql: r#"{resource.service.name="frontend"} >> {status=error}"#.into(),
                window: None,
                duckdb: "WITH RECURSIVE s AS (SELECT trace_id, span_id, parent_span_id, service_name, status_code, start_time \
                     FROM {spans} WHERE trace_id IN (SELECT trace_id FROM {spans} WHERE status_code = 'error')), \
                     up(trace_id, ancestor) AS (SELECT trace_id, parent_span_id FROM s WHERE status_code = 'error' \
                     UNION SELECT up.trace_id, p.parent_span_id FROM up JOIN s p ON p.trace_id = up.trace_id AND p.span_id = up.ancestor) \
                     SELECT up.trace_id, max(a.start_time) FROM up JOIN s a ON a.trace_id = up.trace_id AND a.span_id = up.ancestor \
                     WHERE a.service_name = 'frontend' GROUP BY up.trace_id ORDER BY 2 DESC, 1 LIMIT 20"
                    .into(),
            },
        ];
        let tag_searches = [
            ("(e) values of resource.service.name", "resource.service.name", "SELECT DISTINCT service_name FROM {spans}"),
            (
                "(e) values of span.http.route",
                "span.http.route",
                "SELECT DISTINCT attributes['http.route'] FROM {spans} WHERE attributes['http.route'] IS NOT NULL",
            ),
        ];
        // `cargo bench --bench search -- '(a)' '(e)'` runs the searches whose names hold any of the words.
        let only: Vec<String> = std::env::args().skip(1).filter(|arg| !arg.starts_with("--")).collect();
        let picked = |name: &str| only.is_empty() || only.iter().any(|word| name.contains(word.as_str()));
        let searches: Vec<Search> = searches.into_iter().filter(|s| picked(s.name)).collect();
        let tag_searches: Vec<_> = tag_searches.into_iter().filter(|(name, _, _)| picked(name)).collect();
        let mut duck_input: Vec<(&str, &str)> = searches.iter().map(|s| (s.name, s.duckdb.as_str())).collect();
        duck_input.extend(tag_searches.iter().map(|(name, _, sql)| (*name, *sql)));
        let glob = folder.join(format!("blocks/{tenant}/blocks/*/data.parquet"));
        let duck = common::bench::duckdb(glob.to_str().expect("UTF-8 path"), scale.runs.min(10), &duck_input);

        println!(
            "{} spans in {} blocks; spanlake p50/p99 of {} warm runs, DuckDB median of {}; 2 partitions / 2 threads",
            scale.blocks * scale.spans_per_block,
            scale.blocks,
            scale.runs,
            scale.runs.min(10)
        );
        println!(
            "{:<38} {:>9} {:>9} {:>10} {:>7} {:>7} {:>8} {:>8}",
            "search", "p50 ms", "p99 ms", "DuckDB ms", "ratio", "traces", "scanned", "blocks"
        );
        for search in &searches {
            let mut request = SearchRequest::traceql(&search.traceql).expect("valid TraceQL");
            if let Some((start, end)) = search.window {
                request.start_unix_nano = Some(start);
                request.end_unix_nano = Some(end);
            }
            let first = searcher.search(&tenant, &request).await.expect("search");
            let mut millis = Vec::new();
            for _ in 0..scale.runs {
                let started = Instant::now();
                let answer = searcher.search(&tenant, &request).await.expect("search");
                millis.push(started.elapsed().as_secs_f64() * 1000.0);
                assert_eq!(answer.traces, first.traces, "{}: every run gives the same answer", search.name);
            }
            millis.sort_by(f64::total_cmp);
            let (p50, p99) = (percentile(&millis, 0.5), percentile(&millis, 0.99));
            let duck_ms = duck[search.name]["median_ms"].as_f64().expect("DuckDB timing");
            let duck_rows = duck[search.name]["rows"].as_u64().expect("DuckDB rows");
            assert!(!first.traces.is_empty(), "{}: finds traces", search.name);
            if search.name.starts_with("(c)") {
                assert_eq!((first.traces.len(), duck_rows), (1, 1), "(c): one trace holds the value");
            }
            println!(
                "{:<38} {:>9.2} {:>9.2} {:>10.1} {:>7.2} {:>7} {:>8} {:>8}",
                search.name,
                p50,
                p99,
                duck_ms,
                p50 / duck_ms,
                first.traces.len(),
                first.metrics.blocks_scanned,
                first.metrics.total_blocks
            );
        }
        let tags = TagsRequest::from_params(&TagParams::default()).expect("default tag request");
        for (name, tag, _) in &tag_searches {
            let first = searcher.tag_values(&tenant, tag, &tags).await.expect("tag values");
            let mut millis = Vec::new();
            for _ in 0..scale.runs {
                let started = Instant::now();
                let values = searcher.tag_values(&tenant, tag, &tags).await.expect("tag values");
                millis.push(started.elapsed().as_secs_f64() * 1000.0);
                assert_eq!(values, first, "{name}: every run gives the same values");
            }
            millis.sort_by(f64::total_cmp);
            let (p50, p99) = (percentile(&millis, 0.5), percentile(&millis, 0.99));
            let duck_ms = duck[*name]["median_ms"].as_f64().expect("DuckDB timing");
            let duck_rows = duck[*name]["rows"].as_u64().expect("DuckDB rows");
            assert_eq!(first.len() as u64, duck_rows, "{name}: the same values as DuckDB finds");
            println!(
                "{:<38} {:>9.2} {:>9.2} {:>10.1} {:>7.2} {:>7}",
                name,
                p50,
                p99,
                duck_ms,
                p50 / duck_ms,
                first.len()
            );
        }
    });
}
