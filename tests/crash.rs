//! `kill -9` at random moments while a load generator runs loses no acknowledged span and duplicates
//! none (CONTRACTS §7): ten kills, a restart after each, then one final check of the blocks. And while a
//! restarted server replays its WAL, its query port answers 503 instead of hanging (CONTRACTS §4).

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

/// A server process that is killed when the test lets go of it, on success or panic alike.
struct KilledOnDrop(Child);

impl Drop for KilledOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
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
    let (server, _, http) = start_server(&data_dir, &storage);
    // A failed assertion below must not leave the server running: it holds the test's output open.
    let mut server = KilledOnDrop(server);
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
    Command::new("kill").args(["-TERM", &server.0.id().to_string()]).status().unwrap();
    assert!(server.0.wait().unwrap().success());

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
    use common::server::{TestServer, loopback_config, send, try_send};
    use prost::Message;

    let backend = common::Backend::local();
    let first = TestServer::start(backend.storage.clone(), |_| {}).await;
    let mut generator = spanlake::synth::TraceGenerator::new(31);
    let mut trace_id = None;
    for _ in 0..100 {
        let request = generator.next_request(500);
        trace_id.get_or_insert_with(|| hex::encode(&request.resource_spans[0].scope_spans[0].spans[0].trace_id));
        let body = request.encode_to_vec();
        let reply = send("POST", &first.traces_url(), &[("content-type", "application/x-protobuf")], body).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
    }
    let TestServer { server, data_dir, .. } = first;
    server.shutdown().await.unwrap(); // no flush: the spans are only in the WAL

    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let mut config = loopback_config(data_dir.path());
    config.http_addr = free;
    let restart = tokio::spawn(spanlake::api::Server::start_with_storage(config, backend.storage.clone()));
    let (ready, trace) = (format!("http://{free}/ready"), format!("http://{free}/api/traces/{}", trace_id.unwrap()));
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let mut answered_while_replaying = false;
    loop {
        assert!(std::time::Instant::now() < deadline, "never ready");
        // Refused until the port is bound.
        if let Ok(reply) = try_send("GET", &ready, &[], Vec::new()).await {
            if reply.status == 200 {
                break;
            }
            assert_eq!(reply.status, 503, "{}", reply.text());
            if reply.text().contains("replaying") && !answered_while_replaying {
                answered_while_replaying = true;
                let echo = send("GET", &format!("http://{free}/api/echo"), &[], Vec::new()).await;
                assert_eq!((echo.status, echo.text().as_str()), (200, "echo"), "liveness holds during replay");
                let query = send("GET", &trace, &[], Vec::new()).await;
                assert!(
                    query.status == 503 && query.text().contains("replaying") || query.status == 200,
                    "a query during replay is refused, or answered whole once replay is done: {} {}",
                    query.status,
                    query.text()
                );
            }
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert!(answered_while_replaying, "the query port answered 503 while the WAL replayed");
    let server = restart.await.unwrap().unwrap();
    assert_eq!(send("GET", &trace, &[], Vec::new()).await.status, 200, "the replayed spans are served");
    server.shutdown().await.unwrap();
}
