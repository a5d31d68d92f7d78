//! The official OpenTelemetry Python SDK exporters (gRPC and HTTP/protobuf, from PyPI) send traces to a
//! running server; every span is read back equal from the ingester's buffer and, after `/flush`, from
//! the blocks on the real S3 test server.

mod common;

use std::collections::HashMap;

use arrow::array::RecordBatch;
use common::server::{TestServer, send};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, Span};
use serde_json::Value as Json;
use spanlake::ids::{TenantId, TraceId};
use spanlake::spans::decode_resource_spans;
use spanlake::storage::block::{find_trace, load_footer};
use spanlake::storage::{Storage, list_blocks, read_block_meta};

fn sdk_send(protocol: &str, endpoint: &str, tenant: &str, gzip: bool) -> Vec<Json> {
    let report = common::sdk::send(common::sdk::Export { protocol, endpoint, tenant, traces: 3, gzip });
    report["spans"].as_array().unwrap().clone()
}

/// Every span of the decoded trace by span ID, with its service and scope names.
fn spans_by_id(resource_spans: &[ResourceSpans]) -> HashMap<String, (String, String, String, Span)> {
    let mut found = HashMap::new();
    for rs in resource_spans {
        let service = rs
            .resource
            .as_ref()
            .and_then(|r| spanlake::spans::encode::service_name_of(&r.attributes))
            .unwrap_or("")
            .to_owned();
        for ss in &rs.scope_spans {
            let scope = ss.scope.clone().unwrap_or_default();
            for span in &ss.spans {
                found.insert(
                    hex::encode(&span.span_id),
                    (service.clone(), scope.name.clone(), scope.version.clone(), span.clone()),
                );
            }
        }
    }
    found
}

fn attribute(span: &Span, key: &str) -> Option<Value> {
    span.attributes.iter().find(|kv| kv.key == key).and_then(|kv| kv.value.clone()?.value)
}

fn assert_span_equals(sent: &Json, stored: &(String, String, String, Span)) {
    let (service, scope, scope_version, span) = stored;
    let context = format!("span {}", sent["span_id"]);
    assert_eq!(
        (service.as_str(), scope.as_str(), scope_version.as_str()),
        ("checkout", "spanlake.tests", "1.2.3"),
        "{context}"
    );
    assert_eq!(hex::encode(&span.trace_id), sent["trace_id"].as_str().unwrap(), "{context}");
    assert_eq!(span.name, sent["name"].as_str().unwrap(), "{context}");
    assert_eq!(spanlake::spans::kind_to_text(span.kind), sent["kind"].as_str().unwrap(), "{context}");
    let parent = (!span.parent_span_id.is_empty()).then(|| hex::encode(&span.parent_span_id));
    assert_eq!(parent.as_deref(), sent["parent_span_id"].as_str(), "{context}");
    assert_eq!(span.start_time_unix_nano, sent["start_time_unix_nano"].as_u64().unwrap(), "{context}");
    assert_eq!(span.end_time_unix_nano, sent["end_time_unix_nano"].as_u64().unwrap(), "{context}");
    let status = span.status.clone().unwrap_or_default();
    assert_eq!(spanlake::spans::status_code_to_text(status.code), sent["status"].as_str().unwrap(), "{context}");
    assert_eq!(status.message, sent["status_message"].as_str().unwrap(), "{context}");
    let events: Vec<&str> = span.events.iter().map(|e| e.name.as_str()).collect();
    let sent_events: Vec<&str> = sent["events"].as_array().unwrap().iter().map(|e| e.as_str().unwrap()).collect();
    assert_eq!(events, sent_events, "{context}");
    assert_eq!(span.links.len() as u64, sent["links"].as_u64().unwrap(), "{context}");
    for (key, value) in sent["attributes"].as_object().unwrap() {
        let stored = attribute(span, key).unwrap_or_else(|| panic!("{context}: attribute {key} missing"));
        let matches = match (&stored, value) {
            (Value::StringValue(s), Json::String(v)) => s == v,
            (Value::IntValue(i), Json::Number(n)) => Some(*i) == n.as_i64(),
            (Value::DoubleValue(d), Json::Number(n)) => Some(*d) == n.as_f64(),
            (Value::BoolValue(b), Json::Bool(v)) => b == v,
            (Value::ArrayValue(array), Json::Array(items)) => {
                let texts: Vec<Option<&str>> = array
                    .values
                    .iter()
                    .map(|v| match &v.value {
                        Some(Value::StringValue(s)) => Some(s.as_str()),
                        _ => None,
                    })
                    .collect();
                texts == items.iter().map(Json::as_str).collect::<Vec<_>>()
            }
            _ => false,
        };
        assert!(matches, "{context}: attribute {key} stored as {stored:?}, sent as {value}");
    }
}

