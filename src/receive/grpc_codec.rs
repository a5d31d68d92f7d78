//! gRPC messages as raw bytes: the receiver's own framing of a unary call (it reads the request's one
//! length-prefixed message itself, so its size limits and request budget see every byte, compressed or
//! not, and replies with the response message and a `grpc-status` trailer), and a codec the load
//! generator uses to send requests it encoded once.

use bytes::{Buf, BufMut, Bytes};
use http_body_util::BodyExt;
use prost::Message;
use tonic::Status;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::http;

use super::{BodyError, ReceiveError};

/// The gRPC method of OTLP trace export.
pub const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// Bytes of gRPC framing before a message: a compression flag and a 4-byte big-endian length.
pub const FRAME_HEADER_BYTES: usize = 5;

/// The one message of a unary request, as sent.
#[derive(Debug)]
pub struct GrpcMessage {
    /// The message's bytes, still compressed if `encoding` says so.
    pub body: Bytes,
    /// The `grpc-encoding` the message is compressed with; `None` when its flag says uncompressed.
    pub encoding: Option<String>,
}

/// The message of a unary request's body: exactly one length-prefixed message, its compression named by
/// the `grpc-encoding` header when its flag is set.
pub fn unframe(mut framed: Bytes, headers: &http::HeaderMap) -> Result<GrpcMessage, ReceiveError> {
    let bad = |what: &'static str| ReceiveError::Undecodable { encoding: "gRPC", source: BodyError::Framing(what) };
    if framed.len() < FRAME_HEADER_BYTES {
        return Err(bad("the body is shorter than a message header"));
    }
    let compressed = framed.get_u8();
    let length = framed.get_u32() as usize;
    if length != framed.len() {
        return Err(bad("the message length does not match the body (a unary call sends exactly one message)"));
    }
    let encoding = match compressed {
        0 => None,
        1 => match headers.get("grpc-encoding").and_then(|v| v.to_str().ok()).filter(|named| !named.is_empty()) {
            Some(named) => Some(named.to_owned()),
            None => return Err(ReceiveError::UnsupportedContentEncoding("(none named)".to_owned())),
        },
        _ => return Err(bad("the compression flag is neither 0 nor 1")),
    };
    Ok(GrpcMessage { body: framed, encoding })
}

/// A unary call's successful reply: the message, framed, then the `grpc-status: 0` trailer.
pub fn reply(message: &impl Message) -> http::Response<tonic::body::Body> {
    let encoded = message.encode_to_vec();
    let mut framed = Vec::with_capacity(FRAME_HEADER_BYTES + encoded.len());
    framed.put_u8(0);
    framed.put_u32(encoded.len() as u32);
    framed.extend_from_slice(&encoded);
    let mut trailers = http::HeaderMap::new();
    trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
    let body = http_body_util::Full::new(Bytes::from(framed))
        .map_err(|never| match never {})
        .with_trailers(std::future::ready(Some(Ok(trailers))));
    let mut response = http::Response::new(tonic::body::Body::new(body));
    response.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/grpc"));
    response
}

/// Encodes and decodes gRPC messages as their raw protobuf bytes.
#[derive(Clone, Copy, Debug, Default)]
pub struct RawBytesCodec;

impl Codec for RawBytesCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawBytesCodec;
    type Decoder = RawBytesCodec;

    fn encoder(&mut self) -> Self::Encoder {
        RawBytesCodec
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawBytesCodec
    }
}

impl Encoder for RawBytesCodec {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Self::Error> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawBytesCodec {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Self::Item>, Self::Error> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}
