//! The Zipkin → OTLP mapping of docs/zipkin.md, rule by rule, and the two encodings agreeing.

use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, Span};
use proptest::prelude::*;
use prost::Message;
use serde_json::json;

use super::*;

const TRACE: &str = "5b8efff798038103d269b633813fc60c";

fn decode_json(body: serde_json::Value) -> Result<ExportTraceServiceRequest, ZipkinError> {
    decode(body.to_string().as_bytes(), ZipkinEncoding::Json)
}

/// The spans of a body that must decode.
fn spans_of(body: serde_json::Value) -> Vec<Span> {
    let request = decode_json(body).unwrap();
    request.resource_spans.into_iter().flat_map(|rs| rs.scope_spans).flat_map(|ss| ss.spans).collect()
}

fn one_span(span: serde_json::Value) -> Span {
    let mut spans = spans_of(json!([span]));
    assert_eq!(spans.len(), 1);
    spans.remove(0)
}

/// A minimal valid span with `extra` fields merged in.
fn span_with(extra: serde_json::Value) -> serde_json::Value {
    let mut span = json!({
        "traceId": TRACE, "id": "eee19b7ec3c1b174", "name": "get", "timestamp": 1_700_000_000_000_000u64, "duration": 250
    });
    for (key, value) in extra.as_object().unwrap() {
        span[key] = value.clone();
    }
    span
}

fn value_of(attributes: &[KeyValue], key: &str) -> Option<Value> {
    attributes.iter().find(|kv| kv.key == key).and_then(|kv| kv.value.clone()?.value)
}

fn text(value: &str) -> Option<Value> {
    Some(Value::StringValue(value.to_owned()))
}

fn refusal(body: serde_json::Value) -> String {
    decode_json(body).unwrap_err().to_string()
}

#[test]
fn a_span_with_every_field_maps_as_documented() {
    let request = decode_json(json!([{
        "traceId": TRACE, "id": "eee19b7ec3c1b174", "parentId": "0102030405060708", "kind": "CLIENT",
        "name": "get /users", "timestamp": 1_700_000_000_000_001u64, "duration": 1500,
        "localEndpoint": {"serviceName": "frontend", "ipv4": "10.0.0.1", "port": 8080},
        "remoteEndpoint": {"serviceName": "users", "ipv6": "2001:db8::1", "port": 9000},
        "annotations": [{"timestamp": 1_700_000_000_000_100u64, "value": "ws"}],
        "tags": {"http.path": "/users", "host.name": "web-1", "w3c.tracestate": "a=1", "otel.library.name": "lib",
                 "otel.library.version": "1.0"},
        "debug": true
    }]))
    .unwrap();
    let ResourceSpans { resource, scope_spans, .. } = &request.resource_spans[0];
    let resource = resource.clone().unwrap().attributes;
    assert_eq!(value_of(&resource, "service.name"), text("frontend"));
    assert_eq!(value_of(&resource, "host.name"), text("web-1"));
    let scope = scope_spans[0].scope.clone().unwrap();
    assert_eq!((scope.name.as_str(), scope.version.as_str()), ("lib", "1.0"));
    let span = &scope_spans[0].spans[0];
    assert_eq!(hex::encode(&span.trace_id), TRACE);
    assert_eq!(hex::encode(&span.span_id), "eee19b7ec3c1b174");
    assert_eq!(hex::encode(&span.parent_span_id), "0102030405060708");
    assert_eq!((span.name.as_str(), span.kind, span.trace_state.as_str()), ("get /users", 3, "a=1"));
    assert_eq!(span.start_time_unix_nano, 1_700_000_000_000_001_000);
    assert_eq!(span.end_time_unix_nano, 1_700_000_000_001_501_000);
    assert_eq!(span.events.len(), 1);
    assert_eq!((span.events[0].name.as_str(), span.events[0].time_unix_nano), ("ws", 1_700_000_000_000_100_000));
    let expected: Vec<(&str, Value)> = vec![
        ("http.path", Value::StringValue("/users".into())),
        ("net.host.ip", Value::StringValue("10.0.0.1".into())),
        ("net.host.port", Value::IntValue(8080)),
        ("peer.service", Value::StringValue("users".into())),
        ("net.peer.ip", Value::StringValue("2001:db8::1".into())),
        ("net.peer.port", Value::IntValue(9000)),
        ("server.address", Value::StringValue("2001:db8::1".into())),
        ("server.port", Value::IntValue(9000)),
    ];
    let actual: Vec<(&str, Value)> =
        span.attributes.iter().map(|kv| (kv.key.as_str(), kv.value.clone().unwrap().value.unwrap())).collect();
    assert_eq!(actual, expected, "resource, scope and trace-state tags leave the attributes; debug is dropped");
    assert_eq!(span.status, None);
}

