//! OTLP fixtures shared by the integration tests: proptest strategies for arbitrary requests and the
//! canonical form used to compare what went in with what came out.

#![allow(dead_code)]

use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, EntityRef, InstrumentationScope, KeyValue, KeyValueList, any_value::Value,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::{Event, Link};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use prost::Message;

/// Every span as its own single-span `ResourceSpans`, encoded and sorted: two payloads are equal "up to
/// the order of resource and scope groups" exactly when their canonical forms are equal.
pub fn canonical(payload: &[ResourceSpans]) -> Vec<Vec<u8>> {
    let mut singles: Vec<Vec<u8>> = payload
        .iter()
        .flat_map(|rs| {
            rs.scope_spans.iter().flat_map(move |ss| {
                ss.spans.iter().map(move |span| {
                    ResourceSpans {
                        resource: rs.resource.clone(),
                        schema_url: rs.schema_url.clone(),
                        scope_spans: vec![ScopeSpans {
                            scope: ss.scope.clone(),
                            schema_url: ss.schema_url.clone(),
                            spans: vec![span.clone()],
                        }],
                    }
                    .encode_to_vec()
                })
            })
        })
        .collect();
    singles.sort();
    singles
}

fn short_text() -> impl Strategy<Value = String> {
    prop_oneof![Just(String::new()), "[a-z.]{1,8}", "\\PC{0,6}"]
}

fn finite_or_infinite_double() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>().prop_filter("NaN never compares equal", |d| !d.is_nan()),
        Just(-0.0),
        Just(f64::INFINITY),
        Just(1e300),
        Just(0.1)
    ]
}

pub fn any_value() -> impl Strategy<Value = AnyValue> {
    let leaf = prop_oneof![
        short_text().prop_map(Value::StringValue),
        any::<bool>().prop_map(Value::BoolValue),
        any::<i64>().prop_map(Value::IntValue),
        finite_or_infinite_double().prop_map(Value::DoubleValue),
        vec(any::<u8>(), 0..6).prop_map(Value::BytesValue),
    ]
    .prop_map(|value| AnyValue { value: Some(value) });
    let leaf = prop_oneof![9 => leaf, 1 => Just(AnyValue { value: None })];
    leaf.prop_recursive(3, 12, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4)
                .prop_map(|values| AnyValue { value: Some(Value::ArrayValue(ArrayValue { values })) }),
            vec((short_text(), option::weighted(0.9, inner)), 0..4).prop_map(|pairs| AnyValue {
                value: Some(Value::KvlistValue(KeyValueList {
                    values: pairs
                        .into_iter()
                        .map(|(key, value)| KeyValue { key, value, ..Default::default() })
                        .collect(),
                })),
            }),
        ]
    })
}

pub fn attributes() -> impl Strategy<Value = Vec<KeyValue>> {
    vec(
        (short_text(), option::weighted(0.95, any_value())).prop_map(|(key, value)| KeyValue {
            key,
            value,
            ..Default::default()
        }),
        0..5,
    )
}

fn nonzero_bytes<const N: usize>() -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), N..=N).prop_filter("IDs are never all zero", |bytes| bytes.iter().any(|b| *b != 0))
}

fn event() -> impl Strategy<Value = Event> {
    (any::<u64>(), short_text(), attributes(), any::<u32>()).prop_map(|(time, name, attributes, dropped)| Event {
        time_unix_nano: time,
        name,
        attributes,
        dropped_attributes_count: dropped,
    })
}

fn link() -> impl Strategy<Value = Link> {
    (vec(any::<u8>(), 0..17), vec(any::<u8>(), 0..9), short_text(), attributes(), any::<u32>(), any::<u32>()).prop_map(
        |(trace_id, span_id, trace_state, attributes, dropped, flags)| Link {
            trace_id,
            span_id,
            trace_state,
            attributes,
            dropped_attributes_count: dropped,
            flags,
        },
    )
}

