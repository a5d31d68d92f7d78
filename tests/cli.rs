//! The command line as users and scripts see it: help that lists only working commands, `serve` on the
//! embedded default with port 0, graceful stop on SIGTERM, `blocks` listing what a storage holds, and
//! `trace` drawing a trace's waterfall from storage or from a running server, and `sql` answering from
//! storage or from a server as a table, CSV or JSON, `search` finding traces with TraceQL the same two ways,
//! and `compact` merging a storage's blocks by hand.

mod common;

use std::net::SocketAddr;
use std::process::Command;

use common::encoding::block_write_options;
use spanlake::config::SETTINGS;
use spanlake::ids::{BlockId, TenantId};
use spanlake::loadgen::{OtlpClient, Protocol};
use spanlake::spans::encode_resource_spans;
use spanlake::storage::Storage;
use spanlake::storage::block::write_block;
use spanlake::synth::TraceGenerator;

const BINARY: &str = env!("CARGO_BIN_EXE_spanlake");

fn run(args: &[&str]) -> std::process::Output {
    Command::new(BINARY).args(args).output().expect("spanlake runs")
}

#[test]
fn help_lists_only_the_commands_that_work_and_version_prints() {
    let help = String::from_utf8(run(&["--help"]).stdout).unwrap();
    let commands: Vec<&str> = help
        .lines()
        .skip_while(|line| !line.starts_with("Commands:"))
        .skip(1)
        .take_while(|line| line.starts_with("  "))
        .filter_map(|line| line.split_whitespace().next())
        .collect();
    assert_eq!(
        commands,
        ["serve", "auth", "blocks", "loadgen", "verify", "trace", "sql", "search", "compact", "help"],
        "{help}"
    );
    for (command, flag) in [
        ("serve", "--storage"),
        ("blocks", "--storage"),
        ("loadgen", "--rate"),
        ("verify", "--ids"),
        ("trace", "--server"),
        ("sql", "--format"),
        ("search", "--since"),
        ("compact", "--retention"),
    ] {
        let output = run(&[command, "--help"]);
        assert!(output.status.success());
        assert!(String::from_utf8(output.stdout).unwrap().contains(flag), "{command} --help mentions {flag}");
    }
    let serve_help = String::from_utf8(run(&["serve", "--help"]).stdout).unwrap();
    for flag in ["--data-dir", "--otlp-grpc-addr", "--otlp-http-addr", "--http-addr", "--multitenancy"] {
        assert!(serve_help.contains(flag), "serve --help lists {flag}");
    }
    let version = String::from_utf8(run(&["--version"]).stdout).unwrap();
    assert_eq!(version.trim(), format!("spanlake {}", env!("CARGO_PKG_VERSION")));
}

/// CONTRACTS §1: every key of the settings file can be overridden by its `SPANLAKE_` environment variable.
#[test]
fn every_settings_key_has_its_environment_variable_and_the_environment_is_read() {
    let keys: Vec<String> = SETTINGS.iter().map(|setting| setting.key.to_owned()).collect();
    assert!(keys.len() >= 30, "{keys:?}");
    let serve_help = String::from_utf8(run(&["serve", "--help"]).stdout).unwrap();
    // A secret's value is left out of the help (`[env: NAME]`), the others show theirs (`[env: NAME=…]`).
    let listed = |key: &String| {
        let variable = format!("[env: SPANLAKE_{}", key.to_uppercase());
        serve_help.contains(&format!("{variable}=")) || serve_help.contains(&format!("{variable}]"))
    };
    let missing: Vec<&String> = keys.iter().filter(|key| !listed(key)).collect();
    assert!(missing.is_empty(), "settings keys without an environment variable: {missing:?}");
    // The environment is read, and a bad value stops the start naming the variable's setting.
    for (key, bad) in [("compaction_window", "soon"), ("tenant_retention", "team-a"), ("read_timeout", "-1")] {
        let output = Command::new(BINARY)
            .args(["serve", "--data-dir", "/nonexistent/spanlake"])
            .env(format!("SPANLAKE_{}", key.to_uppercase()), bad)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{key}={bad} is refused: {stderr}");
        assert!(stderr.contains(&format!("--{}", key.replace('_', "-"))), "{key}: {stderr}");
    }
}

fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    common::http::request(addr, "GET", path).expect("HTTP request")
}

#[test]
fn serve_on_the_embedded_default_answers_and_flushes_then_stops_cleanly_on_sigterm() {
    let folder = tempfile::tempdir().unwrap();
    let mut server = common::process::serve(
        Command::new(BINARY)
            .args(["serve", "--http-addr", "127.0.0.1:0", "--otlp-grpc-addr", "127.0.0.1:0"])
            .args(["--otlp-http-addr", "127.0.0.1:0", "--jaeger-addr", "127.0.0.1:0", "--zipkin-addr", "127.0.0.1:0"])
            .current_dir(folder.path()),
    );
    for line in &server.lines {
        assert!(!line.contains('\u{1b}'), "no colour codes in logs that go to a pipe: {line:?}");
    }
    let addr = server.http;
    assert_eq!(get(addr, "/ready"), (200, "ready".into()));
    assert_eq!(get(addr, "/api/echo"), (200, "echo".into()));
    let (status, body) = get(addr, "/api/status/buildinfo");
    assert_eq!(status, 200);
    let info: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(info["version"], env!("CARGO_PKG_VERSION"));
    let revision = info["revision"].as_str().unwrap();
    assert!(revision == "unknown" || revision.chars().all(|c| c.is_ascii_hexdigit()), "{revision}");
    assert!(folder.path().join("spanlake-data/blocks").is_dir(), "the embedded default creates its folder");

    let request = TraceGenerator::new(3).next_request(50);
    let sent = spanlake::spans::span_count(&request.resource_spans);
    let endpoint = format!("http://{}", server.grpc);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let client = OtlpClient::connect(&endpoint, Protocol::Grpc, None).unwrap();
        assert_eq!(client.export(request).await.unwrap(), 0, "every span accepted");
    });
    // The client's connection stays open (its runtime still exists): shutdown must not wait for it forever.
    assert!(server.process.terminate().success(), "exit 0 after SIGTERM");
    let storage = common::url_of(&folder.path().join("spanlake-data/blocks"));
    let listing = String::from_utf8(run(&["blocks", "--storage", &storage]).stdout).unwrap();
    assert!(
        listing.lines().any(|line| line.starts_with("single-tenant") && line.contains(&format!(" {sent} "))),
        "the buffered spans were flushed into a block on SIGTERM: {listing}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocks_lists_committed_blocks_of_a_storage() {
    let folder = tempfile::tempdir().unwrap();
    let url = common::url_of(folder.path());
    let storage = Storage::open(&url).unwrap();
    let tenant = TenantId::new("acme").unwrap();
    let (batch, _) = encode_resource_spans(&TraceGenerator::new(1).next_trace()).unwrap();
    let meta =
        write_block(&storage, &tenant, BlockId::new_random(), vec![batch], &block_write_options()).await.unwrap();
    let output = run(&["blocks", "--storage", &url]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let listing = String::from_utf8(output.stdout).unwrap();
    let row = listing.lines().find(|line| line.contains(&meta.block_id.to_string())).expect("block listed");
    assert!(row.starts_with("acme"), "{row}");
    assert!(row.contains(&format!(" {} ", meta.span_count)), "{row}");

    let bad = run(&["blocks", "--storage", "ftp://nowhere/x"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unsupported scheme \"ftp\""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_storage_is_configured_by_the_standard_aws_environment_variables() {
    let server = common::s3::S3Server::shared();
    let bucket = server.new_bucket();
    let url = format!("s3://{bucket}/spanlake");
    let storage = Storage::open_with_options(&url, &server.options()).unwrap();
    let tenant = TenantId::single_tenant();
    let (batch, _) = encode_resource_spans(&TraceGenerator::new(2).next_trace()).unwrap();
    let meta =
        write_block(&storage, &tenant, BlockId::new_random(), vec![batch], &block_write_options()).await.unwrap();

    let output = Command::new(BINARY)
        .args(["blocks", "--storage", &url])
        .env("AWS_ENDPOINT_URL", server.endpoint())
        .env("AWS_ALLOW_HTTP", "true")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(String::from_utf8(output.stdout).unwrap().contains(&meta.block_id.to_string()));
}

#[test]
fn serve_reads_a_config_file_that_environment_variables_override_and_refuses_unknown_keys() {
    let folder = tempfile::tempdir().unwrap();
    let bad = folder.path().join("bad.yaml");
    std::fs::write(&bad, "max_blok_bytes: 1MiB\n").unwrap();
    let refused = run(&["serve", "--config", bad.to_str().unwrap()]);
    assert!(!refused.status.success());
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(message.contains("max_blok_bytes") && message.contains("bad.yaml"), "{message}");

    let (from_file, from_env) = (folder.path().join("from-file"), folder.path().join("from-env"));
    let good = folder.path().join("spanlake.yaml");
    std::fs::write(
        &good,
        format!(
            "data_dir: {}\nhttp_addr: 127.0.0.1:0\notlp_grpc_addr: 127.0.0.1:0\notlp_http_addr: 127.0.0.1:0\n\
             jaeger_addr: 127.0.0.1:0\nzipkin_addr: ''\n",
            from_file.display()
        ),
    )
    .unwrap();
    let mut server = common::process::serve(
        Command::new(BINARY).args(["serve", "--config", good.to_str().unwrap()]).env("SPANLAKE_DATA_DIR", &from_env),
    );
    for line in &server.lines {
        assert!(!line.contains("0.0.0.0"), "the file's addresses are used: {line}");
    }
    assert!(from_env.join("blocks").is_dir() && from_env.join("wal").is_dir(), "the environment wins over the file");
    assert!(!from_file.exists());
    assert!(server.process.terminate().success());
}

/// The names of the spans of a trace, and which of them failed.
fn span_names(trace: &[opentelemetry_proto::tonic::trace::v1::ResourceSpans]) -> Vec<(String, bool)> {
    trace
        .iter()
        .flat_map(|rs| &rs.scope_spans)
        .flat_map(|ss| &ss.spans)
        .map(|span| (span.name.clone(), span.status.as_ref().is_some_and(|s| s.code == 2)))
        .collect()
}

fn assert_waterfall(output: &std::process::Output, trace: &[opentelemetry_proto::tonic::trace::v1::ResourceSpans]) {
    let text = String::from_utf8(output.stdout.clone()).unwrap();
    assert!(output.status.success(), "{text}{}", String::from_utf8_lossy(&output.stderr));
    let lines: Vec<&str> = text.lines().collect();
    let names = span_names(trace);
    assert!(lines[0].starts_with("Trace ") && lines[0].contains(&format!("{} spans", names.len())), "{text}");
    assert!(lines.iter().all(|line| unicode_width::UnicodeWidthStr::width(*line) <= 80), "fits 80 columns:\n{text}");
    // One line per span, the root first (no tree prefix), every other one under it.
    let span_lines: Vec<&&str> = lines.iter().skip(2).take(names.len()).collect();
    assert!(!span_lines[0].starts_with(['├', '└', '│', ' ']), "{text}");
    assert!(span_lines[1..].iter().all(|line| line.starts_with(['├', '└', '│', ' '])), "{text}");
    for (name, _) in &names {
        let prefix: String = name.chars().take(10).collect();
        assert!(span_lines.iter().any(|line| line.contains(&prefix)), "{name} is drawn: {text}");
    }
    let failed = names.iter().filter(|(_, failed)| *failed).count();
    assert_eq!(span_lines.iter().filter(|line| line.contains('✗')).count(), failed, "error marks: {text}");
}

/// A trace with an error somewhere in it, as the generator makes them.
fn trace_with_an_error() -> Vec<opentelemetry_proto::tonic::trace::v1::ResourceSpans> {
    let mut generator = TraceGenerator::new(31);
    std::iter::repeat_with(|| generator.next_trace())
        .find(|trace| {
            let names = span_names(trace);
            names.len() >= 4 && names.len() <= 30 && names.iter().any(|(_, failed)| *failed)
        })
        .unwrap()
}

/// [`trace_with_an_error`] twice over: in a block in a local folder, and sent to an in-process server (on a
/// memory store) that holds it in its ingester only, so each CLI command can be run against both.
struct TraceInBothPlaces {
    trace: Vec<opentelemetry_proto::tonic::trace::v1::ResourceSpans>,
    trace_id: spanlake::ids::TraceId,
    /// How many spans it has.
    spans: usize,
    /// `file://` URL of the folder holding the block.
    folder: String,
    /// The folder itself: bind it, or the folder is deleted before the commands run.
    _blocks: tempfile::TempDir,
    server: common::server::TestServer,
    /// `http://` URL of the server's query port.
    url: String,
}

async fn trace_in_storage_and_a_server() -> TraceInBothPlaces {
    let trace = trace_with_an_error();
    let trace_id = spanlake::ids::TraceId::from_slice(&trace[0].scope_spans[0].spans[0].trace_id).unwrap();
    let blocks = tempfile::tempdir().unwrap();
    let folder = common::url_of(blocks.path());
    let storage = Storage::open(&folder).unwrap();
    let (batch, _) = encode_resource_spans(&trace).unwrap();
    let spans = batch.num_rows();
    write_block(&storage, &TenantId::single_tenant(), BlockId::new_random(), vec![batch], &Default::default())
        .await
        .unwrap();
    let server = common::server::TestServer::start(Storage::open("memory://").unwrap(), |_| {}).await;
    let body =
        prost::Message::encode_to_vec(&opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest {
            resource_spans: trace.clone(),
        });
    let traces_url = server.traces_url();
    let reply = common::server::send("POST", &traces_url, &[("content-type", "application/x-protobuf")], body);
    assert_eq!(reply.await.status, 200);
    let url = format!("http://{}", server.server.http_addr());
    TraceInBothPlaces { trace, trace_id, spans, folder, _blocks: blocks, server, url }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_draws_the_waterfall_from_storage_and_from_a_server() {
    let TraceInBothPlaces { trace, trace_id, folder, server, url, _blocks, .. } = trace_in_storage_and_a_server().await;
    let from_storage =
        tokio::task::spawn_blocking(move || run(&["trace", &trace_id.to_hex(), "--storage", &folder, "--width", "80"]));
    assert_waterfall(&from_storage.await.unwrap(), &trace);

    // A server knows spans that are not in any block yet.
    let id = trace_id.to_hex();
    let from_server = tokio::task::spawn_blocking(move || run(&["trace", &id, "--server", &url, "--width", "80"]));
    assert_waterfall(&from_server.await.unwrap(), &trace);

    let url = format!("http://{}", server.server.http_addr());
    let unknown = tokio::task::spawn_blocking(move || run(&["trace", "abc", "--server", &url])).await.unwrap();
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("not found"));
    server.server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_answers_from_storage_and_from_a_server_as_table_csv_or_json() {
    let TraceInBothPlaces { spans, folder, server, url, _blocks, .. } = trace_in_storage_and_a_server().await;
    let query = "SELECT count(*) AS spans, count(DISTINCT trace_id) AS traces FROM spans";
    let embedded = {
        let folder = folder.clone();
        tokio::task::spawn_blocking(move || run(&["sql", query, "--storage", &folder])).await.unwrap()
    };
    assert!(embedded.status.success(), "{}", String::from_utf8_lossy(&embedded.stderr));
    let table = String::from_utf8(embedded.stdout).unwrap();
    assert!(table.contains("| spans | traces |"), "{table}");
    assert!(table.contains(&format!("| {spans:<5} | 1      |")), "{table}");

    let csv = tokio::task::spawn_blocking(move || run(&["sql", query, "--storage", &folder, "--format", "csv"]));
    assert_eq!(String::from_utf8(csv.await.unwrap().stdout).unwrap(), format!("spans,traces\r\n{spans},1\r\n"));

    // A server also knows spans not in any block yet; errors come back as its message.
    let json = {
        let url = url.clone();
        tokio::task::spawn_blocking(move || run(&["sql", query, "--server", &url, "--format", "json"])).await.unwrap()
    };
    let body: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(body["rows"], serde_json::json!([[spans, 1]]));
    let table = {
        let url = url.clone();
        tokio::task::spawn_blocking(move || run(&["sql", query, "--server", &url])).await.unwrap()
    };
    assert!(String::from_utf8(table.stdout).unwrap().contains(&format!("| {spans:<5} | 1      |")));
    let refused =
        tokio::task::spawn_blocking(move || run(&["sql", "DROP TABLE spans", "--server", &url])).await.unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("read-only SQL"), "{refused:?}");
    server.server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_refuses_bad_queries_with_their_position_and_lists_traces_from_storage_and_a_server() {
    let TraceInBothPlaces { trace_id, folder, server, url, _blocks, .. } = trace_in_storage_and_a_server().await;
    let search = |args: Vec<String>| {
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            run(&args)
        })
    };
    let owned = |args: &[&str]| args.iter().map(|a| (*a).to_owned()).collect::<Vec<_>>();

    // A mistake in the query is refused before any search, with where it is: locally, and by the server.
    let bad = "{.a = 1 && 2}";
    for source in [["--storage", folder.as_str()], ["--server", url.as_str()]] {
        let refused = search(owned(&["search", bad, source[0], source[1]])).await.unwrap();
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert_eq!(refused.status.code(), Some(1), "{source:?}: {stderr}");
        assert!(stderr.contains("invalid TraceQL query: 1:2:"), "{source:?}: {stderr}");
    }
    assert!(
        String::from_utf8_lossy(&search(owned(&["search", bad, "--server", &url])).await.unwrap().stderr)
            .contains("400"),
        "the server's status is shown"
    );

    for source in [["--storage", folder.as_str()], ["--server", url.as_str()]] {
        let table = search(owned(&["search", "{}", "--since", "3650d", source[0], source[1]])).await.unwrap();
        let stderr = String::from_utf8_lossy(&table.stderr);
        assert!(table.status.success(), "{source:?}: {stderr}");
        let table = String::from_utf8(table.stdout).unwrap();
        assert!(table.starts_with("trace ID"), "{table}");
        assert!(table.contains(&trace_id.to_hex()), "{source:?}: {table}");
        let json = search(owned(&["search", "{}", "--format", "json", source[0], source[1]])).await.unwrap();
        let answer: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
        assert_eq!(answer["traces"][0]["traceID"], spanlake::search::tempo_trace_id(&trace_id), "{answer}");
    }
    server.server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compact_merges_a_storage_by_hand_and_applies_retention() {
    let folder = tempfile::tempdir().unwrap();
    let url = common::url_of(folder.path());
    let storage = Storage::open(&url).unwrap();
    let tenant = TenantId::single_tenant();
    let mut spans = 0;
    // Spans from two days ago, whatever today is: inside a week's retention, outside a day's.
    let two_days_ago = common::hours_ago_unix_nano(48);
    for seed in 0..3 {
        let mut generator = TraceGenerator::new(seed);
        generator.set_clock(two_days_ago);
        let (batch, _) = encode_resource_spans(&generator.next_trace()).unwrap();
        spans += batch.num_rows();
        write_block(&storage, &tenant, BlockId::new_random(), vec![batch], &block_write_options()).await.unwrap();
    }
    // Written when their spans started (retention also counts from when a block was written).
    common::backdate_blocks(&storage, &tenant, two_days_ago / 1_000_000).await;
    let cli = |args: Vec<String>| {
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            run(&args)
        })
    };
    let owned = |args: &[&str]| args.iter().map(|a| a.to_string()).collect::<Vec<_>>();

    let output = cli(owned(&["compact", "--storage", &url, "--retention", "7d"])).await.unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let summary = String::from_utf8(output.stdout).unwrap();
    assert!(summary.contains(&format!("1 merge(s), 3 blocks -> 1, {spans} spans -> {spans}")), "{summary}");

    let listing = String::from_utf8(cli(owned(&["blocks", "--storage", &url])).await.unwrap().stdout).unwrap();
    assert_eq!(listing.lines().filter(|line| line.contains("(replaced)")).count(), 3, "{listing}");
    let query = "SELECT count(*) FROM spans";
    let counted = cli(owned(&["sql", query, "--storage", &url, "--format", "csv"])).await.unwrap();
    assert_eq!(String::from_utf8(counted.stdout).unwrap(), format!("count(*)\r\n{spans}\r\n"), "counted once");

    let output = cli(owned(&["compact", "--storage", &url, "--retention", "1d"])).await.unwrap();
    let summary = String::from_utf8(output.stdout).unwrap();
    assert!(summary.contains("deleted 0 replaced, 4 expired"), "{summary}");
    let counted = cli(owned(&["sql", query, "--storage", &url, "--format", "csv"])).await.unwrap();
    assert_eq!(String::from_utf8(counted.stdout).unwrap(), "count(*)\r\n0\r\n");
}

/// A log that cannot be written (the disk holding it is full) stops nothing. Before, the log library
/// reported its failed write with `eprint!`, which panics when stderr cannot be written: the panic killed
/// whatever was logging (the request, a block's commit, the WAL's writer thread, after which every
/// append answered "the WAL is closed" until a restart; found by the soak run when its disk filled up).
/// Here stderr is `/dev/full`, where every write fails with "no space left on device".
#[test]
fn a_log_that_cannot_be_written_stops_nothing() {
    let folder = tempfile::tempdir().unwrap();
    let (http, grpc, otlp_http) = (common::free_addr(), common::free_addr(), common::free_addr());
    let full = std::fs::OpenOptions::new().write(true).open("/dev/full").expect("/dev/full exists on Linux");
    let mut server = common::process::KilledOnDrop::spawn(
        Command::new(BINARY)
            .args(["serve", "--http-addr", &http.to_string(), "--otlp-grpc-addr", &grpc.to_string()])
            .args(["--otlp-http-addr", &otlp_http.to_string(), "--jaeger-addr", "", "--zipkin-addr", ""])
            .current_dir(folder.path())
            .stdout(std::process::Stdio::null())
            .stderr(full),
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while common::http::request(http, "GET", "/ready").map_or(true, |(status, _)| status != 200) {
        assert!(std::time::Instant::now() < deadline, "the server never got ready");
        assert!(server.try_wait().unwrap().is_none(), "the server exited");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let _context = runtime.enter();
    let client = OtlpClient::connect(&format!("http://{grpc}"), Protocol::Grpc, None).unwrap();
    let mut sent = 0;
    for seed in [31, 32] {
        let request = TraceGenerator::new(seed).next_request(20);
        sent += spanlake::spans::span_count(&request.resource_spans);
        assert_eq!(runtime.block_on(client.export(request)).unwrap(), 0, "every span accepted");
        // A refused request is logged as a warning: it still gets its answer.
        let (status, _) = common::http::request(otlp_http, "POST", "/v1/traces").expect("an HTTP answer");
        assert!((400..500).contains(&status), "{status}");
    }
    // Each committed block is logged too.
    assert_eq!(common::http::request(http, "POST", "/flush").expect("an HTTP answer").0, 204);
    assert!(server.terminate().success(), "exit 0 after SIGTERM");
    let storage = common::url_of(&folder.path().join("spanlake-data/blocks"));
    let listing = String::from_utf8(run(&["blocks", "--storage", &storage]).stdout).unwrap();
    let stored: usize = listing
        .lines()
        .filter(|line| line.starts_with("single-tenant"))
        .filter_map(|line| line.split_whitespace().nth(2)?.parse::<usize>().ok())
        .sum();
    assert_eq!(stored, sent, "{listing}");
}
