//! Where errors become statuses: one mapping from each module's errors to an HTTP status and a gRPC
//! code, and the `google.rpc.Status` body OTLP expects in error replies.

use std::time::Duration;

use axum::http::StatusCode;
use prost::Message;

use crate::ingest::IngestError;
use crate::receive::ReceiveError;

/// How long a client told to back off (429 / RESOURCE_EXHAUSTED) should wait.
pub const RETRY_AFTER: Duration = Duration::from_secs(1);

/// `google.rpc.Status`, the error body of OTLP/HTTP and the details of a gRPC status.
#[derive(Clone, PartialEq, Message)]
pub struct RpcStatus {
    #[prost(int32, tag = "1")]
    pub code: i32,
    #[prost(string, tag = "2")]
    pub message: String,
    #[prost(message, repeated, tag = "3")]
    pub details: Vec<ProtoAny>,
}

/// `google.protobuf.Any`.
#[derive(Clone, PartialEq, Message)]
pub struct ProtoAny {
    #[prost(string, tag = "1")]
    pub type_url: String,
    #[prost(bytes = "vec", tag = "2")]
    pub value: Vec<u8>,
}

/// `google.rpc.RetryInfo`: OTLP clients retry RESOURCE_EXHAUSTED only when it is present.
#[derive(Clone, PartialEq, Message)]
struct RetryInfo {
    #[prost(message, optional, tag = "1")]
    retry_delay: Option<ProtoDuration>,
}

/// `google.protobuf.Duration`.
#[derive(Clone, PartialEq, Message)]
struct ProtoDuration {
    #[prost(int64, tag = "1")]
    seconds: i64,
    #[prost(int32, tag = "2")]
    nanos: i32,
}

/// A refusal, as both faces report it.
#[derive(Debug)]
pub struct Refusal {
    pub http: StatusCode,
    pub grpc: tonic::Code,
    /// What the client is told: what failed, never where (no local paths or object names).
    pub message: String,
    /// What the log is told, when it says more than `message` (the full error with its locations).
    pub detail: Option<String>,
    /// Short label for the `spanlake_requests_refused_total` metric.
    pub reason: &'static str,
}

impl Refusal {
    /// The log line and metric every refused ingest request (OTLP or Zipkin) gets, whichever port it came
    /// in on; `protocol` says which.
    pub fn record(&self, protocol: &'static str) {
        tracing::warn!(
            protocol,
            http_status = self.http.as_u16(),
            grpc_code = ?self.grpc,
            reason = self.reason,
            message = %self.message,
            detail = self.detail.as_deref().unwrap_or_default(),
            "ingest request refused"
        );
        metrics::counter!(crate::telemetry::REQUESTS_REFUSED, "reason" => self.reason).increment(1);
    }
    /// True when the client should back off and retry.
    pub fn is_retryable(&self) -> bool {
        self.http == StatusCode::TOO_MANY_REQUESTS || self.http == StatusCode::SERVICE_UNAVAILABLE
    }

    /// The `google.rpc.Status` of this refusal, with RetryInfo when the client should retry.
    pub fn rpc_status(&self) -> RpcStatus {
        let details = if self.is_retryable() {
            let retry =
                RetryInfo { retry_delay: Some(ProtoDuration { seconds: RETRY_AFTER.as_secs() as i64, nanos: 0 }) };
            vec![ProtoAny { type_url: "type.googleapis.com/google.rpc.RetryInfo".into(), value: retry.encode_to_vec() }]
        } else {
            Vec::new()
        };
        RpcStatus { code: self.grpc as i32, message: self.message.clone(), details }
    }

    /// The gRPC status, with its details for retryable refusals.
    pub fn grpc_status(&self) -> tonic::Status {
        if self.is_retryable() {
            let details = bytes::Bytes::from(self.rpc_status().encode_to_vec());
            tonic::Status::with_details(self.grpc, self.message.clone(), details)
        } else {
            tonic::Status::new(self.grpc, self.message.clone())
        }
    }
}

