//! OTLP protobuf → Arrow without the intermediate prost structs.
//!
//! Decoding into prost's `Span`/`KeyValue`/`String` tree and then copying it into Arrow builders was the
//! largest share of ingest CPU after block encoding (BENCHMARKS.md, ingest). This decoder walks the wire
//! format once and appends straight into the [`SpanBatchBuilder`]. It handles what real exporters send;
//! anything else — malformed bytes, a singular message field repeated (which prost merges), groups — is
//! left to prost by [`protobuf_to_batch`], so both paths always give the same rows.

use arrow::array::RecordBatch;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, any_value::Value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;

use super::attributes::{AttributeColumnsBuilder, ValueRef};
use super::encode::{SpanHead, encode_resource_spans, service_name_of, validate_ids};
use super::{SpanBatchBuilder, SpanFormatError, SpanRejection};

/// The bytes are not for the fast path; prost decides (and reports any error).
#[derive(Debug)]
pub struct Unsupported;

/// Why a protobuf body could not become span rows.
#[derive(Debug, thiserror::Error)]
pub enum ProtobufError {
    #[error("{0}")]
    Decode(#[from] prost::DecodeError),
    #[error(transparent)]
    Format(#[from] SpanFormatError),
}

/// Span rows and refused spans of an `ExportTraceServiceRequest` in protobuf, by the direct decoder
/// when it can, by prost otherwise.
pub fn protobuf_to_batch(bytes: &[u8]) -> Result<(RecordBatch, Vec<SpanRejection>), ProtobufError> {
    let mut builder = SpanBatchBuilder::new();
    if let Ok(rejected) = decode_request(bytes, &mut builder) {
        return Ok((builder.finish()?, rejected));
    }
    let request = ExportTraceServiceRequest::decode(bytes)?;
    Ok(encode_resource_spans(&request.resource_spans)?)
}

/// Appends every valid span of the request to `builder`; on `Unsupported` the builder is left half
/// written and must be discarded.
pub fn decode_request(bytes: &[u8], builder: &mut SpanBatchBuilder) -> Result<Vec<SpanRejection>, Unsupported> {
    let mut rejected = Vec::new();
    let mut fields = Fields(bytes);
    while let Some((number, field)) = fields.next()? {
        if number == 1 {
            decode_resource_spans(field.bytes()?, builder, &mut rejected)?;
        }
    }
    Ok(rejected)
}

/// A protobuf field value by wire type.
#[derive(Clone, Copy)]
enum Field<'a> {
    Varint(u64),
    Fixed64(u64),
    Fixed32(u32),
    Bytes(&'a [u8]),
}

impl<'a> Field<'a> {
    fn bytes(self) -> Result<&'a [u8], Unsupported> {
        match self {
            Field::Bytes(bytes) => Ok(bytes),
            _ => Err(Unsupported),
        }
    }

    fn text(self) -> Result<&'a str, Unsupported> {
        std::str::from_utf8(self.bytes()?).map_err(|_| Unsupported)
    }

    fn varint(self) -> Result<u64, Unsupported> {
        match self {
            Field::Varint(value) => Ok(value),
            _ => Err(Unsupported),
        }
    }

    fn fixed64(self) -> Result<u64, Unsupported> {
        match self {
            Field::Fixed64(value) => Ok(value),
            _ => Err(Unsupported),
        }
    }

    fn fixed32(self) -> Result<u32, Unsupported> {
        match self {
            Field::Fixed32(value) => Ok(value),
            _ => Err(Unsupported),
        }
    }
}

/// The fields of one message, in wire order.
struct Fields<'a>(&'a [u8]);

impl<'a> Fields<'a> {
    fn next(&mut self) -> Result<Option<(u32, Field<'a>)>, Unsupported> {
        if self.0.is_empty() {
            return Ok(None);
        }
        // As prost: a key above u32::MAX is invalid, so field numbers end at 2^29 - 1 (found by fuzzing).
        let key = u32::try_from(self.varint()?).map_err(|_| Unsupported)?;
        let number = key >> 3;
        if number == 0 {
            return Err(Unsupported);
        }
        let field = match key & 7 {
            0 => Field::Varint(self.varint()?),
            1 => Field::Fixed64(u64::from_le_bytes(self.take(8)?.try_into().map_err(|_| Unsupported)?)),
            2 => {
                let len = usize::try_from(self.varint()?).map_err(|_| Unsupported)?;
                Field::Bytes(self.take(len)?)
            }
            5 => Field::Fixed32(u32::from_le_bytes(self.take(4)?.try_into().map_err(|_| Unsupported)?)),
            _ => return Err(Unsupported),
        };
        Ok(Some((number, field)))
    }

