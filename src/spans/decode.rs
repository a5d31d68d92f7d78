//! Arrow → OTLP: rebuilds `ResourceSpans` from span rows (a trace's rows from blocks or the buffer).
//!
//! Rows are grouped back by identical resource and scope, in order of first appearance, so a trace comes
//! back as OTLP equal to what was sent up to the order of resource and scope groups (CONTRACTS §3).

use std::collections::HashMap;

use arrow::array::{
    Array, AsArray, BinaryArray, FixedSizeBinaryArray, ListArray, RecordBatch, StringArray, StructArray, UInt32Array,
};
use arrow::datatypes::TimestampNanosecondType;
use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::{Event, Link};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use prost::Message;

use super::attributes::{AttributeColumnsReader, downcast};
use super::schema::{col, end_time_nanos};
use super::{SpanFormatError, kind_from_text, status_code_from_text};

/// Rebuilds OTLP from any number of span batches (each must carry every column of the span schema).
pub fn decode_resource_spans(batches: &[RecordBatch]) -> Result<Vec<ResourceSpans>, SpanFormatError> {
    let mut grouper = Grouper::default();
    for batch in batches {
        let columns = SpanColumns::new(batch)?;
        for row in 0..batch.num_rows() {
            let (resource, resource_schema_url) = columns.resource(row)?;
            let (scope, scope_schema_url) = columns.scope(row)?;
            let span = columns.span(row)?;
            grouper.push(resource, resource_schema_url, scope, scope_schema_url, span);
        }
    }
    Ok(grouper.resource_spans)
}

#[derive(Default)]
struct Grouper {
    resource_spans: Vec<ResourceSpans>,
    resource_index: HashMap<Vec<u8>, usize>,
    scope_index: HashMap<(usize, Vec<u8>), usize>,
}

impl Grouper {
    fn push(
        &mut self,
        resource: Option<Resource>,
        resource_schema_url: String,
        scope: Option<InstrumentationScope>,
        scope_schema_url: String,
        span: Span,
    ) {
        let resource_key = identity_key(&resource, &resource_schema_url);
        let resource_position = *self.resource_index.entry(resource_key).or_insert_with(|| {
            self.resource_spans.push(ResourceSpans {
                resource,
                scope_spans: Vec::new(),
                schema_url: resource_schema_url,
            });
            self.resource_spans.len() - 1
        });
        let group = &mut self.resource_spans[resource_position];
        let scope_key = (resource_position, identity_key(&scope, &scope_schema_url));
        let scope_position = *self.scope_index.entry(scope_key).or_insert_with(|| {
            group.scope_spans.push(ScopeSpans { scope, spans: Vec::new(), schema_url: scope_schema_url });
            group.scope_spans.len() - 1
        });
        group.scope_spans[scope_position].spans.push(span);
    }
}

/// A byte key that is equal exactly when two optional messages and their schema URLs are equal.
fn identity_key<M: Message>(message: &Option<M>, schema_url: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(64);
    match message {
        Some(message) => {
            key.push(1);
            message.encode_length_delimited(&mut key).expect("a Vec grows as needed");
        }
        None => key.push(0),
    }
    key.extend_from_slice(schema_url.as_bytes());
    key
}

/// Typed views of one batch's columns.
struct SpanColumns<'a> {
    trace_id: &'a FixedSizeBinaryArray,
    span_id: &'a FixedSizeBinaryArray,
    parent_span_id: &'a FixedSizeBinaryArray,
    trace_state: &'a StringArray,
    name: &'a StringArray,
    kind: &'a StringArray,
    flags: &'a UInt32Array,
    start_time: &'a arrow::array::PrimitiveArray<TimestampNanosecondType>,
    duration: &'a arrow::array::Int64Array,
    status_code: &'a StringArray,
    status_message: &'a StringArray,
    attributes: AttributeColumnsReader<'a>,
    events: &'a ListArray,
    event_time: &'a arrow::array::PrimitiveArray<TimestampNanosecondType>,
    event_name: &'a StringArray,
    event_attributes: AttributeColumnsReader<'a>,
    dropped_events: &'a UInt32Array,
    links: &'a ListArray,
    link_trace_id: &'a BinaryArray,
    link_span_id: &'a BinaryArray,
    link_trace_state: &'a StringArray,
    link_flags: &'a UInt32Array,
    link_attributes: AttributeColumnsReader<'a>,
    dropped_links: &'a UInt32Array,
    resource_attributes: AttributeColumnsReader<'a>,
    resource_entity_refs: &'a BinaryArray,
    resource_schema_url: &'a StringArray,
    scope_name: &'a StringArray,
    scope_version: &'a StringArray,
    scope_attributes: AttributeColumnsReader<'a>,
    scope_schema_url: &'a StringArray,
}

