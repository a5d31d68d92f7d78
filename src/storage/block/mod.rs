//! The block format, version [`FORMAT_VERSION`]: one Parquet file of span rows sorted by (trace ID, start
//! time), one trace-ID bloom filter, and one metadata object written last. `docs/storage-format.md` is the
//! user-facing description; this module is its implementation.

mod bloom;
mod file_reader;
mod flat;
mod leaf;
mod meta;
pub mod reader;
mod string_map;
pub mod tags;
pub mod writer;

pub use bloom::{BloomError, TraceBloom};
pub use file_reader::BlockFileReader;
pub use meta::{BlockMeta, FORMAT_VERSION, OLDEST_READABLE_FORMAT_VERSION, readable_format_version};
pub use reader::{
    BlockFooter, ReadTally, find_trace, find_traces_tallied, load_bloom, load_footer, load_footer_tallied, read_all,
    read_encoded,
};
pub use tags::{ScopeTags, TagInterner, TagScope, TagSummary, TagSummaryBuilder, ValueList, ValueType};
pub use writer::{
    BlockSidecar, BlockWriteOptions, EncodedBlock, commit_block, encode_block, upload_block, upload_spooled_objects,
    write_block,
};
