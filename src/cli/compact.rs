//! `spanlake compact`: one compaction and retention pass, now, with a progress bar.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use spanlake::compaction::{Compactor, PassReport, Progress, unix_ms_now};
use spanlake::config::{CompactSettings, ServeConfig, SettingFlags};
use spanlake::ids::TenantId;
use spanlake::storage::Storage;

use super::CliError;

#[derive(Args)]
pub struct CompactArgs {
    /// Only this tenant (default: every tenant found).
    #[arg(long)]
    tenant: Option<TenantId>,
    /// YAML settings file of the server, for its compaction and retention keys.
    #[arg(long, env = "SPANLAKE_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(flatten)]
    settings: SettingFlags<CompactSettings>,
}

/// Merges, deletes what is past its grace period or retention, and prints what it did.
pub async fn run(args: CompactArgs) -> Result<(), CliError> {
    let config = ServeConfig::layered(args.config.as_deref(), args.settings.given)?;
    let storage = Storage::open(&config.storage_url()?)?;
    let compactor = Compactor::new(storage, config.compaction_options());
    let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
    bar.set_style(ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {wide_bar} {binary_bytes}/{binary_total_bytes} {msg}",
    )?);
    let spans = AtomicU64::new(0);
    let progress = |event: Progress| match event {
        Progress::Planned { tenant, jobs, bytes } => {
            bar.inc_length(bytes);
            bar.set_message(format!("{tenant}: {jobs} merge(s) planned"));
        }
        Progress::Merged { tenant, bytes_in, spans_out } => {
            bar.inc(bytes_in);
            let total = spans.fetch_add(spans_out, Ordering::Relaxed) + spans_out;
            bar.set_message(format!("{tenant}: {total} spans written"));
        }
    };
    let now = unix_ms_now();
    let report = match &args.tenant {
        Some(tenant) => compactor.compact_tenant_at(tenant, now, &progress).await,
        None => compactor.pass_at(now, &progress).await,
    }?;
    bar.finish_and_clear();
    println!("{}", summary(&report));
    Ok(())
}

fn summary(report: &PassReport) -> String {
    format!(
        "{} tenant(s){}: {} merge(s), {} blocks -> {}, {} spans -> {} ({} duplicates removed), {} -> {} bytes; \
         deleted {} replaced, {} expired, {} leftover block(s)",
        report.tenants,
        if report.tenants_leased_elsewhere > 0 {
            format!(" ({} skipped: another compactor holds the lease)", report.tenants_leased_elsewhere)
        } else {
            String::new()
        },
        report.jobs,
        report.blocks_in,
        report.blocks_out,
        report.spans_in,
        report.spans_out,
        report.duplicates_removed,
        report.bytes_in,
        report.bytes_out,
        report.deleted_replaced,
        report.deleted_expired,
        report.deleted_leftovers,
    )
}
