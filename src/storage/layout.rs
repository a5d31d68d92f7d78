//! Object names. Every object of a tenant lives under `<tenant>/`, every file of a block under
//! `<tenant>/blocks/<block id>/`, so a tenant's data can be listed, billed or deleted by prefix.

use object_store::path::Path;

use crate::ids::{BlockId, TenantId};

/// The Parquet data object of a block.
pub const DATA_FILE: &str = "data.parquet";
/// The serialized trace-ID bloom filter.
pub const BLOOM_FILE: &str = "bloom";
/// The metadata object, written last: its presence is the block's commit point.
pub const META_FILE: &str = "meta.json";

/// `<tenant>/blocks`: the prefix listed to find a tenant's blocks.
pub fn blocks_prefix(tenant: &TenantId) -> Path {
    Path::from_iter([tenant.as_str(), "blocks"])
}

/// `<tenant>/blocks/<block>`.
pub fn block_prefix(tenant: &TenantId, block: BlockId) -> Path {
    blocks_prefix(tenant).join(block.to_string())
}

/// `<tenant>/blocks/<block>/data.parquet`.
pub fn data_path(tenant: &TenantId, block: BlockId) -> Path {
    block_prefix(tenant, block).join(DATA_FILE)
}

/// `<tenant>/blocks/<block>/bloom`.
pub fn bloom_path(tenant: &TenantId, block: BlockId) -> Path {
    block_prefix(tenant, block).join(BLOOM_FILE)
}

/// `<tenant>/blocks/<block>/meta.json`.
pub fn meta_path(tenant: &TenantId, block: BlockId) -> Path {
    block_prefix(tenant, block).join(META_FILE)
}
