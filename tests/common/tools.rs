//! Where the test suite's Python tools live (installed by `tests/tools/install.sh`).

use std::path::PathBuf;

/// The virtualenv holding moto, pyarrow and DuckDB.
pub fn tools_dir() -> PathBuf {
    match std::env::var_os("SPANLAKE_TEST_TOOLS") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(std::env::var_os("HOME").expect("HOME is set")).join(".cache/spanlake/test-tools"),
    }
}

/// A program of the tools virtualenv; panics with the fix when it is missing (these tests never skip).
pub fn tool(name: &str) -> PathBuf {
    let path = tools_dir().join("bin").join(name);
    assert!(
        path.exists(),
        "{} is missing: run tests/tools/install.sh (or the README's test command, which does it)",
        path.display()
    );
    path
}

/// Python of the second virtualenv, beside [`tools_dir`], holding the OpenTelemetry SDK's Zipkin
/// exporters (`tests/tools/requirements-zipkin-proto.txt`): their protobuf exporter needs protobuf<4,
/// which the OTLP exporters of the first cannot share. Panics with the fix when it is missing.
pub fn zipkin_exporters_python() -> PathBuf {
    let mut venv = tools_dir().into_os_string();
    venv.push("-zipkin-proto");
    let path = PathBuf::from(venv).join("bin").join("python");
    assert!(path.exists(), "{} is missing: run tests/tools/install.sh", path.display());
    path
}
