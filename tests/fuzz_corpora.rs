//! The fuzz targets' inputs as regression tests: every file of each target's committed corpus
//! (tests/fuzz/corpus/<target>, what libFuzzer kept for new coverage) and every input that once broke a
//! check (tests/fuzz/regressions/<target>) goes through the same checks as the fuzz target
//! (tests/fuzz/checks.rs) on each `cargo test`, without libFuzzer. `write_seed_corpora` (ignored) writes
//! the hand-made seeds the corpora started from.

#[path = "fuzz/checks.rs"]
mod checks;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use spanlake::ids::{BlockId, TenantId};
use spanlake::synth::TraceGenerator;
use spanlake::wal::record::{self, SEGMENT_MAGIC};
use spanlake::wal::{Record, SequenceRanges};

type Check = fn(&[u8]);

const TARGETS: [(&str, Check); 7] = [
    ("otlp_protobuf", checks::otlp_protobuf),
    ("otlp_json", checks::otlp_json),
    ("wal_replay", checks::wal_replay),
    ("trace_id", checks::trace_id),
    ("traceql", checks::traceql),
    ("zipkin_json", checks::zipkin_json),
    ("zipkin_protobuf", checks::zipkin_protobuf),
];

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz")
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut files: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_file()).collect();
    files.sort();
    files
}

#[test]
fn every_corpus_file_and_past_failure_passes_its_target_checks() {
    let mut failures = Vec::new();
    for (target, check) in TARGETS {
        let corpus = files_in(&fuzz_dir().join("corpus").join(target));
        assert!(
            corpus.iter().any(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("seed-"))),
            "the {target} corpus is not committed (tests/fuzz/corpus/{target} has no seed files)"
        );
        let regressions = files_in(&fuzz_dir().join("regressions").join(target));
        for path in corpus.iter().chain(&regressions) {
            let bytes = std::fs::read(path).unwrap();
            if let Err(panic) = catch_unwind(AssertUnwindSafe(|| check(&bytes))) {
                let message = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                failures.push(format!("{}: {message}", path.display()));
            }
        }
    }
    assert!(failures.is_empty(), "fuzz inputs that break their checks:\n{}", failures.join("\n"));
}

/// Real inputs go down each check's whole path (accepted, scanned, parsed), and damage to a segment is
/// seen as damage, so the checks are not passing because they return early on everything.
#[test]
fn the_checks_take_real_inputs_down_their_whole_path() {
    let request = TraceGenerator::new(7).next_request(20);
    let body = request.encode_to_vec();
    checks::otlp_protobuf(&body);
    let accepted = spanlake::ingest::NewSpans::from_protobuf(body.into()).unwrap();
    assert!(accepted.batch.num_rows() >= 20 && accepted.rejected.is_empty());
    checks::otlp_json(&serde_json::to_vec(&request).unwrap());

    let mut segment = vec![0u8];
    segment.extend_from_slice(&wal_segment());
    checks::wal_replay(&segment);
    // Cut the checksum of the first record: the check sees damage before intact records, and still holds.
    let scan = record::scan_segment(&segment[1..]);
    assert_eq!(scan.records.len(), 3);
    assert_eq!(scan.end, record::SegmentEnd::Clean);
    segment[1 + SEGMENT_MAGIC.len() + 4] ^= 0xff;
    checks::wal_replay(&segment);
    let scan = record::scan_segment(&segment[1..]);
    assert!(matches!(scan.end, record::SegmentEnd::Damaged { offset, .. } if offset == SEGMENT_MAGIC.len()));

    checks::trace_id(b"4bf92f3577b34da6a3ce929d0e0e4736");
    let query = r#"{ resource.service.name = "a" } >> { status = error }"#;
    checks::traceql(query.as_bytes());
    assert!(spanlake::traceql::check(query).is_ok());
}

fn tenant() -> TenantId {
    TenantId::new("fuzz").unwrap()
}