    fn varint(&mut self) -> Result<u64, Unsupported> {
        let mut value = 0u64;
        for (index, byte) in self.0.iter().take(10).enumerate() {
            // The tenth byte holds the 64th bit only; more would overflow, which prost refuses.
            if index == 9 && *byte > 1 {
                return Err(Unsupported);
            }
            value |= u64::from(byte & 0x7f) << (7 * index);
            if byte & 0x80 == 0 {
                self.0 = &self.0[index + 1..];
                return Ok(value);
            }
        }
        Err(Unsupported)
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], Unsupported> {
        if self.0.len() < len {
            return Err(Unsupported);
        }
        let (taken, rest) = self.0.split_at(len);
        self.0 = rest;
        Ok(taken)
    }
}

/// A singular message field seen once; a second occurrence would be merged by prost, so it is left to it.
fn once<'a>(slot: &mut Option<&'a [u8]>, field: Field<'a>) -> Result<(), Unsupported> {
    if slot.replace(field.bytes()?).is_some() {
        return Err(Unsupported);
    }
    Ok(())
}

/// `ResourceSpans` and `ScopeSpans` share one layout: field 1 the resource or scope (a message),
/// field 2 the repeated children, field 3 the schema URL. Returns the first and the last, after checking
/// that every child is length-delimited.
fn group_header(bytes: &[u8]) -> Result<(Option<&[u8]>, &str), Unsupported> {
    let (mut header, mut schema_url) = (None, "");
    let mut fields = Fields(bytes);
    while let Some((number, field)) = fields.next()? {
        match number {
            1 => once(&mut header, field)?,
            2 => {
                field.bytes()?;
            }
            3 => schema_url = field.text()?,
            _ => {}
        }
    }
    Ok((header, schema_url))
}

fn decode_resource_spans(
    bytes: &[u8],
    builder: &mut SpanBatchBuilder,
    rejected: &mut Vec<SpanRejection>,
) -> Result<(), Unsupported> {
    let (resource, schema_url) = group_header(bytes)?;
    let resource = resource.map(Resource::decode).transpose().map_err(|_| Unsupported)?;
    let service_name = resource.as_ref().and_then(|r| service_name_of(&r.attributes));
    let group = Group { resource: resource.as_ref(), service_name, schema_url };
    let mut fields = Fields(bytes);
    while let Some((number, field)) = fields.next()? {
        if number == 2 {
            decode_scope_spans(field.bytes()?, &group, builder, rejected)?;
        }
    }
    Ok(())
}

/// The resource every span of a `ResourceSpans` shares.
struct Group<'a> {
    resource: Option<&'a Resource>,
    service_name: Option<&'a str>,
    schema_url: &'a str,
}

fn decode_scope_spans(
    bytes: &[u8],
    group: &Group<'_>,
    builder: &mut SpanBatchBuilder,
    rejected: &mut Vec<SpanRejection>,
) -> Result<(), Unsupported> {
    let (scope, schema_url) = group_header(bytes)?;
    let scope = scope.map(InstrumentationScope::decode).transpose().map_err(|_| Unsupported)?;
    let mut fields = Fields(bytes);
    while let Some((number, field)) = fields.next()? {
        if number != 2 {
            continue;
        }
        match decode_span(field.bytes()?, builder)? {
            Some(rejection) => rejected.push(rejection),
            None => {
                builder.append_resource(group.resource, group.service_name, group.schema_url);
                builder.append_scope(scope.as_ref(), schema_url);
            }
        }
    }
    Ok(())
}

/// Appends one span (all but its resource and scope); a span with invalid IDs is refused, not appended.
fn decode_span(bytes: &[u8], builder: &mut SpanBatchBuilder) -> Result<Option<SpanRejection>, Unsupported> {
    let mut head = SpanHead {
        trace_id: &[],
        span_id: &[],
        parent_span_id: &[],
        trace_state: "",
        name: "",
        kind: 0,
        flags: 0,
        start_time_unix_nano: 0,
        end_time_unix_nano: 0,
        status: None,
    };
    let (mut status, mut dropped_attributes, mut dropped_events, mut dropped_links) = (None, 0, 0, 0);
    let mut fields = Fields(bytes);
    while let Some((number, field)) = fields.next()? {
        match number {
            1 => head.trace_id = field.bytes()?,
            2 => head.span_id = field.bytes()?,
            3 => head.trace_state = field.text()?,
            4 => head.parent_span_id = field.bytes()?,
            5 => head.name = field.text()?,
            6 => head.kind = field.varint()? as i32,
            7 => head.start_time_unix_nano = field.fixed64()?,
            8 => head.end_time_unix_nano = field.fixed64()?,
            10 => dropped_attributes = field.varint()? as u32,
            12 => dropped_events = field.varint()? as u32,
            14 => dropped_links = field.varint()? as u32,
            15 => once(&mut status, field)?,
            16 => head.flags = field.fixed32()?,
            9 | 11 | 13 => {
                field.bytes()?;
            }
            _ => {}
        }
    }
    if let Err(rejection) = validate_ids(head.trace_id, head.span_id, head.parent_span_id) {
        // A refused span is not read further, but it must still be a well-formed `Span`: prost refuses the
        // whole request over malformed bytes anywhere, and both decoders must agree (found by fuzzing).
        Span::decode(bytes).map_err(|_| Unsupported)?;
        return Ok(Some(rejection));
    }
    head.status = status.map(decode_status).transpose()?;
    builder.begin_span(&head);
    append_attributes(bytes, 9, builder.span_attributes(), dropped_attributes)?;
    let mut fields = Fields(bytes);
    while let Some((number, field)) = fields.next()? {
        if number == 11 {
            decode_event(field.bytes()?, builder)?;
        }
    }
    builder.end_events(dropped_events);
    let mut fields = Fields(bytes);
    while let Some((number, field)) = fields.next()? {
        if number == 13 {
            decode_link(field.bytes()?, builder)?;
        }
    }
    builder.end_links(dropped_links);
    Ok(None)
}

