//! One trace as the evaluator sees it: its spans (duplicates dropped), their tree, and the trace-level
//! values TraceQL names (`traceDuration`, `rootName`, nested-set numbers), decoded from `spans` rows.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, MapArray, RecordBatch, StringArray, StructArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, TimestampNanosecondType};

use super::SearchError;
use crate::ids::{SpanId, TraceId};

/// The `spans` columns the evaluator reads, in the order [`decode`] expects them.
pub const COLUMNS: &str = "trace_id, span_id, parent_span_id, name, kind, start_time, end_time, duration_ns, \
     status_code, status_message, service_name, attributes, resource_attributes, scope_name, scope_version, \
     events, links";

/// Attributes as stored for SQL: keys and values as text, in the order sent.
pub type Attributes = Vec<(String, String)>;

/// One span event.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    pub name: String,
    pub time_unix_nano: i64,
    pub attributes: Attributes,
}

/// One span link; IDs as lowercase hex, as SQL shows them.
#[derive(Clone, Debug, PartialEq)]
pub struct Link {
    pub trace_id: String,
    pub span_id: String,
    pub attributes: Attributes,
}

/// One span with everything a query may name.
#[derive(Clone, Debug, PartialEq)]
pub struct Span {
    pub span_id: SpanId,
    pub parent_span_id: Option<SpanId>,
    pub name: String,
    /// `server`, `client`, … as stored.
    pub kind: String,
    /// `ok`, `error`, `unset`.
    pub status: String,
    pub status_message: String,
    pub start_unix_nano: i64,
    pub end_unix_nano: i64,
    pub duration_nanos: i64,
    pub service_name: Option<String>,
    pub attributes: Attributes,
    pub resource_attributes: Attributes,
    pub scope_name: Option<String>,
    pub scope_version: String,
    pub events: Vec<Event>,
    pub links: Vec<Link>,
}

/// A trace: its spans in a fixed order (start time, then span ID) and their tree.
#[derive(Clone, Debug)]
pub struct Trace {
    pub id: TraceId,
    pub spans: Vec<Span>,
    /// Index of each span's parent within the trace, when the parent was received.
    pub parent: Vec<Option<usize>>,
    pub children: Vec<Vec<usize>>,
    /// Nested-set numbers (Tempo's `nestedSetLeft/Right/Parent`), from a walk of the tree in span order.
    pub nested_left: Vec<i64>,
    pub nested_right: Vec<i64>,
    pub start_unix_nano: i64,
    pub end_unix_nano: i64,
    /// The earliest span without a parent ID; `None` while the root has not been received.
    pub root: Option<usize>,
}

impl Trace {
    /// The trace of `spans` (all of one trace ID). A span received twice (a retry, not yet compacted)
    /// counts once.
    pub fn new(id: TraceId, mut spans: Vec<Span>) -> Self {
        spans.sort_by(|a, b| (a.start_unix_nano, a.span_id.as_bytes()).cmp(&(b.start_unix_nano, b.span_id.as_bytes())));
        spans.dedup_by(|later, earlier| later.span_id == earlier.span_id);
        let mut seen = std::collections::HashSet::new();
        spans.retain(|span| seen.insert(span.span_id));
        let index: HashMap<SpanId, usize> = spans.iter().enumerate().map(|(i, s)| (s.span_id, i)).collect();
        let parent: Vec<Option<usize>> = spans
            .iter()
            .enumerate()
            .map(|(i, s)| s.parent_span_id.and_then(|p| index.get(&p).copied()).filter(|&p| p != i))
            .collect();
        let mut children = vec![Vec::new(); spans.len()];
        for (child, p) in parent.iter().enumerate() {
            if let Some(p) = p {
                children[*p].push(child);
            }
        }
        let roots: Vec<usize> = (0..spans.len()).filter(|&i| spans[i].parent_span_id.is_none()).collect();
        let (nested_left, nested_right) = nested_set(&roots, &children);
        let start_unix_nano = spans.iter().map(|s| s.start_unix_nano).min().unwrap_or(0);
        let end_unix_nano = spans.iter().map(|s| s.end_unix_nano.max(s.start_unix_nano)).max().unwrap_or(0);
        let root = spans.iter().position(|s| s.parent_span_id.is_none());
        Self { id, spans, parent, children, nested_left, nested_right, start_unix_nano, end_unix_nano, root }
    }