fn assert_all_present(sent: &[Json], batches_of: impl Fn(&TraceId) -> Vec<RecordBatch>) {
    for span in sent {
        let trace = TraceId::from_hex(span["trace_id"].as_str().unwrap()).unwrap();
        let stored = spans_by_id(&decode_resource_spans(&batches_of(&trace)).unwrap());
        let found = stored
            .get(span["span_id"].as_str().unwrap())
            .unwrap_or_else(|| panic!("span {} not found", span["span_id"]));
        assert_span_equals(span, found);
    }
}

async fn block_batches(storage: &Storage, tenant: &TenantId, trace: &TraceId) -> Vec<RecordBatch> {
    let mut batches = Vec::new();
    for block in list_blocks(storage, tenant).await.unwrap().committed {
        let meta = read_block_meta(storage, tenant, block).await.unwrap();
        let footer = load_footer(storage, &meta).await.unwrap();
        batches.extend(find_trace(storage, &meta, &footer, trace).await.unwrap());
    }
    batches
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_exporters_spans_are_read_back_equal_from_the_buffer_and_from_s3_blocks() {
    let storage = common::Backend::s3().storage;
    let server = TestServer::start(storage.clone(), |config| config.multitenancy = true).await;
    let grpc_endpoint = server.server.otlp_grpc_addr().expect("OTLP/gRPC").to_string();
    let http_endpoint = server.traces_url();
    let mut sent = Vec::new();
    sent.extend(sdk_send("grpc", &grpc_endpoint, "sdk-tenant", false));
    sent.extend(sdk_send("grpc", &grpc_endpoint, "sdk-tenant", true));
    sent.extend(sdk_send("http", &http_endpoint, "sdk-tenant", false));
    sent.extend(sdk_send("http", &http_endpoint, "sdk-tenant", true));
    assert_eq!(sent.len(), 4 * 3 * 2);

    let tenant = TenantId::new("sdk-tenant").unwrap();
    let ingester = server.server.ingester().expect("an ingester").clone();
    assert_all_present(&sent, |trace| ingester.recent_trace(&tenant, trace).unwrap());

    let flushed = send("POST", &server.query_url("/flush"), &[], Vec::new()).await;
    assert_eq!(flushed.status, 204, "{}", flushed.text());
    assert!(ingester.recent_batches(&tenant).unwrap().is_empty(), "flushed spans leave the buffer");
    let mut from_blocks = HashMap::new();
    for span in &sent {
        let trace = TraceId::from_hex(span["trace_id"].as_str().unwrap()).unwrap();
        if let std::collections::hash_map::Entry::Vacant(entry) = from_blocks.entry(trace) {
            entry.insert(block_batches(&storage, &tenant, &trace).await);
        }
    }
    assert_all_present(&sent, |trace| from_blocks[trace].clone());
    assert!(
        block_batches(
            &storage,
            &TenantId::single_tenant(),
            &TraceId::from_hex(sent[0]["trace_id"].as_str().unwrap()).unwrap()
        )
        .await
        .is_empty()
    );
    server.server.shutdown().await.unwrap();
}
