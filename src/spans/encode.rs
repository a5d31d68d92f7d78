//! OTLP → Arrow: turns `ResourceSpans` into record batches of the span schema, one row per span.
//!
//! Invalid spans (bad trace, span or parent ID) are refused one by one with a reason, so the receiver can
//! report them in `partial_success` and keep the rest (CONTRACTS §2).

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BinaryBuilder, FixedSizeBinaryBuilder, Int64Array, ListArray, RecordBatch, StringBuilder, StructArray,
    TimestampNanosecondArray, UInt32Array,
};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{DataType, Field};
use opentelemetry_proto::tonic::common::v1::{InstrumentationScope, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, Span};
use prost::Message;

use super::attributes::{AttributeColumns, AttributeColumnsBuilder};
use super::schema::{event_fields, link_fields, span_schema};
use super::{SpanFormatError, SpanRejection, kind_to_text, status_code_to_text};
use crate::ids::{SpanId, TraceId};

/// Accumulates spans and finishes them into one `RecordBatch` of [`span_schema`].
#[derive(Default)]
pub struct SpanBatchBuilder {
    trace_id: IdColumn<16>,
    span_id: IdColumn<8>,
    parent_span_id: IdColumn<8>,
    trace_state: StringBuilder,
    name: StringBuilder,
    kind: StringBuilder,
    flags: Vec<u32>,
    start_time: Vec<i64>,
    /// End minus start, wrapping: the end is derived from these two (`schema::end_time_nanos`).
    duration: Vec<i64>,
    status_code: StringBuilder,
    status_message: StringBuilder,
    service_name: StringBuilder,
    attributes: AttributeColumnsBuilder,
    events: EventColumns,
    dropped_events: Vec<u32>,
    links: LinkColumns,
    dropped_links: Vec<u32>,
    resource_attributes: AttributeColumnsBuilder,
    resource_entity_refs: BinaryBuilder,
    resource_schema_url: StringBuilder,
    scope_name: StringBuilder,
    scope_version: StringBuilder,
    scope_attributes: AttributeColumnsBuilder,
    scope_schema_url: StringBuilder,
}

/// A fixed-width ID column built from raw bytes; a small wrapper because `FixedSizeBinaryBuilder` has no
/// `Default` and we build three of them.
struct IdColumn<const N: usize>(FixedSizeBinaryBuilder);

impl<const N: usize> Default for IdColumn<N> {
    fn default() -> Self {
        Self(FixedSizeBinaryBuilder::new(N as i32))
    }
}

#[derive(Default)]
struct EventColumns {
    offsets: Vec<i32>,
    time: Vec<i64>,
    name: StringBuilder,
    attributes: AttributeColumnsBuilder,
}

#[derive(Default)]
struct LinkColumns {
    offsets: Vec<i32>,
    trace_id: BinaryBuilder,
    span_id: BinaryBuilder,
    trace_state: StringBuilder,
    flags: Vec<u32>,
    attributes: AttributeColumnsBuilder,
}

/// A span's own scalar fields, borrowed from a decoded `Span` or from its protobuf bytes.
pub(super) struct SpanHead<'a> {
    pub trace_id: &'a [u8],
    pub span_id: &'a [u8],
    pub parent_span_id: &'a [u8],
    pub trace_state: &'a str,
    pub name: &'a str,
    pub kind: i32,
    pub flags: u32,
    pub start_time_unix_nano: u64,
    pub end_time_unix_nano: u64,
    /// Code and message; `None` when the span has no status message at all.
    pub status: Option<(i32, &'a str)>,
}

/// Checks a span's IDs before anything about it is buffered.
pub fn validate_span(span: &Span) -> Result<(TraceId, SpanId), SpanRejection> {
    validate_ids(&span.trace_id, &span.span_id, &span.parent_span_id)
}

/// [`validate_span`] on the raw ID bytes.
pub(super) fn validate_ids(
    trace_id: &[u8],
    span_id: &[u8],
    parent_span_id: &[u8],
) -> Result<(TraceId, SpanId), SpanRejection> {
    let trace_id = TraceId::from_slice(trace_id).map_err(SpanRejection::TraceId)?;
    let span_id = SpanId::from_slice(span_id).map_err(SpanRejection::SpanId)?;
    if !parent_span_id.is_empty() && parent_span_id.len() != 8 {
        return Err(SpanRejection::ParentSpanIdLength(parent_span_id.len()));
    }
    Ok((trace_id, span_id))
}

