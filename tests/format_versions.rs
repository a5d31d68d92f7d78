//! Blocks of an older format stay readable (CONTRACTS §3): a block written by format version 1 (which
//! stored `end_time`; version 2 derives it from start and duration) answers trace by ID and SQL exactly as
//! the version-1 build answered them, on the real S3 test server, and compaction turns it, merged with a
//! new block, into a version-2 block that still answers the same.
//!
//! The fixture (`tests/fixtures/v1-block`) was made by the last version-1 build (commit 5fb30d6): the
//! OpenTelemetry Python SDK sent 4 traces (`tests/tools/otel_send.py --traces 4`) over gRPC into
//! `spanlake serve`, `/flush` cut the block, and the build's own answers were saved beside it:
//! `traces.json` (`GET /api/v2/traces/{id}` of each trace) and `sql.json` (the query in [`SQL`]).

mod common;

use std::path::Path;

use common::Backend;
use common::encoding::block_write_options;
use common::server::{TestServer, send};
use object_store::ObjectStoreExt;
use parquet::file::reader::{FileReader, SerializedFileReader};
use serde_json::Value;
use spanlake::compaction::{CompactionOptions, Compactor};
use spanlake::ids::TenantId;
use spanlake::storage::{BlockMeta, FORMAT_VERSION, Storage, layout, list_blocks, read_block_meta};

const FIXTURE: &str = "tests/fixtures/v1-block";

/// The query whose version-1 answer is `sql.json`: every SQL column a span has, `end_time` among them.
const SQL: &str = "SELECT trace_id, span_id, parent_span_id, name, kind, start_time, end_time, duration_ns, status_code, \
                   status_message, service_name, attributes, resource_attributes, events, links FROM spans ORDER BY \
                   trace_id, start_time, span_id";

/// Copies the fixture's block objects into `storage` at the paths they had, returning the block's metadata.
async fn upload_fixture(storage: &Storage) -> BlockMeta {
    let root = Path::new(FIXTURE);
    let mut meta = None;
    for entry in walk(&root.join("single-tenant")) {
        let relative = entry.strip_prefix(root).unwrap().to_str().unwrap().to_owned();
        let bytes = std::fs::read(&entry).unwrap();
        if relative.ends_with("meta.json") {
            meta = Some(BlockMeta::from_json(&bytes, &relative).unwrap());
        }
        storage.object_store().put(&object_store::path::Path::from(relative), bytes.into()).await.unwrap();
    }
    meta.expect("the fixture has a block")
}

fn walk(folder: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(folder).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() { files.extend(walk(&path)) } else { files.push(path) }
    }
    files
}

fn fixture_json(name: &str) -> Value {
    serde_json::from_slice(&std::fs::read(Path::new(FIXTURE).join(name)).unwrap()).unwrap()
}

/// Every trace of the fixture answers as the version-1 build answered it, and so does the SQL query.
async fn assert_answers_as_version_1(server: &TestServer, context: &str) {
    assert_answers_as_version_1_besides(server, context, None).await
}

/// [`assert_answers_as_version_1`], leaving out the SQL rows of `other_trace` (spans stored since).
async fn assert_answers_as_version_1_besides(server: &TestServer, context: &str, other_trace: Option<&str>) {
    let traces = fixture_json("traces.json");
    let traces = traces.as_object().unwrap();
    assert_eq!(traces.len(), 4);
    for (trace_id, expected) in traces {
        let reply = send("GET", &server.query_url(&format!("/api/v2/traces/{trace_id}")), &[], "").await;
        assert_eq!(reply.status, 200, "{context}, trace {trace_id}: {}", reply.text());
        let got: Value = serde_json::from_slice(&reply.body).unwrap();
        // The read metrics (bytes fetched) are the reader's business, not the answer.
        assert_eq!(got["trace"], expected["trace"], "{context}, trace {trace_id}");
    }
    let reply = send("POST", &server.query_url("/api/sql"), &[("content-type", "text/plain")], SQL).await;
    assert_eq!(reply.status, 200, "{context}: {}", reply.text());
    let mut got: Value = serde_json::from_slice(&reply.body).unwrap();
    if let Some(other) = other_trace {
        got["rows"].as_array_mut().unwrap().retain(|row| row[0] != other);
    }
    assert_eq!(got, fixture_json("sql.json"), "{context}, SQL");
}

