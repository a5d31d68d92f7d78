//! SQL over spans against DuckDB, in the same run, over the same Parquet files (issue 5): 500 blocks of
//! 20 k realistic spans on the local folder, each block 36 s later than the one before (5 hours in all,
//! as an ingester cutting blocks over time would leave them).
//!
//! Queries: (a) spans per service, (b) p99 duration by service and operation over one hour,
//! (c) a count filtered on an attribute, (d) one trace by ID. spanlake runs them in-process through the
//! same engine `POST /api/sql` uses, with 2 partitions; DuckDB (Python package from the test tools)
//! with 2 threads. Both warm up once, then the median of several runs is reported, with the ratio.
//! (d) is also compared with the trace-by-ID lookup of the same trace.
//!
//! `cargo bench --bench sql` runs it at full size (the dataset is kept under `target/bench-data/`);
//! `cargo test --benches` runs the same code on 6 blocks of 2 k spans.

#[path = "../tests/common/mod.rs"]
mod common;

use spanlake::query::{Querier, QueryOptions};
use spanlake::sql::{SqlEngine, SqlLimits};

use common::bench::Scale;

fn scale() -> Scale {
    common::bench::pick(
        Scale { blocks: 500, spans_per_block: 20_000, runs: 5 },
        Scale { blocks: 6, spans_per_block: 2_000, runs: 1 },
    )
}

struct Query {
    name: &'static str,
    spanlake: String,
    duckdb: String,
}

fn queries(trace_hex: &str) -> Vec<Query> {
    let [a, b, c] = common::bench::sql_queries();
    // The same hour as (b); DuckDB reads the column as TIMESTAMPTZ_NS, which it will not compare with a
    // TIMESTAMPTZ literal.
    let (from, to) = ("2026-01-01T01:00:00Z", "2026-01-01T02:00:00Z");
    let duck_window = format!("start_time >= '{from}'::TIMESTAMPTZ_NS AND start_time < '{to}'::TIMESTAMPTZ_NS");
    vec![
        Query {
            name: a.0,
            spanlake: a.1,
            duckdb: "SELECT service_name, count(*) FROM {spans} GROUP BY service_name".into(),
        },
        Query {
            name: b.0,
            spanlake: b.1,
            duckdb: format!(
                "SELECT service_name, name, quantile_cont(duration_ns, 0.99) FROM {{spans}} WHERE {duck_window} \
                 GROUP BY service_name, name"
            ),
        },
        Query {
            name: c.0,
            spanlake: c.1,
            duckdb: "SELECT count(*) FROM {spans} WHERE attributes['http.response.status_code'] = '500'".into(),
        },
        Query {
            name: "(d) one trace by trace_id",
            spanlake: format!("SELECT * FROM spans WHERE trace_id = '{trace_hex}'"),
            duckdb: format!("SELECT * FROM {{spans}} WHERE trace_id = unhex('{trace_hex}')"),
        },
    ]
}

fn main() {
    let scale = scale();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        let tenant = common::dataset::sql_tenant();
        let (storage, known, folder) = common::dataset::sql_blocks(scale.blocks, scale.spans_per_block).await;
        let querier = Querier::new(storage, QueryOptions::default());
        let engine =
            SqlEngine::new(querier.clone(), SqlLimits { partitions: 2, ..SqlLimits::default() }).expect("SQL engine");
        let trace = known[known.len() / 2];
        let queries = queries(&trace.to_hex());
        let glob = folder.join(format!("blocks/{tenant}/blocks/*/data.parquet"));
        let duck_queries: Vec<(&str, &str)> = queries.iter().map(|q| (q.name, q.duckdb.as_str())).collect();
        let duck = common::bench::duckdb(glob.to_str().expect("UTF-8 path"), scale.runs, &duck_queries);

        println!(
            "{} spans in {} blocks; median of {} warm runs each, 2 partitions / 2 threads",
            scale.blocks * scale.spans_per_block,
            scale.blocks,
            scale.runs
        );
        println!("{:<32} {:>12} {:>12} {:>8} {:>8}", "query", "spanlake ms", "DuckDB ms", "ratio", "rows");
        for query in &queries {
            let (ours, rows) = common::bench::timed(scale.runs, async || {
                common::bench::run_sql(&engine, &tenant, &query.spanlake).await
            })
            .await;
            let theirs = &duck[query.name];
            let duck_ms = theirs["median_ms"].as_f64().expect("DuckDB timing");
            assert_eq!(theirs["rows"].as_u64(), Some(rows as u64), "{}: both engines return the same rows", query.name);
            println!("{:<32} {:>12.1} {:>12.1} {:>8.2} {:>8}", query.name, ours, duck_ms, ours / duck_ms, rows);
        }
        let lookup = async |runs| {
            common::bench::timed(runs, async || {
                querier.find_trace(&tenant, &trace, Default::default()).await.expect("lookup").span_count
            })
            .await
        };
        let (lookup_ms, spans) = lookup(scale.runs).await;
        println!("{:<32} {:>12.1} {:>12} {:>8} {:>8}", "trace-by-ID lookup (same trace)", lookup_ms, "", "", spans);

        // (d) in detail, with more runs since each takes milliseconds: the same query for an ID no block
        // holds costs everything but the read (session, parsing, pruning); with one clause more DataFusion
        // plans it instead of the point-query path; then the lookup again.
        let point_runs = scale.runs * 40;
        let unknown = "SELECT * FROM spans WHERE trace_id = '00000000000000000000000000000001'";
        let planned = format!("{} AND true", queries[3].spanlake);
        for (label, sql) in [
            ("(d) again", queries[3].spanlake.as_str()),
            ("(d) for an unknown ID", unknown),
            ("(d) planned by DataFusion", planned.as_str()),
        ] {
            let (ms, rows) =
                common::bench::timed(point_runs, async || common::bench::run_sql(&engine, &tenant, sql).await).await;
            println!("{label:<32} {ms:>12.2} {:>12} {:>8} {rows:>8}   ({point_runs} runs)", "", "");
        }
        let (lookup_ms, _) = lookup(point_runs).await;
        println!("{:<32} {lookup_ms:>12.2} {:>12} {:>8} {spans:>8}   ({point_runs} runs)", "lookup again", "", "");
    });
}
