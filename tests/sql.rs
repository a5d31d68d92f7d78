//! SQL over spans (issue 5, CONTRACTS §4–5), through `POST /api/sql` of a real server.
//!
//! The behaviour of the SQL itself lives in the golden files under `tests/sql/*.slt` (the sqllogictest
//! format DataFusion uses: a query, then the rows it must return), run against spans sent as OTLP/JSON
//! from `tests/fixtures/sql/`: part flushed to blocks, part still in the ingester. The tests here cover
//! what a golden file cannot: result formats, limits, concurrency, tenants, and what pruning costs in
//! object-store requests on the real S3 test server.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use common::faulty::{FaultyStore, check_between_writes};
use common::server::{TestServer, send, send_synthetic_traces, try_send};
use common::{Backend, s3};
use serde_json::Value;
use spanlake::ids::{TenantId, TraceId};
use spanlake::storage::{RangeReads, Storage};
use sqllogictest::{DBOutput, DefaultColumnType};

use common::sql::{answer, load_fixture, rows, sql};

const TRACE_1: &str = "5b8efff798038103d269b633813fc60c";

/// The `/api/sql` endpoint as a sqllogictest database: rows as text, errors as "<status> <message>".
struct HttpDb {
    url: String,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct HttpDbError(String);

#[async_trait]
impl sqllogictest::AsyncDB for HttpDb {
    type Error = HttpDbError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, HttpDbError> {
        let reply = try_send("POST", &self.url, &[("content-type", "application/sql")], sql.to_owned())
            .await
            .map_err(HttpDbError)?;
        let body: Value = serde_json::from_slice(&reply.body).map_err(|e| HttpDbError(e.to_string()))?;
        if reply.status != 200 {
            return Err(HttpDbError(format!("{} {}", reply.status, body["error"].as_str().unwrap_or_default())));
        }
        let types = body["columns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|column| match column["type"].as_str().unwrap_or_default() {
                "Utf8" | "LargeUtf8" | "Utf8View" => DefaultColumnType::Text,
                t if t.starts_with("Int") || t.starts_with("UInt") => DefaultColumnType::Integer,
                t if t.starts_with("Float") => DefaultColumnType::FloatingPoint,
                _ => DefaultColumnType::Any,
            })
            .collect();
        let rows = body["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|row| row.as_array().unwrap().iter().map(cell).collect())
            .collect();
        Ok(DBOutput::Rows { types, rows })
    }

    async fn shutdown(&mut self) {}

