//! spanlake: a trace store. OTLP spans come in, are made durable, cut into Parquet blocks with trace-ID
//! bloom filters on object storage, and are read back by trace ID or with SQL.
//!
//! Modules in the order a span travels:
//! - [`ids`]: validated identifiers shared by every stage.
//! - [`spans`]: the span row model and the lossless OTLP ⇄ Arrow conversion.
//! - [`storage`]: object stores, the block format (Parquet + bloom + metadata) and per-tenant block listing.
//! - [`synth`]: a seeded generator of realistic traces, for tests, benchmarks and load generation.
//! - [`wal`]: the write-ahead log that makes an acknowledgement durable.
//! - [`receive`]: OTLP request bodies to decoded requests: content types, gzip, limits, tenants.
//! - [`ingest`]: per-tenant buffers, cutting blocks and flushing them to storage.
//! - [`query`]: the block catalogue and trace-by-ID lookups over blocks and the ingester's recent spans.
//! - [`traceql`]: the TraceQL language alone: lexer, parser, canonical printing, static checks.
//! - [`sql`]: SQL over spans with DataFusion: the `spans` table and `traces` view, pruning, the sandbox.
//! - [`search`]: finding traces with TraceQL or tags, and tag autocomplete, planned onto the SQL engine.
//! - [`compaction`]: merging small blocks into large ones, the atomic switch, retention, the lease.
//! - [`telemetry`]: metric names and the Prometheus rendering.
//! - [`loadgen`]: the OTLP load generator and the check that acknowledged spans were all stored.
//! - [`config`]: settings of the server, declared once with their defaults.
//! - [`auth`]: credentials bound to tenants or the admin role, from a file reloaded when it changes.
//! - [`reload`]: values read from files (credentials, certificates) and read again when they change.
//! - [`api`]: the HTTP faces of the server.

// Outside tests a failure is a `?` or an `expect` that says why it cannot happen (STYLE.md).
#![forbid(unsafe_code)]
#![warn(clippy::unwrap_used)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod api;
pub mod auth;
pub mod compaction;
pub mod config;
pub mod ids;
pub mod ingest;
pub mod loadgen;
pub mod query;
pub mod receive;
pub mod reload;
pub mod search;
pub mod spans;
pub mod sql;
pub mod storage;
pub mod synth;
pub mod telemetry;
pub mod traceql;
pub mod wal;
