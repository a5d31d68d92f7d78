use opentelemetry_proto::tonic::trace::v1::Status;

use super::*;
use crate::spans::encode_resource_spans;
use crate::synth::TraceGenerator;

fn by_prost(request: &ExportTraceServiceRequest) -> (RecordBatch, Vec<SpanRejection>) {
    encode_resource_spans(&request.resource_spans).unwrap()
}

fn by_wire(bytes: &[u8]) -> Result<(RecordBatch, Vec<SpanRejection>), Unsupported> {
    let mut builder = SpanBatchBuilder::new();
    let rejected = decode_request(bytes, &mut builder)?;
    Ok((builder.finish().unwrap(), rejected))
}

#[test]
fn realistic_requests_decode_to_the_same_rows_as_through_prost() {
    let mut generator = TraceGenerator::new(11);
    for _ in 0..20 {
        let request = generator.next_request(300);
        assert_eq!(
            by_wire(&request.encode_to_vec()).expect("the fast path takes SDK-like requests"),
            by_prost(&request)
        );
    }
}

#[test]
fn invalid_spans_are_refused_the_same_way() {
    let mut request = TraceGenerator::new(12).next_request(40);
    let mut spans = request.resource_spans.iter_mut().flat_map(|rs| &mut rs.scope_spans).flat_map(|ss| &mut ss.spans);
    spans.next().unwrap().trace_id = vec![0; 16];
    spans.next().unwrap().span_id = vec![7; 9];
    spans.next().unwrap().parent_span_id = vec![1; 3];
    let (batch, rejected) = by_wire(&request.encode_to_vec()).unwrap();
    assert_eq!((batch, rejected.clone()), by_prost(&request));
    assert_eq!(rejected.len(), 3);
}

/// `message` with one more length-delimited field appended.
fn with_extra_field(mut message: Vec<u8>, number: u8, value: &[u8]) -> Vec<u8> {
    message.push(number << 3 | 2);
    message.push(value.len() as u8);
    message.extend_from_slice(value);
    message
}

#[test]
fn what_prost_would_merge_or_refuse_is_left_to_prost() {
    let request = TraceGenerator::new(13).next_request(5);
    let span = request.resource_spans[0].scope_spans[0].spans[0].clone();
    let status = Status { message: "second".into(), code: 1 }.encode_to_vec();
    let twice = with_extra_field(with_extra_field(span.encode_to_vec(), 15, &status), 15, &status);
    assert!(decode_span(&twice, &mut SpanBatchBuilder::new()).is_err(), "two statuses are merged by prost");

    let value = AnyValue { value: Some(Value::IntValue(1)) }.encode_to_vec();
    let key_value = with_extra_field(with_extra_field(b"\x0a\x01k".to_vec(), 2, &value), 2, &value);
    assert!(decode_key_value(&key_value).is_err(), "two values are merged by prost");

    let mut bytes = request.encode_to_vec();
    bytes.truncate(bytes.len() - 3);
    assert!(by_wire(&bytes).is_err());
    assert!(matches!(protobuf_to_batch(&bytes), Err(ProtobufError::Decode(_))), "truncated bytes are a decode error");
}
