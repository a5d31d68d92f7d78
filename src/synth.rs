//! A seeded generator of realistic traces: many services and operations, trees of varying depth and
//! fan-out, typed attributes (strings, ints, doubles, bools, arrays), events and errors.
//!
//! Used by benchmarks, tests and (later) the load generator, so every measurement runs on the same kind of
//! data. The same seed always gives the same traces. Calls only the OTLP types.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, ArrayValue, InstrumentationScope, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::{Event, SpanKind};
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

const SERVICES: [&str; 16] = [
    "frontend",
    "checkout",
    "cart",
    "payment",
    "shipping",
    "email",
    "currency",
    "recommendation",
    "product-catalog",
    "ad",
    "quote",
    "accounting",
    "fraud-detection",
    "inventory",
    "auth",
    "search",
];
const ROUTES: [&str; 12] = [
    "/api/cart",
    "/api/checkout",
    "/api/products/{id}",
    "/api/recommendations",
    "/api/currency/convert",
    "/api/shipping/quote",
    "/api/users/{id}",
    "/api/orders",
    "/api/orders/{id}",
    "/api/search",
    "/healthz",
    "/api/ads",
];
const DB_STATEMENTS: [&str; 6] = [
    "SELECT * FROM products WHERE id = ?",
    "SELECT id, qty FROM cart_items WHERE user_id = ?",
    "INSERT INTO orders (id, user_id, total) VALUES (?, ?, ?)",
    "UPDATE inventory SET qty = qty - ? WHERE sku = ?",
    "SELECT rate FROM currency WHERE code = ?",
    "DELETE FROM sessions WHERE expires_at < ?",
];
const HOSTS_PER_SERVICE: u32 = 4;

/// Produces traces deterministically from a seed.
pub struct TraceGenerator {
    rng: SmallRng,
    clock_unix_nano: u64,
}

fn kv(key: &str, value: Value) -> KeyValue {
    KeyValue { key: key.to_owned(), value: Some(AnyValue { value: Some(value) }), ..Default::default() }
}

fn text(key: &str, value: &str) -> KeyValue {
    kv(key, Value::StringValue(value.to_owned()))
}

struct PlannedSpan {
    service: usize,
    span: Span,
}

impl TraceGenerator {
    /// A generator whose traces start at a fixed, recent-looking time and advance ~1 ms per trace.
    pub fn new(seed: u64) -> Self {
        Self { rng: SmallRng::seed_from_u64(seed), clock_unix_nano: 1_767_225_600_000_000_000 }
    }

    /// Starts traces at `unix_nano` from now on (a load generator uses the wall clock).
    pub fn set_clock(&mut self, unix_nano: u64) {
        self.clock_unix_nano = unix_nano;
    }

    /// One trace, grouped per service into `ResourceSpans` like an SDK batch would send it.
    pub fn next_trace(&mut self) -> Vec<ResourceSpans> {
        let mut trace_id = [0u8; 16];
        self.rng.fill(&mut trace_id[..]);
        trace_id[0] |= 1; // never all zeros
        let start = self.clock_unix_nano;
        self.clock_unix_nano += self.rng.random_range(200_000..2_000_000);
        let root_service = self.rng.random_range(0..SERVICES.len());
        let mut spans = Vec::new();
        let depth = self.rng.random_range(2..=6);
        let duration = self.rng.random_range(2_000_000..400_000_000);
        self.grow(&trace_id, None, root_service, start, duration, depth, &mut spans);
        self.group_by_service(spans)
    }

    /// A request of whole traces holding at least `min_spans` spans.
    pub fn next_request(&mut self, min_spans: usize) -> ExportTraceServiceRequest {
        let mut resource_spans = Vec::new();
        let mut count = 0;
        while count < min_spans {
            let trace = self.next_trace();
            count += crate::spans::span_count(&trace);
            resource_spans.extend(trace);
        }
        ExportTraceServiceRequest { resource_spans }
    }

