//! Writes one Parquet leaf column chunk from values handed to it row by row: levels, dictionary or PLAIN
//! values, v1 pages, compression, statistics, column index and offset index. The direct encoders
//! (`string_map.rs` for the attribute maps, `flat.rs` for the flat columns) feed it straight from the
//! request batches, so the block's rows are never gathered into sorted Arrow arrays for them.
//!
//! Why by hand: parquet's Arrow writer needs every column gathered into sorted order first, walks the
//! Arrow type to compute levels, and interns every value through generic machinery. This writer takes a
//! value as bytes where it sits, skips the dictionary lookup and the statistics comparison when a value
//! repeats the one before (sorted columns mostly do), and copies a shared list's dictionary indices.
//!
//! The chunks are what parquet's writer would write with the same settings: the same pages (v1 data pages
//! of `data_page_rows` rows, RLE levels, `RLE_DICTIONARY` values after a `PLAIN` dictionary page, `PLAIN`
//! once the dictionary passes its limit), the same statistics (min/max truncated as parquet truncates
//! them, null counts, level histograms, unencoded byte-array sizes), column index and offset index. Only
//! leaves whose settings this writer covers come here ([`LeafLayout::for_leaf`]); the rest go through
//! parquet's writer.
//!
//! May call: parquet's page writer and metadata builders, zstd. Nothing else.

use std::collections::{BTreeSet, HashMap};

use bytes::Bytes;
use parquet::basic::{BoundaryOrder, Compression, ConvertedType, Encoding, EncodingMask, LogicalType, Type};
use parquet::column::page::{CompressedPage, Page, PageWriteSpec, PageWriter};
use parquet::column::writer::ColumnCloseResult;
use parquet::data_type::{ByteArray, FixedLenByteArray};
use parquet::errors::ParquetError;
use parquet::file::metadata::{
    ColumnChunkMetaData, ColumnIndexBuilder, LevelHistogram, OffsetIndexBuilder, PageEncodingStats,
};
use parquet::file::properties::{EnabledStatistics, WriterProperties, WriterVersion};
use parquet::file::statistics::{Statistics, ValueStatistics};
use parquet::file::writer::{SerializedPageWriter, TrackedWrite};
use parquet::schema::types::ColumnDescPtr;

use crate::storage::StorageError;

/// How a leaf's values are laid out as bytes, PLAIN-encoded, and ordered for statistics.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum ValueKind {
    /// `BYTE_ARRAY`: PLAIN is a 4-byte length, then the bytes; ordered byte by byte.
    ByteArray,
    /// `FIXED_LEN_BYTE_ARRAY` without a decimal or float16 type: the bytes; ordered byte by byte.
    Fixed,
    /// `INT32` or `INT64` (`width` bytes, little-endian), ordered signed or unsigned as the type says.
    Int { width: usize, signed: bool },
}

impl ValueKind {
    fn of(descr: &ColumnDescPtr) -> Option<Self> {
        let signed = descr.sort_order().is_signed();
        match descr.physical_type() {
            Type::BYTE_ARRAY => Some(Self::ByteArray),
            Type::FIXED_LEN_BYTE_ARRAY
                if !matches!(descr.logical_type_ref(), Some(LogicalType::Decimal { .. } | LogicalType::Float16)) =>
            {
                Some(Self::Fixed)
            }
            Type::INT32 => Some(Self::Int { width: 4, signed }),
            Type::INT64 => Some(Self::Int { width: 8, signed }),
            _ => None,
        }
    }

    /// Whether `a` sorts after `b` in the column's statistics order.
    #[inline]
    fn greater(self, a: &[u8], b: &[u8]) -> bool {
        match self {
            Self::ByteArray | Self::Fixed => match (<[u8; 16]>::try_from(a), <[u8; 16]>::try_from(b)) {
                (Ok(a), Ok(b)) => u128::from_be_bytes(a) > u128::from_be_bytes(b),
                _ => a > b,
            },
            Self::Int { width: 4, signed: true } => le_int(a) as u32 as i32 > le_int(b) as u32 as i32,
            Self::Int { signed: true, .. } => le_int(a) as i64 > le_int(b) as i64,
            Self::Int { signed: false, .. } => le_int(a) > le_int(b),
        }
    }

    /// Bytes a value adds to a PLAIN page or dictionary.
    fn plain_size(self, value: &[u8]) -> usize {
        match self {
            Self::ByteArray => 4 + value.len(),
            _ => value.len(),
        }
    }

    fn put_plain(self, value: &[u8], out: &mut Vec<u8>) {
        if self == Self::ByteArray {
            out.extend_from_slice(&(value.len() as u32).to_le_bytes());
        }
        out.extend_from_slice(value);
    }
}

/// A 4- or 8-byte little-endian integer's value (0 for other lengths, which `ValueKind::Int` never has).
#[inline]
fn le_int(bytes: &[u8]) -> u64 {
    match (<[u8; 8]>::try_from(bytes), <[u8; 4]>::try_from(bytes)) {
        (Ok(bytes), _) => u64::from_le_bytes(bytes),
        (_, Ok(bytes)) => u64::from(u32::from_le_bytes(bytes)),
        _ => 0,
    }
}

/// Byte equality, with single compares for the widths of IDs and integers: values are compared with the
/// one before on every row, and a call to `memcmp` per compare was a tenth of a block write.
#[inline]
fn same(a: &[u8], b: &[u8]) -> bool {
    match a.len() {
        _ if a.len() != b.len() => false,
        4 => a.first_chunk::<4>() == b.first_chunk::<4>(),
        8 => a.first_chunk::<8>() == b.first_chunk::<8>(),
        16 => a.first_chunk::<16>() == b.first_chunk::<16>(),
        _ => a == b,
    }
}

