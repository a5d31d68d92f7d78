//! OTLP/gRPC on port 4317: `TraceService/Export`, gzip accepted (CONTRACTS §2).

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use prost::Message;
use tonic::codec::CompressionEncoding;
use tonic::{Request, Response, Status};

use super::AppState;
use super::status::Refusal;
use crate::receive;
use crate::telemetry;

/// The gRPC service, with compression and the decompressed size limit set.
pub fn service(state: AppState) -> TraceServiceServer<OtlpGrpc> {
    let limit = state.body_limits.max_decompressed_bytes;
    TraceServiceServer::new(OtlpGrpc { state })
        .accept_compressed(CompressionEncoding::Gzip)
        .send_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(limit)
}

/// Receives OTLP/gRPC exports into the ingester.
pub struct OtlpGrpc {
    state: AppState,
}

#[tonic::async_trait]
impl TraceService for OtlpGrpc {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let header = request.metadata().get(receive::TENANT_HEADER).and_then(|v| v.to_str().ok());
        let tenant = receive::resolve_tenant(header, self.state.multitenancy).map_err(|e| refuse(Refusal::from(&e)))?;
        let request = request.into_inner();
        metrics::counter!(telemetry::RECEIVED_BYTES, "protocol" => "grpc").increment(request.encoded_len() as u64);
        let outcome = self.state.ingester.push(&tenant, request, None).await.map_err(|e| refuse(Refusal::from(&e)))?;
        let response = receive::export_response(&outcome.rejected);
        if let Some(partial) = &response.partial_success {
            tracing::info!(tenant = %tenant, rejected = partial.rejected_spans, message = %partial.error_message, "OTLP/gRPC spans rejected");
        }
        Ok(Response::new(response))
    }
}

fn refuse(refusal: Refusal) -> Status {
    tracing::warn!(code = ?refusal.grpc, reason = refusal.reason, message = %refusal.message, "OTLP/gRPC request refused");
    metrics::counter!(telemetry::REQUESTS_REFUSED, "reason" => refusal.reason).increment(1);
    refusal.grpc_status()
}
