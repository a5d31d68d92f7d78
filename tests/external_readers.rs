//! Blocks are open Parquet: pyarrow and DuckDB read them unchanged, see the column names of the SQL
//! `spans` table (CONTRACTS §3, §5), and read every column value for value as it went in: whole, through
//! a `trace_id` filter over many pages, and after a dictionary filled up and the encoder fell back to
//! plain values. Blocks are written as `SPANLAKE_DIRECT_ENCODING` says (`tests/common/encoding.rs`), so the
//! same checks hold spanlake's own encoders and parquet's writer to what independent readers see.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, TimestampNanosecondType, UInt32Type};
use common::encoding::block_write_options;
use common::tools::tool;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value as AnyValueKind};
use opentelemetry_proto::tonic::trace::v1::ResourceSpans;
use opentelemetry_proto::tonic::trace::v1::span::Link;
use parquet::basic::{Encoding, PageType};
use parquet::file::reader::{FileReader, SerializedFileReader};
use serde_json::Value;
use spanlake::ids::{BlockId, TenantId};
use spanlake::spans::encode_resource_spans;
use spanlake::storage::block::{BlockWriteOptions, write_block};
use spanlake::storage::{Storage, layout};
use spanlake::synth::TraceGenerator;

/// The columns of the SQL contract whose storage type is readable as is (`end_time` is derived: each
/// reader computes it as docs/storage-format.md says, checked on its own).
const CONTRACT_COLUMNS: [&str; 17] = [
    "trace_id",
    "span_id",
    "parent_span_id",
    "trace_state",
    "name",
    "kind",
    "start_time",
    "duration_ns",
    "status_code",
    "status_message",
    "service_name",
    "attributes",
    "resource_attributes",
    "scope_name",
    "scope_version",
    "events",
    "links",
];

const READERS: [&str; 2] = ["pyarrow", "duckdb"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pyarrow_and_duckdb_read_every_column_of_a_block_value_for_value() {
    let block = WrittenBlock::write(spans(21, 3_000), block_write_options()).await;
    let encodings = data_page_encodings(&block.path, "duration_ns");
    assert!(encodings.contains(&Encoding::BYTE_STREAM_SPLIT), "duration_ns: {encodings:?}");
    let report = read_with_pyarrow_and_duckdb(&block.path, &[]);
    for reader in READERS {
        let seen = &report[reader];
        assert_eq!(seen["rows"], block.rows.len(), "{reader}");
        let columns: Vec<&str> = seen["columns"].as_array().unwrap().iter().map(|c| c.as_str().unwrap()).collect();
        for column in CONTRACT_COLUMNS {
            assert!(columns.contains(&column), "{reader} lacks column {column}: {columns:?}");
        }
        assert_same_columns(&format!("{reader}, whole block"), &seen["values"], &block.expected(None));
        // Each reader's own map lookup finds each row's route (null where a span has none).
        let routes: Vec<Value> = block.map_values("attributes", "http.route");
        assert!(routes.iter().filter(|route| !route.is_null()).count() > 100, "the fixture has routes");
        assert_same_values(&format!("{reader}, attributes['http.route']"), &seen["routes"], &routes);
        // The end each span was sent with, as the documented expression of each reader computes it.
        let ends: Vec<Value> = block.rows.iter().map(|&row| block.sent_ends[row].into()).collect();
        assert_same_values(&format!("{reader}, end times"), &seen["end_times"], &ends);
    }
    assert_eq!(report["pyarrow"]["types"]["start_time"], "timestamp[ns, tz=UTC]");
    let attributes_type = report["pyarrow"]["types"]["attributes"].as_str().unwrap();
    assert!(attributes_type.starts_with("map<string, string"), "{attributes_type}");
}

/// A block of small pages in several row groups, read through a filter on `trace_id`: by pyarrow and DuckDB,
/// each pruning by its own means (row-group statistics at least; neither is relied on to use the page
/// index), and by a read that skips pages through the block's page index, which `read_block.py` decodes
/// and checks against the pages itself. Each must return exactly the trace's rows, every column right.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trace_id_filter_over_many_pages_reads_the_trace_rows_value_for_value() {
    let options = BlockWriteOptions { data_page_rows: 100, max_row_group_rows: 2_000, ..block_write_options() };
    let block = WrittenBlock::write(spans(22, 6_000), options).await;
    assert!(block.row_groups >= 3, "{} row groups", block.row_groups);
    // The first and the last trace, and traces whose rows start at or cross a page boundary.
    let ids = block.trace_ids();
    let mut wanted = vec![ids[0].clone(), ids[ids.len() - 1].clone()];
    for boundary in [100, 1_000, 2_000, 4_050] {
        wanted.push(block.trace_id_at(boundary - 1));
    }
    wanted.dedup();
    let report = read_with_pyarrow_and_duckdb(&block.path, &wanted);
    for trace_id in &wanted {
        let rows: Vec<usize> = (0..block.rows.len()).filter(|&at| &block.trace_id_at(at) == trace_id).collect();
        let expected = block.expected(Some(&rows));
        for reader in READERS {
            let seen = &report[reader]["filtered"][trace_id];
            assert_same_columns(&format!("{reader}, trace_id = {trace_id}"), seen, &expected);
        }
        // The page index, decoded and followed without parquet's code: only the pages it admits are read.
        let read = &report["pyarrow"]["page_index_reads"][trace_id];
        assert_same_columns(&format!("page index, trace_id = {trace_id}"), &read["values"], &expected);
        let (pages_read, pages) = (read["pages_read"].as_u64().unwrap(), read["pages"].as_u64().unwrap());
        assert!(pages > u64::from(block.row_groups), "{trace_id}: several pages per row group, {pages} in all");
        assert!(pages_read >= 1 && pages_read < pages, "{trace_id}: {pages_read} of {pages} pages read");
    }
}

