use arrow::array::{Array, FixedSizeBinaryArray, RecordBatch};
use spanlake::ids::*;
use spanlake::spans::SpanBatchBuilder;
use spanlake::storage::Storage;
use spanlake::storage::block::*;
use spanlake::synth::TraceGenerator;

fn main() {
    let spans: usize = std::env::args().nth(1).map(|s| s.parse().unwrap()).unwrap_or(1_000_000);
    let mut generator = TraceGenerator::new(2026);
    let mut batches: Vec<RecordBatch> = Vec::new();
    let mut total = 0;
    let t = std::time::Instant::now();
    while total < spans {
        let mut b = SpanBatchBuilder::new();
        for rs in generator.next_request(8192).resource_spans {
            b.append_resource_spans(&rs);
        }
        total += b.len();
        batches.push(b.finish().unwrap());
    }
    eprintln!("generated+encoded {total} in {:?}", t.elapsed());
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let dir = std::path::Path::new("/tmp/inspect");
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap();
    let storage = Storage::open("file:///tmp/inspect").unwrap();
    let options = BlockWriteOptions::default();
    if std::env::args().nth(2).as_deref() == Some("encode-only") {
        let t = std::time::Instant::now();
        let block = encode_block(&TenantId::single_tenant(), BlockId::new_random(), &batches, &options).unwrap();
        eprintln!("encode only {:?} {}", t.elapsed(), block.data.len());
        return;
    }
    let t = std::time::Instant::now();
    let cat = arrow::compute::concat_batches(&spanlake::spans::span_schema(), &batches).unwrap();
    eprintln!("concat {:?}", t.elapsed());
    let t = std::time::Instant::now();
    let idx = arrow::compute::lexsort_to_indices(
        &[
            arrow::compute::SortColumn { values: cat.column(0).clone(), options: None },
            arrow::compute::SortColumn { values: cat.column(7).clone(), options: None },
        ],
        None,
    )
    .unwrap();
    eprintln!("lexsort {:?}", t.elapsed());
    let t = std::time::Instant::now();
    let sorted = arrow::compute::take_record_batch(&cat, &idx).unwrap();
    eprintln!("take {:?}", t.elapsed());
    let t = std::time::Instant::now();
    let mut offsets = vec![];
    let mut acc = 0;
    for b in &batches {
        offsets.push(acc);
        acc += b.num_rows();
    }
    let pairs: Vec<(usize, usize)> = idx
        .values()
        .iter()
        .map(|&i| {
            let i = i as usize;
            let bi = offsets.partition_point(|&o| o <= i) - 1;
            (bi, i - offsets[bi])
        })
        .collect();
    let refs: Vec<&RecordBatch> = batches.iter().collect();
    let mut n = 0;
    for chunk in pairs.chunks(8192) {
        let out = arrow::compute::interleave_record_batch(&refs, chunk).unwrap();
        n += out.num_rows();
    }
    eprintln!("interleave chunks {:?} {n}", t.elapsed());
    let t = std::time::Instant::now();
    let mut out = Vec::new();
    let mut w = parquet::arrow::ArrowWriter::try_new(
        &mut out,
        spanlake::spans::span_schema(),
        Some(spanlake::storage::block::writer::writer_properties(&options).unwrap()),
    )
    .unwrap();
    w.write(&sorted).unwrap();
    w.close().unwrap();
    eprintln!("parquet {:?}", t.elapsed());
    for (label, drop) in [
        ("no resource attrs", vec!["resource_attributes"]),
        ("no span attrs", vec!["attributes"]),
        ("no events", vec!["events"]),
        ("no times/ids", vec!["span_id", "parent_span_id", "start_time", "end_time", "duration_ns"]),
    ] {
        let keep: Vec<usize> =
            (0..sorted.num_columns()).filter(|i| !drop.contains(&sorted.schema().field(*i).name().as_str())).collect();
        let proj = sorted.project(&keep).unwrap();
        let props = parquet::file::properties::WriterProperties::builder()
            .set_compression(parquet::basic::Compression::ZSTD(parquet::basic::ZstdLevel::try_new(3).unwrap()))
            .set_statistics_enabled(parquet::file::properties::EnabledStatistics::Chunk)
            .set_data_page_row_count_limit(1024)
            .build();
        let t = std::time::Instant::now();
        let mut out = Vec::new();
        let mut w = parquet::arrow::ArrowWriter::try_new(&mut out, proj.schema(), Some(props)).unwrap();
        w.write(&proj).unwrap();
        w.close().unwrap();
        eprintln!("{label}: {:?} {} bytes", t.elapsed(), out.len());
    }
    for level in [1, 3] {
        let props = parquet::file::properties::WriterProperties::builder()
            .set_compression(parquet::basic::Compression::ZSTD(parquet::basic::ZstdLevel::try_new(level).unwrap()))
            .set_statistics_enabled(parquet::file::properties::EnabledStatistics::Chunk)
            .set_data_page_row_count_limit(1024)
            .build();
        let t = std::time::Instant::now();
        let mut out = Vec::new();
        let mut w = parquet::arrow::ArrowWriter::try_new(&mut out, sorted.schema(), Some(props)).unwrap();
        w.write(&sorted).unwrap();
        w.close().unwrap();
        eprintln!("all, zstd {level} dict everywhere: {:?} {} bytes", t.elapsed(), out.len());
    }
    let props = parquet::file::properties::WriterProperties::builder()
        .set_compression(parquet::basic::Compression::UNCOMPRESSED)
        .set_statistics_enabled(parquet::file::properties::EnabledStatistics::Chunk)
        .set_data_page_row_count_limit(1024)
        .build();
    let t = std::time::Instant::now();
    let mut out = Vec::new();
    let mut w = parquet::arrow::ArrowWriter::try_new(&mut out, sorted.schema(), Some(props)).unwrap();
    w.write(&sorted).unwrap();
    w.close().unwrap();
    eprintln!("all, uncompressed: {:?} {} bytes", t.elapsed(), out.len());
    let t = std::time::Instant::now();
    let block = encode_block(&TenantId::single_tenant(), BlockId::new_random(), &batches, &options).unwrap();
    eprintln!("encode {:?}", t.elapsed());
    rt.block_on(upload_block(&storage, &block)).unwrap();
    let footer = rt.block_on(load_footer(&storage, &block.meta)).unwrap();
    let md = footer.parquet();
    let mut per_col = vec![0i64; md.row_group(0).num_columns()];
    let mut data_total = 0;
    for rg in md.row_groups() {
        for (i, c) in rg.columns().iter().enumerate() {
            per_col[i] += c.compressed_size();
            data_total += c.compressed_size();
        }
    }
    println!(
        "file {} data {} footer+index {} footer mem {}",
        block.meta.data_bytes,
        data_total,
        block.meta.data_bytes as i64 - data_total,
        footer.memory_size()
    );
    for (i, c) in md.row_group(0).columns().iter().enumerate() {
        println!(
            "{:>10} {:>8} dict_off={:?} {}",
            per_col[i],
            c.num_values(),
            c.dictionary_page_offset().map(|d| c.data_page_offset() - d),
            c.column_path().string()
        );
    }
    let ids: &FixedSizeBinaryArray = batches[3].column(0).as_any().downcast_ref().unwrap();
    let id = TraceId::from_slice(ids.value(0)).unwrap();

    if std::env::args().nth(2).as_deref() == Some("lookups") {
        let ids: Vec<TraceId> = batches
            .iter()
            .map(|b| {
                TraceId::from_slice(b.column(0).as_any().downcast_ref::<FixedSizeBinaryArray>().unwrap().value(5))
                    .unwrap()
            })
            .collect();
        let t = std::time::Instant::now();
        let mut n = 0;
        for _ in 0..20 {
            for id in &ids {
                rt.block_on(find_trace(&storage, &block.meta, &footer, id)).unwrap();
                n += 1;
            }
        }
        eprintln!("{} lookups {:?} per lookup", n, t.elapsed() / n);
        return;
    }
    let before = storage.request_counts();
    let found = rt.block_on(find_trace(&storage, &block.meta, &footer, &id)).unwrap();
    let used = storage.request_counts().since(&before);
    println!(
        "lookup rows {} gets {} bytes {}",
        found.iter().map(|b| b.num_rows()).sum::<usize>(),
        used.get,
        used.get_bytes
    );
}
