//! Several processes on one bucket (issue 29): three ingesters, two queriers and a compactor, each a
//! `spanlake serve --target …` process, on the S3 test server. The load generator sends to all three
//! ingesters, first routed by trace ID with the ring of the Collector's `loadbalancing` exporter
//! (`src/loadgen/route.rs`, the same behaviour as `deploy/otel-collector-loadbalancing.yaml`), then
//! unrouted so traces split across ingesters, while one ingester is `kill -9`'d and restarted. Both
//! queriers must see every acknowledged span within 2 s and give the same answers; an ingester that is
//! down makes answers partial, never silently short; after the ingesters stop gracefully (each flushes
//! first) `spanlake verify` finds every acknowledged span stored exactly once.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::io::{BufRead, Seek};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::process::{HttpServing, KilledOnDrop, Serving};
use common::server::{Reply, send};
use spanlake::ids::TraceId;
use spanlake::loadgen::route::HashRing;

const BINARY: &str = env!("CARGO_BIN_EXE_spanlake");

/// How soon an acknowledged span must be visible from every querier (CONTRACTS §2's read-your-writes).
const VISIBLE_WITHIN: Duration = Duration::from_secs(2);

/// The S3 test server's address and credentials, as the binary reads them (the AWS variables).
fn s3_environment() -> Vec<(&'static str, String)> {
    let s3 = common::s3::S3Server::shared();
    vec![
        ("AWS_ENDPOINT_URL", s3.endpoint()),
        ("AWS_ALLOW_HTTP", "true".to_owned()),
        ("AWS_ACCESS_KEY_ID", "test".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "test".to_owned()),
        ("AWS_REGION", "us-east-1".to_owned()),
    ]
}

/// One ingester: fixed ports, so a restart comes back where the load generator and the queriers look.
struct Ingester {
    http: SocketAddr,
    grpc: SocketAddr,
    data_dir: PathBuf,
    process: Option<Serving>,
}

impl Ingester {
    fn start(&mut self, storage: &str) {
        let serving = common::process::serve(
            Command::new(BINARY)
                .args(["serve", "--target", "ingester", "--storage", storage, "--data-dir"])
                .arg(&self.data_dir)
                .args(["--http-addr", &self.http.to_string(), "--otlp-grpc-addr", &self.grpc.to_string()])
                .args(["--otlp-http-addr", "127.0.0.1:0", "--zipkin-addr", "127.0.0.1:0"])
                // Blocks are cut and uploaded during the run, so answers cross the handoff from buffer to
                // block all the time; the queriers list every second, well inside the handoff retention.
                .args(["--max-block-age", "2s", "--max-block-bytes", "4MiB", "--handoff-retention", "30s"])
                .envs(s3_environment()),
        );
        assert_eq!((serving.http, serving.grpc), (self.http, self.grpc));
        self.process = Some(serving);
    }

    fn endpoint(&self) -> String {
        format!("http://{}", self.grpc)
    }
}

/// Every process of the deployment.
struct Cluster {
    _folder: tempfile::TempDir,
    folder: PathBuf,
    storage: String,
    ingesters: Vec<Ingester>,
    queriers: Vec<HttpServing>,
    compactor: HttpServing,
    runtime: tokio::runtime::Runtime,
}

impl Cluster {
    fn start() -> Self {
        let folder = tempfile::tempdir().unwrap();
        let storage = format!("s3://{}/spanlake", common::s3::S3Server::shared().new_bucket());
        let mut ingesters: Vec<Ingester> = (0..3)
            .map(|n| Ingester {
                http: common::free_addr(),
                grpc: common::free_addr(),
                data_dir: folder.path().join(format!("ingester-{n}")),
                process: None,
            })
            .collect();
        for ingester in &mut ingesters {
            ingester.start(&storage);
        }
        let list: Vec<String> = ingesters.iter().map(|i| i.http.to_string()).collect();
        let queriers = (0..2)
            .map(|n| {
                common::process::serve_http(
                    Command::new(BINARY)
                        .args(["serve", "--target", "querier", "--storage", &storage, "--data-dir"])
                        .arg(folder.path().join(format!("querier-{n}")))
                        .args(["--http-addr", "127.0.0.1:0", "--jaeger-addr", "127.0.0.1:0"])
                        .args(["--ingesters", &list.join(","), "--block-refresh-interval", "1s"])
                        .args(["--ingester-refresh-interval", "1s"])
                        .envs(s3_environment()),
                )
            })
            .collect();
        let compactor = common::process::serve_http(
            Command::new(BINARY)
                .args(["serve", "--target", "compactor", "--storage", &storage, "--data-dir"])
                .arg(folder.path().join("compactor"))
                .args(["--http-addr", "127.0.0.1:0", "--compaction-interval", "1s"])
                .envs(s3_environment()),
        );
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        Self { folder: folder.path().to_owned(), _folder: folder, storage, ingesters, queriers, compactor, runtime }
    }

