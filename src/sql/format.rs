//! SQL results as bytes, one batch at a time, so a large answer streams instead of sitting in memory:
//! JSON (`{"columns":[…],"rows":[[…]]}`), NDJSON, CSV and Arrow IPC stream (CONTRACTS §4).
//!
//! Arrow's own CSV writer refuses maps and lists and its JSON writer drops null map entries; here every
//! column of every type is shown: nested values as JSON (inside a CSV cell too), binary as lowercase hex,
//! timestamps as RFC 3339, non-finite floats as strings.

use std::io::Write;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::error::ArrowError;
use arrow::ipc::writer::StreamWriter;
use arrow::util::display::{ArrayFormatter, FormatOptions};

/// `schema` with top-level view types replaced by their plain twins.
fn without_views(schema: &SchemaRef) -> SchemaRef {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|field| match field.data_type() {
            DataType::Utf8View => field.as_ref().clone().with_data_type(DataType::Utf8),
            DataType::BinaryView => field.as_ref().clone().with_data_type(DataType::Binary),
            _ => field.as_ref().clone(),
        })
        .collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

/// How results are encoded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ResultFormat {
    #[default]
    Json,
    Ndjson,
    Csv,
    Arrow,
}

impl ResultFormat {
    /// The format named by `?format=`.
    pub fn from_name(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "json" => Some(Self::Json),
            "ndjson" | "jsonl" => Some(Self::Ndjson),
            "csv" => Some(Self::Csv),
            "arrow" => Some(Self::Arrow),
            _ => None,
        }
    }

    /// The format an `Accept` header asks for, if it names one of ours.
    pub fn from_accept(accept: &str) -> Option<Self> {
        accept.split(',').find_map(|item| match item.split(';').next()?.trim() {
            "application/json" => Some(Self::Json),
            "application/x-ndjson" | "application/ndjson" | "application/jsonl" => Some(Self::Ndjson),
            "text/csv" => Some(Self::Csv),
            "application/vnd.apache.arrow.stream" => Some(Self::Arrow),
            _ => None,
        })
    }

    /// The response's `Content-Type`.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Json => "application/json",
            Self::Ndjson => "application/x-ndjson",
            Self::Csv => "text/csv; charset=utf-8",
            Self::Arrow => "application/vnd.apache.arrow.stream",
        }
    }
}

/// Encodes one result: [`ResultWriter::begin`], then [`ResultWriter::batch`] per batch, then
/// [`ResultWriter::finish`]; each returns the bytes to send next.
pub struct ResultWriter {
    schema: SchemaRef,
    format: ResultFormat,
    rows_written: usize,
    /// JSON-escaped column names, for NDJSON objects.
    names: Vec<Vec<u8>>,
    arrow: Option<StreamWriter<Vec<u8>>>,
}

impl ResultWriter {
    /// A writer of `schema`'s rows in `format`. Text read as `Utf8View` is written as plain `Utf8`
    /// (and binary views as `Binary`): the view types are how the engine reads, not part of the answer,
    /// and Arrow readers older than 2024 cannot open them.
    pub fn new(schema: SchemaRef, format: ResultFormat) -> Self {
        let schema = without_views(&schema);
        let names = schema.fields().iter().map(|f| serde_json::to_vec(f.name()).unwrap_or_default()).collect();
        Self { schema, format, rows_written: 0, names, arrow: None }
    }