pub fn span() -> impl Strategy<Value = Span> {
    let ids = (nonzero_bytes::<16>(), nonzero_bytes::<8>(), prop_oneof![Just(Vec::new()), vec(any::<u8>(), 8..=8)]);
    let header = (short_text(), short_text(), any::<u32>(), -2i32..8, any::<u64>(), any::<u64>());
    let body = (
        attributes(),
        any::<u32>(),
        vec(event(), 0..3),
        any::<u32>(),
        vec(link(), 0..3),
        any::<u32>(),
        option::of((-1i32..5, short_text()).prop_map(|(code, message)| Status { code, message })),
    );
    (ids, header, body).prop_map(
        |(
            (trace_id, span_id, parent_span_id),
            (trace_state, name, flags, kind, start, end),
            (attributes, dropped_attributes, events, dropped_events, links, dropped_links, status),
        )| Span {
            trace_id,
            span_id,
            trace_state,
            parent_span_id,
            flags,
            name,
            kind,
            start_time_unix_nano: start,
            end_time_unix_nano: end,
            attributes,
            dropped_attributes_count: dropped_attributes,
            events,
            dropped_events_count: dropped_events,
            links,
            dropped_links_count: dropped_links,
            status,
        },
    )
}

fn entity_ref() -> impl Strategy<Value = EntityRef> {
    (short_text(), short_text(), vec(short_text(), 0..3), vec(short_text(), 0..3)).prop_map(
        |(schema_url, kind, id_keys, description_keys)| EntityRef {
            schema_url,
            r#type: kind,
            id_keys,
            description_keys,
        },
    )
}

fn resource() -> impl Strategy<Value = Option<Resource>> {
    option::weighted(
        0.9,
        (attributes(), any::<u32>(), vec(entity_ref(), 0..2)).prop_map(|(attributes, dropped, entity_refs)| Resource {
            attributes,
            dropped_attributes_count: dropped,
            entity_refs,
        }),
    )
}

fn scope() -> impl Strategy<Value = Option<InstrumentationScope>> {
    option::weighted(
        0.9,
        (short_text(), short_text(), attributes(), any::<u32>()).prop_map(|(name, version, attributes, dropped)| {
            InstrumentationScope { name, version, attributes, dropped_attributes_count: dropped }
        }),
    )
}

/// Arbitrary valid OTLP trace payloads (every span has valid IDs; everything else is arbitrary).
pub fn resource_spans() -> impl Strategy<Value = Vec<ResourceSpans>> {
    let scope_spans = (scope(), vec(span(), 0..4), short_text()).prop_map(|(scope, spans, schema_url)| ScopeSpans {
        scope,
        spans,
        schema_url,
    });
    vec(
        (resource(), vec(scope_spans, 0..3), short_text())
            .prop_map(|(resource, scope_spans, schema_url)| ResourceSpans { resource, scope_spans, schema_url }),
        0..4,
    )
}

/// Asserts two payloads hold the same spans up to the order of resource and scope groups; on failure
/// shows the first span that differs, decoded, rather than pages of bytes.
pub fn assert_same_spans(actual: &[ResourceSpans], expected: &[ResourceSpans], context: &str) {
    let (actual, expected) = (canonical(actual), canonical(expected));
    if actual == expected {
        return;
    }
    let decoded = |bytes: &Vec<u8>| ResourceSpans::decode(bytes.as_slice()).expect("canonical form decodes");
    let first_difference = actual.iter().zip(&expected).find(|(a, e)| a != e);
    match first_difference {
        Some((a, e)) => panic!("{context}: spans differ\n  actual:   {:?}\n  expected: {:?}", decoded(a), decoded(e)),
        None => panic!("{context}: {} spans returned, {} expected", actual.len(), expected.len()),
    }
}

/// Spans in an OTLP/JSON `resourceSpans` array (as trace-by-ID answers carry it).
pub fn json_span_count(resource_spans: &serde_json::Value) -> usize {
    resource_spans
        .as_array()
        .expect("resourceSpans is an array")
        .iter()
        .flat_map(|rs| rs["scopeSpans"].as_array().expect("scopeSpans is an array"))
        .map(|ss| ss["spans"].as_array().expect("spans is an array").len())
        .sum()
}