#[test]
fn ids_are_read_leniently_and_64_bit_trace_ids_are_left_padded() {
    let span = one_span(span_with(json!({"traceId": "D269B633813FC60C", "id": "ABC", "parentId": "1"})));
    assert_eq!(hex::encode(&span.trace_id), "0000000000000000d269b633813fc60c");
    assert_eq!(hex::encode(&span.span_id), "0000000000000abc");
    assert_eq!(hex::encode(&span.parent_span_id), "0000000000000001");
    for no_parent in [json!(""), json!("0000000000000000"), json!(null), json!("0000000000000abc")] {
        let span = one_span(span_with(json!({"id": "abc", "parentId": no_parent})));
        assert!(span.parent_span_id.is_empty(), "{no_parent}: no parent (a span is not its own parent)");
    }

    let proto = |trace_id: Vec<u8>| wire::ListOfSpans {
        spans: vec![wire::Span { trace_id, id: vec![1; 8], timestamp: 1, ..Default::default() }],
    };
    let request = decode(&proto(vec![7; 8]).encode_to_vec(), ZipkinEncoding::Protobuf).unwrap();
    let span = &request.resource_spans[0].scope_spans[0].spans[0];
    assert_eq!(hex::encode(&span.trace_id), "00000000000000000707070707070707", "8-byte proto trace IDs are taken");
    let refused = decode(&proto(vec![7; 5]).encode_to_vec(), ZipkinEncoding::Protobuf).unwrap_err();
    assert_eq!(
        refused.to_string(),
        "span 0 (id 0101010101010101): trace_id has 5 bytes; a Zipkin trace ID has 8 or 16"
    );
}

