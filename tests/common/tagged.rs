//! Spans with chosen services, names and attributes, as OTLP/JSON, for the tests of tag summaries,
//! autocomplete and pruning by summary.

use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Value, json};

use super::server::{TestServer, send};

/// One span to send: its name, span attributes (key, OTLP `AnyValue` JSON) and event attributes.
pub struct Spec {
    pub name: &'static str,
    pub attributes: Vec<(String, Value)>,
    pub event_attributes: Vec<(String, Value)>,
}

impl Spec {
    pub fn named(name: &'static str) -> Self {
        Self { name, attributes: Vec::new(), event_attributes: Vec::new() }
    }

    pub fn with(mut self, key: &str, value: Value) -> Self {
        self.attributes.push((key.to_owned(), value));
        self
    }

    pub fn with_event(mut self, key: &str, value: Value) -> Self {
        self.event_attributes.push((key.to_owned(), value));
        self
    }
}

/// A string `AnyValue`.
pub fn s(text: &str) -> Value {
    json!({ "stringValue": text })
}

/// An int `AnyValue` (64-bit ints are strings in OTLP/JSON).
pub fn i(number: i64) -> Value {
    json!({ "intValue": number.to_string() })
}

fn key_values(attributes: &[(String, Value)]) -> Value {
    attributes.iter().map(|(key, value)| json!({ "key": key, "value": value })).collect()
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// One request: every span in its own trace, under one resource whose `service.name` is `service`, with
/// more resource attributes and a scope with one attribute. Spans start now.
pub fn request(service: &str, resource: &[(String, Value)], spans: &[Spec]) -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("after 1970").as_nanos() as u64;
    let mut resource_attributes = vec![("service.name".to_owned(), s(service))];
    resource_attributes.extend(resource.iter().cloned());
    let spans: Vec<Value> = spans
        .iter()
        .map(|spec| {
            let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
            let events: Vec<Value> = if spec.event_attributes.is_empty() {
                Vec::new()
            } else {
                vec![json!({"timeUnixNano": (now + 1).to_string(), "name": "ev",
                    "attributes": key_values(&spec.event_attributes)})]
            };
            json!({
                "traceId": format!("{:032x}", u128::from(id) << 8 | 1),
                "spanId": format!("{id:016x}"),
                "name": spec.name,
                "kind": 2,
                "startTimeUnixNano": now.to_string(),
                "endTimeUnixNano": (now + 1_000_000).to_string(),
                "attributes": key_values(&spec.attributes),
                "events": events,
            })
        })
        .collect();
    json!({"resourceSpans": [{
        "resource": {"attributes": key_values(&resource_attributes)},
        "scopeSpans": [{"scope": {"name": "lib", "attributes": key_values(&[("lib.kind".to_owned(), s("auto"))])},
                        "spans": spans}],
    }]})
    .to_string()
}

/// Sends a request (as `tenant`, if any) and checks it was accepted.
pub async fn send_spans(server: &TestServer, tenant: Option<&str>, body: String) {
    let mut headers = vec![("content-type", "application/json")];
    if let Some(tenant) = tenant {
        headers.push(("x-scope-orgid", tenant));
    }
    let reply = send("POST", &server.traces_url(), &headers, body).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
}

/// Cuts everything buffered into committed blocks.
pub async fn flush(server: &TestServer) {
    assert_eq!(send("POST", &server.query_url("/flush"), &[], "").await.status, 204);
}