    /// What goes before the first row.
    pub fn begin(&mut self) -> Result<Vec<u8>, ArrowError> {
        let mut out = Vec::new();
        match self.format {
            ResultFormat::Json => {
                let columns: Vec<serde_json::Value> = self
                    .schema
                    .fields()
                    .iter()
                    .map(|f| serde_json::json!({ "name": f.name(), "type": f.data_type().to_string() }))
                    .collect();
                out.extend_from_slice(b"{\"columns\":");
                serde_json::to_writer(&mut out, &columns).map_err(json_error)?;
                out.extend_from_slice(b",\"rows\":[");
            }
            ResultFormat::Ndjson => {}
            ResultFormat::Csv => {
                let mut cell = Vec::new();
                for (i, field) in self.schema.fields().iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    cell.clear();
                    cell.extend_from_slice(field.name().as_bytes());
                    push_csv_cell(&mut out, &cell);
                }
                out.extend_from_slice(b"\r\n");
            }
            ResultFormat::Arrow => {
                let mut writer = StreamWriter::try_new(Vec::new(), &self.schema)?;
                out = std::mem::take(writer.get_mut());
                self.arrow = Some(writer);
            }
        }
        Ok(out)
    }

    /// The rows of one batch.
    pub fn batch(&mut self, batch: &RecordBatch) -> Result<Vec<u8>, ArrowError> {
        if let Some(writer) = &mut self.arrow {
            writer.write(&super::schema::cast_batch(batch, &self.schema)?)?;
            return Ok(std::mem::take(writer.get_mut()));
        }
        let columns = batch.columns().iter().map(Cells::new).collect::<Result<Vec<_>, _>>()?;
        let mut out = Vec::with_capacity(batch.num_rows() * 64 * columns.len().max(1));
        let mut scratch = Vec::new();
        for row in 0..batch.num_rows() {
            match self.format {
                ResultFormat::Json => {
                    if self.rows_written > 0 {
                        out.push(b',');
                    }
                    out.push(b'[');
                    for (i, cells) in columns.iter().enumerate() {
                        if i > 0 {
                            out.push(b',');
                        }
                        cells.json(row, &mut out)?;
                    }
                    out.push(b']');
                }
                ResultFormat::Ndjson => {
                    out.push(b'{');
                    for (i, cells) in columns.iter().enumerate() {
                        if i > 0 {
                            out.push(b',');
                        }
                        out.extend_from_slice(&self.names[i]);
                        out.push(b':');
                        cells.json(row, &mut out)?;
                    }
                    out.extend_from_slice(b"}\n");
                }
                ResultFormat::Csv => {
                    for (i, cells) in columns.iter().enumerate() {
                        if i > 0 {
                            out.push(b',');
                        }
                        scratch.clear();
                        cells.text(row, &mut scratch)?;
                        push_csv_cell(&mut out, &scratch);
                    }
                    out.extend_from_slice(b"\r\n");
                }
                ResultFormat::Arrow => unreachable!("handled above"),
            }
            self.rows_written += 1;
        }
        Ok(out)
    }

    /// What goes after the last row.
    pub fn finish(&mut self) -> Result<Vec<u8>, ArrowError> {
        match self.format {
            ResultFormat::Json => Ok(b"]}".to_vec()),
            ResultFormat::Ndjson | ResultFormat::Csv => Ok(Vec::new()),
            ResultFormat::Arrow => match &mut self.arrow {
                Some(writer) => {
                    writer.finish()?;
                    Ok(std::mem::take(writer.get_mut()))
                }
                None => Ok(Vec::new()),
            },
        }
    }
}

fn json_error(error: serde_json::Error) -> ArrowError {
    ArrowError::JsonError(error.to_string())
}

fn io_error(error: std::io::Error) -> ArrowError {
    ArrowError::IoError(error.to_string(), error)
}

/// RFC 4180: quote a cell holding a comma, quote, or line break; double its quotes.
fn push_csv_cell(out: &mut Vec<u8>, cell: &[u8]) {
    if cell.iter().any(|b| matches!(b, b',' | b'"' | b'\n' | b'\r')) {
        out.push(b'"');
        for &byte in cell {
            if byte == b'"' {
                out.push(b'"');
            }
            out.push(byte);
        }
        out.push(b'"');
    } else {
        out.extend_from_slice(cell);
    }
}

/// How to write the values of one array, decided once per batch column (formatters built once).
struct Cells<'a> {
    array: &'a dyn Array,
    kind: Kind<'a>,
}

