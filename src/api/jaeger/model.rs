//! OTLP spans in Jaeger's trace JSON (the query service's "UI model"), as Jaeger v2 converts them: resource
//! attributes become a deduplicated process (`p1`, `p2`, … in order of first use), the span kind, status,
//! scope and trace state become tags, events become logs, the parent and links become references, times
//! are microseconds. Pure functions of the spans.

use std::collections::BTreeMap;

use base64::Engine;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::common::v1::{AnyValue as AnyValueMessage, KeyValue as OtlpKeyValue};
use opentelemetry_proto::tonic::trace::v1::ResourceSpans;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use serde::Serialize;
use serde_json::Value;

/// The largest integer a JSON reader using doubles reads exactly; larger ones are sent as strings, as
/// Jaeger does.
const MAX_SAFE_INTEGER: i64 = (1 << 53) - 1;

/// One trace in Jaeger's JSON.
#[derive(Debug, Serialize)]
pub struct Trace {
    #[serde(rename = "traceID")]
    pub trace_id: String,
    pub spans: Vec<Span>,
    pub processes: BTreeMap<String, Process>,
    pub warnings: Option<Vec<String>>,
}

/// One span in Jaeger's JSON.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Span {
    #[serde(rename = "traceID")]
    pub trace_id: String,
    #[serde(rename = "spanID")]
    pub span_id: String,
    #[serde(skip_serializing_if = "is_zero")]
    pub flags: u32,
    pub operation_name: String,
    pub references: Vec<Reference>,
    /// Microseconds since the epoch.
    pub start_time: u64,
    /// Microseconds.
    pub duration: u64,
    pub tags: Vec<KeyValue>,
    pub logs: Vec<Log>,
    #[serde(rename = "processID")]
    pub process_id: String,
    pub warnings: Option<Vec<String>>,
}

fn is_zero(value: &u32) -> bool {
    *value == 0
}

/// `CHILD_OF` (the parent) or `FOLLOWS_FROM` (a link).
#[derive(Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Reference {
    pub ref_type: &'static str,
    #[serde(rename = "traceID")]
    pub trace_id: String,
    #[serde(rename = "spanID")]
    pub span_id: String,
}

/// A service and its resource attributes; spans of equal processes share one entry.
#[derive(Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Process {
    pub service_name: String,
    pub tags: Vec<KeyValue>,
}

/// An event.
#[derive(Debug, Serialize)]
pub struct Log {
    /// Microseconds since the epoch.
    pub timestamp: u64,
    pub fields: Vec<KeyValue>,
}

/// A typed tag: `string`, `bool`, `int64`, `float64` or `binary` (base64).
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct KeyValue {
    pub key: String,
    #[serde(rename = "type")]
    pub value_type: &'static str,
    pub value: Value,
}

impl KeyValue {
    fn string(key: &str, value: impl Into<String>) -> Self {
        Self { key: key.to_owned(), value_type: "string", value: Value::String(value.into()) }
    }
}

/// A trace ID as Jaeger writes it: 16 hex characters when its high half is zero (a 64-bit ID), else 32.
pub fn trace_id_text(bytes: &[u8]) -> String {
    let text = hex::encode(bytes);
    match text.strip_prefix("0000000000000000") {
        Some(low) if text.len() == 32 => low.to_owned(),
        _ => text,
    }
}

