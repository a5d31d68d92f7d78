//! TLS on every port (issue 26, Add 2; CONTRACTS §2): the OpenTelemetry SDK's exporters (gRPC and HTTP,
//! configured by the SDK's own certificate variables) and curl talk to a server with `tls_cert_file`
//! and `tls_key_file`; a renewed certificate is served without a restart; with `tls_client_ca_file`
//! every connection must bring a client certificate that CA signed. Certificates are made per test.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::sdk::{Export, send_with};
use common::server::TestServer;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use spanlake::auth::Digest;

/// A CA and what it signed, written as PEM files into a folder.
struct Pki {
    folder: tempfile::TempDir,
}

/// A certificate authority that signs server and client certificates.
struct Authority {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

fn authority(name: &str) -> Authority {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(rcgen::DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let key = KeyPair::generate().unwrap();
    let certificate = params.self_signed(&key).unwrap();
    Authority { pem: certificate.pem(), issuer: Issuer::new(params, key) }
}

/// A leaf certificate signed by `ca` for `names`: (certificate PEM, key PEM).
fn leaf(ca: &Authority, names: &[&str], client: bool) -> (String, String) {
    let mut params = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    params.distinguished_name.push(rcgen::DnType::CommonName, names[0]);
    params.extended_key_usages = vec![if client {
        rcgen::ExtendedKeyUsagePurpose::ClientAuth
    } else {
        rcgen::ExtendedKeyUsagePurpose::ServerAuth
    }];
    let key = KeyPair::generate().unwrap();
    let certificate = params.signed_by(&key, &ca.issuer).unwrap();
    (certificate.pem(), key.serialize_pem())
}

impl Pki {
    fn new() -> Self {
        Self { folder: tempfile::tempdir().unwrap() }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.folder.path().join(name)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path(name);
        // Written beside, then renamed: a reader never sees half a file (as cert-manager and certbot do).
        let partial = self.path(&format!("{name}.partial"));
        std::fs::write(&partial, text).unwrap();
        std::fs::rename(&partial, &path).unwrap();
        path
    }

    /// A server certificate for loopback from `ca`, as `server.pem` / `server.key`.
    fn issue_server(&self, ca: &Authority) {
        let (certificate, key) = leaf(ca, &["localhost", "127.0.0.1"], false);
        // The key first: a reload that sees the new certificate with the old key refuses it and waits.
        self.write("server.key", &key);
        self.write("server.pem", &certificate);
    }
}

async fn start(
    pki: &Pki,
    client_ca: Option<PathBuf>,
    adjust: impl FnOnce(&mut spanlake::config::ServeConfig),
) -> TestServer {
    let (cert, key) = (pki.path("server.pem"), pki.path("server.key"));
    TestServer::start(common::Backend::local(), |config| {
        config.tls_cert_file = Some(cert);
        config.tls_key_file = Some(key);
        config.tls_client_ca_file = client_ca;
        adjust(config);
    })
    .await
}

/// curl's outcome: its exit code and what it printed (`-w` output after the body).
struct Curl {
    code: i32,
    out: String,
}

fn curl(url: &str, args: &[&str]) -> Curl {
    let output = Command::new("curl")
        .args(["-sS", "--max-time", "20", "-w", "\n%{http_code} %{http_version}"])
        .args(args)
        .arg(url)
        .output()
        .expect("curl runs (tests/tools/install.sh installs it)");
    Curl {
        code: output.status.code().unwrap_or(-1),
        out: format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr)),
    }
}

async fn curl_async(url: String, args: Vec<String>) -> Curl {
    tokio::task::spawn_blocking(move || curl(&url, &args.iter().map(String::as_str).collect::<Vec<_>>())).await.unwrap()
}

fn https(address: std::net::SocketAddr, path: &str) -> String {
    format!("https://127.0.0.1:{}{path}", address.port())
}

