//! The Zipkin v2 receiver (issue 28; docs/zipkin.md) as Zipkin clients see it: spans from the
//! OpenTelemetry Python SDK's Zipkin JSON and protobuf exporters (from PyPI) come back through
//! `/api/v2/traces/{id}` and SQL mapped field by field as documented, from the ingester and from blocks
//! on the real S3 test server; Zipkin-only fields (remote endpoints, shared spans, 64-bit trace IDs) map
//! as documented in both encodings; and every bad input of CONTRACTS §2 gets its status on this port,
//! with nothing written.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::process::Command;

use common::server::{Reply, TestServer, send};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{AnyValue, ArrayValue, KeyValue};
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use serde_json::{Value as Json, json};
use spanlake::receive::zipkin::wire;
use spanlake::storage::Storage;

const JSON_BODY: (&str, &str) = ("content-type", "application/json");
const PROTOBUF_BODY: (&str, &str) = ("content-type", "application/x-protobuf");

fn zipkin_url(server: &TestServer) -> String {
    format!("http://{}/api/v2/spans", server.server.zipkin_addr().expect("the Zipkin port is on in tests"))
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// Runs `tests/tools/zipkin_send.py` with one of the SDK's Zipkin exporters and returns its report
/// (`result`, `spans` as recorded, `wire` as sent); `extra` are more arguments (`--header`, …).
fn exporter_send(encoding: &str, endpoint: &str, tenant: Option<&str>, extra: &[&str]) -> Json {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tools/zipkin_send.py");
    let mut command = Command::new(common::tools::zipkin_exporters_python());
    command.args([script, "--encoding", encoding, "--endpoint", endpoint, "--traces", "2"]);
    command.args(["--local-ipv4", "10.1.2.3", "--local-port", "8080"]);
    if let Some(tenant) = tenant {
        command.args(["--tenant", tenant]);
    }
    command.args(extra);
    let output = command.output().expect("python runs");
    assert!(output.status.success(), "zipkin_send.py failed: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("JSON report")
}

/// One stored span with its resource attributes and scope (name, version).
struct Stored {
    resource: Vec<KeyValue>,
    scope: (String, String),
    span: Span,
}

/// `GET /api/v2/traces/{id}` (JSON) of a tenant, by span ID; the body is OTLP/JSON, decoded as the
/// OTLP receiver decodes it.
async fn trace_by_id(server: &TestServer, trace_id: &str, tenant: &str) -> HashMap<String, Stored> {
    let url = server.query_url(&format!("/api/v2/traces/{trace_id}"));
    let reply = send("GET", &url, &[("x-scope-orgid", tenant)], Vec::new()).await;
    assert_eq!(reply.status, 200, "trace {trace_id}: {}", reply.text());
    let document: Json = serde_json::from_slice(&reply.body).unwrap();
    let request = spanlake::receive::decode_json(&serde_json::to_vec(&document["trace"]).unwrap()).unwrap();
    let mut stored = HashMap::new();
    for resource_spans in request.resource_spans {
        let resource = resource_spans.resource.unwrap_or_default().attributes;
        for scope_spans in resource_spans.scope_spans {
            let scope = scope_spans.scope.unwrap_or_default();
            for span in scope_spans.spans {
                let key = hex::encode(&span.span_id);
                let previous = stored.insert(
                    key.clone(),
                    Stored { resource: resource.clone(), scope: (scope.name.clone(), scope.version.clone()), span },
                );
                assert!(previous.is_none(), "span {key} is stored once");
            }
        }
    }
    stored
}

fn value_of(attributes: &[KeyValue], key: &str) -> Option<Value> {
    attributes.iter().find(|kv| kv.key == key).and_then(|kv| kv.value.clone()?.value)
}

fn text(value: &str) -> Option<Value> {
    Some(Value::StringValue(value.to_owned()))
}

/// The typed value an event attribute keeps through the exporter's JSON annotation.
fn typed(value: &Json) -> Value {
    match value {
        Json::String(s) => Value::StringValue(s.clone()),
        Json::Bool(b) => Value::BoolValue(*b),
        Json::Number(n) if n.is_i64() => Value::IntValue(n.as_i64().unwrap()),
        Json::Number(n) => Value::DoubleValue(n.as_f64().unwrap()),
        Json::Array(items) => Value::ArrayValue(ArrayValue {
            values: items.iter().map(|item| AnyValue { value: Some(typed(item)) }).collect(),
        }),
        other => panic!("no attribute value sends {other}"),
    }
}

const KINDS: [&str; 6] = ["unspecified", "internal", "server", "client", "producer", "consumer"];
/// Resource attributes of zipkin_send.py's spans that are not resource tags in the mapping.
const SPAN_LEVEL_RESOURCE_ATTRIBUTES: [&str; 1] = ["team"];

/// Checks one stored span against the SDK span and the Zipkin span the exporter made of it, rule by rule
/// (docs/zipkin.md, "Mapping").
fn assert_mapped(sent: &Json, wire: &Json, stored: &Stored, context: &str) {
    let Stored { resource, scope, span } = stored;
    let tag = |key: &str| wire["tags"][key].as_str().unwrap_or_else(|| panic!("{context}: tag {key} sent")).to_owned();
    // IDs, name, kind (INTERNAL has no Zipkin kind: it comes back unspecified).
    assert_eq!(hex::encode(&span.trace_id), sent["trace_id"].as_str().unwrap(), "{context}");
    let parent = (!span.parent_span_id.is_empty()).then(|| hex::encode(&span.parent_span_id));
    assert_eq!(parent.as_deref(), sent["parent_span_id"].as_str(), "{context}");
    assert_eq!(span.name, sent["name"].as_str().unwrap(), "{context}");
    let expected_kind = match sent["kind"].as_str().unwrap() {
        "internal" => "unspecified",
        other => other,
    };
    assert_eq!(KINDS[span.kind as usize], expected_kind, "{context}");
    // Times: Zipkin's microseconds.
    let (timestamp, duration) = (wire["timestamp"].as_u64().unwrap(), wire["duration"].as_u64().unwrap());
    assert_eq!(span.start_time_unix_nano, timestamp * 1000, "{context}");
    assert_eq!(span.end_time_unix_nano, (timestamp + duration) * 1000, "{context}");
    assert!(span.start_time_unix_nano.abs_diff(sent["start_time_unix_nano"].as_u64().unwrap()) <= 500, "{context}");
    // Status: OK and ERROR come back with the description as the message.
    let status = span.status.clone().unwrap_or_default();
    let expected_code = ["unset", "ok", "error"].iter().position(|s| *s == sent["status"]).unwrap() as i32;
    assert_eq!(
        (status.code, status.message.as_str()),
        (expected_code, sent["status_message"].as_str().unwrap()),
        "{context}"
    );
    // Resource: service name and the resource tags; scope from otel.scope.*.
    for (key, value) in sent["resource"].as_object().unwrap() {
        let holder = if SPAN_LEVEL_RESOURCE_ATTRIBUTES.contains(&key.as_str()) { &span.attributes } else { resource };
        assert_eq!(value_of(holder, key), text(value.as_str().unwrap()), "{context}: resource attribute {key}");
    }
    let sent_scope = &sent["scope"];
    assert_eq!(
        (scope.0.as_str(), scope.1.as_str()),
        (sent_scope[0].as_str().unwrap(), sent_scope[1].as_str().unwrap())
    );
    // Attributes: every tag left is a string attribute with the tag's text; the local endpoint adds
    // net.host.*; an ERROR status keeps its `error` tag. Nothing else.
    let mut expected: BTreeMap<String, Value> = BTreeMap::new();
    for key in sent["attributes"].as_object().unwrap().keys().map(String::as_str).chain(SPAN_LEVEL_RESOURCE_ATTRIBUTES)
    {
        expected.insert(key.to_owned(), Value::StringValue(tag(key)));
    }
    if sent["status"] == "error" {
        expected.insert("error".into(), Value::StringValue(tag("error")));
    }
    expected.insert("net.host.ip".into(), Value::StringValue("10.1.2.3".into()));
    expected.insert("net.host.port".into(), Value::IntValue(8080));
    let actual: BTreeMap<String, Value> =
        span.attributes.iter().map(|kv| (kv.key.clone(), kv.value.clone().unwrap().value.unwrap())).collect();
    assert_eq!(actual, expected, "{context}: attributes");
    assert_eq!(span.dropped_attributes_count as u64, sent["dropped_attributes"].as_u64().unwrap(), "{context}");
    // Events: the exporter's JSON annotation back to name and typed attributes.
    let sent_events = sent["events"].as_array().unwrap();
    assert_eq!(span.events.len(), sent_events.len(), "{context}");
    for (event, sent_event) in span.events.iter().zip(sent_events) {
        assert_eq!(event.name, sent_event["name"].as_str().unwrap(), "{context}");
        let attributes: BTreeMap<String, Value> =
            event.attributes.iter().map(|kv| (kv.key.clone(), kv.value.clone().unwrap().value.unwrap())).collect();
        let sent_attributes: BTreeMap<String, Value> =
            sent_event["attributes"].as_object().unwrap().iter().map(|(k, v)| (k.clone(), typed(v))).collect();
        assert_eq!(attributes, sent_attributes, "{context}: event {}", event.name);
    }
    // Links are not exported by the Zipkin exporters.
    assert!(span.links.is_empty(), "{context}");
}

async fn assert_every_span_mapped(server: &TestServer, reports: &[Json], tenant: &str, stage: &str) {
    for report in reports {
        let wire_by_id: HashMap<&str, &Json> =
            report["wire"].as_array().unwrap().iter().map(|w| (w["id"].as_str().unwrap(), w)).collect();
        let mut traces: HashMap<String, HashMap<String, Stored>> = HashMap::new();
        for sent in report["spans"].as_array().unwrap() {
            let trace_id = sent["trace_id"].as_str().unwrap();
            if !traces.contains_key(trace_id) {
                traces.insert(trace_id.to_owned(), trace_by_id(server, trace_id, tenant).await);
            }
            let span_id = sent["span_id"].as_str().unwrap();
            let stored = traces[trace_id].get(span_id).unwrap_or_else(|| panic!("{stage}: span {span_id} is stored"));
            assert_mapped(sent, wire_by_id[span_id], stored, &format!("{stage}, span {} ({span_id})", sent["name"]));
        }
    }
}

/// The SQL face of the same spans: columns as CONTRACTS §5 names them.
async fn assert_sql_rows(server: &TestServer, reports: &[Json], tenant: &str) {
    for sent in reports.iter().flat_map(|report| report["spans"].as_array().unwrap()) {
        let query = format!(
            "SELECT name, kind, status_code, status_message, service_name, scope_name, scope_version, duration_ns, \
             attributes['team'], attributes['net.host.port'], attributes['http.route'], \
             resource_attributes['host.name'], \
             cardinality(events) FROM spans WHERE trace_id = '{}' AND span_id = '{}'",
            sent["trace_id"].as_str().unwrap(),
            sent["span_id"].as_str().unwrap()
        );
        let rows = common::sql::rows(server, &query, &[("x-scope-orgid", tenant)]).await;
        assert_eq!(rows.len(), 1, "{query}");
        let kind = if sent["kind"] == "internal" { json!("unspecified") } else { sent["kind"].clone() };
        let message = if sent["status"] == "unset" { Json::Null } else { sent["status_message"].clone() };
        let route = sent["attributes"].get("http.route").cloned().unwrap_or(Json::Null);
        let expected = json!([
            sent["name"],
            kind,
            sent["status"],
            message,
            "inventory",
            "spanlake.zipkin.tests",
            "0.9.0",
            rows[0][7],
            "stock",
            "8080",
            route,
            "inventory-7f9c",
            sent["events"].as_array().unwrap().len()
        ]);
        assert_eq!(Json::Array(rows[0].clone()), expected, "{query}");
        let duration = rows[0][7].as_i64().unwrap() as u64;
        let sent_duration =
            sent["end_time_unix_nano"].as_u64().unwrap() - sent["start_time_unix_nano"].as_u64().unwrap();
        assert!(
            duration.abs_diff(sent_duration) <= 1000,
            "duration in whole microseconds: {duration} vs {sent_duration}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_zipkin_exporters_spans_come_back_by_trace_id_and_sql_mapped_as_documented() {
    let server = TestServer::start(common::Backend::s3(), |config| config.multitenancy = true).await;
    let endpoint = zipkin_url(&server);
    let tenant = "zipkin-sdk";
    let reports: Vec<Json> =
        ["json", "proto"].iter().map(|encoding| exporter_send(encoding, &endpoint, Some(tenant), &[])).collect();
    for report in &reports {
        assert_eq!(report["result"], "SUCCESS", "the exporter succeeds only on 200 or 202: {report}");
        assert_eq!(report["spans"].as_array().unwrap().len(), 2 * 4);
    }

    assert_every_span_mapped(&server, &reports, tenant, "in the ingester").await;
    assert_sql_rows(&server, &reports, tenant).await;
    let flushed = send("POST", &server.query_url("/flush"), &[], Vec::new()).await;
    assert_eq!(flushed.status, 204, "{}", flushed.text());
    assert!(server.server.ingester().expect("an ingester").buffered_bytes() == 0, "flushed spans leave the buffer");
    assert_every_span_mapped(&server, &reports, tenant, "in S3 blocks").await;
    assert_sql_rows(&server, &reports, tenant).await;

    let trace = reports[0]["spans"][0]["trace_id"].as_str().unwrap();
    let elsewhere =
        send("GET", &server.query_url(&format!("/api/v2/traces/{trace}")), &[("x-scope-orgid", "other")], "").await;
    assert_eq!(elsewhere.status, 404, "spans went to the sender's tenant only");
    server.server.shutdown().await.unwrap();
}

const TRACE_64: &str = "d269b633813fc60c";
const CLIENT_ID: &str = "00000000000000a1";

/// A client span of frontend calling backend, its shared server half, and a child of the server half:
/// Zipkin-only fields in the JSON form (64-bit trace ID in upper case, remote endpoints, IPv6,
/// annotations, an `error` tag).
fn client_and_server_halves() -> (Json, Json, Json) {
    let client = json!({
        "traceId": TRACE_64.to_uppercase(), "id": CLIENT_ID, "kind": "CLIENT", "name": "get /stock",
        "timestamp": 1_700_000_000_000_000u64, "duration": 900,
        "localEndpoint": {"serviceName": "frontend", "ipv4": "10.0.0.1"},
        "remoteEndpoint": {"serviceName": "backend", "ipv4": "10.0.0.2", "port": 9000},
        "annotations": [{"timestamp": 1_700_000_000_000_010u64, "value": "wire send"}],
        "tags": {"http.method": "GET", "error": "503"}
    });
    let server = json!({
        "traceId": TRACE_64, "id": CLIENT_ID, "kind": "SERVER", "name": "get /stock", "shared": true,
        "timestamp": 1_700_000_000_000_100u64, "duration": 700,
        "localEndpoint": {"serviceName": "backend", "ipv6": "2001:db8::2", "port": 9000},
        "remoteEndpoint": {"ipv4": "10.0.0.1", "port": 51234},
        "tags": {"http.status_code": "503"}
    });
    let child = json!({
        "traceId": TRACE_64, "id": "00000000000000b1", "parentId": CLIENT_ID, "name": "select",
        "timestamp": 1_700_000_000_000_200u64, "duration": 300, "localEndpoint": {"serviceName": "backend"},
        "tags": {"span.kind": "internal"}
    });
    (client, server, child)
}

fn proto_endpoint(service: &str, ipv4: Option<[u8; 4]>, ipv6: Option<std::net::Ipv6Addr>, port: i32) -> wire::Endpoint {
    wire::Endpoint {
        service_name: service.to_owned(),
        ipv4: ipv4.map(|ip| ip.to_vec()).unwrap_or_default(),
        ipv6: ipv6.map(|ip| ip.octets().to_vec()).unwrap_or_default(),
        port,
    }
}

/// The same three spans in the protobuf form (8-byte trace ID).
fn client_and_server_halves_protobuf() -> (wire::Span, wire::Span, wire::Span) {
    let trace_id = hex::decode(TRACE_64).unwrap();
    let id = hex::decode(CLIENT_ID).unwrap();
    let client = wire::Span {
        trace_id: trace_id.clone(),
        id: id.clone(),
        kind: wire::span::Kind::Client as i32,
        name: "get /stock".into(),
        timestamp: 1_700_000_000_000_000,
        duration: 900,
        local_endpoint: Some(proto_endpoint("frontend", Some([10, 0, 0, 1]), None, 0)),
        remote_endpoint: Some(proto_endpoint("backend", Some([10, 0, 0, 2]), None, 9000)),
        annotations: vec![wire::Annotation { timestamp: 1_700_000_000_000_010, value: "wire send".into() }],
        tags: [("http.method", "GET"), ("error", "503")].map(|(k, v)| (k.to_owned(), v.to_owned())).into(),
        ..Default::default()
    };
    let server = wire::Span {
        trace_id: trace_id.clone(),
        id: id.clone(),
        kind: wire::span::Kind::Server as i32,
        name: "get /stock".into(),
        timestamp: 1_700_000_000_000_100,
        duration: 700,
        local_endpoint: Some(proto_endpoint("backend", None, Some("2001:db8::2".parse().unwrap()), 9000)),
        remote_endpoint: Some(proto_endpoint("", Some([10, 0, 0, 1]), None, 51234)),
        tags: [("http.status_code".to_owned(), "503".to_owned())].into(),
        shared: true,
        ..Default::default()
    };
    let child = wire::Span {
        trace_id,
        id: hex::decode("00000000000000b1").unwrap(),
        parent_id: id,
        name: "select".into(),
        timestamp: 1_700_000_000_000_200,
        duration: 300,
        local_endpoint: Some(proto_endpoint("backend", None, None, 0)),
        tags: [("span.kind".to_owned(), "internal".to_owned())].into(),
        ..Default::default()
    };
    (client, server, child)
}

/// What the three spans must come back as, whichever encoding carried them.
async fn assert_halves_stored(server: &TestServer, tenant: &str, stage: &str) {
    // A 64-bit trace ID is the 128-bit one left-padded; the query API pads the short form the same way.
    let stored = trace_by_id(server, TRACE_64, tenant).await;
    assert_eq!(stored.len(), 3, "{stage}: both halves and the child are kept: {:?}", stored.keys().collect::<Vec<_>>());
    let client = &stored[CLIENT_ID];
    let server_half = stored.values().find(|s| s.span.kind == 2).expect("the server half is kept");
    let child = &stored["00000000000000b1"];
    assert_eq!(hex::encode(&client.span.trace_id), format!("0000000000000000{TRACE_64}"), "{stage}");

    assert_eq!(value_of(&client.resource, "service.name"), text("frontend"), "{stage}");
    assert_eq!((client.span.kind, client.span.name.as_str()), (3, "get /stock"), "{stage}");
    let status = client.span.status.clone().unwrap();
    assert_eq!((status.code, status.message.as_str()), (2, "503"), "{stage}: the error tag is the error");
    let client_attributes: BTreeMap<&str, Value> =
        client.span.attributes.iter().map(|kv| (kv.key.as_str(), kv.value.clone().unwrap().value.unwrap())).collect();
    let expected: BTreeMap<&str, Value> = [
        ("http.method", Value::StringValue("GET".into())),
        ("error", Value::StringValue("503".into())),
        ("net.host.ip", Value::StringValue("10.0.0.1".into())),
        ("peer.service", Value::StringValue("backend".into())),
        ("net.peer.ip", Value::StringValue("10.0.0.2".into())),
        ("net.peer.port", Value::IntValue(9000)),
        ("server.address", Value::StringValue("10.0.0.2".into())),
        ("server.port", Value::IntValue(9000)),
    ]
    .into();
    assert_eq!(client_attributes, expected, "{stage}");
    assert_eq!(client.span.events.len(), 1, "{stage}");
    assert_eq!(
        (client.span.events[0].name.as_str(), client.span.events[0].time_unix_nano),
        ("wire send", 1_700_000_000_000_010_000)
    );
    assert_eq!(
        (client.span.start_time_unix_nano, client.span.end_time_unix_nano),
        (1_700_000_000_000_000_000, 1_700_000_000_000_900_000)
    );

    // The shared server half: its own ID, under the client half, in the server's resource.
    assert_ne!(hex::encode(&server_half.span.span_id), CLIENT_ID, "{stage}");
    assert_eq!(hex::encode(&server_half.span.parent_span_id), CLIENT_ID, "{stage}");
    assert_eq!(value_of(&server_half.resource, "service.name"), text("backend"), "{stage}");
    assert_eq!(value_of(&server_half.span.attributes, "zipkin.shared"), Some(Value::BoolValue(true)), "{stage}");
    assert_eq!(value_of(&server_half.span.attributes, "net.host.ip"), text("2001:db8::2"), "{stage}");
    assert_eq!(value_of(&server_half.span.attributes, "net.host.port"), Some(Value::IntValue(9000)), "{stage}");
    assert_eq!(value_of(&server_half.span.attributes, "client.address"), text("10.0.0.1"), "{stage}");
    assert_eq!(value_of(&server_half.span.attributes, "client.port"), Some(Value::IntValue(51234)), "{stage}");
    assert_eq!(value_of(&server_half.span.attributes, "peer.service"), None, "{stage}");
    // The server's own child: under the server half, its kind from the span.kind tag.
    assert_eq!(child.span.parent_span_id, server_half.span.span_id, "{stage}");
    assert_eq!((child.span.kind, value_of(&child.span.attributes, "span.kind")), (1, None), "{stage}");

    let rows = common::sql::rows(
        server,
        &format!(
            "SELECT span_id, parent_span_id, kind, service_name, attributes['net.peer.port'], status_code FROM spans \
             WHERE trace_id = '{TRACE_64:0>32}' ORDER BY start_time"
        ),
        &[("x-scope-orgid", tenant)],
    )
    .await;
    let server_id = hex::encode(&server_half.span.span_id);
    assert_eq!(
        rows,
        vec![
            vec![json!(CLIENT_ID), Json::Null, json!("client"), json!("frontend"), json!("9000"), json!("error")],
            vec![json!(server_id), json!(CLIENT_ID), json!("server"), json!("backend"), json!("51234"), json!("unset")],
            vec![
                json!("00000000000000b1"),
                json!(server_id),
                json!("internal"),
                json!("backend"),
                Json::Null,
                json!("unset")
            ],
        ],
        "{stage}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zipkin_only_fields_and_shared_spans_map_as_documented_in_json_and_protobuf() {
    let server = TestServer::start(common::Backend::s3(), |config| config.multitenancy = true).await;
    let url = zipkin_url(&server);
    let (client, server_half, child) = client_and_server_halves();
    // JSON, as two reporters send them: the client's service first, then the server's (whose shared half
    // has the client's span ID, which the ingester already holds).
    let first = send("POST", &url, &[JSON_BODY, ("x-scope-orgid", "json")], json!([client]).to_string()).await;
    assert_eq!((first.status, first.body.len()), (202, 0), "{}", first.text());
    let second =
        send("POST", &url, &[JSON_BODY, ("x-scope-orgid", "json")], json!([server_half, child]).to_string()).await;
    assert_eq!(second.status, 202, "{}", second.text());
    assert_halves_stored(&server, "json", "JSON, in the ingester").await;

    // Protobuf, gzip'd, all in one request.
    let (client, server_half, child) = client_and_server_halves_protobuf();
    let body = wire::ListOfSpans { spans: vec![client, server_half, child] }.encode_to_vec();
    let headers = [PROTOBUF_BODY, ("content-encoding", "gzip"), ("x-scope-orgid", "protobuf")];
    let reply = send("POST", &url, &headers, gzip(&body)).await;
    assert_eq!(reply.status, 202, "{}", reply.text());
    assert_halves_stored(&server, "protobuf", "protobuf, in the ingester").await;

    // A resend of the server's report is recognised as one: still three spans, now from blocks.
    let (_, server_half, child) = client_and_server_halves();
    let resent =
        send("POST", &url, &[JSON_BODY, ("x-scope-orgid", "json")], json!([server_half, child]).to_string()).await;
    assert_eq!(resent.status, 202);
    assert_eq!(send("POST", &server.query_url("/flush"), &[], Vec::new()).await.status, 204);
    let resent = send("POST", &url, &[JSON_BODY, ("x-scope-orgid", "json")], json!([child]).to_string()).await;
    assert_eq!(resent.status, 202);
    assert_halves_stored(&server, "json", "JSON, from blocks").await;
    assert_halves_stored(&server, "protobuf", "protobuf, from blocks").await;
    server.server.shutdown().await.unwrap();
}

fn a_valid_body() -> Vec<u8> {
    let (client, server_half, child) = client_and_server_halves();
    json!([client, server_half, child]).to_string().into_bytes()
}

fn with_span(extra: Json) -> Vec<u8> {
    let mut span = json!({"traceId": TRACE_64, "id": "00000000000000c1", "name": "x", "timestamp": 1u64 << 50});
    for (key, value) in extra.as_object().unwrap() {
        span[key] = value.clone();
    }
    json!([span]).to_string().into_bytes()
}

async fn assert_still_ready(server: &TestServer) {
    let ready = send("GET", &server.query_url("/ready"), &[], Vec::new()).await;
    assert_eq!((ready.status, ready.text().as_str()), (200, "ready"));
}

fn assert_plain_text(reply: &Reply, case: &str) {
    let content_type = reply.headers.get("content-type").map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(content_type.as_deref(), Some("text/plain; charset=utf-8"), "{case}");
}

/// Request headers, as the test client takes them.
type Headers = Vec<(&'static str, &'static str)>;

/// A bad request: what it is, its headers and body, the status it must get and words its message names.
type BadRequest = (&'static str, Headers, Vec<u8>, u16, &'static str);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_zipkin_request_gets_its_status_and_a_plain_message_and_writes_nothing() {
    let server = TestServer::start(Storage::open("memory://").unwrap(), |config| {
        config.multitenancy = true;
        config.max_request_bytes = spanlake::config::ByteSize(256 * 1024);
        config.max_request_decompressed_bytes = spanlake::config::ByteSize(1024 * 1024);
    })
    .await;
    let url = zipkin_url(&server);
    let tenant = ("x-scope-orgid", "team-a");
    // Deep nesting where the decoder skips what it does not know.
    let deep_json = format!("[{{\"unknown\": {}{}}}]", "[".repeat(100_000), "]".repeat(100_000));
    let proto_with = |span: wire::Span| wire::ListOfSpans { spans: vec![span] }.encode_to_vec();
    let proto_span = wire::Span { trace_id: vec![1; 16], id: vec![2; 8], timestamp: 1, ..Default::default() };
    let cases: Vec<BadRequest> = vec![
        ("malformed JSON", vec![JSON_BODY, tenant], b"[{\"traceId\": ".to_vec(), 400, "not a Zipkin v2 JSON list"),
        ("an object, not a list", vec![JSON_BODY, tenant], b"{\"spans\": []}".to_vec(), 400, "invalid type: map"),
        ("an empty JSON body", vec![JSON_BODY, tenant], Vec::new(), 400, "EOF while parsing"),
        ("deeply nested JSON", vec![JSON_BODY, tenant], deep_json.into_bytes(), 400, "span 0: traceId is missing"),
        ("random bytes as protobuf", vec![PROTOBUF_BODY, tenant], vec![0xff; 64], 400, "protobuf ListOfSpans"),
        ("JSON sent as protobuf", vec![PROTOBUF_BODY, tenant], a_valid_body(), 400, "protobuf ListOfSpans"),
        (
            "missing trace ID",
            vec![JSON_BODY, tenant],
            with_span(json!({"traceId": null})),
            400,
            "span 0 (id 00000000000000c1): traceId is missing",
        ),
        (
            "all-zero trace ID",
            vec![JSON_BODY, tenant],
            with_span(json!({"traceId": "0000"})),
            400,
            "trace ID must not be all zeros",
        ),
        ("non-hex span ID", vec![JSON_BODY, tenant], with_span(json!({"id": "zz"})), 400, "span ID is not valid hex"),
        (
            "all-zero span ID",
            vec![JSON_BODY, tenant],
            with_span(json!({"id": "0"})),
            400,
            "span ID must not be all zeros",
        ),
        (
            "trace ID too long",
            vec![JSON_BODY, tenant],
            with_span(json!({"traceId": "1".repeat(33)})),
            400,
            "1 to 32 hex",
        ),
        ("negative timestamp", vec![JSON_BODY, tenant], with_span(json!({"timestamp": -5})), 400, "expected u64"),
        ("a number tag", vec![JSON_BODY, tenant], with_span(json!({"tags": {"n": 1}})), 400, "expected a string"),
        (
            "a bad IP",
            vec![JSON_BODY, tenant],
            with_span(json!({"remoteEndpoint": {"ipv4": "1.2.3"}})),
            400,
            "remoteEndpoint.ipv4",
        ),
        (
            "protobuf trace ID of 12 bytes",
            vec![PROTOBUF_BODY, tenant],
            proto_with(wire::Span { trace_id: vec![1; 12], ..proto_span.clone() }),
            400,
            "trace_id has 12 bytes",
        ),
        (
            "protobuf span ID of 4 bytes",
            vec![PROTOBUF_BODY, tenant],
            proto_with(wire::Span { id: vec![1; 4], ..proto_span.clone() }),
            400,
            "span ID must be 8 bytes, got 4",
        ),
        (
            "protobuf all-zero span ID",
            vec![PROTOBUF_BODY, tenant],
            proto_with(wire::Span { id: vec![0; 8], ..proto_span.clone() }),
            400,
            "span ID must not be all zeros",
        ),
        ("wrong content type", vec![("content-type", "text/plain"), tenant], a_valid_body(), 415, "text/plain"),
        (
            "Zipkin v1 thrift",
            vec![("content-type", "application/x-thrift"), tenant],
            vec![1, 2],
            415,
            "application/x-thrift",
        ),
        ("unknown encoding", vec![JSON_BODY, ("content-encoding", "br"), tenant], a_valid_body(), 415, "br"),
        ("body over the limit", vec![JSON_BODY, tenant], vec![b' '; 300 * 1024], 413, "limit"),
        (
            "gzip bomb",
            vec![JSON_BODY, ("content-encoding", "gzip"), tenant],
            gzip(&vec![b' '; 8 << 20]),
            413,
            "decompressed",
        ),
        (
            "broken gzip",
            vec![JSON_BODY, ("content-encoding", "gzip"), tenant],
            b"\x1f\x8b\x08junk".to_vec(),
            400,
            "gzip",
        ),
        ("invalid tenant", vec![JSON_BODY, ("x-scope-orgid", "a/b")], a_valid_body(), 400, "tenant"),
        ("missing tenant", vec![JSON_BODY], a_valid_body(), 401, "X-Scope-OrgID"),
    ];
    let empty_wal = server.server.ingester().expect("an ingester").wal_bytes();
    for (case, headers, body, status, mentions) in cases {
        let reply = send("POST", &url, &headers, body).await;
        let message = reply.text();
        assert_eq!(reply.status, status, "{case}: {message}");
        assert!(message.contains(mentions), "{case}: message {message:?} should mention {mentions:?}");
        assert_plain_text(&reply, case);
        assert_eq!(
            server.server.ingester().expect("an ingester").wal_bytes(),
            empty_wal,
            "{case}: nothing reaches the WAL"
        );
        assert_still_ready(&server).await;
    }
    // Lists with nothing in them are accepted, and write nothing either.
    for (case, headers, body) in [
        ("an empty list", vec![JSON_BODY, tenant], b"[]".to_vec()),
        ("null", vec![JSON_BODY, tenant], b"null".to_vec()),
        ("no content type, an empty list", vec![tenant], b"[ ]".to_vec()),
        ("an empty protobuf list", vec![PROTOBUF_BODY, tenant], Vec::new()),
    ] {
        let reply = send("POST", &url, &headers, body).await;
        assert_eq!((reply.status, reply.body.len()), (202, 0), "{case}: {}", reply.text());
        assert_eq!(
            server.server.ingester().expect("an ingester").wal_bytes(),
            empty_wal,
            "{case}: nothing reaches the WAL"
        );
    }
    let wrong_method = send("GET", &url, &[tenant], Vec::new()).await;
    assert_eq!(wrong_method.status, 405);
    let v1 = send("POST", &url.replace("/api/v2/", "/api/v1/"), &[JSON_BODY, tenant], b"[]".to_vec()).await;
    assert_eq!(v1.status, 404);
    assert!(v1.text().contains("POST /api/v2/spans"), "{}", v1.text());
    assert_eq!(server.server.ingester().expect("an ingester").buffered_bytes(), 0);
    server.server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_memory_limit_the_zipkin_port_answers_retryable_429() {
    let server = TestServer::start(Storage::open("memory://").unwrap(), |config| {
        config.max_buffer_bytes = spanlake::config::ByteSize(1)
    })
    .await;
    let url = zipkin_url(&server);
    let first = send("POST", &url, &[JSON_BODY], a_valid_body()).await;
    assert_eq!(first.status, 202, "the first request fits: {}", first.text());
    let refused = send("POST", &url, &[JSON_BODY], with_span(json!({}))).await;
    assert_eq!(refused.status, 429, "{}", refused.text());
    assert_eq!(refused.headers["retry-after"], "1");
    assert!(refused.text().contains("limit"), "{}", refused.text());
    // Refused before decoding: a body that would not decode gets the same retryable answer.
    let garbage = send("POST", &url, &[PROTOBUF_BODY], vec![0xff; 64]).await;
    assert_eq!(garbage.status, 429, "{}", garbage.text());
    // The SDK exporter sees the refusal as a failed export.
    let report = exporter_send("json", &url, None, &[]);
    assert_eq!(report["result"], "FAILURE");
    assert_still_ready(&server).await;
    server.server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_auth_on_the_zipkin_port_takes_the_tenant_from_the_credential() {
    let folder = tempfile::tempdir().unwrap();
    let path = folder.path().join("credentials.yaml");
    let digest = |secret: &str| spanlake::auth::Digest::of(secret.as_bytes()).to_hex();
    let file = format!(
        "credentials:\n  - {{name: writer-a, tenant: team-a, sha256: {}}}\n  \
         - {{name: ops, admin: true, sha256: {}}}\n",
        digest("token-a"),
        digest("token-ops")
    );
    std::fs::write(&path, file).unwrap();
    let server = TestServer::start(common::Backend::local(), |config| {
        config.multitenancy = true;
        config.auth_file = Some(path.clone());
    })
    .await;
    let url = zipkin_url(&server);

    let report = exporter_send("proto", &url, None, &["--header", "Authorization=Bearer token-a"]);
    assert_eq!(report["result"], "SUCCESS", "{report}");
    let trace = report["spans"][0]["trace_id"].as_str().unwrap();
    let admin = [("authorization", "Bearer token-ops"), ("x-scope-orgid", "team-a")];
    let found = send("GET", &server.query_url(&format!("/api/v2/traces/{trace}")), &admin, "").await;
    assert_eq!(found.status, 200, "stored under the credential's tenant: {}", found.text());

    let cases: [(&str, Headers, u16); 3] = [
        ("no credential", vec![JSON_BODY], 401),
        ("a wrong token", vec![JSON_BODY, ("authorization", "Bearer nope")], 401),
        ("another tenant", vec![JSON_BODY, ("authorization", "Bearer token-a"), ("x-scope-orgid", "team-b")], 403),
    ];
    let wal = server.server.ingester().expect("an ingester").wal_bytes();
    for (case, headers, status) in cases {
        let reply = send("POST", &url, &headers, a_valid_body()).await;
        assert_eq!(reply.status, status, "{case}: {}", reply.text());
        assert_plain_text(&reply, case);
        assert_eq!(server.server.ingester().expect("an ingester").wal_bytes(), wal, "{case}: nothing written");
    }
    let refused = exporter_send("json", &url, Some("team-b"), &["--header", "Authorization=Bearer token-a"]);
    assert_eq!(refused["result"], "FAILURE");
    server.server.shutdown().await.unwrap();
}