    fn get(&self, addr: SocketAddr, path: &str) -> Reply {
        self.runtime.block_on(send("GET", &format!("http://{addr}{path}"), &[], Vec::new()))
    }

    fn sql(&self, querier: SocketAddr, sql: &str) -> Reply {
        let url = format!("http://{querier}/api/sql?format=json");
        let reply = self.runtime.block_on(send("POST", &url, &[("content-type", "application/sql")], sql.to_owned()));
        assert_eq!(reply.status, 200, "{sql}: {}", reply.text());
        reply
    }

    /// Spans each querier counts with SQL, and whether its answer said it is partial.
    fn counts(&self) -> Vec<(u64, bool)> {
        self.queriers
            .iter()
            .map(|querier| {
                let reply = self.sql(querier.http, "SELECT count(*) AS n FROM spans");
                let body: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
                (body["rows"][0][0].as_u64().unwrap(), reply.headers.contains_key("warning"))
            })
            .collect()
    }

    /// The span IDs of a trace as one querier answers it (v2 JSON), and its status.
    fn trace(&self, querier: SocketAddr, trace: &str) -> (BTreeSet<String>, Option<String>) {
        let reply = self.get(querier, &format!("/api/v2/traces/{trace}"));
        if reply.status == 404 {
            return (BTreeSet::new(), None);
        }
        assert_eq!(reply.status, 200, "{trace}: {}", reply.text());
        let body: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
        let listed: Vec<String> = body["trace"]["resourceSpans"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|rs| rs["scopeSpans"].as_array().unwrap())
            .flat_map(|ss| ss["spans"].as_array().unwrap())
            .map(|span| span["spanId"].as_str().unwrap().to_owned())
            .collect();
        let spans: BTreeSet<String> = listed.iter().cloned().collect();
        assert_eq!(spans.len(), listed.len(), "trace {trace}: no span twice (buffer, handoff and blocks)");
        (spans, body["status"].as_str().map(str::to_owned))
    }

    /// Runs the load generator over all three ingesters for `seconds`, appending acknowledged spans to
    /// `ids`, while `during` runs (it gets the generator's process); returns once it has finished.
    fn load(&mut self, route: &str, seed: u64, seconds: u64, ids: &Path, during: impl FnOnce(&mut Self)) {
        let endpoints: Vec<String> = self.ingesters.iter().map(Ingester::endpoint).collect();
        let mut loadgen = KilledOnDrop::spawn(
            Command::new(BINARY)
                .args(["loadgen", "--endpoint", &endpoints.join(","), "--route", route, "--rate", "1500"])
                .args(["--duration", &format!("{seconds}s"), "--spans-per-request", "100", "--retry"])
                .args(["--seed", &seed.to_string(), "--verify"])
                .arg(ids)
                .stdout(Stdio::null()),
        );
        during(self);
        assert!(loadgen.wait().unwrap().success(), "the load generator's requests are all acknowledged");
    }
}

/// The acknowledged spans in a `loadgen --verify` file, read as it grows: complete lines only.
struct Acknowledged {
    file: std::io::BufReader<std::fs::File>,
    partial_line: String,
    by_trace: HashMap<String, BTreeSet<String>>,
    /// Traces in the order their first span was acknowledged.
    order: Vec<String>,
}

impl Acknowledged {
    fn open(path: &Path) -> Self {
        let file = std::fs::OpenOptions::new().create(true).append(true).read(true).open(path).unwrap();
        let mut file = std::io::BufReader::new(file);
        file.seek(std::io::SeekFrom::Start(0)).unwrap();
        Self { file, partial_line: String::new(), by_trace: HashMap::new(), order: Vec::new() }
    }

    /// Reads what was appended since; returns the traces of the new lines, newest last.
    fn read_new(&mut self) -> Vec<String> {
        let mut new = Vec::new();
        loop {
            let mut line = String::new();
            if self.file.read_line(&mut line).unwrap() == 0 {
                return new;
            }
            self.partial_line.push_str(&line);
            if !self.partial_line.ends_with('\n') {
                return new;
            }
            let complete = std::mem::take(&mut self.partial_line);
            let (trace, span) = complete.trim().split_once(' ').expect("`trace span` lines");
            let spans = self.by_trace.entry(trace.to_owned()).or_default();
            if spans.is_empty() {
                self.order.push(trace.to_owned());
            }
            spans.insert(span.to_owned());
            new.push(trace.to_owned());
        }
    }

    fn spans(&self) -> usize {
        self.by_trace.values().map(BTreeSet::len).sum()
    }
}