/// The top-level column names of a block's Parquet file.
async fn stored_columns(storage: &Storage, meta: &BlockMeta) -> Vec<String> {
    let path = layout::data_path(&meta.tenant, meta.block_id);
    let bytes = storage.object_store().get(&path).await.unwrap().bytes().await.unwrap();
    let reader = SerializedFileReader::new(bytes).unwrap();
    let schema = reader.metadata().file_metadata().schema_descr().root_schema().get_fields().to_vec();
    schema.iter().map(|field| field.name().to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_1_block_answers_as_before_and_compacts_into_a_version_2_block() {
    let backend = Backend::s3();
    let storage = backend.storage.clone();
    let old = upload_fixture(&storage).await;
    assert_eq!(old.format_version, 1);
    assert!(stored_columns(&storage, &old).await.contains(&"end_time".to_owned()), "version 1 stores end_time");
    let tenant = TenantId::single_tenant();

    let server = TestServer::start(backend, |_| {}).await;
    assert_answers_as_version_1(&server, "version-1 block").await;

    // A new trace in the same time window, from the OTLP/JSON of a stored one with another trace ID:
    // its block is version 2, and the two merge.
    let mut copy = fixture_json("traces.json").as_object().unwrap().values().next().unwrap()["trace"].clone();
    let new_trace = "0123456789abcdef0123456789abcdef";
    for span in copy["resourceSpans"].as_array_mut().unwrap().iter_mut().flat_map(|rs| {
        rs["scopeSpans"].as_array_mut().unwrap().iter_mut().flat_map(|ss| ss["spans"].as_array_mut().unwrap())
    }) {
        span["traceId"] = new_trace.into();
        for link in span["links"].as_array_mut().into_iter().flatten() {
            link["traceId"] = new_trace.into();
        }
    }
    let body = serde_json::to_vec(&copy).unwrap();
    let reply = send("POST", &server.traces_url(), &[("content-type", "application/json")], body).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(send("POST", &server.query_url("/flush"), &[], "").await.status, 204);
    let listed = list_blocks(&storage, &tenant).await.unwrap().committed;
    assert_eq!(listed.len(), 2);
    let new_block = *listed.iter().find(|&&id| id != old.block_id).unwrap();
    let new = read_block_meta(&storage, &tenant, new_block).await.unwrap();
    assert_eq!(new.format_version, FORMAT_VERSION);
    assert!(!stored_columns(&storage, &new).await.contains(&"end_time".to_owned()), "version 2 derives end_time");

    // Compacted on the fixture's own clock, so that retention never counts the fixture's age.
    let options = CompactionOptions { block: block_write_options(), ..CompactionOptions::default() };
    let compactor = Compactor::new(storage.clone(), options);
    let report = compactor.pass_at(old.created_unix_ms + 60_000, &|_| {}).await.unwrap();
    assert_eq!(report.jobs, 1, "{report:?}");
    let merged: Vec<BlockMeta> = {
        let mut metas = Vec::new();
        for id in list_blocks(&storage, &tenant).await.unwrap().committed {
            let meta = read_block_meta(&storage, &tenant, id).await.unwrap();
            if meta.replaces.contains(&old.block_id) {
                metas.push(meta);
            }
        }
        metas
    };
    let [merged] = merged.as_slice() else { panic!("one block replaces the version-1 block: {merged:?}") };
    assert_eq!(merged.format_version, FORMAT_VERSION);
    assert_eq!(merged.span_count, old.span_count + new.span_count);
    assert_eq!(merged.max_end_unix_nano, old.max_end_unix_nano.max(new.max_end_unix_nano));

    server.server.querier().catalog().refresh_all().await.unwrap();
    assert_answers_as_version_1_besides(&server, "merged into version 2", Some(new_trace)).await;
    // The version-2 rows come back as they were sent, end times included.
    let reply = send("GET", &server.query_url(&format!("/api/v2/traces/{new_trace}")), &[], "").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let got: Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(got["trace"], copy, "the trace stored as version 2");
}
