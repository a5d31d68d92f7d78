//! The SQL `spans` table's columns (CONTRACTS §5) and the conversion of stored rows into them.
//!
//! Most columns are stored exactly as SQL shows them and pass through untouched (no copy). The IDs are
//! stored as fixed-size binary (half the bytes, and what statistics and the bloom filter work on) and
//! shown as lowercase hex strings; `events` and `links` drop the columns that only exist to round-trip
//! OTLP losslessly.
//!
//! The plain text columns (name, service, kind, status, scope) are read as `Utf8View`, as DataFusion
//! reads Parquet text by default: the Parquet reader then points into its decoded pages instead of
//! copying every value, and group-bys and comparisons on short strings work on the inline 12 bytes
//! (BENCHMARKS.md, issue 25 item 3). [`scan_schema`] is the stored schema read that way.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use arrow::array::TimestampNanosecondArray;
use arrow::array::{
    Array, ArrayRef, AsArray, BinaryArray, FixedSizeBinaryArray, ListArray, RecordBatch, RecordBatchOptions,
    StringArray, StringViewArray, StructArray,
};
use arrow::buffer::{OffsetBuffer, ScalarBuffer};
use arrow::datatypes::{DataType, Field, FieldRef, Fields, Int64Type, Schema, SchemaRef, TimestampNanosecondType};
use arrow::error::ArrowError;

use crate::spans::schema::{col, end_time_nanos, span_schema, timestamp_type};

/// Field metadata key marking an ID column, so the literal rule (`ids.rs`) recognises `trace_id = '…'`
/// by what the column is, not by what a user alias happens to be called.
pub const ID_KIND_KEY: &str = "spanlake.id";

/// Which kind of ID a column holds, with its length in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IdKind {
    Trace,
    Span,
}

impl IdKind {
    /// Bytes in the ID.
    pub fn len(self) -> usize {
        match self {
            Self::Trace => 16,
            Self::Span => 8,
        }
    }

    /// The kind an SQL field is marked with, if any.
    pub fn of(field: &Field) -> Option<Self> {
        match field.metadata().get(ID_KIND_KEY).map(String::as_str) {
            Some("trace") => Some(Self::Trace),
            Some("span") => Some(Self::Span),
            _ => None,
        }
    }

    /// The field metadata that marks a column as this kind of ID.
    pub fn marker(self) -> HashMap<String, String> {
        let value = match self {
            Self::Trace => "trace",
            Self::Span => "span",
        };
        HashMap::from([(ID_KIND_KEY.to_owned(), value.to_owned())])
    }
}

/// The columns of the `spans` table, in the contract's order.
const COLUMNS: [&str; 18] = [
    col::TRACE_ID,
    col::SPAN_ID,
    col::PARENT_SPAN_ID,
    col::TRACE_STATE,
    col::NAME,
    col::KIND,
    col::START_TIME,
    col::END_TIME,
    col::DURATION_NS,
    col::STATUS_CODE,
    col::STATUS_MESSAGE,
    col::SERVICE_NAME,
    col::ATTRIBUTES,
    col::RESOURCE_ATTRIBUTES,
    col::SCOPE_NAME,
    col::SCOPE_VERSION,
    col::EVENTS,
    col::LINKS,
];

/// Fields of an `events` element kept in SQL.
const EVENT_COLUMNS: [&str; 3] = [col::EVENT_TIME, col::EVENT_NAME, col::ATTRIBUTES];
/// Fields of a `links` element kept in SQL.
const LINK_COLUMNS: [&str; 4] = [col::TRACE_ID, col::SPAN_ID, col::TRACE_STATE, col::ATTRIBUTES];

fn hex_field(field: &Field, kind: Option<IdKind>) -> Field {
    let hex = Field::new(field.name(), DataType::Utf8, field.is_nullable());
    match kind {
        Some(kind) => hex.with_metadata(kind.marker()),
        None => hex,
    }
}

/// Keeps `names` of a list-of-struct field, turning binary IDs into hex strings.
fn pruned_list(list_field: &Field, names: &[&str]) -> DataType {
    let DataType::List(element) = list_field.data_type() else { unreachable!("events and links are lists") };
    let DataType::Struct(fields) = element.data_type() else { unreachable!("list elements are structs") };
    let kept: Fields = names
        .iter()
        .map(|name| {
            let (_, field) = fields.find(name).expect("element field exists");
            match field.data_type() {
                DataType::Binary => Arc::new(hex_field(field, None)),
                _ => field.clone(),
            }
        })
        .collect();
    DataType::List(Arc::new(Field::new(element.name(), DataType::Struct(kept), element.is_nullable())))
}

