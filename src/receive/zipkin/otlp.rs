//! Zipkin spans to OTLP `ResourceSpans`: each span's resource (local service name and the tags that
//! describe the process, not the operation), scope, and the span itself. Spans of one resource and scope
//! are grouped, groups in the order they first appear.

use std::collections::HashMap;

use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

use super::model::{Endpoint, ZipkinSpan};
use super::tags::{self, Tags, attribute};
use super::{SpanProblem, ZipkinError};

/// Tags that describe the process (OpenTelemetry's resource semantic conventions), moved from the span
/// to its resource: the Collector's list, plus the current names of three it knows by older ones
/// (`deployment.environment.name`, `telemetry.distro.*`), which OpenTelemetry's exporters now send.
const RESOURCE_TAGS: &[&str] = &[
    "aws.ecs.cluster.arn",
    "aws.ecs.container.arn",
    "aws.ecs.launchtype",
    "aws.ecs.task.arn",
    "aws.ecs.task.family",
    "aws.ecs.task.revision",
    "aws.eks.cluster.arn",
    "aws.log.group.arns",
    "aws.log.group.names",
    "aws.log.stream.arns",
    "aws.log.stream.names",
    "cloud.account.id",
    "cloud.availability_zone",
    "cloud.platform",
    "cloud.provider",
    "cloud.region",
    "container.id",
    "container.image.name",
    "container.image.tag",
    "container.name",
    "container.runtime",
    "deployment.environment",
    "deployment.environment.name",
    "device.id",
    "device.manufacturer",
    "device.model.identifier",
    "device.model.name",
    "faas.id",
    "faas.instance",
    "faas.max_memory",
    "faas.name",
    "faas.version",
    "host.arch",
    "host.id",
    "host.image.id",
    "host.image.name",
    "host.image.version",
    "host.name",
    "host.type",
    "k8s.cluster.name",
    "k8s.container.name",
    "k8s.container.restart_count",
    "k8s.cronjob.name",
    "k8s.cronjob.uid",
    "k8s.daemonset.name",
    "k8s.daemonset.uid",
    "k8s.deployment.name",
    "k8s.deployment.uid",
    "k8s.job.name",
    "k8s.job.uid",
    "k8s.namespace.name",
    "k8s.node.name",
    "k8s.node.uid",
    "k8s.pod.name",
    "k8s.pod.uid",
    "k8s.replicaset.name",
    "k8s.replicaset.uid",
    "k8s.statefulset.name",
    "k8s.statefulset.uid",
    "opencensus.exporterversion",
    "opencensus.resourcetype",
    "opencensus.starttime",
    "os.description",
    "os.name",
    "os.type",
    "os.version",
    "process.command",
    "process.command_args",
    "process.command_line",
    "process.executable.name",
    "process.executable.path",
    "process.owner",
    "process.pid",
    "process.runtime.description",
    "process.runtime.name",
    "process.runtime.version",
    "service.instance.id",
    "service.name",
    "service.namespace",
    "service.version",
    "telemetry.auto.version",
    "telemetry.distro.name",
    "telemetry.distro.version",
    "telemetry.sdk.language",
    "telemetry.sdk.name",
    "telemetry.sdk.version",
    "webengine.description",
    "webengine.name",
    "webengine.version",
];

/// A resource as its (key, value) string attributes, in order: the grouping key of resources.
type ResourceKey = Vec<(String, String)>;
/// A scope as (name, version).
type ScopeKey = (String, String);
/// The spans of one resource, by scope.
type ScopeGroups = Vec<(ScopeKey, Vec<Span>)>;

/// One span mapped, with the resource and scope it belongs to.
struct Mapped {
    resource: ResourceKey,
    scope: ScopeKey,
    span: Span,
}