/// An OTLP attribute as a Jaeger tag. Arrays and maps become their JSON text (Jaeger has no nested types).
pub fn tag(attribute: &OtlpKeyValue) -> KeyValue {
    let key = attribute.key.clone();
    let Some(value) = attribute.value.as_ref().and_then(|value| value.value.as_ref()) else {
        return KeyValue::string(&key, "");
    };
    let (value_type, value) = match value {
        AnyValue::StringValue(text) => ("string", Value::String(text.clone())),
        AnyValue::BoolValue(flag) => ("bool", Value::Bool(*flag)),
        AnyValue::IntValue(number) if number.unsigned_abs() <= MAX_SAFE_INTEGER.unsigned_abs() => {
            ("int64", Value::from(*number))
        }
        AnyValue::IntValue(number) => ("int64", Value::String(number.to_string())),
        // JSON has no NaN or infinity: those go as text, as a client would print them.
        AnyValue::DoubleValue(number) => match serde_json::Number::from_f64(*number) {
            Some(finite) => ("float64", Value::Number(finite)),
            None => ("float64", Value::String(number.to_string())),
        },
        AnyValue::BytesValue(bytes) => {
            ("binary", Value::String(base64::engine::general_purpose::STANDARD.encode(bytes)))
        }
        AnyValue::ArrayValue(_) | AnyValue::KvlistValue(_) => ("string", Value::String(json_text(value).to_string())),
        // A reference into a dictionary that OTLP/gRPC and OTLP/HTTP requests do not carry.
        AnyValue::StringValueStrindex(_) => ("string", Value::String(String::new())),
    };
    KeyValue { key, value_type, value }
}

/// A nested OTLP value as plain JSON (`["a", 1]`, `{"k": "v"}`), for arrays and maps in tags.
fn json_text(value: &AnyValue) -> Value {
    let of = |message: &AnyValueMessage| message.value.as_ref().map_or(Value::Null, json_text);
    match value {
        AnyValue::StringValue(text) => Value::String(text.clone()),
        AnyValue::BoolValue(flag) => Value::Bool(*flag),
        AnyValue::IntValue(number) => Value::from(*number),
        AnyValue::DoubleValue(number) => serde_json::Number::from_f64(*number).map_or(Value::Null, Value::Number),
        AnyValue::BytesValue(bytes) => Value::String(base64::engine::general_purpose::STANDARD.encode(bytes)),
        AnyValue::ArrayValue(array) => Value::Array(array.values.iter().map(of).collect()),
        AnyValue::KvlistValue(map) => Value::Object(
            map.values.iter().map(|kv| (kv.key.clone(), kv.value.as_ref().map_or(Value::Null, of))).collect(),
        ),
        AnyValue::StringValueStrindex(_) => Value::Null,
    }
}

fn sorted_tags(attributes: &[OtlpKeyValue]) -> Vec<KeyValue> {
    let mut tags: Vec<KeyValue> = attributes.iter().map(tag).collect();
    tags.sort_by(|a, b| a.key.cmp(&b.key));
    tags
}

fn micros(nanos: u64) -> u64 {
    nanos / 1_000
}

/// The spans of one trace (as a lookup returns them) in Jaeger's JSON; `None` when there are none (Jaeger
/// clients index the first span of every trace, so a trace without spans must never be sent).
pub fn trace(resource_spans: &[ResourceSpans]) -> Option<Trace> {
    let mut processes: Vec<Process> = Vec::new();
    let mut spans = Vec::new();
    for resource_spans in resource_spans {
        let attributes = resource_spans.resource.as_ref().map(|r| r.attributes.as_slice()).unwrap_or_default();
        let service_name = crate::spans::encode::service_name_of(attributes).unwrap_or_default().to_owned();
        let other: Vec<OtlpKeyValue> = attributes.iter().filter(|kv| kv.key != "service.name").cloned().collect();
        let process = Process { service_name, tags: sorted_tags(&other) };
        let index = match processes.iter().position(|known| *known == process) {
            Some(index) => index,
            None => {
                processes.push(process);
                processes.len() - 1
            }
        };
        // The index for now; numbered in span order below.
        let process_id = index.to_string();
        for scope_spans in &resource_spans.scope_spans {
            let scope = scope_spans.scope.as_ref();
            for span in &scope_spans.spans {
                spans.push(convert_span(span, scope, &process_id));
            }
        }
    }
    let first = spans.first()?;
    let trace_id = first.trace_id.clone();
    spans.sort_by(|a, b| a.start_time.cmp(&b.start_time).then_with(|| a.span_id.cmp(&b.span_id)));
    // Processes are numbered in the order spans first use them (as Jaeger does), so the numbers do not
    // depend on the order the lookup happened to return resources in.
    let mut order: Vec<usize> = Vec::new();
    for span in &mut spans {
        let found: usize = span.process_id.parse().unwrap_or(0);
        let number = match order.iter().position(|known| *known == found) {
            Some(at) => at + 1,
            None => {
                order.push(found);
                order.len()
            }
        };
        span.process_id = format!("p{number}");
    }
    let mut processes: Vec<Option<Process>> = processes.into_iter().map(Some).collect();
    let processes = order
        .iter()
        .enumerate()
        .filter_map(|(at, found)| Some((format!("p{}", at + 1), processes.get_mut(*found)?.take()?)))
        .collect();
    Some(Trace { trace_id, spans, processes, warnings: None })
}