/// While the load generator runs: every few hundred milliseconds, the newest acknowledged trace must be
/// visible whole (every span acknowledged so far) from both queriers within [`VISIBLE_WITHIN`] of the
/// moment its acknowledgement reached the file. Returns the slowest visibility measured.
fn watch_visibility(cluster: &Cluster, acknowledged: &mut Acknowledged, for_how_long: Duration) -> Duration {
    let until = Instant::now() + for_how_long;
    let mut slowest = Duration::ZERO;
    let mut checked = 0;
    while Instant::now() < until {
        let Some(trace) = acknowledged.read_new().pop() else {
            std::thread::sleep(Duration::from_millis(50));
            continue;
        };
        let seen = Instant::now();
        let wanted = acknowledged.by_trace[&trace].clone();
        for querier in &cluster.queriers {
            loop {
                let (spans, status) = cluster.trace(querier.http, &trace);
                if wanted.is_subset(&spans) {
                    assert_eq!(status, None, "every ingester answers: the trace is complete, not PARTIAL");
                    break;
                }
                assert!(
                    seen.elapsed() < VISIBLE_WITHIN,
                    "trace {trace}: {} of its {} acknowledged spans visible from querier {} after {:?}",
                    spans.intersection(&wanted).count(),
                    wanted.len(),
                    querier.http,
                    seen.elapsed()
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        slowest = slowest.max(seen.elapsed());
        checked += 1;
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(checked >= 3, "the run acknowledged spans to check ({checked} checked)");
    slowest
}

/// Polls until both queriers count `expected` spans with no partial warning, or fails after 30 s.
fn wait_for_counts(cluster: &Cluster, expected: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let counts = cluster.counts();
        if counts.iter().all(|(count, partial)| *count == expected as u64 && !partial) {
            return;
        }
        assert!(Instant::now() < deadline, "queriers count {counts:?}, {expected} spans acknowledged");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn three_ingesters_two_queriers_and_a_compactor_share_one_bucket() {
    let mut cluster = Cluster::start();
    let ids = cluster.folder.join("acknowledged.txt");
    let mut acknowledged = Acknowledged::open(&ids);

    // Each role says what it is, on /ready and /metrics; an ingester answers no user queries.
    let roles: Vec<(SocketAddr, &str)> = cluster
        .ingesters
        .iter()
        .map(|i| (i.http, "ingester"))
        .chain(cluster.queriers.iter().map(|q| (q.http, "querier")))
        .chain([(cluster.compactor.http, "compactor")])
        .collect();
    for (addr, role) in &roles {
        let ready = cluster.get(*addr, "/ready");
        assert_eq!((ready.status, ready.text()), (200, format!("ready\ntarget: {role}")));
        assert_eq!(ready.headers["x-spanlake-target"], *role);
        let metrics = cluster.get(*addr, "/metrics").text();
        assert!(metrics.contains(&format!("spanlake_target_info{{target=\"{role}\"}} 1")), "{role}: {metrics:.300}");
    }
    assert_eq!(cluster.get(cluster.ingesters[0].http, "/api/search").status, 404, "queries go to queriers");
    let flush = format!("http://{}/flush", cluster.queriers[0].http);
    let flushed = cluster.runtime.block_on(send("POST", &flush, &[], Vec::new()));
    assert_eq!(flushed.status, 404, "a querier has nothing to flush: {}", flushed.text());

    // 1. Routed by trace ID, as the Collector's loadbalancing exporter routes: every span of a trace on
    //    the one ingester the ring picks, each visible from both queriers within 2 s.
    let mut slowest = Duration::ZERO;
    cluster.load("trace-id", 1, 5, &ids, |cluster| {
        slowest = watch_visibility(cluster, &mut acknowledged, Duration::from_secs(4));
    });
    acknowledged.read_new();
    let endpoints: Vec<String> = cluster.ingesters.iter().map(|i| i.grpc.to_string()).collect();
    let ring = HashRing::new(&endpoints).unwrap();
    let routed: Vec<String> = acknowledged.by_trace.keys().take(20).cloned().collect();
    for trace in &routed {
        let id = TraceId::from_hex(trace).unwrap();
        let holders: Vec<String> = cluster
            .ingesters
            .iter()
            .filter(|ingester| held_by(&cluster, ingester.http, &id) > 0)
            .map(|ingester| ingester.grpc.to_string())
            .collect();
        assert_eq!(holders, vec![ring.endpoint_for(&id).to_owned()], "trace {trace} is whole on its ring's ingester");
    }
    wait_for_counts(&cluster, acknowledged.spans());
    eprintln!("routed: {} spans, slowest visibility {slowest:?}", acknowledged.spans());

    // 2. Unrouted: each trace's spans spread over the ingesters. One ingester is killed mid-run: answers
    //    while it is down say they are partial; it restarts from its WAL on the same ports.
    let mut partial_seen = false;
    cluster.load("spread", 2, 5, &ids, |cluster| {
        // When the kill lands in the run is a deliberate pause, not synchronisation.
        std::thread::sleep(Duration::from_millis(1500));
        cluster.ingesters[1].process.as_mut().unwrap().process.kill_9();
        partial_seen = cluster.counts().iter().all(|(_, partial)| *partial);
        acknowledged.read_new();
        // A trace of several spans, spread: some are on the ingesters still up.
        let trace = acknowledged.order.iter().rev().find(|t| acknowledged.by_trace[*t].len() >= 3).unwrap().clone();
        let (_, status) = cluster.trace(cluster.queriers[0].http, &trace);
        assert_eq!(status.as_deref(), Some("PARTIAL"), "a trace asked while an ingester is down is marked partial");
        let storage = cluster.storage.clone();
        cluster.ingesters[1].start(&storage);
    });
    assert!(partial_seen, "SQL answers while an ingester was down carried a Warning header");
    acknowledged.read_new();
    wait_for_counts(&cluster, acknowledged.spans());

    // Both queriers give the same answers: trace by ID of split traces, search, SQL.
    // The newest traces: sent after the restart, so every ingester still holds its part of them (the
    // restarted one has no handed-off blocks from before its crash).
    let split: Vec<&String> =
        acknowledged.order.iter().rev().filter(|t| acknowledged.by_trace[*t].len() >= 3).take(10).collect();
    assert_eq!(split.len(), 10, "traces with several spans were sent spread");
    for trace in split {
        let id = TraceId::from_hex(trace).unwrap();
        let holding = cluster.ingesters.iter().filter(|i| held_by(&cluster, i.http, &id) > 0).count();
        assert!(holding >= 2, "trace {trace} is split over {holding} ingesters");
        let answers: Vec<_> = cluster.queriers.iter().map(|q| cluster.trace(q.http, trace)).collect();
        assert_eq!(answers[0], answers[1], "both queriers answer trace {trace} alike");
        assert_eq!(answers[0].0, acknowledged.by_trace[trace], "trace {trace} is whole, each span once");
    }
    let search = "/api/search?q=%7B%20resource.service.name%20%3D%20%22cart%22%20%7D&limit=50";
    let found: Vec<serde_json::Value> = cluster
        .queriers
        .iter()
        .map(|q| {
            let reply = cluster.get(q.http, search);
            assert_eq!(reply.status, 200, "{}", reply.text());
            assert!(!reply.headers.contains_key("warning"), "every ingester answered the search");
            serde_json::from_slice::<serde_json::Value>(&reply.body).unwrap()["traces"].clone()
        })
        .collect();
    assert!(!found[0].as_array().unwrap().is_empty(), "the search finds traces");
    assert_eq!(found[0], found[1], "both queriers find the same traces");
    let by_service = "SELECT service_name, count(*) AS n FROM spans GROUP BY service_name ORDER BY service_name";
    let grouped: Vec<String> = cluster.queriers.iter().map(|q| cluster.sql(q.http, by_service).text()).collect();
    assert_eq!(grouped[0], grouped[1]);

    // 3. Scale-down: each ingester told to stop flushes its buffers to blocks first; the queriers keep
    //    answering, from the blocks once the ingesters are gone (marked partial: they no longer answer).
    for ingester in &mut cluster.ingesters {
        let mut serving = ingester.process.take().unwrap();
        assert!(serving.process.terminate().success(), "an ingester stops with exit 0 after flushing");
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let counts = cluster.counts();
        if counts.iter().all(|(count, partial)| *count == acknowledged.spans() as u64 && *partial) {
            break;
        }
        assert!(Instant::now() < deadline, "after the ingesters stopped the queriers count {counts:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let verified = Command::new(BINARY)
        .args(["verify", "--ids"])
        .arg(&ids)
        .args(["--storage", &cluster.storage])
        .envs(s3_environment())
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&verified.stdout).into_owned() + &String::from_utf8_lossy(&verified.stderr);
    assert!(verified.status.success(), "every acknowledged span stored exactly once: {said}");
    assert!(said.contains("0 missing, 0 stored more than once"), "{said}");
}

/// Spans of `trace` that the ingester at `http` holds (buffer, pending or handed-off blocks), asked on
/// its internal endpoint as a querier asks.
fn held_by(cluster: &Cluster, http: SocketAddr, trace: &TraceId) -> usize {
    let filter = serde_json::json!({ "traces": [trace.to_hex()], "columns": ["span_id"] }).to_string();
    let url = format!("http://{http}{}", spanlake::query::peers::RECENT_PATH);
    let reply = cluster.runtime.block_on(send("POST", &url, &[("content-type", "application/json")], filter));
    assert_eq!(reply.status, 200, "{}", reply.text());
    spanlake::query::peers::decode(reply.body).unwrap().iter().map(|held| held.batch.num_rows()).sum()
}
