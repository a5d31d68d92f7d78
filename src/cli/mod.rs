//! The subcommands of the `spanlake` binary and what they print: each file holds one command's flags
//! and the code that runs it (`serve`, `auth`, `blocks`, `compact`, `loadgen` and `verify`, `trace`, `sql`,
//! `search`), and `waterfall.rs` draws a trace on a terminal.
//!
//! Presentation at the edge: this module calls the library (config, storage, query, sql, compaction,
//! loadgen, api) and formats its answers; nothing in the library calls it.

// A command's error is returned once, to `main`, per process: its size costs nothing worth boxing for.
#![allow(clippy::result_large_err)]

pub mod auth;
pub mod blocks;
pub mod compact;
pub mod loadgen;
pub mod search;
pub mod serve;
pub mod sql;
pub mod trace;
pub mod waterfall;

use clap::Args;
use spanlake::compaction::CompactionError;
use spanlake::config::{ConfigError, ConfigFile, ServeConfig};
use spanlake::ids::{TenantId, TraceId};
use spanlake::loadgen::LoadgenError;
use spanlake::query::QueryError;
use spanlake::query::remote::RemoteError;
use spanlake::search::SearchError;
use spanlake::sql::SqlError;
use spanlake::storage::{Storage, StorageError};

/// Why a command failed; `main` prints it with its chain of causes.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("storage")]
    Storage(#[from] StorageError),
    #[error("server")]
    Serve(#[from] spanlake::api::ServeError),
    #[error("compaction")]
    Compaction(#[from] CompactionError),
    #[error("load generator")]
    Loadgen(#[from] LoadgenError),
    #[error(transparent)]
    Remote(#[from] RemoteError),
    #[error("trace lookup")]
    Query(#[from] QueryError),
    #[error("SQL")]
    Sql(#[from] SqlError),
    #[error(transparent)]
    Search(#[from] SearchError),
    #[error("the server's search answer is not Tempo's JSON")]
    SearchAnswer(#[source] serde_json::Error),
    #[error("unreadable result")]
    Result(#[from] arrow::error::ArrowError),
    #[error("cannot write the output")]
    Output(#[from] std::io::Error),
    #[error("progress bar template")]
    Progress(#[from] indicatif::style::TemplateError),
    #[error("verification failed; missing for example: {examples:?}")]
    VerificationFailed { examples: Vec<String> },
    #[error("the system's random number generator failed")]
    Random,
    #[error("trace {0} not found")]
    TraceNotFound(TraceId),
    #[error("trace {trace} could not be read: {why}")]
    TraceUnreadable { trace: TraceId, why: String },
}

/// Where `trace` and `sql` look when told nothing: a server on this machine's default query port.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:3200";

/// Opens the storage the settings name (the server's default folder when they name none).
pub fn open_storage(settings: ConfigFile) -> Result<Storage, CliError> {
    let config = ServeConfig::layered(None, settings)?;
    Ok(Storage::open(&config.storage_url()?)?)
}

/// Opens the storage at `url`, or the server's default folder.
pub fn open_storage_url(url: Option<String>) -> Result<Storage, CliError> {
    open_storage(ConfigFile { storage: url.map(Some), ..ConfigFile::default() })
}

/// Where `trace` and `sql` read from: a server (which also knows spans not yet in blocks) or the blocks
/// in storage, and as which tenant.
#[derive(Args)]
pub struct Source {
    /// Ask a running server (its query port), which also knows spans not yet flushed to blocks.
    /// Wins over --storage. Default: http://127.0.0.1:3200, falling back to the default storage folder
    /// when nothing answers.
    #[arg(long)]
    server: Option<String>,
    /// Read blocks straight from storage (file:///path or s3://bucket/prefix), no server needed.
    #[arg(long, env = "SPANLAKE_STORAGE")]
    storage: Option<String>,
    /// Tenant (X-Scope-OrgID) whose spans to read.
    #[arg(long)]
    pub tenant: Option<TenantId>,
    /// Bearer token for a server with auth on (`spanlake auth token`).
    #[arg(long, env = "SPANLAKE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// CA certificate (PEM) that signed an https:// server's certificate; default: the system's roots.
    #[arg(long, env = "SPANLAKE_CA_FILE", value_name = "FILE")]
    pub ca: Option<std::path::PathBuf>,
}

impl Source {
    /// Asks the server with `remote`, or reads storage with `local` (given `--storage`, or when nothing
    /// answers at the default server).
    pub async fn ask<T>(
        &self,
        remote: impl AsyncFn(&str) -> Result<T, RemoteError>,
        local: impl AsyncFn(Option<String>) -> Result<T, CliError>,
    ) -> Result<T, CliError> {
        match (&self.server, &self.storage) {
            (Some(server), _) => Ok(remote(server).await?),
            (None, Some(storage)) => local(Some(storage.clone())).await,
            (None, None) => match remote(DEFAULT_SERVER).await {
                Err(RemoteError::Unreachable { .. }) => {
                    eprintln!("no server at {DEFAULT_SERVER}; reading the default storage folder (flushed spans only)");
                    local(None).await
                }
                other => Ok(other?),
            },
        }
    }

    /// Who to ask the server as.
    pub fn caller(&self) -> spanlake::query::remote::Caller {
        spanlake::query::remote::Caller { tenant: self.tenant.clone(), token: self.token.clone(), ca: self.ca.clone() }
    }

    /// The tenant to read as: the given one, or the single tenant.
    pub fn tenant_or_default(&self) -> TenantId {
        self.tenant.clone().unwrap_or_else(TenantId::single_tenant)
    }
}
