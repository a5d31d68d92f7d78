//! What must hold for every input of each fuzz target. Shared by the libFuzzer targets (tests/fuzz/targets)
//! and by the regression suite (tests/fuzz_corpora.rs), which runs every committed corpus file and every
//! input that once failed through the same checks on each `cargo test`. A check panics when a property
//! breaks; returning means the input was handled as the server would handle it (accepted or refused).
#![allow(dead_code)] // each fuzz target uses one check

use bytes::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use spanlake::ids::{SpanId, TraceId};
use spanlake::ingest::NewSpans;
use spanlake::spans::wire::decode_request;
use spanlake::spans::{SpanBatchBuilder, encode_resource_spans, protobuf_to_batch};
use spanlake::wal::record::{self, SEGMENT_MAGIC, SegmentEnd};

/// An OTLP/protobuf request body (OTLP/gRPC and OTLP/HTTP alike, after decompression):
/// - the direct decoder and prost agree: when the direct decoder takes the bytes, prost decodes them too
///   and makes the same rows and the same refusals (the direct path is an optimisation, never a dialect);
/// - what the server would write to the WAL for an accepted request replays to exactly the accepted rows,
///   with nothing refused (an acknowledged span comes back after a crash as it was acknowledged).
pub fn otlp_protobuf(bytes: &[u8]) {
    let mut builder = SpanBatchBuilder::new();
    if let Ok(direct_rejected) = decode_request(bytes, &mut builder) {
        let direct = builder.finish();
        let request = ExportTraceServiceRequest::decode(bytes)
            .unwrap_or_else(|error| panic!("the direct decoder took bytes prost refuses: {error}"));
        match (direct, encode_resource_spans(&request.resource_spans)) {
            (Ok(direct), Ok((by_prost, prost_rejected))) => {
                assert_eq!(direct, by_prost, "the direct decoder and prost made different rows");
                assert_eq!(direct_rejected, prost_rejected, "the direct decoder and prost refused different spans");
            }
            (Err(_), Err(_)) => {}
            (direct, by_prost) => panic!(
                "one decoder failed: direct {:?}, prost {:?}",
                direct.map(|batch| batch.num_rows()),
                by_prost.map(|(batch, _)| batch.num_rows())
            ),
        }
    }
    if let Ok(accepted) = NewSpans::from_protobuf(Bytes::copy_from_slice(bytes)) {
        replays_as_accepted(&accepted);
    }
}

/// An OTLP/JSON request body: a request the server accepts replays from its WAL payload to the rows it
/// accepted, nothing refused.
pub fn otlp_json(bytes: &[u8]) {
    let Ok(request) = spanlake::receive::decode_json(bytes) else { return };
    if let Ok(accepted) = NewSpans::from_request(request) {
        replays_as_accepted(&accepted);
    }
}

/// A Zipkin v2 JSON body (`POST /api/v2/spans`, after decompression): decoding never panics, decodes the
/// same way twice, and a body the receiver takes replays from its WAL payload to the rows it accepted.
pub fn zipkin_json(bytes: &[u8]) {
    zipkin(bytes, spanlake::receive::zipkin::ZipkinEncoding::Json);
}

/// A Zipkin v2 protobuf body (`ListOfSpans`): as [`zipkin_json`].
pub fn zipkin_protobuf(bytes: &[u8]) {
    zipkin(bytes, spanlake::receive::zipkin::ZipkinEncoding::Protobuf);
}

fn zipkin(bytes: &[u8], encoding: spanlake::receive::zipkin::ZipkinEncoding) {
    let Ok(request) = spanlake::receive::zipkin::decode(bytes, encoding) else { return };
    let again = spanlake::receive::zipkin::decode(bytes, encoding).expect("a body decodes the same way twice");
    assert_eq!(request, again, "decoding the same body twice made different requests");
    if let Ok(accepted) = NewSpans::from_request(request) {
        replays_as_accepted(&accepted);
    }
}

fn replays_as_accepted(accepted: &NewSpans) {
    let (replayed, rejected) =
        protobuf_to_batch(&accepted.wal_payload).expect("the WAL payload of an accepted request decodes");
    assert!(rejected.is_empty(), "replay refuses spans that were accepted: {rejected:?}");
    assert_eq!(replayed, accepted.batch, "replay makes other rows than were accepted");
}

