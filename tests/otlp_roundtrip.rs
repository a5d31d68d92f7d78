//! OTLP ⇄ Arrow ⇄ Parquet must be lossless (CONTRACTS §3): whatever valid OTLP goes in comes back equal,
//! up to the order of resource and scope groups.

mod common;

use common::encoding::block_write_options;
use common::otlp::{canonical, resource_spans};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use proptest::prelude::*;
use prost::Message;
use spanlake::ids::{BlockId, TenantId};
use spanlake::spans::{
    SpanBatchBuilder, SpanRejection, decode_resource_spans, encode_resource_spans, protobuf_to_batch, span_count,
};
use spanlake::storage::Storage;
use spanlake::storage::block::{encode_block, load_footer, read_all, upload_block};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_requests_round_trip_through_arrow(payload in resource_spans()) {
        let (batch, rejected) = encode_resource_spans(&payload).unwrap();
        prop_assert!(rejected.is_empty());
        prop_assert_eq!(batch.num_rows(), span_count(&payload));
        let decoded = decode_resource_spans(&[batch]).unwrap();
        prop_assert_eq!(canonical(&decoded), canonical(&payload));
    }

    #[test]
    fn the_direct_protobuf_decoder_gives_the_same_rows_as_prost(payload in resource_spans()) {
        let request = ExportTraceServiceRequest { resource_spans: payload };
        let bytes = request.encode_to_vec();
        let expected = encode_resource_spans(&request.resource_spans).unwrap();
        let mut builder = SpanBatchBuilder::new();
        let direct = spanlake::spans::wire::decode_request(&bytes, &mut builder);
        prop_assert!(direct.is_ok(), "the fast path takes every valid request the SDKs can produce");
        prop_assert_eq!((builder.finish().unwrap(), direct.unwrap()), expected.clone());
        prop_assert_eq!(protobuf_to_batch(&bytes).unwrap(), expected);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn random_requests_round_trip_through_a_parquet_block(payload in resource_spans()) {
        prop_assume!(span_count(&payload) > 0);
        let (batch, _) = encode_resource_spans(&payload).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let decoded = runtime.block_on(async {
            let storage = Storage::open("memory://").unwrap();
            let tenant = TenantId::single_tenant();
            let block = encode_block(&tenant, BlockId::new_random(), &[batch], &block_write_options()).unwrap();
            upload_block(&storage, &block).await.unwrap();
            let footer = load_footer(&storage, &block.meta).await.unwrap();
            decode_resource_spans(&read_all(&storage, &block.meta, &footer, None).await.unwrap()).unwrap()
        });
        prop_assert_eq!(canonical(&decoded), canonical(&payload));
    }
}

#[test]
fn invalid_ids_are_refused_one_by_one_and_the_rest_is_kept() {
    let valid = Span { trace_id: vec![1; 16], span_id: vec![2; 8], ..Default::default() };
    let short_trace = Span { trace_id: vec![1; 15], ..valid.clone() };
    let zero_span = Span { span_id: vec![0; 8], ..valid.clone() };
    let bad_parent = Span { parent_span_id: vec![3; 4], ..valid.clone() };
    let payload = vec![ResourceSpans {
        scope_spans: vec![ScopeSpans { spans: vec![short_trace, valid, zero_span, bad_parent], ..Default::default() }],
        ..Default::default()
    }];
    let (batch, rejected) = encode_resource_spans(&payload).unwrap();
    assert_eq!(batch.num_rows(), 1);
    assert!(matches!(rejected[0], SpanRejection::TraceId(_)), "{rejected:?}");
    assert!(matches!(rejected[1], SpanRejection::SpanId(_)), "{rejected:?}");
    assert_eq!(rejected[2], SpanRejection::ParentSpanIdLength(4));
    assert!(rejected[0].to_string().contains("16 bytes"), "{}", rejected[0]);
}
