//! A hand-written Parquet encoder for the span schema's top-level `map<string, string>` columns
//! (`attributes`, `resource_attributes`, `scope_attributes`), fed straight from the request batches in
//! sorted order.
//!
//! Why by hand: parquet's Arrow writer needs each map gathered into sorted order first, then walks the
//! nested type to compute levels, then interns every string through generic machinery. The two attribute
//! maps cost ~2.3 s of a 5.7 s write of 1 M spans that way (BENCHMARKS.md, issue 2). Here one pass over
//! the rows writes each leaf's levels, dictionary indices or plain values into pages.
//!
//! The column chunks are ordinary Parquet, laid out as the block's writer settings say: v1 data pages of
//! `data_page_rows` rows, RLE levels, `RLE_DICTIONARY` values with a `PLAIN` dictionary page first (falling
//! back to `PLAIN` values once the dictionary passes its size limit, as parquet does), the column's
//! compression, and an offset index. Parquet's own page writer writes the page headers. Only columns whose
//! settings this encoder covers come here ([`LeafLayout::for_leaf`]); the rest go through parquet's writer.
//!
//! May call: parquet's page writer and metadata builders, zstd. Nothing else.

use std::collections::{BTreeSet, HashMap};

use arrow::array::{Array, MapArray, StringArray};
use bytes::Bytes;
use parquet::basic::{Compression, Encoding, EncodingMask};
use parquet::column::page::{CompressedPage, Page, PageWriteSpec, PageWriter};
use parquet::column::writer::ColumnCloseResult;
use parquet::errors::ParquetError;
use parquet::file::metadata::{ColumnChunkMetaData, OffsetIndexBuilder, PageEncodingStats};
use parquet::file::properties::{EnabledStatistics, WriterProperties, WriterVersion};
use parquet::file::writer::{SerializedPageWriter, TrackedWrite};
use parquet::schema::types::ColumnDescPtr;

use crate::storage::StorageError;

/// How one leaf column is written, read from the block's writer settings.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct LeafLayout {
    descr: ColumnDescPtr,
    dictionary: bool,
    /// `UNCOMPRESSED` or `ZSTD`: the codecs this encoder writes.
    compression: Compression,
    page_rows: usize,
    page_bytes: usize,
    dictionary_bytes: usize,
}

impl LeafLayout {
    /// The layout `props` asks for this leaf, or `None` when it asks for something this encoder does not
    /// write (statistics, bloom filters, v2 pages, another codec): such columns go through parquet.
    pub(super) fn for_leaf(props: &WriterProperties, descr: &ColumnDescPtr) -> Option<Self> {
        let path = descr.path();
        let compression = props.compression(path);
        let plain_parquet = matches!(compression, Compression::UNCOMPRESSED | Compression::ZSTD(_))
            && props.statistics_enabled(path) == EnabledStatistics::None
            && props.bloom_filter_properties(path).is_none()
            && props.encoding(path).is_none()
            && props.content_defined_chunking().is_none()
            && props.writer_version() == WriterVersion::PARQUET_1_0
            && !props.offset_index_disabled();
        plain_parquet.then(|| Self {
            descr: descr.clone(),
            dictionary: props.dictionary_enabled(path),
            compression,
            page_rows: props.data_page_row_count_limit().max(1),
            page_bytes: props.column_data_page_size_limit(path),
            dictionary_bytes: props.column_dictionary_page_size_limit(path),
        })
    }
}

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
            && value.descr.max_def_level() == base + 2
            && key.descr.max_rep_level() == 1
            && value.descr.max_rep_level() == 1;
        shaped.then_some(Self { key, value })
    }
}

/// One leaf's column chunk, with what parquet's row-group writer needs to append it.
pub(super) struct EncodedLeaf {
    pub data: Bytes,
    pub close: ColumnCloseResult,
}