/// With a dictionary page limit far below the block's distinct values, the dictionary-encoded columns
/// (names, services, resource attributes…) fill their dictionaries and continue with plain pages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_whose_dictionaries_filled_up_reads_value_for_value() {
    let options = BlockWriteOptions { dictionary_page_bytes: 256, data_page_rows: 200, ..block_write_options() };
    let block = WrittenBlock::write(spans(23, 3_000), options).await;
    for column in ["name", "resource_attributes.key_value.value"] {
        let encodings = data_page_encodings(&block.path, column);
        assert!(encodings.contains(&Encoding::RLE_DICTIONARY), "{column}: {encodings:?}");
        assert!(encodings.contains(&Encoding::PLAIN), "{column} fell back to plain pages: {encodings:?}");
    }
    let report = read_with_pyarrow_and_duckdb(&block.path, &[]);
    for reader in READERS {
        assert_same_columns(&format!("{reader}, dictionaries full"), &report[reader]["values"], &block.expected(None));
    }
}

/// `spans` realistic spans from the generator's `seed`, some of them with links (the generator writes
/// none) and a trace state, so those columns hold values worth comparing.
fn spans(seed: u64, spans: usize) -> Vec<ResourceSpans> {
    let mut payload = TraceGenerator::new(seed).next_request(spans).resource_spans;
    let text = |key: &str, value: String| KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(AnyValueKind::StringValue(value)) }),
        ..Default::default()
    };
    let every_span = payload.iter_mut().flat_map(|rs| &mut rs.scope_spans).flat_map(|ss| &mut ss.spans);
    for (at, span) in every_span.enumerate() {
        if at % 5 == 0 {
            span.links = (0..at % 3 + 1)
                .map(|link| Link {
                    trace_id: [at as u8, link as u8].repeat(8),
                    span_id: [link as u8 + 1; 8].to_vec(),
                    trace_state: if link == 0 { String::new() } else { format!("vendor=link{at}") },
                    attributes: (0..link).map(|n| text(&format!("link.key{n}"), format!("value {at}/{n}"))).collect(),
                    dropped_attributes_count: link as u32,
                    flags: 0x101,
                })
                .collect();
        }
        if at % 7 == 0 {
            span.trace_state = format!("vendor=span{at}");
        }
    }
    payload
}