impl SpanBatchBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of spans appended so far.
    pub fn len(&self) -> usize {
        self.flags.len()
    }

    /// True before the first span.
    pub fn is_empty(&self) -> bool {
        self.flags.is_empty()
    }

    /// Appends every valid span of a `ResourceSpans`, returning the refused ones with their reasons.
    pub fn append_resource_spans(&mut self, resource_spans: &ResourceSpans) -> Vec<SpanRejection> {
        let mut rejected = Vec::new();
        let resource = resource_spans.resource.as_ref();
        let service_name = resource.and_then(|r| service_name_of(&r.attributes));
        for scope_spans in &resource_spans.scope_spans {
            for span in &scope_spans.spans {
                match validate_span(span) {
                    Ok(_) => {
                        self.append_span(span);
                        self.append_resource(resource, service_name, &resource_spans.schema_url);
                        self.append_scope(scope_spans.scope.as_ref(), &scope_spans.schema_url);
                    }
                    Err(rejection) => rejected.push(rejection),
                }
            }
        }
        rejected
    }

    fn append_span(&mut self, span: &Span) {
        self.begin_span(&SpanHead {
            trace_id: &span.trace_id,
            span_id: &span.span_id,
            parent_span_id: &span.parent_span_id,
            trace_state: &span.trace_state,
            name: &span.name,
            kind: span.kind,
            flags: span.flags,
            start_time_unix_nano: span.start_time_unix_nano,
            end_time_unix_nano: span.end_time_unix_nano,
            status: span.status.as_ref().map(|status| (status.code, status.message.as_str())),
        });
        self.attributes.append(&span.attributes, span.dropped_attributes_count);
        for event in &span.events {
            self.push_event(event.time_unix_nano, &event.name)
                .append(&event.attributes, event.dropped_attributes_count);
        }
        self.end_events(span.dropped_events_count);
        for link in &span.links {
            self.push_link(&link.trace_id, &link.span_id, &link.trace_state, link.flags)
                .append(&link.attributes, link.dropped_attributes_count);
        }
        self.end_links(span.dropped_links_count);
    }

    /// Appends a span's own scalar columns. The caller then appends, in this order: one row of
    /// [`span_attributes`](Self::span_attributes), its events and [`end_events`](Self::end_events), its
    /// links and [`end_links`](Self::end_links), and its resource and scope. IDs must be validated.
    pub(super) fn begin_span(&mut self, head: &SpanHead<'_>) {
        self.trace_id.0.append_value(head.trace_id).expect("validated: 16 bytes");
        self.span_id.0.append_value(head.span_id).expect("validated: 8 bytes");
        if head.parent_span_id.is_empty() {
            self.parent_span_id.0.append_null();
        } else {
            self.parent_span_id.0.append_value(head.parent_span_id).expect("validated: 8 bytes");
        }
        self.trace_state.append_value(head.trace_state);
        self.name.append_value(head.name);
        self.kind.append_value(kind_to_text(head.kind));
        self.flags.push(head.flags);
        // OTLP times are u64; the bit pattern is kept (`as` is a bijection) so nothing is lost past 2262.
        self.start_time.push(head.start_time_unix_nano as i64);
        self.duration.push((head.end_time_unix_nano as i64).wrapping_sub(head.start_time_unix_nano as i64));
        match head.status {
            Some((code, message)) => {
                self.status_code.append_value(status_code_to_text(code));
                self.status_message.append_value(message);
            }
            None => {
                self.status_code.append_null();
                self.status_message.append_null();
            }
        }
    }

    /// The span attribute column, for one row per span.
    pub(super) fn span_attributes(&mut self) -> &mut AttributeColumnsBuilder {
        &mut self.attributes
    }

    /// Adds an event to the current span; append exactly one attribute row to the returned builder.
    pub(super) fn push_event(&mut self, time_unix_nano: u64, name: &str) -> &mut AttributeColumnsBuilder {
        self.events.time.push(time_unix_nano as i64);
        self.events.name.append_value(name);
        &mut self.events.attributes
    }

    /// Closes the current span's event list.
    pub(super) fn end_events(&mut self, dropped_events_count: u32) {
        push_offset(&mut self.events.offsets, self.events.time.len());
        self.dropped_events.push(dropped_events_count);
    }

    /// Adds a link to the current span; append exactly one attribute row to the returned builder.
    pub(super) fn push_link(
        &mut self,
        trace_id: &[u8],
        span_id: &[u8],
        trace_state: &str,
        flags: u32,
    ) -> &mut AttributeColumnsBuilder {
        self.links.trace_id.append_value(trace_id);
        self.links.span_id.append_value(span_id);
        self.links.trace_state.append_value(trace_state);
        self.links.flags.push(flags);
        &mut self.links.attributes
    }

    /// Closes the current span's link list.
    pub(super) fn end_links(&mut self, dropped_links_count: u32) {
        push_offset(&mut self.links.offsets, self.links.flags.len());
        self.dropped_links.push(dropped_links_count);
    }

    pub(super) fn append_resource(
        &mut self,
        resource: Option<&Resource>,
        service_name: Option<&str>,
        schema_url: &str,
    ) {
        match resource {
            Some(resource) => {
                self.resource_attributes.append(&resource.attributes, resource.dropped_attributes_count);
                if resource.entity_refs.is_empty() {
                    self.resource_entity_refs.append_null();
                } else {
                    let refs_only = Resource { entity_refs: resource.entity_refs.clone(), ..Default::default() };
                    self.resource_entity_refs.append_value(refs_only.encode_to_vec());
                }
            }
            None => {
                self.resource_attributes.append_absent();
                self.resource_entity_refs.append_null();
            }
        }
        self.service_name.append_option(service_name);
        self.resource_schema_url.append_value(schema_url);
    }

    pub(super) fn append_scope(&mut self, scope: Option<&InstrumentationScope>, schema_url: &str) {
        match scope {
            Some(scope) => {
                self.scope_name.append_value(&scope.name);
                self.scope_version.append_value(&scope.version);
                self.scope_attributes.append(&scope.attributes, scope.dropped_attributes_count);
            }
            None => {
                self.scope_name.append_null();
                self.scope_version.append_value("");
                self.scope_attributes.append(&[], 0);
            }
        }
        self.scope_schema_url.append_value(schema_url);
    }

    /// Builds the batch and empties the builder.
    pub fn finish(&mut self) -> Result<RecordBatch, SpanFormatError> {
        let start_time = std::mem::take(&mut self.start_time);
        let duration = Int64Array::from(std::mem::take(&mut self.duration));
        let AttributeColumns { map, types, nested, dropped } = self.attributes.finish();
        let resource = self.resource_attributes.finish();
        let scope = self.scope_attributes.finish();
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.trace_id.0.finish()),
            Arc::new(self.span_id.0.finish()),
            Arc::new(self.parent_span_id.0.finish()),
            Arc::new(self.trace_state.finish()),
            Arc::new(self.name.finish()),
            Arc::new(self.kind.finish()),
            Arc::new(UInt32Array::from(std::mem::take(&mut self.flags))),
            timestamps(start_time),
            Arc::new(duration),
            Arc::new(self.status_code.finish()),
            Arc::new(self.status_message.finish()),
            Arc::new(self.service_name.finish()),
            map,
            types,
            nested,
            dropped,
            self.events.finish(),
            Arc::new(UInt32Array::from(std::mem::take(&mut self.dropped_events))),
            self.links.finish(),
            Arc::new(UInt32Array::from(std::mem::take(&mut self.dropped_links))),
            resource.map,
            resource.types,
            resource.nested,
            resource.dropped,
            Arc::new(self.resource_entity_refs.finish()),
            Arc::new(self.resource_schema_url.finish()),
            Arc::new(self.scope_name.finish()),
            Arc::new(self.scope_version.finish()),
            scope.map,
            scope.types,
            scope.nested,
            scope.dropped,
            Arc::new(self.scope_schema_url.finish()),
        ];
        Ok(RecordBatch::try_new(span_schema(), columns)?)
    }
}