    #[allow(clippy::too_many_arguments)]
    fn grow(
        &mut self,
        trace_id: &[u8; 16],
        parent: Option<&[u8; 8]>,
        service: usize,
        start: u64,
        duration: u64,
        depth: u32,
        out: &mut Vec<PlannedSpan>,
    ) {
        let mut span_id = [0u8; 8];
        self.rng.fill(&mut span_id[..]);
        span_id[7] |= 1;
        let span = self.make_span(trace_id, &span_id, parent, service, start, duration);
        out.push(PlannedSpan { service, span });
        if depth == 0 {
            return;
        }
        let children = self.rng.random_range(0..=4u32);
        for child in 0..children {
            let child_service =
                if self.rng.random_bool(0.5) { service } else { self.rng.random_range(0..SERVICES.len()) };
            let slot = duration / u64::from(children + 1);
            let child_start = start + slot * u64::from(child) + self.rng.random_range(0..slot.max(2) / 2);
            let child_duration = self.rng.random_range(slot / 4..slot.max(2));
            self.grow(trace_id, Some(&span_id), child_service, child_start, child_duration, depth - 1, out);
        }
    }

    fn make_span(
        &mut self,
        trace_id: &[u8; 16],
        span_id: &[u8; 8],
        parent: Option<&[u8; 8]>,
        service: usize,
        start: u64,
        duration: u64,
    ) -> Span {
        let error = self.rng.random_bool(0.03);
        let flavour = self.rng.random_range(0..10);
        let (name, kind, mut attributes) = match flavour {
            0..=3 => self.http_server(error),
            4..=5 => self.http_client(),
            6..=7 => self.database(),
            8 => self.messaging(),
            _ => (format!("{}.internal.compute", SERVICES[service]), SpanKind::Internal, Vec::new()),
        };
        attributes.push(kv("thread.id", Value::IntValue(self.rng.random_range(1..64))));
        let mut events = Vec::new();
        if self.rng.random_bool(0.1) {
            events.push(Event {
                time_unix_nano: start + duration / 2,
                name: "cache.miss".into(),
                attributes: vec![text("cache.key", &format!("k{}", self.rng.random_range(0..10_000)))],
                dropped_attributes_count: 0,
            });
        }
        if error {
            events.push(Event {
                time_unix_nano: start + duration - 1,
                name: "exception".into(),
                attributes: vec![
                    text("exception.type", "java.net.SocketTimeoutException"),
                    text("exception.message", "Read timed out after 3000 ms"),
                    text("exception.stacktrace", "java.net.SocketTimeoutException: Read timed out\n\tat java.base/sun.nio.ch.NioSocketImpl.timedRead(NioSocketImpl.java:288)\n\tat java.base/java.net.Socket$SocketInputStream.read(Socket.java:1099)"),
                ],
                dropped_attributes_count: 0,
            });
        }
        let status = if error {
            Some(Status { code: StatusCode::Error as i32, message: "upstream timed out".into() })
        } else if self.rng.random_bool(0.3) {
            Some(Status { code: StatusCode::Ok as i32, message: String::new() })
        } else {
            None
        };
        Span {
            trace_id: trace_id.to_vec(),
            span_id: span_id.to_vec(),
            parent_span_id: parent.map(|p| p.to_vec()).unwrap_or_default(),
            trace_state: String::new(),
            flags: 0x100 | 1,
            name,
            kind: kind as i32,
            start_time_unix_nano: start,
            end_time_unix_nano: start + duration,
            attributes,
            events,
            status,
            ..Default::default()
        }
    }

    fn http_server(&mut self, error: bool) -> (String, SpanKind, Vec<KeyValue>) {
        let route = ROUTES[self.rng.random_range(0..ROUTES.len())];
        let method = if self.rng.random_bool(0.7) { "GET" } else { "POST" };
        let status = if error {
            500
        } else if self.rng.random_bool(0.05) {
            404
        } else {
            200
        };
        let attributes = vec![
            text("http.request.method", method),
            text("http.route", route),
            kv("http.response.status_code", Value::IntValue(status)),
            text("url.path", &route.replace("{id}", &self.rng.random_range(1..100_000).to_string())),
            text("url.scheme", "http"),
            text(
                "user_agent.original",
                "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/126.0 Safari/537.36",
            ),
            text(
                "client.address",
                &format!(
                    "10.{}.{}.{}",
                    self.rng.random_range(0..4),
                    self.rng.random_range(0..255),
                    self.rng.random_range(1..255)
                ),
            ),
            kv("http.request.body.size", Value::IntValue(self.rng.random_range(0..20_000))),
        ];
        (format!("{method} {route}"), SpanKind::Server, attributes)
    }

