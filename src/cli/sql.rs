//! `spanlake sql "SELECT …"`: SQL over spans, from a server or embedded over the blocks in storage.

use std::io::Write;

use clap::{Args, ValueEnum};
use futures::StreamExt;
use spanlake::query::remote::fetch_sql;
use spanlake::query::{Querier, QueryOptions};
use spanlake::sql::{ResultFormat, ResultWriter, SqlEngine, SqlLimits, render_table};

use super::{CliError, Source, open_storage_url};

#[derive(Args)]
pub struct SqlArgs {
    /// The query, e.g. "SELECT service_name, count(*) FROM spans GROUP BY 1".
    query: String,
    #[command(flatten)]
    source: Source,
    /// table (default), csv, json or ndjson.
    #[arg(long, default_value = "table")]
    format: SqlOutput,
}

#[derive(Clone, Copy, ValueEnum)]
enum SqlOutput {
    Table,
    Csv,
    Json,
    Ndjson,
}

/// Runs the query and prints its rows (the server's, or the embedded engine's, which prints its own).
pub async fn run(args: SqlArgs) -> Result<(), CliError> {
    let wire = match args.format {
        SqlOutput::Table => "arrow",
        SqlOutput::Csv => "csv",
        SqlOutput::Json => "json",
        SqlOutput::Ndjson => "ndjson",
    };
    let caller = args.source.caller();
    let remote = async |server: &str| fetch_sql(server, &caller, &args.query, wire).await.map(Some);
    let local = async |storage| embedded(&args, storage).await.map(|()| None);
    let Some(body) = args.source.ask(remote, local).await? else {
        return Ok(());
    };
    if matches!(args.format, SqlOutput::Table) {
        let reader = arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(body), None)?;
        let schema = reader.schema();
        let batches = reader.collect::<Result<Vec<_>, _>>()?;
        println!("{}", render_table(&schema, &batches)?);
    } else {
        std::io::stdout().write_all(&body)?;
    }
    Ok(())
}

/// Without a server: the same engine, over the blocks in storage.
async fn embedded(args: &SqlArgs, storage: Option<String>) -> Result<(), CliError> {
    let storage = open_storage_url(storage)?;
    let tenant = args.source.tenant_or_default();
    let engine = SqlEngine::new(Querier::new(storage, QueryOptions::default()), SqlLimits::default())?;
    let mut rows = engine.query(&tenant, &args.query).await?;
    let format = match args.format {
        SqlOutput::Table => {
            let schema = rows.schema();
            let batches = rows.collect().await?;
            println!("{}", render_table(&schema, &batches)?);
            return Ok(());
        }
        SqlOutput::Csv => ResultFormat::Csv,
        SqlOutput::Json => ResultFormat::Json,
        SqlOutput::Ndjson => ResultFormat::Ndjson,
    };
    let mut out = std::io::stdout().lock();
    let mut writer = ResultWriter::new(rows.schema(), format);
    out.write_all(&writer.begin()?)?;
    while let Some(batch) = rows.next().await {
        out.write_all(&writer.batch(&batch?)?)?;
    }
    out.write_all(&writer.finish()?)?;
    Ok(())
}
