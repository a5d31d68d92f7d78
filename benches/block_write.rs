//! Where a block write's time goes, on the same 1 M realistic spans as `benches/blocks.rs` (512-span
//! requests from `spanlake::synth`):
//! - criterion, one stage at a time, each the way `encode_block` does it on one thread: concatenating
//!   request batches into 16 k-row batches, sorting the (trace ID, start time) keys, gathering the rows
//!   into sorted order, and Parquet-encoding rows that are already sorted; the whole `encode_block` on
//!   one thread as the baseline the stages should add up to, and on two threads;
//! - printed once: each top-level column's share (gather time, Parquet encoding time of that column
//!   alone with the block's writer settings, stored bytes per span), which is what any change of the
//!   span schema would have to win back;
//! - printed once: what a one-thread write (concatenate, sort, gather, encode) of the same spans would
//!   cost under changes of the span schema that would trade DuckDB users' `MAP` columns for write speed,
//!   down to dropping every attribute map as the floor no such change can go under.
//!
//! `cargo bench --bench block_write` runs it at full size; under `cargo test` it runs once on 20 k spans.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{
    Array, ArrayRef, FixedSizeBinaryArray, MapArray, RecordBatch, StringArray, TimestampNanosecondArray,
};
use arrow::compute::{concat_batches, interleave_record_batch};
use arrow::datatypes::{DataType, Field, Schema};
use criterion::{BenchmarkId, Criterion, Throughput};
use parquet::arrow::ArrowWriter;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;
use spanlake::ids::{BlockId, TenantId};
use spanlake::spans::schema::{col, span_schema};
use spanlake::storage::block::writer::writer_properties;
use spanlake::storage::block::{BlockWriteOptions, encode_block};

mod common;
use common::{REQUEST_SPANS, full_size, request_batches};

/// The allocator the server runs with, so the write is timed as the ingester does it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `encode_block` concatenates request batches into batches of at least this many rows.
const COALESCED_ROWS: usize = 16 * 1024;

fn coalesce(batches: &[RecordBatch]) -> Vec<RecordBatch> {
    batches
        .chunks(COALESCED_ROWS / REQUEST_SPANS)
        .map(|run| concat_batches(&run[0].schema(), run).expect("same schema"))
        .collect()
}

/// (batch, row) of every row in (trace ID, start time) order.
fn sorted_positions(batches: &[RecordBatch]) -> Vec<(usize, usize)> {
    let mut keyed = Vec::new();
    for (index, batch) in batches.iter().enumerate() {
        let column = |name: &str| batch.column_by_name(name).expect("span schema").as_any();
        let ids = column(col::TRACE_ID).downcast_ref::<FixedSizeBinaryArray>().expect("trace IDs");
        let starts = column(col::START_TIME).downcast_ref::<TimestampNanosecondArray>().expect("start times");
        for row in 0..batch.num_rows() {
            let id = u128::from_be_bytes(ids.value(row).try_into().expect("16-byte trace ID"));
            keyed.push((id, starts.value(row), index as u32, row as u32));
        }
    }
    keyed.sort_unstable();
    keyed.into_iter().map(|(_, _, batch, row)| (batch as usize, row as usize)).collect()
}

fn gather(batches: &[RecordBatch], positions: &[(usize, usize)]) -> Vec<RecordBatch> {
    let refs: Vec<&RecordBatch> = batches.iter().collect();
    // `encode_block` gathers and encodes sorted rows one row group at a time.
    let row_group_rows = BlockWriteOptions::default().max_row_group_rows;
    positions.chunks(row_group_rows).map(|chunk| interleave_record_batch(&refs, chunk).expect("gather")).collect()
}

/// Parquet bytes of `batches` written with the block's writer settings.
fn encode_parquet(batches: &[RecordBatch], options: &BlockWriteOptions) -> usize {
    encode_with(batches, writer_properties(options).expect("valid options"))
}

fn encode_with(batches: &[RecordBatch], properties: WriterProperties) -> usize {
    let mut out = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut out, batches[0].schema(), Some(properties)).expect("writer");
    for batch in batches {
        writer.write(batch).expect("write");
    }
    writer.close().expect("close");
    out.len()
}

fn project(batches: &[RecordBatch], column: usize) -> Vec<RecordBatch> {
    batches.iter().map(|batch| batch.project(&[column]).expect("column exists")).collect()
}

