//! OTLP decoding, the receivers' costliest step: protobuf bytes of realistic requests (`spanlake::synth`,
//! 512+ spans each, like an SDK batch) to Arrow rows, by prost + the struct-to-Arrow builder (the
//! baseline) and by the direct decoder the receivers use. Throughput is in spans per second, one thread.
//!
//! `cargo bench --bench decode` runs it at full size; under `cargo test` it runs once on a few requests.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use spanlake::spans::{encode_resource_spans, protobuf_to_batch};
use spanlake::synth::TraceGenerator;

fn main() {
    let requests = if std::env::args().any(|arg| arg == "--bench") { 200 } else { 4 };
    let mut generator = TraceGenerator::new(2026);
    let bodies: Vec<Vec<u8>> = (0..requests).map(|_| generator.next_request(512).encode_to_vec()).collect();
    let spans: usize = bodies.iter().map(|body| protobuf_to_batch(body).expect("decodes").0.num_rows()).sum();
    let bytes: usize = bodies.iter().map(Vec::len).sum();
    println!("{requests} requests, {spans} spans, {:.0} protobuf bytes/span", bytes as f64 / spans as f64);

    let mut criterion = Criterion::default().configure_from_args().sample_size(10);
    let mut group = criterion.benchmark_group("otlp_to_arrow");
    group.throughput(Throughput::Elements(spans as u64));
    group.bench_function(BenchmarkId::new("prost_then_builder", spans), |b| {
        b.iter(|| {
            for body in &bodies {
                let request = ExportTraceServiceRequest::decode(black_box(body.as_slice())).expect("decodes");
                black_box(encode_resource_spans(&request.resource_spans).expect("encodes"));
            }
        })
    });
    group.bench_function(BenchmarkId::new("prost_only", spans), |b| {
        b.iter(|| {
            for body in &bodies {
                black_box(ExportTraceServiceRequest::decode(black_box(body.as_slice())).expect("decodes"));
            }
        })
    });
    group.bench_function(BenchmarkId::new("direct", spans), |b| {
        b.iter(|| {
            for body in &bodies {
                black_box(protobuf_to_batch(black_box(body)).expect("decodes"));
            }
        })
    });
    group.finish();
    criterion.final_summary();
}
