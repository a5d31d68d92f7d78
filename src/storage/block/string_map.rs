//! A hand-written Parquet encoder for the span schema's top-level `map<string, string>` columns
//! (`attributes`, `resource_attributes`, `scope_attributes`), fed straight from the request batches in
//! sorted order.
//!
//! Why by hand: parquet's Arrow writer needs each map gathered into sorted order first, then walks the
//! nested type to compute levels, then interns every string through generic machinery. The two attribute
//! maps cost ~2.3 s of a 5.7 s write of 1 M spans that way (BENCHMARKS.md, issue 2). Here one pass over
//! the rows writes each leaf's levels, dictionary indices or plain values into pages.
//!
//! The pages, dictionary and chunk metadata are written by `leaf.rs`, as parquet's writer would write
//! them with the block's settings; only leaves without statistics come here ([`MapLeaves::new`]).
//!
//! May call: `leaf.rs`. Nothing else.

use std::collections::HashMap;

use arrow::array::{Array, MapArray, StringArray};

use super::leaf::{EncodedLeaf, LeafLayout, LeafWriter, UNSHARED, ValueKind, source_at};
use crate::storage::StorageError;

/// The key and value leaves of a `map<string, string>` as the span schema declares it (the map required
/// or nullable, its values nullable), each with a layout this encoder writes: the only shape
/// [`StringMapColumn::encode`] takes. Other maps go through parquet's writer.
#[derive(Clone, Debug)]
pub(super) struct MapLeaves {
    key: LeafLayout,
    value: LeafLayout,
}

impl MapLeaves {
    pub(super) fn new(key: LeafLayout, value: LeafLayout) -> Option<Self> {
        let base = key.descr.max_def_level() - 1;
        let shaped = (0..=1).contains(&base)
            && [&key, &value].iter().all(|leaf| leaf.kind() == ValueKind::ByteArray && !leaf.has_statistics())
            && value.descr.max_def_level() == base + 2
            && key.descr.max_rep_level() == 1
            && value.descr.max_rep_level() == 1;
        shaped.then_some(Self { key, value })
    }
}

/// The parts of one batch's map column the encoder reads.
pub(super) struct Source<'a> {
    pub(super) map: &'a MapArray,
    pub(super) keys: &'a StringArray,
    pub(super) values: &'a StringArray,
}

impl<'a> Source<'a> {
    /// The column's parts, if it is a `map<utf8, utf8>`.
    pub(super) fn new(column: &'a dyn Array) -> Option<Self> {
        let map = column.as_any().downcast_ref::<MapArray>()?;
        let keys = map.keys().as_any().downcast_ref::<StringArray>()?;
        let values = map.values().as_any().downcast_ref::<StringArray>()?;
        Some(Self { map, keys, values })
    }

    /// The entry range of a row that is neither null nor empty.
    pub(super) fn entries(&self, row: usize) -> Option<std::ops::Range<usize>> {
        let offsets = self.map.value_offsets();
        let entries = offsets[row] as usize..offsets[row + 1] as usize;
        (self.map.is_valid(row) && !entries.is_empty()).then_some(entries)
    }
}

/// A column whose key (or value) lists are mostly distinct after this many rows is searched no further.
const GIVE_UP_AFTER_ROWS: usize = 4096;

/// A block's `map<string, string>` column across its input batches, read by [`Self::encode`] one row
/// group at a time. Found once per block: which rows repeat the keys, or the values, of another row.
/// Every span of a resource carries the same resource attributes, and spans of one kind the same
/// attribute keys; the dictionary indices of such a list are looked up once per row group and then
/// copied, instead of interning each string again for every span.
pub(super) struct StringMapColumn<'a> {
    sources: Vec<Source<'a>>,
    keys: SharedLists,
    values: SharedLists,
}

/// Which half of a map's entries.
#[derive(Clone, Copy, PartialEq)]
enum Half {
    Keys,
    Values,
}

/// The key or value lists that more than one row of a column has.
#[derive(Default)]
struct SharedLists {
    /// Per batch and row: the ID of the list the row shares with other rows, or [`UNSHARED`]. Empty when
    /// the column's lists are mostly distinct (span attribute values).
    ids: Vec<Vec<u32>>,
    count: usize,
}

