//! Receiving Zipkin v2: the body of `POST /api/v2/spans` (a JSON list of spans or a protobuf
//! `ListOfSpans`) decoded, checked and mapped to an OTLP `ExportTraceServiceRequest`, which then takes
//! the same road into the WAL as an OTLP request.
//!
//! The mapping follows the OpenTelemetry Collector's Zipkin receiver, so data sent through either lands
//! the same, except where the Collector loses what the client sent; each such difference is listed in
//! `docs/zipkin.md`. Pure functions, no I/O: the `api` face reads the body, picks the encoding and
//! refuses what [`decode`] refuses, with the message of a [`ZipkinError`]. Calls `ids`; nothing in
//! `ingest` or `storage`.

mod json;
mod model;
mod otlp;
mod protobuf;
mod shared;
mod tags;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;

pub use model::{Annotation, Endpoint, Kind, ZipkinSpan};
pub use protobuf::wire;

/// The two encodings of Zipkin v2 spans.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ZipkinEncoding {
    Json,
    Protobuf,
}

impl ZipkinEncoding {
    /// The encoding a `Content-Type` announces. Parameters (`; charset=utf-8`) and letter case are
    /// ignored; a missing header means JSON, as Zipkin's own server and the Collector take it. Any other
    /// media type is refused and named (the Collector would try it as JSON; see docs/zipkin.md).
    pub fn from_content_type(content_type: Option<&str>) -> Result<Self, UnsupportedContentType> {
        let Some(raw) = content_type else {
            return Ok(Self::Json);
        };
        let essence = raw.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        match essence.as_str() {
            "application/json" => Ok(Self::Json),
            "application/x-protobuf" | "application/protobuf" => Ok(Self::Protobuf),
            _ => Err(UnsupportedContentType(raw.to_owned())),
        }
    }

    /// The encoding's name in messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::Json => "JSON",
            Self::Protobuf => "protobuf",
        }
    }
}

/// A `Content-Type` that is neither Zipkin encoding.
#[derive(Debug, thiserror::Error)]
#[error("unsupported content type {0:?}; send Zipkin v2 spans as application/json or application/x-protobuf")]
pub struct UnsupportedContentType(pub String);

/// Why a Zipkin body was refused as a whole (nothing of it is stored): the body is not a list of spans,
/// or one of its spans is malformed. Zipkin's reply has no room for partial success, so one bad span
/// refuses the request, as it does on Zipkin's server and the Collector.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ZipkinError {
    #[error("the body is not a Zipkin v2 JSON list of spans: {0}")]
    Json(#[source] serde_json::Error),
    #[error("the body is not a Zipkin v2 protobuf ListOfSpans: {0}")]
    Protobuf(#[source] prost::DecodeError),
    /// The span at `index` (0-based, in the body's order); `id` is its ID when that much was readable.
    #[error("span {index}{}: {problem}", id.as_ref().map(|id| format!(" (id {id})")).unwrap_or_default())]
    Span { index: usize, id: Option<String>, problem: SpanProblem },
}

/// What is wrong with one span.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum SpanProblem {
    #[error("traceId is missing")]
    MissingTraceId,
    #[error("traceId {text:?}: {source}")]
    TraceId { text: String, source: crate::ids::IdError },
    #[error("trace_id has {0} bytes; a Zipkin trace ID has 8 or 16")]
    TraceIdLength(usize),
    #[error("id is missing")]
    MissingId,
    #[error("id {text:?}: {source}")]
    Id { text: String, source: crate::ids::IdError },
    #[error("parentId {text:?}: {source}")]
    ParentId { text: String, source: crate::ids::IdError },
    #[error("{field} {micros} is past the year 2554: Zipkin times are microseconds since the Unix epoch")]
    TimeOutOfRange { field: &'static str, micros: u64 },
    #[error("annotation {0} has no timestamp (Zipkin requires one, in microseconds since the Unix epoch)")]
    AnnotationTimestamp(usize),
    #[error("{field} {value:?} is not an IP address")]
    Ip { field: &'static str, value: String },
    #[error("{field} has {bytes} bytes; an IPv4 address has 4 and an IPv6 address 16")]
    IpLength { field: &'static str, bytes: usize },
    #[error("{field} {value} is not a port (0 to 65535)")]
    Port { field: &'static str, value: i64 },
    /// A link in the Collector's `otlp.link.N` tag form that does not parse.
    #[error("tag {key}: {reason}")]
    Link { key: String, reason: String },
}

/// Decodes a Zipkin v2 body and maps its spans to OTLP (docs/zipkin.md has the mapping).
pub fn decode(body: &[u8], encoding: ZipkinEncoding) -> Result<ExportTraceServiceRequest, ZipkinError> {
    let spans = match encoding {
        ZipkinEncoding::Json => json::decode(body)?,
        ZipkinEncoding::Protobuf => protobuf::decode(body)?,
    };
    to_otlp(spans)
}

/// Maps decoded Zipkin spans to OTLP: the shared server halves of RPC spans get span IDs of their own
/// (see docs/zipkin.md, "Shared spans"), then spans are grouped by resource and scope.
pub fn to_otlp(mut spans: Vec<ZipkinSpan>) -> Result<ExportTraceServiceRequest, ZipkinError> {
    shared::separate_shared_halves(&mut spans);
    Ok(ExportTraceServiceRequest { resource_spans: otlp::resource_spans(spans)? })
}

#[cfg(test)]
mod tests;
