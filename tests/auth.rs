//! Authentication bound to tenants (issue 26, Add 1; CONTRACTS §2 "Auth"): with `auth_file` set, every
//! port wants a credential, the tenant comes from it, a differing X-Scope-OrgID is refused, the
//! operator's routes want the admin role, and the file is re-read when it changes. Clients are the
//! OpenTelemetry SDK's exporters (headers), Grafana's shapes (basic auth, gRPC metadata) and curl-like
//! requests.

mod common;

use std::path::Path;
use std::time::Duration;

use base64::Engine;
use common::sdk::{Export, send_with_headers};
use common::server::{Reply, TestServer, send};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use prost::Message;
use spanlake::auth::Digest;
use spanlake::query::tempopb;
use spanlake::synth::TraceGenerator;
use tonic::codegen::http::uri::PathAndQuery;

const TOKEN_A: &str = "token-of-team-a";
const TOKEN_B: &str = "token-of-team-b";
const TOKEN_ADMIN: &str = "token-of-the-operator";
const GRAFANA_PASSWORD: &str = "grafana-secret-of-team-a";
const PROTOBUF: (&str, &str) = ("content-type", "application/x-protobuf");

/// One line of the credentials file.
fn entry(name: &str, grant: &str, secret: &str) -> String {
    format!("  - {{name: {name}, {grant}, sha256: {}}}\n", Digest::of(secret.as_bytes()).to_hex())
}

fn credentials_file() -> String {
    format!(
        "credentials:\n{}{}{}{}",
        entry("writer-a", "tenant: team-a", TOKEN_A),
        entry("writer-b", "tenant: team-b", TOKEN_B),
        entry("grafana-a", "tenant: team-a", GRAFANA_PASSWORD),
        entry("ops", "admin: true", TOKEN_ADMIN),
    )
}

/// A server with multitenancy and auth on, reading the credentials from a file in its own folder.
async fn start_with(file: &str) -> (TestServer, tempfile::TempDir) {
    let folder = tempfile::tempdir().unwrap();
    let path = folder.path().join("credentials.yaml");
    std::fs::write(&path, file).unwrap();
    let server = TestServer::start(common::Backend::local(), |config| {
        config.multitenancy = true;
        config.auth_file = Some(path.clone());
    })
    .await;
    (server, folder)
}

