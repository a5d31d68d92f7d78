//! Timing helpers shared by the end-to-end benchmarks (SQL, compaction): warm-up once, then the median
//! of several runs, each checked to give the same answer.

use std::time::Instant;

use futures::StreamExt;
use spanlake::ids::TenantId;
use spanlake::sql::SqlEngine;

/// The middle value.
pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Runs a query to the end; returns the rows it produced.
pub async fn run_sql(engine: &SqlEngine, tenant: &TenantId, sql: &str) -> usize {
    let mut rows = engine.query(tenant, sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    let mut count = 0;
    while let Some(batch) = rows.next().await {
        count += batch.unwrap_or_else(|e| panic!("{sql}: {e}")).num_rows();
    }
    count
}

/// Median milliseconds of `runs` runs after one warm-up, and the result every run must repeat.
pub async fn timed<T: PartialEq + std::fmt::Debug>(runs: usize, mut once: impl AsyncFnMut() -> T) -> (f64, T) {
    let result = once().await;
    let mut millis = Vec::new();
    for _ in 0..runs {
        let started = Instant::now();
        assert_eq!(once().await, result, "every run returns the same result");
        millis.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    (median(millis), result)
}

/// The SQL issue's queries (a)–(c) as spanlake runs them, by name; (b) covers 01:00–02:00 on
/// 2026-01-01, the second hour of the benchmark datasets.
pub fn sql_queries() -> [(&'static str, String); 3] {
    [
        ("(a) count by service", "SELECT service_name, count(*) FROM spans GROUP BY service_name".into()),
        (
            "(b) p99 by service, name, 1 h",
            "SELECT service_name, name, percentile_cont(0.99) WITHIN GROUP (ORDER BY duration_ns) FROM spans \
             WHERE start_time >= TIMESTAMP '2026-01-01T01:00:00Z' AND start_time < TIMESTAMP '2026-01-01T02:00:00Z' \
             GROUP BY service_name, name"
                .into(),
        ),
        (
            "(c) attribute filter count",
            "SELECT count(*) FROM spans WHERE attributes['http.response.status_code'] = '500'".into(),
        ),
    ]
}

/// 2026-01-01T00:00:00Z, where the synthetic clock of the benchmark datasets starts.
pub const T0: u64 = 1_767_225_600_000_000_000;

/// How big a benchmark runs: full size under `cargo bench`, small under `cargo test --benches`.
#[derive(Clone, Copy, Debug)]
pub struct Scale {
    pub blocks: usize,
    pub spans_per_block: usize,
    /// Timed runs after the warm-up.
    pub runs: usize,
}

/// `full` when the process was started by `cargo bench` (it passes `--bench`), else `test` (the bench is
/// running as a test, under `cargo test --benches`).
pub fn pick<T>(full: T, test: T) -> T {
    if std::env::args().any(|arg| arg == "--bench") { full } else { test }
}

/// Times `(name, sql)` queries in DuckDB (2 threads) over the Parquet files `glob` matches: `{spans}` in
/// the SQL stands for them. One warm-up, then `runs` runs; `{name: {"median_ms", "min_ms", "rows"}}`.
pub fn duckdb(glob: &str, runs: usize, queries: &[(&str, &str)]) -> serde_json::Value {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let input: Vec<serde_json::Value> =
        queries.iter().map(|(name, sql)| serde_json::json!({ "name": name, "sql": sql })).collect();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tools/duckdb_bench.py");
    let mut child = Command::new(super::tools::tool("python"))
        .arg(script)
        .args([glob, &runs.to_string(), "2"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start DuckDB");
    child.stdin.take().expect("stdin").write_all(serde_json::to_string(&input).unwrap().as_bytes()).unwrap();
    let output = child.wait_with_output().expect("DuckDB finishes");
    assert!(output.status.success(), "DuckDB failed");
    serde_json::from_slice(&output.stdout).expect("DuckDB report")
}
