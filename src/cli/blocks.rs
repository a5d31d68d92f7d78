//! `spanlake blocks`: the committed blocks of a storage, per tenant, as a table.

use clap::Args;
use spanlake::config::{SettingFlags, StorageSetting};
use spanlake::ids::TenantId;
use spanlake::storage::{list_blocks, list_tenants, read_block_meta, replaced_blocks};

use super::{CliError, open_storage};

#[derive(Args)]
pub struct BlocksArgs {
    #[command(flatten)]
    storage: SettingFlags<StorageSetting>,
    /// Only this tenant (default: every tenant found).
    #[arg(long)]
    tenant: Option<TenantId>,
}

/// Prints one line per committed block; blocks a compacted block replaces are marked.
pub async fn run(args: BlocksArgs) -> Result<(), CliError> {
    let storage = open_storage(args.storage.given)?;
    let tenants = match args.tenant {
        Some(tenant) => vec![tenant],
        None => list_tenants(&storage).await?,
    };
    println!("{:<20} {:<36} {:>10} {:>8} {:>12}  start range (unix ns)", "tenant", "block", "spans", "traces", "bytes");
    for tenant in tenants {
        let listing = list_blocks(&storage, &tenant).await?;
        let mut metas = Vec::new();
        for block in listing.committed {
            metas.push(read_block_meta(&storage, &tenant, block).await?);
        }
        let replaced = replaced_blocks(&metas);
        for meta in &metas {
            println!(
                "{:<20} {:<36} {:>10} {:>8} {:>12}  {}..{}{}",
                tenant.as_str(),
                meta.block_id.to_string(),
                meta.span_count,
                meta.trace_count,
                meta.data_bytes + meta.bloom_bytes,
                meta.min_start_unix_nano,
                meta.max_start_unix_nano,
                if replaced.contains(&meta.block_id) { "  (replaced)" } else { "" }
            );
        }
        if !listing.uncommitted.is_empty() {
            eprintln!("{tenant}: {} uncommitted block folder(s) (no meta.json) ignored", listing.uncommitted.len());
        }
    }
    Ok(())
}