/// Median wall time of three runs, in seconds, and the last run's result.
fn median_of_3<T>(mut run: impl FnMut() -> T) -> (f64, T) {
    let mut times = Vec::new();
    let mut last = None;
    for _ in 0..3 {
        let started = Instant::now();
        last = Some(black_box(run()));
        times.push(started.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    (times[1], last.expect("three runs"))
}

/// Each top-level column's gather time, encoding time and stored size, largest encoding time first.
fn column_report(coalesced: &[RecordBatch], positions: &[(usize, usize)], options: &BlockWriteOptions) {
    let spans = positions.len() as f64;
    let mut rows = Vec::new();
    for (index, field) in span_schema().fields().iter().enumerate() {
        let input = project(coalesced, index);
        let (gather_s, sorted) = median_of_3(|| gather(&input, positions));
        let (encode_s, bytes) = median_of_3(|| encode_parquet(&sorted, options));
        rows.push((field.name().clone(), gather_s, encode_s, bytes as f64 / spans));
    }
    rows.sort_by(|a, b| b.2.total_cmp(&a.2));
    let (gather_total, encode_total) = rows.iter().fold((0.0, 0.0), |(g, e), row| (g + row.1, e + row.2));
    println!("per column, {spans} spans (median of 3; each column gathered and encoded on its own):");
    println!("{:<36} {:>9} {:>9} {:>11}", "column", "gather s", "encode s", "bytes/span");
    for (name, gather_s, encode_s, per_span) in &rows {
        println!("{name:<36} {gather_s:>9.3} {encode_s:>9.3} {per_span:>11.2}");
    }
    println!("{:<36} {gather_total:>9.3} {encode_total:>9.3}", "sum of columns");
}

/// A span schema the block format could move to, as the ingester would buffer it.
struct SchemaChange {
    name: &'static str,
    /// Attribute map columns stored as one JSON object text per span, with a dictionary or without.
    as_json: &'static [(&'static str, bool)],
    /// Columns left out altogether.
    dropped: &'static [&'static str],
}

const SCHEMA_CHANGES: [SchemaChange; 5] = [
    SchemaChange { name: "as stored (baseline)", as_json: &[], dropped: &[] },
    SchemaChange {
        name: "resource attributes as JSON text, dictionary",
        as_json: &[(col::RESOURCE_ATTRIBUTES, true)],
        dropped: &[],
    },
    SchemaChange {
        name: "both attribute maps as JSON text",
        as_json: &[(col::RESOURCE_ATTRIBUTES, true), (col::ATTRIBUTES, false)],
        dropped: &[],
    },
    SchemaChange {
        name: "no attribute maps (floor)",
        as_json: &[],
        dropped: &[col::ATTRIBUTES, col::RESOURCE_ATTRIBUTES],
    },
    SchemaChange {
        name: "no attributes, events or links",
        as_json: &[],
        dropped: &[
            col::ATTRIBUTES,
            col::ATTRIBUTE_TYPES,
            col::ATTRIBUTE_NESTED,
            col::RESOURCE_ATTRIBUTES,
            col::RESOURCE_ATTRIBUTE_TYPES,
            col::RESOURCE_ATTRIBUTE_NESTED,
            col::EVENTS,
            col::LINKS,
        ],
    },
];

/// `{"key":"value",…}` for each row of a `map<string, string>` column; NULL stays NULL.
fn map_as_json(column: &ArrayRef) -> ArrayRef {
    let maps = column.as_any().downcast_ref::<MapArray>().expect("attribute map");
    let text = |array: &ArrayRef| array.as_any().downcast_ref::<StringArray>().expect("string").clone();
    let (keys, values) = (text(maps.keys()), text(maps.values()));
    let offsets = maps.value_offsets();
    let rows = (0..maps.len()).map(|row| {
        maps.is_valid(row).then(|| {
            let entries = (offsets[row] as usize..offsets[row + 1] as usize).map(|entry| {
                let value = if values.is_valid(entry) { values.value(entry) } else { "" };
                format!("{}:{}", serde_json::json!(keys.value(entry)), serde_json::json!(value))
            });
            format!("{{{}}}", entries.collect::<Vec<_>>().join(","))
        })
    });
    Arc::new(rows.collect::<StringArray>())
}