fn decode_status(bytes: &[u8]) -> Result<(i32, &str), Unsupported> {
    let (mut code, mut message) = (0, "");
    let mut fields = Fields(bytes);
    while let Some((number, field)) = fields.next()? {
        match number {
            2 => message = field.text()?,
            3 => code = field.varint()? as i32,
            _ => {}
        }
    }
    Ok((code, message))
}

fn decode_event(bytes: &[u8], builder: &mut SpanBatchBuilder) -> Result<(), Unsupported> {
    let (mut time, mut name, mut dropped) = (0, "", 0);
    let mut fields = Fields(bytes);
    while let Some((number, field)) = fields.next()? {
        match number {
            1 => time = field.fixed64()?,
            2 => name = field.text()?,
            3 => {
                field.bytes()?;
            }
            4 => dropped = field.varint()? as u32,
            _ => {}
        }
    }
    append_attributes(bytes, 3, builder.push_event(time, name), dropped)
}

fn decode_link(bytes: &[u8], builder: &mut SpanBatchBuilder) -> Result<(), Unsupported> {
    let (mut trace_id, mut span_id, mut trace_state, mut flags, mut dropped): (&[u8], &[u8], &str, u32, u32) =
        (&[], &[], "", 0, 0);
    let mut fields = Fields(bytes);
    while let Some((number, field)) = fields.next()? {
        match number {
            1 => trace_id = field.bytes()?,
            2 => span_id = field.bytes()?,
            3 => trace_state = field.text()?,
            4 => {
                field.bytes()?;
            }
            5 => dropped = field.varint()? as u32,
            6 => flags = field.fixed32()?,
            _ => {}
        }
    }
    append_attributes(bytes, 4, builder.push_link(trace_id, span_id, trace_state, flags), dropped)
}

/// Appends one attribute row from the `KeyValue`s in field `field_number` of `message`.
fn append_attributes(
    message: &[u8],
    field_number: u32,
    attributes: &mut AttributeColumnsBuilder,
    dropped: u32,
) -> Result<(), Unsupported> {
    attributes.begin_row();
    let mut fields = Fields(message);
    while let Some((number, field)) = fields.next()? {
        if number == field_number {
            let (key, value) = decode_key_value(field.bytes()?)?;
            attributes.push(key, value);
        }
    }
    attributes.end_row(dropped);
    Ok(())
}

fn decode_key_value(bytes: &[u8]) -> Result<(&str, ValueRef<'_>), Unsupported> {
    let (mut key, mut value) = ("", None);
    let mut fields = Fields(bytes);
    while let Some((number, field)) = fields.next()? {
        match number {
            1 => key = field.text()?,
            2 => once(&mut value, field)?,
            // `key_strindex` (profiles only): unused for spans, but prost refuses it in another wire type.
            3 => {
                field.varint()?;
            }
            _ => {}
        }
    }
    Ok((key, value.map_or(Ok(ValueRef::Absent), decode_any_value)?))
}

fn decode_any_value(bytes: &[u8]) -> Result<ValueRef<'_>, Unsupported> {
    let mut value = ValueRef::Empty;
    let mut fields = Fields(bytes);
    while let Some((number, field)) = fields.next()? {
        value = match number {
            1 => ValueRef::Str(field.text()?),
            2 => ValueRef::Bool(field.varint()? != 0),
            3 => ValueRef::Int(field.varint()? as i64),
            4 => ValueRef::Double(f64::from_bits(field.fixed64()?)),
            // Arrays and maps are kept in protobuf form anyway: let prost decode the whole value.
            5 | 6 => {
                let any = AnyValue::decode(bytes).map_err(|_| Unsupported)?;
                return match any.value {
                    Some(Value::ArrayValue(_)) | Some(Value::KvlistValue(_)) => Ok(ValueRef::Nested(any)),
                    // A later scalar overrode the array: rare enough to leave to prost entirely.
                    _ => Err(Unsupported),
                };
            }
            7 => ValueRef::Bytes(field.bytes()?),
            8 => {
                field.varint()?;
                ValueRef::Empty
            }
            _ => continue,
        };
    }
    Ok(value)
}

#[cfg(test)]
mod tests;
