//! OTLP/gRPC on port 4317: `TraceService/Export`, gzip accepted (CONTRACTS §2).
//!
//! A hand-written service instead of the generated `TraceServiceServer`: the generated one decodes with
//! prost on the reactor and hands over only the decoded message, so the WAL would have to encode the
//! request again, and it decompresses where the request budget cannot see. This one reads the gRPC frame
//! itself, holds its bytes against the budget (`receive::admission`), decodes it on a blocking thread
//! and passes the raw protobuf and the decoded spans on.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use tonic::Status;
use tonic::codegen::{Body, BoxFuture, StdError, http};
use tonic::server::NamedService;

use super::AppState;
use super::status::{Refusal, export_reply};
use crate::ingest::NewSpans;
use crate::receive::grpc_codec;
use crate::receive::{self, Admitted, BodyError, ReceiveError};
use crate::telemetry;

/// The OTLP trace service, ready for `tonic::transport::Server::add_service`.
#[derive(Clone)]
pub struct OtlpGrpc {
    state: Arc<AppState>,
}

/// The gRPC service, with its limits and request budget from the state.
pub fn service(state: AppState) -> OtlpGrpc {
    OtlpGrpc { state: Arc::new(state) }
}

impl NamedService for OtlpGrpc {
    const NAME: &'static str = "opentelemetry.proto.collector.trace.v1.TraceService";
}

impl<B> tonic::codegen::Service<http::Request<B>> for OtlpGrpc
where
    B: Body<Data = Bytes> + Send + 'static,
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
        let state = self.state.clone();
        Box::pin(async move {
            match export(&state, request).await {
                Ok(response) => Ok(grpc_codec::reply(&response)),
                Err(refusal) => Ok(refuse(refusal).into_http()),
            }
        })
    }
}

/// One export call: the body read whole within `read_timeout` (so a body that trickles in is cut off,
/// CONTRACTS §7) and held against the request budget from its first byte, unframed and decompressed
/// here (so the size limits and the budget apply to it as on OTLP/HTTP), decoded on a blocking thread,
/// then handed to the ingester with its raw protobuf for the WAL.
async fn export<B>(state: &AppState, request: http::Request<B>) -> Result<ExportTraceServiceResponse, Refusal>
where
    B: Body<Data = Bytes>,
    B::Error: Into<StdError>,
{
    let (parts, body) = request.into_parts();
    let header = parts.headers.get(receive::TENANT_HEADER).and_then(|v| v.to_str().ok());
    let authorization = parts.headers.get(http::header::AUTHORIZATION).map(http::HeaderValue::as_bytes);
    let tenant = state.tenant_of(authorization, header).map_err(|e| Refusal::from(&e))?;
    state.admit_tenant(&tenant).map_err(|e| Refusal::from(&e))?;
    // A full buffer or WAL refuses before the body is read: under overload, reading and decoding requests
    // that are then refused took the CPU that cutting blocks needs, and the refusals queued behind the
    // requests being ingested. HTTP/2 ends the stream after the trailers, so the client sees the status.
    state.ingester()?.check_capacity().map_err(|e| Refusal::from(&e))?;
    let (limits, read_timeout) = (state.body_limits, state.read_timeout);
    let mut admitted = state.admission.admit();
    let read_error =
        |error: B::Error| ReceiveError::Undecodable { encoding: "gRPC", source: BodyError::Read(error.into()) };
    let limit = limits.max_compressed_bytes;
    let collected =
        receive::admission::collect_body(body, limit + grpc_codec::FRAME_HEADER_BYTES, &mut admitted, read_error);
    let framed = match tokio::time::timeout(read_timeout, collected).await {
        Err(_) => return Err(Refusal::from(&ReceiveError::SlowBody(read_timeout))),
        // The limit read includes the frame's header; the client is told the message's own limit.
        Ok(Err(ReceiveError::TooLarge { stage: "as sent", .. })) => {
            return Err(Refusal::from(&ReceiveError::TooLarge { limit, stage: "as sent" }));
        }
        Ok(result) => result.map_err(|e| Refusal::from(&e))?,
    };
    metrics::counter!(telemetry::RECEIVED_BYTES, "protocol" => "grpc").increment(framed.len() as u64);
    let message = grpc_codec::unframe(framed, &parts.headers).map_err(|e| Refusal::from(&e))?;
    let converted = tokio::task::spawn_blocking(move || -> Result<(NewSpans, Admitted), ReceiveError> {
        let raw = receive::decompress(message.body, message.encoding.as_deref(), limits, &mut admitted)?;
        let spans = NewSpans::from_protobuf(raw).map_err(receive::undecodable_protobuf)?;
        admitted.hold(spans.memory_bytes())?;
        Ok((spans, admitted))
    })
    .await
    .map_err(|e| Refusal::from(&ReceiveError::Undecodable { encoding: "protobuf", source: e.into() }))?;
    let (spans, _admitted) = converted.map_err(|e| Refusal::from(&e))?;
    let outcome = state.ingester()?.push(&tenant, spans).await.map_err(|e| Refusal::from(&e))?;
    Ok(export_reply(&tenant, &outcome.rejected, "grpc"))
}

fn refuse(refusal: Refusal) -> Status {
    refusal.record("grpc");
    refusal.grpc_status()
}