/// Maps every span and groups them by resource and scope.
pub fn resource_spans(spans: Vec<ZipkinSpan>) -> Result<Vec<ResourceSpans>, ZipkinError> {
    let mut groups: Vec<(ResourceKey, ScopeGroups)> = Vec::new();
    let mut group_of: HashMap<ResourceKey, usize> = HashMap::new();
    for (index, span) in spans.into_iter().enumerate() {
        let id = span.id.to_hex();
        let Mapped { resource, scope, span } =
            map_span(span).map_err(|problem| ZipkinError::Span { index, id: Some(id), problem })?;
        let group = *group_of.entry(resource.clone()).or_insert_with(|| {
            groups.push((resource, Vec::new()));
            groups.len() - 1
        });
        let scopes = &mut groups[group].1;
        match scopes.iter_mut().find(|(key, _)| *key == scope) {
            Some((_, spans)) => spans.push(span),
            None => scopes.push((scope, vec![span])),
        }
    }
    Ok(groups.into_iter().map(|(resource, scopes)| resource_group(resource, scopes)).collect())
}

fn resource_group(resource: ResourceKey, scopes: ScopeGroups) -> ResourceSpans {
    let attributes = resource.into_iter().map(|(key, value)| attribute(&key, Value::StringValue(value))).collect();
    ResourceSpans {
        resource: Some(Resource { attributes, ..Default::default() }),
        scope_spans: scopes
            .into_iter()
            .map(|((name, version), spans)| ScopeSpans {
                scope: Some(InstrumentationScope { name, version, ..Default::default() }),
                spans,
                schema_url: String::new(),
            })
            .collect(),
        schema_url: String::new(),
    }
}

/// The span's resource: `service.name` from the local endpoint (under the key an
/// `otlp.service.name.source` tag names, if any), then every resource tag, a `service.name` tag
/// overriding the endpoint's name as in the Collector.
fn resource(span: &ZipkinSpan, tags: &mut Tags) -> ResourceKey {
    let mut resource: ResourceKey = Vec::new();
    let name_key = tags.remove("otlp.service.name.source").unwrap_or_else(|| "service.name".to_owned());
    if let Some(name) = span.local_service_name() {
        resource.push((name_key, name.to_owned()));
    }
    for key in RESOURCE_TAGS {
        if let Some(value) = tags.remove(*key) {
            match resource.iter_mut().find(|(k, _)| k == key) {
                Some(existing) => existing.1 = value,
                None => resource.push(((*key).to_owned(), value)),
            }
        }
    }
    resource
}

fn map_span(span: ZipkinSpan) -> Result<Mapped, SpanProblem> {
    let mut tags: Tags = span.tags.iter().cloned().collect();
    let resource = resource(&span, &mut tags);
    let scope = tags::scope(&mut tags);
    let trace_state = tags::trace_state(&mut tags);
    let kind = tags::kind(span.kind, &mut tags);
    let status = tags::status(&mut tags);
    let links = tags::links(&mut tags)?;
    let [dropped_attributes_count, dropped_events_count, dropped_links_count] = tags::dropped_counts(&mut tags);

    let mut attributes: Vec<KeyValue> =
        tags.into_iter().map(|(key, value)| attribute(&key, Value::StringValue(value))).collect();
    endpoint_attributes(&span, kind, &mut attributes);
    if span.shared {
        upsert(&mut attributes, "zipkin.shared", Value::BoolValue(true));
    }

    let (start_time_unix_nano, end_time_unix_nano) = times(&span)?;
    if span.timestamp_micros.is_none() {
        // As the Collector marks it, so its Zipkin exporter leaves the timestamp out again.
        upsert(&mut attributes, "otel.zipkin.absentField.startTime", Value::BoolValue(true));
    }
    let events = span
        .annotations
        .into_iter()
        .map(|annotation| {
            let time = nanos(annotation.timestamp_micros, "annotation timestamp")?;
            Ok(tags::event(annotation, time))
        })
        .collect::<Result<_, SpanProblem>>()?;

    let parent_span_id = span.parent_id.filter(|parent| *parent != span.id).map(|p| p.as_bytes().to_vec());
    let span = Span {
        trace_id: span.trace_id.as_bytes().to_vec(),
        span_id: span.id.as_bytes().to_vec(),
        trace_state,
        parent_span_id: parent_span_id.unwrap_or_default(),
        flags: 0,
        name: span.name,
        kind: kind as i32,
        start_time_unix_nano,
        end_time_unix_nano,
        attributes,
        dropped_attributes_count,
        events,
        dropped_events_count,
        links,
        dropped_links_count,
        status,
    };
    Ok(Mapped { resource, scope, span })
}

