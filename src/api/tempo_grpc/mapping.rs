//! Tempo's protobuf search messages (`tempopb`) to and from `search`'s values: the request as Grafana
//! sends it, the answer as Grafana reads it. Field for field the same as the JSON of `GET /api/search`.

use std::collections::BTreeMap;

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};

use crate::query::tempopb;
use crate::search::{
    AttributeValue, MatchedSpan, ROOT_NOT_RECEIVED, SearchError, SearchMetrics, SearchParams, SearchRequest,
    SearchResponse, SpanSet, TraceMatch, pairs_to_traceql, tempo_trace_id,
};

/// A gRPC search request as the checked request: the same parameters, and the same checks, as
/// `GET /api/search`. Zero means "not given" for every number, as in Tempo (proto3 has no absent
/// numbers).
pub fn search_request(request: &tempopb::SearchRequest) -> Result<SearchRequest, SearchError> {
    let query = request.query.trim();
    let tags_query = if request.tags.is_empty() {
        None
    } else {
        // Sorted, so the same tags always make the same query (the map's order is the sender's).
        let sorted: BTreeMap<&str, &str> = request.tags.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        Some(pairs_to_traceql(sorted)?)
    };
    let q = match (query.is_empty(), tags_query) {
        (false, Some(_)) => {
            return Err(SearchError::Parameter(
                "invalid request: pass either Query (TraceQL) or Tags, not both".into(),
            ));
        }
        (false, None) => Some(query.to_owned()),
        (true, tags_query) => tags_query,
    };
    let nonzero = |value: u32| (value > 0).then(|| value.to_string());
    let params = SearchParams {
        q,
        tags: None,
        min_duration: (request.min_duration_ms > 0).then(|| format!("{}ms", request.min_duration_ms)),
        max_duration: (request.max_duration_ms > 0).then(|| format!("{}ms", request.max_duration_ms)),
        limit: nonzero(request.limit),
        spss: nonzero(request.spans_per_span_set),
        start: nonzero(request.start),
        end: nonzero(request.end),
    };
    SearchRequest::from_params(&params)
}

fn saturating_u32(value: impl TryInto<u32>) -> u32 {
    value.try_into().unwrap_or(u32::MAX)
}