    fn http_client(&mut self) -> (String, SpanKind, Vec<KeyValue>) {
        let peer = SERVICES[self.rng.random_range(0..SERVICES.len())];
        let method = if self.rng.random_bool(0.7) { "GET" } else { "POST" };
        let attributes = vec![
            text("http.request.method", method),
            text("server.address", peer),
            kv("server.port", Value::IntValue(8080)),
            text("url.full", &format!("http://{peer}:8080/api/{}", self.rng.random_range(1..1000))),
            kv("http.response.status_code", Value::IntValue(200)),
            kv("http.resend_count", Value::IntValue(self.rng.random_range(0..2))),
        ];
        (method.to_owned(), SpanKind::Client, attributes)
    }

    fn database(&mut self) -> (String, SpanKind, Vec<KeyValue>) {
        let statement = DB_STATEMENTS[self.rng.random_range(0..DB_STATEMENTS.len())];
        let operation = statement.split(' ').next().unwrap_or("QUERY");
        let attributes = vec![
            text("db.system", "postgresql"),
            text("db.namespace", "shop"),
            text("db.operation.name", operation),
            text("db.query.text", statement),
            kv("db.response.returned_rows", Value::IntValue(self.rng.random_range(0..500))),
            kv("db.client.connection.pool.utilization", Value::DoubleValue(self.rng.random_range(0.0..1.0))),
        ];
        (format!("{operation} shop"), SpanKind::Client, attributes)
    }

    fn messaging(&mut self) -> (String, SpanKind, Vec<KeyValue>) {
        let topic = ["orders", "payments", "emails"][self.rng.random_range(0..3)];
        let attributes = vec![
            text("messaging.system", "kafka"),
            text("messaging.destination.name", topic),
            kv("messaging.kafka.message.offset", Value::IntValue(self.rng.random_range(0..10_000_000))),
            kv("messaging.batch.message_count", Value::IntValue(self.rng.random_range(1..20))),
            kv(
                "messaging.kafka.partitions",
                Value::ArrayValue(ArrayValue {
                    values: (0..3).map(|p| AnyValue { value: Some(Value::IntValue(p)) }).collect(),
                }),
            ),
            kv("messaging.destination.temporary", Value::BoolValue(false)),
        ];
        (format!("{topic} publish"), SpanKind::Producer, attributes)
    }

    fn resource(&mut self, service: usize) -> Resource {
        let host = self.rng.random_range(0..HOSTS_PER_SERVICE);
        let name = SERVICES[service];
        Resource {
            attributes: vec![
                text("service.name", name),
                text("service.namespace", "shop"),
                text("service.version", &format!("1.{}.{}", service % 5, host)),
                text("deployment.environment.name", "production"),
                text("host.name", &format!("{name}-{host}.prod.internal")),
                text("k8s.namespace.name", "shop"),
                text("k8s.pod.name", &format!("{name}-7d9f8b{host:02}-x{service:02}q")),
                text("telemetry.sdk.name", "opentelemetry"),
                text("telemetry.sdk.language", ["java", "go", "python", "nodejs"][service % 4]),
                text("telemetry.sdk.version", "1.40.0"),
                kv("process.pid", Value::IntValue(1000 + i64::from(host) * 17 + service as i64)),
            ],
            dropped_attributes_count: 0,
            entity_refs: Vec::new(),
        }
    }

    fn group_by_service(&mut self, spans: Vec<PlannedSpan>) -> Vec<ResourceSpans> {
        let mut groups: Vec<(usize, Vec<Span>)> = Vec::new();
        for planned in spans {
            match groups.iter_mut().find(|(service, _)| *service == planned.service) {
                Some((_, group)) => group.push(planned.span),
                None => groups.push((planned.service, vec![planned.span])),
            }
        }
        groups
            .into_iter()
            .map(|(service, spans)| ResourceSpans {
                resource: Some(self.resource(service)),
                scope_spans: vec![ScopeSpans {
                    scope: Some(InstrumentationScope {
                        name: "io.opentelemetry.instrumentation".into(),
                        version: "2.5.0".into(),
                        ..Default::default()
                    }),
                    spans,
                    schema_url: "https://opentelemetry.io/schemas/1.26.0".into(),
                }],
                schema_url: String::new(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_traces_and_requests_reach_the_asked_size() {
        let first = TraceGenerator::new(7).next_request(500);
        let second = TraceGenerator::new(7).next_request(500);
        assert_eq!(first, second);
        let spans = crate::spans::span_count(&first.resource_spans);
        assert!(spans >= 500);
        assert_ne!(first, TraceGenerator::new(8).next_request(500));
    }
}