fn convert_span(
    span: &opentelemetry_proto::tonic::trace::v1::Span,
    scope: Option<&opentelemetry_proto::tonic::common::v1::InstrumentationScope>,
    process_id: &str,
) -> Span {
    let trace_id = trace_id_text(&span.trace_id);
    let mut references = Vec::new();
    if !span.parent_span_id.is_empty() {
        references.push(Reference {
            ref_type: "CHILD_OF",
            trace_id: trace_id.clone(),
            span_id: hex::encode(&span.parent_span_id),
        });
    }
    for link in &span.links {
        let child_of = link.attributes.iter().any(|kv| {
            kv.key == "opentracing.ref_type"
                && matches!(kv.value.as_ref().and_then(|v| v.value.as_ref()), Some(AnyValue::StringValue(t)) if t == "child_of")
        });
        let reference = Reference {
            ref_type: if child_of { "CHILD_OF" } else { "FOLLOWS_FROM" },
            trace_id: trace_id_text(&link.trace_id),
            span_id: hex::encode(&link.span_id),
        };
        // A link to the parent itself says nothing the parent reference does not.
        if !references.iter().any(|known| known.trace_id == reference.trace_id && known.span_id == reference.span_id) {
            references.push(reference);
        }
    }
    let mut tags = Vec::new();
    if let Some(scope) = scope {
        if !scope.name.is_empty() {
            tags.push(KeyValue::string("otel.scope.name", scope.name.clone()));
        }
        if !scope.version.is_empty() {
            tags.push(KeyValue::string("otel.scope.version", scope.version.clone()));
        }
    }
    tags.extend(sorted_tags(&span.attributes));
    let kind = match SpanKind::try_from(span.kind).unwrap_or(SpanKind::Unspecified) {
        SpanKind::Unspecified => None,
        SpanKind::Internal => Some("internal"),
        SpanKind::Server => Some("server"),
        SpanKind::Client => Some("client"),
        SpanKind::Producer => Some("producer"),
        SpanKind::Consumer => Some("consumer"),
    };
    if let Some(kind) = kind {
        tags.push(KeyValue::string("span.kind", kind));
    }
    let status = span.status.clone().unwrap_or_default();
    match StatusCode::try_from(status.code).unwrap_or(StatusCode::Unset) {
        StatusCode::Ok => tags.push(KeyValue::string("otel.status_code", "OK")),
        StatusCode::Error => {
            tags.push(KeyValue::string("otel.status_code", "ERROR"));
            tags.push(KeyValue { key: "error".to_owned(), value_type: "bool", value: Value::Bool(true) });
        }
        StatusCode::Unset => {}
    }
    if !status.message.is_empty() {
        tags.push(KeyValue::string("otel.status_description", status.message));
    }
    if !span.trace_state.is_empty() {
        tags.push(KeyValue::string("w3c.tracestate", span.trace_state.clone()));
    }
    let mut logs: Vec<Log> = span
        .events
        .iter()
        .map(|event| {
            let mut fields = Vec::with_capacity(event.attributes.len() + 1);
            if !event.name.is_empty() && !event.attributes.iter().any(|kv| kv.key == "event") {
                fields.push(KeyValue::string("event", event.name.clone()));
            }
            fields.extend(event.attributes.iter().map(tag));
            Log { timestamp: micros(event.time_unix_nano), fields }
        })
        .collect();
    logs.sort_by_key(|log| log.timestamp);
    Span {
        trace_id,
        span_id: hex::encode(&span.span_id),
        flags: 0,
        operation_name: span.name.clone(),
        references,
        start_time: micros(span.start_time_unix_nano),
        duration: micros(span.end_time_unix_nano.saturating_sub(span.start_time_unix_nano)),
        tags,
        logs,
        process_id: process_id.to_owned(),
        warnings: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::{ArrayValue, InstrumentationScope};
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::span::{Event, Link};
    use opentelemetry_proto::tonic::trace::v1::{ScopeSpans, Span as OtlpSpan, Status};

    fn kv(key: &str, value: AnyValue) -> OtlpKeyValue {
        OtlpKeyValue { key: key.to_owned(), value: Some(AnyValueMessage { value: Some(value) }), ..Default::default() }
    }

    #[test]
    fn ids_take_jaegers_forms() {
        let mut id = [0u8; 16];
        id[15] = 0xab;
        assert_eq!(trace_id_text(&id), "00000000000000ab", "a 64-bit ID in 16 characters, zeros kept");
        id[0] = 1;
        assert_eq!(trace_id_text(&id), "010000000000000000000000000000ab");
    }

    #[test]
    fn tags_keep_their_types_and_what_json_cannot_hold_goes_as_text() {
        let cases = [
            (AnyValue::StringValue("x".into()), "string", Value::from("x")),
            (AnyValue::BoolValue(true), "bool", Value::from(true)),
            (AnyValue::IntValue(42), "int64", Value::from(42)),
            (AnyValue::IntValue(i64::MAX), "int64", Value::from(i64::MAX.to_string())),
            (AnyValue::DoubleValue(0.5), "float64", Value::from(0.5)),
            (AnyValue::DoubleValue(f64::NAN), "float64", Value::from("NaN")),
            (AnyValue::BytesValue(vec![0, 0, 48, 57]), "binary", Value::from("AAAwOQ==")),
            (
                AnyValue::ArrayValue(ArrayValue {
                    values: vec![AnyValueMessage { value: Some(AnyValue::StringValue("a".into())) }],
                }),
                "string",
                Value::from("[\"a\"]"),
            ),
        ];
        for (value, value_type, expected) in cases {
            let converted = tag(&kv("k", value));
            assert_eq!((converted.value_type, &converted.value), (value_type, &expected));
        }
    }

    fn span(id: u8, parent: Option<u8>) -> OtlpSpan {
        OtlpSpan {
            trace_id: vec![7; 16],
            span_id: vec![id; 8],
            parent_span_id: parent.map(|p| vec![p; 8]).unwrap_or_default(),
            name: format!("op-{id}"),
            start_time_unix_nano: 1_700_000_000_000_000_000 + u64::from(id) * 1_000,
            end_time_unix_nano: 1_700_000_000_002_500_000 + u64::from(id) * 1_000,
            ..OtlpSpan::default()
        }
    }

    fn resource(service: &str, host: &str) -> Option<Resource> {
        Some(Resource {
            attributes: vec![
                kv("service.name", AnyValue::StringValue(service.into())),
                kv("host.name", AnyValue::StringValue(host.into())),
            ],
            ..Resource::default()
        })
    }

    #[test]
    fn a_trace_converts_as_jaeger_v2_does() {
        let mut root = span(1, None);
        root.kind = SpanKind::Server as i32;
        root.status = Some(Status { code: StatusCode::Error as i32, message: "timeout".into() });
        root.trace_state = "k=v".into();
        root.events = vec![Event {
            time_unix_nano: 1_700_000_000_001_000_000,
            name: "exception".into(),
            attributes: vec![kv("exception.type", AnyValue::StringValue("E".into()))],
            ..Event::default()
        }];
        let mut child = span(2, Some(1));
        child.links = vec![
            Link { trace_id: vec![9; 16], span_id: vec![3; 8], ..Link::default() },
            Link { trace_id: vec![7; 16], span_id: vec![1; 8], ..Link::default() },
        ];
        let scope = Some(InstrumentationScope { name: "lib".into(), version: "1.0".into(), ..Default::default() });
        let batches = vec![
            ResourceSpans {
                resource: resource("cart", "a"),
                scope_spans: vec![ScopeSpans { scope: scope.clone(), spans: vec![root], ..Default::default() }],
                ..Default::default()
            },
            // An equal resource in another batch shares the process; another host is a new one.
            ResourceSpans {
                resource: resource("cart", "a"),
                scope_spans: vec![ScopeSpans { scope: None, spans: vec![child], ..Default::default() }],
                ..Default::default()
            },
            ResourceSpans {
                resource: resource("cart", "b"),
                scope_spans: vec![ScopeSpans { scope: None, spans: vec![span(4, Some(1))], ..Default::default() }],
                ..Default::default()
            },
        ];
        let trace = trace(&batches).expect("a trace");
        let json = serde_json::to_value(&trace).unwrap();
        assert_eq!(json["traceID"], "07070707070707070707070707070707");
        assert_eq!(json["warnings"], Value::Null);
        assert_eq!(json["processes"].as_object().unwrap().len(), 2);
        assert_eq!(json["processes"]["p1"]["serviceName"], "cart");
        assert_eq!(
            json["processes"]["p1"]["tags"][0],
            serde_json::json!({"key": "host.name", "type": "string", "value": "a"})
        );
        let spans = json["spans"].as_array().unwrap();
        let root = &spans[0];
        assert_eq!(root["spanID"], "0101010101010101");
        assert_eq!(root["startTime"], 1_700_000_000_000_001_u64);
        assert_eq!(root["duration"], 2_500);
        assert!(root.get("flags").is_none());
        assert_eq!(root["references"], serde_json::json!([]));
        let keys: Vec<&str> = root["tags"].as_array().unwrap().iter().map(|t| t["key"].as_str().unwrap()).collect();
        assert_eq!(
            keys,
            [
                "otel.scope.name",
                "otel.scope.version",
                "span.kind",
                "otel.status_code",
                "error",
                "otel.status_description",
                "w3c.tracestate"
            ]
        );
        assert_eq!(root["tags"][4], serde_json::json!({"key": "error", "type": "bool", "value": true}));
        assert_eq!(root["logs"][0]["timestamp"], 1_700_000_000_001_000_u64);
        assert_eq!(
            root["logs"][0]["fields"][0],
            serde_json::json!({"key": "event", "type": "string", "value": "exception"})
        );
        assert_eq!(root["processID"], "p1");
        let child = &spans[1];
        assert_eq!(child["processID"], "p1", "equal resources share a process");
        assert_eq!(
            child["references"],
            serde_json::json!([
                {"refType": "CHILD_OF", "traceID": "07070707070707070707070707070707", "spanID": "0101010101010101"},
                {"refType": "FOLLOWS_FROM", "traceID": "09090909090909090909090909090909", "spanID": "0303030303030303"},
            ]),
            "the parent first, links after, a link to the parent not repeated"
        );
        assert_eq!(spans[2]["processID"], "p2");
    }

    #[test]
    fn no_spans_no_trace() {
        assert!(trace(&[]).is_none());
        assert!(trace(&[ResourceSpans::default()]).is_none());
    }
}