/// A segment as the WAL writes it: magic, two spans records and a cut record.
fn wal_segment() -> Vec<u8> {
    let mut segment = SEGMENT_MAGIC.to_vec();
    let mut generator = TraceGenerator::new(3);
    for seq in 0..2 {
        let payload = generator.next_request(2).encode_to_vec().into();
        record::encode(seq, &Record::Spans { tenant: tenant(), payload }, &mut segment);
    }
    let cut = Record::Cut {
        tenant: tenant(),
        block: BlockId::from_u128(0x0193_0000_0000_7000_8000_0000_0000_0001),
        sequences: SequenceRanges::from_sequences(vec![0, 1]),
    };
    record::encode(2, &cut, &mut segment);
    segment
}

/// Writes the seeds each corpus started from (`cargo test --test fuzz_corpora -- --ignored`); libFuzzer
/// adds the inputs it finds and `tests/fuzz/run.sh --merge` keeps the smallest set with the same coverage.
#[test]
#[ignore = "writes the seed corpora; run by hand"]
fn write_seed_corpora() {
    let write = |target: &str, name: &str, bytes: &[u8]| {
        let dir = fuzz_dir().join("corpus").join(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("seed-{name}")), bytes).unwrap();
    };
    let mut generator = TraceGenerator::new(11);
    // Small inputs: libFuzzer mutates them many times faster, and the structure is what matters.
    let mut small_request = |spans: usize| {
        let mut request = generator.next_request(spans);
        request.resource_spans.truncate(1);
        request.resource_spans[0].scope_spans.truncate(1);
        request.resource_spans[0].scope_spans[0].spans.truncate(spans);
        request
    };
    for spans in [1, 3] {
        let request = small_request(spans);
        write("otlp_protobuf", &format!("{spans}-spans"), &request.encode_to_vec());
        write("otlp_json", &format!("{spans}-spans"), &serde_json::to_vec(&request).unwrap());
    }
    let mut invalid = small_request(2);
    invalid.resource_spans[0].scope_spans[0].spans[0].trace_id = vec![0; 16];
    write("otlp_protobuf", "a-refused-span", &invalid.encode_to_vec());
    write("otlp_json", "a-refused-span", &serde_json::to_vec(&invalid).unwrap());
    write("otlp_protobuf", "empty", &ExportTraceServiceRequest::default().encode_to_vec());
    write(
        "otlp_json",
        "enum-names",
        br#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"checkout"}}]},"scopeSpans":[{"scope":{"name":"lib","version":"1"},"spans":[{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","parentSpanId":"eee19b7ec3c1b173","name":"GET /","kind":"SPAN_KIND_SERVER","startTimeUnixNano":"1544712660000000000","endTimeUnixNano":"1544712661000000000","attributes":[{"key":"n","value":{"intValue":"7"}},{"key":"d","value":{"doubleValue":1.5}},{"key":"b","value":{"boolValue":true}},{"key":"a","value":{"arrayValue":{"values":[{"stringValue":"x"}]}}}],"events":[{"timeUnixNano":"1544712660500000000","name":"e"}],"links":[{"traceId":"5b8efff798038103d269b633813fc60d","spanId":"eee19b7ec3c1b175"}],"status":{"code":"STATUS_CODE_ERROR","message":"boom"}}]}]}]}"#,
    );

    write_zipkin_seeds(&write);

    let segment = wal_segment();
    let mut as_file = vec![0u8];
    as_file.extend_from_slice(&segment);
    write("wal_replay", "three-records", &as_file);
    let mut torn = as_file.clone();
    torn.truncate(torn.len() - 7);
    write("wal_replay", "torn-tail", &torn);
    // The chunk form: each record's body behind a u16 length, framed with its checksum by the check.
    let mut chunks = vec![1u8];
    let scan = record::scan_segment(&segment);
    for found in &scan.records {
        let body = &segment[found.offset + 8..found.offset + found.len];
        chunks.extend_from_slice(&(body.len() as u16).to_le_bytes());
        chunks.extend_from_slice(body);
    }
    write("wal_replay", "chunks", &chunks);

    for (name, id) in [("full", "4bf92f3577b34da6a3ce929d0e0e4736"), ("short", "f067aa0ba902b7"), ("spaced", " 1a ")] {
        write("trace_id", name, id.as_bytes());
    }
    let queries = [
        r#"{ resource.service.name = "frontend" && name = "GET /" && status = error && duration > 100ms }"#,
        r#"{ span.http.status_code >= 500 } >> { kind = server } | count() > 2"#,
        r#"{ span.x =~ "a|b" || span."with space" != nil } && { trace:duration > 1s }"#,
        "{ (span.a + 2) * 3 = 7 } | avg(duration) > 20ms | select(span.http.method, resource.k8s.namespace)",
        r#"{ event:name = "exception" } ~ { link:traceID = "a" } | by(resource.service.name)"#,
        r#"{ parent.span.http.method = "GET" && nestedSetParent = -1 } !< { instrumentation:name = "otel" }"#,
        "{} | select(span.http.method) with(most_recent=true)",
        r#"{ .foo = "bar" && !span.flag } &>> { rootServiceName = "a" } | max(span.bytes) < 1e3"#,
    ];
    for (i, query) in queries.iter().enumerate() {
        write("traceql", &i.to_string(), query.as_bytes());
    }
}