fn as_str(path: &Path) -> String {
    path.to_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_port_speaks_tls_to_the_sdk_and_to_curl_and_refuses_clear_text() {
    let pki = Pki::new();
    let ca = authority("spanlake test CA");
    let ca_file = as_str(&pki.write("ca.pem", &ca.pem));
    pki.issue_server(&ca);
    // With auth too, as a deployment on an open network would run.
    let token = "a-token-for-tls";
    let credentials = pki.write(
        "credentials.yaml",
        &format!("credentials:\n  - {{name: app, sha256: {}}}\n", Digest::of(token.as_bytes()).to_hex()),
    );
    let server = start(&pki, None, |config| config.auth_file = Some(credentials)).await;
    let bearer = format!("Bearer {token}");

    // The SDK's exporters over TLS, trusting the test CA through the SDK's own variable.
    let env = [("OTEL_EXPORTER_OTLP_CERTIFICATE", ca_file.as_str())];
    let grpc = https(server.server.otlp_grpc_addr().expect("OTLP/gRPC"), "");
    let http = https(server.server.otlp_http_addr().expect("OTLP/HTTP"), "/v1/traces");
    let mut traces = Vec::new();
    for (protocol, endpoint, gzip) in [("grpc", &grpc, false), ("http", &http, true)] {
        let export = Export { protocol, endpoint, tenant: "", traces: 2, gzip };
        let report = send_with(export, &[("authorization", &bearer)], &env);
        assert_eq!(report["result"], "SUCCESS", "{protocol} over TLS: {report}");
        traces.push(report["spans"][0]["trace_id"].as_str().unwrap().to_owned());
    }

    // curl reads them back from the query port, by HTTP/2 (ALPN) or HTTP/1.1.
    let auth = ["-H".to_owned(), format!("authorization: {bearer}"), "--cacert".to_owned(), ca_file.clone()];
    for trace in &traces {
        let url = https(server.server.http_addr(), &format!("/api/v2/traces/{trace}"));
        let mut args = auth.to_vec();
        args.push("--http2".into());
        let reply = curl_async(url.clone(), args).await;
        assert!(reply.code == 0 && reply.out.ends_with("200 2"), "HTTP/2 over TLS: {}", reply.out);
        assert!(reply.out.contains(trace.as_str()), "{}", reply.out);
        let mut args = auth.to_vec();
        args.push("--http1.1".into());
        let reply = curl_async(url, args).await;
        assert!(reply.code == 0 && reply.out.ends_with("200 1.1"), "HTTP/1.1 over TLS: {}", reply.out);
    }
    // spanlake's own CLI asks over TLS, trusting the CA given to it.
    let (server_url, ca, token) = (https(server.server.http_addr(), ""), ca_file.clone(), token.to_owned());
    let printed = tokio::task::spawn_blocking(move || {
        let args = ["sql", "--server", &server_url, "--ca", &ca, "--token", &token, "--format", "csv"];
        Command::new(env!("CARGO_BIN_EXE_spanlake")).args(args).arg("SELECT count(*) AS n FROM spans").output().unwrap()
    })
    .await
    .unwrap();
    assert!(printed.status.success(), "{}", String::from_utf8_lossy(&printed.stderr));
    assert_eq!(String::from_utf8_lossy(&printed.stdout).lines().nth(1), Some("8"), "four spans from each exporter");

    // OTLP/HTTP offers HTTP/1.1 only; a curl-made export lands there.
    let mut args = auth.to_vec();
    args.extend(["--http2", "-H", "content-type: application/json", "-d", "{}"].map(String::from));
    let reply = curl_async(https(server.server.otlp_http_addr().expect("OTLP/HTTP"), "/v1/traces"), args).await;
    assert!(reply.code == 0 && reply.out.ends_with("200 1.1"), "{}", reply.out);

    // Without trusting the CA, curl refuses the server (60: peer certificate not verified)...
    let reply = curl_async(https(server.server.http_addr(), "/api/echo"), vec![]).await;
    assert_eq!(reply.code, 60, "{}", reply.out);
    // ...and a client speaking clear text gets no answer on any port, which keeps serving.
    for address in [
        server.server.http_addr(),
        server.server.otlp_http_addr().expect("OTLP/HTTP"),
        server.server.otlp_grpc_addr().expect("OTLP/gRPC"),
    ] {
        let reply = curl_async(format!("http://127.0.0.1:{}/api/echo", address.port()), vec![]).await;
        assert_ne!(reply.code, 0, "{address}: {}", reply.out);
        assert!(!reply.out.contains("echo\n200"), "{}", reply.out);
    }
    // curl's default over TLS: HTTP/2 where the server offers it by ALPN, as the query port does.
    let reply =
        curl_async(https(server.server.http_addr(), "/api/echo"), vec!["--cacert".into(), ca_file.clone()]).await;
    assert!(reply.out.ends_with("echo\n200 2"), "{}", reply.out);
    server.server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewed_certificate_is_served_without_a_restart_and_a_broken_one_is_not_taken() {
    let pki = Pki::new();
    let (old_ca, new_ca) = (authority("old CA"), authority("new CA"));
    let old_ca_file = as_str(&pki.write("old-ca.pem", &old_ca.pem));
    let new_ca_file = as_str(&pki.write("new-ca.pem", &new_ca.pem));
    pki.issue_server(&old_ca);
    let server = start(&pki, None, |_| {}).await;
    let echo = https(server.server.http_addr(), "/api/echo");
    let trusting = |ca: &str| vec!["--cacert".to_owned(), ca.to_owned()];
    assert_eq!(curl_async(echo.clone(), trusting(&old_ca_file)).await.code, 0);
    assert_eq!(curl_async(echo.clone(), trusting(&new_ca_file)).await.code, 60);

    pki.issue_server(&new_ca);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while curl_async(echo.clone(), trusting(&new_ca_file)).await.code != 0 {
        assert!(tokio::time::Instant::now() < deadline, "the renewed certificate is served within 15 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(curl_async(echo.clone(), trusting(&old_ca_file)).await.code, 60, "the old one is gone");

    // A key that does not match its certificate is refused; the certificate in force stays.
    let (_, stray_key) = leaf(&new_ca, &["localhost"], false);
    pki.write("server.key", &stray_key);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(curl_async(echo.clone(), trusting(&new_ca_file)).await.code, 0, "still served");
    server.server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_client_ca_every_port_wants_a_client_certificate_it_signed() {
    let pki = Pki::new();
    let (ca, stranger) = (authority("spanlake test CA"), authority("someone else's CA"));
    let ca_file = as_str(&pki.write("ca.pem", &ca.pem));
    pki.issue_server(&ca);
    let (client_cert, client_key) = leaf(&ca, &["app"], true);
    let (client_cert, client_key) =
        (as_str(&pki.write("client.pem", &client_cert)), as_str(&pki.write("client.key", &client_key)));
    let (stranger_cert, stranger_key) = leaf(&stranger, &["intruder"], true);
    let (stranger_cert, stranger_key) =
        (as_str(&pki.write("stranger.pem", &stranger_cert)), as_str(&pki.write("stranger.key", &stranger_key)));
    let server = start(&pki, Some(pki.path("ca.pem")), |_| {}).await;

    let with = |cert: &str, key: &str| {
        vec!["--cacert".into(), ca_file.clone(), "--cert".into(), cert.to_owned(), "--key".into(), key.to_owned()]
    };
    for address in [server.server.http_addr(), server.server.otlp_http_addr().expect("OTLP/HTTP")] {
        let url = https(address, "/api/echo");
        let none = curl_async(url.clone(), vec!["--cacert".into(), ca_file.clone()]).await;
        assert_ne!(none.code, 0, "{address} without a client certificate: {}", none.out);
        let foreign = curl_async(url.clone(), with(&stranger_cert, &stranger_key)).await;
        assert_ne!(foreign.code, 0, "{address} with another CA's certificate: {}", foreign.out);
        let signed = curl_async(url, with(&client_cert, &client_key)).await;
        assert_eq!(signed.code, 0, "{address}: {}", signed.out);
    }

    let grpc = https(server.server.otlp_grpc_addr().expect("OTLP/gRPC"), "");
    let http = https(server.server.otlp_http_addr().expect("OTLP/HTTP"), "/v1/traces");
    let env = [
        ("OTEL_EXPORTER_OTLP_CERTIFICATE", ca_file.as_str()),
        ("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", client_cert.as_str()),
        ("OTEL_EXPORTER_OTLP_CLIENT_KEY", client_key.as_str()),
    ];
    for (protocol, endpoint) in [("grpc", &grpc), ("http", &http)] {
        let export = || Export { protocol, endpoint, tenant: "", traces: 1, gzip: false };
        let report = send_with(export(), &[], &env);
        assert_eq!(report["result"], "SUCCESS", "{protocol} with a client certificate: {report}");
        let report = send_with(export(), &[], &env[..1]);
        assert_eq!(report["result"], "FAILURE", "{protocol} without one: {report}");
    }
    server.server.shutdown().await.unwrap();
}

#[test]
fn a_certificate_without_its_key_or_a_client_ca_alone_is_refused() {
    use spanlake::api::TlsFiles;
    let path = Path::new("x.pem");
    assert!(TlsFiles::from_settings(Some(path), None, None).is_err());
    assert!(TlsFiles::from_settings(None, Some(path), None).is_err());
    assert!(TlsFiles::from_settings(None, None, Some(path)).is_err());
    assert_eq!(TlsFiles::from_settings(None, None, None).unwrap(), None);
}

/// Spans of a querier's `SELECT count(*)` over HTTPS, and its `Warning` header if it has one.
async fn querier_count(querier: &TestServer, ca_file: &str) -> (String, bool) {
    let args = ["--cacert", ca_file, "-D", "-", "-X", "POST", "--data", "SELECT count(*) AS n FROM spans"];
    let url = https(querier.server.http_addr(), "/api/sql?format=csv");
    let reply = curl_async(url, args.iter().map(|arg| arg.to_string()).collect()).await;
    assert_eq!(reply.code, 0, "{}", reply.out);
    let warned = reply.out.to_ascii_lowercase().contains("\nwarning: ");
    let count = reply.out.lines().skip_while(|line| *line != "n").nth(1).unwrap_or_default().to_owned();
    (count, warned)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_querier_reads_ingesters_over_tls_showing_its_certificate_where_one_is_wanted() {
    use spanlake::config::{HostPorts, Target};
    let pki = Pki::new();
    let ca = authority("spanlake test CA");
    let ca_file = pki.write("ca.pem", &ca.pem);
    pki.issue_server(&ca);
    // The querier's certificate serves its own port and identifies it to the ingesters: both usages.
    let (cert, key) = {
        let mut params = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        params.extended_key_usages =
            vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth, rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let key = KeyPair::generate().unwrap();
        (params.signed_by(&key, &ca.issuer).unwrap().pem(), key.serialize_pem())
    };
    let (querier_cert, querier_key) = (pki.write("querier.pem", &cert), pki.write("querier.key", &key));
    let backend = common::Backend::local();
    let storage = backend.storage.clone();
    // Mutual TLS on the ingester: every connection must show a certificate the CA signed.
    let ingester = start(&pki, Some(ca_file.clone()), |config| config.target = Target::Ingester).await;
    let ingester_addr = ingester.server.http_addr().to_string();
    let request = spanlake::synth::TraceGenerator::new(3).next_request(40);
    let sent = spanlake::spans::span_count(&request.resource_spans);
    let tenant = spanlake::ids::TenantId::single_tenant();
    let spans = spanlake::ingest::NewSpans::from_request(request).unwrap();
    ingester.server.ingester().expect("an ingester").push(&tenant, spans).await.unwrap();

    let querier_with = |client_certificate: bool, ca: Option<PathBuf>| {
        let (storage, ingesters) = (storage.clone(), vec![ingester_addr.clone()]);
        let (cert, key) = (pki.path("server.pem"), pki.path("server.key"));
        let (querier_cert, querier_key) = (querier_cert.clone(), querier_key.clone());
        async move {
            TestServer::start(storage, move |config| {
                config.target = Target::Querier;
                config.ingesters = HostPorts(ingesters);
                config.ingester_ca_file = ca;
                config.ingester_timeout = Duration::from_secs(3);
                (config.tls_cert_file, config.tls_key_file) = match client_certificate {
                    true => (Some(querier_cert), Some(querier_key)),
                    false => (Some(cert), Some(key)),
                };
            })
            .await
        }
    };
    let ca_text = as_str(&ca_file);
    let trusted = querier_with(true, Some(ca_file.clone())).await;
    assert_eq!(querier_count(&trusted, &ca_text).await, (sent.to_string(), false), "over TLS, with its certificate");
    // Without a client certificate the ingester refuses the handshake; in clear it refuses the bytes:
    // either way the answer says it is partial.
    let anonymous = querier_with(false, Some(ca_file.clone())).await;
    assert_eq!(querier_count(&anonymous, &ca_text).await, ("0".to_owned(), true), "a certificate not made for clients");
    let clear = querier_with(true, None).await;
    assert_eq!(querier_count(&clear, &ca_text).await, ("0".to_owned(), true), "clear text to a TLS ingester");
    drop(backend);
}