/// How one leaf column is written, read from the block's writer settings.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct LeafLayout {
    pub(super) descr: ColumnDescPtr,
    kind: ValueKind,
    dictionary: bool,
    /// `UNCOMPRESSED` or `ZSTD`: the codecs this writer writes.
    compression: Compression,
    page_rows: usize,
    page_bytes: usize,
    dictionary_bytes: usize,
    statistics: EnabledStatistics,
    statistics_truncate: Option<usize>,
    index_truncate: Option<usize>,
}

impl LeafLayout {
    /// The layout `props` asks for this leaf, or `None` when it asks for something this writer does not
    /// write (bloom filters, page header statistics, v2 pages, another codec or encoding, a value type
    /// other than byte arrays and 32/64-bit integers): such columns go through parquet.
    pub(super) fn for_leaf(props: &WriterProperties, descr: &ColumnDescPtr) -> Option<Self> {
        let path = descr.path();
        let compression = props.compression(path);
        let covered = matches!(compression, Compression::UNCOMPRESSED | Compression::ZSTD(_))
            && props.bloom_filter_properties(path).is_none()
            && props.encoding(path).is_none()
            && !props.write_page_header_statistics(path)
            && props.content_defined_chunking().is_none()
            && props.writer_version() == WriterVersion::PARQUET_1_0
            && !props.offset_index_disabled();
        let kind = ValueKind::of(descr).filter(|_| covered)?;
        Some(Self {
            descr: descr.clone(),
            kind,
            // Parquet's v1 writer never dictionary-encodes fixed-size binary.
            dictionary: props.dictionary_enabled(path) && kind != ValueKind::Fixed,
            compression,
            page_rows: props.data_page_row_count_limit().max(1),
            page_bytes: props.column_data_page_size_limit(path),
            dictionary_bytes: props.column_dictionary_page_size_limit(path),
            statistics: props.statistics_enabled(path),
            statistics_truncate: props.statistics_truncate_length(),
            index_truncate: props.column_index_truncate_length(),
        })
    }

    pub(super) fn kind(&self) -> ValueKind {
        self.kind
    }

    pub(super) fn has_statistics(&self) -> bool {
        self.statistics != EnabledStatistics::None
    }

    fn is_utf8(&self) -> bool {
        self.descr.logical_type_ref() == Some(&LogicalType::String)
            || self.descr.converted_type() == ConvertedType::UTF8
    }

    /// A min statistic cut to `length` bytes (whole UTF-8 characters for text), and whether it was cut.
    fn truncate_min<'v>(&self, length: Option<usize>, value: &'v [u8]) -> (std::borrow::Cow<'v, [u8]>, bool) {
        let cut = length.filter(|&length| !matches!(self.kind, ValueKind::Int { .. }) && value.len() > length);
        let cut = cut.and_then(|length| match std::str::from_utf8(value).ok().filter(|_| self.is_utf8()) {
            Some(text) => (1..=length).rev().find(|&at| text.is_char_boundary(at)).map(|at| &value[..at]),
            None => Some(&value[..length]),
        });
        match cut {
            Some(prefix) => (prefix.into(), true),
            None => (value.into(), false),
        }
    }

    /// A max statistic cut to `length` bytes and raised so it still bounds the value (the last character
    /// or byte that can be incremented is), and whether it was cut.
    fn truncate_max<'v>(&self, length: Option<usize>, value: &'v [u8]) -> (std::borrow::Cow<'v, [u8]>, bool) {
        let cut = length.filter(|&length| !matches!(self.kind, ValueKind::Int { .. }) && value.len() > length);
        let raised = cut.and_then(|length| match std::str::from_utf8(value).ok().filter(|_| self.is_utf8()) {
            Some(text) => {
                let at = (length.saturating_sub(3)..=length).rev().find(|&at| text.is_char_boundary(at))?;
                increment_utf8(&text[..at])
            }
            None => increment_bytes(&value[..length]),
        });
        match raised {
            Some(bound) => (bound.into(), true),
            None => (value.into(), false),
        }
    }
}

/// The shortest change to `text` that sorts after every string it prefixes: its last character that can
/// be incremented without changing its UTF-8 length is, and what follows is dropped.
fn increment_utf8(text: &str) -> Option<Vec<u8>> {
    text.char_indices().rev().find_map(|(at, last)| {
        let next = char::from_u32(last as u32 + 1).filter(|next| next.len_utf8() == last.len_utf8())?;
        let mut bound = text.as_bytes()[..at + last.len_utf8()].to_vec();
        next.encode_utf8(&mut bound[at..]);
        Some(bound)
    })
}

/// `bytes` incremented as a big-endian number of its own length; `None` if all are 0xFF.
fn increment_bytes(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut bound = bytes.to_vec();
    for byte in bound.iter_mut().rev() {
        let (next, overflow) = byte.overflowing_add(1);
        *byte = next;
        if !overflow {
            return Some(bound);
        }
    }
    None
}

/// The batch at `batch` of a direct encoder's `sources`, if it has a row `row` (`rows` counts a batch's
/// rows); else the error every encoder gives for a position outside its input.
pub(super) fn source_at<S>(
    sources: &[S],
    batch: usize,
    row: usize,
    rows: impl Fn(&S) -> usize,
) -> Result<&S, StorageError> {
    sources
        .get(batch)
        .filter(|source| row < rows(source))
        .ok_or_else(|| ParquetError::General(format!("no row {row} in batch {batch}")).into())
}