impl SharedLists {
    fn find(sources: &[Source<'_>], half: Half) -> Self {
        // First pass: the first row with each list, and how many rows have it.
        let mut first_seen: HashMap<List<'_, '_>, u32, foldhash::fast::RandomState> = HashMap::default();
        let mut counts: Vec<u32> = Vec::new();
        let mut seen: Vec<Vec<u32>> = Vec::with_capacity(sources.len());
        let mut rows_seen = 0;
        for source in sources {
            // The row before, if it had a list: spans of one resource arrive together, so most repeats
            // are found by one comparison, without hashing.
            let mut previous: Option<(List<'_, '_>, u32)> = None;
            let rows = (0..source.map.len()).map(|row| {
                let Some(entries) = source.entries(row) else {
                    previous = None;
                    return UNSHARED;
                };
                let list = List { source, half, entries };
                let id = match &previous {
                    Some((before, id)) if *before == list => *id,
                    _ => {
                        let next = counts.len() as u32;
                        let id = *first_seen.entry(list.clone()).or_insert(next);
                        if id == next {
                            counts.push(0);
                        }
                        id
                    }
                };
                counts[id as usize] += 1;
                previous = Some((list, id));
                id
            });
            seen.push(rows.collect());
            rows_seen += source.map.len();
            if rows_seen >= GIVE_UP_AFTER_ROWS && counts.len() * 2 > rows_seen {
                // Mostly distinct lists: looking them up would cost more than it saves.
                return Self::default();
            }
        }
        // Second pass: dense IDs for the lists more than one row has.
        let mut dense = vec![UNSHARED; counts.len()];
        let mut count = 0;
        for (id, rows) in counts.iter().enumerate() {
            if *rows > 1 {
                dense[id] = count;
                count += 1;
            }
        }
        let ids = seen
            .into_iter()
            .map(|rows| rows.into_iter().map(|id| if id == UNSHARED { id } else { dense[id as usize] }).collect())
            .collect();
        Self { ids, count: count as usize }
    }

    fn id(&self, batch: usize, row: usize) -> u32 {
        self.ids.get(batch).map_or(UNSHARED, |rows| rows[row])
    }
}

/// One row's keys or values, compared and hashed by content (in order; a null value differs from "").
#[derive(Clone)]
struct List<'s, 'a> {
    source: &'s Source<'a>,
    half: Half,
    entries: std::ops::Range<usize>,
}

impl List<'_, '_> {
    /// The strings as one byte run, and where each one's bytes end within it.
    fn strings(&self) -> (&[u8], impl Iterator<Item = i32> + '_) {
        let strings = match self.half {
            Half::Keys => self.source.keys,
            Half::Values => self.source.values,
        };
        let offsets = &strings.value_offsets()[self.entries.start..=self.entries.end];
        let bytes = &strings.value_data()[offsets[0] as usize..offsets[offsets.len() - 1] as usize];
        (bytes, offsets[1..].iter().map(move |end| end - offsets[0]))
    }
}

impl PartialEq for List<'_, '_> {
    fn eq(&self, other: &Self) -> bool {
        let ((bytes, ends), (other_bytes, other_ends)) = (self.strings(), other.strings());
        let nulls = |list: &Self| list.entries.clone().map(|entry| list.source.values.is_null(entry));
        self.entries.len() == other.entries.len()
            && bytes == other_bytes
            && ends.eq(other_ends)
            && (self.half == Half::Keys || nulls(self).eq(nulls(other)))
    }
}

impl Eq for List<'_, '_> {}

impl std::hash::Hash for List<'_, '_> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        let (bytes, ends) = self.strings();
        state.write(bytes);
        ends.for_each(|end| state.write_i32(end));
    }
}

