//! How the tests that write blocks in-process encode them: with spanlake's own Parquet encoders (the
//! default) or, with `SPANLAKE_DIRECT_ENCODING=false`, with parquet's own writer. The server's setting of
//! the same name does this for the tests that go through a server; this does it for the tests that call
//! `write_block` or `encode_block` themselves, so CI can run both kinds of suite once each way.

use spanlake::storage::block::BlockWriteOptions;

/// The environment variable, named as the server's setting reads it.
pub const DIRECT_ENCODING_VARIABLE: &str = "SPANLAKE_DIRECT_ENCODING";

/// Whether blocks are written with spanlake's direct encoders: `SPANLAKE_DIRECT_ENCODING` is `true`
/// (or unset) or `false`. Any other value stops the test, so a typo cannot run a suite the wrong way.
pub fn direct_encoding() -> bool {
    match std::env::var(DIRECT_ENCODING_VARIABLE) {
        Err(std::env::VarError::NotPresent) => true,
        Ok(value) if value == "true" => true,
        Ok(value) if value == "false" => false,
        Ok(value) => panic!("{DIRECT_ENCODING_VARIABLE} must be `true` or `false`, not {value:?}"),
        Err(error) => panic!("{DIRECT_ENCODING_VARIABLE}: {error}"),
    }
}

/// The default block layout, encoded as [`direct_encoding`] says. Tests that need another layout
/// change fields of this value: `BlockWriteOptions { max_row_group_rows: 8192, ..block_write_options() }`.
pub fn block_write_options() -> BlockWriteOptions {
    BlockWriteOptions { direct_encoding: direct_encoding(), ..BlockWriteOptions::default() }
}