/// The gRPC code meaning what an HTTP status means, for faces that answer both ways (the query port's
/// gRPC search answers what `GET /api/search` would, in gRPC's terms).
pub fn grpc_code(http: StatusCode) -> tonic::Code {
    match http.as_u16() {
        200..=299 => tonic::Code::Ok,
        400 | 413 | 415 => tonic::Code::InvalidArgument,
        401 => tonic::Code::Unauthenticated,
        403 => tonic::Code::PermissionDenied,
        404 => tonic::Code::NotFound,
        408 | 504 => tonic::Code::DeadlineExceeded,
        429 | 507 => tonic::Code::ResourceExhausted,
        501 => tonic::Code::Unimplemented,
        503 => tonic::Code::Unavailable,
        _ => tonic::Code::Internal,
    }
}

impl From<&ReceiveError> for Refusal {
    fn from(error: &ReceiveError) -> Self {
        let (http, grpc, reason) = match error {
            ReceiveError::UnsupportedContentType(_) | ReceiveError::UnsupportedContentEncoding(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, tonic::Code::InvalidArgument, "unsupported")
            }
            ReceiveError::TooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, tonic::Code::InvalidArgument, "too_large"),
            ReceiveError::MissingTenant => (StatusCode::UNAUTHORIZED, tonic::Code::Unauthenticated, "unauthorized"),
            ReceiveError::SlowBody(_) => (StatusCode::REQUEST_TIMEOUT, tonic::Code::DeadlineExceeded, "slow_body"),
            ReceiveError::TooManyTenants { .. } => {
                (StatusCode::FORBIDDEN, tonic::Code::PermissionDenied, "tenant_limit")
            }
            ReceiveError::Auth(error) if error.is_unauthenticated() => {
                (StatusCode::UNAUTHORIZED, tonic::Code::Unauthenticated, "unauthenticated")
            }
            ReceiveError::Auth(_) => (StatusCode::FORBIDDEN, tonic::Code::PermissionDenied, "forbidden"),
            ReceiveError::Busy { .. } => {
                (StatusCode::TOO_MANY_REQUESTS, tonic::Code::ResourceExhausted, "requests_in_flight")
            }
            ReceiveError::BadGzip(_) | ReceiveError::Undecodable { .. } | ReceiveError::BadTenant(_) => {
                (StatusCode::BAD_REQUEST, tonic::Code::InvalidArgument, "invalid")
            }
        };
        Self { http, grpc, message: error.to_string(), detail: None, reason }
    }
}

impl From<&IngestError> for Refusal {
    fn from(error: &IngestError) -> Self {
        let (http, grpc, reason) = match error {
            IngestError::MemoryFull { .. } => {
                (StatusCode::TOO_MANY_REQUESTS, tonic::Code::ResourceExhausted, "memory_limit")
            }
            IngestError::WalFull { .. } => (StatusCode::TOO_MANY_REQUESTS, tonic::Code::ResourceExhausted, "wal_limit"),
            IngestError::Wal(crate::wal::WalError::TooLarge { .. }) => {
                (StatusCode::PAYLOAD_TOO_LARGE, tonic::Code::InvalidArgument, "too_large")
            }
            _ => (StatusCode::SERVICE_UNAVAILABLE, tonic::Code::Unavailable, "unavailable"),
        };
        let (message, detail) = (error.public_message(), error.to_string());
        let detail = (detail != message).then_some(detail);
        Self { http, grpc, message, detail, reason }
    }
}

/// The OTLP reply to an accepted request; refused spans (partial success) are logged for the tenant.
pub fn export_reply(
    tenant: &crate::ids::TenantId,
    rejected: &[crate::spans::SpanRejection],
    protocol: &'static str,
) -> opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse {
    let response = crate::receive::export_response(rejected);
    if let Some(partial) = &response.partial_success {
        tracing::info!(protocol, tenant = %tenant, rejected = partial.rejected_spans, message = %partial.error_message, "OTLP spans rejected");
    }
    response
}
