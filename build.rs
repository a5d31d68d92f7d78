//! Compiles `proto/tempo.proto` (Tempo-compatible trace-by-ID bodies and search messages; the gRPC
//! service over them is written by hand in `api/tempo_grpc.rs`) and `proto/zipkin.proto` (Zipkin v2's
//! protobuf spans, for the Zipkin receiver) with a pure-Rust protobuf compiler,
//! and records the git revision and branch for `/api/status/buildinfo`; builds outside a git checkout
//! (a source tarball, a Docker context without `.git`) report "unknown".

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let output = Command::new("git").args(args).output().ok()?;
    output.status.success().then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if let Some(revision) = git(&["rev-parse", "--short=12", "HEAD"]) {
        println!("cargo:rustc-env=SPANLAKE_GIT_REVISION={revision}");
    }
    if let Some(branch) = git(&["rev-parse", "--abbrev-ref", "HEAD"]) {
        println!("cargo:rustc-env=SPANLAKE_GIT_BRANCH={branch}");
    }
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=.git/refs/heads");
    println!("cargo:rerun-if-changed=proto");

    let descriptors = protox::compile(["tempo.proto", "zipkin.proto"], ["proto"])?;
    prost_build::Config::new()
        // The OTLP types come from the opentelemetry-proto crate, so a Tempo body holds the same
        // `ResourceSpans` the rest of spanlake uses.
        .extern_path(".opentelemetry.proto.trace.v1", "::opentelemetry_proto::tonic::trace::v1")
        .extern_path(".opentelemetry.proto.common.v1", "::opentelemetry_proto::tonic::common::v1")
        .compile_fds(descriptors)?;
    Ok(())
}
