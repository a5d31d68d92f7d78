//! The direct encoder for the span schema's flat columns (IDs, times, names, codes, counts): each row's
//! value is read where it sits in the request batches, in sorted order, and handed to `leaf.rs` as bytes.
//!
//! Why: parquet's Arrow writer first needs each column gathered into a sorted Arrow array, a copy of
//! every value, and then walks it again to encode it. The gather alone was a sixth of a block write.
//!
//! Only top-level columns whose Arrow type parquet's writer stores as the same bytes come here: UTF-8
//! text and binary (`BYTE_ARRAY`), fixed-size binary (`FIXED_LEN_BYTE_ARRAY`), 32- and 64-bit integers and
//! nanosecond timestamps (`INT32`, `INT64`). Others go through parquet's writer.
//!
//! A column with one value in every row of the block (about a dozen of the span schema's, for typical
//! spans) is written as runs ([`LeafWriter::repeat`]), without looking each row up.
//!
//! May call: `leaf.rs`, arrow's arrays. Nothing else.

use arrow::array::{Array, AsArray, BinaryArray, FixedSizeBinaryArray, StringArray};
use arrow::buffer::NullBuffer;
use arrow::datatypes::{DataType, Int32Type, Int64Type, TimeUnit, UInt32Type, UInt64Type};
use parquet::errors::ParquetError;

use super::leaf::{EncodedLeaf, LeafLayout, LeafWriter, ValueKind, source_at};
use crate::storage::StorageError;

