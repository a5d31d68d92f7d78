//! What a trace lookup costs, read from the store's request counters (never from a clock): with the
//! footer cached, a known trace costs two exact range reads on a local folder (the `trace_id` pages,
//! then the matching rows of the other columns) and a small fraction of the block; an ID outside the block's range costs nothing; a foreign format version is refused.

mod common;

use arrow::array::{Array, FixedSizeBinaryArray};
use common::encoding::block_write_options;
use object_store::{ObjectStoreExt, PutPayload};
use parquet::arrow::ArrowWriter;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use spanlake::ids::{BlockId, TenantId, TraceId};
use spanlake::spans::{decode_resource_spans, encode_resource_spans, span_schema};
use spanlake::storage::block::writer::PARQUET_FORMAT_VERSION_KEY;
use spanlake::storage::block::{BlockWriteOptions, find_trace, find_traces_tallied, load_footer, write_block};
use spanlake::storage::{Storage, StorageError, layout};
use spanlake::synth::TraceGenerator;

struct Fixture {
    storage: Storage,
    traces: Vec<Vec<opentelemetry_proto::tonic::trace::v1::ResourceSpans>>,
    meta: spanlake::storage::BlockMeta,
    _folder: tempfile::TempDir,
}

/// A block of ~60 k spans in several row groups on a local folder.
async fn several_row_groups() -> Fixture {
    let folder = tempfile::tempdir().unwrap();
    let storage = Storage::open(&common::url_of(folder.path())).unwrap();
    let mut generator = TraceGenerator::new(99);
    let traces: Vec<_> = (0..1_200).map(|_| generator.next_trace()).collect();
    let (batch, _) = encode_resource_spans(&traces.concat()).unwrap();
    let options = BlockWriteOptions { max_row_group_rows: 8 * 1024, ..block_write_options() };
    let meta =
        write_block(&storage, &TenantId::single_tenant(), BlockId::new_random(), vec![batch], &options).await.unwrap();
    assert!(meta.row_groups > 3, "fixture must span several row groups, got {}", meta.row_groups);
    Fixture { storage, traces, meta, _folder: folder }
}