impl SchemaChange {
    fn apply(&self, batch: &RecordBatch) -> RecordBatch {
        let (mut fields, mut columns) = (Vec::new(), Vec::new());
        for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
            let name = field.name().as_str();
            if self.dropped.contains(&name) {
                continue;
            }
            if self.as_json.iter().any(|(json, _)| *json == name) {
                fields.push(Field::new(name, DataType::Utf8, true));
                columns.push(map_as_json(column));
            } else {
                fields.push(field.as_ref().clone());
                columns.push(column.clone());
            }
        }
        RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).expect("same rows")
    }

    fn properties(&self, options: &BlockWriteOptions) -> WriterProperties {
        let mut builder = writer_properties(options).expect("valid options").into_builder();
        for &(name, dictionary) in self.as_json {
            let path = ColumnPath::from(name);
            builder = builder
                .set_column_dictionary_enabled(path.clone(), dictionary)
                .set_column_statistics_enabled(path, EnabledStatistics::None);
        }
        builder.build()
    }
}

/// One-thread write time (median of 3) and stored bytes per span of the requests under each schema change.
fn schema_change_report(requests: &[RecordBatch], options: &BlockWriteOptions) {
    let spans = requests.iter().map(RecordBatch::num_rows).sum::<usize>() as f64;
    println!("schema changes, {spans} spans from {}-span requests, one thread, median of 3:", REQUEST_SPANS);
    println!("{:<46} {:>8} {:>12} {:>11}", "span schema", "write s", "M spans/s", "bytes/span");
    for change in &SCHEMA_CHANGES {
        let changed: Vec<RecordBatch> = requests.iter().map(|batch| change.apply(batch)).collect();
        let properties = change.properties(options);
        let (write_s, bytes) = median_of_3(|| {
            let coalesced = coalesce(&changed);
            let positions = sorted_positions(&coalesced);
            encode_with(&gather(&coalesced, &positions), properties.clone())
        });
        println!("{:<46} {write_s:>8.3} {:>12.3} {:>11.2}", change.name, spans / write_s / 1e6, bytes as f64 / spans);
    }
}

fn main() {
    let spans = if full_size() { 1_000_000 } else { 20_000 };
    let requests = request_batches(spans);
    let tenant = TenantId::single_tenant();
    // One thread, as the per-core target counts; `encode_block_2_threads` shows what the second
    // core adds (the default on this 2-core machine).
    let options = BlockWriteOptions { encode_threads: 1, ..Default::default() };
    let two_threads = BlockWriteOptions { encode_threads: 2, ..options.clone() };
    let coalesced = coalesce(&requests);
    let positions = sorted_positions(&coalesced);
    let sorted = gather(&coalesced, &positions);
    let mut criterion = Criterion::default().configure_from_args().sample_size(10);

    let mut stages = criterion.benchmark_group("block_write_stages");
    stages.throughput(Throughput::Elements(spans as u64));
    stages.bench_function(BenchmarkId::new("encode_block_whole", spans), |b| {
        b.iter(|| encode_block(&tenant, BlockId::new_random(), black_box(&requests), &options).expect("encode"))
    });
    let parquet_writer = BlockWriteOptions { direct_encoding: false, ..options.clone() };
    stages.bench_function(BenchmarkId::new("encode_block_whole_parquet_writer", spans), |b| {
        b.iter(|| encode_block(&tenant, BlockId::new_random(), black_box(&requests), &parquet_writer).expect("encode"))
    });
    stages.bench_function(BenchmarkId::new("encode_block_2_threads", spans), |b| {
        b.iter(|| encode_block(&tenant, BlockId::new_random(), black_box(&requests), &two_threads).expect("encode"))
    });
    stages.bench_function(BenchmarkId::new("1_concatenate_requests_into_16k_batches", spans), |b| {
        b.iter(|| coalesce(black_box(&requests)))
    });
    stages
        .bench_function(BenchmarkId::new("2_sort_keys", spans), |b| b.iter(|| sorted_positions(black_box(&coalesced))));
    stages.bench_function(BenchmarkId::new("3_gather_sorted_rows", spans), |b| {
        b.iter(|| gather(black_box(&coalesced), &positions))
    });
    stages.bench_function(BenchmarkId::new("4_parquet_encode_sorted_rows", spans), |b| {
        b.iter(|| encode_parquet(black_box(&sorted), &options))
    });
    stages.finish();

    let bytes = encode_parquet(&sorted, &options);
    // The stages are parquet's writer end to end, as `encode_block` works without the direct map encoder.
    let whole = encode_block(&tenant, BlockId::new_random(), &requests, &parquet_writer).expect("encode");
    assert_eq!(bytes as u64, whole.meta.data_bytes, "the stages must write the block encode_block writes");
    if full_size() {
        column_report(&coalesced, &positions, &options);
    }
    schema_change_report(&requests, &options);
    criterion.final_summary();
}