/// Bytes of a WAL segment file, read as replay and start-up read them. The first byte picks the form:
/// even, the rest is the file as it is (the framing, checksums and torn tails); odd, the rest is a list of
/// `u16 length | body` chunks framed with correct checksums behind the segment magic, so the fuzzer reaches
/// the record bodies, which a checksum would otherwise guard from any mutation. Whatever the bytes:
/// - reading never panics;
/// - the intact records lie back to back from the magic, and each encodes again to its exact bytes;
/// - a torn tail has no intact record after it, damage names an intact record after it.
pub fn wal_replay(bytes: &[u8]) {
    let Some((&form, rest)) = bytes.split_first() else { return };
    let segment = if form % 2 == 0 { rest.to_vec() } else { framed(rest) };
    let scan = record::scan_segment(&segment);
    let mut expected_offset = SEGMENT_MAGIC.len().min(segment.len());
    for found in &scan.records {
        assert_eq!(found.offset, expected_offset, "records are not back to back");
        let mut encoded = Vec::new();
        record::encode(found.seq, &found.record, &mut encoded);
        assert_eq!(encoded, segment[found.offset..found.offset + found.len], "a record does not encode to its bytes");
        expected_offset += found.len;
    }
    let last_seq = scan.records.last().map(|last| last.seq);
    match scan.end {
        SegmentEnd::Clean => assert_eq!(expected_offset, segment.len(), "a clean segment has bytes after its records"),
        SegmentEnd::TornTail { offset, .. } => {
            assert_eq!(offset, expected_offset, "the torn tail does not start after the last record");
            assert_eq!(record::next_intact_record(&segment, offset + 1, last_seq), None);
        }
        SegmentEnd::Damaged { offset, next_intact, .. } => {
            assert_eq!(offset, expected_offset, "the damage does not start after the last record");
            assert!(next_intact > offset, "the intact record named is not after the damage");
            let (seq, _, _) = record::decode(&segment[next_intact..]).expect("the record named intact decodes");
            assert!(last_seq.is_none_or(|last| seq > last), "the intact record named does not follow the last one");
        }
    }
}

/// The segment magic, then each `u16 length | body` chunk of `chunks` as a frame with its checksum; a last
/// chunk shorter than its length is written as far as it goes (a torn tail).
fn framed(mut chunks: &[u8]) -> Vec<u8> {
    let mut segment = SEGMENT_MAGIC.to_vec();
    while chunks.len() >= 2 {
        let len = u16::from_le_bytes([chunks[0], chunks[1]]) as usize;
        let body = &chunks[2..(2 + len).min(chunks.len())];
        segment.extend_from_slice(&(len as u32).to_le_bytes());
        segment.extend_from_slice(&crc32fast::hash(body).to_le_bytes());
        segment.extend_from_slice(body);
        chunks = &chunks[2 + body.len()..];
    }
    segment
}

/// A trace or span ID as typed into a URL or a CLI: parsing never panics, and an ID that parses prints as
/// 32 (16) lowercase hex digits that parse back to the same ID, equal to the input left-padded with zeros.
pub fn trace_id(bytes: &[u8]) {
    let Ok(text) = std::str::from_utf8(bytes) else { return };
    if let Ok(id) = TraceId::from_hex(text) {
        let hex = id.to_hex();
        assert_eq!(hex.len(), 32);
        assert_eq!(TraceId::from_hex(&hex).ok(), Some(id));
        assert_eq!(format!("{:0>32}", text.trim().to_ascii_lowercase()), hex);
    }
    if let Ok(id) = SpanId::from_hex(text) {
        let hex = id.to_hex();
        assert_eq!(hex.len(), 16);
        assert_eq!(SpanId::from_hex(&hex).ok(), Some(id));
        assert_eq!(format!("{:0>16}", text.trim().to_ascii_lowercase()), hex);
    }
}

/// A TraceQL query as Grafana sends it: parsing and checking never panic; a query that passes prints in
/// its canonical form, which parses back to the same query and prints the same; the search's SQL condition
/// for it can be made. One allowance: the canonical form puts a negated operand of an infix operator in
/// parentheses (`a - (-b)`, `a * (!b)`), each a level of nesting the query did not have, so a query within a few
/// levels of the parser's depth limit may print a form past it; that is refused as too deep, never
/// misread.
pub fn traceql(bytes: &[u8]) {
    let Ok(text) = std::str::from_utf8(bytes) else { return };
    let Ok(query) = spanlake::traceql::parse(text) else { return };
    let printed = query.to_string();
    let reparsed = match spanlake::traceql::parse(&printed) {
        Ok(reparsed) => reparsed,
        Err(spanlake::traceql::TraceqlError::TooDeep { .. }) if printed.contains("(-") || printed.contains("(!") => {
            return;
        }
        Err(error) => panic!("the canonical form {printed:?} of {text:?} does not parse: {error}"),
    };
    assert_eq!(reparsed.to_string(), printed, "printing {text:?} is not stable");
    if spanlake::traceql::check(text).is_ok() {
        let _ = spanlake::search::span_condition(&query);
    }
}