#[test]
fn malformed_spans_refuse_the_request_naming_the_span_and_the_problem() {
    let good = span_with(json!({}));
    let cases: Vec<(serde_json::Value, &str)> = vec![
        (json!({"spans": []}), "not a Zipkin v2 JSON list of spans: invalid type: map"),
        (json!([good, span_with(json!({"traceId": null}))]), "span 1 (id eee19b7ec3c1b174): traceId is missing"),
        (json!([span_with(json!({"traceId": "0"}))]), "traceId \"0\": trace ID must not be all zeros"),
        (json!([span_with(json!({"traceId": "xyz"}))]), "traceId \"xyz\": trace ID is not valid hex"),
        (json!([span_with(json!({"traceId": "1".repeat(33)}))]), "expected 1 to 32 hex characters, got 33"),
        (json!([span_with(json!({"id": null}))]), "span 0: id is missing"),
        (json!([span_with(json!({"id": "0000"}))]), "span ID must not be all zeros"),
        (json!([span_with(json!({"id": ""}))]), "id \"\": span ID is not valid hex"),
        (json!([span_with(json!({"parentId": "g"}))]), "parentId \"g\": span ID is not valid hex"),
        (json!([span_with(json!({"timestamp": -1}))]), "invalid value: integer `-1`, expected u64"),
        (json!([span_with(json!({"duration": 1.5}))]), "invalid type: floating point `1.5`, expected u64"),
        (json!([span_with(json!({"timestamp": "1"}))]), "invalid type: string \"1\", expected u64"),
        (json!([span_with(json!({"tags": {"n": 1}}))]), "invalid type: integer `1`, expected a string"),
        (json!([span_with(json!({"annotations": [{"value": "x"}]}))]), "annotation 0 has no timestamp"),
        (json!([span_with(json!({"annotations": [{"timestamp": 0, "value": "x"}]}))]), "annotation 0 has no"),
        (json!([span_with(json!({"localEndpoint": {"ipv4": "10.0.0.300"}}))]), "localEndpoint.ipv4 \"10.0.0.300\""),
        (json!([span_with(json!({"remoteEndpoint": {"port": 65536}}))]), "remoteEndpoint.port 65536 is not a port"),
        (json!([span_with(json!({"timestamp": 1_700_000_000_000_000_000u64}))]), "timestamp 1700000000000000000"),
        (json!([span_with(json!({"tags": {"otlp.link.0": "zz|01|||0"}}))]), "tag otlp.link.0: trace ID \"zz\""),
    ];
    for (body, expected) in cases {
        let message = refusal(body.clone());
        assert!(message.contains(expected), "{body}: {message:?} should contain {expected:?}");
    }
    assert!(decode(b"", ZipkinEncoding::Json).is_err(), "an empty JSON body is not a list");
    let garbage = decode(b"\xff\xff\xff", ZipkinEncoding::Protobuf).unwrap_err();
    assert!(garbage.to_string().starts_with("the body is not a Zipkin v2 protobuf ListOfSpans"), "{garbage}");
}

#[test]
fn null_empty_and_null_entries_are_no_spans() {
    for body in [json!(null), json!([]), json!([null])] {
        assert!(decode_json(body.clone()).unwrap().resource_spans.is_empty(), "{body}");
    }
    assert!(decode(b"", ZipkinEncoding::Protobuf).unwrap().resource_spans.is_empty());
    assert_eq!(spans_of(json!([null, span_with(json!({}))])).len(), 1);
}

#[test]
fn unknown_fields_and_kinds_are_ignored_and_span_kind_tags_fill_in() {
    let kinds = [
        (json!({"kind": "SERVER"}), 2),
        (json!({"kind": "PRODUCER"}), 4),
        (json!({"kind": "CONSUMER"}), 5),
        (json!({"kind": "server", "unknown": {"x": 1}}), 0),
        (json!({"kind": null}), 0),
        (json!({"tags": {"span.kind": "internal"}}), 1),
        (json!({"tags": {"span.kind": "Client"}}), 3),
    ];
    for (extra, kind) in kinds {
        let span = one_span(span_with(extra.clone()));
        assert_eq!(span.kind, kind, "{extra}");
        assert_eq!(value_of(&span.attributes, "span.kind"), None, "{extra}: a tag that named the kind is used up");
    }
    let span = one_span(span_with(json!({"tags": {"span.kind": "weird"}})));
    assert_eq!((span.kind, value_of(&span.attributes, "span.kind")), (0, text("weird")));
    let span = one_span(span_with(json!({"kind": "SERVER", "tags": {"span.kind": "client"}})));
    assert_eq!((span.kind, value_of(&span.attributes, "span.kind")), (2, text("client")), "Zipkin's kind wins");
}

