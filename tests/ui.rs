//! The web UI in headless Chromium (Debian's package, driven by Playwright for Python): each test starts a
//! server on the S3 test server, and a check in `tests/ui/check_*.py` sends traces with the OpenTelemetry
//! SDK and uses the page as a person would. Screenshots (1280×800) land in
//! `target/tmp/ui-screenshots/` for a reviewer; they are not committed.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::Backend;
use common::server::{TestServer, send};
use serde_json::Value as Json;
use spanlake::auth::Digest;
use spanlake::config::ByteSize;

/// Where the checks write their screenshots.
fn screenshots() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ui-screenshots")
}

/// Runs `tests/ui/check_{check}.py` against `server` and returns the figures it printed; panics with the
/// check's output when it fails.
fn run_check(check: &str, server: &TestServer, token: Option<&str>) -> Json {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/ui/run.py");
    let mut command = Command::new(common::tools::tool("python"));
    command.args([script, check, "--query", &server.query_url(""), "--otlp-http"]);
    command.arg(format!("http://{}", server.server.otlp_http_addr().expect("OTLP/HTTP")));
    command.arg("--screenshots").arg(screenshots());
    if let Some(token) = token {
        command.args(["--token", token]);
    }
    let output = command.output().expect("run the browser check");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "browser check {check} failed:\n{stdout}\n{stderr}");
    println!("{stdout}");
    let last = stdout.lines().last().unwrap_or("{}");
    serde_json::from_str(last).unwrap_or_else(|error| panic!("check {check} printed no figures ({error}): {stdout}"))
}

async fn s3_server(adjust: impl FnOnce(&mut spanlake::config::ServeConfig)) -> TestServer {
    TestServer::start(Backend::s3(), adjust).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shell_and_its_modules_are_served_gzipped_with_a_policy_that_keeps_the_page_on_its_server() {
    let server = s3_server(|_| {}).await;
    for path in ["/", "/search", "/sql", "/status", "/trace/0af7651916cd43dd8448eb211c80319c"] {
        let reply = send("GET", &server.query_url(path), &[], "").await;
        assert_eq!(reply.status, 200, "{path}");
        assert!(reply.text().contains("<script type=\"module\" src=\"/ui/app.js\">"), "{path}: the shell");
        let policy = reply.headers.get("content-security-policy").expect("a content security policy");
        assert!(policy.to_str().unwrap().starts_with("default-src 'self'"), "{policy:?}");
    }
    let reply = send("GET", &server.query_url("/ui/app.js"), &[("accept-encoding", "gzip")], "").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.headers["content-encoding"], "gzip");
    assert_eq!(reply.headers["content-type"], "text/javascript; charset=utf-8");
    let etag = reply.headers["etag"].to_str().unwrap().to_owned();
    let reply = send("GET", &server.query_url("/ui/app.js"), &[("if-none-match", &etag)], "").await;
    assert_eq!(reply.status, 304, "a reload revalidates with the ETag");
    let reply = send("GET", &server.query_url("/ui/nope.js"), &[], "").await;
    assert_eq!(reply.status, 404);
    // The API keeps its own 404s.
    let reply = send("GET", &server.query_url("/api/nope"), &[], "").await;
    assert_eq!(reply.status, 404);
    assert!(reply.text().contains("no such endpoint"), "{}", reply.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_page_finds_sdk_traces_by_traceql_and_builder_and_its_url_reopens_the_search() {
    let server = s3_server(|_| {}).await;
    run_check("search", &server, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_page_shows_the_waterfall_and_critical_path_of_the_spans_sent() {
    let server = s3_server(|_| {}).await;
    run_check("trace", &server, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_trace_model_handles_orphans_cycles_skew_precision_and_deep_chains() {
    let server = s3_server(|_| {}).await;
    run_check("model", &server, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ten_thousand_span_trace_renders_within_a_second_and_a_hundred_thousand_stays_usable() {
    // 100,000 spans are more than the default limits of one trace in the buffer and of one lookup.
    let server = s3_server(|config| {
        config.max_bytes_per_trace = ByteSize(0);
        config.max_trace_bytes = ByteSize(1 << 30);
    })
    .await;
    let figures = run_check("trace_large", &server, None);
    println!("render figures: {figures}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_page_shows_the_table_and_chart_of_a_query_and_the_servers_errors() {
    let server = s3_server(|_| {}).await;
    run_check("sql", &server, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_page_shows_version_storage_and_ingest_figures() {
    let server = s3_server(|_| {}).await;
    run_check("status", &server, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tenant_picker_and_token_choose_whose_traces_the_page_shows() {
    let auth = tempfile::NamedTempFile::new().unwrap();
    let entry = |name: &str, grant: &str, secret: &str| {
        format!("  - {{name: {name}, {grant}, sha256: {}}}\n", Digest::of(secret.as_bytes()).to_hex())
    };
    let file = format!(
        "credentials:\n{}{}",
        entry("team-a", "tenant: team-a", "token-a"),
        entry("ops", "admin: true", "token-admin")
    );
    std::fs::write(auth.path(), file).unwrap();
    let path = auth.path().to_owned();
    let server = s3_server(move |config| {
        config.multitenancy = true;
        config.auth_file = Some(path);
    })
    .await;
    run_check("tenants", &server, Some("token-admin"));
}