/// Whether a stored top-level column is text that SQL reads as `Utf8View`.
fn read_as_view(field: &Field) -> bool {
    field.data_type() == &DataType::Utf8 && COLUMNS.contains(&field.name().as_str())
}

/// The stored schema with the text columns SQL shows as they are typed `Utf8View`: what every input of
/// the `spans` scan produces (the Parquet source reads them so; point reads and buffered spans are cast).
/// Same columns in the same order as [`span_schema`], so projections by index apply to both.
pub fn scan_schema() -> SchemaRef {
    static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
        let fields: Vec<Field> = span_schema()
            .fields()
            .iter()
            .map(|field| match read_as_view(field) {
                true => field.as_ref().clone().with_data_type(DataType::Utf8View),
                false => field.as_ref().clone(),
            })
            .collect();
        Arc::new(Schema::new(fields))
    });
    SCHEMA.clone()
}

/// `batch` as `schema` (the same columns in the same order), each column whose type differs cast to the
/// schema's: stored rows as the scan reads them (text as views over the same bytes, no copy of the
/// values), and results as they are written (views back to plain text).
pub fn cast_batch(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch, ArrowError> {
    let columns = schema
        .fields()
        .iter()
        .zip(batch.columns())
        .map(|(field, column)| match column.data_type() == field.data_type() {
            true => Ok(column.clone()),
            false => arrow::compute::cast(column, field.data_type()),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let options = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
    RecordBatch::try_new_with_options(schema.clone(), columns, &options)
}

/// The schema of the `spans` table.
pub fn sql_schema() -> SchemaRef {
    static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
        let storage = span_schema();
        let fields: Vec<Field> = COLUMNS
            .iter()
            .map(|name| {
                if *name == col::END_TIME {
                    return Field::new(col::END_TIME, timestamp_type(), false);
                }
                let field = storage.field_with_name(name).expect("SQL columns are stored columns");
                match *name {
                    col::TRACE_ID => hex_field(field, Some(IdKind::Trace)),
                    col::SPAN_ID | col::PARENT_SPAN_ID => hex_field(field, Some(IdKind::Span)),
                    // A span sent without a Status is stored as NULL (to round-trip); in OTLP it means unset.
                    col::STATUS_CODE => field.clone().with_nullable(false).with_data_type(DataType::Utf8View),
                    _ if read_as_view(field) => field.clone().with_data_type(DataType::Utf8View),
                    col::EVENTS => field.clone().with_data_type(pruned_list(field, &EVENT_COLUMNS)),
                    col::LINKS => field.clone().with_data_type(pruned_list(field, &LINK_COLUMNS)),
                    _ => field.clone(),
                }
            })
            .collect();
        Arc::new(Schema::new(fields))
    });
    SCHEMA.clone()
}

/// [`sql_schema`] with the three ID columns as stored (binary, still marked as IDs): the columns of the
/// `spans` twin that the `traces` view groups on (`id_hex.rs`).
pub fn binary_ids_schema() -> SchemaRef {
    static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
        let storage = span_schema();
        let fields: Vec<Field> = sql_schema()
            .fields()
            .iter()
            .map(|field| match IdKind::of(field) {
                Some(kind) => {
                    let stored = storage.field_with_name(field.name()).expect("IDs are stored columns");
                    stored.clone().with_metadata(kind.marker())
                }
                None => field.as_ref().clone(),
            })
            .collect();
        Arc::new(Schema::new(fields))
    });
    SCHEMA.clone()
}

/// What a scan reads for a projection of SQL columns: the stored columns, and where each SQL column's
/// values come from. `end_time` is no stored column (`spans::schema::span_schema`): it is computed from
/// `start_time` and `duration_ns`, which are read for it.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredProjection {
    /// Indices into the stored schema, each once, in the order the SQL columns first need them.
    pub columns: Vec<usize>,
    sources: Vec<Source>,
}

/// Where one SQL column comes from, by position in [`StoredProjection::columns`].
#[derive(Clone, Copy, Debug, PartialEq)]
enum Source {
    Stored(usize),
    EndTime { start: usize, duration: usize },
}