/// One leaf's column chunk, with what parquet's row-group writer needs to append it.
pub(super) struct EncodedLeaf {
    pub data: Bytes,
    pub close: ColumnCloseResult,
}

/// Distinct values of a leaf in order of first appearance, for its dictionary page.
#[derive(Default)]
struct Dictionary<'a> {
    index: HashMap<&'a [u8], u32, foldhash::fast::RandomState>,
    values: Vec<&'a [u8]>,
    /// Size of the dictionary page before compression.
    plain_bytes: usize,
}

impl<'a> Dictionary<'a> {
    fn intern(&mut self, kind: ValueKind, value: &'a [u8]) -> u32 {
        let next = self.values.len() as u32;
        *self.index.entry(value).or_insert_with(|| {
            self.values.push(value);
            self.plain_bytes += kind.plain_size(value);
            next
        })
    }
}

/// The smallest and largest value seen, in the column's order.
#[derive(Clone, Copy)]
struct Bounds<'a> {
    min: &'a [u8],
    max: &'a [u8],
}

impl<'a> Bounds<'a> {
    fn widen(bounds: &mut Option<Self>, kind: ValueKind, other: Self) {
        match bounds {
            None => *bounds = Some(other),
            Some(bounds) => {
                if kind.greater(bounds.min, other.min) {
                    bounds.min = other.min;
                }
                if kind.greater(other.max, bounds.max) {
                    bounds.max = other.max;
                }
            }
        }
    }
}

/// A page encoded and compressed, waiting for the chunk's dictionary page to be written first.
struct FinishedPage {
    page: CompressedPage,
    rows: i64,
    /// Bytes of the page's byte-array values before encoding (`BYTE_ARRAY` leaves only).
    unencoded: Option<i64>,
}

/// The statistics of a chunk being written, when its settings ask for them.
struct ChunkStatistics<'a> {
    bounds: Option<Bounds<'a>>,
    nulls: u64,
    unencoded: Option<i64>,
    rep_histogram: Option<LevelHistogram>,
    def_histogram: Option<LevelHistogram>,
    /// The column index, for page statistics; with the previous non-null page's bounds and whether the
    /// pages' bounds still ascend or descend.
    index: Option<ColumnIndexBuilder>,
    previous: Option<Bounds<'a>>,
    ascending: bool,
    descending: bool,
}

/// Marks a list no other row shares (see [`LeafWriter::entries`]).
pub(super) const UNSHARED: u32 = u32::MAX;

/// Stands for a null value among a shared list's dictionary indices.
const NULL_INDEX: u32 = u32::MAX;

/// Writes one leaf column chunk: levels and values of the current page, finished pages, the dictionary.
pub(super) struct LeafWriter<'a> {
    layout: LeafLayout,
    rep_levels: Vec<u8>,
    def_levels: Vec<u8>,
    /// Levels (values, nulls and empty lists) in the current page.
    page_levels: usize,
    page_nulls: u64,
    /// Dictionary indices of the current page's values, while the dictionary is in use.
    indices: Vec<u32>,
    /// PLAIN-encoded values of the current page, once the dictionary is full (or off).
    plain: Vec<u8>,
    page_rows: usize,
    /// The previous value of this page and its dictionary index (any, when PLAIN): a repeat needs no
    /// lookup and no comparison.
    previous: Option<(&'a [u8], u32)>,
    page_bounds: Option<Bounds<'a>>,
    page_unencoded: i64,
    dictionary: Dictionary<'a>,
    /// Whether values go to the dictionary: set when enabled, cleared for good once it is full.
    dictionary_open: bool,
    pages: Vec<FinishedPage>,
    statistics: Option<ChunkStatistics<'a>>,
    compressor: Option<zstd::bulk::Compressor<'static>>,
    /// Scratch buffers for a page's body and its compressed form, reused from page to page.
    body: Vec<u8>,
    compressed: Vec<u8>,
    /// Definition level of an entry that has its value (one less: a null value).
    present_def: i16,
    /// Per shared list met in this chunk while the dictionary was open: where its dictionary indices sit
    /// in `shared_indices`.
    /// The second field is the bytes of the list's values, for the offset index.
    shared_rows: HashMap<u32, (std::ops::Range<u32>, i64), foldhash::fast::RandomState>,
    /// Dictionary indices of shared lists, [`NULL_INDEX`] for a null value.
    shared_indices: Vec<u32>,
}

impl<'a> LeafWriter<'a> {
    /// A writer for one chunk; `shared_lists` sizes the table of lists rows share (0 for a flat leaf).
    pub(super) fn new(layout: LeafLayout, shared_lists: usize) -> Self {
        let descr = &layout.descr;
        let statistics = layout.has_statistics().then(|| ChunkStatistics {
            bounds: None,
            nulls: 0,
            unencoded: None,
            rep_histogram: LevelHistogram::try_new(descr.max_rep_level()),
            def_histogram: LevelHistogram::try_new(descr.max_def_level()),
            index: (layout.statistics == EnabledStatistics::Page)
                .then(|| ColumnIndexBuilder::new(descr.physical_type())),
            previous: None,
            ascending: true,
            descending: true,
        });
        Self {
            present_def: descr.max_def_level(),
            shared_rows: HashMap::with_capacity_and_hasher(shared_lists.min(4096), Default::default()),
            shared_indices: Vec::new(),
            dictionary_open: layout.dictionary,
            rep_levels: Vec::new(),
            def_levels: Vec::new(),
            page_levels: 0,
            page_nulls: 0,
            indices: Vec::new(),
            plain: Vec::new(),
            page_rows: 0,
            previous: None,
            page_bounds: None,
            page_unencoded: 0,
            dictionary: Dictionary::default(),
            pages: Vec::new(),
            statistics,
            compressor: None,
            body: Vec::new(),
            compressed: Vec::new(),
            layout,
        }
    }