fn nanos(micros: u64, field: &'static str) -> Result<u64, SpanProblem> {
    micros.checked_mul(1000).ok_or(SpanProblem::TimeOutOfRange { field, micros })
}

/// Start and end in nanoseconds. A span without a timestamp starts at the Unix epoch and lasts its
/// duration, as in the Collector.
fn times(span: &ZipkinSpan) -> Result<(u64, u64), SpanProblem> {
    let start = nanos(span.timestamp_micros.unwrap_or(0), "timestamp")?;
    let duration = nanos(span.duration_micros.unwrap_or(0), "duration")?;
    let end = start.checked_add(duration).ok_or(SpanProblem::TimeOutOfRange {
        field: "timestamp + duration",
        micros: span.timestamp_micros.unwrap_or(0).saturating_add(span.duration_micros.unwrap_or(0)),
    })?;
    Ok((start, end))
}

/// Sets `key`, replacing a value already there.
fn upsert(attributes: &mut Vec<KeyValue>, key: &str, value: Value) {
    match attributes.iter_mut().find(|kv| kv.key == key) {
        Some(existing) => *existing = attribute(key, value),
        None => attributes.push(attribute(key, value)),
    }
}

/// Sets `key` unless the span already has it.
fn insert_if_absent(attributes: &mut Vec<KeyValue>, key: &str, value: Value) {
    if !attributes.iter().any(|kv| kv.key == key) {
        attributes.push(attribute(key, value));
    }
}

/// The endpoints as attributes. The Collector's keys, always, replacing tags of the same name:
/// local IP → `net.host.ip`, local port → `net.host.port`, remote service → `peer.service`, remote IP →
/// `net.peer.ip`, remote port → `net.peer.port`. And the remote side under the current semantic
/// conventions, unless the tags already say it (instrumentation knows a host name where Zipkin has an
/// IP): the server of a CLIENT, PRODUCER or CONSUMER span → `server.address`/`server.port`, the client
/// of a SERVER span → `client.address`/`client.port`.
fn endpoint_attributes(span: &ZipkinSpan, kind: SpanKind, attributes: &mut Vec<KeyValue>) {
    if let Some(local) = &span.local_endpoint {
        if let Some(address) = local.address() {
            upsert(attributes, "net.host.ip", Value::StringValue(address));
        }
        if let Some(port) = local.port {
            upsert(attributes, "net.host.port", Value::IntValue(port.into()));
        }
    }
    let Some(remote) = &span.remote_endpoint else { return };
    if !remote.service_name.is_empty() {
        upsert(attributes, "peer.service", Value::StringValue(remote.service_name.clone()));
    }
    if let Some(address) = remote.address() {
        upsert(attributes, "net.peer.ip", Value::StringValue(address));
    }
    if let Some(port) = remote.port {
        upsert(attributes, "net.peer.port", Value::IntValue(port.into()));
    }
    let role = match kind {
        SpanKind::Client | SpanKind::Producer | SpanKind::Consumer => "server",
        SpanKind::Server => "client",
        _ => return,
    };
    semconv_peer(remote, role, attributes);
}

fn semconv_peer(remote: &Endpoint, role: &str, attributes: &mut Vec<KeyValue>) {
    if let Some(address) = remote.address() {
        insert_if_absent(attributes, &format!("{role}.address"), Value::StringValue(address));
    }
    if let Some(port) = remote.port {
        insert_if_absent(attributes, &format!("{role}.port"), Value::IntValue(port.into()));
    }
}
