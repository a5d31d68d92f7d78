//! OTLP/gRPC on port 4317: `TraceService/Export`, gzip accepted (CONTRACTS §2).
//!
//! A hand-written service instead of the generated `TraceServiceServer`: the generated one decodes with
//! prost on the reactor and hands over only the decoded message, so the WAL would have to encode the
//! request again. This one receives the raw protobuf, decodes it on a blocking thread and passes both on.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message;
use tonic::codec::{CompressionEncoding, EnabledCompressionEncodings};
use tonic::codegen::{Body, BoxFuture, StdError, http};
use tonic::server::{NamedService, UnaryService};
use tonic::{Request, Response, Status};

use super::AppState;
use super::status::{Refusal, export_reply};
use crate::ingest::NewSpans;
use crate::receive::grpc_codec::{self, RawBytesCodec};
use crate::receive::{self, BodyError, ReceiveError};
use crate::telemetry;

/// The OTLP trace service, ready for `tonic::transport::Server::add_service`.
#[derive(Clone)]
pub struct OtlpGrpc {
    state: Arc<AppState>,
}

/// The gRPC service, with compression and the decompressed size limit from the state.
pub fn service(state: AppState) -> OtlpGrpc {
    OtlpGrpc { state: Arc::new(state) }
}

impl NamedService for OtlpGrpc {
    const NAME: &'static str = "opentelemetry.proto.collector.trace.v1.TraceService";
}

impl<B> tonic::codegen::Service<http::Request<B>> for OtlpGrpc
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if request.uri().path() != grpc_codec::EXPORT_PATH {
            return Box::pin(async {
                Ok(Status::unimplemented("only TraceService/Export is served here").into_http())
            });
        }
        let (limits, read_timeout) = (self.state.body_limits, self.state.read_timeout);
        let export = Export { state: self.state.clone() };
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let body = match read_body(body, limits.max_compressed_bytes, read_timeout).await {
                Ok(body) => body,
                Err(refusal) => return Ok(refuse(refusal).into_http()),
            };
            let request = http::Request::from_parts(parts, http_body_util::Full::new(body));
            let limit = limits.max_decompressed_bytes;
            let mut gzip = EnabledCompressionEncodings::default();
            gzip.enable(CompressionEncoding::Gzip);
            let mut grpc = tonic::server::Grpc::new(RawBytesCodec)
                .apply_compression_config(gzip, gzip)
                .apply_max_message_size_config(Some(limit), None);
            Ok(grpc.unary(export, request).await)
        })
    }
}

/// Bytes of gRPC framing before a message: a compression flag and a 4-byte length.
const GRPC_FRAME_HEADER_BYTES: usize = 5;

/// A request's whole body as sent, read before tonic decodes it: so a body that trickles in is cut off
/// after `read_timeout` (CONTRACTS §7) and the size limit applies to the message as sent (compressed or
/// not), as on OTLP/HTTP. tonic buffers a unary request whole anyway; this adds one copy of each request
/// (no change in ingest throughput, BENCHMARKS.md).
async fn read_body<B>(body: B, limit: usize, read_timeout: Duration) -> Result<Bytes, Refusal>
where
    B: Body,
    B::Error: Into<StdError>,
{
    let limited = http_body_util::Limited::new(body, limit + GRPC_FRAME_HEADER_BYTES);
    match tokio::time::timeout(read_timeout, limited.collect()).await {
        Err(_) => Err(Refusal::from(&ReceiveError::SlowBody(read_timeout))),
        Ok(Err(error)) if error.is::<http_body_util::LengthLimitError>() => {
            Err(Refusal::from(&ReceiveError::TooLarge { limit, stage: "as sent" }))
        }
        Ok(Err(error)) => {
            Err(Refusal::from(&ReceiveError::Undecodable { encoding: "gRPC", source: BodyError::Read(error) }))
        }
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
    }
}

/// One export call.
struct Export {
    state: Arc<AppState>,
}

impl UnaryService<Bytes> for Export {
    type Response = Bytes;
    type Future = BoxFuture<Response<Bytes>, Status>;

    fn call(&mut self, request: Request<Bytes>) -> Self::Future {
        let state = self.state.clone();
        Box::pin(async move {
            let response = export(&state, request).await.map_err(refuse)?;
            Ok(response.map(|reply| Bytes::from(reply.encode_to_vec())))
        })
    }
}

async fn export(state: &AppState, request: Request<Bytes>) -> Result<Response<ExportTraceServiceResponse>, Refusal> {
    let header = request.metadata().get(receive::TENANT_HEADER).and_then(|v| v.to_str().ok());
    let tenant = receive::resolve_tenant(header, state.multitenancy).map_err(|e| Refusal::from(&e))?;
    let raw = request.into_inner();
    metrics::counter!(telemetry::RECEIVED_BYTES, "protocol" => "grpc").increment(raw.len() as u64);
    let converted =
        tokio::task::spawn_blocking(move || NewSpans::from_protobuf(raw).map_err(receive::undecodable_protobuf))
            .await
            .map_err(|e| Refusal::from(&ReceiveError::Undecodable { encoding: "protobuf", source: e.into() }))?;
    let spans = converted.map_err(|e| Refusal::from(&e))?;
    let outcome = state.ingester.push(&tenant, spans).await.map_err(|e| Refusal::from(&e))?;
    Ok(Response::new(export_reply(&tenant, &outcome.rejected, "grpc")))
}

fn refuse(refusal: Refusal) -> Status {
    refusal.record("grpc");
    refusal.grpc_status()
}
