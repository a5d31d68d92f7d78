//! Talking to `GET /api/search` of a test server (Tempo's search, issue 24).

use serde_json::Value;

use super::server::{TestServer, send};

/// Sends `GET /api/search?{query_string}`; the status and the body as JSON (`Null` if it is not JSON).
pub async fn search(server: &TestServer, query_string: &str) -> (u16, String, Value) {
    let url = server.query_url(&format!("/api/search?{query_string}"));
    let reply = send("GET", &url, &[], "").await;
    let body = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
    (reply.status, reply.text(), body)
}

/// `text` percent-encoded for a query string.
pub fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// The trace IDs of an answer, in order, as Tempo writes them (no leading zeros).
pub fn trace_ids(body: &Value) -> Vec<String> {
    body["traces"]
        .as_array()
        .expect("an answer has a traces list")
        .iter()
        .map(|t| t["traceID"].as_str().expect("traceID is a string").to_owned())
        .collect()
}

/// An attribute value as sent.
#[derive(Clone, Debug, PartialEq)]
pub enum Attr {
    Str(String),
    Int(i64),
    Double(f64),
    Bool(bool),
}

impl Attr {
    /// The OTLP/JSON `AnyValue`.
    pub fn to_otlp(&self) -> Value {
        match self {
            Attr::Str(s) => serde_json::json!({ "stringValue": s }),
            Attr::Int(i) => serde_json::json!({ "intValue": i.to_string() }),
            Attr::Double(d) => serde_json::json!({ "doubleValue": d }),
            Attr::Bool(b) => serde_json::json!({ "boolValue": b }),
        }
    }
}

/// Attributes in the order sent.
pub type Attrs = Vec<(String, Attr)>;

fn key_values(attributes: &Attrs) -> Value {
    Value::Array(attributes.iter().map(|(k, v)| serde_json::json!({ "key": k, "value": v.to_otlp() })).collect())
}

/// A service: its resource (`service.name` is added) and its instrumentation scope.
#[derive(Clone, Debug)]
pub struct Service {
    pub name: String,
    pub scope_name: String,
    pub scope_version: String,
    pub scope_attributes: Attrs,
    pub resource: Attrs,
}

#[derive(Clone, Debug)]
pub struct Event {
    pub name: String,
    pub time_unix_nano: i64,
    pub attributes: Attrs,
}

#[derive(Clone, Debug)]
pub struct Link {
    /// Lowercase hex, 32 digits.
    pub trace_id: String,
    /// Lowercase hex, 16 digits.
    pub span_id: String,
    pub attributes: Attrs,
}

/// One span as sent. IDs are lowercase hex at full width.
#[derive(Clone, Debug)]
pub struct Span {
    pub trace_id: String,
    pub span_id: String,
    pub parent_span_id: Option<String>,
    pub service: String,
    pub name: String,
    /// `unspecified internal server client producer consumer`.
    pub kind: String,
    /// `unset ok error`.
    pub status: String,
    pub message: String,
    pub start_unix_nano: i64,
    pub duration_nanos: i64,
    pub attributes: Attrs,
    pub events: Vec<Event>,
    pub links: Vec<Link>,
}

fn kind_number(kind: &str) -> u8 {
    match kind {
        "internal" => 1,
        "server" => 2,
        "client" => 3,
        "producer" => 4,
        "consumer" => 5,
        "unspecified" => 0,
        other => panic!("unknown span kind {other:?}"),
    }
}

fn status_number(status: &str) -> u8 {
    match status {
        "unset" => 0,
        "ok" => 1,
        "error" => 2,
        other => panic!("unknown status {other:?}"),
    }
}

/// An OTLP/JSON `ExportTraceServiceRequest` of `spans`, one resource per service.
pub fn otlp_json(services: &[Service], spans: &[&Span]) -> Value {
    let mut resource_spans = Vec::new();
    for service in services {
        let mine: Vec<Value> = spans.iter().filter(|s| s.service == service.name).map(|s| span_json(s)).collect();
        if mine.is_empty() {
            continue;
        }
        let mut resource = vec![("service.name".to_owned(), Attr::Str(service.name.clone()))];
        resource.extend(service.resource.iter().cloned());
        resource_spans.push(serde_json::json!({
            "resource": { "attributes": key_values(&resource) },
            "scopeSpans": [{
                "scope": {
                    "name": service.scope_name,
                    "version": service.scope_version,
                    "attributes": key_values(&service.scope_attributes),
                },
                "spans": mine,
            }],
        }));
    }
    serde_json::json!({ "resourceSpans": resource_spans })
}

fn span_json(span: &Span) -> Value {
    let mut json = serde_json::json!({
        "traceId": span.trace_id,
        "spanId": span.span_id,
        "name": span.name,
        "kind": kind_number(&span.kind),
        "startTimeUnixNano": span.start_unix_nano.to_string(),
        "endTimeUnixNano": (span.start_unix_nano + span.duration_nanos).to_string(),
        "attributes": key_values(&span.attributes),
        "status": { "code": status_number(&span.status), "message": span.message },
        "events": span.events.iter().map(|e| serde_json::json!({
            "timeUnixNano": e.time_unix_nano.to_string(),
            "name": e.name,
            "attributes": key_values(&e.attributes),
        })).collect::<Vec<_>>(),
        "links": span.links.iter().map(|l| serde_json::json!({
            "traceId": l.trace_id,
            "spanId": l.span_id,
            "attributes": key_values(&l.attributes),
        })).collect::<Vec<_>>(),
    });
    if let Some(parent) = &span.parent_span_id {
        json["parentSpanId"] = Value::String(parent.clone());
    }
    json
}

/// Sends `spans` as OTLP/JSON to the server's OTLP/HTTP port.
pub async fn send_spans(server: &TestServer, services: &[Service], spans: &[&Span]) {
    let body = serde_json::to_vec(&otlp_json(services, spans)).expect("JSON");
    let reply = send("POST", &server.traces_url(), &[("content-type", "application/json")], body).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
}

/// Cuts the ingester's spans into a block.
pub async fn flush(server: &TestServer) {
    assert_eq!(send("POST", &server.query_url("/flush"), &[], "").await.status, 204);
}
