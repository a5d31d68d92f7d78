//! Zipkin v2 JSON (`zipkin2-api.yaml`'s `ListOfSpans`) to [`ZipkinSpan`]s. As lenient as the Collector
//! where the Collector accepts what Zipkin's spec forbids and nothing is lost by it (upper-case hex,
//! IDs shorter than their full width, unknown fields, a `null` body or `null` entries, unknown kinds);
//! strict where accepting would store something broken (a missing or all-zero ID).

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::Deserialize;

use super::model::{Annotation, Endpoint, EndpointFields, Kind, ZipkinSpan};
use super::{SpanProblem, ZipkinError};
use crate::ids::{SpanId, TraceId};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JsonSpan {
    trace_id: Option<String>,
    id: Option<String>,
    parent_id: Option<String>,
    kind: Option<String>,
    name: Option<String>,
    timestamp: Option<u64>,
    duration: Option<u64>,
    local_endpoint: Option<JsonEndpoint>,
    remote_endpoint: Option<JsonEndpoint>,
    annotations: Option<Vec<JsonAnnotation>>,
    /// A `null` value counts as the empty string, as in the Collector.
    tags: Option<BTreeMap<String, Option<String>>>,
    debug: Option<bool>,
    shared: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JsonEndpoint {
    service_name: Option<String>,
    ipv4: Option<String>,
    ipv6: Option<String>,
    /// Wider than a port, so an out-of-range one is refused with the field named.
    port: Option<i64>,
}

#[derive(Deserialize)]
struct JsonAnnotation {
    timestamp: Option<u64>,
    value: Option<String>,
}

/// Decodes a JSON body: an array of spans, or `null` for none.
pub fn decode(body: &[u8]) -> Result<Vec<ZipkinSpan>, ZipkinError> {
    let list: Option<Vec<Option<JsonSpan>>> = serde_json::from_slice(body).map_err(ZipkinError::Json)?;
    list.unwrap_or_default()
        .into_iter()
        .enumerate()
        .filter_map(|(index, span)| span.map(|span| (index, span)))
        .map(|(index, span)| {
            let id = span.id.clone();
            span.check().map_err(|problem| ZipkinError::Span { index, id, problem })
        })
        .collect()
}

impl JsonSpan {
    fn check(self) -> Result<ZipkinSpan, SpanProblem> {
        let trace_text = self.trace_id.ok_or(SpanProblem::MissingTraceId)?;
        let trace_id =
            TraceId::from_hex(&trace_text).map_err(|source| SpanProblem::TraceId { text: trace_text, source })?;
        let id_text = self.id.ok_or(SpanProblem::MissingId)?;
        let id = SpanId::from_hex(&id_text).map_err(|source| SpanProblem::Id { text: id_text, source })?;
        let parent_id = match self.parent_id {
            // An empty or all-zero parent is no parent, as the Collector takes it.
            Some(text) if text.is_empty() || text.bytes().all(|b| b == b'0') => None,
            Some(text) => Some(SpanId::from_hex(&text).map_err(|source| SpanProblem::ParentId { text, source })?),
            None => None,
        };
        let annotations = self
            .annotations
            .unwrap_or_default()
            .into_iter()
            .enumerate()
            .map(|(index, annotation)| match annotation.timestamp {
                Some(timestamp) if timestamp > 0 => {
                    Ok(Annotation { timestamp_micros: timestamp, value: annotation.value.unwrap_or_default() })
                }
                _ => Err(SpanProblem::AnnotationTimestamp(index)),
            })
            .collect::<Result<_, _>>()?;
        Ok(ZipkinSpan {
            trace_id,
            id,
            parent_id,
            kind: self.kind.as_deref().and_then(Kind::from_json),
            name: self.name.unwrap_or_default(),
            timestamp_micros: self.timestamp.filter(|micros| *micros > 0),
            duration_micros: self.duration,
            local_endpoint: endpoint(self.local_endpoint, &EndpointFields::LOCAL)?,
            remote_endpoint: endpoint(self.remote_endpoint, &EndpointFields::REMOTE)?,
            annotations,
            tags: self.tags.unwrap_or_default().into_iter().map(|(k, v)| (k, v.unwrap_or_default())).collect(),
            debug: self.debug.unwrap_or(false),
            shared: self.shared.unwrap_or(false),
        })
    }
}

fn endpoint(raw: Option<JsonEndpoint>, fields: &EndpointFields) -> Result<Option<Endpoint>, SpanProblem> {
    let Some(raw) = raw else { return Ok(None) };
    let port = match raw.port {
        None | Some(0) => None,
        Some(port) => Some(u16::try_from(port).map_err(|_| SpanProblem::Port { field: fields.port, value: port })?),
    };
    let endpoint = Endpoint {
        service_name: raw.service_name.unwrap_or_default(),
        ipv4: ip(raw.ipv4, fields.ipv4)?,
        ipv6: ip(raw.ipv6, fields.ipv6)?,
        port,
    };
    Ok((!endpoint.is_empty()).then_some(endpoint))
}

/// An IP address in text; either family is taken in either field, as the Collector does.
fn ip(text: Option<String>, field: &'static str) -> Result<Option<IpAddr>, SpanProblem> {
    match text {
        None => Ok(None),
        Some(text) if text.is_empty() => Ok(None),
        Some(text) => text.parse().map(Some).map_err(|_| SpanProblem::Ip { field, value: text }),
    }
}
