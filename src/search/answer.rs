//! A search's answer as a value, and its JSON exactly as Tempo writes it (jsonpb: lowerCamel names,
//! 64-bit integers as strings, empty fields left out), which is what Grafana parses.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::ids::{SpanId, TraceId};

/// What Tempo shows for a trace whose root span has not arrived (or was never sent).
pub const ROOT_NOT_RECEIVED: &str = "<root span not yet received>";

/// One attribute value of a matched span, typed as it was sent where the query compared it.
#[derive(Clone, Debug, PartialEq)]
pub enum AttributeValue {
    Str(String),
    Int(i64),
    Double(f64),
    Bool(bool),
}

/// One span of a spanset, with the attributes the query named.
#[derive(Clone, Debug, PartialEq)]
pub struct MatchedSpan {
    pub span_id: SpanId,
    pub name: String,
    pub start_unix_nano: i64,
    pub duration_nanos: i64,
    /// Attributes the query filtered on or selected, by their TraceQL names (`http.method`, `status`).
    pub attributes: Vec<(String, AttributeValue)>,
}

/// The spans of one trace that one result of the query holds (one per `by()` group).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SpanSet {
    /// The first `spss` spans, earliest first.
    pub spans: Vec<MatchedSpan>,
    /// How many spans matched, shown or not.
    pub matched: usize,
    /// The spanset's own attributes: `by()` keys, aggregate values.
    pub attributes: Vec<(String, AttributeValue)>,
}

/// Spans and errors of one service in a trace.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServiceStats {
    pub span_count: usize,
    pub error_count: usize,
}

/// One trace found.
#[derive(Clone, Debug, PartialEq)]
pub struct TraceMatch {
    pub trace_id: TraceId,
    /// The root span's service and name; `None` while the root has not been received.
    pub root_service_name: Option<String>,
    pub root_trace_name: Option<String>,
    /// The earliest span start.
    pub start_unix_nano: i64,
    /// From the earliest start to the latest end.
    pub duration_nanos: i64,
    pub span_sets: Vec<SpanSet>,
    pub service_stats: BTreeMap<String, ServiceStats>,
}

/// What a search looked at, and what it did not need to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SearchMetrics {
    /// Traces evaluated against the whole query.
    pub inspected_traces: u64,
    /// Bytes of blocks read (the data files of the blocks not pruned).
    pub inspected_bytes: u64,
    /// Spans that passed the pushed-down span filter.
    pub inspected_spans: u64,
    /// The tenant's blocks in the window.
    pub total_blocks: u64,
    /// Slices of the store searched so far, and in all (Tempo's jobs: here a step of the newest-first walk).
    pub completed_jobs: u64,
    pub total_jobs: u64,
    /// Bytes of all the tenant's blocks in the window.
    pub total_block_bytes: u64,
    /// Blocks skipped: by time, by the per-block tag summary, by Parquet statistics and bloom filters.
    pub blocks_pruned_by_time: u64,
    pub blocks_pruned_by_summary: u64,
    /// Blocks whose data the search read.
    pub blocks_scanned: u64,
    /// Blocks left unread because `limit` traces were already certain.
    pub blocks_not_needed: u64,
}

/// A search's answer: traces newest first, then by trace ID.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SearchResponse {
    pub traces: Vec<TraceMatch>,
    pub metrics: SearchMetrics,
    /// Why the answer may lack traces (an ingester of another process did not answer); empty when it is
    /// exact. Not in Tempo's body: the HTTP answer carries it as a `Warning` header.
    pub partial: Vec<String>,
}

/// A trace ID as Tempo's search writes it: lowercase hex without leading zeros.
pub fn tempo_trace_id(id: &TraceId) -> String {
    let hex = id.to_hex();
    let trimmed = hex.trim_start_matches('0');
    if trimmed.is_empty() { "0".to_owned() } else { trimmed.to_owned() }
}

impl AttributeValue {
    /// The OTLP JSON `AnyValue`.
    pub fn to_json(&self) -> Value {
        match self {
            Self::Str(s) => json!({ "stringValue": s }),
            Self::Int(i) => json!({ "intValue": i.to_string() }),
            Self::Double(d) => json!({ "doubleValue": d }),
            Self::Bool(b) => json!({ "boolValue": b }),
        }
    }
}

fn attributes_json(attributes: &[(String, AttributeValue)]) -> Value {
    Value::Array(attributes.iter().map(|(key, value)| json!({ "key": key, "value": value.to_json() })).collect())
}

/// Inserts `key` unless the value is Tempo's "empty" (jsonpb leaves out zero values).
fn put(object: &mut Map<String, Value>, key: &str, value: Value) {
    let empty = match &value {
        Value::Null => true,
        Value::String(s) => s.is_empty() || s == "0",
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        Value::Bool(b) => !b,
    };
    if !empty {
        object.insert(key.to_owned(), value);
    }
}

impl MatchedSpan {
    fn to_json(&self) -> Value {
        let mut span = Map::new();
        put(&mut span, "spanID", Value::String(self.span_id.to_hex()));
        put(&mut span, "name", Value::String(self.name.clone()));
        put(&mut span, "startTimeUnixNano", Value::String(self.start_unix_nano.to_string()));
        put(&mut span, "durationNanos", Value::String(self.duration_nanos.to_string()));
        put(&mut span, "attributes", attributes_json(&self.attributes));
        Value::Object(span)
    }
}

impl SpanSet {
    fn to_json(&self) -> Value {
        let mut set = Map::new();
        put(&mut set, "spans", Value::Array(self.spans.iter().map(MatchedSpan::to_json).collect()));
        put(&mut set, "matched", json!(self.matched));
        put(&mut set, "attributes", attributes_json(&self.attributes));
        Value::Object(set)
    }
}