/// One batch's column, as the bytes parquet stores for each row.
pub(super) enum Source<'a> {
    Text(&'a StringArray),
    Binary(&'a BinaryArray),
    Fixed(&'a FixedSizeBinaryArray),
    /// Little-endian integers of `width` bytes.
    Int {
        bytes: &'a [u8],
        width: usize,
        nulls: Option<&'a NullBuffer>,
    },
}

impl<'a> Source<'a> {
    /// The batch's column if parquet stores it as `kind`, byte for byte as it sits in memory.
    pub(super) fn new(column: &'a dyn Array, kind: ValueKind) -> Option<Self> {
        let int = |bytes: &'a [u8], width| Source::Int { bytes, width, nulls: column.nulls() };
        let source = match (column.data_type(), kind) {
            (DataType::Utf8, ValueKind::ByteArray) => Self::Text(column.as_string()),
            (DataType::Binary, ValueKind::ByteArray) => Self::Binary(column.as_binary()),
            (DataType::FixedSizeBinary(_), ValueKind::Fixed) => Self::Fixed(column.as_fixed_size_binary()),
            (DataType::Int32, ValueKind::Int { width: 4, signed: true }) => {
                int(column.as_primitive::<Int32Type>().values().inner().as_slice(), 4)
            }
            (DataType::UInt32, ValueKind::Int { width: 4, signed: false }) => {
                int(column.as_primitive::<UInt32Type>().values().inner().as_slice(), 4)
            }
            (DataType::Int64, ValueKind::Int { width: 8, signed: true }) => {
                int(column.as_primitive::<Int64Type>().values().inner().as_slice(), 8)
            }
            (DataType::UInt64, ValueKind::Int { width: 8, signed: false }) => {
                int(column.as_primitive::<UInt64Type>().values().inner().as_slice(), 8)
            }
            // Other units are rescaled or retyped by parquet's writer.
            (DataType::Timestamp(TimeUnit::Nanosecond, _), ValueKind::Int { width: 8, signed: true }) => {
                let values = column.as_primitive::<arrow::datatypes::TimestampNanosecondType>().values();
                int(values.inner().as_slice(), 8)
            }
            _ => return None,
        };
        Some(source)
    }

    /// The row's value; `None` if it is null.
    #[inline]
    pub(super) fn value(&self, row: usize) -> Option<&'a [u8]> {
        match self {
            Self::Text(array) => array.is_valid(row).then(|| array.value(row).as_bytes()),
            Self::Binary(array) => array.is_valid(row).then(|| array.value(row)),
            Self::Fixed(array) => array.is_valid(row).then(|| array.value(row)),
            Self::Int { bytes, width, nulls } => {
                nulls.is_none_or(|nulls| nulls.is_valid(row)).then(|| &bytes[row * width..(row + 1) * width])
            }
        }
    }
}

/// A block's flat column across its input batches, encoded one row group at a time.
pub(super) struct FlatColumn<'a> {
    /// Each batch's column and its row count.
    sources: Vec<(Source<'a>, usize)>,
    /// The value of every row of every batch (`Some(None)`: all null), when they all hold the same one.
    constant: Option<Option<&'a [u8]>>,
    layout: LeafLayout,
}

impl<'a> FlatColumn<'a> {
    /// The column of every batch, if its leaf is flat, its layout one `leaf.rs` writes, and its Arrow
    /// type one parquet stores as in memory; else `None`.
    pub(super) fn new(columns: &[&'a dyn Array], layout: LeafLayout) -> Option<Self> {
        let descr = &layout.descr;
        if descr.max_rep_level() != 0 || descr.max_def_level() > 1 {
            return None;
        }
        let sources = columns
            .iter()
            .map(|column| Some((Source::new(*column, layout.kind())?, column.len())))
            .collect::<Option<Vec<_>>>()?;
        let constant = constant(&sources);
        Some(Self { sources, constant, layout })
    }

    /// Encodes the rows at `positions` ((batch, row), in the order they are written) into one chunk.
    pub(super) fn encode(&self, positions: &[(usize, usize)]) -> Result<EncodedLeaf, StorageError> {
        let mut leaf = LeafWriter::new(self.layout.clone(), 0);
        let required = self.layout.descr.max_def_level() == 0;
        if let Some(value) = self.constant.filter(|value| value.is_some() || !required) {
            for &(batch, row) in positions {
                self.source(batch, row)?;
            }
            leaf.repeat(value, positions.len())?;
            return leaf.finish();
        }
        // First every row's value, then the encoding: the rows sit in many batches, and a loop that only
        // looks values up keeps many of those cache misses in flight at once.
        let mut values = Vec::with_capacity(positions.len());
        for &(batch, row) in positions {
            values.push(self.source(batch, row)?.value(row));
        }
        for value in values {
            match value {
                Some(value) => leaf.value(0, value),
                None if required => {
                    let column = self.layout.descr.path();
                    return Err(ParquetError::General(format!("null in required column {column}")).into());
                }
                None => leaf.null(0),
            }
            leaf.end_row()?;
        }
        leaf.finish()
    }

    /// The batch's column, if it has the row.
    fn source(&self, batch: usize, row: usize) -> Result<&Source<'a>, StorageError> {
        source_at(&self.sources, batch, row, |(_, rows)| *rows).map(|(source, _)| source)
    }
}

/// The value all rows of all batches hold, if they hold one (`Some(None)`: all null). One sequential pass
/// that stops at the first row that differs, so a column that varies costs next to nothing here.
fn constant<'a>(sources: &[(Source<'a>, usize)]) -> Option<Option<&'a [u8]>> {
    let first = sources.iter().find(|(_, rows)| *rows > 0).map(|(source, _)| source.value(0))?;
    sources.iter().all(|(source, rows)| (0..*rows).all(|row| source.value(row) == first)).then_some(first)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{
        ArrayRef, Int32Array, Int64Array, RecordBatch, TimestampNanosecondArray, UInt32Array, UInt64Array,
    };
    use arrow::compute::interleave_record_batch;
    use arrow::datatypes::{Field, Schema};
    use bytes::Bytes;
    use parquet::arrow::ArrowWriter;
    use parquet::basic::{Compression, ZstdLevel};
    use parquet::file::properties::{EnabledStatistics, WriterProperties};
    use proptest::prelude::*;

    use super::*;
    use crate::storage::block::leaf::testing::{chunks, read, shuffle, split};

    /// One row of the test table: a column of each type the flat encoder takes.
    #[derive(Clone, Debug)]
    struct Row {
        text: Option<String>,
        binary: Option<Vec<u8>>,
        id: Option<[u8; 16]>,
        count: u32,
        delta: i32,
        time: Option<i64>,
        signed: i64,
        unsigned: u64,
    }

    fn batch(rows: &[Row]) -> RecordBatch {
        let schema = Schema::new(vec![
            Field::new("text", DataType::Utf8, true),
            Field::new("binary", DataType::Binary, true),
            Field::new("id", DataType::FixedSizeBinary(16), true),
            Field::new("count", DataType::UInt32, false),
            Field::new("delta", DataType::Int32, false),
            Field::new("time", DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())), true),
            Field::new("signed", DataType::Int64, false),
            Field::new("unsigned", DataType::UInt64, false),
        ]);
        let ids = rows.iter().map(|row| row.id.map(|id| id.to_vec()));
        let columns: Vec<ArrayRef> = vec![
            Arc::new(rows.iter().map(|row| row.text.clone()).collect::<StringArray>()),
            Arc::new(rows.iter().map(|row| row.binary.clone()).collect::<BinaryArray>()),
            Arc::new(FixedSizeBinaryArray::try_from_sparse_iter_with_size(ids, 16).unwrap()),
            Arc::new(rows.iter().map(|row| row.count).collect::<UInt32Array>()),
            Arc::new(rows.iter().map(|row| row.delta).collect::<Int32Array>()),
            Arc::new(rows.iter().map(|row| row.time).collect::<TimestampNanosecondArray>().with_timezone("UTC")),
            Arc::new(rows.iter().map(|row| row.signed).collect::<Int64Array>()),
            Arc::new(rows.iter().map(|row| row.unsigned).collect::<UInt64Array>()),
        ];
        RecordBatch::try_new(Arc::new(schema), columns).unwrap()
    }

    fn row() -> impl Strategy<Value = Row> {
        // Few distinct short values (runs, dictionary hits) and long ones past the statistics' truncation
        // length, with multi-byte and maximal characters and 0xFF bytes that cannot be incremented.
        let text = prop_oneof![
            4 => "[ab]{0,3}",
            1 => "(é|\u{7ff}|\u{ffff}|\u{10ffff}|z){15,40}",
            1 => "\u{10ffff}{17,20}",
        ];
        let long_bytes = prop::collection::vec(prop_oneof![Just(0xFFu8), any::<u8>()], 60..80);
        let binary = prop_oneof![4 => prop::collection::vec(0..3u8, 0..3), 1 => long_bytes];
        let id = prop_oneof![Just([0u8; 16]), Just([0xFF; 16]), any::<[u8; 16]>()];
        (
            prop::option::weighted(0.7, text),
            prop::option::weighted(0.7, binary),
            prop::option::weighted(0.7, id),
            prop_oneof![0..3u32, any::<u32>()],
            prop_oneof![-2..2i32, any::<i32>()],
            prop::option::weighted(0.7, prop_oneof![-2..2i64, any::<i64>()]),
            prop_oneof![-2..2i64, any::<i64>()],
            prop_oneof![0..2u64, any::<u64>()],
        )
            .prop_map(|(text, binary, id, count, delta, time, signed, unsigned)| Row {
                text,
                binary,
                id,
                count,
                delta,
                time,
                signed,
                unsigned,
            })
    }

    fn statistics() -> impl Strategy<Value = EnabledStatistics> {
        prop_oneof![Just(EnabledStatistics::None), Just(EnabledStatistics::Chunk), Just(EnabledStatistics::Page)]
    }

    /// How a test file is written.
    #[derive(Clone, Debug)]
    struct Layout {
        dictionary: bool,
        dictionary_bytes: usize,
        zstd: bool,
        page_rows: usize,
        row_group_rows: usize,
        statistics: Vec<EnabledStatistics>,
        statistics_truncate: Option<usize>,
        index_truncate: Option<usize>,
    }

    fn layout() -> impl Strategy<Value = Layout> {
        let truncate = || prop_oneof![Just(None), Just(Some(64)), (1usize..10).prop_map(Some)];
        (
            any::<bool>(),
            prop_oneof![3 => Just(1usize << 20), 1 => 1usize..200],
            any::<bool>(),
            1usize..20,
            1usize..100,
            prop::collection::vec(statistics(), 8),
            truncate(),
            truncate(),
        )
            .prop_map(|(dictionary, dictionary_bytes, zstd, page_rows, row_group_rows, statistics, st, it)| {
                Layout {
                    dictionary,
                    dictionary_bytes,
                    zstd,
                    page_rows,
                    row_group_rows,
                    statistics,
                    statistics_truncate: st,
                    index_truncate: it,
                }
            })
    }

    impl Layout {
        fn properties(&self, schema: &Schema) -> WriterProperties {
            let compression =
                if self.zstd { Compression::ZSTD(ZstdLevel::try_new(3).unwrap()) } else { Compression::UNCOMPRESSED };
            let mut builder = WriterProperties::builder()
                .set_compression(compression)
                .set_dictionary_enabled(self.dictionary)
                .set_dictionary_page_size_limit(self.dictionary_bytes)
                .set_data_page_row_count_limit(self.page_rows)
                // Parquet checks its page limits once per write batch: this makes them the same rows.
                .set_write_batch_size(self.page_rows)
                .set_statistics_truncate_length(self.statistics_truncate)
                .set_column_index_truncate_length(self.index_truncate);
            for (field, statistics) in schema.fields().iter().zip(&self.statistics) {
                builder = builder.set_column_statistics_enabled(field.name().as_str().into(), *statistics);
            }
            builder.build()
        }
    }

    /// The rows at `positions`, `layout.row_group_rows` per row group, by the flat encoder.
    fn write_direct(batches: &[RecordBatch], positions: &[(usize, usize)], layout: &Layout) -> Bytes {
        let props = layout.properties(&batches[0].schema());
        let writer = ArrowWriter::try_new(Vec::new(), batches[0].schema(), Some(props.clone())).unwrap();
        let (mut file, _) = writer.into_serialized_writer().unwrap();
        let leaves = file.schema_descr().columns().to_vec();
        let columns: Vec<FlatColumn<'_>> = leaves
            .iter()
            .enumerate()
            .map(|(index, leaf)| {
                let arrays: Vec<&dyn Array> = batches.iter().map(|batch| batch.column(index).as_ref()).collect();
                FlatColumn::new(&arrays, LeafLayout::for_leaf(&props, leaf).unwrap()).unwrap()
            })
            .collect();
        for rows in positions.chunks(layout.row_group_rows) {
            let mut row_group = file.next_row_group().unwrap();
            for column in &columns {
                let leaf = column.encode(rows).unwrap();
                row_group.append_column(&leaf.data, leaf.close).unwrap();
            }
            row_group.close().unwrap();
        }
        Bytes::from(file.into_inner().unwrap())
    }

    /// The same rows and row groups by parquet's Arrow writer, from the rows gathered in order.
    fn write_by_parquet(batches: &[RecordBatch], positions: &[(usize, usize)], layout: &Layout) -> Bytes {
        let props = layout.properties(&batches[0].schema());
        let mut writer = ArrowWriter::try_new(Vec::new(), batches[0].schema(), Some(props)).unwrap();
        let inputs: Vec<&RecordBatch> = batches.iter().collect();
        for rows in positions.chunks(layout.row_group_rows) {
            writer.write(&interleave_record_batch(&inputs, rows).unwrap()).unwrap();
            writer.flush().unwrap();
        }
        Bytes::from(writer.into_inner().unwrap())
    }

    /// Gives every row the first row's value in the columns whose bit is set in `columns` (bit 0: the first
    /// column), so that those columns are written as constant.
    fn hold_first_value(rows: &mut [Row], columns: u8) {
        let first = rows[0].clone();
        // One per column, in column order: copies the first row's value into a row.
        let copies: [fn(&mut Row, &Row); 8] = [
            |row, first| row.text = first.text.clone(),
            |row, first| row.binary = first.binary.clone(),
            |row, first| row.id = first.id,
            |row, first| row.count = first.count,
            |row, first| row.delta = first.delta,
            |row, first| row.time = first.time,
            |row, first| row.signed = first.signed,
            |row, first| row.unsigned = first.unsigned,
        ];
        for row in rows {
            for (column, copy) in copies.iter().enumerate() {
                if columns & (1 << column) != 0 {
                    copy(row, &first);
                }
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        /// Whatever the values, their order and the layout, parquet reads back the rows that were written;
        /// and, unless a dictionary fills up (parquet notices that a write batch late), the file's
        /// statistics, column index and pages are the ones parquet's own writer records.
        #[test]
        fn chunks_are_the_ones_parquet_writes(
            mut rows in prop::collection::vec(row(), 1..300),
            constant in any::<u8>(),
            cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..4),
            order in any::<u64>(),
            layout in layout(),
        ) {
            hold_first_value(&mut rows, constant);
            let (batches, mut positions) = split(&rows, &cuts, batch);
            // Sorted by text for half the cases (runs, ascending pages), shuffled for the rest.
            if order % 2 == 0 {
                positions.sort_by_key(|&(b, r)| batches[b].column(0).as_string::<i32>().value(r).to_owned());
            } else {
                shuffle(&mut positions, order);
            }
            let direct = write_direct(&batches, &positions, &layout);
            let reference = write_by_parquet(&batches, &positions, &layout);
            prop_assert_eq!(read(direct.clone(), None), read(reference.clone(), None));
            if !layout.dictionary || layout.dictionary_bytes == 1 << 20 {
                let (direct, reference) = (chunks(&direct), chunks(&reference));
                for (direct, reference) in direct.iter().zip(&reference) {
                    prop_assert_eq!(direct, reference);
                }
                prop_assert_eq!(direct.len(), reference.len());
            }
        }
    }

    #[test]
    fn columns_parquet_would_store_differently_are_left_to_it() {
        let props = WriterProperties::builder().build();
        let seconds = Arc::new(arrow::array::TimestampSecondArray::from(vec![1, 2])) as ArrayRef;
        let schema = Schema::new(vec![Field::new("t", seconds.data_type().clone(), false)]);
        let parquet = parquet::arrow::ArrowSchemaConverter::new().convert(&schema).unwrap();
        let layout = LeafLayout::for_leaf(&props, &parquet.columns()[0]).unwrap();
        assert!(FlatColumn::new(&[seconds.as_ref()], layout).is_none(), "seconds are rescaled to milliseconds");
    }
}
