//! Lossless storage of one OTLP attribute set in three columns.
//!
//! * `attributes`: `map<string,string>`, what SQL, DuckDB and pyarrow users read. Strings are stored as
//!   they are; other values are rendered as text (ints and bools as usual, doubles in shortest round-trip
//!   form, bytes as base64, arrays and maps as JSON), empty values as NULL.
//! * `attribute_types`: NULL when every value is a string (the common case, costing one definition bit);
//!   otherwise one tag byte per entry ([`tag`]) so the text can be parsed back into its original type.
//! * `attribute_nested`: NULL unless an entry is an array or a map; then the protobuf encoding of those
//!   values, in entry order, because their JSON rendering cannot keep every OTLP distinction
//!   (int vs double inside arrays, bytes vs string, duplicate keys).
//!
//! Owns nothing but this encoding; used by the span encoder and decoder only.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayBuilder, ArrayRef, BinaryArray, BinaryBuilder, MapArray, StringArray, StringBuilder, StructArray,
};
use arrow::buffer::{NullBuffer, OffsetBuffer};
use base64::Engine;
use opentelemetry_proto::tonic::common::v1::{AnyValue, ArrayValue, KeyValue, any_value::Value};
use prost::Message;

use super::SpanFormatError;
use super::schema::attribute_map_entries_field;

/// Type tags stored in `attribute_types`, one byte per map entry.
pub mod tag {
    pub const STRING: u8 = b's';
    pub const BOOL: u8 = b'b';
    pub const INT: u8 = b'i';
    pub const DOUBLE: u8 = b'd';
    pub const BYTES: u8 = b'y';
    pub const ARRAY: u8 = b'a';
    pub const MAP: u8 = b'm';
    /// An `AnyValue` with no value set (also used for profiling-only string-table references).
    pub const EMPTY: u8 = b'e';
    /// A `KeyValue` whose `value` field is absent altogether.
    pub const ABSENT: u8 = b'n';
}

/// Accumulates attribute sets row by row and finishes them into the three columns plus the count column.
#[derive(Default)]
pub struct AttributeColumnsBuilder {
    keys: StringBuilder,
    values: StringBuilder,
    offsets: Vec<i32>,
    map_validity: Vec<bool>,
    types: BinaryBuilder,
    nested: BinaryBuilder,
    dropped: Vec<u32>,
    scratch_tags: Vec<u8>,
    scratch_nested: Vec<AnyValue>,
}

/// The finished columns of one attribute set, in schema order.
pub struct AttributeColumns {
    pub map: ArrayRef,
    pub types: ArrayRef,
    pub nested: ArrayRef,
    pub dropped: ArrayRef,
}

