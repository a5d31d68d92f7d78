//! The parts of a Zipkin span that OTLP keeps in fields of their own and Zipkin carries in tags or
//! strings: kind, status, trace state, links, dropped counts, scope, and events in annotation values.
//! Each function takes the tags it maps out of the span's tag map, so what is left becomes attributes.

use std::collections::BTreeMap;

use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{AnyValue, ArrayValue, KeyValue, KeyValueList};
use opentelemetry_proto::tonic::trace::v1::span::{Event, Link, SpanKind};
use opentelemetry_proto::tonic::trace::v1::{Status, status::StatusCode};

use super::SpanProblem;
use super::model::{Annotation, Kind};

/// A span's tags while they are mapped; sorted by key.
pub type Tags = BTreeMap<String, String>;

/// A key-value attribute.
pub fn attribute(key: &str, value: Value) -> KeyValue {
    KeyValue { key: key.to_owned(), value: Some(AnyValue { value: Some(value) }), ..Default::default() }
}

/// The OTLP kind: Zipkin's when set; otherwise the `span.kind` tag when it names a kind (taken out of the
/// tags), else unspecified. The Collector takes only `internal` from the tag and drops any other value.
pub fn kind(kind: Option<Kind>, tags: &mut Tags) -> SpanKind {
    match kind {
        Some(Kind::Client) => SpanKind::Client,
        Some(Kind::Server) => SpanKind::Server,
        Some(Kind::Producer) => SpanKind::Producer,
        Some(Kind::Consumer) => SpanKind::Consumer,
        None => {
            let named = tags.get("span.kind").and_then(|value| match value.to_ascii_lowercase().as_str() {
                "internal" => Some(SpanKind::Internal),
                "server" => Some(SpanKind::Server),
                "client" => Some(SpanKind::Client),
                "producer" => Some(SpanKind::Producer),
                "consumer" => Some(SpanKind::Consumer),
                _ => None,
            });
            if named.is_some() {
                tags.remove("span.kind");
            }
            named.unwrap_or(SpanKind::Unspecified)
        }
    }
}

/// The status code an `otel.status_code` tag names: OpenTelemetry's exporters send `OK`/`ERROR`, the
/// Collector's `STATUS_CODE_OK`…; any letter case, with or without the prefix.
fn status_code(text: &str) -> Option<StatusCode> {
    let upper = text.to_ascii_uppercase();
    match upper.strip_prefix("STATUS_CODE_").unwrap_or(&upper) {
        "UNSET" => Some(StatusCode::Unset),
        "OK" => Some(StatusCode::Ok),
        "ERROR" => Some(StatusCode::Error),
        _ => None,
    }
}

/// The span status, from `otel.status_code` (+ `otel.status_description`) and the `error` tag:
/// * a known `otel.status_code` sets the code and is taken out of the tags, with
///   `otel.status_description` as the message; an unknown value stays an attribute;
/// * an `error` tag, whatever its value (Zipkin marks errors by the tag's presence), makes the code
///   ERROR; its value is the message when there is none yet and it says more than `true`/`false`;
///   the tag is taken out only when its value is `true` (otherwise it stays an attribute, as in the
///   Collector).
pub fn status(tags: &mut Tags) -> Option<Status> {
    let mut code = StatusCode::Unset;
    let mut message = String::new();
    if let Some(named) = tags.get("otel.status_code").and_then(|text| status_code(text)) {
        code = named;
        tags.remove("otel.status_code");
        message = tags.remove("otel.status_description").unwrap_or_default();
    }
    if let Some(error) = tags.get("error") {
        code = StatusCode::Error;
        if message.is_empty() && !matches!(error.as_str(), "" | "true" | "false") {
            message = error.clone();
        }
        if error == "true" {
            tags.remove("error");
        }
    }
    (code != StatusCode::Unset || !message.is_empty()).then_some(Status { code: code as i32, message })
}

/// The W3C trace state the Collector's exporter carries in `w3c.tracestate`.
pub fn trace_state(tags: &mut Tags) -> String {
    tags.remove("w3c.tracestate").unwrap_or_default()
}

/// The instrumentation scope's (name, version): `otel.scope.*` (what OpenTelemetry's exporters send
/// now), else `otel.library.*` (what they sent before, and the Collector reads). The tags used are taken
/// out; an `otel.library.*` tag that differs from the `otel.scope.*` one stays an attribute.
pub fn scope(tags: &mut Tags) -> (String, String) {
    let mut pick = |current: &str, older: &str| {
        let (new, old) = (tags.remove(current), tags.remove(older));
        match (new, old) {
            (Some(new), Some(old)) if new != old => {
                tags.insert(older.to_owned(), old);
                new
            }
            (Some(new), _) => new,
            (None, old) => old.unwrap_or_default(),
        }
    };
    let name = pick("otel.scope.name", "otel.library.name");
    let version = pick("otel.scope.version", "otel.library.version");
    (name, version)
}

/// The dropped counts OpenTelemetry's exporters send as `otel.dropped_{attributes,events,links}_count`
/// tags, taken out when they are numbers (the Collector leaves them as attributes).
pub fn dropped_counts(tags: &mut Tags) -> [u32; 3] {
    ["otel.dropped_attributes_count", "otel.dropped_events_count", "otel.dropped_links_count"].map(|key| {
        match tags.get(key).and_then(|text| text.parse::<u32>().ok()) {
            Some(count) => {
                tags.remove(key);
                count
            }
            None => 0,
        }
    })
}