#[test]
fn status_comes_from_otel_status_code_and_the_error_tag() {
    let status = |tags: serde_json::Value| {
        let span = one_span(span_with(json!({ "tags": tags })));
        let status = span.status.clone().unwrap_or_default();
        (
            status.code,
            status.message,
            value_of(&span.attributes, "error"),
            value_of(&span.attributes, "otel.status_code"),
        )
    };
    assert_eq!(status(json!({"otel.status_code": "OK"})), (1, String::new(), None, None));
    assert_eq!(status(json!({"otel.status_code": "STATUS_CODE_OK"})), (1, String::new(), None, None));
    assert_eq!(
        status(json!({"otel.status_code": "Error", "otel.status_description": "boom"})),
        (2, "boom".into(), None, None)
    );
    assert_eq!(status(json!({"otel.status_code": "UNSET"})), (0, String::new(), None, None));
    assert_eq!(
        status(json!({"otel.status_code": "maybe"})),
        (0, String::new(), None, text("maybe")),
        "kept when unknown"
    );
    // OpenTelemetry's exporters: ERROR plus `error` = the description.
    assert_eq!(
        status(json!({"otel.status_code": "ERROR", "error": "deadlock"})),
        (2, "deadlock".into(), text("deadlock"), None)
    );
    assert_eq!(status(json!({"otel.status_code": "ERROR", "error": ""})), (2, String::new(), text(""), None));
    // Zipkin's own instrumentation: the tag's presence is the error.
    assert_eq!(status(json!({"error": "true"})), (2, String::new(), None, None));
    assert_eq!(status(json!({"error": "false"})), (2, String::new(), text("false"), None));
    assert_eq!(status(json!({"error": "500"})), (2, "500".into(), text("500"), None));
    assert_eq!(status(json!({"otel.status_code": "OK", "error": "x"})), (2, "x".into(), text("x"), None));
    let description_alone = one_span(span_with(json!({"tags": {"otel.status_description": "d"}})));
    assert_eq!(
        (description_alone.status, value_of(&description_alone.attributes, "otel.status_description")),
        (None, text("d"))
    );
}

