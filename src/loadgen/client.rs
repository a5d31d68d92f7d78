//! A minimal OTLP trace exporter over gRPC (tonic) or HTTP/protobuf (hyper), reconnecting by itself
//! when the server comes back after a restart.

use std::str::FromStr;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use prost::Message;
use tonic::transport::{Channel, Endpoint};

use super::LoadgenError;
use crate::receive::TENANT_HEADER;
use crate::receive::grpc_codec::{EXPORT_PATH, RawBytesCodec};

/// The OTLP transport.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Grpc,
    Http,
}

impl FromStr for Protocol {
    type Err = LoadgenError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.to_ascii_lowercase().as_str() {
            "grpc" => Ok(Self::Grpc),
            "http" | "http/protobuf" => Ok(Self::Http),
            other => Err(LoadgenError::UnknownProtocol(other.to_owned())),
        }
    }
}

/// Why one export failed.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The server could not be reached, or said it is unavailable.
    #[error("connection: {0}")]
    Connection(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("refused with {status}: {message}")]
    Refused { status: String, message: String, retryable: bool },
    #[error("unreadable reply: {0}")]
    Reply(#[source] prost::DecodeError),
    /// The client's own deadline passed before an answer came (the server may have stored the spans).
    #[error("no answer within {0:?}")]
    TimedOut(std::time::Duration),
}

impl SendError {
    /// A short label for the report's error counts.
    pub fn kind(&self) -> String {
        match self {
            SendError::Connection(_) => "connection error".into(),
            SendError::Refused { status, .. } => format!("refused: {status}"),
            SendError::Reply(_) => "unreadable reply".into(),
            SendError::TimedOut(_) => "client timeout".into(),
        }
    }

    /// True when the server was unreachable, did not answer in time or asked us to back off: worth a
    /// short pause and, with `--retry`, a resend.
    pub fn is_connection(&self) -> bool {
        matches!(self, SendError::Connection(_) | SendError::TimedOut(_) | SendError::Refused { retryable: true, .. })
    }
}

/// An OTLP exporter; cheap to clone (clones share connections).
#[derive(Clone)]
pub struct OtlpClient {
    transport: Transport,
    tenant: Option<String>,
    /// Sent as `Authorization: Bearer …`, for a server with auth on.
    token: Option<String>,
}

#[derive(Clone)]
enum Transport {
    Grpc(Channel),
    Http { client: Box<Client<HttpConnector, Full<Bytes>>>, uri: hyper::Uri },
}

impl OtlpClient {
    /// A client for `endpoint` (`http://host:port`); connects lazily and reconnects as needed.
    pub fn connect(endpoint: &str, protocol: Protocol, tenant: Option<String>) -> Result<Self, LoadgenError> {
        let invalid = |source| LoadgenError::Endpoint { endpoint: endpoint.to_owned(), source };
        let transport = match protocol {
            Protocol::Grpc => {
                // Nagle's algorithm off and windows for whole exports, as the server's side (issue 25).
                let channel = Endpoint::from_shared(endpoint.to_owned())
                    .map_err(|e| invalid(e.into()))?
                    .tcp_nodelay(true)
                    .initial_stream_window_size(4 << 20)
                    .initial_connection_window_size(16 << 20)
                    .connect_lazy();
                Transport::Grpc(channel)
            }
            Protocol::Http => {
                let base = endpoint.trim_end_matches('/');
                let url = if base.ends_with("/v1/traces") { base.to_owned() } else { format!("{base}/v1/traces") };
                let uri = url.parse::<hyper::Uri>().map_err(|e| invalid(e.into()))?;
                let mut connector = HttpConnector::new();
                connector.set_nodelay(true);
                Transport::Http { client: Box::new(Client::builder(TokioExecutor::new()).build(connector)), uri }
            }
        };
        Ok(Self { transport, tenant, token: None })
    }