impl StoredProjection {
    /// The stored columns the SQL columns in `projection` (indices into [`sql_schema`]) need.
    pub fn of(projection: &[usize]) -> Self {
        let storage = span_schema();
        let sql = sql_schema();
        let mut columns: Vec<usize> = Vec::new();
        let mut position = |name: &str| {
            let index = storage.index_of(name).expect("SQL columns are stored or derived from stored ones");
            match columns.iter().position(|&c| c == index) {
                Some(at) => at,
                None => {
                    columns.push(index);
                    columns.len() - 1
                }
            }
        };
        let sources = projection
            .iter()
            .map(|&i| match sql.field(i).name().as_str() {
                col::END_TIME => {
                    Source::EndTime { start: position(col::START_TIME), duration: position(col::DURATION_NS) }
                }
                name => Source::Stored(position(name)),
            })
            .collect();
        Self { columns, sources }
    }

    /// Converts stored rows (the projection's [`columns`](Self::columns), in order) into the SQL columns
    /// of `schema` (the projected SQL schema).
    pub fn to_sql_batch(&self, stored: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch, ArrowError> {
        let columns = schema
            .fields()
            .iter()
            .zip(&self.sources)
            .map(|(field, source)| match *source {
                Source::Stored(at) => to_sql_column(field, stored.column(at)),
                Source::EndTime { start, duration } => end_times(stored.column(start), stored.column(duration)),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let options = RecordBatchOptions::new().with_row_count(Some(stored.num_rows()));
        RecordBatch::try_new_with_options(schema.clone(), columns, &options)
    }
}

/// `start + duration` per row, as the span's end was sent (`spans::schema::end_time_nanos`).
fn end_times(starts: &ArrayRef, durations: &ArrayRef) -> Result<ArrayRef, ArrowError> {
    let wrong =
        |what: &str, array: &ArrayRef| ArrowError::SchemaError(format!("{what} stored as {}", array.data_type()));
    let starts = starts.as_primitive_opt::<TimestampNanosecondType>().ok_or_else(|| wrong("start_time", starts))?;
    let durations = durations.as_primitive_opt::<Int64Type>().ok_or_else(|| wrong("duration_ns", durations))?;
    let ends: TimestampNanosecondArray = arrow::compute::binary(starts, durations, end_time_nanos)?;
    Ok(Arc::new(ends.with_timezone_opt(starts.timezone())))
}

fn to_sql_column(field: &FieldRef, column: &ArrayRef) -> Result<ArrayRef, ArrowError> {
    if field.name() == col::STATUS_CODE && column.null_count() > 0 {
        // Every code fits in a view's 12 inline bytes: no data buffer.
        let codes = arrow::compute::cast(column, &DataType::Utf8View)?;
        let codes = codes.as_string_view();
        return Ok(Arc::new(codes.iter().map(|code| Some(code.unwrap_or("unset"))).collect::<StringViewArray>()));
    }
    if column.data_type() == field.data_type() {
        return Ok(column.clone());
    }
    match (column.data_type(), field.data_type()) {
        (DataType::FixedSizeBinary(_), DataType::Utf8) => Ok(Arc::new(hex_fixed(column.as_fixed_size_binary()))),
        (DataType::Binary, DataType::Utf8) => Ok(Arc::new(hex_binary(column.as_binary::<i32>()))),
        (DataType::Utf8, DataType::Utf8View) => arrow::compute::cast(column, field.data_type()),
        (DataType::List(_), DataType::List(element)) => {
            let list = column.as_list::<i32>();
            let values = to_sql_struct(element, list.values())?;
            Ok(Arc::new(ListArray::try_new(element.clone(), list.offsets().clone(), values, list.nulls().cloned())?))
        }
        (from, to) => Err(ArrowError::SchemaError(format!("column {}: cannot show {from} as {to}", field.name()))),
    }
}

fn to_sql_struct(element: &FieldRef, values: &ArrayRef) -> Result<ArrayRef, ArrowError> {
    let DataType::Struct(fields) = element.data_type() else {
        return Err(ArrowError::SchemaError(format!("{} is not a struct", element.name())));
    };
    let stored = values.as_struct();
    let columns = fields
        .iter()
        .map(|field| {
            let column = stored
                .column_by_name(field.name())
                .ok_or_else(|| ArrowError::SchemaError(format!("stored element lacks {}", field.name())))?;
            to_sql_column(field, column)
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Arc::new(StructArray::try_new(fields.clone(), columns, stored.nulls().cloned())?))
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Lowercase hex of every value, built into one buffer (no per-row allocation).
pub fn hex_fixed(ids: &FixedSizeBinaryArray) -> StringArray {
    let width = ids.value_length() as usize * 2;
    let mut text = Vec::with_capacity(ids.len() * width);
    for row in 0..ids.len() {
        if ids.is_valid(row) {
            push_hex(&mut text, ids.value(row));
        }
    }
    let mut offsets = Vec::with_capacity(ids.len() + 1);
    let mut end = 0i32;
    offsets.push(end);
    for row in 0..ids.len() {
        if ids.is_valid(row) {
            end += width as i32;
        }
        offsets.push(end);
    }
    StringArray::new(OffsetBuffer::new(ScalarBuffer::from(offsets)), text.into(), ids.nulls().cloned())
}

fn hex_binary(ids: &BinaryArray) -> StringArray {
    let mut text = Vec::with_capacity(ids.values().len() * 2);
    let mut offsets = Vec::with_capacity(ids.len() + 1);
    offsets.push(0i32);
    for row in 0..ids.len() {
        if ids.is_valid(row) {
            push_hex(&mut text, ids.value(row));
        }
        offsets.push(text.len() as i32);
    }
    StringArray::new(OffsetBuffer::new(ScalarBuffer::from(offsets)), text.into(), ids.nulls().cloned())
}

fn push_hex(out: &mut Vec<u8>, bytes: &[u8]) {
    for byte in bytes {
        out.push(HEX[usize::from(byte >> 4)]);
        out.push(HEX[usize::from(byte & 0x0f)]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spans::encode_resource_spans;
    use crate::synth::TraceGenerator;

    #[test]
    fn sql_columns_are_the_contracts() {
        let schema = sql_schema();
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, COLUMNS);
        assert_eq!(schema.field_with_name("trace_id").unwrap().data_type(), &DataType::Utf8);
        let DataType::List(event) = schema.field_with_name("events").unwrap().data_type() else { panic!() };
        let DataType::Struct(fields) = event.data_type() else { panic!() };
        assert_eq!(fields.iter().map(|f| f.name().as_str()).collect::<Vec<_>>(), EVENT_COLUMNS);
    }

    #[test]
    fn stored_rows_convert_to_hex_ids_and_pruned_lists() {
        let request = TraceGenerator::new(7).next_request(50);
        let (stored, _) = encode_resource_spans(&request.resource_spans).unwrap();
        let all: Vec<usize> = (0..sql_schema().fields().len()).collect();
        let projection = StoredProjection::of(&all);
        let projected = stored.project(&projection.columns).unwrap();
        let schema = sql_schema();
        let sql = projection.to_sql_batch(&projected, &schema).unwrap();
        assert_eq!(sql.num_rows(), stored.num_rows());
        let trace_ids = sql.column(0).as_string::<i32>();
        let stored_ids = stored.column(0).as_fixed_size_binary();
        for row in 0..sql.num_rows() {
            assert_eq!(trace_ids.value(row), hex::encode(stored_ids.value(row)));
        }
        let parents = sql.column(2).as_string::<i32>();
        let stored_parents = stored.column(2).as_fixed_size_binary();
        for row in 0..sql.num_rows() {
            assert_eq!(parents.is_null(row), stored_parents.is_null(row));
        }
        // The end is derived, and is what was sent.
        let sent_ends: Vec<i64> = request
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .flat_map(|s| &s.spans)
            .map(|span| span.end_time_unix_nano as i64)
            .collect();
        let ends = sql.column(sql.schema().index_of("end_time").unwrap()).as_primitive::<TimestampNanosecondType>();
        assert_eq!(ends.values().to_vec(), sent_ends);
        assert_eq!(ends.data_type(), &timestamp_type());
    }

    #[test]
    fn end_time_alone_reads_start_and_duration_and_a_repeated_column_is_read_once() {
        let sql = sql_schema();
        let at = |name: &str| sql.index_of(name).unwrap();
        let stored = span_schema();
        let projection = StoredProjection::of(&[at("end_time"), at("duration_ns"), at("start_time")]);
        let names: Vec<&str> = projection.columns.iter().map(|&i| stored.field(i).name().as_str()).collect();
        assert_eq!(names, ["start_time", "duration_ns"]);
    }
}
