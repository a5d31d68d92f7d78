//! Receiving OTLP: everything between the bytes of a request and a decoded `ExportTraceServiceRequest`
//! for a validated tenant (CONTRACTS §2). Content types, gzip with a cut-off against bombs, size limits,
//! OTLP/JSON (hex IDs, enums as integers or names), and the tenant header.
//!
//! Owns the meaning of a bad request; `api` maps [`ReceiveError`] to HTTP and gRPC statuses. Calls `ids`.

pub mod admission;
pub mod grpc_codec;
pub mod zipkin;

use std::io::Read;

use bytes::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;

pub use admission::{Admission, Admitted};

use crate::ids::{IdError, TenantId};
use crate::spans::SpanRejection;

/// The header (and gRPC metadata key) naming the tenant, as in Tempo and Loki.
pub const TENANT_HEADER: &str = "x-scope-orgid";

/// Why a request was refused as a whole; nothing of it was written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReceiveError {
    #[error("unsupported content type {0:?}; send application/x-protobuf or application/json")]
    UnsupportedContentType(String),
    #[error("unsupported content encoding {0:?}; send gzip or no encoding")]
    UnsupportedContentEncoding(String),
    #[error("request body is larger than the limit of {limit} bytes {stage}")]
    TooLarge { limit: usize, stage: &'static str },
    /// The body did not arrive within this long after the headers.
    #[error(
        "the request body did not arrive within {0:?} of its headers; send the whole request within the server's read_timeout"
    )]
    SlowBody(std::time::Duration),
    #[error("gzip body cannot be decompressed: {0}")]
    BadGzip(#[source] std::io::Error),
    #[error("cannot decode the {encoding} body: {source}")]
    Undecodable { encoding: &'static str, source: BodyError },
    #[error("invalid X-Scope-OrgID header: {0}")]
    BadTenant(#[source] IdError),
    #[error("missing X-Scope-OrgID header: this server runs with multitenancy on")]
    MissingTenant,
    /// A tenant with no data yet, while the server already holds `limit` tenants (`max_tenants`).
    #[error("the server holds its limit of {limit} tenants (max_tenants); spans of a new tenant are refused")]
    TooManyTenants { limit: usize },
    /// The credentials are missing or wrong (401), or do not allow this tenant (403).
    #[error(transparent)]
    Auth(#[from] crate::auth::AuthError),
    /// Requests in flight hold the whole byte budget (`max_inflight_request_bytes`); retry later.
    #[error("requests in flight hold the server's limit of {limit} bytes (max_inflight_request_bytes); retry later")]
    Busy { limit: usize },
}

/// Why a body could not be read or decoded into spans: the cause of [`ReceiveError::Undecodable`].
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// The body stopped arriving or its stream failed.
    #[error("cannot read the body: {0}")]
    Read(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A gRPC body that is not one length-prefixed message.
    #[error("bad gRPC framing: {0}")]
    Framing(&'static str),
    #[error(transparent)]
    Protobuf(#[from] crate::spans::ProtobufError),
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    #[error(transparent)]
    Spans(#[from] crate::spans::SpanFormatError),
    /// The thread decoding the body panicked or was cancelled.
    #[error(transparent)]
    Task(#[from] tokio::task::JoinError),
}

/// Size limits of a request body (CONTRACTS §2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BodyLimits {
    /// Largest body as sent on the wire.
    pub max_compressed_bytes: usize,
    /// Largest body after decompression; a gzip bomb is cut off here while decompressing.
    pub max_decompressed_bytes: usize,
}

impl Default for BodyLimits {
    fn default() -> Self {
        Self { max_compressed_bytes: 16 * 1024 * 1024, max_decompressed_bytes: 64 * 1024 * 1024 }
    }
}

/// The two encodings of OTLP/HTTP; replies use the request's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OtlpEncoding {
    Protobuf,
    Json,
}

impl OtlpEncoding {
    /// The encoding a `Content-Type` announces (parameters such as `charset` are ignored).
    pub fn from_content_type(content_type: Option<&str>) -> Result<Self, ReceiveError> {
        let raw = content_type.unwrap_or("");
        let essence = raw.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        match essence.as_str() {
            "application/x-protobuf" | "application/protobuf" => Ok(Self::Protobuf),
            "application/json" => Ok(Self::Json),
            _ => Err(ReceiveError::UnsupportedContentType(raw.to_owned())),
        }
    }

    /// The `Content-Type` of replies in this encoding.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Protobuf => "application/x-protobuf",
            Self::Json => "application/json",
        }
    }
}

/// The tenant of a request: `single-tenant` unless multitenancy is on, then the header, validated.
pub fn resolve_tenant(header: Option<&str>, multitenancy: bool) -> Result<TenantId, ReceiveError> {
    if !multitenancy {
        return Ok(TenantId::single_tenant());
    }
    let value = header.ok_or(ReceiveError::MissingTenant)?;
    TenantId::new(value).map_err(ReceiveError::BadTenant)
}

/// Bytes of decompressed output taken from the budget at a time: small enough that a bomb is cut off
/// near the budget, large enough that the budget is not touched per read.
const DECOMPRESS_STEP: usize = 1 << 20;

/// Undoes `Content-Encoding` (none or gzip), refusing bodies over the limits. The decompressed bytes are
/// held in `admitted` as they grow, so a body refuses itself once the server's budget is spent.
pub fn decompress(
    body: Bytes,
    content_encoding: Option<&str>,
    limits: BodyLimits,
    admitted: &mut Admitted,
) -> Result<Bytes, ReceiveError> {
    if body.len() > limits.max_compressed_bytes {
        return Err(ReceiveError::TooLarge { limit: limits.max_compressed_bytes, stage: "as sent" });
    }
    let encoding = content_encoding.map(|e| e.trim().to_ascii_lowercase()).unwrap_or_default();
    match encoding.as_str() {
        "" | "identity" => {
            if body.len() > limits.max_decompressed_bytes {
                return Err(ReceiveError::TooLarge { limit: limits.max_decompressed_bytes, stage: "decompressed" });
            }
            Ok(body)
        }
        "gzip" | "x-gzip" => gunzip(&body, limits.max_decompressed_bytes, admitted).map(Bytes::from),
        other => Err(ReceiveError::UnsupportedContentEncoding(other.to_owned())),
    }
}

/// Decompresses `body` step by step, each step's room held in `admitted` before it is filled.
fn gunzip(body: &[u8], limit: usize, admitted: &mut Admitted) -> Result<Vec<u8>, ReceiveError> {
    // Read one byte past the limit to tell "exactly at the limit" from "over it".
    let mut decoder = flate2::read::MultiGzDecoder::new(body).take(limit as u64 + 1);
    let before = admitted.held_bytes();
    let mut out = Vec::new();
    loop {
        let step = DECOMPRESS_STEP.min(limit + 1 - out.len());
        out.reserve_exact(step);
        admitted.hold_exactly(before + out.capacity())?;
        let read = (&mut decoder).take(step as u64).read_to_end(&mut out).map_err(ReceiveError::BadGzip)?;
        if out.len() > limit {
            return Err(ReceiveError::TooLarge { limit, stage: "decompressed" });
        }
        if read < step {
            return Ok(out);
        }
    }
}

/// The refusal for a protobuf body that cannot become span rows.
pub fn undecodable_protobuf(error: crate::spans::ProtobufError) -> ReceiveError {
    ReceiveError::Undecodable { encoding: "protobuf", source: error.into() }
}

/// Decodes an OTLP/JSON body. (Protobuf bodies go straight to Arrow: `ingest::NewSpans::from_protobuf`.)
pub fn decode_json(body: &[u8]) -> Result<ExportTraceServiceRequest, ReceiveError> {
    let undecodable = |e: serde_json::Error| ReceiveError::Undecodable { encoding: "JSON", source: e.into() };
    match serde_json::from_slice(body) {
        Ok(request) => Ok(request),
        Err(first_error) => {
            // OTLP/JSON allows enum names ("SPAN_KIND_SERVER"); the generated types take integers only.
            let mut value: serde_json::Value = serde_json::from_slice(body).map_err(undecodable)?;
            if !replace_enum_names(&mut value) {
                return Err(undecodable(first_error));
            }
            serde_json::from_value(value).map_err(undecodable)
        }
    }
}

/// Rewrites span `kind` and status `code` names to their numbers; true if anything changed.
fn replace_enum_names(request: &mut serde_json::Value) -> bool {
    let mut changed = false;
    let spans = request
        .get_mut("resourceSpans")
        .and_then(|v| v.as_array_mut())
        .into_iter()
        .flatten()
        .filter_map(|rs| rs.get_mut("scopeSpans").and_then(|v| v.as_array_mut()))
        .flatten()
        .filter_map(|ss| ss.get_mut("spans").and_then(|v| v.as_array_mut()))
        .flatten();
    for span in spans {
        if let Some(kind) = span.get_mut("kind") {
            changed |= replace_name(
                kind,
                "SPAN_KIND_",
                &["UNSPECIFIED", "INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER"],
            );
        }
        if let Some(code) = span.get_mut("status").and_then(|s| s.get_mut("code")) {
            changed |= replace_name(code, "STATUS_CODE_", &["UNSET", "OK", "ERROR"]);
        }
    }
    changed
}

fn replace_name(value: &mut serde_json::Value, prefix: &str, names: &[&str]) -> bool {
    let Some(text) = value.as_str() else { return false };
    let name = text.strip_prefix(prefix).unwrap_or(text);
    match names.iter().position(|candidate| candidate.eq_ignore_ascii_case(name)) {
        Some(number) => {
            *value = serde_json::Value::from(number);
            true
        }
        None => false,
    }
}

/// The OTLP reply: empty on full success, `partial_success` when spans were refused.
pub fn export_response(rejected: &[SpanRejection]) -> ExportTraceServiceResponse {
    let partial_success = rejected.first().map(|first| ExportTracePartialSuccess {
        rejected_spans: rejected.len() as i64,
        error_message: match rejected.len() {
            1 => format!("1 span rejected: {first}"),
            n => format!("{n} spans rejected; the first: {first}"),
        },
    });
    ExportTraceServiceResponse { partial_success }
}

/// The reply body in the request's encoding.
pub fn encode_response(response: &ExportTraceServiceResponse, encoding: OtlpEncoding) -> Vec<u8> {
    match encoding {
        OtlpEncoding::Protobuf => response.encode_to_vec(),
        // Full success is an empty object, not `"partialSuccess": null`.
        OtlpEncoding::Json if response.partial_success.is_none() => b"{}".to_vec(),
        OtlpEncoding::Json => serde_json::to_vec(response).unwrap_or_else(|_| b"{}".to_vec()),
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn gzip(bytes: &[u8]) -> Bytes {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(bytes).unwrap();
        Bytes::from(encoder.finish().unwrap())
    }

    #[test]
    fn a_gzip_bomb_is_cut_off_at_the_decompressed_limit() {
        let limits = BodyLimits { max_compressed_bytes: 1 << 20, max_decompressed_bytes: 1 << 20 };
        let bomb = gzip(&vec![0u8; 64 << 20]);
        assert!(bomb.len() < 1 << 20, "the bomb itself is small");
        let admission = Admission::new(64 << 20);
        let error = decompress(bomb, Some("gzip"), limits, &mut admission.admit()).unwrap_err();
        assert!(matches!(error, ReceiveError::TooLarge { stage: "decompressed", .. }), "{error}");
        let mut admitted = admission.admit();
        let fits = decompress(gzip(&[7u8; 1 << 20]), Some("gzip"), limits, &mut admitted).unwrap();
        assert_eq!(fits.len(), 1 << 20);
        assert!(admitted.held_bytes() >= fits.len(), "the decompressed body is held: {}", admitted.held_bytes());
        assert!(admitted.held_bytes() <= fits.len() + DECOMPRESS_STEP + 1, "{}", admitted.held_bytes());
    }

    #[test]
    fn decompression_stops_when_the_servers_request_budget_is_spent() {
        let limits = BodyLimits { max_compressed_bytes: 1 << 20, max_decompressed_bytes: 8 << 20 };
        let admission = Admission::new(4 << 20);
        let mut elsewhere = admission.admit();
        elsewhere.hold(2 << 20).unwrap();
        let mut admitted = admission.admit();
        let error = decompress(gzip(&vec![1u8; 3 << 20]), Some("gzip"), limits, &mut admitted).unwrap_err();
        assert!(matches!(error, ReceiveError::Busy { limit } if limit == 4 << 20), "{error}");
        drop(admitted);
        assert_eq!(admission.held_bytes(), 2 << 20, "the refused request gave back what it held");
        drop(elsewhere);
        let body = decompress(gzip(&vec![1u8; 3 << 20]), Some("gzip"), limits, &mut admission.admit()).unwrap();
        assert_eq!(body.len(), 3 << 20, "alone it fits");
    }

    #[test]
    fn content_types_and_encodings_are_named_when_refused() {
        assert_eq!(
            OtlpEncoding::from_content_type(Some("application/json; charset=utf-8")).unwrap(),
            OtlpEncoding::Json
        );
        let error = OtlpEncoding::from_content_type(Some("text/plain")).unwrap_err();
        assert!(error.to_string().contains("text/plain"));
        let mut admitted = Admission::new(1 << 20).admit();
        let error = decompress(Bytes::from_static(b"x"), Some("br"), BodyLimits::default(), &mut admitted).unwrap_err();
        assert!(error.to_string().contains("br"));
    }

    #[test]
    fn json_accepts_enum_names_as_well_as_numbers() {
        let body = br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{
            "traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"GET",
            "kind":"SPAN_KIND_SERVER","startTimeUnixNano":"1","endTimeUnixNano":"2",
            "status":{"code":"STATUS_CODE_ERROR"},
            "attributes":[{"key":"n","value":{"intValue":"42"}}]}]}]}]}"#;
        let request = decode_json(body).unwrap();
        let span = &request.resource_spans[0].scope_spans[0].spans[0];
        assert_eq!((span.kind, span.status.as_ref().unwrap().code), (2, 2));
        assert_eq!(hex::encode(&span.trace_id), "5b8efff798038103d269b633813fc60c");
        let numeric =
            String::from_utf8_lossy(body).replace("\"SPAN_KIND_SERVER\"", "2").replace("\"STATUS_CODE_ERROR\"", "2");
        assert_eq!(decode_json(numeric.as_bytes()).unwrap(), request);
    }

    #[test]
    fn tenants_follow_the_multitenancy_switch() {
        assert_eq!(resolve_tenant(Some("other"), false).unwrap(), TenantId::single_tenant());
        assert_eq!(resolve_tenant(Some("team-a"), true).unwrap().as_str(), "team-a");
        assert!(matches!(resolve_tenant(None, true), Err(ReceiveError::MissingTenant)));
        assert!(matches!(resolve_tenant(Some(".."), true), Err(ReceiveError::BadTenant(_))));
    }
}
