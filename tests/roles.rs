//! Roles in separate servers on one bucket (issue 29), in process: a querier answers from an ingester's
//! recent spans and from the blocks, across the handoff (block uploaded, the querier not yet listing it)
//! without losing or doubling a span; a querier without the ingester's credentials, or with the ingester
//! gone, says its answers are partial. The whole deployment as separate processes is tests/multiprocess.rs.

mod common;

use std::time::Duration;

use arrow::array::AsArray;

use common::server::{TestServer, send, send_synthetic_traces};
use spanlake::config::{HostPorts, ServeConfig, Target};
use spanlake::storage::Storage;

/// An ingester on `storage`, keeping committed blocks' spans for `handoff`.
async fn ingester(storage: &Storage, handoff: Duration, adjust: impl FnOnce(&mut ServeConfig)) -> TestServer {
    TestServer::start(storage.clone(), |config| {
        config.target = Target::Ingester;
        config.handoff_retention = handoff;
        adjust(config);
    })
    .await
}

/// A querier on `storage` reading `ingesters`; it lists the store only at start (tests list it by hand).
async fn querier(storage: &Storage, ingesters: &[&TestServer], adjust: impl FnOnce(&mut ServeConfig)) -> TestServer {
    let list = ingesters.iter().map(|server| server.server.http_addr().to_string()).collect();
    let querier = TestServer::start(storage.clone(), |config| {
        config.target = Target::Querier;
        config.ingesters = HostPorts(list);
        config.block_refresh_interval = Duration::from_secs(3600);
        config.ingester_timeout = Duration::from_secs(2);
        adjust(config);
    })
    .await;
    // The refresh at start is the last until the tests ask for one.
    let catalog = querier.server.querier().catalog();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !catalog.listed_once() {
        assert!(std::time::Instant::now() < deadline, "the querier lists the store at start");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    querier
}

/// `SELECT count(*)` on the querier, and its `Warning` header if it has one.
async fn count(querier: &TestServer, headers: &[(&str, &str)]) -> (u64, Option<String>) {
    let mut all = vec![("content-type", "application/sql")];
    all.extend_from_slice(headers);
    let reply = send("POST", &querier.query_url("/api/sql"), &all, "SELECT count(*) AS n FROM spans").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let body: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
    let warning = reply.headers.get("warning").map(|value| value.to_str().unwrap().to_owned());
    (body["rows"][0][0].as_u64().unwrap(), warning)
}

/// Spans of a trace in the querier's v2 answer, and its status.
async fn trace_spans(querier: &TestServer, trace: &str) -> (usize, Option<String>) {
    let reply = send("GET", &querier.query_url(&format!("/api/v2/traces/{trace}")), &[], Vec::new()).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let body: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
    (common::otlp::json_span_count(&body["trace"]["resourceSpans"]), body["status"].as_str().map(str::to_owned))
}

/// What the ingester's internal endpoint answers for `filter`: each batch's block and rows.
async fn recent_rows(ingester: &TestServer, filter: serde_json::Value) -> Vec<(Option<spanlake::ids::BlockId>, u64)> {
    let url = ingester.query_url(spanlake::query::peers::RECENT_PATH);
    let reply = send("POST", &url, &[("content-type", "application/json")], filter.to_string()).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let held = spanlake::query::peers::decode(reply.body).unwrap();
    held.into_iter().map(|held| (held.block, held.batch.num_rows() as u64)).collect()
}

async fn flush(server: &TestServer) {
    assert_eq!(send("POST", &server.query_url("/flush"), &[], Vec::new()).await.status, 204);
}

#[tokio::test]
async fn a_querier_counts_each_span_once_from_buffer_to_handed_off_block_to_listed_block() {
    let storage = common::Backend::s3().storage;
    let ingester = ingester(&storage, Duration::from_secs(3600), |_| {}).await;
    let querier = querier(&storage, &[&ingester], |_| {}).await;
    assert_eq!(querier.server.otlp_grpc_addr(), None, "a querier takes no spans");
    assert!(querier.server.ingester().is_none());

    let traces = send_synthetic_traces(&ingester, 3, 20).await;
    let spans = ingester.server.ingester().expect("an ingester").recent_batches(&"single-tenant".parse().unwrap());
    let sent: u64 = spans.unwrap().iter().map(|batch| batch.num_rows() as u64).sum();
    let one = traces[0].to_hex();
    let (whole, status) = trace_spans(&querier, &one).await;
    assert!(whole > 0 && status.is_none(), "the buffered trace, complete");
    assert_eq!(count(&querier, &[]).await, (sent, None), "from the ingester's buffer");
    // Service and span-name conditions are checked by the ingester too: the querier's counts under them
    // are the buffer's own.
    let buffered = ingester.server.ingester().expect("an ingester").recent_batches(&"single-tenant".parse().unwrap());
    let mut by_service: std::collections::BTreeMap<String, u64> = Default::default();
    let mut by_name: std::collections::BTreeMap<String, u64> = Default::default();
    for batch in buffered.unwrap() {
        let schema = batch.schema();
        let column = |name: &str| batch.column(schema.index_of(name).unwrap()).as_string::<i32>().clone();
        for (service, name) in column("service_name").iter().zip(column("name").iter()) {
            *by_service.entry(service.unwrap().to_owned()).or_default() += 1;
            *by_name.entry(name.unwrap().to_owned()).or_default() += 1;
        }
    }
    let services: Vec<(&String, &u64)> = by_service.iter().take(2).collect();
    let (name, named) = by_name.iter().next().unwrap();
    for (sql, expected) in [
        (format!("WHERE service_name = '{}'", services[0].0), *services[0].1),
        (format!("WHERE service_name IN ('{}', '{}')", services[0].0, services[1].0), services[0].1 + services[1].1),
        (format!("WHERE name = '{name}' AND service_name <> ''"), *named),
    ] {
        let reply =
            send("POST", &querier.query_url("/api/sql"), &[], format!("SELECT count(*) AS n FROM spans {sql}")).await;
        let body: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
        assert_eq!(body["rows"][0][0].as_u64(), Some(expected), "{sql}");
    }

    // The block is uploaded; the querier has not listed it: the ingester's handed-off copy answers.
    flush(&ingester).await;
    assert!(querier.server.querier().catalog().blocks(&"single-tenant".parse().unwrap()).await.unwrap().is_empty());
    assert_eq!(count(&querier, &[]).await, (sent, None), "from the handed-off block");
    assert_eq!(trace_spans(&querier, &one).await, (whole, None));

    // Now listed: the block is read from the store and the ingester's copy left out.
    querier.server.querier().catalog().refresh_all().await.unwrap();
    assert_eq!(querier.server.querier().catalog().blocks(&"single-tenant".parse().unwrap()).await.unwrap().len(), 1);
    assert_eq!(count(&querier, &[]).await, (sent, None), "from the store, not twice");
    assert_eq!(trace_spans(&querier, &one).await, (whole, None));

    // The ingester still keeps the block's copy, tagged with the block; a querier naming the block as
    // one it reads from the store is not sent it.
    let block =
        querier.server.querier().catalog().blocks(&"single-tenant".parse().unwrap()).await.unwrap()[0].meta.block_id;
    let held = recent_rows(&ingester, serde_json::json!({ "columns": ["span_id"] })).await;
    assert_eq!(held.iter().map(|(_, rows)| rows).sum::<u64>(), sent);
    assert!(held.iter().all(|(tagged, _)| *tagged == Some(block)), "every row names its block");
    let known = serde_json::json!({ "columns": ["span_id"], "known_blocks": [block.to_string()] });
    assert!(recent_rows(&ingester, known).await.is_empty(), "a block the querier reads is not sent");

    // Bad filters are refused with 400 and the ingester keeps serving.
    for bad in ["not json", r#"{"traces": ["xyz"]}"#, r#"{"columns": ["nope"]}"#, r#"{"trace": []}"#] {
        let url = ingester.query_url(spanlake::query::peers::RECENT_PATH);
        let reply = send("POST", &url, &[("content-type", "application/json")], bad).await;
        assert_eq!(reply.status, 400, "{bad}: {}", reply.text());
        assert!(reply.text().contains("not a recent-spans filter"), "{}", reply.text());
    }
    assert_eq!(send("GET", &ingester.query_url("/ready"), &[], Vec::new()).await.status, 200);

    // Search sees the same, with no partial mark.
    let search = send("GET", &querier.query_url("/api/search?q=%7B%7D&limit=100"), &[], Vec::new()).await;
    assert_eq!(search.status, 200);
    assert!(!search.headers.contains_key("warning"));
    let found: serde_json::Value = serde_json::from_slice(&search.body).unwrap();
    assert_eq!(found["traces"].as_array().unwrap().len(), traces.len());
}

#[tokio::test]
async fn without_the_handoff_copy_a_flushed_block_is_invisible_until_the_querier_lists_it() {
    // The contrast that shows what `handoff_retention` is for.
    let storage = common::Backend::s3().storage;
    let ingester = ingester(&storage, Duration::ZERO, |_| {}).await;
    let querier = querier(&storage, &[&ingester], |_| {}).await;
    send_synthetic_traces(&ingester, 4, 5).await;
    let (buffered, _) = count(&querier, &[]).await;
    assert!(buffered > 0);
    flush(&ingester).await;
    assert_eq!(count(&querier, &[]).await, (0, None), "no copy kept, not yet listed");
    querier.server.querier().catalog().refresh_all().await.unwrap();
    assert_eq!(count(&querier, &[]).await, (buffered, None));
}

#[tokio::test]
async fn an_ingester_that_cannot_be_read_makes_answers_partial_never_silently_short() {
    let storage = common::Backend::s3().storage;
    let up = ingester(&storage, Duration::from_secs(60), |_| {}).await;
    let going = ingester(&storage, Duration::from_secs(60), |_| {}).await;
    let querier = querier(&storage, &[&up, &going], |_| {}).await;
    let kept = send_synthetic_traces(&up, 5, 4).await;
    send_synthetic_traces(&going, 6, 4).await;
    let (both, warning) = count(&querier, &[]).await;
    assert_eq!(warning, None);
    let gone = going.server.http_addr();
    going.server.shutdown().await.unwrap();

    let (left, warning) = count(&querier, &[]).await;
    assert!(left < both, "the stopped ingester's spans are missing ({left} of {both})");
    let warning = warning.expect("SQL says its answer is partial");
    assert!(
        warning.starts_with("199 spanlake \"partial: ingester ") && warning.contains(&gone.to_string()),
        "{warning}"
    );
    let (_, status) = trace_spans(&querier, &kept[0].to_hex()).await;
    assert_eq!(status.as_deref(), Some("PARTIAL"), "trace by ID v2");
    let v1 = send("GET", &querier.query_url(&format!("/api/traces/{}", kept[0].to_hex())), &[], Vec::new()).await;
    assert_eq!(v1.status, 200, "v1: the stored and reachable spans, with a warning");
    assert!(v1.headers["warning"].to_str().unwrap().contains(&gone.to_string()));
    let search = send("GET", &querier.query_url("/api/search?q=%7B%7D"), &[], Vec::new()).await;
    assert_eq!(search.status, 200);
    assert!(search.headers["warning"].to_str().unwrap().contains(&gone.to_string()), "search says so too");
    let jaeger = querier.server.jaeger_addr().expect("a querier answers Jaeger's API");
    let url = format!("http://{jaeger}/api/traces?service=cart&lookback=1h&limit=20");
    let reply = send("GET", &url, &[], Vec::new()).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let body: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
    let errors = body["errors"].as_array().expect("Jaeger's answer lists why it is partial");
    assert!(errors.iter().all(|e| e["msg"].as_str().unwrap().starts_with("partial: ")), "{errors:?}");
    assert!(errors.iter().any(|e| e["msg"].as_str().unwrap().contains(&gone.to_string())), "{errors:?}");
}

#[tokio::test]
async fn with_auth_on_only_an_admin_credential_reads_an_ingesters_recent_spans() {
    use spanlake::auth::Digest;
    let folder = tempfile::tempdir().unwrap();
    let file = folder.path().join("credentials.yaml");
    let line = |name: &str, grant: &str, secret: &str| {
        format!("  - {{name: {name}, {grant}, sha256: {}}}\n", Digest::of(secret.as_bytes()).to_hex())
    };
    let credentials = format!(
        "credentials:\n{}{}",
        line("ops", "admin: true", "operator-token"),
        line("writer", "tenant: single-tenant", "writer-token")
    );
    std::fs::write(&file, credentials).unwrap();
    let storage = common::Backend::s3().storage;
    let ingester = ingester(&storage, Duration::from_secs(60), |config| config.auth_file = Some(file.clone())).await;
    let headers = [("content-type", "application/x-protobuf"), ("authorization", "Bearer writer-token")];
    let request = spanlake::synth::TraceGenerator::new(7).next_request(50);
    let sent = spanlake::spans::span_count(&request.resource_spans) as u64;
    let body = prost::Message::encode_to_vec(&request);
    assert_eq!(send("POST", &ingester.traces_url(), &headers, body).await.status, 200);

    // The internal endpoint: a tenant's credential is refused, as on /flush.
    let recent = ingester.query_url(spanlake::query::peers::RECENT_PATH);
    let tenant = [("authorization", "Bearer writer-token"), ("content-type", "application/json")];
    assert_eq!(send("POST", &recent, &tenant, "{}").await.status, 403);

    let trusted = querier(&storage, &[&ingester], |config| config.ingester_token = Some("operator-token".into())).await;
    assert_eq!(count(&trusted, &[]).await, (sent, None));
    let untrusted = querier(&storage, &[&ingester], |_| {}).await;
    let (seen, warning) = count(&untrusted, &[]).await;
    assert_eq!(seen, 0);
    assert!(warning.expect("partial").contains("401"), "the ingester's refusal is named");
}

#[tokio::test]
async fn rows_from_ingesters_count_against_the_query_memory_limit() {
    let storage = common::Backend::s3().storage;
    let ingester = ingester(&storage, Duration::from_secs(60), |_| {}).await;
    send_synthetic_traces(&ingester, 8, 50).await;
    let small =
        querier(&storage, &[&ingester], |config| config.sql_memory_limit = spanlake::config::ByteSize(4096)).await;
    let headers = [("content-type", "application/sql")];
    let reply = send("POST", &small.query_url("/api/sql"), &headers, "SELECT name FROM spans").await;
    assert_eq!(reply.status, 507, "{}", reply.text());
    assert!(reply.text().contains("sql_memory_limit"), "{}", reply.text());
    let roomy = querier(&storage, &[&ingester], |_| {}).await;
    let reply = send("POST", &roomy.query_url("/api/sql"), &headers, "SELECT name FROM spans").await;
    assert_eq!(reply.status, 200, "the same query within the default limit");
}