    /// A level: of a value when `def` is the leaf's maximum, else of a null or an empty or null list.
    pub(super) fn level(&mut self, rep: u8, def: i16) {
        if self.layout.descr.max_rep_level() > 0 {
            self.rep_levels.push(rep);
        }
        if self.present_def > 0 {
            self.def_levels.push(def as u8);
        }
        self.page_levels += 1;
        self.page_nulls += u64::from(def < self.present_def);
    }

    /// A null value at repetition level `rep`.
    pub(super) fn null(&mut self, rep: u8) {
        self.level(rep, self.present_def - 1);
    }

    /// Appends a row's entries (`None`: a null value). A list other rows share (`shared` is its ID) is
    /// interned once per chunk while the dictionary is open; its indices are copied after that. Shared
    /// lists only go to leaves without statistics (the attribute maps).
    pub(super) fn entries(&mut self, shared: u32, values: impl Iterator<Item = Option<&'a [u8]>>) {
        if shared == UNSHARED || !self.dictionary_open || self.statistics.is_some() {
            for (entry, value) in values.enumerate() {
                let rep = u8::from(entry > 0);
                match value {
                    Some(value) => self.value(rep, value),
                    None => self.null(rep),
                }
            }
            return;
        }
        let (indices, bytes) = match self.shared_rows.get(&shared) {
            Some(list) => list.clone(),
            None => {
                let (start, mut bytes) = (self.shared_indices.len() as u32, 0);
                for value in values {
                    let index = value.map_or(NULL_INDEX, |value| {
                        bytes += value.len() as i64;
                        self.dictionary.intern(self.layout.kind, value)
                    });
                    self.shared_indices.push(index);
                }
                let list = (start..self.shared_indices.len() as u32, bytes);
                self.shared_rows.insert(shared, list.clone());
                list
            }
        };
        if self.layout.kind == ValueKind::ByteArray {
            self.page_unencoded += bytes;
        }
        for at in indices.clone() {
            let index = self.shared_indices[at as usize];
            let rep = u8::from(at > indices.start);
            if index == NULL_INDEX {
                self.null(rep);
            } else {
                self.level(rep, self.present_def);
                self.indices.push(index);
            }
        }
    }

    /// A value at repetition level `rep`.
    pub(super) fn value(&mut self, rep: u8, value: &'a [u8]) {
        self.level(rep, self.present_def);
        if self.layout.kind == ValueKind::ByteArray {
            self.page_unencoded += value.len() as i64;
        }
        let repeat = matches!(self.previous, Some((previous, _)) if same(previous, value));
        if self.dictionary_open {
            let index = match self.previous {
                Some((_, index)) if repeat => index,
                _ => self.dictionary.intern(self.layout.kind, value),
            };
            self.indices.push(index);
            self.previous = Some((value, index));
        } else {
            self.layout.kind.put_plain(value, &mut self.plain);
            self.previous = Some((value, 0));
        }
        if !repeat && self.statistics.is_some() {
            Bounds::widen(&mut self.page_bounds, self.layout.kind, Bounds { min: value, max: value });
        }
    }

    /// `rows` rows of one flat value each (`None`: null), written as that many calls of [`Self::value`]
    /// (or [`Self::null`]) at repetition level 0 and [`Self::end_row`] would write them. Why: a column
    /// that holds the same value in every row of a block (scope name, schema URLs, dropped counts, trace
    /// state) then costs a few bulk copies per page instead of a lookup, a comparison and a level per row.
    pub(super) fn repeat(&mut self, value: Option<&'a [u8]>, mut rows: usize) -> Result<(), StorageError> {
        while rows > 0 {
            // A page's first row goes the usual way: it interns the value and widens the page's
            // statistics, after which every other row of the page is a repeat that changes neither.
            match value {
                Some(value) => self.value(0, value),
                None => self.null(0),
            }
            self.end_row()?;
            rows -= 1;
            if self.page_rows == 0 {
                continue;
            }
            let (run, page_ends) = self.repeats_left_in_page(value, rows);
            self.push_repeats(value, run);
            rows -= run;
            if page_ends {
                self.flush_page()?;
            }
        }
        Ok(())
    }

    /// How many more repeats of `value` (at most `rows`) the current page takes, and whether the last of
    /// them ends it: the first row after which [`Self::end_row`] would flush for the page's rows or bytes.
    fn repeats_left_in_page(&self, value: Option<&[u8]>, rows: usize) -> (usize, bool) {
        let value_bytes = match value {
            None => 0,
            Some(_) if self.dictionary_open => 1,
            Some(value) => self.layout.kind.plain_size(value),
        };
        let level_bytes = usize::from(self.present_def > 0);
        let bytes_after = |run: usize| {
            self.plain.len() + self.indices.len() + run * value_bytes + (self.def_levels.len() + run * level_bytes) / 2
        };
        let rows_left = self.layout.page_rows.saturating_sub(self.page_rows).max(1);
        // The first run that reaches the page's byte limit: the bytes grow with the run, so a binary
        // search finds it.
        let (mut low, mut high) = (1, rows_left.min(rows) + 1);
        while low < high {
            let middle = low + (high - low) / 2;
            if bytes_after(middle) >= self.layout.page_bytes {
                high = middle;
            } else {
                low = middle + 1;
            }
        }
        match low.min(rows_left) {
            run if run <= rows => (run, true),
            _ => (rows, false),
        }
    }