    /// From the earliest start to the latest end.
    pub fn duration_nanos(&self) -> i64 {
        self.end_unix_nano - self.start_unix_nano
    }

    /// Whether span `i` descends from span `ancestor`. Cycles (bad parent IDs) end the walk.
    pub fn is_descendant(&self, i: usize, ancestor: usize) -> bool {
        let mut current = self.parent[i];
        let mut steps = 0;
        while let Some(p) = current {
            if p == ancestor {
                return true;
            }
            steps += 1;
            if steps > self.spans.len() {
                return false;
            }
            current = self.parent[p];
        }
        false
    }
}

/// Nested-set numbers: a depth-first walk from every root (a span without a parent ID), children in span
/// order, numbering on the way in (left) and out (right), starting at 1. Spans cut off from every root
/// (their parent was not received) stay 0, as in Tempo.
fn nested_set(roots: &[usize], children: &[Vec<usize>]) -> (Vec<i64>, Vec<i64>) {
    let n = children.len();
    let (mut left, mut right) = (vec![0i64; n], vec![0i64; n]);
    let mut counter = 0i64;
    let mut visited = vec![false; n];
    for &root in roots {
        let mut stack = vec![(root, 0usize)];
        visited[root] = true;
        counter += 1;
        left[root] = counter;
        while let Some((node, next)) = stack.last_mut() {
            let node = *node;
            if let Some(&child) = children[node].get(*next) {
                *next += 1;
                if !visited[child] {
                    visited[child] = true;
                    counter += 1;
                    left[child] = counter;
                    stack.push((child, 0));
                }
            } else {
                counter += 1;
                right[node] = counter;
                stack.pop();
            }
        }
    }
    (left, right)
}

/// Groups `spans` rows (the [`COLUMNS`]) into traces.
pub fn decode(batches: &[RecordBatch]) -> Result<Vec<Trace>, SearchError> {
    let mut by_trace: HashMap<TraceId, Vec<Span>> = HashMap::new();
    for batch in batches {
        let columns = Columns::of(batch)?;
        for row in 0..batch.num_rows() {
            let (trace_id, span) = columns.span(row)?;
            by_trace.entry(trace_id).or_default().push(span);
        }
    }
    let mut traces: Vec<Trace> = by_trace.into_iter().map(|(id, spans)| Trace::new(id, spans)).collect();
    traces.sort_by_key(|t| t.id);
    Ok(traces)
}

fn bad(what: &str) -> SearchError {
    SearchError::Internal(format!("search rows: {what}"))
}

/// A column as UTF-8 strings, whatever string type the plan produced.
fn strings(array: &ArrayRef) -> Result<StringArray, SearchError> {
    let cast = cast(array, &DataType::Utf8).map_err(|e| bad(&e.to_string()))?;
    Ok(cast.as_string::<i32>().clone())
}

fn opt(array: &StringArray, row: usize) -> Option<String> {
    array.is_valid(row).then(|| array.value(row).to_owned())
}

/// The entries of row `row` of a `map<string,string>` column.
fn map_entries(map: &MapArray, row: usize) -> Result<Attributes, SearchError> {
    if map.is_null(row) {
        return Ok(Vec::new());
    }
    let entries = map.value(row);
    let keys = strings(entries.column(0))?;
    let values = strings(entries.column(1))?;
    Ok((0..entries.len())
        .filter(|&i| values.is_valid(i))
        .map(|i| (keys.value(i).to_owned(), values.value(i).to_owned()))
        .collect())
}

fn struct_field<'a>(array: &'a StructArray, name: &str) -> Result<&'a ArrayRef, SearchError> {
    array.column_by_name(name).ok_or_else(|| bad(&format!("no field {name}")))
}

struct Columns<'a> {
    trace_id: StringArray,
    span_id: StringArray,
    parent: StringArray,
    name: StringArray,
    kind: StringArray,
    start: &'a arrow::array::PrimitiveArray<TimestampNanosecondType>,
    end: &'a arrow::array::PrimitiveArray<TimestampNanosecondType>,
    duration: &'a arrow::array::Int64Array,
    status: StringArray,
    status_message: StringArray,
    service: StringArray,
    attributes: &'a MapArray,
    resource: &'a MapArray,
    scope_name: StringArray,
    scope_version: StringArray,
    events: &'a arrow::array::ListArray,
    links: &'a arrow::array::ListArray,
}