impl EventColumns {
    fn finish(&mut self) -> ArrayRef {
        let attributes = self.attributes.finish();
        let children: Vec<ArrayRef> = vec![
            timestamps(std::mem::take(&mut self.time)),
            Arc::new(self.name.finish()),
            attributes.map,
            attributes.types,
            attributes.nested,
            attributes.dropped,
        ];
        list_of_structs(event_fields(), children, &mut self.offsets)
    }
}

impl LinkColumns {
    fn finish(&mut self) -> ArrayRef {
        let attributes = self.attributes.finish();
        let children: Vec<ArrayRef> = vec![
            Arc::new(self.trace_id.finish()),
            Arc::new(self.span_id.finish()),
            Arc::new(self.trace_state.finish()),
            Arc::new(UInt32Array::from(std::mem::take(&mut self.flags))),
            attributes.map,
            attributes.types,
            attributes.nested,
            attributes.dropped,
        ];
        list_of_structs(link_fields(), children, &mut self.offsets)
    }
}

fn push_offset(offsets: &mut Vec<i32>, total: usize) {
    if offsets.is_empty() {
        offsets.push(0);
    }
    offsets.push(i32::try_from(total).unwrap_or(i32::MAX));
}

fn list_of_structs(fields: arrow::datatypes::Fields, children: Vec<ArrayRef>, offsets: &mut Vec<i32>) -> ArrayRef {
    let mut offsets = std::mem::take(offsets);
    if offsets.is_empty() {
        offsets.push(0);
    }
    let values = StructArray::new(fields.clone(), children, None);
    let element = Arc::new(Field::new("element", DataType::Struct(fields), false));
    Arc::new(ListArray::new(element, OffsetBuffer::new(offsets.into()), Arc::new(values), None))
}

fn timestamps(values: Vec<i64>) -> ArrayRef {
    Arc::new(TimestampNanosecondArray::from(values).with_timezone("UTC"))
}

/// The resource's `service.name`, the one attribute every trace UI groups by.
pub fn service_name_of(attributes: &[KeyValue]) -> Option<&str> {
    attributes.iter().find(|kv| kv.key == "service.name").and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
        Value::StringValue(name) => Some(name.as_str()),
        _ => None,
    })
}

/// Encodes whole OTLP payloads into one batch; returns the batch and every refused span.
pub fn encode_resource_spans(
    resource_spans: &[ResourceSpans],
) -> Result<(RecordBatch, Vec<SpanRejection>), SpanFormatError> {
    let mut builder = SpanBatchBuilder::new();
    let rejected = resource_spans.iter().flat_map(|rs| builder.append_resource_spans(rs)).collect();
    Ok((builder.finish()?, rejected))
}