    /// Appends `run` rows repeating the page's previous value (or nulls), without ending the page.
    fn push_repeats(&mut self, value: Option<&'a [u8]>, run: usize) {
        if self.layout.descr.max_rep_level() > 0 {
            self.rep_levels.resize(self.rep_levels.len() + run, 0);
        }
        let def = if value.is_some() { self.present_def } else { self.present_def - 1 };
        if self.present_def > 0 {
            self.def_levels.resize(self.def_levels.len() + run, def as u8);
        }
        self.page_levels += run;
        self.page_rows += run;
        let Some(value) = value else {
            self.page_nulls += run as u64;
            return;
        };
        if self.layout.kind == ValueKind::ByteArray {
            self.page_unencoded += (run * value.len()) as i64;
        }
        match self.previous {
            Some((_, index)) if self.dictionary_open => self.indices.resize(self.indices.len() + run, index),
            _ => (0..run).for_each(|_| self.layout.kind.put_plain(value, &mut self.plain)),
        }
    }

    /// Closes a row; ends the page when it has its rows or bytes, or when the dictionary just filled up.
    pub(super) fn end_row(&mut self) -> Result<(), StorageError> {
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
        self.page_statistics();
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
            num_values: self.page_levels as u32,
            encoding,
            def_level_encoding: Encoding::RLE,
            rep_level_encoding: Encoding::RLE,
            statistics: None,
        };
        let unencoded = (self.layout.kind == ValueKind::ByteArray).then_some(self.page_unencoded);
        let page = CompressedPage::new(page, uncompressed);
        self.pages.push(FinishedPage { page, rows: self.page_rows as i64, unencoded });
        self.page_rows = 0;
        self.page_levels = 0;
        self.page_nulls = 0;
        self.page_unencoded = 0;
        self.page_bounds = None;
        self.previous = None;
        self.rep_levels.clear();
        self.def_levels.clear();
        self.indices.clear();
        self.plain.clear();
        Ok(())
    }

    /// Adds the current page to the chunk's statistics and column index.
    fn page_statistics(&mut self) {
        let Some(chunk) = &mut self.statistics else { return };
        let kind = self.layout.kind;
        let histogram = |levels: &[u8], max: i16| {
            LevelHistogram::try_new(max).map(|mut histogram| {
                let mut counts = [0i64; 256];
                levels.iter().for_each(|&level| counts[usize::from(level)] += 1);
                for (level, &count) in counts.iter().enumerate().take(max as usize + 1) {
                    histogram.increment_by(level as i16, count);
                }
                histogram
            })
        };
        let rep = histogram(&self.rep_levels, self.layout.descr.max_rep_level());
        let def = histogram(&self.def_levels, self.layout.descr.max_def_level());
        if let Some(index) = &mut chunk.index {
            if self.page_nulls == self.page_rows as u64 {
                index.append(true, Vec::new(), Vec::new(), self.page_nulls as i64);
            } else if let Some(page) = self.page_bounds {
                if let Some(previous) = chunk.previous {
                    chunk.ascending &= !(kind.greater(previous.min, page.min) || kind.greater(previous.max, page.max));
                    chunk.descending &= !(kind.greater(page.min, previous.min) || kind.greater(page.max, previous.max));
                }
                chunk.previous = Some(page);
                let length = self.layout.index_truncate;
                let (min, _) = self.layout.truncate_min(length, page.min);
                let (max, _) = self.layout.truncate_max(length, page.max);
                index.append(false, min.into_owned(), max.into_owned(), self.page_nulls as i64);
            } else {
                index.to_invalid();
            }
            index.append_histograms(&rep, &def);
        }
        for (chunk_histogram, page_histogram) in [(&mut chunk.rep_histogram, rep), (&mut chunk.def_histogram, def)] {
            if let (Some(chunk_histogram), Some(page_histogram)) = (chunk_histogram, page_histogram) {
                chunk_histogram.add(&page_histogram);
            }
        }
        if let Some(page) = self.page_bounds {
            Bounds::widen(&mut chunk.bounds, kind, page);
        }
        chunk.nulls += self.page_nulls;
        if kind == ValueKind::ByteArray {
            *chunk.unencoded.get_or_insert(0) += self.page_unencoded;
        }
    }

    /// The chunk's min/max statistics as parquet's writer records them.
    fn chunk_statistics(&self, chunk: &ChunkStatistics<'_>) -> Statistics {
        let layout = &self.layout;
        let signed = layout.descr.sort_order().is_signed();
        let length = layout.statistics_truncate;
        let bounds = chunk.bounds;
        let nulls = Some(chunk.nulls);
        match layout.kind {
            ValueKind::Int { width: 4, .. } => Statistics::Int32(
                ValueStatistics::new(
                    bounds.map(|b| le_int(b.min) as u32 as i32),
                    bounds.map(|b| le_int(b.max) as u32 as i32),
                    None,
                    nulls,
                    false,
                )
                .with_backwards_compatible_min_max(signed),
            ),
            ValueKind::Int { .. } => Statistics::Int64(
                ValueStatistics::new(
                    bounds.map(|b| le_int(b.min) as i64),
                    bounds.map(|b| le_int(b.max) as i64),
                    None,
                    nulls,
                    false,
                )
                .with_backwards_compatible_min_max(signed),
            ),
            ValueKind::ByteArray | ValueKind::Fixed => {
                let cut = bounds.map(|b| (layout.truncate_min(length, b.min), layout.truncate_max(length, b.max)));
                let exact = cut.as_ref().map(|((_, min_cut), (_, max_cut))| (!*min_cut, !*max_cut));
                let (min, max) = match cut {
                    Some(((min, _), (max, _))) => (Some(min.into_owned()), Some(max.into_owned())),
                    None => (None, None),
                };
                if layout.kind == ValueKind::ByteArray {
                    Statistics::ByteArray(with_exactness(
                        ValueStatistics::new(min.map(ByteArray::from), max.map(ByteArray::from), None, nulls, false)
                            .with_backwards_compatible_min_max(signed),
                        exact,
                    ))
                } else {
                    let fixed = |bytes: Vec<u8>| FixedLenByteArray::from(ByteArray::from(bytes));
                    Statistics::FixedLenByteArray(with_exactness(
                        ValueStatistics::new(min.map(fixed), max.map(fixed), None, nulls, false)
                            .with_backwards_compatible_min_max(signed),
                        exact,
                    ))
                }
            }
        }
    }

    /// Writes the chunk: the dictionary page (if any page uses it), then the data pages, and describes it.
    pub(super) fn finish(mut self) -> Result<EncodedLeaf, StorageError> {
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
                self.layout.kind.put_plain(value, &mut plain);
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
        for FinishedPage { page, rows, unencoded } in pages {
            let encoding = page.encoding();
            let spec = writer.write_page(page)?;
            count(&spec, encoding);
            num_values += i64::from(spec.num_values);
            data_offset.get_or_insert(spec.offset as i64);
            offsets.append_offset_and_size(spec.offset as i64, spec.compressed_size as i32);
            offsets.append_row_count(rows);
            offsets.append_unencoded_byte_array_data_bytes(unencoded);
        }
        writer.close()?;
        let mut metadata = ColumnChunkMetaData::builder(self.layout.descr.clone())
            .set_compression(self.layout.compression)
            .set_encodings_mask(EncodingMask::new_from_encodings(encodings.iter()))
            .set_page_encoding_stats(encoding_stats)
            .set_total_compressed_size(compressed)
            .set_total_uncompressed_size(uncompressed)
            .set_num_values(num_values)
            .set_data_page_offset(data_offset.unwrap_or(0))
            .set_dictionary_page_offset(dictionary_offset);
        let mut column_index = None;
        if let Some(chunk) = self.statistics.take() {
            metadata = metadata
                .set_statistics(self.chunk_statistics(&chunk))
                .set_unencoded_byte_array_data_bytes(chunk.unencoded)
                .set_repetition_level_histogram(chunk.rep_histogram)
                .set_definition_level_histogram(chunk.def_histogram);
            if let Some(mut index) = chunk.index {
                index.set_boundary_order(match (chunk.ascending, chunk.descending) {
                    (true, _) => BoundaryOrder::ASCENDING,
                    (false, true) => BoundaryOrder::DESCENDING,
                    (false, false) => BoundaryOrder::UNORDERED,
                });
                column_index = index.valid().then(|| index.build()).transpose()?;
            }
        }
        let bytes_written = sink.bytes_written() as u64;
        let data = Bytes::from(sink.into_inner()?);
        let close = ColumnCloseResult {
            bytes_written,
            rows_written,
            metadata: metadata.build()?,
            bloom_filter: None,
            column_index,
            offset_index: Some(offsets.build()),
        };
        Ok(EncodedLeaf { data, close })
    }
}

