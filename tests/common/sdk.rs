//! The official OpenTelemetry Python SDK as a client: `tests/tools/otel_send.py` exports traces with the
//! SDK's own OTLP exporter and reports what it sent.

use std::process::Command;

use serde_json::Value as Json;

/// How the SDK exports.
pub struct Export<'a> {
    /// `grpc` or `http`.
    pub protocol: &'a str,
    pub endpoint: &'a str,
    pub tenant: &'a str,
    pub traces: usize,
    pub gzip: bool,
}

/// Runs one export and returns the script's report (`spans` as sent, `request_hex` as encoded), after
/// checking that the exporter itself reported success.
pub fn send(export: Export<'_>) -> Json {
    let report = send_with_headers(export, &[]);
    assert_eq!(report["result"], "SUCCESS", "the SDK exporter reports success: {report}");
    report
}

/// Runs one export with extra headers (gRPC metadata), such as `authorization`, and returns the report
/// whether the exporter succeeded or not (`result`: `SUCCESS` or `FAILURE`).
pub fn send_with_headers(export: Export<'_>, headers: &[(&str, &str)]) -> Json {
    send_with(export, headers, &[])
}

/// Runs one export with extra headers and environment variables (the SDK's own, such as
/// `OTEL_EXPORTER_OTLP_CERTIFICATE`), and returns the report whether the exporter succeeded or not.
pub fn send_with(export: Export<'_>, headers: &[(&str, &str)], env: &[(&str, &str)]) -> Json {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tools/otel_send.py");
    let mut command = Command::new(super::tools::tool("python"));
    command.args([script, "--protocol", export.protocol, "--endpoint", export.endpoint, "--tenant", export.tenant]);
    command.args(["--traces", &export.traces.to_string()]);
    if export.gzip {
        command.arg("--gzip");
    }
    for (name, value) in headers {
        command.args(["--header", &format!("{name}={value}")]);
    }
    if env.iter().any(|(name, _)| name.starts_with("OTEL_EXPORTER_OTLP_") && name.ends_with("CERTIFICATE")) {
        // `requests` lets these variables win over the CA file the HTTP exporter sets on its session, so a
        // machine that sets them (CI images do) would make the exporter distrust the test's own CA.
        command.env_remove("REQUESTS_CA_BUNDLE").env_remove("CURL_CA_BUNDLE");
    }
    command.envs(env.iter().copied());
    let output = command.output().expect("python runs");
    assert!(output.status.success(), "otel_send.py failed: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("JSON report")
}