impl<'a> StringMapColumn<'a> {
    /// The column of every batch, if each is a `map<utf8, utf8>` this encoder can read; else `None`.
    pub(super) fn new(columns: &[&'a dyn Array]) -> Option<Self> {
        let sources = columns.iter().map(|column| Source::new(*column)).collect::<Option<Vec<_>>>()?;
        let keys = SharedLists::find(&sources, Half::Keys);
        let values = SharedLists::find(&sources, Half::Values);
        Some(Self { sources, keys, values })
    }

    /// Encodes the rows at `positions` ((batch, row), in the order they are written) into the column's
    /// key and value chunks for one row group.
    pub(super) fn encode(
        &self,
        positions: &[(usize, usize)],
        leaves: &MapLeaves,
    ) -> Result<[EncodedLeaf; 2], StorageError> {
        // Definition levels contributed by the map itself: 1 when the map may be null, else 0.
        let base = leaves.key.descr.max_def_level() - 1;
        let mut keys = LeafWriter::new(leaves.key.clone(), self.keys.count);
        let mut values = LeafWriter::new(leaves.value.clone(), self.values.count);
        for &(batch, row) in positions {
            let source = source_at(&self.sources, batch, row, |source| source.map.len())?;
            match source.entries(row) {
                None => {
                    let def = if source.map.is_null(row) { 0 } else { base };
                    keys.level(0, def);
                    values.level(0, def);
                }
                Some(entries) => {
                    let key_strings = entries.clone().map(|entry| Some(source.keys.value(entry).as_bytes()));
                    let value_strings = entries
                        .clone()
                        .map(|entry| source.values.is_valid(entry).then(|| source.values.value(entry).as_bytes()));
                    keys.entries(self.keys.id(batch, row), key_strings);
                    values.entries(self.values.id(batch, row), value_strings);
                }
            }
            keys.end_row()?;
            values.end_row()?;
        }
        Ok([keys.finish()?, values.finish()?])
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{MapBuilder, MapFieldNames, RecordBatch, StringBuilder};
    use arrow::datatypes::{Field, Schema};
    use bytes::Bytes;
    use parquet::arrow::ArrowWriter;
    use parquet::arrow::arrow_reader::{ArrowReaderOptions, ParquetRecordBatchReaderBuilder};
    use parquet::basic::{Encoding, PageType};
    use parquet::file::metadata::PageIndexPolicy;
    use proptest::prelude::*;

    use super::*;
    use crate::spans::schema::attribute_map_type;
    use crate::storage::block::leaf::testing::{NestedLayout, interleaved, read, reads_back, shuffle, split};

    /// One row of a map column: `None` is a null map.
    type Row = Option<Vec<(String, Option<String>)>>;

    fn map_batch(rows: &[Row], nullable: bool) -> RecordBatch {
        let names = MapFieldNames { entry: "key_value".into(), key: "key".into(), value: "value".into() };
        let mut builder = MapBuilder::new(Some(names), StringBuilder::new(), StringBuilder::new());
        for row in rows {
            for (key, value) in row.iter().flatten() {
                builder.keys().append_value(key);
                builder.values().append_option(value.as_deref());
            }
            builder.append(row.is_some()).unwrap();
        }
        let schema = Schema::new(vec![Field::new("m", attribute_map_type(), nullable)]);
        RecordBatch::try_new(Arc::new(schema), vec![Arc::new(builder.finish())]).unwrap()
    }

    /// Writes the rows of `batches` at `positions` with [`StringMapColumn::encode`], `layout.row_group_rows` per
    /// row group, into a Parquet file that parquet's own writer set up.
    fn write_file(batches: &[RecordBatch], positions: &[(usize, usize)], layout: &NestedLayout) -> Bytes {
        let props = layout.properties();
        let writer = ArrowWriter::try_new(Vec::new(), batches[0].schema(), Some(props.clone())).unwrap();
        let (mut file, _) = writer.into_serialized_writer().unwrap();
        let leaves = file.schema_descr().columns().to_vec();
        let layout_of = |leaf| LeafLayout::for_leaf(&props, &leaves[leaf]).unwrap();
        let map_leaves = MapLeaves::new(layout_of(0), layout_of(1)).unwrap();
        let columns: Vec<&dyn Array> = batches.iter().map(|b| b.column(0).as_ref()).collect();
        let column = StringMapColumn::new(&columns).unwrap();
        for rows in positions.chunks(layout.row_group_rows) {
            let encoded = column.encode(rows, &map_leaves).unwrap();
            let mut row_group = file.next_row_group().unwrap();
            for leaf in encoded {
                row_group.append_column(&leaf.data, leaf.close).unwrap();
            }
            row_group.close().unwrap();
        }
        Bytes::from(file.into_inner().unwrap())
    }

    fn row() -> impl Strategy<Value = Row> {
        // Few distinct keys and values, so runs and dictionary hits happen; sometimes long text.
        let text = prop_oneof![4 => "[ab]{0,2}", 1 => "[a-z]{20,60}"];
        let entry = (text.clone(), prop::option::weighted(0.9, text));
        prop::option::weighted(0.9, prop::collection::vec(entry, 0..12))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(96))]

        /// Whatever the rows, their order and the layout, parquet reads back the rows that were written,
        /// in order, and a read that skips pages through the page index gets the rows it selected.
        #[test]
        fn parquet_reads_back_what_was_written(
            rows in prop::collection::vec(row(), 1..400),
            cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..4),
            seed in any::<u64>(),
            nullable in any::<bool>(),
            layout in NestedLayout::strategy(),
            skip in 1usize..30,
            take in 1usize..30,
        ) {
            let rows: Vec<Row> = rows
                .into_iter()
                .map(|row| if nullable { row } else { row.or_else(|| Some(Vec::new())) })
                .collect();
            // Split into batches, as requests arrive, and write them in a shuffled order.
            let (batches, mut positions) = split(&rows, &cuts, |rows| map_batch(rows, nullable));
            shuffle(&mut positions, seed);
            let file = write_file(&batches, &positions, &layout);
            reads_back(file, &interleaved(&batches, &positions), take, skip)?;
        }
    }

    /// The layout the block's settings ask for: pages of `page_rows` rows, a dictionary page first while
    /// the dictionary is small, and PLAIN pages once it has passed its limit.
    #[test]
    fn pages_follow_the_layout_and_a_full_dictionary_falls_back_to_plain() {
        let rows: Vec<Row> = (0..1000)
            .map(|i| Some(vec![("service.name".to_owned(), Some(format!("svc-{}", i % 3))), (format!("k{i}"), None)]))
            .collect();
        let batch = map_batch(&rows, true);
        let positions: Vec<_> = (0..rows.len()).map(|row| (0, row)).collect();
        let layout =
            NestedLayout { dictionary: true, zstd: true, page_rows: 100, dictionary_bytes: 2000, row_group_rows: 1000 };
        let file = write_file(std::slice::from_ref(&batch), &positions, &layout);
        let reader = ParquetRecordBatchReaderBuilder::try_new_with_options(
            file.clone(),
            ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Required),
        )
        .unwrap();
        let metadata = reader.metadata();
        let offsets = metadata.offset_index().unwrap();
        for (leaf, stats) in metadata.row_group(0).columns().iter().zip(&offsets[0]) {
            let first_rows: Vec<i64> = stats.page_locations().iter().map(|page| page.first_row_index).collect();
            let ends = first_rows.iter().skip(1).chain([&1000]);
            assert!(
                first_rows.iter().zip(ends).all(|(start, end)| (1..=100).contains(&(end - start))),
                "{first_rows:?}"
            );
            assert!(leaf.dictionary_page_offset().is_some(), "{}", leaf.column_path());
        }
        // The values' dictionary never fills: a page every 100 rows.
        let value_pages = offsets[0][1].page_locations().iter().map(|page| page.first_row_index);
        assert_eq!(value_pages.collect::<Vec<_>>(), (0..1000).step_by(100).collect::<Vec<i64>>());
        // Page by page: the dictionary first, then dictionary-encoded pages; the keys ("k{i}" all differ)
        // fill their dictionary within the first pages and go on PLAIN.
        let pages = |leaf| {
            use parquet::file::reader::{FileReader, SerializedFileReader};
            let reader = SerializedFileReader::new(file.clone()).unwrap();
            let pages = reader.get_row_group(0).unwrap().get_column_page_reader(leaf).unwrap();
            pages
                .map(|page| page.map(|page| (page.page_type(), page.encoding())))
                .collect::<Result<Vec<_>, _>>()
                .unwrap()
        };
        let (dictionary, indexed, plain) = (
            (PageType::DICTIONARY_PAGE, Encoding::PLAIN),
            (PageType::DATA_PAGE, Encoding::RLE_DICTIONARY),
            (PageType::DATA_PAGE, Encoding::PLAIN),
        );
        let keys = pages(0);
        assert_eq!(keys[..2], [dictionary, indexed]);
        let first_plain = keys.iter().position(|page| *page == plain).unwrap();
        assert!(first_plain < 5 && keys[first_plain..].iter().all(|page| *page == plain), "{keys:?}");
        assert_eq!(pages(1), [vec![dictionary], vec![indexed; 10]].concat());
        assert_eq!(read(file, None), batch);
    }

    /// While the dictionary is in use, pages without values are dictionary-encoded too (parquet writes
    /// them so), and a column without a single value still gets its (empty) dictionary page.
    #[test]
    fn pages_without_values_stay_dictionary_encoded() {
        let entry = || Some(vec![("a".to_owned(), Some("b".to_owned()))]);
        let layout =
            NestedLayout { dictionary: true, zstd: false, page_rows: 1, dictionary_bytes: 1 << 20, row_group_rows: 10 };
        for rows in [vec![entry(), None, entry()], vec![None, Some(Vec::new()), None]] {
            let batch = map_batch(&rows, true);
            let positions: Vec<_> = (0..rows.len()).map(|row| (0, row)).collect();
            let file = write_file(std::slice::from_ref(&batch), &positions, &layout);
            use parquet::file::reader::{FileReader, SerializedFileReader};
            let reader = SerializedFileReader::new(file.clone()).unwrap();
            for leaf in 0..2 {
                let pages = reader.get_row_group(0).unwrap().get_column_page_reader(leaf).unwrap();
                let pages: Vec<_> =
                    pages.map(|page| page.unwrap()).map(|page| (page.page_type(), page.encoding())).collect();
                let mut expected = vec![(PageType::DICTIONARY_PAGE, Encoding::PLAIN)];
                expected.extend([(PageType::DATA_PAGE, Encoding::RLE_DICTIONARY); 3]);
                assert_eq!(pages, expected, "{rows:?}, leaf {leaf}");
            }
            assert_eq!(read(file, None), batch);
        }
    }

    /// Lists are shared by content: equal strings in the same order, wherever the rows are; a null value
    /// is not "", and the same bytes split differently are different lists.
    #[test]
    fn rows_share_a_list_only_when_its_strings_are_equal() {
        let entry = |k: &str, v: Option<&str>| (k.to_owned(), v.map(str::to_owned));
        let resource = || Some(vec![entry("host", Some("a")), entry("service.name", Some("cart"))]);
        let first = map_batch(
            &[resource(), resource(), Some(vec![entry("ho", Some("a")), entry("stservice.name", Some("cart"))])],
            true,
        );
        let second = map_batch(
            &[
                Some(vec![entry("host", None), entry("service.name", Some("cart"))]),
                None,
                resource(),
                Some(vec![entry("host", Some("")), entry("service.name", Some("cart"))]),
            ],
            true,
        );
        let columns: Vec<&dyn Array> = vec![first.column(0).as_ref(), second.column(0).as_ref()];
        let column = StringMapColumn::new(&columns).unwrap();
        let ids = |lists: &SharedLists| lists.ids.clone();
        // Keys: rows 0, 1 (first batch) and 0, 2, 3 (second) have ["host", "service.name"].
        assert_eq!(ids(&column.keys), [vec![0, 0, UNSHARED], vec![0, UNSHARED, 0, 0]]);
        assert_eq!(column.keys.count, 1);
        // Values: only the three rows with ["a", "cart"].
        assert_eq!(ids(&column.values), [vec![0, 0, 0], vec![UNSHARED, UNSHARED, 0, UNSHARED]]);
        assert_eq!(column.values.count, 1);
    }
}