/// Zipkin bodies in both encodings: a client/server pair sharing a span ID, annotations, tags, endpoints,
/// a 64-bit trace ID.
fn write_zipkin_seeds(write: &dyn Fn(&str, &str, &[u8])) {
    use spanlake::receive::zipkin::wire;
    write(
        "zipkin_json",
        "rpc-pair",
        br#"[{"traceId":"5b8efff798038103d269b633813fc60c","id":"eee19b7ec3c1b174","kind":"CLIENT","name":"get /cart","timestamp":1544712660000000,"duration":3000,"localEndpoint":{"serviceName":"frontend","ipv4":"10.0.0.1"},"remoteEndpoint":{"serviceName":"cart","ipv6":"2001:db8::1","port":8080},"annotations":[{"timestamp":1544712660001000,"value":"retry"}],"tags":{"http.method":"GET","otel.status_code":"ERROR","error":"timeout"}},{"traceId":"5b8efff798038103d269b633813fc60c","id":"eee19b7ec3c1b174","kind":"SERVER","shared":true,"name":"get /cart","timestamp":1544712660000500,"duration":2000,"localEndpoint":{"serviceName":"cart"}}]"#,
    );
    write(
        "zipkin_json",
        "64-bit",
        br#"[{"traceId":"D269B633813FC60C","id":"1","name":"x","timestamp":1,"duration":1}]"#,
    );
    write("zipkin_json", "empty", b"[]");
    let endpoint = |service: &str| wire::Endpoint {
        service_name: service.to_owned(),
        ipv4: vec![10, 0, 0, 1],
        ipv6: vec![],
        port: 80,
    };
    let list = wire::ListOfSpans {
        spans: vec![wire::Span {
            trace_id: hex::decode("5b8efff798038103d269b633813fc60c").unwrap(),
            parent_id: vec![],
            id: hex::decode("eee19b7ec3c1b174").unwrap(),
            kind: 1,
            name: "get /cart".to_owned(),
            timestamp: 1_544_712_660_000_000,
            duration: 3_000,
            local_endpoint: Some(endpoint("frontend")),
            remote_endpoint: Some(endpoint("cart")),
            annotations: vec![wire::Annotation { timestamp: 1_544_712_660_001_000, value: "retry".to_owned() }],
            tags: [("http.method".to_owned(), "GET".to_owned())].into_iter().collect(),
            debug: false,
            shared: false,
        }],
    };
    write("zipkin_protobuf", "one-span", &list.encode_to_vec());
    write("zipkin_protobuf", "empty", &[]);
}