fn non_negative(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

fn any_value(value: &AttributeValue) -> AnyValue {
    let value = match value {
        AttributeValue::Str(text) => any_value::Value::StringValue(text.clone()),
        AttributeValue::Int(number) => any_value::Value::IntValue(*number),
        AttributeValue::Double(number) => any_value::Value::DoubleValue(*number),
        AttributeValue::Bool(flag) => any_value::Value::BoolValue(*flag),
    };
    AnyValue { value: Some(value) }
}

fn key_values(attributes: &[(String, AttributeValue)]) -> Vec<KeyValue> {
    attributes
        .iter()
        .map(|(key, value)| KeyValue { key: key.clone(), value: Some(any_value(value)), ..Default::default() })
        .collect()
}

fn span(span: &MatchedSpan) -> tempopb::Span {
    tempopb::Span {
        span_id: span.span_id.to_hex(),
        name: span.name.clone(),
        start_time_unix_nano: non_negative(span.start_unix_nano),
        duration_nanos: non_negative(span.duration_nanos),
        attributes: key_values(&span.attributes),
    }
}

fn span_set(set: &SpanSet) -> tempopb::SpanSet {
    tempopb::SpanSet {
        spans: set.spans.iter().map(span).collect(),
        matched: saturating_u32(set.matched),
        attributes: key_values(&set.attributes),
    }
}

/// One trace as Tempo's `TraceSearchMetadata`.
pub fn trace_metadata(trace: &TraceMatch) -> tempopb::TraceSearchMetadata {
    let span_sets: Vec<tempopb::SpanSet> = trace.span_sets.iter().map(span_set).collect();
    tempopb::TraceSearchMetadata {
        trace_id: tempo_trace_id(&trace.trace_id),
        root_service_name: trace.root_service_name.clone().unwrap_or_else(|| ROOT_NOT_RECEIVED.to_owned()),
        root_trace_name: trace.root_trace_name.clone().unwrap_or_else(|| ROOT_NOT_RECEIVED.to_owned()),
        start_time_unix_nano: non_negative(trace.start_unix_nano),
        duration_ms: saturating_u32(trace.duration_ms()),
        // Deprecated in Tempo but still read by older Grafanas: the first spanset alone.
        span_set: span_sets.first().cloned(),
        span_sets,
        service_stats: trace
            .service_stats
            .iter()
            .map(|(service, stats)| {
                let stats = tempopb::ServiceStats {
                    span_count: saturating_u32(stats.span_count),
                    error_count: saturating_u32(stats.error_count),
                };
                (service.clone(), stats)
            })
            .collect(),
    }
}

/// What the search looked at, as Tempo's `SearchMetrics`. spanlake's pruning counters have no field
/// there; they stay in the JSON answer.
pub fn search_metrics(metrics: &SearchMetrics) -> tempopb::SearchMetrics {
    tempopb::SearchMetrics {
        inspected_traces: saturating_u32(metrics.inspected_traces),
        inspected_bytes: metrics.inspected_bytes,
        total_blocks: saturating_u32(metrics.total_blocks),
        completed_jobs: saturating_u32(metrics.completed_jobs),
        total_jobs: saturating_u32(metrics.total_jobs),
        total_block_bytes: metrics.total_block_bytes,
        inspected_spans: metrics.inspected_spans,
        ..Default::default()
    }
}

/// A whole answer as Tempo's `SearchResponse`.
pub fn search_response(response: &SearchResponse) -> tempopb::SearchResponse {
    tempopb::SearchResponse {
        traces: response.traces.iter().map(trace_metadata).collect(),
        metrics: Some(search_metrics(&response.metrics)),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::time::Duration;

    use super::*;
    use crate::search::ServiceStats;

    #[test]
    fn a_grpc_request_means_what_the_same_http_parameters_mean() {
        let grpc = tempopb::SearchRequest {
            query: r#"{ span.http.method = "GET" }"#.into(),
            min_duration_ms: 100,
            max_duration_ms: 2500,
            limit: 5,
            start: 1_700_000_000,
            end: 1_700_000_600,
            spans_per_span_set: 7,
            ..Default::default()
        };
        let request = search_request(&grpc).unwrap();
        let http = SearchRequest::from_params(&SearchParams {
            q: Some(grpc.query.clone()),
            min_duration: Some("100ms".into()),
            max_duration: Some("2.5s".into()),
            limit: Some("5".into()),
            spss: Some("7".into()),
            start: Some("1700000000".into()),
            end: Some("1700000600".into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(request, http);
        assert_eq!(request.min_duration, Some(Duration::from_millis(100)));
        assert_eq!(request.start_unix_nano, Some(1_700_000_000_000_000_000));
        assert_eq!((request.limit, request.spans_per_spanset), (5, 7));
    }

    #[test]
    fn zeros_are_tempos_defaults_and_tags_become_traceql() {
        let request = search_request(&tempopb::SearchRequest::default()).unwrap();
        assert_eq!((request.text.as_str(), request.limit, request.spans_per_spanset), ("{}", 20, 3));
        assert_eq!((request.start_unix_nano, request.end_unix_nano, request.min_duration), (None, None, None));

        let tags = HashMap::from([
            ("service.name".to_owned(), "shop".to_owned()),
            ("http.route".to_owned(), "/cart items".to_owned()),
        ]);
        let request = search_request(&tempopb::SearchRequest { tags, ..Default::default() }).unwrap();
        assert_eq!(request.text, r#"{.http.route = "/cart items" && resource.service.name = "shop"}"#);
    }

    #[test]
    fn bad_grpc_requests_are_refused_as_http_refuses_them() {
        let bad_query = tempopb::SearchRequest { query: "{.a = 1 && 2}".into(), ..Default::default() };
        assert!(matches!(search_request(&bad_query), Err(SearchError::Query(_))));
        let both = tempopb::SearchRequest {
            query: "{}".into(),
            tags: HashMap::from([("a".to_owned(), "b".to_owned())]),
            ..Default::default()
        };
        assert!(matches!(search_request(&both), Err(SearchError::Parameter(_))));
        let backwards = tempopb::SearchRequest { min_duration_ms: 10, max_duration_ms: 5, ..Default::default() };
        assert!(matches!(search_request(&backwards), Err(SearchError::Parameter(_))));
    }

    #[test]
    fn an_answer_maps_field_for_field_as_its_json() {
        let mut trace = crate::search::sample_match();
        trace.span_sets[0].attributes = vec![("by".into(), AttributeValue::Str("x".into()))];
        trace.service_stats.insert("shop".into(), ServiceStats { span_count: 4, error_count: 1 });
        let metrics =
            SearchMetrics { inspected_traces: 3, inspected_bytes: 1000, total_blocks: 2, ..Default::default() };
        let answer = search_response(&SearchResponse { traces: vec![trace.clone()], metrics, partial: Vec::new() });

        let proto = &answer.traces[0];
        let json = trace.to_json();
        assert_eq!(proto.trace_id, "ab");
        assert_eq!(proto.trace_id, json["traceID"]);
        assert_eq!(proto.root_service_name, ROOT_NOT_RECEIVED);
        assert_eq!(proto.root_trace_name, "GET /");
        assert_eq!(proto.start_time_unix_nano, 1_700_000_000_000_000_000);
        assert_eq!(proto.duration_ms, 2);
        assert_eq!(proto.span_set.as_ref(), proto.span_sets.first());
        let set = &proto.span_sets[0];
        assert_eq!(set.matched, 4);
        assert_eq!(set.spans[0].span_id, "0000000000000001");
        assert_eq!(set.spans[0].duration_nanos, 10);
        assert_eq!(set.spans[0].attributes[0].key, "http.status_code");
        assert_eq!(set.spans[0].attributes[0].value, Some(AnyValue { value: Some(any_value::Value::IntValue(500)) }));
        assert_eq!(set.attributes[0].key, "by");
        assert_eq!(proto.service_stats["shop"], tempopb::ServiceStats { span_count: 4, error_count: 1 });

        let metrics = answer.metrics.unwrap();
        assert_eq!((metrics.inspected_traces, metrics.inspected_bytes, metrics.total_blocks), (3, 1000, 2));
    }
}
