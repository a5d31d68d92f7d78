//! Zipkin v2 protobuf (`proto/zipkin.proto`'s `ListOfSpans`) to [`ZipkinSpan`]s. Checked as the JSON
//! form is, so both encodings accept and refuse the same spans; one difference from the Collector: a
//! 64-bit (8-byte) trace ID, which zipkin.proto allows, is taken (left-padded to 16 bytes), not refused.

use prost::Message;

use super::model::{Annotation, Endpoint, EndpointFields, Kind, ZipkinSpan, ip_from_bytes};
use super::{SpanProblem, ZipkinError};
use crate::ids::{SpanId, TraceId};

/// The generated types of `proto/zipkin.proto`: Zipkin's protobuf body as it is on the wire.
#[allow(missing_docs, clippy::doc_markdown)]
pub mod wire {
    include!(concat!(env!("OUT_DIR"), "/zipkin.proto3.rs"));
}

/// Decodes a protobuf body; an empty body is an empty list.
pub fn decode(body: &[u8]) -> Result<Vec<ZipkinSpan>, ZipkinError> {
    let list = wire::ListOfSpans::decode(body).map_err(ZipkinError::Protobuf)?;
    list.spans
        .into_iter()
        .enumerate()
        .map(|(index, span)| {
            let id = (!span.id.is_empty()).then(|| hex::encode(&span.id));
            check(span).map_err(|problem| ZipkinError::Span { index, id, problem })
        })
        .collect()
}

fn check(span: wire::Span) -> Result<ZipkinSpan, SpanProblem> {
    let trace_id = trace_id(&span.trace_id)?;
    if span.id.is_empty() {
        return Err(SpanProblem::MissingId);
    }
    let id = SpanId::from_slice(&span.id).map_err(|source| SpanProblem::Id { text: hex::encode(&span.id), source })?;
    let parent_id = if span.parent_id.iter().all(|b| *b == 0) {
        None
    } else {
        let text = hex::encode(&span.parent_id);
        Some(SpanId::from_slice(&span.parent_id).map_err(|source| SpanProblem::ParentId { text, source })?)
    };
    let annotations = span
        .annotations
        .into_iter()
        .enumerate()
        .map(|(index, annotation)| match annotation.timestamp {
            0 => Err(SpanProblem::AnnotationTimestamp(index)),
            timestamp => Ok(Annotation { timestamp_micros: timestamp, value: annotation.value }),
        })
        .collect::<Result<_, _>>()?;
    let mut tags: Vec<(String, String)> = span.tags.into_iter().collect();
    tags.sort();
    Ok(ZipkinSpan {
        trace_id,
        id,
        parent_id,
        kind: kind(span.kind),
        name: span.name,
        timestamp_micros: (span.timestamp > 0).then_some(span.timestamp),
        duration_micros: (span.duration > 0).then_some(span.duration),
        local_endpoint: endpoint(span.local_endpoint, &EndpointFields::LOCAL)?,
        remote_endpoint: endpoint(span.remote_endpoint, &EndpointFields::REMOTE)?,
        annotations,
        tags,
        debug: span.debug,
        shared: span.shared,
    })
}

/// 16 bytes as they are, 8 bytes (a 64-bit trace ID) left-padded with zeros.
fn trace_id(bytes: &[u8]) -> Result<TraceId, SpanProblem> {
    let mut padded = [0u8; 16];
    match bytes.len() {
        0 => return Err(SpanProblem::MissingTraceId),
        8 => padded[8..].copy_from_slice(bytes),
        16 => padded.copy_from_slice(bytes),
        other => return Err(SpanProblem::TraceIdLength(other)),
    }
    TraceId::from_slice(&padded).map_err(|source| SpanProblem::TraceId { text: hex::encode(bytes), source })
}

fn kind(value: i32) -> Option<Kind> {
    match wire::span::Kind::try_from(value).ok()? {
        wire::span::Kind::Client => Some(Kind::Client),
        wire::span::Kind::Server => Some(Kind::Server),
        wire::span::Kind::Producer => Some(Kind::Producer),
        wire::span::Kind::Consumer => Some(Kind::Consumer),
        wire::span::Kind::SpanKindUnspecified => None,
    }
}

fn endpoint(raw: Option<wire::Endpoint>, fields: &EndpointFields) -> Result<Option<Endpoint>, SpanProblem> {
    let Some(raw) = raw else { return Ok(None) };
    let port = match raw.port {
        0 => None,
        port => Some(u16::try_from(port).map_err(|_| SpanProblem::Port { field: fields.port, value: port.into() })?),
    };
    let endpoint = Endpoint {
        service_name: raw.service_name,
        ipv4: ip(&raw.ipv4, fields.ipv4)?,
        ipv6: ip(&raw.ipv6, fields.ipv6)?,
        port,
    };
    Ok((!endpoint.is_empty()).then_some(endpoint))
}

fn ip(bytes: &[u8], field: &'static str) -> Result<Option<std::net::IpAddr>, SpanProblem> {
    if bytes.is_empty() {
        return Ok(None);
    }
    ip_from_bytes(bytes).map(Some).ok_or(SpanProblem::IpLength { field, bytes: bytes.len() })
}