    async fn sleep(duration: Duration) {
        tokio::time::sleep(duration).await;
    }
}

/// One value as the golden files show it: NULL, (empty) for an empty string, JSON for nested values.
fn cell(value: &Value) -> String {
    match value {
        Value::Null => "NULL".to_owned(),
        Value::String(text) if text.is_empty() => "(empty)".to_owned(),
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn golden_files() {
    let backend = Backend::local();
    let server = TestServer::start(backend.storage.clone(), |_| {}).await;
    load_fixture(&server, None).await;
    let url = server.query_url("/api/sql?format=json");
    let directory = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sql");
    let mut files: Vec<_> = std::fs::read_dir(&directory).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    assert!(files.len() >= 2, "golden files in {directory:?}");
    for file in files {
        let url = url.clone();
        let mut runner = sqllogictest::Runner::new(move || {
            let url = url.clone();
            async move { Ok::<_, HttpDbError>(HttpDb { url }) }
        });
        runner.with_column_validator(sqllogictest::strict_column_validator);
        if let Err(error) = runner.run_file_async(&file).await {
            panic!("{}: {}", file.display(), error.display(true));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_format_shows_every_column() {
    let backend = Backend::local();
    let server = TestServer::start(backend.storage.clone(), |_| {}).await;
    load_fixture(&server, None).await;
    let query = "SELECT * FROM spans ORDER BY start_time";

    let json: Value = serde_json::from_slice(&sql(&server, query, "json", &[]).await.body).unwrap();
    let names: Vec<&str> = json["columns"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    let expected: Vec<String> = spanlake::sql::sql_schema().fields().iter().map(|f| f.name().clone()).collect();
    assert_eq!(names, expected);
    let json_rows = json["rows"].as_array().unwrap();
    assert_eq!(json_rows.len(), 6);
    let events = names.iter().position(|n| *n == "events").unwrap();
    assert_eq!(json_rows[0][events][0]["name"], "cache.miss", "nested values are JSON: {}", json_rows[0]);
    assert_eq!(json_rows[0][events][0]["attributes"]["key"], "cart:42");

    let ndjson = sql(&server, query, "ndjson", &[]).await;
    assert_eq!(ndjson.headers["content-type"], "application/x-ndjson");
    let objects: Vec<Value> = ndjson.text().lines().map(|line| serde_json::from_str(line).unwrap()).collect();
    assert_eq!(objects.len(), 6);
    assert_eq!(objects[0]["trace_id"], TRACE_1);
    assert_eq!(objects[2]["links"][0]["trace_id"], "00000000000000000000000000000abc", "{}", objects[2]);

    let csv = sql(&server, query, "csv", &[]).await;
    assert!(csv.headers["content-type"].to_str().unwrap().starts_with("text/csv"));
    let text = csv.text();
    let header = text.lines().next().unwrap();
    assert_eq!(header, expected.join(","));
    assert!(text.contains(r#""{""http.route"":""/checkout"",""http.status_code"":""200""}""#), "{text}");

    // Accept picks the format when ?format= is absent; Arrow IPC reads back with every column.
    let url = server.query_url("/api/sql");
    let arrow = send(
        "POST",
        &url,
        &[("content-type", "application/json"), ("accept", "application/vnd.apache.arrow.stream")],
        serde_json::json!({ "query": query }).to_string(),
    )
    .await;
    assert_eq!(arrow.status, 200, "{}", arrow.text());
    let reader = arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(arrow.body.to_vec()), None).unwrap();
    // The engine reads text as Utf8View; the answer carries plain Utf8, which every Arrow reader opens.
    let plain: Vec<arrow::datatypes::Field> = spanlake::sql::sql_schema()
        .fields()
        .iter()
        .map(|field| match field.data_type() {
            arrow::datatypes::DataType::Utf8View => {
                field.as_ref().clone().with_data_type(arrow::datatypes::DataType::Utf8)
            }
            _ => field.as_ref().clone(),
        })
        .collect();
    assert_eq!(reader.schema().as_ref(), &arrow::datatypes::Schema::new(plain));
    let read: usize = reader.map(|batch| batch.unwrap().num_rows()).sum();
    assert_eq!(read, 6);

    let unknown = sql(&server, query, "xml", &[]).await;
    assert_eq!(unknown.status, 400);
    assert!(unknown.text().contains("unknown result format"), "{}", unknown.text());
    let empty = sql(&server, "  ", "json", &[]).await;
    assert_eq!(empty.status, 400);
}

/// A server on a local folder holding the fixture's spans, with these SQL time and memory limits.
async fn server_with_sql_limits(timeout: Duration, memory_bytes: u64) -> TestServer {
    let server = TestServer::start(Backend::local(), |config| {
        config.sql_timeout = timeout;
        config.sql_memory_limit = spanlake::config::ByteSize(memory_bytes);
    })
    .await;
    load_fixture(&server, None).await;
    server
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_over_their_limits_fail_cleanly_and_the_server_keeps_serving() {
    let server = server_with_sql_limits(Duration::from_secs(1), 16 << 20).await;

    let slow = sql(&server, "SELECT count(*) FROM generate_series(1, 100000000000)", "json", &[]).await;
    assert_eq!(slow.status, 504, "{}", slow.text());
    assert!(slow.text().contains("time limit"), "{}", slow.text());

    let big = sql(
        &server,
        "SELECT value % 20000000 AS v, count(*) FROM generate_series(1, 40000000) GROUP BY v",
        "json",
        &[],
    )
    .await;
    assert_eq!(big.status, 507, "{}", big.text());
    assert!(big.text().contains("memory limit"), "{}", big.text());

    assert_eq!(send("GET", &server.query_url("/ready"), &[], "").await.status, 200);
    assert_eq!(rows(&server, "SELECT count(*) FROM spans", &[]).await, vec![vec![Value::from(6)]]);
}

/// Issue 26, defect 1: functions whose result can dwarf their arguments (and literals, which a
/// projection repeats on every row) are refused before they allocate, with the memory limit named, where
/// they used to run for seconds and hold gigabytes that the memory pool never saw.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_that_would_pass_the_memory_limit_are_refused_before_they_are_built() {
    let server = server_with_sql_limits(Duration::from_secs(5), 64 << 20).await;

    let long_literal = format!("SELECT '{}' AS text FROM spans", "x".repeat(20_000));
    for (query, function) in [
        ("SELECT length(repeat('x', 2000000000))", "repeat"),
        ("SELECT cardinality(range(0, 250000000))", "range"),
        ("SELECT cardinality(generate_series(1, 250000000))", "generate_series"),
        ("SELECT length(lpad('x', 2000000000))", "lpad"),
        ("SELECT length(rpad('x', 2000000000, 'ab'))", "rpad"),
        ("SELECT cardinality(array_repeat('x', 100000000))", "array_repeat"),
        ("SELECT cardinality(array_resize([1], 100000000))", "array_resize"),
        // A text of a few kB per row, replaced between every character by 8 kB.
        ("SELECT length(replace(repeat(name, 500), '', repeat('b', 8000))) FROM spans", "replace"),
        ("SELECT length(regexp_replace(repeat(name, 500), '', repeat('b', 8000), 'g')) FROM spans", "regexp_replace"),
        ("SELECT cardinality(range(DATE '1970-01-01', DATE '9999-12-31', INTERVAL '1 second'))", "range"),
        // Folded into one 100 kB literal, then repeated on every row.
        ("SELECT concat(name, repeat('y', 100000)) FROM spans", "literal"),
        (long_literal.as_str(), "literal"),
    ] {
        let reply = sql(&server, query, "json", &[]).await;
        assert_eq!(reply.status, 507, "{query}: {}", reply.text());
        assert!(reply.text().contains(function) && reply.text().contains("memory limit"), "{query}: {}", reply.text());
    }

    // Within the limit, the same functions answer as DataFusion's own.
    let fine = "SELECT repeat('ab', 3), lpad('7', 3, '0'), cardinality(range(0, 10, 2)), \
                replace('aaa', 'a', 'bb'), cardinality(array_repeat(1, 4)), concat(name, '!') FROM spans LIMIT 1";
    let answer = rows(&server, fine, &[]).await;
    assert_eq!(answer[0][..5], [Value::from("ababab"), "007".into(), 5.into(), "bbbbbb".into(), 4.into()]);
    assert!(answer[0][5].as_str().unwrap().ends_with('!'));

    assert_eq!(send("GET", &server.query_url("/ready"), &[], "").await.status, 200);
    assert_eq!(rows(&server, "SELECT count(*) FROM spans", &[]).await, vec![vec![Value::from(6)]]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn now_is_each_querys_own_start() {
    let backend = Backend::local();
    let server = TestServer::start(backend.storage.clone(), |_| {}).await;
    let query = "SELECT CAST(now() AS BIGINT)";
    let first = rows(&server, query, &[]).await[0][0].as_i64().unwrap();
    let second = rows(&server, query, &[]).await[0][0].as_i64().unwrap();
    let wall = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as i64;
    assert!(first < second && second <= wall, "{first} then {second}, wall clock {wall}");
}

/// Polls `check` until it returns something, for at most 30 s.
async fn poll_until<T, F: std::future::Future<Output = Option<T>>>(mut check: impl FnMut() -> F) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(found) = check().await {
            return found;
        }
        assert!(tokio::time::Instant::now() < deadline, "condition not reached in 30 s");
        tokio::task::yield_now().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_query_too_many_is_refused_and_a_dropped_query_frees_its_slot() {
    let backend = Backend::local();
    let server = TestServer::start(backend.storage.clone(), |config| config.sql_max_concurrent = 1).await;
    let url = server.query_url("/api/sql");
    let send_endless = || {
        let url = url.clone();
        tokio::spawn(async move {
            try_send("POST", &url, &[], "SELECT count(*) FROM generate_series(1, 100000000000)").await
        })
    };
    let mut endless = send_endless();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let refused = loop {
        if endless.is_finished() {
            // The endless query arrived while a probe below held the only slot, and was itself refused: resend it.
            let lost = endless.await.expect("endless query task").expect("endless query reply");
            assert_eq!(lost.status, 429, "{}", lost.text());
            endless = send_endless();
        }
        let reply = sql(&server, "SELECT 1", "json", &[]).await;
        if reply.status == 429 {
            break reply;
        }
        assert!(tokio::time::Instant::now() < deadline, "the endless query never held the slot in 30 s");
        tokio::task::yield_now().await;
    };
    assert!(refused.text().contains("sql_max_concurrent"), "{}", refused.text());
    assert_eq!(refused.headers["retry-after"], "1");
    // The client goes away: the query is cancelled and its slot freed.
    endless.abort();
    let _ = endless.await;
    poll_until(|| async { (sql(&server, "SELECT 1", "json", &[]).await.status == 200).then_some(()) }).await;
}

/// Issue 26, item 10: a query whose rows nobody reads (a client that stopped reading) is dropped at its
/// deadline and its slot freed without a poll; its reader, if it ever reads again, learns it timed out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unread_query_frees_its_slot_at_its_deadline() {
    use spanlake::query::{Querier, QueryOptions};
    use spanlake::sql::{SqlEngine, SqlError, SqlLimits};
    let backend = Backend::local();
    let querier = Querier::new(backend.storage.clone(), QueryOptions::default());
    let limits = SqlLimits { timeout: Duration::from_millis(500), max_concurrent: 1, ..SqlLimits::default() };
    let engine = SqlEngine::new(querier, limits).unwrap();
    let tenant = TenantId::single_tenant();
    let unread = engine.query(&tenant, "SELECT value FROM generate_series(1, 100000000000)").await.unwrap();
    assert!(matches!(engine.query(&tenant, "SELECT 1").await, Err(SqlError::Busy(1))), "the only slot is held");
    let freed_after = tokio::time::Instant::now();
    poll_until(|| async { engine.query(&tenant, "SELECT 1").await.ok().map(drop) }).await;
    assert!(freed_after.elapsed() < Duration::from_secs(10), "freed at the deadline, not at some later poll");
    let late = unread.collect().await.unwrap_err();
    assert!(matches!(late, SqlError::Timeout(_)), "{late}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_sees_only_its_own_spans() {
    let backend = Backend::local();
    let server = TestServer::start(backend.storage.clone(), |config| config.multitenancy = true).await;
    load_fixture(&server, Some("team-a")).await;
    let for_b = r#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"b-only"}}]},
        "scopeSpans":[{"spans":[{"traceId":"0000000000000000000000000000000b","spanId":"000000000000000b","name":"b",
        "startTimeUnixNano":"1","endTimeUnixNano":"2"}]}]}]}"#;
    let headers = [("content-type", "application/json"), ("x-scope-orgid", "team-b")];
    assert_eq!(send("POST", &server.traces_url(), &headers, for_b).await.status, 200);

    let query = "SELECT service_name, count(*) FROM spans GROUP BY service_name ORDER BY service_name";
    let a = rows(&server, query, &[("x-scope-orgid", "team-a")]).await;
    assert_eq!(a, vec![vec![Value::from("checkout"), Value::from(5)], vec![Value::from("payments"), Value::from(1)]]);
    let b = rows(&server, query, &[("x-scope-orgid", "team-b")]).await;
    assert_eq!(b, vec![vec![Value::from("b-only"), Value::from(1)]]);
    // Team b flushed too: blocks of both tenants exist, and still neither sees the other's.
    assert_eq!(send("POST", &server.query_url("/flush"), &[], "").await.status, 204);
    assert_eq!(rows(&server, query, &[("x-scope-orgid", "team-b")]).await, b);
    assert_eq!(rows(&server, query, &[("x-scope-orgid", "team-a")]).await, a);
    let c = rows(&server, "SELECT count(*) FROM spans", &[("x-scope-orgid", "team-c")]).await;
    assert_eq!(c, vec![vec![Value::from(0)]]);
    let anonymous = sql(&server, query, "json", &[]).await;
    assert_eq!(anonymous.status, 401, "{}", anonymous.text());
}

/// Sends `traces` traces of a few spans each and flushes them into one block; returns their IDs.
async fn send_block(server: &TestServer, seed: u64, traces: usize) -> Vec<TraceId> {
    let ids = send_synthetic_traces(server, seed, traces).await;
    assert_eq!(send("POST", &server.query_url("/flush"), &[], "").await.status, 204);
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_id_queries_prune_like_a_lookup_on_s3() {
    let storage = s3::S3Server::shared().new_storage("sql-pruning");
    let server = TestServer::start(storage.clone(), |_| {}).await;
    let mut all = Vec::new();
    for seed in 0..12 {
        all.push(send_block(&server, 100 + seed, 40).await);
    }
    let wanted = all[5][7];
    let tenant = TenantId::single_tenant();
    let querier = server.server.querier();
    let query = format!("SELECT count(*) FROM spans WHERE trace_id = '{}'", wanted.to_hex().to_uppercase());

    // Warm both paths (footer cache), then count the requests each makes.
    let lookup = querier.find_trace(&tenant, &wanted, Default::default()).await.unwrap();
    rows(&server, &query, &[]).await;
    let before = storage.request_counts();
    let again = querier.find_trace(&tenant, &wanted, Default::default()).await.unwrap();
    let lookup_requests = storage.request_counts().since(&before);
    let before = storage.request_counts();
    let counted = rows(&server, &query, &[]).await;
    let sql_requests = storage.request_counts().since(&before);
    assert_eq!(counted, vec![vec![Value::from(lookup.span_count as u64)]]);
    assert_eq!(again.span_count, lookup.span_count);
    assert!(lookup_requests.total() >= 1, "{lookup_requests:?}");
    assert!(
        sql_requests.total() <= lookup_requests.total(),
        "SQL made {sql_requests:?}, the lookup {lookup_requests:?}"
    );
    assert_eq!(sql_requests.list, 0, "no LIST per query: {sql_requests:?}");

    // EXPLAIN ANALYZE shows that 11 of the 12 blocks were never opened.
    let explained = rows(&server, &format!("EXPLAIN ANALYZE {query}"), &[]).await;
    let plan = explained.iter().map(|row| row[1].as_str().unwrap_or_default()).collect::<Vec<_>>().join("\n");
    assert!(plan.contains("SpansExec: blocks=12"), "{plan}");
    assert!(plan.contains("scanned=1"), "{plan}");
    assert!(plan.contains("blocks_pruned_by_bloom") || plan.contains("pruned_by_bloom"), "{plan}");
    assert!(plan.contains("TraceReadExec: point_reads=1"), "read like a lookup: {plan}");
    // A few point reads run as one partition: nothing splits and merges their rows again.
    let parallel = ["RepartitionExec", "CoalescePartitionsExec"];
    assert!(!parallel.iter().any(|node| plan.contains(node)), "one partition: {plan}");

    // The `traces` view groups on the stored binary IDs and shows hex afterwards; a filter on its
    // `trace_id` still reaches the scan (normalised, pruned, read like a lookup), and its hex joins `spans`.
    let traces =
        format!("SELECT trace_id, span_count FROM traces WHERE trace_id = '{}'", wanted.to_hex().to_uppercase());
    let one = rows(&server, &traces, &[]).await;
    assert_eq!(one, vec![vec![Value::from(wanted.to_hex()), Value::from(lookup.span_count as u64)]]);
    let explained = rows(&server, &format!("EXPLAIN ANALYZE {traces}"), &[]).await;
    let plan = explained.iter().map(|row| row[1].as_str().unwrap_or_default()).collect::<Vec<_>>().join("\n");
    assert!(plan.contains("scanned=1") && plan.contains("TraceReadExec: point_reads=1"), "{plan}");
    let joined = format!(
        "SELECT count(*) FROM spans s JOIN traces t ON s.trace_id = t.trace_id WHERE t.trace_id = '{}'",
        wanted.to_hex()
    );
    assert_eq!(rows(&server, &joined, &[]).await, counted);
    let slowest = rows(&server, "SELECT trace_id FROM traces ORDER BY duration_ns DESC, trace_id LIMIT 3", &[]).await;
    let by_spans = rows(
        &server,
        "SELECT trace_id FROM spans GROUP BY trace_id \
         ORDER BY CAST(max(end_time) AS BIGINT) - CAST(min(start_time) AS BIGINT) DESC, trace_id LIMIT 3",
        &[],
    )
    .await;
    assert_eq!(slowest, by_spans, "the view's hex IDs are the spans' own");

    // An IN list too long for point reads is scanned instead, and counts the same.
    let unknown = (1..=70u32).map(|i| format!("'{i:x}0f'")).collect::<Vec<_>>().join(", ");
    let long = format!("SELECT count(*) FROM spans WHERE trace_id IN ('{}', {unknown})", wanted.to_hex());
    assert_eq!(rows(&server, &long, &[]).await, counted);
    let explained = rows(&server, &format!("EXPLAIN {long}"), &[]).await;
    let plan = explained.iter().map(|row| row[1].as_str().unwrap_or_default()).collect::<Vec<_>>().join("\n");
    assert!(plan.contains("DataSourceExec") && !plan.contains("TraceReadExec"), "{plan}");
    if std::thread::available_parallelism().is_ok_and(|cores| cores.get() > 1) {
        assert!(parallel.iter().any(|node| plan.contains(node)), "a scan uses every core: {plan}");
    }

    // Parquet row filters: on for an ID filter (few rows pass), off for other filters of user SQL
    // (decoding every row and filtering above is faster when many pass), on for every filter in the
    // engine search uses. Each side answers the same.
    let row_filtered = |plan: &str| !plan.contains("pushdown_rows_pruned=0") && plan.contains("pushdown_rows_pruned=");
    let explained = rows(&server, &format!("EXPLAIN ANALYZE {long}"), &[]).await;
    let plan = explained.iter().map(|row| row[1].as_str().unwrap_or_default()).collect::<Vec<_>>().join("\n");
    assert!(row_filtered(&plan), "ID filters are row filters: {plan}");
    let servers = "SELECT count(*) FROM spans WHERE kind = 'server'";
    let explained = rows(&server, &format!("EXPLAIN ANALYZE {servers}"), &[]).await;
    let plan = explained.iter().map(|row| row[1].as_str().unwrap_or_default()).collect::<Vec<_>>().join("\n");
    assert!(plan.contains("pushdown_rows_pruned=0"), "no row filter for user SQL's other filters: {plan}");
    let engine = spanlake::sql::SqlEngine::new(querier.clone(), Default::default()).unwrap();
    let searching = engine.with_row_filters();
    let answer = |engine: spanlake::sql::SqlEngine, sql: String| async move {
        let batches = engine.query(&TenantId::single_tenant(), &sql).await.unwrap().collect().await.unwrap();
        arrow::util::pretty::pretty_format_batches(&batches).unwrap().to_string()
    };
    let plan = answer(searching.clone(), format!("EXPLAIN ANALYZE {servers}")).await;
    assert!(row_filtered(&plan), "search's engine filters rows: {plan}");
    assert_eq!(answer(searching, servers.to_owned()).await, answer(engine, servers.to_owned()).await);

    // A time window after every block: nothing is read at all.
    let before = storage.request_counts();
    let none = rows(&server, "SELECT count(*) FROM spans WHERE start_time > now() + interval '1 day'", &[]).await;
    assert_eq!(none, vec![vec![Value::from(0)]]);
    assert_eq!(storage.request_counts().since(&before).total(), 0);
    // And without filters every span is counted.
    let total: usize = all.len() * 40;
    let spans = rows(&server, "SELECT count(DISTINCT trace_id) FROM spans", &[]).await;
    assert_eq!(spans, vec![vec![Value::from(total)]]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_stay_exact_while_blocks_are_flushed() {
    let faulty = FaultyStore::new(Arc::new(object_store::memory::InMemory::new()));
    let server = TestServer::start(Storage::from_store(faulty.clone(), "faulty", RangeReads::Exact), |_| {}).await;
    let count = "SELECT count(*) FROM spans";
    let mut expected = 0u64;
    for round in 0..6u64 {
        use prost::Message;
        let mut generator = spanlake::synth::TraceGenerator::new(round);
        let request = generator.next_request(500);
        expected += spanlake::spans::span_count(&request.resource_spans) as u64;
        let headers = [("content-type", "application/x-protobuf")];
        assert_eq!(send("POST", &server.traces_url(), &headers, request.encode_to_vec()).await.status, 200);
        let url = server.query_url("/flush");
        let flush = async move { send("POST", &url, &[], "").await.status };
        // The spans move from the buffer to a block while counts run, one before each write of the block.
        let (status, counts_mid_flush) = check_between_writes(&faulty, flush, async || {
            assert_eq!(rows(&server, count, &[]).await, vec![vec![Value::from(expected)]], "round {round}");
        })
        .await;
        assert_eq!(status, 204);
        assert!(counts_mid_flush >= 3, "round {round}: one count before each of the data, bloom and metadata writes");
        assert_eq!(rows(&server, count, &[]).await, vec![vec![Value::from(expected)]]);
    }
    let tenant = TenantId::single_tenant();
    assert_eq!(server.server.querier().catalog().snapshot(&tenant).map(|blocks| blocks.len()), Some(6));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_rows_is_a_complete_answer_in_every_format() {
    let backend = Backend::local();
    let server = TestServer::start(backend.storage.clone(), |_| {}).await;
    load_fixture(&server, None).await;
    // Planned by DataFusion, and a point query; neither finds anything.
    for query in [
        "SELECT name, kind FROM spans WHERE name = 'no such span'",
        "SELECT name, kind FROM spans WHERE trace_id = 'fff'",
    ] {
        let (columns, rows) = answer(&server, query, &[]).await;
        assert_eq!(columns.as_array().map(Vec::len), Some(2), "{query}: {columns}");
        assert!(rows.is_empty(), "{query}: {rows:?}");
        let csv = sql(&server, query, "csv", &[]).await;
        assert_eq!((csv.status, csv.text().trim_end()), (200, "name,kind"), "{query}");
        let ndjson = sql(&server, query, "ndjson", &[]).await;
        assert_eq!((ndjson.status, ndjson.text()), (200, String::new()), "{query}");
        let arrow = sql(&server, query, "arrow", &[]).await;
        assert_eq!(arrow.status, 200, "{query}");
        let reader =
            arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(arrow.body.to_vec()), None).unwrap();
        assert_eq!(reader.schema().fields().len(), 2);
        assert_eq!(reader.map(|batch| batch.unwrap().num_rows()).sum::<usize>(), 0, "{query}");
    }
}

/// Filters on a service, a span name or an attribute value skip the blocks whose tag summary proves they
/// hold no match, and the answer is the one without that pruning. A block whose value list passed its
/// bound (incomplete) is kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocks_pruned_by_tag_summary_never_change_an_answer() {
    use common::tagged::{Spec, flush, request, s, send_spans};
    let storage = s3::S3Server::shared().new_storage("sql-summary");
    let server = TestServer::start(storage, |_| {}).await;
    let alpha = [Spec::named("op-a").with("http.method", s("GET")), Spec::named("op-a").with("http.method", s("PUT"))];
    send_spans(&server, None, request("alpha", &[], &alpha)).await;
    flush(&server).await;
    send_spans(&server, None, request("beta", &[], &[Spec::named("op-b").with("http.method", s("POST"))])).await;
    flush(&server).await;
    // 70 distinct ids: more than a summary keeps, so the block's `id` list is incomplete.
    let many: Vec<Spec> = (0..70).map(|n| Spec::named("op-c").with("id", s(&format!("v{n}")))).collect();
    send_spans(&server, None, request("gamma", &[("region".to_owned(), s("eu"))], &many)).await;
    flush(&server).await;
    // Spans still in the ingester count too.
    send_spans(&server, None, request("alpha", &[], &[Spec::named("op-a").with("http.method", s("GET"))])).await;

    let cases = [
        // (pruned filter, the same filter in a form pruning does not read, count, blocks pruned by summary)
        ("service_name = 'alpha'", "lower(service_name) = 'alpha'", 3, 2),
        ("name IN ('op-b', 'op-c')", "lower(name) IN ('op-b', 'op-c')", 71, 1),
        ("attributes['http.method'] = 'GET'", "lower(attributes['http.method']) = 'get'", 2, 2),
        ("attributes['id'] = 'v5'", "concat(attributes['id'], '') = 'v5'", 1, 2),
        ("attributes['id'] = 'v500'", "concat(attributes['id'], '') = 'v500'", 0, 2),
        ("resource_attributes['region'] = 'eu'", "lower(resource_attributes['region']) = 'eu'", 70, 2),
        ("resource_attributes['region'] = 'us'", "lower(resource_attributes['region']) = 'us'", 0, 3),
    ];
    for (pruned, unpruned, count, by_summary) in cases {
        let query = format!("SELECT count(*) FROM spans WHERE {pruned}");
        let counted = rows(&server, &query, &[]).await;
        assert_eq!(counted, vec![vec![Value::from(count)]], "{pruned}");
        let reference = rows(&server, &format!("SELECT count(*) FROM spans WHERE {unpruned}"), &[]).await;
        assert_eq!(counted, reference, "{pruned} counts what {unpruned} counts");
        let explained = rows(&server, &format!("EXPLAIN ANALYZE {query}"), &[]).await;
        let plan = explained.iter().map(|row| row[1].as_str().unwrap_or_default()).collect::<Vec<_>>().join("\n");
        assert!(plan.contains(&format!("pruned_by_summary={by_summary},")), "{pruned}: {plan}");
        assert!(plan.contains(&format!("scanned={}", 3 - by_summary)), "{pruned}: {plan}");
        let explained =
            rows(&server, &format!("EXPLAIN ANALYZE SELECT count(*) FROM spans WHERE {unpruned}"), &[]).await;
        let plan = explained.iter().map(|row| row[1].as_str().unwrap_or_default()).collect::<Vec<_>>().join("\n");
        assert!(plan.contains("pruned_by_summary=0,"), "{unpruned}: {plan}");
    }
}