/// Links the Collector's Zipkin exporter writes as tags `otlp.link.0`, `otlp.link.1`, … (up to 128,
/// stopping at the first missing index): `traceIdHex|spanIdHex|tracestate|{attributes JSON}|dropped`.
/// A value of fewer than five parts is dropped, as in the Collector; one that does not parse refuses
/// the request, as there.
pub fn links(tags: &mut Tags) -> Result<Vec<Link>, SpanProblem> {
    let mut links = Vec::new();
    for index in 0..128 {
        let key = format!("otlp.link.{index}");
        let Some(value) = tags.remove(&key) else { break };
        let parts: Vec<&str> = value.split('|').collect();
        if parts.len() < 5 {
            continue;
        }
        let problem = |reason: String| SpanProblem::Link { key: key.clone(), reason };
        let trace_id = fixed_hex::<16>(parts[0]).ok_or_else(|| problem(format!("trace ID {:?}", parts[0])))?;
        let span_id = fixed_hex::<8>(parts[1]).ok_or_else(|| problem(format!("span ID {:?}", parts[1])))?;
        let last = parts.len() - 1;
        let attributes = json_attributes(&parts[3..last].join("|")).map_err(problem)?;
        let dropped = parts[last].parse().map_err(|_| problem(format!("dropped count {:?}", parts[last])))?;
        links.push(Link {
            trace_id: trace_id.to_vec(),
            span_id: span_id.to_vec(),
            trace_state: parts[2].to_owned(),
            attributes,
            dropped_attributes_count: dropped,
            ..Default::default()
        });
    }
    Ok(links)
}

fn fixed_hex<const N: usize>(text: &str) -> Option<[u8; N]> {
    let mut out = [0u8; N];
    hex::decode_to_slice(text, &mut out).ok().map(|()| out)
}

/// An event from an annotation (`time` in nanoseconds, checked by the caller). The value is read as:
/// 1. `{"name": {attributes}}`, one key: what OpenTelemetry's Zipkin exporters send for an event;
/// 2. `name|{attributes}|dropped`: what the Collector's Zipkin exporter sends;
/// 3. anything else: the event's name, whole. (The Collector refuses a value with two or more `|` that
///    is not form 2 and cuts one with a single `|` at it; here neither loses anything.)
pub fn event(annotation: Annotation, time_unix_nano: u64) -> Event {
    let (name, attributes, dropped) = otel_event(&annotation.value)
        .or_else(|| collector_event(&annotation.value))
        .unwrap_or((annotation.value, Vec::new(), 0));
    Event { time_unix_nano, name, attributes, dropped_attributes_count: dropped }
}

fn otel_event(value: &str) -> Option<(String, Vec<KeyValue>, u32)> {
    if !value.starts_with('{') {
        return None;
    }
    let serde_json::Value::Object(object) = serde_json::from_str(value).ok()? else { return None };
    let mut entries = object.into_iter();
    let (name, serde_json::Value::Object(attributes)) = entries.next()? else { return None };
    entries.next().is_none().then(|| (name, object_attributes(attributes), 0))
}

fn collector_event(value: &str) -> Option<(String, Vec<KeyValue>, u32)> {
    let parts: Vec<&str> = value.split('|').collect();
    if parts.len() < 3 {
        return None;
    }
    let last = parts.len() - 1;
    let attributes = json_attributes(&parts[1..last].join("|")).ok()?;
    let dropped = parts[last].parse().ok()?;
    Some((parts[0].to_owned(), attributes, dropped))
}

/// Attributes from a JSON object's text.
fn json_attributes(text: &str) -> Result<Vec<KeyValue>, String> {
    match serde_json::from_str(text) {
        Ok(serde_json::Value::Object(object)) => Ok(object_attributes(object)),
        _ => Err(format!("attributes {text:?} are not a JSON object")),
    }
}

/// A JSON object's members as typed attributes: strings, booleans, integers (when they fit in i64),
/// doubles, arrays and maps keep their JSON types; `null` members are left out.
fn object_attributes(object: serde_json::Map<String, serde_json::Value>) -> Vec<KeyValue> {
    object
        .into_iter()
        .filter_map(|(key, value)| {
            Some(KeyValue { key, value: Some(AnyValue { value: Some(json_value(value)?) }), ..Default::default() })
        })
        .collect()
}

fn json_value(value: serde_json::Value) -> Option<Value> {
    Some(match value {
        serde_json::Value::Null => return None,
        serde_json::Value::Bool(b) => Value::BoolValue(b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Value::IntValue(i),
            None => Value::DoubleValue(n.as_f64()?),
        },
        serde_json::Value::String(s) => Value::StringValue(s),
        serde_json::Value::Array(items) => Value::ArrayValue(ArrayValue {
            values: items.into_iter().filter_map(json_value).map(|v| AnyValue { value: Some(v) }).collect(),
        }),
        serde_json::Value::Object(object) => Value::KvlistValue(KeyValueList { values: object_attributes(object) }),
    })
}