/// A block written to a local folder, with the input rows in the order the block stores them.
struct WrittenBlock {
    path: PathBuf,
    /// The input batch, and its rows by trace ID, then start time, then input order: the block's order.
    batch: RecordBatch,
    rows: Vec<usize>,
    /// Each input row's end, as sent (unix ns): blocks store only start and duration.
    sent_ends: Vec<i64>,
    row_groups: u32,
    _folder: tempfile::TempDir,
}

impl WrittenBlock {
    async fn write(payload: Vec<ResourceSpans>, options: BlockWriteOptions) -> Self {
        let folder = tempfile::tempdir().unwrap();
        let storage = Storage::open(&common::url_of(folder.path())).unwrap();
        let tenant = TenantId::single_tenant();
        let (batch, rejected) = encode_resource_spans(&payload).unwrap();
        let sent_ends = payload
            .iter()
            .flat_map(|rs| &rs.scope_spans)
            .flat_map(|ss| &ss.spans)
            .map(|span| span.end_time_unix_nano as i64)
            .collect();
        assert!(rejected.is_empty());
        let meta = write_block(&storage, &tenant, BlockId::new_random(), vec![batch.clone()], &options).await.unwrap();
        let path = folder.path().join(layout::data_path(&tenant, meta.block_id).as_ref());
        let ids = batch.column_by_name("trace_id").unwrap().as_fixed_size_binary();
        let starts = batch.column_by_name("start_time").unwrap().as_primitive::<TimestampNanosecondType>();
        let mut rows: Vec<usize> = (0..batch.num_rows()).collect();
        rows.sort_by_key(|&row| (ids.value(row).to_vec(), starts.value(row), row));
        Self { path, batch, rows, sent_ends, row_groups: meta.row_groups, _folder: folder }
    }

    /// Every column's values, in the canonical form of `read_block.py`, for the block's rows at `only`
    /// (positions in the block), or all of them.
    fn expected(&self, only: Option<&[usize]>) -> Vec<(String, Vec<Value>)> {
        let all: Vec<usize> = (0..self.rows.len()).collect();
        let positions = only.unwrap_or(&all);
        let schema = self.batch.schema();
        schema
            .fields()
            .iter()
            .zip(self.batch.columns())
            .map(|(field, column)| {
                let values = positions.iter().map(|&at| canonical(column.as_ref(), self.rows[at])).collect();
                (field.name().clone(), values)
            })
            .collect()
    }

    /// The trace ID (hex) of the block's row at `position`.
    fn trace_id_at(&self, position: usize) -> String {
        hex::encode(self.batch.column_by_name("trace_id").unwrap().as_fixed_size_binary().value(self.rows[position]))
    }

    /// The block's distinct trace IDs (hex), in block order.
    fn trace_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = (0..self.rows.len()).map(|at| self.trace_id_at(at)).collect();
        ids.dedup();
        ids
    }

    /// Each row's value of `key` in the map column `name`, in block order (null where absent).
    fn map_values(&self, name: &str, key: &str) -> Vec<Value> {
        let column = self.batch.column_by_name(name).unwrap();
        self.rows
            .iter()
            .map(|&row| match canonical(column.as_ref(), row) {
                Value::Array(entries) => {
                    entries.into_iter().find(|entry| entry[0] == key).map_or(Value::Null, |e| e[1].clone())
                }
                _ => Value::Null,
            })
            .collect()
    }
}