/// Three traces from the SDK, with no X-Scope-OrgID.
fn export<'a>(protocol: &'a str, endpoint: &'a str, gzip: bool) -> Export<'a> {
    Export { protocol, endpoint, tenant: "", traces: 3, gzip }
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn basic(user: &str, password: &str) -> String {
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")))
}

fn body(seed: u64) -> Vec<u8> {
    TraceGenerator::new(seed).next_request(10).encode_to_vec()
}

/// Spans in [`body`]`(seed)`.
fn spans_in(seed: u64) -> usize {
    let request = ExportTraceServiceRequest::decode(body(seed).as_slice()).unwrap();
    request.resource_spans.iter().flat_map(|r| &r.scope_spans).map(|s| s.spans.len()).sum()
}

fn otlp_message(reply: &Reply) -> String {
    spanlake::api::RpcStatus::decode(reply.body.clone()).map(|status| status.message).unwrap_or_else(|_| reply.text())
}

/// One OTLP/gRPC export with the given metadata.
async fn grpc_export(server: &TestServer, metadata: &[(&'static str, &str)], seed: u64) -> Result<(), tonic::Status> {
    let mut client = TraceServiceClient::connect(server.grpc_url()).await.unwrap();
    let mut request = tonic::Request::new(ExportTraceServiceRequest::decode(body(seed).as_slice()).unwrap());
    for (name, value) in metadata {
        request.metadata_mut().insert(*name, value.parse().unwrap());
    }
    client.export(request).await.map(|_| ())
}

/// Grafana's streaming search on the query port (h2c), with the given metadata: the trace IDs found.
async fn stream_search(server: &TestServer, metadata: &[(&'static str, &str)]) -> Result<Vec<String>, tonic::Status> {
    let channel = tonic::transport::Channel::from_shared(server.query_url("")).unwrap().connect().await.unwrap();
    let mut client = tonic::client::Grpc::new(channel);
    client.ready().await.unwrap();
    let search = tempopb::SearchRequest { query: "{}".into(), limit: 100, ..Default::default() };
    let mut request = tonic::Request::new(search);
    for (name, value) in metadata {
        request.metadata_mut().insert(*name, value.parse().unwrap());
    }
    let codec = tonic_prost::ProstCodec::<tempopb::SearchRequest, tempopb::SearchResponse>::default();
    let path = PathAndQuery::from_static("/tempopb.StreamingQuerier/Search");
    let mut stream = client.server_streaming(request, path, codec).await?.into_inner();
    let mut found = Vec::new();
    while let Some(message) = stream.message().await? {
        found = message.traces.into_iter().map(|trace| trace.trace_id).collect();
    }
    Ok(found)
}

async fn sql_count(server: &TestServer, headers: &[(&str, &str)]) -> Reply {
    send("POST", &server.query_url("/api/sql"), headers, "SELECT count(*) AS n FROM spans").await
}

/// A metric read with the admin's credentials (`/metrics` is the operator's with auth on).
async fn admin_metric(server: &TestServer, name: &str, label: &str) -> f64 {
    let admin = bearer(TOKEN_ADMIN);
    let text = send("GET", &server.query_url("/metrics"), &[("authorization", &admin)], Vec::new()).await.text();
    text.lines()
        .filter(|line| line.starts_with(name) && line.contains(label))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_port_refuses_requests_without_valid_credentials() {
    let (server, _folder) = start_with(&credentials_file()).await;
    let (a, wrong) = (bearer(TOKEN_A), bearer("not-a-token"));

    // OTLP/HTTP: nothing, a wrong token, or a garbled header is 401; the right token for another tenant 403.
    for headers in
        [vec![PROTOBUF], vec![PROTOBUF, ("authorization", wrong.as_str())], vec![PROTOBUF, ("authorization", "Bearer")]]
    {
        let reply = send("POST", &server.traces_url(), &headers, body(1)).await;
        assert_eq!(reply.status, 401, "{headers:?}: {}", reply.text());
    }
    let other_tenant = [PROTOBUF, ("authorization", a.as_str()), ("x-scope-orgid", "team-b")];
    let reply = send("POST", &server.traces_url(), &other_tenant, body(1)).await;
    assert_eq!(reply.status, 403, "{}", reply.text());
    assert!(otlp_message(&reply).contains("team-a"), "{}", otlp_message(&reply));

    // OTLP/gRPC: the same, in gRPC's codes.
    assert_eq!(grpc_export(&server, &[], 1).await.unwrap_err().code(), tonic::Code::Unauthenticated);
    let status = grpc_export(&server, &[("authorization", &wrong)], 1).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unauthenticated, "{status:?}");
    let status = grpc_export(&server, &[("authorization", &a), ("x-scope-orgid", "team-b")], 1).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");

    // The query port: every read wants a credential, and a 401 says which schemes it takes.
    let trace = "5b8efff798038103d269b633813fc60c";
    for (method, path) in [
        ("GET", format!("/api/traces/{trace}")),
        ("GET", format!("/api/v2/traces/{trace}")),
        ("GET", "/api/search?q=%7B%7D".to_owned()),
        ("GET", "/api/search/tags".to_owned()),
        ("GET", "/api/v2/search/tags".to_owned()),
        ("GET", "/api/v2/search/tag/resource.service.name/values".to_owned()),
        ("POST", "/api/sql".to_owned()),
    ] {
        let reply = send(method, &server.query_url(&path), &[], "SELECT 1").await;
        assert_eq!(reply.status, 401, "{path}: {}", reply.text());
        let challenge = reply.headers.get("www-authenticate").map(|v| v.to_str().unwrap().to_owned());
        assert!(challenge.as_deref().is_some_and(|c| c.contains("Basic") && c.contains("Bearer")), "{challenge:?}");
        let reply =
            send(method, &server.query_url(&path), &[("authorization", &a), ("x-scope-orgid", "team-b")], "").await;
        assert_eq!(reply.status, 403, "{path}: {}", reply.text());
    }
    let status = stream_search(&server, &[]).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unauthenticated, "{status:?}");
    let status = stream_search(&server, &[("authorization", &a), ("x-scope-orgid", "team-b")]).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");

    // Probes stay open: a kubelet brings no credentials.
    for path in ["/ready", "/api/echo", "/api/status/buildinfo"] {
        assert_eq!(send("GET", &server.query_url(path), &[], Vec::new()).await.status, 200, "{path}");
    }

    // The operator's routes: admin only, /flush by POST only.
    let admin = bearer(TOKEN_ADMIN);
    for headers in [vec![], vec![("authorization", a.as_str())]] {
        let expected = if headers.is_empty() { 401 } else { 403 };
        assert_eq!(send("POST", &server.query_url("/flush"), &headers, "").await.status, expected, "{headers:?}");
        assert_eq!(send("GET", &server.query_url("/metrics"), &headers, "").await.status, expected, "{headers:?}");
    }
    assert_eq!(send("POST", &server.query_url("/flush"), &[("authorization", &admin)], "").await.status, 204);
    assert_eq!(send("GET", &server.query_url("/flush"), &[("authorization", &admin)], "").await.status, 405);
    assert!(admin_metric(&server, "spanlake_auth_refused_total", "unauthenticated").await >= 13.0);
    assert!(admin_metric(&server, "spanlake_auth_refused_total", "forbidden").await >= 11.0);

    // Nothing of the refused requests was written.
    let reply = sql_count(&server, &[("authorization", &a)]).await;
    assert!(reply.text().contains("\"rows\":[[0]]"), "{}", reply.text());
    let reply = sql_count(&server, &[("authorization", &admin), ("x-scope-orgid", "team-b")]).await;
    assert!(reply.text().contains("\"rows\":[[0]]"), "{}", reply.text());
    server.server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tenant_comes_from_the_credential_and_each_sees_only_its_own_spans() {
    let (server, _folder) = start_with(&credentials_file()).await;
    let (a, b, admin) = (bearer(TOKEN_A), bearer(TOKEN_B), bearer(TOKEN_ADMIN));

    // The SDK's exporters with `OTEL_EXPORTER_OTLP_HEADERS`-style headers and no X-Scope-OrgID: the
    // token alone names the tenant.
    let grpc_endpoint = format!("127.0.0.1:{}", server.server.otlp_grpc_addr().expect("OTLP/gRPC").port());
    let sent_a = send_with_headers(export("grpc", &grpc_endpoint, false), &[("authorization", &a)]);
    assert_eq!(sent_a["result"], "SUCCESS", "{sent_a}");
    let sent_b = send_with_headers(export("http", &server.traces_url(), true), &[("authorization", &b)]);
    assert_eq!(sent_b["result"], "SUCCESS", "{sent_b}");
    // Without a token the SDK's export fails, and with the other tenant named it fails too.
    let refused = send_with_headers(export("http", &server.traces_url(), false), &[]);
    assert_eq!(refused["result"], "FAILURE", "{refused}");
    let refused =
        send_with_headers(export("grpc", &grpc_endpoint, false), &[("authorization", &a), ("x-scope-orgid", "team-b")]);
    assert_eq!(refused["result"], "FAILURE", "{refused}");

    let trace_of = |sent: &serde_json::Value| sent["spans"][0]["trace_id"].as_str().unwrap().to_owned();
    let (trace_a, trace_b) = (trace_of(&sent_a), trace_of(&sent_b));
    let spans = |sent: &serde_json::Value| sent["spans"].as_array().unwrap().len();
    let count = |n: usize| format!("\"rows\":[[{n}]]");

    // Tenant credentials read their own spans, by token or by Grafana's basic auth, with or without the
    // (matching) header.
    let grafana = basic("grafana-a", GRAFANA_PASSWORD);
    for headers in [
        vec![("authorization", a.as_str())],
        vec![("authorization", grafana.as_str())],
        vec![("authorization", grafana.as_str()), ("x-scope-orgid", "team-a")],
    ] {
        let reply = sql_count(&server, &headers).await;
        assert!(reply.text().contains(&count(spans(&sent_a))), "{headers:?}: {}", reply.text());
        let own = send("GET", &server.query_url(&format!("/api/v2/traces/{trace_a}")), &headers, "").await;
        assert_eq!(own.status, 200, "{headers:?}: {}", own.text());
        let other = send("GET", &server.query_url(&format!("/api/v2/traces/{trace_b}")), &headers, "").await;
        assert_eq!(other.status, 404, "team-b's trace is not team-a's: {}", other.text());
        let search = send("GET", &server.query_url("/api/search?q=%7B%7D"), &headers, "").await;
        // Search answers Tempo's form of a trace ID, without leading zeros.
        let (tempo_a, tempo_b) = (trace_a.trim_start_matches('0'), trace_b.trim_start_matches('0'));
        assert!(search.text().contains(tempo_a) && !search.text().contains(tempo_b), "{}", search.text());
    }
    // Basic auth needs the entry's own name with its secret.
    let reply = sql_count(&server, &[("authorization", &basic("writer-b", GRAFANA_PASSWORD))]).await;
    assert_eq!(reply.status, 401, "{}", reply.text());
    let reply = sql_count(&server, &[("authorization", &b)]).await;
    assert!(reply.text().contains(&count(spans(&sent_b))), "{}", reply.text());
    let found = stream_search(&server, &[("authorization", &grafana)]).await.unwrap();
    assert_eq!(found.len(), 3, "team-a's three traces: {found:?}");
    assert!(!found.iter().any(|id| id.trim_start_matches('0') == trace_b.trim_start_matches('0')), "{found:?}");

    // The admin picks any tenant by the header, and must name one.
    let reply = sql_count(&server, &[("authorization", &admin), ("x-scope-orgid", "team-b")]).await;
    assert!(reply.text().contains(&count(spans(&sent_b))), "{}", reply.text());
    let reply = sql_count(&server, &[("authorization", &admin)]).await;
    assert_eq!(reply.status, 401, "{}", reply.text());
    let reply = send(
        "POST",
        &server.traces_url(),
        &[PROTOBUF, ("authorization", &admin), ("x-scope-orgid", "team-c")],
        body(7),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", otlp_message(&reply));
    let reply = sql_count(&server, &[("authorization", &admin), ("x-scope-orgid", "team-c")]).await;
    assert!(reply.text().contains(&count(spans_in(7))), "{}", reply.text());
    server.server.shutdown().await.unwrap();
}

/// Polls until `check` holds (the file is re-read every second).
async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "{what} within 15 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_credentials_file_takes_effect_without_a_restart_and_a_broken_one_is_not_taken() {
    let (server, folder) = start_with(&credentials_file()).await;
    let path = folder.path().join("credentials.yaml");
    let new_token = bearer("a-token-added-later");
    let status_with = async |token: &str| sql_count(&server, &[("authorization", token)]).await.status;
    assert_eq!(status_with(&new_token).await, 401);

    // Added: accepted once the file is re-read.
    let added = format!("{}{}", credentials_file(), entry("late", "tenant: team-a", "a-token-added-later"));
    std::fs::write(&path, &added).unwrap();
    eventually("the added token is accepted", async || status_with(&new_token).await == 200).await;

    // Removed: refused again.
    let without_a = credentials_file().replace(&entry("writer-a", "tenant: team-a", TOKEN_A), "");
    std::fs::write(&path, format!("{without_a}{}", entry("late", "tenant: team-a", "a-token-added-later"))).unwrap();
    eventually("the removed token is refused", async || status_with(&bearer(TOKEN_A)).await == 401).await;
    assert_eq!(status_with(&new_token).await, 200);

    // A file that does not check out (a bad digest) changes nothing: the last good credentials stay.
    std::fs::write(&path, "credentials:\n  - {name: broken, tenant: team-a, sha256: nothex}\n").unwrap();
    eventually("the broken file is counted", async || {
        admin_metric(&server, "spanlake_auth_reloads_total", "refused").await >= 1.0
    })
    .await;
    assert_eq!(status_with(&new_token).await, 200, "the previous credentials are still in force");
    assert_eq!(status_with(&bearer(TOKEN_A)).await, 401);
    server.server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_multitenancy_credentials_gate_the_single_tenant_and_naming_another_tenant_stops_the_start() {
    let folder = tempfile::tempdir().unwrap();
    let path = folder.path().join("credentials.yaml");
    std::fs::write(&path, format!("credentials:\n{}", entry("app", "tenant: team-a", TOKEN_A))).unwrap();
    let data = tempfile::tempdir().unwrap();
    let mut config = common::server::loopback_config(data.path());
    config.auth_file = Some(path.clone());
    let refused = spanlake::api::Server::start_with_storage(config, common::Backend::local().storage).await;
    let error = spanlake::telemetry::chain(&refused.err().expect("the start is refused"));
    assert!(error.contains("multitenancy is off"), "{error}");

    std::fs::write(&path, format!("credentials:\n{}", entry("app", "admin: false", TOKEN_A))).unwrap();
    let server = TestServer::start(common::Backend::local(), |config| config.auth_file = Some(path.clone())).await;
    let a = bearer(TOKEN_A);
    assert_eq!(send("POST", &server.traces_url(), &[PROTOBUF], body(3)).await.status, 401);
    // The header is ignored with multitenancy off, as without auth: every span is single-tenant's.
    let reply =
        send("POST", &server.traces_url(), &[PROTOBUF, ("authorization", &a), ("x-scope-orgid", "x")], body(3)).await;
    assert_eq!(reply.status, 200, "{}", otlp_message(&reply));
    let reply = sql_count(&server, &[("authorization", &a)]).await;
    assert!(reply.text().contains(&format!("\"rows\":[[{}]]", spans_in(3))), "{}", reply.text());
    server.server.shutdown().await.unwrap();
}

/// The `spanlake` binary's output for `args`.
fn spanlake(args: &[&str], stdin: Option<&str>) -> String {
    use std::io::Write;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_spanlake"))
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin.unwrap_or_default().as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

fn write_file(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_made_by_spanlake_auth_token_are_accepted_and_the_cli_sends_them() {
    // A tenant name with the characters YAML would otherwise read differently.
    let printed = spanlake(&["auth", "token", "--name", "odd", "--tenant", "team*'a'"], None);
    let token = printed.lines().find_map(|line| line.strip_prefix("token: ")).unwrap().to_owned();
    let entry: String = printed.lines().filter(|line| line.starts_with(' ')).map(|line| format!("{line}\n")).collect();
    let digest = spanlake(&["auth", "hash"], Some(&format!("{token}\n")));
    assert!(entry.contains(digest.trim()), "`auth hash` prints the entry's digest: {entry} / {digest}");
    let admin = spanlake(&["auth", "token", "--name", "ops", "--admin"], None);
    let admin_entry: String = admin.lines().filter(|line| line.starts_with(' ')).map(|l| format!("{l}\n")).collect();

    let folder = tempfile::tempdir().unwrap();
    let path = folder.path().join("credentials.yaml");
    write_file(&path, &format!("credentials:\n{entry}{admin_entry}"));
    let server = TestServer::start(common::Backend::local(), |config| {
        config.multitenancy = true;
        config.auth_file = Some(path.clone());
    })
    .await;
    let reply = send("POST", &server.traces_url(), &[PROTOBUF, ("authorization", &bearer(&token))], body(4)).await;
    assert_eq!(reply.status, 200, "{}", otlp_message(&reply));

    // `spanlake sql` and `spanlake loadgen` send the token (flag or SPANLAKE_TOKEN).
    let server_url = server.query_url("");
    let cli = tokio::task::spawn_blocking(move || {
        spanlake(
            &["sql", "--server", &server_url, "--token", &token, "--format", "csv", "SELECT count(*) AS n FROM spans"],
            None,
        )
    });
    let printed = cli.await.unwrap();
    assert_eq!(printed.lines().nth(1), Some(spans_in(4).to_string().as_str()), "{printed}");
    let grpc = server.grpc_url();
    let token = printed_token(&admin);
    let loadgen = tokio::task::spawn_blocking(move || {
        spanlake(
            &[
                "loadgen",
                "--endpoint",
                &grpc,
                "--rate",
                "2000",
                "--duration",
                "1s",
                "--tenant",
                "loaded",
                "--token",
                &token,
            ],
            None,
        )
    });
    let report = loadgen.await.unwrap();
    let admin_headers = [("authorization", bearer(&printed_token(&admin))), ("x-scope-orgid", "loaded".to_owned())];
    let headers: Vec<(&str, &str)> = admin_headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let reply = sql_count(&server, &headers).await;
    assert!(!reply.text().contains("\"rows\":[[0]]") && reply.status == 200, "{report}\n{}", reply.text());
    server.server.shutdown().await.unwrap();
}

fn printed_token(printed: &str) -> String {
    printed.lines().find_map(|line| line.strip_prefix("token: ")).unwrap().to_owned()
}
