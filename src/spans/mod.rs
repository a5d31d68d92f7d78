//! The span row model: the Arrow schema of one span per row and the lossless conversion between OTLP
//! `ResourceSpans` and Arrow record batches.
//!
//! Owns the schema and the encoding rules (attribute tags, enum words). Used by ingest (to buffer spans),
//! storage (to write and read blocks) and query (to answer trace-by-ID). Calls only `ids`.

pub mod attributes;
pub mod decode;
pub mod encode;
pub mod schema;
mod select;
pub mod wire;

use std::borrow::Cow;

pub use decode::decode_resource_spans;
pub use encode::{SpanBatchBuilder, encode_resource_spans, validate_span};
pub use schema::span_schema;
pub use select::{distinct_spans, rows_of_trace};
pub use wire::{ProtobufError, protobuf_to_batch};

use crate::ids::IdError;

/// Why rows could not be turned back into OTLP (or a batch built): a block that does not match the schema
/// it claims, which the reader reports instead of guessing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SpanFormatError {
    #[error("span data is missing column {0:?}")]
    MissingColumn(String),
    #[error("span data is corrupt: {0}")]
    Corrupt(String),
    /// A stored value that does not decode: `what` names the column or value.
    #[error("span data is corrupt: {what}: {source}")]
    Undecodable { what: &'static str, source: Box<dyn std::error::Error + Send + Sync> },
    #[error("span data is corrupt: {0}")]
    InvalidId(#[source] IdError),
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
}

/// Why one span was refused at ingest; reported in OTLP `partial_success`, the rest of the request is kept.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SpanRejection {
    #[error("invalid trace ID: {0}")]
    TraceId(#[source] IdError),
    #[error("invalid span ID: {0}")]
    SpanId(#[source] IdError),
    #[error("invalid parent span ID: must be empty or 8 bytes, got {0}")]
    ParentSpanIdLength(usize),
    /// An attribute key or value longer than `max_attribute_bytes` (issue 26, item 6).
    #[error("an attribute of {bytes} bytes is over the server's max_attribute_bytes ({limit})")]
    AttributeTooLarge { bytes: usize, limit: usize },
    /// The span's trace would hold more than `max_bytes_per_trace` in the ingester (Tempo's
    /// TRACE_TOO_LARGE).
    #[error("trace {trace} is over the server's max_bytes_per_trace ({limit} bytes buffered); span refused")]
    TraceTooLarge { trace: crate::ids::TraceId, limit: usize },
}

impl SpanRejection {
    /// Label of the `spanlake_spans_rejected_total` metric.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::TraceId(_) | Self::SpanId(_) | Self::ParentSpanIdLength(_) => "invalid_id",
            Self::AttributeTooLarge { .. } => "attribute_too_large",
            Self::TraceTooLarge { .. } => "trace_too_large",
        }
    }
}

const KIND_WORDS: [&str; 6] = ["unspecified", "internal", "server", "client", "producer", "consumer"];
const STATUS_WORDS: [&str; 3] = ["unset", "ok", "error"];

fn enum_to_text(words: &'static [&'static str], value: i32) -> Cow<'static, str> {
    usize::try_from(value)
        .ok()
        .and_then(|index| words.get(index))
        // A value outside the enum is kept as its number, so it still round-trips.
        .map_or_else(|| Cow::Owned(value.to_string()), |word| Cow::Borrowed(*word))
}

fn enum_from_text(words: &[&str], text: &str) -> i32 {
    words.iter().position(|word| *word == text).map_or_else(|| text.parse().unwrap_or(0), |index| index as i32)
}

/// Number of spans in OTLP resource groups.
pub fn span_count(resource_spans: &[opentelemetry_proto::tonic::trace::v1::ResourceSpans]) -> usize {
    resource_spans.iter().flat_map(|rs| &rs.scope_spans).map(|ss| ss.spans.len()).sum()
}

/// The SQL word for an OTLP span kind (`server`, `client`…); an out-of-range value is kept as its number.
pub fn kind_to_text(kind: i32) -> Cow<'static, str> {
    enum_to_text(&KIND_WORDS, kind)
}

/// Inverse of [`kind_to_text`].
pub fn kind_from_text(text: &str) -> i32 {
    enum_from_text(&KIND_WORDS, text)
}

/// The SQL word for an OTLP status code (`unset`, `ok`, `error`); an out-of-range value is kept as its number.
pub fn status_code_to_text(code: i32) -> Cow<'static, str> {
    enum_to_text(&STATUS_WORDS, code)
}

/// Inverse of [`status_code_to_text`].
pub fn status_code_from_text(text: &str) -> i32 {
    enum_from_text(&STATUS_WORDS, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enum_words_round_trip_including_unknown_values() {
        for value in [-3, 0, 1, 2, 5, 6, 42] {
            assert_eq!(kind_from_text(&kind_to_text(value)), value);
            assert_eq!(status_code_from_text(&status_code_to_text(value)), value);
        }
        assert_eq!(kind_to_text(2), "server");
        assert_eq!(status_code_to_text(2), "error");
    }
}