fn column<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a dyn Array, SpanFormatError> {
    batch.column_by_name(name).map(|c| c.as_ref()).ok_or_else(|| SpanFormatError::MissingColumn(name.to_owned()))
}

fn typed<'a, T: 'static>(batch: &'a RecordBatch, name: &str) -> Result<&'a T, SpanFormatError> {
    downcast::<T>(column(batch, name)?, name)
}

/// Where an attribute set's columns live: at the top of the batch, or inside a list element struct.
#[derive(Clone, Copy)]
enum Columns<'a> {
    Batch(&'a RecordBatch),
    Struct(&'a StructArray),
}

impl<'a> Columns<'a> {
    fn get(self, name: &str) -> Result<&'a dyn Array, SpanFormatError> {
        match self {
            Columns::Batch(batch) => column(batch, name),
            Columns::Struct(parent) => struct_child(parent, name),
        }
    }
}

fn attribute_reader<'a>(columns: Columns<'a>, prefix: &str) -> Result<AttributeColumnsReader<'a>, SpanFormatError> {
    AttributeColumnsReader::new(
        columns.get(&format!("{prefix}attributes"))?,
        columns.get(&format!("{prefix}attribute_types"))?,
        columns.get(&format!("{prefix}attribute_nested"))?,
        columns.get(&format!("{prefix}dropped_attributes_count"))?,
    )
}

fn struct_child<'a>(parent: &'a StructArray, name: &str) -> Result<&'a dyn Array, SpanFormatError> {
    parent.column_by_name(name).map(|c| c.as_ref()).ok_or_else(|| SpanFormatError::MissingColumn(name.to_owned()))
}

impl<'a> SpanColumns<'a> {
    fn new(batch: &'a RecordBatch) -> Result<Self, SpanFormatError> {
        let events = typed::<ListArray>(batch, col::EVENTS)?;
        let event_values = downcast::<StructArray>(events.values().as_ref(), "events element")?;
        let links = typed::<ListArray>(batch, col::LINKS)?;
        let link_values = downcast::<StructArray>(links.values().as_ref(), "links element")?;
        let top = Columns::Batch(batch);
        let (in_event, in_link) = (Columns::Struct(event_values), Columns::Struct(link_values));
        Ok(Self {
            trace_id: typed(batch, col::TRACE_ID)?,
            span_id: typed(batch, col::SPAN_ID)?,
            parent_span_id: typed(batch, col::PARENT_SPAN_ID)?,
            trace_state: typed(batch, col::TRACE_STATE)?,
            name: typed(batch, col::NAME)?,
            kind: typed(batch, col::KIND)?,
            flags: typed(batch, col::FLAGS)?,
            start_time: column(batch, col::START_TIME)?.as_primitive_opt().ok_or_else(|| wrong(col::START_TIME))?,
            duration: typed(batch, col::DURATION_NS)?,
            status_code: typed(batch, col::STATUS_CODE)?,
            status_message: typed(batch, col::STATUS_MESSAGE)?,
            attributes: attribute_reader(top, "")?,
            events,
            event_time: in_event.get(col::EVENT_TIME)?.as_primitive_opt().ok_or_else(|| wrong("events.time"))?,
            event_name: downcast(in_event.get(col::EVENT_NAME)?, "events.name")?,
            event_attributes: attribute_reader(in_event, "")?,
            dropped_events: typed(batch, col::DROPPED_EVENTS_COUNT)?,
            links,
            link_trace_id: downcast(in_link.get(col::TRACE_ID)?, "links.trace_id")?,
            link_span_id: downcast(in_link.get(col::SPAN_ID)?, "links.span_id")?,
            link_trace_state: downcast(in_link.get(col::TRACE_STATE)?, "links.trace_state")?,
            link_flags: downcast(in_link.get(col::FLAGS)?, "links.flags")?,
            link_attributes: attribute_reader(in_link, "")?,
            dropped_links: typed(batch, col::DROPPED_LINKS_COUNT)?,
            resource_attributes: attribute_reader(top, "resource_")?,
            resource_entity_refs: typed(batch, col::RESOURCE_ENTITY_REFS)?,
            resource_schema_url: typed(batch, col::RESOURCE_SCHEMA_URL)?,
            scope_name: typed(batch, col::SCOPE_NAME)?,
            scope_version: typed(batch, col::SCOPE_VERSION)?,
            scope_attributes: attribute_reader(top, "scope_")?,
            scope_schema_url: typed(batch, col::SCOPE_SCHEMA_URL)?,
        })
    }

