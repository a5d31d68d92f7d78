//! `kill -9` at random moments while a load generator runs loses no acknowledged span and duplicates
//! none (CONTRACTS §7): ten kills, a restart after each, then one final check of the blocks.

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rand::{Rng, SeedableRng};

const BINARY: &str = env!("CARGO_BIN_EXE_spanlake");

/// Starts `spanlake serve` on ephemeral ports; returns it with its OTLP/gRPC and query addresses.
/// The rest of its log is drained by a thread so the server never blocks on a full pipe.
fn start_server(data_dir: &Path, storage: &str) -> (Child, SocketAddr, SocketAddr) {
    let mut child = Command::new(BINARY)
        .args(["serve", "--data-dir"])
        .arg(data_dir)
        .args(["--storage", storage, "--http-addr", "127.0.0.1:0", "--otlp-grpc-addr", "127.0.0.1:0"])
        .args(["--otlp-http-addr", "127.0.0.1:0", "--max-block-bytes", "2MiB", "--max-block-age", "1s"])
        .env("SPANLAKE_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .expect("server starts");
    let mut log = BufReader::new(child.stderr.take().unwrap());
    let (mut grpc, mut http) = (None, None);
    while grpc.is_none() || http.is_none() {
        let mut line = String::new();
        assert!(log.read_line(&mut line).unwrap() > 0, "server exited before listening");
        let address = |key: &str| line.split(key).nth(1).and_then(|rest| rest.split_whitespace().next()?.parse().ok());
        grpc = grpc.or(address("otlp_grpc_addr="));
        http = http.or(address(" http_addr="));
    }
    std::thread::spawn(move || std::io::copy(&mut log, &mut std::io::sink()));
    (child, grpc.unwrap(), http.unwrap())
}

#[test]
fn kill_9_during_ingest_loses_no_acknowledged_span_and_duplicates_none() {
    let folder = tempfile::tempdir().unwrap();
    let data_dir = folder.path().join("data");
    let storage = common::url_of(&folder.path().join("blocks"));
    let ids = folder.path().join("acknowledged.txt");
    let seed: u64 = rand::random();
    let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
    for kill in 0..10 {
        let (mut server, grpc, _) = start_server(&data_dir, &storage);
        let loadgen = Command::new(BINARY)
            .args(["loadgen", "--endpoint", &format!("http://{grpc}"), "--rate", "0", "--duration", "2s"])
            .args(["--spans-per-request", "100", "--seed", &(seed.wrapping_add(kill)).to_string(), "--verify"])
            .arg(&ids)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        // The kill lands at a random moment of the run: a deliberate sleep, not synchronisation.
        std::thread::sleep(Duration::from_millis(rng.random_range(100..1_500)));
        server.kill().unwrap();
        server.wait().unwrap();
        let output = loadgen.wait_with_output().unwrap();
        assert!(output.status.success(), "loadgen survives server crashes (seed {seed})");
    }
    let (mut server, _, http) = start_server(&data_dir, &storage);
    assert_eq!(common::http::request(http, "POST", "/flush").unwrap().0, 204);
    Command::new("kill").args(["-TERM", &server.id().to_string()]).status().unwrap();
    assert!(server.wait().unwrap().success());

    let verify =
        Command::new(BINARY).args(["verify", "--ids"]).arg(&ids).args(["--storage", &storage]).output().unwrap();
    let summary = String::from_utf8_lossy(&verify.stdout);
    assert!(verify.status.success(), "seed {seed}: {summary} {}", String::from_utf8_lossy(&verify.stderr));
    let acknowledged: u64 = summary.split_whitespace().next().unwrap().parse().unwrap();
    assert!(acknowledged > 1_000, "the runs acknowledged spans before the kills: {summary}");
    assert!(summary.contains("0 missing, 0 stored more than once"), "{summary}");
}