impl<'a> Columns<'a> {
    fn of(batch: &'a RecordBatch) -> Result<Self, SearchError> {
        if batch.num_columns() != 17 {
            return Err(bad("unexpected columns"));
        }
        let c = |i: usize| batch.column(i);
        let timestamps = |i: usize| c(i).as_primitive_opt::<TimestampNanosecondType>().ok_or_else(|| bad("time type"));
        Ok(Self {
            trace_id: strings(c(0))?,
            span_id: strings(c(1))?,
            parent: strings(c(2))?,
            name: strings(c(3))?,
            kind: strings(c(4))?,
            start: timestamps(5)?,
            end: timestamps(6)?,
            duration: c(7).as_primitive_opt().ok_or_else(|| bad("duration type"))?,
            status: strings(c(8))?,
            status_message: strings(c(9))?,
            service: strings(c(10))?,
            attributes: c(11).as_map_opt().ok_or_else(|| bad("attributes type"))?,
            resource: c(12).as_map_opt().ok_or_else(|| bad("resource type"))?,
            scope_name: strings(c(13))?,
            scope_version: strings(c(14))?,
            events: c(15).as_list_opt().ok_or_else(|| bad("events type"))?,
            links: c(16).as_list_opt().ok_or_else(|| bad("links type"))?,
        })
    }

    fn span(&self, row: usize) -> Result<(TraceId, Span), SearchError> {
        let trace_id = TraceId::from_hex(self.trace_id.value(row)).map_err(|e| bad(&e.to_string()))?;
        let span_id = SpanId::from_hex(self.span_id.value(row)).map_err(|e| bad(&e.to_string()))?;
        let parent_span_id = opt(&self.parent, row).and_then(|hex| SpanId::from_hex(&hex).ok());
        let span = Span {
            span_id,
            parent_span_id,
            name: self.name.value(row).to_owned(),
            kind: self.kind.value(row).to_owned(),
            status: opt(&self.status, row).unwrap_or_else(|| "unset".to_owned()),
            status_message: opt(&self.status_message, row).unwrap_or_default(),
            start_unix_nano: self.start.value(row),
            end_unix_nano: self.end.value(row),
            duration_nanos: self.duration.value(row),
            service_name: opt(&self.service, row),
            attributes: map_entries(self.attributes, row)?,
            resource_attributes: map_entries(self.resource, row)?,
            scope_name: opt(&self.scope_name, row),
            scope_version: opt(&self.scope_version, row).unwrap_or_default(),
            events: events(self.events, row)?,
            links: links(self.links, row)?,
        };
        Ok((trace_id, span))
    }
}

fn events(list: &arrow::array::ListArray, row: usize) -> Result<Vec<Event>, SearchError> {
    if list.is_null(row) {
        return Ok(Vec::new());
    }
    let element = list.value(row);
    let items = element.as_struct_opt().ok_or_else(|| bad("events element"))?;
    let names = strings(struct_field(items, "name")?)?;
    let times =
        struct_field(items, "time")?.as_primitive_opt::<TimestampNanosecondType>().ok_or_else(|| bad("event time"))?;
    let attributes: &MapArray =
        struct_field(items, "attributes")?.as_map_opt().ok_or_else(|| bad("event attributes"))?;
    (0..items.len())
        .map(|i| {
            Ok(Event {
                name: names.value(i).to_owned(),
                time_unix_nano: times.value(i),
                attributes: map_entries(attributes, i)?,
            })
        })
        .collect()
}

fn links(list: &arrow::array::ListArray, row: usize) -> Result<Vec<Link>, SearchError> {
    if list.is_null(row) {
        return Ok(Vec::new());
    }
    let element: Arc<dyn Array> = list.value(row);
    let items = element.as_struct_opt().ok_or_else(|| bad("links element"))?;
    let trace_ids = strings(struct_field(items, "trace_id")?)?;
    let span_ids = strings(struct_field(items, "span_id")?)?;
    let attributes: &MapArray =
        struct_field(items, "attributes")?.as_map_opt().ok_or_else(|| bad("link attributes"))?;
    (0..items.len())
        .map(|i| {
            Ok(Link {
                trace_id: trace_ids.value(i).to_owned(),
                span_id: span_ids.value(i).to_owned(),
                attributes: map_entries(attributes, i)?,
            })
        })
        .collect()
}
