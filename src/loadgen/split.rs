//! Cutting an encoded OTLP request into smaller ones without decoding it: the pool's requests are
//! prepared once as protobuf bytes, and a run against several endpoints sends each endpoint the spans
//! routed to it. A short walk of the wire format finds each ResourceSpans, ScopeSpans and span once,
//! when the pool is prepared; each send then only copies byte ranges.

use std::ops::Range;

use bytes::{BufMut, Bytes, BytesMut};

/// Where the pieces of a request sit in its encoding, to cut it into one request per endpoint.
pub(super) struct Layout {
    /// One per ScopeSpans of the request, in order.
    sources: Vec<Source>,
    /// Every span, in encoding order.
    pub(super) spans: Vec<PlacedSpan>,
}

/// A ScopeSpans and the ResourceSpans around it, less their spans: whole encoded fields (key, length,
/// value) that a part copies around the spans it takes from here.
struct Source {
    resource_fields: Vec<Range<usize>>,
    scope_fields: Vec<Range<usize>>,
}

pub(super) struct PlacedSpan {
    source: usize,
    /// Index into the request's traces.
    pub(super) trace: usize,
    pub(super) nth_in_trace: usize,
    pub(super) span_id: [u8; 8],
    /// The span message's bytes, without its key and length.
    bytes: Range<usize>,
}

/// Field numbers of the OTLP messages a request is cut along (`opentelemetry/proto/trace/v1`).
const REQUEST_RESOURCE_SPANS: u32 = 1;
const RESOURCE_SPANS_SCOPE_SPANS: u32 = 2;
const SCOPE_SPANS_SPANS: u32 = 2;
/// Protobuf's wire type of length-delimited fields.
const LENGTH_DELIMITED: u64 = 2;

impl Layout {
    /// Finds every ScopeSpans and span in `bytes`, an `ExportTraceServiceRequest` prost encoded;
    /// `span_traces` holds each span's (trace, place in its trace, span ID), in the same order.
    pub(super) fn of(bytes: &[u8], span_traces: &[(usize, usize, [u8; 8])]) -> Self {
        let mut sources = Vec::new();
        let mut spans = Vec::new();
        for resource_spans in fields(bytes, 0..bytes.len()).into_iter().filter(|f| f.number == REQUEST_RESOURCE_SPANS) {
            let resource_fields = fields(bytes, resource_spans.value.clone());
            let resource_only: Vec<_> = resource_fields
                .iter()
                .filter(|f| f.number != RESOURCE_SPANS_SCOPE_SPANS)
                .map(|f| f.whole.clone())
                .collect();
            for scope_spans in resource_fields.iter().filter(|f| f.number == RESOURCE_SPANS_SCOPE_SPANS) {
                let scope_fields = fields(bytes, scope_spans.value.clone());
                for span in scope_fields.iter().filter(|f| f.number == SCOPE_SPANS_SPANS) {
                    let (trace, nth_in_trace, span_id) = span_traces[spans.len()];
                    spans.push(PlacedSpan {
                        source: sources.len(),
                        trace,
                        nth_in_trace,
                        span_id,
                        bytes: span.value.clone(),
                    });
                }
                let scope_only =
                    scope_fields.iter().filter(|f| f.number != SCOPE_SPANS_SPANS).map(|f| f.whole.clone()).collect();
                sources.push(Source { resource_fields: resource_only.clone(), scope_fields: scope_only });
            }
        }
        assert_eq!(spans.len(), span_traces.len(), "the walk finds every span prost encoded");
        Self { sources, spans }
    }

    /// An `ExportTraceServiceRequest` of `spans` (in encoding order), copied from `bytes`: as the
    /// exporter does, one ResourceSpans with one ScopeSpans for each source the spans come from.
    pub(super) fn assemble(&self, bytes: &[u8], spans: &[&PlacedSpan]) -> Bytes {
        let mut out = BytesMut::with_capacity(spans.iter().map(|s| s.bytes.len() + 8).sum::<usize>() + 256);
        for group in spans.chunk_by(|a, b| a.source == b.source) {
            let source = &self.sources[group[0].source];
            let span_fields: usize = group.iter().map(|span| length_delimited_len(span.bytes.len())).sum();
            let scope_len = total_len(&source.scope_fields) + span_fields;
            let resource_len = total_len(&source.resource_fields) + length_delimited_len(scope_len);
            put_key_and_len(&mut out, REQUEST_RESOURCE_SPANS, resource_len);
            for field in &source.resource_fields {
                out.put_slice(&bytes[field.clone()]);
            }
            put_key_and_len(&mut out, RESOURCE_SPANS_SCOPE_SPANS, scope_len);
            for field in &source.scope_fields {
                out.put_slice(&bytes[field.clone()]);
            }
            for span in group {
                put_key_and_len(&mut out, SCOPE_SPANS_SPANS, span.bytes.len());
                out.put_slice(&bytes[span.bytes.clone()]);
            }
        }
        out.freeze()
    }
}

fn total_len(ranges: &[Range<usize>]) -> usize {
    ranges.iter().map(ExactSizeIterator::len).sum()
}

/// Bytes of a length-delimited field whose value is `len` bytes (field numbers here fit one key byte).
fn length_delimited_len(len: usize) -> usize {
    1 + prost::encoding::encoded_len_varint(len as u64) + len
}

fn put_key_and_len(out: &mut BytesMut, field: u32, len: usize) {
    prost::encoding::encode_key(field, prost::encoding::WireType::LengthDelimited, out);
    prost::encoding::encode_varint(len as u64, out);
}

/// One field of an encoded message: its number, its whole bytes, and its value's bytes (for a
/// length-delimited field, without key and length).
struct Field {
    number: u32,
    whole: Range<usize>,
    value: Range<usize>,
}

/// The fields of the message at `message` in `bytes`, which prost encoded (so well formed).
fn fields(bytes: &[u8], message: Range<usize>) -> Vec<Field> {
    let mut found = Vec::new();
    let mut at = message.start;
    while at < message.end {
        let start = at;
        let key = read_varint(bytes, &mut at);
        let value_start = at;
        let value = match key & 7 {
            0 => {
                read_varint(bytes, &mut at);
                value_start..at
            }
            1 => {
                at += 8;
                value_start..at
            }
            LENGTH_DELIMITED => {
                let len = read_varint(bytes, &mut at) as usize;
                at += len;
                at - len..at
            }
            5 => {
                at += 4;
                value_start..at
            }
            other => panic!("wire type {other} is not in OTLP, and prost wrote these bytes"),
        };
        found.push(Field { number: (key >> 3) as u32, whole: start..at, value });
    }
    found
}

fn read_varint(bytes: &[u8], at: &mut usize) -> u64 {
    let mut rest = &bytes[*at..];
    let before = rest.len();
    let value = prost::encoding::decode_varint(&mut rest).expect("prost wrote these bytes: varints are well formed");
    *at += before - rest.len();
    value
}