    /// The same client, sending `token` as a bearer token with every request.
    #[must_use]
    pub fn with_token(mut self, token: Option<String>) -> Self {
        self.token = token;
        self
    }

    /// Sends one request; returns how many spans the server rejected (partial success).
    pub async fn export(&self, request: ExportTraceServiceRequest) -> Result<u64, SendError> {
        self.export_encoded(Bytes::from(request.encode_to_vec())).await
    }

    /// Sends a request already encoded as protobuf (the load generator prepares its requests once).
    pub async fn export_encoded(&self, request: Bytes) -> Result<u64, SendError> {
        let response = match &self.transport {
            Transport::Grpc(channel) => self.export_grpc(channel.clone(), request).await?,
            Transport::Http { client, uri } => self.export_http(client, uri, request).await?,
        };
        Ok(response.partial_success.map_or(0, |p| p.rejected_spans.max(0) as u64))
    }

    async fn export_grpc(&self, channel: Channel, request: Bytes) -> Result<ExportTraceServiceResponse, SendError> {
        let mut request = tonic::Request::new(request);
        if let Some(tenant) = &self.tenant {
            let value = tenant
                .parse()
                .map_err(|_| SendError::Connection(format!("tenant {tenant:?} is not a header value").into()))?;
            request.metadata_mut().insert(TENANT_HEADER, value);
        }
        if let Some(token) = &self.token {
            let value = format!("Bearer {token}")
                .parse()
                .map_err(|_| SendError::Connection("the token is not a header value".into()))?;
            request.metadata_mut().insert("authorization", value);
        }
        let mut grpc = tonic::client::Grpc::new(channel);
        grpc.ready().await.map_err(|e| SendError::Connection(e.into()))?;
        let path = hyper::http::uri::PathAndQuery::from_static(EXPORT_PATH);
        match grpc.unary(request, path, RawBytesCodec).await {
            Ok(response) => ExportTraceServiceResponse::decode(response.into_inner()).map_err(SendError::Reply),
            Err(status) if status.code() == tonic::Code::Unavailable || status.code() == tonic::Code::Unknown => {
                Err(SendError::Connection(status.message().into()))
            }
            Err(status) => Err(SendError::Refused {
                status: format!("{:?}", status.code()),
                message: status.message().to_owned(),
                // The codes the OTLP specification lets an exporter retry (with UNAVAILABLE, above).
                retryable: matches!(
                    status.code(),
                    tonic::Code::ResourceExhausted
                        | tonic::Code::Cancelled
                        | tonic::Code::DeadlineExceeded
                        | tonic::Code::Aborted
                        | tonic::Code::OutOfRange
                        | tonic::Code::DataLoss
                ),
            }),
        }
    }

    async fn export_http(
        &self,
        client: &Client<HttpConnector, Full<Bytes>>,
        uri: &hyper::Uri,
        request: Bytes,
    ) -> Result<ExportTraceServiceResponse, SendError> {
        let mut builder = hyper::Request::post(uri.clone()).header("content-type", "application/x-protobuf");
        if let Some(tenant) = &self.tenant {
            builder = builder.header(TENANT_HEADER, tenant.as_str());
        }
        if let Some(token) = &self.token {
            builder = builder.header(hyper::header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let http_request = builder.body(Full::new(request)).map_err(|e| SendError::Connection(e.into()))?;
        let response = client.request(http_request).await.map_err(|e| SendError::Connection(e.into()))?;
        let status = response.status();
        let body = response.into_body().collect().await.map_err(|e| SendError::Connection(e.into()))?.to_bytes();
        if !status.is_success() {
            return Err(SendError::Refused {
                status: status.as_u16().to_string(),
                message: String::from_utf8_lossy(&body).into_owned(),
                retryable: status.as_u16() == 429 || status.as_u16() == 503,
            });
        }
        ExportTraceServiceResponse::decode(body.as_ref()).map_err(SendError::Reply)
    }
}