/// The parts of one batch's map column the encoder reads.
struct Source<'a> {
    map: &'a MapArray,
    keys: &'a StringArray,
    values: &'a StringArray,
}

impl Source<'_> {
    /// The entry range of a row that is neither null nor empty.
    fn entries(&self, row: usize) -> Option<std::ops::Range<usize>> {
        let offsets = self.map.value_offsets();
        let entries = offsets[row] as usize..offsets[row + 1] as usize;
        (self.map.is_valid(row) && !entries.is_empty()).then_some(entries)
    }
}

/// Marks a row whose key (or value) list no other row of the block has, or that has no entries.
const UNSHARED: u32 = u32::MAX;

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
    fn find(sources: &[Source], half: Half) -> Self {
        // First pass: the first row with each list, and how many rows have it.
        let mut first_seen: HashMap<List, u32, foldhash::fast::RandomState> = HashMap::default();
        let mut counts: Vec<u32> = Vec::new();
        let mut seen: Vec<Vec<u32>> = Vec::with_capacity(sources.len());
        let mut rows_seen = 0;
        for source in sources {
            // The row before, if it had a list: spans of one resource arrive together, so most repeats
            // are found by one comparison, without hashing.
            let mut previous: Option<(List, u32)> = None;
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
        let sources = columns
            .iter()
            .map(|column| {
                let map = column.as_any().downcast_ref::<MapArray>()?;
                let keys = map.keys().as_any().downcast_ref::<StringArray>()?;
                let values = map.values().as_any().downcast_ref::<StringArray>()?;
                Some(Source { map, keys, values })
            })
            .collect::<Option<Vec<_>>>()?;
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
        let mut keys = LeafWriter::new(leaves.key.clone(), base + 1, self.keys.count);
        let mut values = LeafWriter::new(leaves.value.clone(), base + 2, self.values.count);
        for &(batch, row) in positions {
            let source = self
                .sources
                .get(batch)
                .filter(|source| row < source.map.len())
                .ok_or_else(|| ParquetError::General(format!("no row {row} in batch {batch}")))?;
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

/// Distinct values of a leaf in order of first appearance, for its dictionary page.
#[derive(Default)]
struct Dictionary<'a> {
    index: HashMap<&'a [u8], u32, foldhash::fast::RandomState>,
    values: Vec<&'a [u8]>,
    /// Size of the dictionary page before compression (PLAIN: a 4-byte length before each value).
    plain_bytes: usize,
}

impl<'a> Dictionary<'a> {
    fn intern(&mut self, value: &'a [u8]) -> u32 {
        let next = self.values.len() as u32;
        *self.index.entry(value).or_insert_with(|| {
            self.values.push(value);
            self.plain_bytes += 4 + value.len();
            next
        })
    }
}

/// A page encoded and compressed, waiting for the chunk's dictionary page to be written first.
struct FinishedPage {
    page: CompressedPage,
    rows: i64,
}

/// Writes one leaf column chunk: levels and values of the current page, finished pages, the dictionary.
struct LeafWriter<'a> {
    layout: LeafLayout,
    rep_levels: Vec<u8>,
    def_levels: Vec<u8>,
    /// Dictionary indices of the current page's values, while the dictionary is in use.
    indices: Vec<u32>,
    /// PLAIN-encoded values of the current page, once the dictionary is full (or off).
    plain: Vec<u8>,
    page_rows: usize,
    dictionary: Dictionary<'a>,
    /// Whether values go to the dictionary: set when enabled, cleared for good once it is full.
    dictionary_open: bool,
    pages: Vec<FinishedPage>,
    compressor: Option<zstd::bulk::Compressor<'static>>,
    /// Scratch buffers for a page's body and its compressed form, reused from page to page.
    body: Vec<u8>,
    compressed: Vec<u8>,
    /// Definition level of an entry that has its string (one less: a null value).
    present_def: i16,
    /// Per shared list (see [`StringMapColumn`]) met in this row group while the dictionary was open:
    /// where its dictionary indices sit in `shared_indices`.
    shared_rows: HashMap<u32, std::ops::Range<u32>, foldhash::fast::RandomState>,
    /// Dictionary indices of shared lists, [`NULL_INDEX`] for a null value.
    shared_indices: Vec<u32>,
}

/// Stands for a null value among a shared list's dictionary indices.
const NULL_INDEX: u32 = u32::MAX;

impl<'a> LeafWriter<'a> {
    fn new(layout: LeafLayout, present_def: i16, shared_lists: usize) -> Self {
        Self {
            present_def,
            shared_rows: HashMap::with_capacity_and_hasher(shared_lists.min(4096), Default::default()),
            shared_indices: Vec::new(),
            dictionary_open: layout.dictionary,
            rep_levels: Vec::new(),
            def_levels: Vec::new(),
            indices: Vec::new(),
            plain: Vec::new(),
            page_rows: 0,
            dictionary: Dictionary::default(),
            pages: Vec::new(),
            compressor: None,
            body: Vec::new(),
            compressed: Vec::new(),
            layout,
        }
    }

    /// A level with no value: a null or empty map, or a null map value.
    fn level(&mut self, rep: u8, def: i16) {
        self.rep_levels.push(rep);
        self.def_levels.push(def as u8);
    }

    /// Appends a row's entries (`None`: a null value). A list other rows share (`shared` is its ID) is
    /// interned once per row group while the dictionary is open; its indices are copied after that.
    fn entries(&mut self, shared: u32, strings: impl Iterator<Item = Option<&'a [u8]>>) {
        if shared == UNSHARED || !self.dictionary_open {
            for (entry, string) in strings.enumerate() {
                let rep = u8::from(entry > 0);
                match string {
                    Some(string) => self.value(rep, string),
                    None => self.level(rep, self.present_def - 1),
                }
            }
            return;
        }
        let indices = match self.shared_rows.get(&shared) {
            Some(indices) => indices.clone(),
            None => {
                let start = self.shared_indices.len() as u32;
                for string in strings {
                    let index = string.map_or(NULL_INDEX, |string| self.dictionary.intern(string));
                    self.shared_indices.push(index);
                }
                let indices = start..self.shared_indices.len() as u32;
                self.shared_rows.insert(shared, indices.clone());
                indices
            }
        };
        for at in indices.clone() {
            let index = self.shared_indices[at as usize];
            let rep = u8::from(at > indices.start);
            if index == NULL_INDEX {
                self.level(rep, self.present_def - 1);
            } else {
                self.level(rep, self.present_def);
                self.indices.push(index);
            }
        }
    }

    fn value(&mut self, rep: u8, value: &'a [u8]) {
        self.level(rep, self.present_def);
        if self.dictionary_open {
            let index = self.dictionary.intern(value);
            self.indices.push(index);
        } else {
            put_plain(value, &mut self.plain);
        }
    }

    /// Closes a row; ends the page when it has its rows or bytes, or when the dictionary just filled up.
    fn end_row(&mut self) -> Result<(), StorageError> {
        self.page_rows += 1;
        let dictionary_full = self.dictionary_open && self.dictionary.plain_bytes >= self.layout.dictionary_bytes;
        let page_bytes = self.plain.len() + self.indices.len() + self.def_levels.len() / 2;
        if dictionary_full || self.page_rows >= self.layout.page_rows || page_bytes >= self.layout.page_bytes {
            self.flush_page()?;
        }
        if dictionary_full {
            self.dictionary_open = false;
        }
        Ok(())
    }

    /// The page body compressed as the column asks, in a buffer of its own.
    fn compress(&mut self, body: &[u8]) -> Result<Bytes, StorageError> {
        let Compression::ZSTD(level) = self.layout.compression else { return Ok(Bytes::copy_from_slice(body)) };
        let compressor = match &mut self.compressor {
            Some(compressor) => compressor,
            empty => empty.insert(zstd::bulk::Compressor::new(level.compression_level()).map_err(ParquetError::from)?),
        };
        // Reused across pages: a fresh buffer of ZSTD's worst-case size for every page is a fresh mapping
        // for the kernel to zero.
        self.compressed.clear();
        self.compressed.reserve(zstd::zstd_safe::compress_bound(body.len()));
        compressor.compress_to_buffer(body, &mut self.compressed).map_err(ParquetError::from)?;
        Ok(Bytes::copy_from_slice(&self.compressed))
    }

    fn flush_page(&mut self) -> Result<(), StorageError> {
        if self.page_rows == 0 {
            return Ok(());
        }
        let mut body = std::mem::take(&mut self.body);
        body.clear();
        put_levels(&self.rep_levels, self.layout.descr.max_rep_level(), &mut body);
        put_levels(&self.def_levels, self.layout.descr.max_def_level(), &mut body);
        // While the dictionary is in use every page is dictionary-encoded, even one without values, as
        // parquet writes them: readers then see a fully dictionary-encoded chunk.
        let encoding = if !self.dictionary_open {
            body.extend_from_slice(&self.plain);
            Encoding::PLAIN
        } else {
            let width = bit_width(self.dictionary.values.len().saturating_sub(1) as u32);
            body.push(width);
            put_hybrid(&self.indices, width, &mut body);
            Encoding::RLE_DICTIONARY
        };
        let uncompressed = body.len();
        let buf = self.compress(&body)?;
        self.body = body;
        let page = Page::DataPage {
            buf,
            num_values: self.def_levels.len() as u32,
            encoding,
            def_level_encoding: Encoding::RLE,
            rep_level_encoding: Encoding::RLE,
            statistics: None,
        };
        self.pages.push(FinishedPage { page: CompressedPage::new(page, uncompressed), rows: self.page_rows as i64 });
        self.page_rows = 0;
        self.rep_levels.clear();
        self.def_levels.clear();
        self.indices.clear();
        self.plain.clear();
        Ok(())
    }

    /// Writes the chunk: the dictionary page (if any page uses it), then the data pages, and describes it.
    fn finish(mut self) -> Result<EncodedLeaf, StorageError> {
        self.flush_page()?;
        let pages = std::mem::take(&mut self.pages);
        let rows_written = pages.iter().map(|page| page.rows as u64).sum();
        let pages_bytes: usize = pages.iter().map(|p| p.page.compressed_size() + 64).sum();
        let mut sink = TrackedWrite::new(Vec::with_capacity(pages_bytes + self.dictionary.plain_bytes + 64));
        let mut writer = SerializedPageWriter::new(&mut sink);
        let mut encodings = BTreeSet::from([Encoding::RLE]);
        let mut encoding_stats: Vec<PageEncodingStats> = Vec::new();
        let mut offsets = OffsetIndexBuilder::new();
        let (mut compressed, mut uncompressed, mut num_values) = (0i64, 0i64, 0i64);
        let mut count = |spec: &PageWriteSpec, encoding: Encoding| {
            compressed += spec.compressed_size as i64;
            uncompressed += spec.uncompressed_size as i64;
            encodings.insert(encoding);
            match encoding_stats.last_mut() {
                Some(stats) if stats.page_type == spec.page_type && stats.encoding == encoding => stats.count += 1,
                _ => encoding_stats.push(PageEncodingStats { page_type: spec.page_type, encoding, count: 1 }),
            }
        };
        let dictionary_offset = if pages.iter().any(|p| p.page.encoding() == Encoding::RLE_DICTIONARY) {
            let mut plain = Vec::with_capacity(self.dictionary.plain_bytes);
            for value in &self.dictionary.values {
                put_plain(value, &mut plain);
            }
            let uncompressed_size = plain.len();
            let page = Page::DictionaryPage {
                buf: self.compress(&plain)?,
                num_values: self.dictionary.values.len() as u32,
                encoding: Encoding::PLAIN,
                is_sorted: false,
            };
            let spec = writer.write_page(CompressedPage::new(page, uncompressed_size))?;
            count(&spec, Encoding::PLAIN);
            Some(spec.offset as i64)
        } else {
            None
        };
        let mut data_offset = None;
        for FinishedPage { page, rows } in pages {
            let encoding = page.encoding();
            let spec = writer.write_page(page)?;
            count(&spec, encoding);
            num_values += i64::from(spec.num_values);
            data_offset.get_or_insert(spec.offset as i64);
            offsets.append_offset_and_size(spec.offset as i64, spec.compressed_size as i32);
            offsets.append_row_count(rows);
        }
        writer.close()?;
        let metadata = ColumnChunkMetaData::builder(self.layout.descr.clone())
            .set_compression(self.layout.compression)
            .set_encodings_mask(EncodingMask::new_from_encodings(encodings.iter()))
            .set_page_encoding_stats(encoding_stats)
            .set_total_compressed_size(compressed)
            .set_total_uncompressed_size(uncompressed)
            .set_num_values(num_values)
            .set_data_page_offset(data_offset.unwrap_or(0))
            .set_dictionary_page_offset(dictionary_offset)
            .build()?;
        let bytes_written = sink.bytes_written() as u64;
        let data = Bytes::from(sink.into_inner()?);
        let close = ColumnCloseResult {
            bytes_written,
            rows_written,
            metadata,
            bloom_filter: None,
            column_index: None,
            offset_index: Some(offsets.build()),
        };
        Ok(EncodedLeaf { data, close })
    }
}

/// Appends a byte array PLAIN-encoded: its length (4 bytes, little-endian), then its bytes.
fn put_plain(value: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&(value.len() as u32).to_le_bytes());
    out.extend_from_slice(value);
}

