//! One trace as the evaluator sees it: its spans (duplicates dropped), their tree, and the trace-level
//! values TraceQL names (`traceDuration`, `rootName`, nested-set numbers), decoded from `spans` rows.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, MapArray, RecordBatch, StringArray, StructArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, TimestampNanosecondType};

use super::SearchError;
use crate::ids::{SpanId, TraceId};
use crate::traceql::ast::{AttributeScope, FieldExpr, FieldKind, Intrinsic, Query};

/// The `spans` columns every evaluation reads: the tree, the times, and what the answer shows.
const ALWAYS: &str = "trace_id, span_id, parent_span_id, name, kind, start_time, end_time, duration_ns, \
     status_code, status_message, service_name, scope_name, scope_version";

/// Which of the costly `spans` columns (the attribute maps, events and links) a query reads. Fetching
/// a search's candidate traces decodes these for every span of every candidate, and they are most of
/// the bytes, so a query that names none of them (`{resource.service.name="checkout"}`,
/// `{status=error && duration>1s}`) reads none.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Needs {
    pub attributes: bool,
    /// The resource map; `resource.service.name` is answered from the `service_name` column, as the
    /// pushed-down SQL condition (`plan.rs`) answers it, and needs no map.
    pub resource_attributes: bool,
    pub events: bool,
    pub links: bool,
}

impl Needs {
    /// What evaluating `query` and showing its answer read.
    pub fn of(query: &Query) -> Self {
        let mut needs = Needs::default();
        let visited = query.pipeline.visit_fields(&mut |expr: &FieldExpr| {
            match &expr.kind {
                FieldKind::Attribute(attribute) => match attribute.scope {
                    AttributeScope::Span => needs.attributes = true,
                    AttributeScope::Resource => needs.resource_attributes |= attribute.name != SERVICE_NAME,
                    AttributeScope::None => {
                        needs.attributes = true;
                        needs.resource_attributes |= attribute.name != SERVICE_NAME;
                    }
                    AttributeScope::Event => needs.events = true,
                    AttributeScope::Link => needs.links = true,
                    AttributeScope::Instrumentation => {}
                },
                FieldKind::Intrinsic(Intrinsic::EventName | Intrinsic::EventTimeSinceStart) => needs.events = true,
                FieldKind::Intrinsic(Intrinsic::LinkTraceId | Intrinsic::LinkSpanId) => needs.links = true,
                _ => {}
            }
            Ok::<(), std::convert::Infallible>(())
        });
        match visited {
            Ok(()) => needs,
            Err(never) => match never {},
        }
    }

    /// The `spans` columns to select, for [`decode`].
    pub fn columns(self) -> String {
        let optional = [
            (self.attributes, "attributes"),
            (self.resource_attributes, "resource_attributes"),
            (self.events, "events"),
            (self.links, "links"),
        ];
        let mut columns = ALWAYS.to_owned();
        for (_, name) in optional.iter().filter(|(wanted, _)| *wanted) {
            columns.push_str(", ");
            columns.push_str(name);
        }
        columns
    }
}

/// The resource attribute that has a column of its own.
const SERVICE_NAME: &str = "service.name";

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

/// Groups `spans` rows (the columns of some [`Needs::columns`]) into traces; a column not selected
/// leaves its field empty (the resource map then holds only `service.name`, from its column).
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

/// A `map<string,string>` column with its keys and values cast to UTF-8 once per batch, not per row.
struct MapColumn<'a> {
    map: &'a MapArray,
    keys: StringArray,
    values: StringArray,
}

impl<'a> MapColumn<'a> {
    fn of(array: &'a ArrayRef, what: &str) -> Result<Self, SearchError> {
        let map = array.as_map_opt().ok_or_else(|| bad(&format!("{what} type")))?;
        Ok(Self { map, keys: strings(map.keys())?, values: strings(map.values())? })
    }

    /// The entries of row `row`, in the order sent.
    fn entries(&self, row: usize) -> Attributes {
        if self.map.is_null(row) {
            return Vec::new();
        }
        let offsets = self.map.value_offsets();
        let (start, end) = (offsets[row] as usize, offsets[row + 1] as usize);
        (start..end)
            .filter(|&i| self.values.is_valid(i))
            .map(|i| (self.keys.value(i).to_owned(), self.values.value(i).to_owned()))
            .collect()
    }
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
    scope_name: StringArray,
    scope_version: StringArray,
    attributes: Option<MapColumn<'a>>,
    resource: Option<MapColumn<'a>>,
    events: Option<&'a arrow::array::ListArray>,
    links: Option<&'a arrow::array::ListArray>,
}

