//! `kill -9` at random moments while a load generator runs loses no acknowledged span and duplicates
//! none (CONTRACTS §7), even though the generator resends every request a kill left unanswered, as SDKs
//! and the Collector retry (issue 26, Add 6: a resent request whose first copy reached the WAL is stored
//! once): ten kills (`SPANLAKE_CRASH_TRIALS` sets another count: 100 for a long run), a
//! restart after each, then one final check of the blocks. And while a
//! restarted server replays its WAL, its query port answers 503 instead of hanging (CONTRACTS §4).

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::process::{KilledOnDrop, Serving};
use rand::{Rng, SeedableRng};

const BINARY: &str = env!("CARGO_BIN_EXE_spanlake");

/// Starts `spanlake serve` on ephemeral ports; it is killed when dropped.
fn start_server(data_dir: &Path, storage: &str) -> Serving {
    common::process::serve(
        Command::new(BINARY)
            .args(["serve", "--data-dir"])
            .arg(data_dir)
            .args(["--storage", storage, "--http-addr", "127.0.0.1:0", "--otlp-grpc-addr", "127.0.0.1:0"])
            .args(["--otlp-http-addr", "127.0.0.1:0", "--max-block-bytes", "2MiB", "--max-block-age", "1s"])
            .args(["--jaeger-addr", "127.0.0.1:0", "--zipkin-addr", "127.0.0.1:0"]),
    )
}

#[test]
fn kill_9_during_ingest_loses_no_acknowledged_span_and_duplicates_none() {
    let folder = tempfile::tempdir().unwrap();
    let data_dir = folder.path().join("data");
    let storage = common::url_of(&folder.path().join("blocks"));
    let ids = folder.path().join("acknowledged.txt");
    let seed: u64 = rand::random();
    let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
    let trials: u64 = std::env::var("SPANLAKE_CRASH_TRIALS").map_or(10, |n| n.parse().expect("a number of kills"));
    eprintln!("{trials} kills, seed {seed}");
    for kill in 0..trials {
        let mut server = start_server(&data_dir, &storage);
        let mut loadgen = KilledOnDrop::spawn(
            Command::new(BINARY)
                .args(["loadgen", "--endpoint", &format!("http://{}", server.grpc), "--rate", "0", "--duration", "2s"])
                .args(["--spans-per-request", "100", "--seed", &(seed.wrapping_add(kill)).to_string(), "--retry"])
                .arg("--verify")
                .arg(&ids)
                .stdout(Stdio::null()),
        );
        // The kill lands at a random moment of the run: a deliberate sleep, not synchronisation.
        std::thread::sleep(Duration::from_millis(rng.random_range(100..1_500)));
        server.process.kill_9();
        assert!(loadgen.wait().unwrap().success(), "loadgen survives server crashes (seed {seed})");
    }
    let mut server = start_server(&data_dir, &storage);
    let http = server.http;
    assert_eq!(common::http::request(http, "POST", "/flush").unwrap().0, 204);
    // The restarted server reads every block as stored, including those committed just before the last
    // kill and re-encoded by its WAL replay: its SQL count is the count of the blocks on their own.
    let count = |source: &[&str]| {
        let output = Command::new(BINARY)
            .args(["sql", "--format", "csv"])
            .args(source)
            .arg("SELECT count(*) AS n FROM spans")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(output.status.success(), "seed {seed}: {source:?}: {stderr}");
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    assert_eq!(count(&["--server", &format!("http://{http}")]), count(&["--storage", &storage]), "seed {seed}");
    assert!(server.process.terminate().success());

    let verify =
        Command::new(BINARY).args(["verify", "--ids"]).arg(&ids).args(["--storage", &storage]).output().unwrap();
    let summary = String::from_utf8_lossy(&verify.stdout);
    assert!(verify.status.success(), "seed {seed}: {summary} {}", String::from_utf8_lossy(&verify.stderr));
    let acknowledged: u64 = summary.split_whitespace().next().unwrap().parse().unwrap();
    assert!(acknowledged > 1_000, "the runs acknowledged spans before the kills: {summary}");
    assert!(summary.contains("0 missing, 0 stored more than once"), "{summary}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_server_answers_503_while_it_replays_its_wal_then_serves_the_replayed_spans() {
    use common::server::{TestServer, loopback_config, send};
    use prost::Message;

    let backend = common::Backend::local();
    let first = TestServer::start(backend.storage.clone(), |_| {}).await;
    let request = spanlake::synth::TraceGenerator::new(31).next_request(500);
    let trace_id = hex::encode(&request.resource_spans[0].scope_spans[0].spans[0].trace_id);
    let body = request.encode_to_vec();
    let reply = send("POST", &first.traces_url(), &[("content-type", "application/x-protobuf")], body).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let TestServer { server, data_dir, .. } = first;
    server.shutdown().await.unwrap(); // no flush: the spans are only in the WAL

    let free = common::free_addr();
    let mut config = loopback_config(data_dir.path());
    config.http_addr = free;
    // The replay waits for the test, however fast it would be.
    let hold = spanlake::ingest::testing::hold_replay(&config.ingest_options().wal_dir);
    let restart = tokio::spawn(spanlake::api::Server::start_with_storage(config, backend.storage.clone()));
    let get = |path: String| async move { send("GET", &format!("http://{free}{path}"), &[], Vec::new()).await };
    tokio::time::timeout(Duration::from_secs(60), hold.reached()).await.expect("the restart reaches its WAL replay");

    let ready = get("/ready".into()).await;
    assert_eq!(ready.status, 503, "{}", ready.text());
    assert!(ready.text().contains("replaying"), "{}", ready.text());
    let echo = get("/api/echo".into()).await;
    assert_eq!((echo.status, echo.text().as_str()), (200, "echo"), "liveness holds during replay");
    let query = get(format!("/api/traces/{trace_id}")).await;
    assert_eq!(query.status, 503, "a query during replay is refused, not answered without the WAL's spans");
    assert!(query.text().contains("replaying"), "{}", query.text());
    assert!(!restart.is_finished(), "the start waits for its replay");

    hold.release();
    let server = restart.await.unwrap().unwrap();
    assert_eq!(get("/ready".into()).await.status, 200);
    let query = get(format!("/api/traces/{trace_id}")).await;
    assert_eq!(query.status, 200, "the replayed spans are served: {}", query.text());
    server.shutdown().await.unwrap();
}