/// `stats` marked exact or not, per (min, max), when they have bounds.
fn with_exactness<T>(stats: ValueStatistics<T>, exact: Option<(bool, bool)>) -> ValueStatistics<T> {
    match exact {
        Some((min, max)) => stats.with_min_is_exact(min).with_max_is_exact(max),
        None => stats,
    }
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

/// Bit-packs `values`, padded with zeros to `count` (a multiple of 8), least significant bit first.
/// Every page's levels and dictionary indices pass through here, so it writes four bytes at a time
/// rather than pushing each byte.
fn put_packed<T: Copy + Into<u32>>(values: &[T], count: usize, width: u8, out: &mut Vec<u8>) {
    let width = u32::from(width);
    let (mut buffer, mut bits) = (0u64, 0u32);
    let padding = std::iter::repeat_n(0, count - values.len());
    for value in values.iter().map(|value| (*value).into()).chain(padding) {
        buffer |= u64::from(value) << bits;
        bits += width;
        if bits >= 32 {
            out.extend_from_slice(&(buffer as u32).to_le_bytes());
            buffer >>= 32;
            bits -= 32;
        }
    }
    // `count` values of `width` bits end on a whole byte.
    out.extend_from_slice(&buffer.to_le_bytes()[..(bits / 8) as usize]);
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
    use arrow::datatypes::{DataType, Field, Schema};
    use parquet::arrow::ArrowSchemaConverter;
    use proptest::prelude::*;

    use super::*;

    /// The layout of a flat text leaf, nullable or not, with small pages and dictionaries so that a run
    /// crosses both page limits and fills the dictionary.
    fn text_leaf(
        nullable: bool,
        dictionary: bool,
        page_rows: usize,
        page_bytes: usize,
        statistics: bool,
    ) -> LeafLayout {
        let schema = Schema::new(vec![Field::new("text", DataType::Utf8, nullable)]);
        let parquet = ArrowSchemaConverter::new().convert(&schema).unwrap();
        let statistics = if statistics { EnabledStatistics::Page } else { EnabledStatistics::None };
        let props = WriterProperties::builder()
            .set_compression(Compression::UNCOMPRESSED)
            .set_dictionary_enabled(dictionary)
            .set_dictionary_page_size_limit(40)
            .set_data_page_row_count_limit(page_rows)
            .set_data_page_size_limit(page_bytes)
            .set_statistics_enabled(statistics)
            .build();
        LeafLayout::for_leaf(&props, &parquet.columns()[0]).unwrap()
    }

    /// A written chunk as comparable text: its bytes and everything its metadata and indexes say.
    fn described(leaf: EncodedLeaf) -> String {
        let close = leaf.close;
        format!(
            "{:?} {:?} {:?} {:?} {}",
            leaf.data, close.metadata, close.column_index, close.offset_index, close.rows_written
        )
    }

    proptest! {
        /// A run written by `repeat` is the chunk that writing its rows one by one gives, after any rows
        /// before it, across page ends by rows or bytes and a dictionary that fills up.
        #[test]
        fn a_repeated_value_is_written_as_its_rows_one_by_one(
            before in prop::collection::vec(prop::option::weighted(0.8, "[a-e]{0,6}"), 0..30),
            value in prop::option::weighted(0.8, "[a-e]{0,6}"),
            run in 0usize..200,
            nullable in any::<bool>(),
            dictionary in any::<bool>(),
            page_rows in 1usize..50,
            page_bytes in prop_oneof![Just(1usize << 20), 1usize..60],
            statistics in any::<bool>(),
        ) {
            let layout = text_leaf(nullable, dictionary, page_rows, page_bytes, statistics);
            let required = |value: &Option<String>| if nullable { value.clone() } else { Some(value.clone().unwrap_or_default()) };
            let before: Vec<Option<String>> = before.iter().map(required).collect();
            let value = required(&value);
            fn write<'a>(writer: &mut LeafWriter<'a>, value: &'a Option<String>) {
                match value {
                    Some(text) => writer.value(0, text.as_bytes()),
                    None => writer.null(0),
                }
            }
            let (mut by_rows, mut repeated) = (LeafWriter::new(layout.clone(), 0), LeafWriter::new(layout, 0));
            for row in &before {
                for writer in [&mut by_rows, &mut repeated] {
                    write(writer, row);
                    writer.end_row().unwrap();
                }
            }
            for _ in 0..run {
                write(&mut by_rows, &value);
                by_rows.end_row().unwrap();
            }
            repeated.repeat(value.as_deref().map(str::as_bytes), run).unwrap();
            prop_assert_eq!(described(repeated.finish().unwrap()), described(by_rows.finish().unwrap()));
        }
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

    proptest! {
        /// Bit-packed values of any width read back bit by bit, least significant first, with the padding
        /// zero and nothing written past the last group.
        #[test]
        fn packed_values_of_any_width_read_back(width in 1u8..=32, values in prop::collection::vec(any::<u32>(), 0..40)) {
            let values: Vec<u32> = values.iter().map(|value| value & (u32::MAX >> (32 - width))).collect();
            let count = values.len().div_ceil(8) * 8;
            let mut out = Vec::new();
            put_packed(&values, count, width, &mut out);
            prop_assert_eq!(out.len(), count * usize::from(width) / 8);
            let bit = |at: usize| u32::from(out[at / 8] >> (at % 8) & 1);
            let width = usize::from(width);
            let read: Vec<u32> =
                (0..count).map(|i| (0..width).map(|b| bit(i * width + b) << b).sum()).collect();
            let mut want = values.clone();
            want.resize(count, 0);
            prop_assert_eq!(read, want);
        }
    }
}

/// Test support shared by the direct encoders' tests.
#[cfg(test)]
pub(super) mod testing {
    use arrow::array::RecordBatch;
    use arrow::compute::concat_batches;
    use bytes::Bytes;
    use parquet::arrow::arrow_reader::{ArrowReaderOptions, ParquetRecordBatchReaderBuilder, RowSelection};
    use parquet::basic::{Compression, ZstdLevel};
    use parquet::file::metadata::PageIndexPolicy;
    use parquet::file::properties::{EnabledStatistics, WriterProperties};

    /// `rows` split at `cuts` into batches, as requests arrive, with every (batch, row) in input order.
    pub fn split<T>(
        rows: &[T],
        cuts: &[proptest::sample::Index],
        batch: impl Fn(&[T]) -> RecordBatch,
    ) -> (Vec<RecordBatch>, Vec<(usize, usize)>) {
        let mut bounds: Vec<usize> = cuts.iter().map(|cut| cut.index(rows.len())).collect();
        bounds.extend([0, rows.len()]);
        bounds.sort_unstable();
        bounds.dedup();
        let batches: Vec<_> = bounds.windows(2).map(|w| batch(&rows[w[0]..w[1]])).collect();
        let positions =
            batches.iter().enumerate().flat_map(|(b, batch)| (0..batch.num_rows()).map(move |r| (b, r))).collect();
        (batches, positions)
    }

    /// `positions` in an order fixed by `seed` (a xorshift Fisher-Yates shuffle).
    pub fn shuffle(positions: &mut [(usize, usize)], seed: u64) {
        let mut state = seed | 1;
        for i in (1..positions.len()).rev() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            positions.swap(i, (state % (i as u64 + 1)) as usize);
        }
    }

    /// Reads a file back with parquet's Arrow reader, through the page index when `selection` is given.
    pub fn read(file: Bytes, selection: Option<RowSelection>) -> RecordBatch {
        let options = ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Required);
        let mut builder = ParquetRecordBatchReaderBuilder::try_new_with_options(file, options).unwrap();
        if let Some(selection) = selection {
            builder = builder.with_row_selection(selection);
        }
        let schema = builder.schema().clone();
        let batches: Vec<_> = builder.build().unwrap().collect::<Result<_, _>>().unwrap();
        concat_batches(&schema, &batches).unwrap()
    }

    /// How a test file of a nested column (map or list) is laid out. No statistics: a block's nested
    /// leaves have none, and the direct encoders take only such leaves.
    #[derive(Clone, Debug)]
    pub struct NestedLayout {
        pub dictionary: bool,
        pub zstd: bool,
        pub page_rows: usize,
        pub dictionary_bytes: usize,
        pub row_group_rows: usize,
    }

    impl NestedLayout {
        /// Random layouts: small pages and row groups, and dictionaries that sometimes fill up.
        pub fn strategy() -> impl proptest::strategy::Strategy<Value = Self> {
            use proptest::prelude::*;
            (any::<bool>(), any::<bool>(), 1usize..40, prop_oneof![Just(1 << 20), 8usize..300], 1usize..200).prop_map(
                |(dictionary, zstd, page_rows, dictionary_bytes, row_group_rows)| Self {
                    dictionary,
                    zstd,
                    page_rows,
                    dictionary_bytes,
                    row_group_rows,
                },
            )
        }

        /// The writer settings of this layout.
        pub fn properties(&self) -> WriterProperties {
            let compression =
                if self.zstd { Compression::ZSTD(ZstdLevel::try_new(3).unwrap()) } else { Compression::UNCOMPRESSED };
            WriterProperties::builder()
                .set_statistics_enabled(EnabledStatistics::None)
                .set_compression(compression)
                .set_dictionary_enabled(self.dictionary)
                .set_dictionary_page_size_limit(self.dictionary_bytes)
                .set_data_page_row_count_limit(self.page_rows)
                .build()
        }
    }

    /// Column 0 of `batches` at `positions`, in that order: what a file written from them must read back as.
    pub fn interleaved(batches: &[RecordBatch], positions: &[(usize, usize)]) -> RecordBatch {
        let columns: Vec<&dyn arrow::array::Array> = batches.iter().map(|b| b.column(0).as_ref()).collect();
        let column = arrow::compute::interleave(&columns, positions).unwrap();
        RecordBatch::try_new(batches[0].schema(), vec![column]).unwrap()
    }

    /// Checks that `file` reads back as `want`, whole and through the page index (`take` rows, then `skip`
    /// rows, over and over).
    pub fn reads_back(
        file: Bytes,
        want: &RecordBatch,
        take: usize,
        skip: usize,
    ) -> Result<(), proptest::test_runner::TestCaseError> {
        proptest::prop_assert_eq!(&read(file.clone(), None), want);
        let rows = want.num_rows();
        let ranges = (0..rows).step_by(skip + take).map(|start| start..(start + take).min(rows));
        let selection = RowSelection::from_consecutive_ranges(ranges, rows);
        let mask: arrow::array::BooleanArray = (0..rows).map(|row| Some(row % (skip + take) < take)).collect();
        proptest::prop_assert_eq!(
            read(file, Some(selection)),
            arrow::compute::filter_record_batch(want, &mask).unwrap()
        );
        Ok(())
    }

    /// What a Parquet file's metadata says about each column chunk that does not depend on how the pages'
    /// bytes were encoded or compressed (offsets and sizes are left out): statistics, level histograms,
    /// unencoded sizes, encodings, the column index, and each page's first row and unencoded size. One
    /// entry per row group and leaf, named by both.
    pub fn chunks(file: &Bytes) -> Vec<String> {
        let options = ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Required);
        let reader = ParquetRecordBatchReaderBuilder::try_new_with_options(file.clone(), options).unwrap();
        let metadata = reader.metadata();
        let mut described = Vec::new();
        for (group, row_group) in metadata.row_groups().iter().enumerate() {
            for (leaf, chunk) in row_group.columns().iter().enumerate() {
                let offsets = &metadata.offset_index().unwrap()[group][leaf];
                let pages: Vec<i64> = offsets.page_locations().iter().map(|page| page.first_row_index).collect();
                described.push(format!(
                    "row group {group} {}: values {}, statistics {:?}, unencoded {:?}, rep {:?}, def {:?}, \
                     encodings {:?}, page encodings {:?} {:?}, dictionary {}, column index {:?}, pages {pages:?} \
                     unencoded {:?}",
                    chunk.column_path(),
                    chunk.num_values(),
                    chunk.statistics(),
                    chunk.unencoded_byte_array_data_bytes(),
                    chunk.repetition_level_histogram(),
                    chunk.definition_level_histogram(),
                    chunk.encodings().collect::<Vec<_>>(),
                    chunk.page_encoding_stats(),
                    chunk.page_encoding_stats_mask(),
                    chunk.dictionary_page_offset().is_some(),
                    metadata.column_index().map(|index| &index[group][leaf]),
                    offsets.unencoded_byte_array_data_bytes(),
                ));
            }
        }
        described
    }
}