#[test]
fn annotations_become_events_keeping_every_form_whole() {
    let events = |value: &str| {
        let span = one_span(span_with(json!({"annotations": [{"timestamp": 5, "value": value}]})));
        let event = span.events[0].clone();
        let attributes: Vec<(String, Value)> =
            event.attributes.into_iter().map(|kv| (kv.key, kv.value.unwrap().value.unwrap())).collect();
        (event.name, attributes, event.dropped_attributes_count, event.time_unix_nano)
    };
    let (name, attributes, dropped, time) =
        events(r#"{"cache miss": {"attempt": 2, "hot": false, "key": "k", "shards": ["a", "b"], "weight": 1.5}}"#);
    assert_eq!((name.as_str(), dropped, time), ("cache miss", 0, 5000));
    let shards = Value::ArrayValue(opentelemetry_proto::tonic::common::v1::ArrayValue {
        values: ["a", "b"].map(|s| AnyValue { value: text(s) }).to_vec(),
    });
    assert_eq!(
        attributes,
        vec![
            ("attempt".into(), Value::IntValue(2)),
            ("hot".into(), Value::BoolValue(false)),
            ("key".into(), Value::StringValue("k".into())),
            ("shards".into(), shards),
            ("weight".into(), Value::DoubleValue(1.5)),
        ]
    );
    let (name, attributes, dropped, _) = events(r#"retry|{"n": 3, "why": "a|b"}|2"#);
    assert_eq!((name.as_str(), attributes.len(), dropped), ("retry", 2, 2), "the Collector's form");
    for plain in ["cs", "a|b", "a|b|c", "{\"not\": \"an event\"}", "{\"a\": {}, \"b\": {}}"] {
        let (name, attributes, _, _) = events(plain);
        assert_eq!((name.as_str(), attributes.len()), (plain, 0), "kept whole");
    }
}

#[test]
fn links_come_from_the_collectors_link_tags() {
    let link = format!("{TRACE}|0102030405060708|k=v|{{\"why\":\"retry|again\"}}|3");
    let span =
        one_span(span_with(json!({"tags": {"otlp.link.0": link, "otlp.link.1": "short|form", "otlp.link.3": "x"}})));
    assert_eq!(span.links.len(), 1);
    let first = &span.links[0];
    assert_eq!(
        (hex::encode(&first.trace_id), hex::encode(&first.span_id)),
        (TRACE.to_owned(), "0102030405060708".to_owned())
    );
    assert_eq!((first.trace_state.as_str(), first.dropped_attributes_count), ("k=v", 3));
    assert_eq!(value_of(&first.attributes, "why"), text("retry|again"));
    assert_eq!(value_of(&span.attributes, "otlp.link.3"), text("x"), "numbering stops at the first gap");
}

#[test]
fn resources_group_by_service_and_resource_tags_and_scopes_by_name_and_version() {
    let span = |id: &str, service: Option<&str>, tags: serde_json::Value| {
        let mut span = span_with(json!({"id": id, "tags": tags}));
        if let Some(service) = service {
            span["localEndpoint"] = json!({"serviceName": service});
        }
        span
    };
    let request = decode_json(json!([
        span("1", Some("a"), json!({"host.name": "h1", "otel.scope.name": "s", "otel.scope.version": "1"})),
        span("2", Some("b"), json!({})),
        span("3", Some("a"), json!({"host.name": "h1", "otel.library.name": "s", "otel.library.version": "2"})),
        span("4", Some("a"), json!({"host.name": "h2"})),
        span("5", None, json!({"host.name": "h3"})),
        span("6", Some("a"), json!({"service.name": "renamed"})),
        span("7", Some("a"), json!({"otlp.service.name.source": "custom.service"})),
        span("8", Some("a"), json!({"otel.scope.name": "new", "otel.library.name": "old"})),
    ]))
    .unwrap();
    type Described = (Vec<(String, String)>, Vec<(String, String, usize)>);
    let described: Vec<Described> = request
        .resource_spans
        .iter()
        .map(|rs| {
            let resource = rs.resource.clone().unwrap().attributes.into_iter().map(|kv| {
                let Some(Value::StringValue(value)) = kv.value.unwrap().value else {
                    panic!("string resource attributes")
                };
                (kv.key, value)
            });
            let scopes = rs.scope_spans.iter().map(|ss| {
                let scope = ss.scope.clone().unwrap();
                (scope.name, scope.version, ss.spans.len())
            });
            (resource.collect(), scopes.collect())
        })
        .collect();
    let pairs = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<Vec<_>>();
    let scope = |name: &str, version: &str, spans| (name.to_owned(), version.to_owned(), spans);
    assert_eq!(
        described,
        vec![
            (pairs(&[("service.name", "a"), ("host.name", "h1")]), vec![scope("s", "1", 1), scope("s", "2", 1)]),
            (pairs(&[("service.name", "b")]), vec![scope("", "", 1)]),
            (pairs(&[("service.name", "a"), ("host.name", "h2")]), vec![scope("", "", 1)]),
            (pairs(&[("host.name", "h3")]), vec![scope("", "", 1)]),
            (pairs(&[("service.name", "renamed")]), vec![scope("", "", 1)]),
            (pairs(&[("custom.service", "a")]), vec![scope("", "", 1)]),
            (pairs(&[("service.name", "a")]), vec![scope("new", "", 1)]),
        ]
    );
    let last = &request.resource_spans[6].scope_spans[0].spans[0];
    assert_eq!(value_of(&last.attributes, "otel.library.name"), text("old"), "a differing library name stays");
}

#[test]
fn endpoints_fill_the_collectors_keys_and_the_peer_by_role() {
    let span = |kind: &str, tags: serde_json::Value| {
        one_span(span_with(json!({
            "kind": kind, "tags": tags,
            "localEndpoint": {"serviceName": "me", "ipv4": "10.0.0.1", "ipv6": "::ffff:10.0.0.2"},
            "remoteEndpoint": {"ipv4": "192.168.1.9", "port": 5432}
        })))
    };
    let server = span("SERVER", json!({"net.peer.ip": "overwritten"}));
    assert_eq!(value_of(&server.attributes, "net.host.ip"), text("10.0.0.2"), "IPv6 wins, v4-mapped written as IPv4");
    assert_eq!(value_of(&server.attributes, "net.peer.ip"), text("192.168.1.9"), "endpoints overwrite tags");
    assert_eq!(value_of(&server.attributes, "net.peer.port"), Some(Value::IntValue(5432)));
    assert_eq!(value_of(&server.attributes, "client.address"), text("192.168.1.9"));
    assert_eq!(value_of(&server.attributes, "server.address"), None);
    assert_eq!(value_of(&server.attributes, "peer.service"), None);
    let client = span("CLIENT", json!({"server.address": "db.internal"}));
    assert_eq!(value_of(&client.attributes, "server.address"), text("db.internal"), "the instrumentation's name wins");
    assert_eq!(value_of(&client.attributes, "server.port"), Some(Value::IntValue(5432)));
    let local = span("", json!({}));
    assert!(["server.address", "client.address"].iter().all(|key| value_of(&local.attributes, key).is_none()));
}

#[test]
fn absent_timestamps_start_at_the_epoch_with_the_collectors_marker() {
    let span = one_span(span_with(json!({"timestamp": null, "duration": 7})));
    assert_eq!((span.start_time_unix_nano, span.end_time_unix_nano), (0, 7000));
    assert_eq!(value_of(&span.attributes, "otel.zipkin.absentField.startTime"), Some(Value::BoolValue(true)));
    let span = one_span(span_with(json!({"duration": null})));
    assert_eq!(span.start_time_unix_nano, span.end_time_unix_nano);
    assert_eq!(value_of(&span.attributes, "otel.zipkin.absentField.startTime"), None);
}

#[test]
fn dropped_counts_move_from_tags_to_their_fields() {
    let span = one_span(span_with(json!({"tags": {
        "otel.dropped_attributes_count": "3", "otel.dropped_events_count": "1", "otel.dropped_links_count": "x"
    }})));
    assert_eq!((span.dropped_attributes_count, span.dropped_events_count, span.dropped_links_count), (3, 1, 0));
    assert_eq!(span.attributes.len(), 1, "only the count that is no number stays");
}

#[test]
fn shared_server_halves_get_their_own_id_under_the_client_half() {
    let client = json!({"traceId": TRACE, "id": "00000000000000aa", "parentId": "0000000000000001", "kind": "CLIENT",
                        "timestamp": 10, "localEndpoint": {"serviceName": "front"}});
    let server = json!({"traceId": TRACE, "id": "00000000000000aa", "parentId": "0000000000000001", "kind": "SERVER",
                        "shared": true, "timestamp": 11, "localEndpoint": {"serviceName": "back"}});
    let child = json!({"traceId": TRACE, "id": "00000000000000bb", "parentId": "00000000000000aa", "timestamp": 12,
                       "localEndpoint": {"serviceName": "back"}});
    let elsewhere = json!({"traceId": TRACE, "id": "00000000000000cc", "parentId": "00000000000000aa", "timestamp": 12,
                           "localEndpoint": {"serviceName": "front"}});
    let spans = spans_of(json!([client, server, child, elsewhere]));
    let by_kind = |kind: i32| spans.iter().find(|s| s.kind == kind).unwrap();
    let (client, server) = (by_kind(3), by_kind(2));
    assert_eq!(hex::encode(&client.span_id), "00000000000000aa");
    let server_id = shared::server_half_id(
        &crate::ids::TraceId::from_hex(TRACE).unwrap(),
        &crate::ids::SpanId::from_hex("aa").unwrap(),
    );
    assert_eq!(server.span_id, server_id.as_bytes().to_vec());
    assert_ne!(server.span_id, client.span_id);
    assert_eq!(server.parent_span_id, client.span_id, "the server half is the client half's child");
    assert_eq!(value_of(&server.attributes, "zipkin.shared"), Some(Value::BoolValue(true)));
    let parent_of = |id: &str| spans.iter().find(|s| hex::encode(&s.span_id) == id).unwrap().parent_span_id.clone();
    assert_eq!(parent_of("00000000000000bb"), server.span_id, "the server's own child moves under the server half");
    assert_eq!(parent_of("00000000000000cc"), client.span_id, "another service's child stays");
    // The same span sent again gets the same ID, so the ingester still knows it for a resend.
    let again = spans_of(json!([server_json_again()]));
    assert_eq!(again[0].span_id, server.span_id);
}

fn server_json_again() -> serde_json::Value {
    json!({"traceId": TRACE, "id": "aa", "parentId": "1", "kind": "SERVER", "shared": true, "timestamp": 11,
           "localEndpoint": {"serviceName": "back"}})
}

#[test]
fn content_types_choose_the_decoder_and_others_are_refused() {
    assert_eq!(ZipkinEncoding::from_content_type(None).unwrap(), ZipkinEncoding::Json);
    assert_eq!(
        ZipkinEncoding::from_content_type(Some("Application/JSON; charset=utf-8")).unwrap(),
        ZipkinEncoding::Json
    );
    assert_eq!(ZipkinEncoding::from_content_type(Some("application/x-protobuf")).unwrap(), ZipkinEncoding::Protobuf);
    assert_eq!(ZipkinEncoding::from_content_type(Some("application/protobuf")).unwrap(), ZipkinEncoding::Protobuf);
    let refused = ZipkinEncoding::from_content_type(Some("application/x-thrift")).unwrap_err();
    assert!(refused.to_string().contains("application/x-thrift"), "{refused}");
}

/// An endpoint's (service name, IPv4, IPv6, port).
type TestEndpoint = (String, Option<[u8; 4]>, Option<[u8; 16]>, u16);

/// One span's fields, from which both encodings are written.
#[derive(Clone, Debug)]
struct Fields {
    trace_id: Vec<u8>,
    id: u64,
    parent_id: Option<u64>,
    kind: i32,
    name: String,
    timestamp: u64,
    duration: u64,
    local: Option<TestEndpoint>,
    remote: Option<TestEndpoint>,
    annotations: Vec<(u64, String)>,
    tags: std::collections::BTreeMap<String, String>,
    shared: bool,
}

fn endpoint_strategy() -> impl Strategy<Value = Option<TestEndpoint>> {
    proptest::option::of(("[a-z]{1,6}", any::<Option<[u8; 4]>>(), any::<Option<[u8; 16]>>(), any::<u16>()))
}

fn fields_strategy() -> impl Strategy<Value = Fields> {
    let tag_key = prop_oneof![
        "[a-z.]{1,8}",
        Just("error".to_owned()),
        Just("host.name".to_owned()),
        Just("otel.status_code".to_owned()),
        Just("otel.scope.name".to_owned()),
        Just("span.kind".to_owned()),
    ];
    let tag_value =
        prop_oneof!["[ -~]{0,12}", Just("ERROR".to_owned()), Just("OK".to_owned()), Just("true".to_owned())];
    let ids = (
        prop_oneof![any::<[u8; 8]>().prop_map(|b| b.to_vec()), any::<[u8; 16]>().prop_map(|b| b.to_vec())],
        1u64..,
        proptest::option::of(1u64..),
    );
    let times = (0u64..1 << 52, 0u64..1 << 32);
    let annotation_value =
        prop_oneof!["[ -~]{0,16}", Just(r#"{"e": {"n": 1}}"#.to_owned()), Just(r#"a|{"b": true}|4"#.to_owned())];
    (
        ids,
        0i32..5,
        "[ -~]{0,12}",
        times,
        endpoint_strategy(),
        endpoint_strategy(),
        proptest::collection::vec((1u64..1 << 52, annotation_value), 0..3),
        proptest::collection::btree_map(tag_key, tag_value, 0..5),
        any::<bool>(),
    )
        .prop_filter("trace IDs are not all zero", |((trace_id, _, _), ..)| trace_id.iter().any(|b| *b != 0))
        .prop_map(
            |(
                (trace_id, id, parent_id),
                kind,
                name,
                (timestamp, duration),
                local,
                remote,
                annotations,
                tags,
                shared,
            )| Fields {
                trace_id,
                id,
                parent_id,
                kind,
                name,
                timestamp,
                duration,
                local,
                remote,
                annotations,
                tags,
                shared,
            },
        )
}

fn json_endpoint(endpoint: &TestEndpoint) -> serde_json::Value {
    let (service, ipv4, ipv6, port) = endpoint;
    let mut out = json!({"serviceName": service, "port": port});
    if let Some(ip) = ipv4 {
        out["ipv4"] = json!(std::net::Ipv4Addr::from(*ip).to_string());
    }
    if let Some(ip) = ipv6 {
        out["ipv6"] = json!(std::net::Ipv6Addr::from(*ip).to_string());
    }
    out
}

fn proto_endpoint(endpoint: &TestEndpoint) -> wire::Endpoint {
    let (service, ipv4, ipv6, port) = endpoint;
    wire::Endpoint {
        service_name: service.clone(),
        ipv4: ipv4.map(|ip| ip.to_vec()).unwrap_or_default(),
        ipv6: ipv6.map(|ip| ip.to_vec()).unwrap_or_default(),
        port: (*port).into(),
    }
}

fn as_json(fields: &Fields) -> serde_json::Value {
    let kinds = [None, Some("CLIENT"), Some("SERVER"), Some("PRODUCER"), Some("CONSUMER")];
    let mut span = json!({
        "traceId": hex::encode(&fields.trace_id), "id": format!("{:016x}", fields.id), "name": fields.name,
        "timestamp": fields.timestamp, "duration": fields.duration, "kind": kinds[fields.kind as usize],
        "annotations": fields.annotations.iter().map(|(t, v)| json!({"timestamp": t, "value": v})).collect::<Vec<_>>(),
        "tags": fields.tags, "shared": fields.shared,
    });
    if let Some(parent) = fields.parent_id {
        span["parentId"] = json!(format!("{parent:016x}"));
    }
    if let Some(local) = &fields.local {
        span["localEndpoint"] = json_endpoint(local);
    }
    if let Some(remote) = &fields.remote {
        span["remoteEndpoint"] = json_endpoint(remote);
    }
    span
}

fn as_proto(fields: &Fields) -> wire::Span {
    wire::Span {
        trace_id: fields.trace_id.clone(),
        parent_id: fields.parent_id.map(|p| p.to_be_bytes().to_vec()).unwrap_or_default(),
        id: fields.id.to_be_bytes().to_vec(),
        kind: fields.kind,
        name: fields.name.clone(),
        timestamp: fields.timestamp,
        duration: fields.duration,
        local_endpoint: fields.local.as_ref().map(proto_endpoint),
        remote_endpoint: fields.remote.as_ref().map(proto_endpoint),
        annotations: fields
            .annotations
            .iter()
            .map(|(t, v)| wire::Annotation { timestamp: *t, value: v.clone() })
            .collect(),
        tags: fields.tags.clone().into_iter().collect(),
        debug: false,
        shared: fields.shared,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Both encodings of the same spans map to the same OTLP, and every span is one the ingester takes
    /// whole (valid IDs, nothing refused), one OTLP span per Zipkin span.
    #[test]
    fn json_and_protobuf_of_the_same_spans_map_equal_and_ingest_whole(
        spans in proptest::collection::vec(fields_strategy(), 0..6),
    ) {
        let json_body = serde_json::Value::Array(spans.iter().map(as_json).collect()).to_string();
        let proto_body = wire::ListOfSpans { spans: spans.iter().map(as_proto).collect() }.encode_to_vec();
        let from_json = decode(json_body.as_bytes(), ZipkinEncoding::Json).unwrap();
        let from_proto = decode(&proto_body, ZipkinEncoding::Protobuf).unwrap();
        prop_assert_eq!(&from_json, &from_proto);
        prop_assert_eq!(crate::spans::span_count(&from_json.resource_spans), spans.len());
        let ingested = crate::ingest::NewSpans::from_request(from_json).unwrap();
        prop_assert!(ingested.rejected.is_empty(), "{:?}", ingested.rejected);
        prop_assert_eq!(ingested.batch.num_rows(), spans.len());
    }
}