/// Bits needed to store `max`.
fn bit_width(max: u32) -> u8 {
    (32 - max.leading_zeros()).max(1) as u8
}

/// A v1 data page's levels: a 4-byte length, then the levels in the RLE / bit-packing hybrid. Nothing
/// when the leaf has no such levels.
fn put_levels(levels: &[u8], max_level: i16, out: &mut Vec<u8>) {
    if max_level == 0 {
        return;
    }
    let length_at = out.len();
    out.extend_from_slice(&[0; 4]);
    put_hybrid(levels, bit_width(max_level as u32), out);
    let length = (out.len() - length_at - 4) as u32;
    out[length_at..length_at + 4].copy_from_slice(&length.to_le_bytes());
}

/// Runs of at least this many equal values are written run-length encoded, the rest bit-packed.
const MIN_RLE_RUN: usize = 8;
/// Bit-packed runs are at most this many groups of 8 values, as parquet's own encoder writes them.
const MAX_PACKED_GROUPS: usize = 63;

/// Appends `values` in Parquet's RLE / bit-packing hybrid encoding, `width` bits each. A bit-packed run
/// holds whole groups of 8; only the last run may end in a partial group, padded with zeros (readers know
/// the value count from the page).
fn put_hybrid<T: Copy + PartialEq + Into<u32>>(values: &[T], width: u8, out: &mut Vec<u8>) {
    let run_at =
        |at: usize| values.get(at).map_or(0, |first| values[at..].iter().take_while(|value| *value == first).count());
    let mut at = 0;
    while at < values.len() {
        let run = run_at(at);
        if run >= MIN_RLE_RUN {
            put_varint((run as u64) << 1, out);
            out.extend_from_slice(&values[at].into().to_le_bytes()[..usize::from(width).div_ceil(8)]);
            at += run;
            continue;
        }
        let start = at;
        let mut groups = 0;
        loop {
            at = (at + 8).min(values.len());
            groups += 1;
            if at == values.len() || groups == MAX_PACKED_GROUPS || run_at(at) >= MIN_RLE_RUN {
                break;
            }
        }
        put_varint(((groups as u64) << 1) | 1, out);
        put_packed(&values[start..at], groups * 8, width, out);
    }
}