impl<'a> Columns<'a> {
    fn of(batch: &'a RecordBatch) -> Result<Self, SearchError> {
        let optional = |name: &str| batch.column_by_name(name);
        let c = |name: &str| optional(name).ok_or_else(|| bad(&format!("no column {name}")));
        let timestamps =
            |name: &str| c(name)?.as_primitive_opt::<TimestampNanosecondType>().ok_or_else(|| bad("time type"));
        let list = |name: &str| {
            optional(name).map(|column| column.as_list_opt().ok_or_else(|| bad(&format!("{name} type")))).transpose()
        };
        Ok(Self {
            trace_id: strings(c("trace_id")?)?,
            span_id: strings(c("span_id")?)?,
            parent: strings(c("parent_span_id")?)?,
            name: strings(c("name")?)?,
            kind: strings(c("kind")?)?,
            start: timestamps("start_time")?,
            end: timestamps("end_time")?,
            duration: c("duration_ns")?.as_primitive_opt().ok_or_else(|| bad("duration type"))?,
            status: strings(c("status_code")?)?,
            status_message: strings(c("status_message")?)?,
            service: strings(c("service_name")?)?,
            scope_name: strings(c("scope_name")?)?,
            scope_version: strings(c("scope_version")?)?,
            attributes: optional("attributes").map(|column| MapColumn::of(column, "attributes")).transpose()?,
            resource: optional("resource_attributes").map(|column| MapColumn::of(column, "resource")).transpose()?,
            events: list("events")?,
            links: list("links")?,
        })
    }

    fn span(&self, row: usize) -> Result<(TraceId, Span), SearchError> {
        let trace_id = TraceId::from_hex(self.trace_id.value(row)).map_err(|e| bad(&e.to_string()))?;
        let span_id = SpanId::from_hex(self.span_id.value(row)).map_err(|e| bad(&e.to_string()))?;
        let parent_span_id = opt(&self.parent, row).and_then(|hex| SpanId::from_hex(&hex).ok());
        let service_name = opt(&self.service, row);
        let resource_attributes = match &self.resource {
            Some(resource) => resource.entries(row),
            None => service_name.iter().map(|name| (SERVICE_NAME.to_owned(), name.clone())).collect(),
        };
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
            service_name,
            attributes: self.attributes.as_ref().map(|map| map.entries(row)).unwrap_or_default(),
            resource_attributes,
            scope_name: opt(&self.scope_name, row),
            scope_version: opt(&self.scope_version, row).unwrap_or_default(),
            events: self.events.map(|list| events(list, row)).transpose()?.unwrap_or_default(),
            links: self.links.map(|list| links(list, row)).transpose()?.unwrap_or_default(),
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
    let attributes = MapColumn::of(struct_field(items, "attributes")?, "event attributes")?;
    (0..items.len())
        .map(|i| {
            Ok(Event {
                name: names.value(i).to_owned(),
                time_unix_nano: times.value(i),
                attributes: attributes.entries(i),
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
    let attributes = MapColumn::of(struct_field(items, "attributes")?, "link attributes")?;
    (0..items.len())
        .map(|i| {
            Ok(Link {
                trace_id: trace_ids.value(i).to_owned(),
                span_id: span_ids.value(i).to_owned(),
                attributes: attributes.entries(i),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn needs(query: &str) -> Needs {
        Needs::of(&crate::traceql::parse(query).expect("valid TraceQL"))
    }

    #[test]
    fn a_query_reads_the_maps_and_lists_it_names_wherever_it_names_them() {
        let none = Needs::default();
        let span = Needs { attributes: true, ..none };
        let resource = Needs { resource_attributes: true, ..none };
        let both = Needs { attributes: true, resource_attributes: true, ..none };
        let cases = [
            (r#"{resource.service.name="checkout"}"#, none),
            (r#"{status=error && duration>1s && name="a" && kind=server} | count() > 2"#, none),
            (r#"{rootServiceName="a" && trace:rootName="b" && statusMessage="c"}"#, none),
            ("{span.http.route = \"/a\"}", span),
            ("{resource.k8s.pod.name = \"p\"}", resource),
            ("{.http.route = \"/a\"}", both),
            // Unscoped `service.name` is looked up in the span first; the resource's is a column.
            ("{.service.name = \"a\"}", span),
            ("{parent.span.a = 1}", span),
            ("{event.exception.type = \"E\"}", Needs { events: true, ..none }),
            ("{event:name = \"e\"}", Needs { events: true, ..none }),
            ("{link:traceID = \"ab\"}", Needs { links: true, ..none }),
            ("{link.kind = \"x\"}", Needs { links: true, ..none }),
            // Wherever the field is: a structural operand, an aggregate, by(), select(), nested pipelines.
            ("{} >> {span.a = 1}", span),
            ("{} | avg(span.bytes) > 2", span),
            ("{} | by(resource.region)", resource),
            ("{} | select(span.a)", span),
            ("({} | select(resource.b)) && {}", resource),
            ("{!(span.a = 1)}", span),
        ];
        for (query, expected) in cases {
            assert_eq!(needs(query), expected, "{query}");
        }
    }

    #[test]
    fn the_columns_selected_are_the_needed_ones() {
        assert!(!Needs::default().columns().contains("attributes"));
        let all = Needs { attributes: true, resource_attributes: true, events: true, links: true }.columns();
        for column in ["trace_id", "service_name", "attributes", "resource_attributes", "events", "links"] {
            assert!(all.split(", ").any(|c| c.trim() == column), "{column} in {all}");
        }
    }
}