fn trace_id_of(trace: &[opentelemetry_proto::tonic::trace::v1::ResourceSpans]) -> TraceId {
    TraceId::from_slice(&trace[0].scope_spans[0].spans[0].trace_id).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_known_trace_costs_two_small_reads_with_the_footer_cached() {
    let fixture = several_row_groups().await;
    let footer = load_footer(&fixture.storage, &fixture.meta).await.unwrap();
    for trace in fixture.traces.iter().step_by(97) {
        let before = fixture.storage.request_counts();
        let found = find_trace(&fixture.storage, &fixture.meta, &footer, &trace_id_of(trace)).await.unwrap();
        let used = fixture.storage.request_counts().since(&before);
        let decoded = decode_resource_spans(&found).unwrap();
        assert_eq!(common::otlp::canonical(&decoded), common::otlp::canonical(trace));
        assert_eq!(used.total(), 2, "{used:?}");
        assert!(
            used.get_bytes * 20 < fixture.meta.data_bytes,
            "read {} of {} bytes",
            used.get_bytes,
            fixture.meta.data_bytes
        );
    }
}

/// A search or an SQL `IN` list reads its traces of one block in one pass: the same spans as one lookup
/// per trace, fewer bytes when the traces share pages, and an ID the block does not hold adds nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_traces_read_in_one_pass_are_the_lookups_spans_for_fewer_bytes() {
    let fixture = several_row_groups().await;
    let footer = load_footer(&fixture.storage, &fixture.meta).await.unwrap();
    let mut by_id: Vec<_> = fixture.traces.iter().map(|trace| (trace_id_of(trace), trace)).collect();
    by_id.sort_by_key(|(id, _)| *id);
    // Neighbours in ID order share pages; a second run of them sits in another row group.
    let picked: Vec<_> = by_id[100..140].iter().chain(&by_id[900..910]).collect();
    let mut ids: Vec<TraceId> = picked.iter().map(|(id, _)| *id).collect();
    let absent = TraceId::from_slice(&(u128::from_be_bytes(*ids[0].as_bytes()) + 1).to_be_bytes()).unwrap();
    assert!(by_id.iter().all(|(id, _)| *id != absent) && fixture.meta.may_contain_trace_id(&absent));
    ids.push(absent);

    let mut one_by_one_bytes = 0;
    for (id, _) in &picked {
        let before = fixture.storage.request_counts();
        find_trace(&fixture.storage, &fixture.meta, &footer, id).await.unwrap();
        one_by_one_bytes += fixture.storage.request_counts().since(&before).get_bytes;
    }
    let before = fixture.storage.request_counts();
    let found = find_traces_tallied(&fixture.storage, &fixture.meta, &footer, &ids, Default::default()).await.unwrap();
    let used = fixture.storage.request_counts().since(&before);

    let expected: Vec<_> = picked.iter().flat_map(|(_, trace)| trace.iter().cloned()).collect();
    let decoded = decode_resource_spans(&found).unwrap();
    assert_eq!(common::otlp::canonical(&decoded), common::otlp::canonical(&expected));
    assert!(
        used.get_bytes * 4 < one_by_one_bytes,
        "one pass read {} bytes, one lookup per trace {one_by_one_bytes}",
        used.get_bytes
    );
    assert!(used.total() <= 2 * fixture.meta.row_groups as u64, "{used:?}");
    let absent_only = [absent];
    let nothing = find_traces_tallied(&fixture.storage, &fixture.meta, &footer, &absent_only, Default::default());
    assert!(nothing.await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_outside_the_block_range_costs_no_request() {
    let fixture = several_row_groups().await;
    let footer = load_footer(&fixture.storage, &fixture.meta).await.unwrap();
    let before = fixture.storage.request_counts();
    for outside in ["00000000000000000000000000000001", "ffffffffffffffffffffffffffffffff"] {
        let id = TraceId::from_hex(outside).unwrap();
        assert!(!fixture.meta.may_contain_trace_id(&id), "{outside} is outside the block's ID range");
        assert!(find_trace(&fixture.storage, &fixture.meta, &footer, &id).await.unwrap().is_empty());
    }
    assert_eq!(fixture.storage.request_counts().since(&before).total(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loading_the_footer_and_page_index_takes_at_most_two_reads() {
    let fixture = several_row_groups().await;
    let before = fixture.storage.request_counts();
    let footer = load_footer(&fixture.storage, &fixture.meta).await.unwrap();
    assert!(fixture.storage.request_counts().since(&before).get <= 2);
    assert!(footer.parquet().column_index().is_some(), "page index loaded");
    assert_eq!(footer.parquet().num_row_groups() as u32, fixture.meta.row_groups);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_are_sorted_by_trace_id_then_start_time() {
    let fixture = several_row_groups().await;
    let footer = load_footer(&fixture.storage, &fixture.meta).await.unwrap();
    let columns = ["trace_id", "start_time"];
    let batches =
        spanlake::storage::block::read_all(&fixture.storage, &fixture.meta, &footer, Some(&columns)).await.unwrap();
    let mut previous: Option<(Vec<u8>, i64)> = None;
    let mut rows = 0;
    for batch in &batches {
        assert_eq!(batch.num_columns(), 2, "projection reads only the asked columns");
        let ids = batch.column(0).as_any().downcast_ref::<FixedSizeBinaryArray>().unwrap();
        let starts = batch.column(1).as_any().downcast_ref::<arrow::array::TimestampNanosecondArray>().unwrap();
        for row in 0..batch.num_rows() {
            let key = (ids.value(row).to_vec(), starts.value(row));
            if let Some(previous) = &previous {
                assert!(previous <= &key, "row {rows} out of order");
            }
            previous = Some(key);
            rows += 1;
        }
    }
    assert_eq!(rows as u64, fixture.meta.span_count);
    assert_eq!(
        fixture.meta.min_trace_id.to_hex(),
        hex::encode(batches[0].column(0).as_any().downcast_ref::<FixedSizeBinaryArray>().unwrap().value(0))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parquet_file_of_another_format_version_is_refused() {
    let fixture = several_row_groups().await;
    let (batch, _) = encode_resource_spans(&TraceGenerator::new(1).next_trace()).unwrap();
    let properties = WriterProperties::builder()
        .set_key_value_metadata(Some(vec![KeyValue::new(PARQUET_FORMAT_VERSION_KEY.to_owned(), "99".to_owned())]))
        .build();
    let mut bytes = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut bytes, span_schema(), Some(properties)).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
    let meta = spanlake::storage::BlockMeta { data_bytes: bytes.len() as u64, ..fixture.meta.clone() };
    let path = layout::data_path(&meta.tenant, meta.block_id);
    fixture.storage.object_store().put(&path, PutPayload::from(bytes)).await.unwrap();
    let error = load_footer(&fixture.storage, &meta).await.unwrap_err();
    assert!(
        matches!(error, StorageError::UnsupportedFormatVersion { found: 99, supported, .. } if supported == spanlake::storage::FORMAT_VERSION),
        "{error}"
    );
}