/// Bit-packs `values`, padded with zeros to `count`, least significant bit first.
fn put_packed<T: Copy + Into<u32>>(values: &[T], count: usize, width: u8, out: &mut Vec<u8>) {
    let (mut buffer, mut bits) = (0u64, 0u8);
    let padding = std::iter::repeat_n(0, count - values.len());
    for value in values.iter().map(|value| (*value).into()).chain(padding) {
        buffer |= u64::from(value) << bits;
        bits += width;
        while bits >= 8 {
            out.push(buffer as u8);
            buffer >>= 8;
            bits -= 8;
        }
    }
}

fn put_varint(mut value: u64, out: &mut Vec<u8>) {
    while value >= 0x80 {
        out.push(value as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{MapBuilder, MapFieldNames, RecordBatch, StringBuilder};
    use arrow::compute::{concat_batches, filter_record_batch, interleave};
    use arrow::datatypes::{Field, Schema};
    use parquet::arrow::ArrowWriter;
    use parquet::arrow::arrow_reader::{ArrowReaderOptions, ParquetRecordBatchReaderBuilder, RowSelection};
    use parquet::basic::{PageType, ZstdLevel};
    use parquet::file::metadata::PageIndexPolicy;
    use proptest::prelude::*;

    use super::*;
    use crate::spans::schema::attribute_map_type;

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

    /// How a test file is laid out.
    #[derive(Clone, Debug)]
    struct Layout {
        nullable: bool,
        dictionary: bool,
        zstd: bool,
        page_rows: usize,
        dictionary_bytes: usize,
        row_group_rows: usize,
    }

    /// Writes the rows of `batches` at `positions` with [`encode_string_map`], `layout.row_group_rows` per
    /// row group, into a Parquet file that parquet's own writer set up.
    fn write_file(batches: &[RecordBatch], positions: &[(usize, usize)], layout: &Layout) -> Bytes {
        let compression =
            if layout.zstd { Compression::ZSTD(ZstdLevel::try_new(3).unwrap()) } else { Compression::UNCOMPRESSED };
        let props = WriterProperties::builder()
            .set_statistics_enabled(EnabledStatistics::None)
            .set_compression(compression)
            .set_dictionary_enabled(layout.dictionary)
            .set_dictionary_page_size_limit(layout.dictionary_bytes)
            .set_data_page_row_count_limit(layout.page_rows)
            .build();
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

    /// Reads the file back with parquet's Arrow reader, through the page index when `selection` is given.
    fn read_file(file: Bytes, selection: Option<RowSelection>) -> RecordBatch {
        let options = ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Required);
        let mut builder = ParquetRecordBatchReaderBuilder::try_new_with_options(file, options).unwrap();
        if let Some(selection) = selection {
            builder = builder.with_row_selection(selection);
        }
        let schema = builder.schema().clone();
        let batches: Vec<_> = builder.build().unwrap().collect::<Result<_, _>>().unwrap();
        concat_batches(&schema, &batches).unwrap()
    }

    fn expected(batches: &[RecordBatch], positions: &[(usize, usize)]) -> RecordBatch {
        let columns: Vec<&dyn Array> = batches.iter().map(|b| b.column(0).as_ref()).collect();
        RecordBatch::try_new(batches[0].schema(), vec![interleave(&columns, positions).unwrap()]).unwrap()
    }

    fn row() -> impl Strategy<Value = Row> {
        // Few distinct keys and values, so runs and dictionary hits happen; sometimes long text.
        let text = prop_oneof![4 => "[ab]{0,2}", 1 => "[a-z]{20,60}"];
        let entry = (text.clone(), prop::option::weighted(0.9, text));
        prop::option::weighted(0.9, prop::collection::vec(entry, 0..12))
    }

    fn layout() -> impl Strategy<Value = Layout> {
        (any::<bool>(), any::<bool>(), any::<bool>(), 1usize..40, prop_oneof![Just(1 << 20), 8usize..300], 1usize..200)
            .prop_map(|(nullable, dictionary, zstd, page_rows, dictionary_bytes, row_group_rows)| Layout {
                nullable,
                dictionary,
                zstd,
                page_rows,
                dictionary_bytes,
                row_group_rows,
            })
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
            layout in layout(),
            skip in 1usize..30,
            take in 1usize..30,
        ) {
            let rows: Vec<Row> = rows
                .into_iter()
                .map(|row| if layout.nullable { row } else { row.or_else(|| Some(Vec::new())) })
                .collect();
            // Split into batches, as requests arrive, and write them in a shuffled order.
            let mut bounds: Vec<usize> = cuts.iter().map(|cut| cut.index(rows.len())).collect();
            bounds.extend([0, rows.len()]);
            bounds.sort_unstable();
            bounds.dedup();
            let batches: Vec<_> = bounds.windows(2).map(|w| map_batch(&rows[w[0]..w[1]], layout.nullable)).collect();
            let mut positions: Vec<(usize, usize)> =
                batches.iter().enumerate().flat_map(|(b, batch)| (0..batch.num_rows()).map(move |r| (b, r))).collect();
            let mut state = seed | 1;
            for i in (1..positions.len()).rev() {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                positions.swap(i, (state % (i as u64 + 1)) as usize);
            }
            let file = write_file(&batches, &positions, &layout);
            let want = expected(&batches, &positions);
            prop_assert_eq!(&read_file(file.clone(), None), &want);

            let selection = RowSelection::from_consecutive_ranges(
                (0..positions.len()).step_by(skip + take).map(|start| start..(start + take).min(positions.len())),
                positions.len(),
            );
            let mask: arrow::array::BooleanArray =
                (0..positions.len()).map(|row| Some(row % (skip + take) < take)).collect();
            prop_assert_eq!(read_file(file, Some(selection)), filter_record_batch(&want, &mask).unwrap());
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
        let layout = Layout {
            nullable: true,
            dictionary: true,
            zstd: true,
            page_rows: 100,
            dictionary_bytes: 2000,
            row_group_rows: 1000,
        };
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
        assert_eq!(read_file(file, None), batch);
    }

    /// While the dictionary is in use, pages without values are dictionary-encoded too (parquet writes
    /// them so), and a column without a single value still gets its (empty) dictionary page.
    #[test]
    fn pages_without_values_stay_dictionary_encoded() {
        let entry = || Some(vec![("a".to_owned(), Some("b".to_owned()))]);
        let layout = Layout {
            nullable: true,
            dictionary: true,
            zstd: false,
            page_rows: 1,
            dictionary_bytes: 1 << 20,
            row_group_rows: 10,
        };
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
            assert_eq!(read_file(file, None), batch);
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

    #[test]
    fn the_hybrid_encoding_writes_runs_and_packed_groups_as_the_format_defines_them() {
        let mut out = Vec::new();
        put_hybrid(&[3u8; 10], 2, &mut out);
        assert_eq!(out, [10 << 1, 3], "one run of ten 3s");
        out.clear();
        put_hybrid(&[1u32, 0, 1], 1, &mut out);
        assert_eq!(out, [(1 << 1) | 1, 0b101], "one packed group, zero-padded");
        out.clear();
        put_hybrid(&[0u8, 1, 0, 1, 0, 1, 0, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2], 2, &mut out);
        assert_eq!(out, [(1 << 1) | 1, 0b0100_0100, 0b0100_0100, 9 << 1, 2], "a packed group, then a run");
    }
}