/// One value of `array` in the canonical form of `tests/tools/read_block.py`: bytes as lowercase hex,
/// timestamps as integer nanoseconds, maps as `[[key, value], …]` in stored order, lists as arrays, structs
/// as objects, null as null.
fn canonical(array: &dyn Array, row: usize) -> Value {
    if array.is_null(row) {
        return Value::Null;
    }
    match array.data_type() {
        DataType::Utf8 => array.as_string::<i32>().value(row).into(),
        DataType::Binary => hex::encode(array.as_binary::<i32>().value(row)).into(),
        DataType::FixedSizeBinary(_) => hex::encode(array.as_fixed_size_binary().value(row)).into(),
        DataType::UInt32 => array.as_primitive::<UInt32Type>().value(row).into(),
        DataType::Int64 => array.as_primitive::<arrow::datatypes::Int64Type>().value(row).into(),
        DataType::Timestamp(..) => array.as_primitive::<TimestampNanosecondType>().value(row).into(),
        DataType::Map(..) => {
            let map = array.as_map();
            let entries = map.value(row);
            (0..entries.len())
                .map(|entry| {
                    Value::Array(vec![canonical(entries.column(0), entry), canonical(entries.column(1), entry)])
                })
                .collect()
        }
        DataType::List(_) => {
            let elements = array.as_list::<i32>().value(row);
            (0..elements.len()).map(|element| canonical(elements.as_ref(), element)).collect()
        }
        DataType::Struct(fields) => {
            let structs = array.as_struct();
            let object = fields.iter().zip(structs.columns()).map(|(f, c)| (f.name().clone(), canonical(c, row)));
            Value::Object(object.collect())
        }
        other => panic!("no canonical form for {other} (the span schema has none)"),
    }
}

/// Runs `tests/tools/read_block.py` on a block's data file, filtering by each of `trace_ids`.
fn read_with_pyarrow_and_duckdb(path: &Path, trace_ids: &[String]) -> Value {
    let output =
        Command::new(tool("python")).arg("tests/tools/read_block.py").arg(path).args(trace_ids).output().unwrap();
    assert!(output.status.success(), "reader failed: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap()
}

/// `seen` (a reader's `{column: [values]}`) holds exactly the `expected` columns, each value equal.
fn assert_same_columns(what: &str, seen: &Value, expected: &[(String, Vec<Value>)]) {
    let seen = seen.as_object().unwrap_or_else(|| panic!("{what}: no columns in {seen}"));
    let mut names: Vec<&String> = seen.keys().collect();
    let mut expected_names: Vec<&String> = expected.iter().map(|(name, _)| name).collect();
    names.sort();
    expected_names.sort();
    assert_eq!(names, expected_names, "{what}: columns");
    for (name, values) in expected {
        assert_same_values(&format!("{what}, column {name}"), &seen[name], values);
    }
}

/// The reader's values of one column equal `expected`, row for row; names the first row that differs.
fn assert_same_values(what: &str, seen: &Value, expected: &[Value]) {
    let seen = seen.as_array().unwrap_or_else(|| panic!("{what}: not a list of values: {seen}"));
    assert_eq!(seen.len(), expected.len(), "{what}: row count");
    if let Some(row) = (0..seen.len()).find(|&row| seen[row] != expected[row]) {
        panic!("{what}: row {row} reads {} but {} was written", seen[row], expected[row]);
    }
}

/// The encodings of every data page of the leaf column `path` (dotted), in every row group.
fn data_page_encodings(path: &Path, column: &str) -> Vec<Encoding> {
    let reader = SerializedFileReader::new(std::fs::File::open(path).unwrap()).unwrap();
    let leaf =
        reader.metadata().file_metadata().schema_descr().columns().iter().position(|c| c.path().string() == column);
    let leaf = leaf.unwrap_or_else(|| panic!("no leaf column {column}"));
    let mut encodings = Vec::new();
    for group in 0..reader.num_row_groups() {
        let pages = reader.get_row_group(group).unwrap().get_column_page_reader(leaf).unwrap();
        for page in pages {
            let page = page.unwrap();
            if matches!(page.page_type(), PageType::DATA_PAGE | PageType::DATA_PAGE_V2) {
                encodings.push(page.encoding());
            }
        }
    }
    encodings
}
