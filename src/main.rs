//! The `spanlake` command line: parses arguments and hands each subcommand to its module in `cli/`.

// Outside tests a failure is a `?` or an `expect` that says why it cannot happen (STYLE.md).
#![forbid(unsafe_code)]
#![warn(clippy::unwrap_used)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod cli;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use cli::blocks::BlocksArgs;
use cli::compact::CompactArgs;
use cli::loadgen::{LoadgenArgs, VerifyArgs};
use cli::search::SearchArgs;
use cli::serve::ServeArgs;
use cli::sql::SqlArgs;
use cli::trace::TraceArgs;

/// spanlake: a trace store. OTLP in, Parquet blocks with trace-ID bloom filters on object storage
/// (a local folder, S3 or MinIO), trace-by-ID and SQL out.
#[derive(Parser)]
#[command(name = "spanlake", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server: OTLP in on 4317 (gRPC) and 4318 (HTTP), query HTTP API on 3200. With no flags,
    /// the WAL goes to ./spanlake-data/wal and blocks to ./spanlake-data/blocks.
    Serve(Box<ServeArgs>),
    /// Make credentials for the auth_file: `auth token --name N --tenant T` (or `--admin`) prints a new
    /// token and its entry; `auth hash` prints the digest of a secret read from standard input.
    Auth(cli::auth::AuthArgs),
    /// List the committed blocks in a storage, per tenant, with their span counts and time ranges (blocks
    /// a compacted block replaces are marked; queries no longer read them).
    Blocks(BlocksArgs),
    /// Send realistic synthetic traces to an OTLP endpoint and report spans/s and ack latency.
    Loadgen(LoadgenArgs),
    /// Check that every span a `loadgen --verify FILE` run saw acknowledged is stored exactly once.
    Verify(VerifyArgs),
    /// Print a trace as a terminal waterfall: the span tree with a timing bar, service, name, duration
    /// and status of each span.
    Trace(TraceArgs),
    /// Run SQL over spans (tables `spans` and `traces`) and print the result as a table, CSV or JSON.
    Sql(SqlArgs),
    /// Find traces with TraceQL (Tempo's search) and print them newest first as a table or Tempo's JSON.
    Search(SearchArgs),
    /// Run one compaction and retention pass over a storage now, with a progress bar: merge small blocks,
    /// delete replaced blocks past their grace period, expired blocks and crashed uploads' leftovers.
    Compact(CompactArgs),
}

/// Ingest allocates and frees many small buffers per span on several threads; with mimalloc the server's
/// steady-state RSS at 100 k spans/s fell from 450 to 335 MiB for the same CPU (BENCHMARKS.md, ingest).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Threads of the async runtime's blocking pool per core, with [`MIN_BLOCKING_THREADS`] at least.
const BLOCKING_THREADS_PER_CORE: usize = 4;
const MIN_BLOCKING_THREADS: usize = 8;

/// The async runtime, with a blocking pool sized to the machine rather than tokio's 512 threads. Request
/// decoding, block encoding, merges and local-file I/O all run there; under flat-out ingest with a merge
/// running, an unbounded pool grew to 60–240 threads, and every thread's allocator heap keeps freed
/// memory: peak RSS 2.0 GiB with 60 threads, 1.4 GiB with 14, at the same throughput (BENCHMARKS.md,
/// ingest). Nothing running there waits for another blocking task, so a full pool only queues work.
fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads((cores * BLOCKING_THREADS_PER_CORE).max(MIN_BLOCKING_THREADS))
        .build()
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SPANLAKE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        // A log that cannot be written (its disk is full) is lost, not fatal: on by default, the library
        // reports a failed write with `eprint!`, which panics when stderr cannot be written, killing
        // whatever was logging (a request, a block's commit, the WAL's writer thread).
        .log_internal_errors(false)
        .init();
    let cli = Cli::parse();
    let runtime = match runtime() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => cli::serve::run(*args).await,
            Command::Auth(args) => cli::auth::run(args),
            Command::Blocks(args) => cli::blocks::run(args).await,
            Command::Loadgen(args) => cli::loadgen::run(args).await,
            Command::Verify(args) => cli::loadgen::verify(args).await,
            Command::Trace(args) => cli::trace::run(args).await,
            Command::Sql(args) => cli::sql::run(args).await,
            Command::Search(args) => cli::search::run(args).await,
            Command::Compact(args) => cli::compact::run(args).await,
        }
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", spanlake::telemetry::chain(&error));
            ExitCode::FAILURE
        }
    }
}