    fn span(&self, row: usize) -> Result<Span, SpanFormatError> {
        let status = self.status_code.is_valid(row).then(|| Status {
            code: status_code_from_text(self.status_code.value(row)),
            message: self.status_message.value(row).to_owned(),
        });
        Ok(Span {
            trace_id: self.trace_id.value(row).to_vec(),
            span_id: self.span_id.value(row).to_vec(),
            trace_state: self.trace_state.value(row).to_owned(),
            parent_span_id: if self.parent_span_id.is_valid(row) {
                self.parent_span_id.value(row).to_vec()
            } else {
                Vec::new()
            },
            flags: self.flags.value(row),
            name: self.name.value(row).to_owned(),
            kind: kind_from_text(self.kind.value(row)),
            start_time_unix_nano: self.start_time.value(row) as u64,
            end_time_unix_nano: end_time_nanos(self.start_time.value(row), self.duration.value(row)) as u64,
            attributes: self.attributes.key_values(row)?,
            dropped_attributes_count: self.attributes.dropped(row),
            events: self.events(row)?,
            dropped_events_count: self.dropped_events.value(row),
            links: self.links(row)?,
            dropped_links_count: self.dropped_links.value(row),
            status,
        })
    }

    fn events(&self, row: usize) -> Result<Vec<Event>, SpanFormatError> {
        let offsets = self.events.value_offsets();
        (offsets[row] as usize..offsets[row + 1] as usize)
            .map(|i| {
                Ok(Event {
                    time_unix_nano: self.event_time.value(i) as u64,
                    name: self.event_name.value(i).to_owned(),
                    attributes: self.event_attributes.key_values(i)?,
                    dropped_attributes_count: self.event_attributes.dropped(i),
                })
            })
            .collect()
    }

    fn links(&self, row: usize) -> Result<Vec<Link>, SpanFormatError> {
        let offsets = self.links.value_offsets();
        (offsets[row] as usize..offsets[row + 1] as usize)
            .map(|i| {
                Ok(Link {
                    trace_id: self.link_trace_id.value(i).to_vec(),
                    span_id: self.link_span_id.value(i).to_vec(),
                    trace_state: self.link_trace_state.value(i).to_owned(),
                    attributes: self.link_attributes.key_values(i)?,
                    dropped_attributes_count: self.link_attributes.dropped(i),
                    flags: self.link_flags.value(i),
                })
            })
            .collect()
    }

    fn resource(&self, row: usize) -> Result<(Option<Resource>, String), SpanFormatError> {
        let schema_url = self.resource_schema_url.value(row).to_owned();
        if !self.resource_attributes.is_present(row) {
            return Ok((None, schema_url));
        }
        let entity_refs = if self.resource_entity_refs.is_valid(row) {
            Resource::decode(self.resource_entity_refs.value(row))
                .map_err(|e| SpanFormatError::Undecodable { what: "resource_entity_refs", source: e.into() })?
                .entity_refs
        } else {
            Vec::new()
        };
        let resource = Resource {
            attributes: self.resource_attributes.key_values(row)?,
            dropped_attributes_count: self.resource_attributes.dropped(row),
            entity_refs,
        };
        Ok((Some(resource), schema_url))
    }

    fn scope(&self, row: usize) -> Result<(Option<InstrumentationScope>, String), SpanFormatError> {
        let schema_url = self.scope_schema_url.value(row).to_owned();
        if !self.scope_name.is_valid(row) {
            return Ok((None, schema_url));
        }
        let scope = InstrumentationScope {
            name: self.scope_name.value(row).to_owned(),
            version: self.scope_version.value(row).to_owned(),
            attributes: self.scope_attributes.key_values(row)?,
            dropped_attributes_count: self.scope_attributes.dropped(row),
        };
        Ok((Some(scope), schema_url))
    }
}

fn wrong(name: &str) -> SpanFormatError {
    SpanFormatError::Corrupt(format!("column {name} is not a nanosecond timestamp"))
}
