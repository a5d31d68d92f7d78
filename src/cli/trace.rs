//! `spanlake trace <ID>`: one trace as a terminal waterfall, from a server or straight from storage.

use clap::Args;
use opentelemetry_proto::tonic::trace::v1::ResourceSpans;
use spanlake::ids::TraceId;
use spanlake::query::remote::fetch_trace;
use spanlake::query::{Querier, QueryOptions};

use super::{CliError, Source, open_storage_url, waterfall};

#[derive(Args)]
pub struct TraceArgs {
    /// The trace ID: up to 32 hex characters (shorter IDs are left-padded with zeros).
    trace_id: TraceId,
    #[command(flatten)]
    source: Source,
    /// Columns to draw in (default: the terminal's COLUMNS, else 80).
    #[arg(long)]
    width: Option<usize>,
}

/// Finds the trace and prints its waterfall.
pub async fn run(args: TraceArgs) -> Result<(), CliError> {
    let caller = args.source.caller();
    let found = args
        .source
        .ask(
            async |server| fetch_trace(server, &caller, &args.trace_id).await,
            async |url| from_storage(&args, url).await,
        )
        .await?;
    let Some(resource_spans) = found else {
        return Err(CliError::TraceNotFound(args.trace_id));
    };
    let width = args.width.or_else(|| std::env::var("COLUMNS").ok()?.parse().ok()).unwrap_or(80);
    print!("{}", waterfall::render(&args.trace_id.to_hex(), &waterfall::spans_of(&resource_spans), width));
    Ok(())
}

/// The trace's spans from the blocks in storage; `None` when no block holds it.
async fn from_storage(args: &TraceArgs, url: Option<String>) -> Result<Option<Vec<ResourceSpans>>, CliError> {
    let storage = open_storage_url(url)?;
    let tenant = args.source.tenant_or_default();
    let querier = Querier::new(storage, QueryOptions::default());
    let found = querier.find_trace(&tenant, &args.trace_id, Default::default()).await?;
    match &found.incomplete {
        Some(why) if found.is_empty() => {
            return Err(CliError::TraceUnreadable { trace: args.trace_id, why: why.clone() });
        }
        Some(why) => eprintln!("warning: the trace may be incomplete: {why}"),
        None => {}
    }
    Ok((!found.is_empty()).then_some(found.resource_spans))
}