impl TraceMatch {
    /// Milliseconds as Tempo rounds them (down, as an integer).
    pub fn duration_ms(&self) -> u64 {
        u64::try_from(self.duration_nanos / 1_000_000).unwrap_or(0)
    }

    /// Tempo's `TraceSearchMetadata` in JSON.
    pub fn to_json(&self) -> Value {
        let mut trace = Map::new();
        put(&mut trace, "traceID", Value::String(tempo_trace_id(&self.trace_id)));
        let root_service = self.root_service_name.clone().unwrap_or_else(|| ROOT_NOT_RECEIVED.to_owned());
        let root_name = self.root_trace_name.clone().unwrap_or_else(|| ROOT_NOT_RECEIVED.to_owned());
        put(&mut trace, "rootServiceName", Value::String(root_service));
        put(&mut trace, "rootTraceName", Value::String(root_name));
        put(&mut trace, "startTimeUnixNano", Value::String(self.start_unix_nano.to_string()));
        put(&mut trace, "durationMs", json!(self.duration_ms()));
        let sets: Vec<Value> = self.span_sets.iter().map(SpanSet::to_json).collect();
        if let Some(first) = sets.first() {
            // Deprecated in Tempo but still read by older Grafanas: the first spanset alone.
            trace.insert("spanSet".into(), first.clone());
        }
        put(&mut trace, "spanSets", Value::Array(sets));
        let stats: Map<String, Value> = self
            .service_stats
            .iter()
            .map(|(service, stats)| {
                let mut entry = Map::new();
                put(&mut entry, "spanCount", json!(stats.span_count));
                put(&mut entry, "errorCount", json!(stats.error_count));
                (service.clone(), Value::Object(entry))
            })
            .collect();
        put(&mut trace, "serviceStats", Value::Object(stats));
        Value::Object(trace)
    }
}

impl SearchMetrics {
    /// Tempo's `SearchMetrics` in JSON, plus spanlake's pruning counters (Grafana ignores fields it does
    /// not know).
    pub fn to_json(&self) -> Value {
        let mut metrics = Map::new();
        put(&mut metrics, "inspectedTraces", json!(self.inspected_traces));
        put(&mut metrics, "inspectedBytes", Value::String(self.inspected_bytes.to_string()));
        put(&mut metrics, "inspectedSpans", Value::String(self.inspected_spans.to_string()));
        put(&mut metrics, "totalBlocks", json!(self.total_blocks));
        put(&mut metrics, "completedJobs", json!(self.completed_jobs));
        put(&mut metrics, "totalJobs", json!(self.total_jobs));
        put(&mut metrics, "totalBlockBytes", Value::String(self.total_block_bytes.to_string()));
        put(&mut metrics, "blocksPrunedByTime", json!(self.blocks_pruned_by_time));
        put(&mut metrics, "blocksPrunedBySummary", json!(self.blocks_pruned_by_summary));
        put(&mut metrics, "blocksScanned", json!(self.blocks_scanned));
        put(&mut metrics, "blocksNotNeeded", json!(self.blocks_not_needed));
        Value::Object(metrics)
    }
}

impl SearchResponse {
    /// Tempo's `SearchResponse` in JSON. `traces` is always present (Grafana reads an empty list).
    pub fn to_json(&self) -> Value {
        json!({
            "traces": self.traces.iter().map(TraceMatch::to_json).collect::<Vec<_>>(),
            "metrics": self.metrics.to_json(),
        })
    }
}

/// A trace match with every field set (one spanset of one span), shared by the tests of its JSON and of
/// its gRPC shape so both read the same trace.
#[cfg(test)]
pub(crate) fn sample_match() -> TraceMatch {
    TraceMatch {
        trace_id: TraceId::from_hex("00ab").unwrap(),
        root_service_name: None,
        root_trace_name: Some("GET /".into()),
        start_unix_nano: 1_700_000_000_000_000_000,
        duration_nanos: 2_500_000,
        span_sets: vec![SpanSet {
            spans: vec![MatchedSpan {
                span_id: SpanId::from_hex("01").unwrap(),
                name: "db".into(),
                start_unix_nano: 1_700_000_000_000_000_001,
                duration_nanos: 10,
                attributes: vec![("http.status_code".into(), AttributeValue::Int(500))],
            }],
            matched: 4,
            attributes: vec![],
        }],
        service_stats: BTreeMap::from([("shop".into(), ServiceStats { span_count: 4, error_count: 0 })]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_follows_tempo_jsonpb() {
        let trace = sample_match();
        let json = trace.to_json();
        assert_eq!(json["traceID"], "ab");
        assert_eq!(json["rootServiceName"], ROOT_NOT_RECEIVED);
        assert_eq!(json["startTimeUnixNano"], "1700000000000000000");
        assert_eq!(json["durationMs"], 2);
        assert_eq!(json["spanSets"][0]["matched"], 4);
        assert_eq!(json["spanSet"], json["spanSets"][0]);
        let span = &json["spanSets"][0]["spans"][0];
        assert_eq!(span["spanID"], "0000000000000001");
        assert_eq!(span["durationNanos"], "10");
        assert_eq!(span["attributes"][0]["value"]["intValue"], "500");
        assert!(json["spanSets"][0].get("attributes").is_none(), "empty fields are left out");
        assert_eq!(json["serviceStats"]["shop"], json!({"spanCount": 4}), "a zero error count is left out");
    }
}