/// One attribute value as either decoder sees it: borrowed from a prost `AnyValue` or straight from the
/// protobuf bytes. Arrays and maps arrive decoded (they are rare and need the protobuf form anyway).
pub enum ValueRef<'a> {
    /// The `KeyValue` has no `value` at all.
    Absent,
    /// An `AnyValue` with nothing set (or a profiling string-table reference).
    Empty,
    Str(&'a str),
    Bool(bool),
    Int(i64),
    Double(f64),
    Bytes(&'a [u8]),
    Nested(AnyValue),
}

impl<'a> ValueRef<'a> {
    /// The value of a decoded `KeyValue`.
    pub fn of(value: Option<&'a AnyValue>) -> Self {
        let Some(any_value) = value else { return ValueRef::Absent };
        match &any_value.value {
            Some(Value::StringValue(text)) => ValueRef::Str(text),
            Some(Value::BoolValue(flag)) => ValueRef::Bool(*flag),
            Some(Value::IntValue(number)) => ValueRef::Int(*number),
            Some(Value::DoubleValue(number)) => ValueRef::Double(*number),
            Some(Value::BytesValue(bytes)) => ValueRef::Bytes(bytes),
            Some(Value::ArrayValue(_)) | Some(Value::KvlistValue(_)) => ValueRef::Nested(any_value.clone()),
            Some(Value::StringValueStrindex(_)) | None => ValueRef::Empty,
        }
    }
}

impl AttributeColumnsBuilder {
    /// Appends one row's attributes.
    pub fn append(&mut self, attributes: &[KeyValue], dropped_count: u32) {
        self.begin_row();
        for key_value in attributes {
            self.push(&key_value.key, ValueRef::of(key_value.value.as_ref()));
        }
        self.end_row(dropped_count);
    }

    /// Starts a row; [`push`](Self::push) its entries, then [`end_row`](Self::end_row).
    pub fn begin_row(&mut self) {
        if self.offsets.is_empty() {
            self.offsets.push(0);
        }
        self.scratch_tags.clear();
        self.scratch_nested.clear();
    }

    /// Adds one entry to the row begun last.
    pub fn push(&mut self, key: &str, value: ValueRef<'_>) {
        self.keys.append_value(key);
        let tag = self.append_value(value);
        self.scratch_tags.push(tag);
    }

    /// Finishes the row begun last.
    pub fn end_row(&mut self, dropped_count: u32) {
        let entries = i32::try_from(self.keys.len()).unwrap_or(i32::MAX);
        self.offsets.push(entries);
        self.map_validity.push(true);
        if self.scratch_tags.iter().all(|tag| *tag == tag::STRING) {
            self.types.append_null();
        } else {
            self.types.append_value(&self.scratch_tags);
        }
        if self.scratch_nested.is_empty() {
            self.nested.append_null();
        } else {
            let nested = ArrayValue { values: std::mem::take(&mut self.scratch_nested) };
            self.nested.append_value(nested.encode_to_vec());
        }
        self.dropped.push(dropped_count);
    }

    /// Appends a row with no attribute set at all (a span whose resource or scope was absent).
    pub fn append_absent(&mut self) {
        if self.offsets.is_empty() {
            self.offsets.push(0);
        }
        let entries = i32::try_from(self.keys.len()).unwrap_or(i32::MAX);
        self.offsets.push(entries);
        self.map_validity.push(false);
        self.types.append_null();
        self.nested.append_null();
        self.dropped.push(0);
    }

    fn append_value(&mut self, value: ValueRef<'_>) -> u8 {
        use std::fmt::Write;
        match value {
            ValueRef::Absent => {
                self.values.append_null();
                tag::ABSENT
            }
            ValueRef::Empty => {
                self.values.append_null();
                tag::EMPTY
            }
            ValueRef::Str(text) => {
                self.values.append_value(text);
                tag::STRING
            }
            ValueRef::Bool(flag) => {
                self.values.append_value(if flag { "true" } else { "false" });
                tag::BOOL
            }
            ValueRef::Int(number) => {
                // Written straight into the column: no temporary string per value.
                let _ = write!(self.values, "{number}");
                self.values.append_value("");
                tag::INT
            }
            ValueRef::Double(number) => {
                let _ = write!(self.values, "{number:?}");
                self.values.append_value("");
                tag::DOUBLE
            }
            ValueRef::Bytes(bytes) => {
                self.values.append_value(base64::engine::general_purpose::STANDARD.encode(bytes));
                tag::BYTES
            }
            ValueRef::Nested(any_value) => {
                self.values.append_value(any_value_to_json(&any_value).to_string());
                let is_array = matches!(any_value.value, Some(Value::ArrayValue(_)));
                self.scratch_nested.push(any_value);
                if is_array { tag::ARRAY } else { tag::MAP }
            }
        }
    }

    /// Number of rows appended so far.
    pub fn len(&self) -> usize {
        self.dropped.len()
    }

    /// True before the first row.
    pub fn is_empty(&self) -> bool {
        self.dropped.is_empty()
    }

    /// Builds the columns; the builder is left empty and reusable.
    pub fn finish(&mut self) -> AttributeColumns {
        let mut offsets = std::mem::take(&mut self.offsets);
        if offsets.is_empty() {
            offsets.push(0);
        }
        let validity = std::mem::take(&mut self.map_validity);
        let nulls = if validity.iter().all(|valid| *valid) { None } else { Some(NullBuffer::from(validity)) };
        let entries_field = attribute_map_entries_field();
        let arrow::datatypes::DataType::Struct(entry_fields) = entries_field.data_type() else {
            unreachable!("attribute map entries are a struct by construction")
        };
        let keys: ArrayRef = Arc::new(self.keys.finish());
        let values: ArrayRef = Arc::new(self.values.finish());
        let entries = StructArray::new(entry_fields.clone(), vec![keys, values], None);
        let map = MapArray::new(entries_field, OffsetBuffer::new(offsets.into()), entries, nulls, false);
        AttributeColumns {
            map: Arc::new(map),
            types: Arc::new(self.types.finish()),
            nested: Arc::new(self.nested.finish()),
            dropped: Arc::new(arrow::array::UInt32Array::from(std::mem::take(&mut self.dropped))),
        }
    }
}

/// Renders an attribute value as plain JSON for the human-facing map column.
pub fn any_value_to_json(any_value: &AnyValue) -> serde_json::Value {
    use serde_json::Value as Json;
    match &any_value.value {
        Some(Value::StringValue(text)) => Json::String(text.clone()),
        Some(Value::BoolValue(flag)) => Json::Bool(*flag),
        Some(Value::IntValue(number)) => Json::from(*number),
        Some(Value::DoubleValue(number)) => {
            serde_json::Number::from_f64(*number).map_or_else(|| Json::String(format!("{number:?}")), Json::Number)
        }
        Some(Value::BytesValue(bytes)) => Json::String(base64::engine::general_purpose::STANDARD.encode(bytes)),
        Some(Value::ArrayValue(array)) => Json::Array(array.values.iter().map(any_value_to_json).collect()),
        Some(Value::KvlistValue(list)) => Json::Object(
            list.values
                .iter()
                .map(|kv| (kv.key.clone(), kv.value.as_ref().map_or(Json::Null, any_value_to_json)))
                .collect(),
        ),
        Some(Value::StringValueStrindex(_)) | None => Json::Null,
    }
}

/// Read access to the attribute columns of a batch, one row at a time.
pub struct AttributeColumnsReader<'a> {
    map: &'a MapArray,
    keys: &'a StringArray,
    values: &'a StringArray,
    types: &'a BinaryArray,
    nested: &'a BinaryArray,
    dropped: &'a arrow::array::UInt32Array,
}