enum Kind<'a> {
    Null,
    Bool(&'a BooleanArray),
    /// Integers and decimals: their display text is a JSON number.
    Number(ArrayFormatter<'a>),
    /// Floats: a JSON number when finite, else a string (`"NaN"`, `"inf"`).
    Float(ArrayFormatter<'a>),
    Text,
    Binary,
    /// Anything with a display form (timestamps, dates, intervals): a JSON string.
    Display(ArrayFormatter<'a>),
    List(Box<Cells<'a>>),
    Struct(Vec<(Vec<u8>, Cells<'a>)>),
    Map {
        keys: Box<Cells<'a>>,
        values: Box<Cells<'a>>,
    },
    Dictionary(Box<Cells<'a>>),
}

impl<'a> Cells<'a> {
    fn new(array: &'a ArrayRef) -> Result<Self, ArrowError> {
        Self::of(array.as_ref())
    }

    fn of(array: &'a dyn Array) -> Result<Self, ArrowError> {
        let formatter = || ArrayFormatter::try_new(array, &FormatOptions::default());
        let kind = match array.data_type() {
            DataType::Null => Kind::Null,
            DataType::Boolean => Kind::Bool(array.as_boolean()),
            t if t.is_integer() || matches!(t, DataType::Decimal128(..) | DataType::Decimal256(..)) => {
                Kind::Number(formatter()?)
            }
            t if t.is_floating() => Kind::Float(formatter()?),
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => Kind::Text,
            DataType::Binary | DataType::LargeBinary | DataType::BinaryView | DataType::FixedSizeBinary(_) => {
                Kind::Binary
            }
            DataType::List(_) => Kind::List(Box::new(Self::of(array.as_list::<i32>().values().as_ref())?)),
            DataType::LargeList(_) => Kind::List(Box::new(Self::of(array.as_list::<i64>().values().as_ref())?)),
            DataType::FixedSizeList(..) => {
                Kind::List(Box::new(Self::of(array.as_fixed_size_list().values().as_ref())?))
            }
            DataType::Struct(fields) => {
                let columns = array.as_struct().columns();
                let children = fields
                    .iter()
                    .zip(columns)
                    .map(|(field, column)| {
                        Ok((serde_json::to_vec(field.name()).map_err(json_error)?, Self::of(column.as_ref())?))
                    })
                    .collect::<Result<Vec<_>, ArrowError>>()?;
                Kind::Struct(children)
            }
            DataType::Map(..) => {
                let entries = array.as_map();
                Kind::Map {
                    keys: Box::new(Self::of(entries.keys().as_ref())?),
                    values: Box::new(Self::of(entries.values().as_ref())?),
                }
            }
            DataType::Dictionary(..) => {
                Kind::Dictionary(Box::new(Self::of(array.as_any_dictionary().values().as_ref())?))
            }
            _ => Kind::Display(formatter()?),
        };
        Ok(Self { array, kind })
    }

    /// Writes value `row` as JSON.
    fn json(&self, row: usize, out: &mut Vec<u8>) -> Result<(), ArrowError> {
        if self.array.is_null(row) {
            out.extend_from_slice(b"null");
            return Ok(());
        }
        match &self.kind {
            Kind::Null => out.extend_from_slice(b"null"),
            Kind::Bool(values) => out.extend_from_slice(if values.value(row) { b"true" } else { b"false" }),
            Kind::Number(formatter) => write!(out, "{}", formatter.value(row)).map_err(io_error)?,
            Kind::Float(formatter) => {
                let start = out.len();
                write!(out, "{}", formatter.value(row)).map_err(io_error)?;
                let finite = std::str::from_utf8(&out[start..]).ok().and_then(|t| t.parse::<f64>().ok());
                if !finite.is_some_and(f64::is_finite) {
                    let text = String::from_utf8_lossy(&out[start..]).into_owned();
                    out.truncate(start);
                    serde_json::to_writer(&mut *out, &text).map_err(json_error)?;
                }
            }
            Kind::Text => serde_json::to_writer(&mut *out, text_value(self.array, row)).map_err(json_error)?,
            Kind::Binary => {
                out.push(b'"');
                push_hex(out, binary_value(self.array, row));
                out.push(b'"');
            }
            Kind::Display(formatter) => {
                let text = formatter.value(row).to_string();
                serde_json::to_writer(&mut *out, &text).map_err(json_error)?;
            }
            Kind::List(items) => {
                out.push(b'[');
                for (n, item) in list_range(self.array, row).enumerate() {
                    if n > 0 {
                        out.push(b',');
                    }
                    items.json(item, out)?;
                }
                out.push(b']');
            }
            Kind::Struct(children) => {
                out.push(b'{');
                for (n, (name, child)) in children.iter().enumerate() {
                    if n > 0 {
                        out.push(b',');
                    }
                    out.extend_from_slice(name);
                    out.push(b':');
                    child.json(row, out)?;
                }
                out.push(b'}');
            }
            Kind::Map { keys, values } => {
                out.push(b'{');
                let offsets = self.array.as_map().value_offsets();
                let (start, end) = (offsets[row] as usize, offsets[row + 1] as usize);
                let mut key = Vec::new();
                for (n, entry) in (start..end).enumerate() {
                    if n > 0 {
                        out.push(b',');
                    }
                    key.clear();
                    keys.text(entry, &mut key)?;
                    serde_json::to_writer(&mut *out, &String::from_utf8_lossy(&key)).map_err(json_error)?;
                    out.push(b':');
                    values.json(entry, out)?;
                }
                out.push(b'}');
            }
            Kind::Dictionary(values) => values.json(dictionary_key(self.array, row), out)?,
        }
        Ok(())
    }

    /// Writes value `row` as plain text (a CSV cell, a map key): strings unquoted, nested values as JSON,
    /// null as nothing.
    fn text(&self, row: usize, out: &mut Vec<u8>) -> Result<(), ArrowError> {
        if self.array.is_null(row) {
            return Ok(());
        }
        match &self.kind {
            Kind::Text => out.extend_from_slice(text_value(self.array, row).as_bytes()),
            Kind::Binary => push_hex(out, binary_value(self.array, row)),
            Kind::Number(formatter) | Kind::Float(formatter) | Kind::Display(formatter) => {
                write!(out, "{}", formatter.value(row)).map_err(io_error)?
            }
            Kind::Dictionary(values) => values.text(dictionary_key(self.array, row), out)?,
            Kind::Null | Kind::Bool(_) | Kind::List(_) | Kind::Struct(_) | Kind::Map { .. } => self.json(row, out)?,
        }
        Ok(())
    }
}

fn text_value(array: &dyn Array, row: usize) -> &str {
    match array.data_type() {
        DataType::LargeUtf8 => array.as_string::<i64>().value(row),
        DataType::Utf8View => array.as_string_view().value(row),
        _ => array.as_string::<i32>().value(row),
    }
}

fn binary_value(array: &dyn Array, row: usize) -> &[u8] {
    match array.data_type() {
        DataType::LargeBinary => array.as_binary::<i64>().value(row),
        DataType::BinaryView => array.as_binary_view().value(row),
        DataType::FixedSizeBinary(_) => array.as_fixed_size_binary().value(row),
        _ => array.as_binary::<i32>().value(row),
    }
}

fn list_range(array: &dyn Array, row: usize) -> std::ops::Range<usize> {
    match array.data_type() {
        DataType::LargeList(_) => {
            let offsets = array.as_list::<i64>().value_offsets();
            offsets[row] as usize..offsets[row + 1] as usize
        }
        DataType::FixedSizeList(_, size) => {
            let size = *size as usize;
            row * size..(row + 1) * size
        }
        _ => {
            let offsets = array.as_list::<i32>().value_offsets();
            offsets[row] as usize..offsets[row + 1] as usize
        }
    }
}

fn dictionary_key(array: &dyn Array, row: usize) -> usize {
    let keys = array.as_any_dictionary().normalized_keys();
    keys[row]
}

fn push_hex(out: &mut Vec<u8>, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for byte in bytes {
        out.push(HEX[usize::from(byte >> 4)]);
        out.push(HEX[usize::from(byte & 0x0f)]);
    }
}

/// A result as a terminal table (the CLI's default).
pub fn render_table(schema: &SchemaRef, batches: &[RecordBatch]) -> Result<String, ArrowError> {
    Ok(arrow::util::pretty::pretty_format_batches_with_schema(Arc::clone(schema), batches)?.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Float64Array, Int64Array, MapBuilder, StringArray, StringBuilder};
    use arrow::datatypes::{Field, Schema};

    fn sample() -> RecordBatch {
        let mut map = MapBuilder::new(None, StringBuilder::new(), StringBuilder::new());
        map.keys().append_value("http.route");
        map.values().append_value("/a,\"b\"");
        map.keys().append_value("empty");
        map.values().append_null();
        map.append(true).unwrap();
        map.append(false).unwrap();
        let attributes = Arc::new(map.finish()) as ArrayRef;
        let schema = Arc::new(Schema::new(vec![
            Field::new("name", DataType::Utf8, true),
            Field::new("n", DataType::Int64, true),
            Field::new("x", DataType::Float64, true),
            Field::new("attributes", attributes.data_type().clone(), true),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec![Some("a\nb"), None])),
                Arc::new(Int64Array::from(vec![Some(-3), Some(i64::MAX)])),
                Arc::new(Float64Array::from(vec![1.5, f64::NAN])),
                attributes,
            ],
        )
        .unwrap()
    }

    fn encode(format: ResultFormat, batch: &RecordBatch) -> Vec<u8> {
        let mut writer = ResultWriter::new(batch.schema(), format);
        let mut out = writer.begin().unwrap();
        out.extend(writer.batch(batch).unwrap());
        out.extend(writer.batch(batch).unwrap());
        out.extend(writer.finish().unwrap());
        out
    }

    #[test]
    fn json_keeps_null_map_values_and_non_finite_floats() {
        let body: serde_json::Value = serde_json::from_slice(&encode(ResultFormat::Json, &sample())).unwrap();
        assert_eq!(body["columns"][1], serde_json::json!({"name": "n", "type": "Int64"}));
        let rows = body["rows"].as_array().unwrap();
        assert_eq!(rows.len(), 4);
        assert_eq!(rows[0], serde_json::json!(["a\nb", -3, 1.5, {"http.route": "/a,\"b\"", "empty": null}]));
        assert_eq!(rows[1], serde_json::json!([null, i64::MAX, "NaN", null]));
    }

    #[test]
    fn ndjson_is_one_object_per_row() {
        let text = String::from_utf8(encode(ResultFormat::Ndjson, &sample())).unwrap();
        let rows: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(rows.len(), 4);
        assert_eq!(rows[0]["attributes"]["http.route"], "/a,\"b\"");
    }

    #[test]
    fn csv_quotes_what_needs_quoting_and_shows_maps_as_json() {
        let text = String::from_utf8(encode(ResultFormat::Csv, &sample())).unwrap();
        let mut lines = text.split("\r\n");
        assert_eq!(lines.next(), Some("name,n,x,attributes"));
        assert_eq!(
            lines.next(),
            Some("\"a\nb\",-3,1.5,\"{\"\"http.route\"\":\"\"/a,\\\"\"b\\\"\"\"\",\"\"empty\"\":null}\"")
        );
        assert_eq!(lines.next(), Some(format!(",{},NaN,", i64::MAX).as_str()));
    }

    #[test]
    fn arrow_stream_reads_back() {
        let bytes = encode(ResultFormat::Arrow, &sample());
        let reader = arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(bytes), None).unwrap();
        let batches: Vec<RecordBatch> = reader.map(Result::unwrap).collect();
        assert_eq!(batches.iter().map(RecordBatch::num_rows).sum::<usize>(), 4);
        assert_eq!(batches[0], sample());
    }

    #[test]
    fn formats_are_chosen_by_name_or_accept() {
        assert_eq!(ResultFormat::from_name("CSV"), Some(ResultFormat::Csv));
        assert_eq!(ResultFormat::from_name("xml"), None);
        assert_eq!(
            ResultFormat::from_accept("text/html, application/vnd.apache.arrow.stream;q=0.9"),
            Some(ResultFormat::Arrow)
        );
        assert_eq!(ResultFormat::from_accept("*/*"), None);
    }
}
