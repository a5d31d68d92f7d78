//! Blocks are open Parquet: pyarrow and DuckDB read them unchanged and see the same rows and the column
//! names of the SQL `spans` table (CONTRACTS §3, §5).

mod common;

use std::process::Command;

use arrow::array::{Array, AsArray, StringArray};
use common::tools::tool;
use spanlake::ids::{BlockId, TenantId};
use spanlake::spans::encode_resource_spans;
use spanlake::storage::block::{BlockWriteOptions, write_block};
use spanlake::storage::{Storage, layout};
use spanlake::synth::TraceGenerator;

/// The columns of the SQL contract whose storage type is readable as is.
const CONTRACT_COLUMNS: [&str; 18] = [
    "trace_id",
    "span_id",
    "parent_span_id",
    "trace_state",
    "name",
    "kind",
    "start_time",
    "end_time",
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pyarrow_and_duckdb_read_a_block_unchanged() {
    let folder = tempfile::tempdir().unwrap();
    let storage = Storage::open(&common::url_of(folder.path())).unwrap();
    let tenant = TenantId::single_tenant();
    let payload = TraceGenerator::new(21).next_request(3_000);
    let (batch, _) = encode_resource_spans(&payload.resource_spans).unwrap();
    let expected_server_spans = batch
        .column_by_name("kind")
        .unwrap()
        .as_any()
        .downcast_ref::<StringArray>()
        .unwrap()
        .iter()
        .filter(|kind| *kind == Some("server"))
        .count();
    let expected_routes = batch.column_by_name("attributes").unwrap().as_map().len();
    let meta =
        write_block(&storage, &tenant, BlockId::new_random(), vec![batch.clone()], &BlockWriteOptions::default())
            .await
            .unwrap();
    let data = folder.path().join(layout::data_path(&tenant, meta.block_id).as_ref());

    let output = Command::new(tool("python")).arg("tests/tools/read_block.py").arg(&data).output().unwrap();
    assert!(output.status.success(), "reader failed: {}", String::from_utf8_lossy(&output.stderr));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();

    for reader in ["pyarrow", "duckdb"] {
        let seen = &report[reader];
        assert_eq!(seen["rows"], batch.num_rows(), "{reader}: {seen}");
        let columns: Vec<&str> = seen["columns"].as_array().unwrap().iter().map(|c| c.as_str().unwrap()).collect();
        for column in CONTRACT_COLUMNS {
            assert!(columns.contains(&column), "{reader} lacks column {column}: {columns:?}");
        }
        assert_eq!(seen["server_spans"], expected_server_spans, "{reader}");
        assert_eq!(seen["first_trace_id"], meta.min_trace_id.to_hex(), "{reader}: rows are sorted by trace ID");
    }
    assert_eq!(report["pyarrow"]["types"]["start_time"], "timestamp[ns, tz=UTC]");
    let attributes_type = report["pyarrow"]["types"]["attributes"].as_str().unwrap();
    assert!(attributes_type.starts_with("map<string, string"), "{attributes_type}");
    assert!(report["duckdb"]["routes"].as_u64().unwrap() > 0);
    assert!(report["duckdb"]["routes"].as_u64().unwrap() < expected_routes as u64);
    assert!(report["duckdb"]["services"].as_u64().unwrap() > 5);
    // The attribute maps (written by spanlake's own encoder) read back entry for entry, in sorted order.
    for name in ["attributes", "resource_attributes"] {
        let expected = maps_in_block_order(&batch, name);
        for reader in ["pyarrow", "duckdb"] {
            let seen = &report[reader]["maps"][name];
            assert_eq!(seen.as_array().unwrap().len(), expected.as_array().unwrap().len(), "{reader} {name}");
            assert!(*seen == expected, "{reader} reads {name} differently from what was written");
        }
    }
}

/// Each row's `name` map as `[[key, value], …]` (null for a null map), rows in the order a block stores
/// them: by trace ID, then start time, then input order.
fn maps_in_block_order(batch: &arrow::array::RecordBatch, name: &str) -> serde_json::Value {
    use arrow::datatypes::TimestampNanosecondType;
    let ids = batch.column_by_name("trace_id").unwrap().as_fixed_size_binary();
    let starts = batch.column_by_name("start_time").unwrap().as_primitive::<TimestampNanosecondType>();
    let mut rows: Vec<usize> = (0..batch.num_rows()).collect();
    rows.sort_by_key(|&row| (ids.value(row).to_vec(), starts.value(row), row));
    let maps = batch.column_by_name(name).unwrap().as_map();
    let entries = maps.entries();
    let (keys, values) = (entries.column(0).as_string::<i32>(), entries.column(1).as_string::<i32>());
    let rows = rows.into_iter().map(|row| {
        if maps.is_null(row) {
            return serde_json::Value::Null;
        }
        let range = maps.value_offsets()[row] as usize..maps.value_offsets()[row + 1] as usize;
        range
            .map(|entry| serde_json::json!([keys.value(entry), values.is_valid(entry).then(|| values.value(entry))]))
            .collect()
    });
    serde_json::Value::Array(rows.collect())
}