impl<'a> AttributeColumnsReader<'a> {
    /// Wraps the four columns; fails if they don't have the types the encoder writes.
    pub fn new(
        map: &'a dyn Array,
        types: &'a dyn Array,
        nested: &'a dyn Array,
        dropped: &'a dyn Array,
    ) -> Result<Self, SpanFormatError> {
        let map = downcast::<MapArray>(map, "attributes")?;
        Ok(Self {
            keys: downcast::<StringArray>(map.keys().as_ref(), "attributes keys")?,
            values: downcast::<StringArray>(map.values().as_ref(), "attributes values")?,
            map,
            types: downcast::<BinaryArray>(types, "attribute_types")?,
            nested: downcast::<BinaryArray>(nested, "attribute_nested")?,
            dropped: downcast::<arrow::array::UInt32Array>(dropped, "dropped_attributes_count")?,
        })
    }

    /// Whether the row has an attribute set at all (false for an absent resource or scope).
    pub fn is_present(&self, row: usize) -> bool {
        self.map.is_valid(row)
    }

    /// The dropped-attributes count of the row.
    pub fn dropped(&self, row: usize) -> u32 {
        self.dropped.value(row)
    }

    /// Rebuilds the row's `KeyValue`s exactly as they were sent.
    pub fn key_values(&self, row: usize) -> Result<Vec<KeyValue>, SpanFormatError> {
        let offsets = self.map.value_offsets();
        let (start, end) = (offsets[row] as usize, offsets[row + 1] as usize);
        let tags: Option<&[u8]> = self.types.is_valid(row).then(|| self.types.value(row));
        if let Some(tags) = tags
            && tags.len() != end - start
        {
            return Err(SpanFormatError::Corrupt(format!(
                "{} attribute type tags for {} attributes",
                tags.len(),
                end - start
            )));
        }
        let mut nested = if self.nested.is_valid(row) {
            ArrayValue::decode(self.nested.value(row))
                .map_err(|e| SpanFormatError::Undecodable { what: "nested attribute values", source: e.into() })?
                .values
                .into_iter()
        } else {
            Vec::new().into_iter()
        };
        (start..end)
            .map(|entry| {
                let tag = tags.map_or(tag::STRING, |tags| tags[entry - start]);
                let text = self.values.is_valid(entry).then(|| self.values.value(entry));
                let value = decode_value(tag, text, &mut nested)?;
                Ok(KeyValue { key: self.keys.value(entry).to_owned(), value, ..Default::default() })
            })
            .collect()
    }
}

fn decode_value(
    tag: u8,
    text: Option<&str>,
    nested: &mut impl Iterator<Item = AnyValue>,
) -> Result<Option<AnyValue>, SpanFormatError> {
    let wrap = |value: Value| Ok(Some(AnyValue { value: Some(value) }));
    let required =
        || text.ok_or_else(|| SpanFormatError::Corrupt(format!("attribute tagged {:?} has no text", tag as char)));
    let unparsable = |source: Box<dyn std::error::Error + Send + Sync>| SpanFormatError::Undecodable {
        what: "attribute value",
        source,
    };
    match tag {
        tag::STRING => wrap(Value::StringValue(required()?.to_owned())),
        tag::BOOL => wrap(Value::BoolValue(required()? == "true")),
        tag::INT => wrap(Value::IntValue(required()?.parse::<i64>().map_err(|e| unparsable(e.into()))?)),
        tag::DOUBLE => wrap(Value::DoubleValue(required()?.parse::<f64>().map_err(|e| unparsable(e.into()))?)),
        tag::BYTES => wrap(Value::BytesValue(
            base64::engine::general_purpose::STANDARD.decode(required()?).map_err(|e| unparsable(e.into()))?,
        )),
        tag::ARRAY | tag::MAP => nested
            .next()
            .map(Some)
            .ok_or_else(|| SpanFormatError::Corrupt("fewer nested attribute values than tags".into())),
        tag::EMPTY => Ok(Some(AnyValue { value: None })),
        tag::ABSENT => Ok(None),
        other => Err(SpanFormatError::Corrupt(format!("unknown attribute type tag {other}"))),
    }
}

pub(crate) fn downcast<'a, T: 'static>(array: &'a dyn Array, what: &str) -> Result<&'a T, SpanFormatError> {
    array
        .as_any()
        .downcast_ref::<T>()
        .ok_or_else(|| SpanFormatError::Corrupt(format!("column {what} has type {}", array.data_type())))
}
