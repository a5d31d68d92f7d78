//! What the block benchmarks share: their size switch and the spans they write, arriving as the
//! ingester buffers them.

use arrow::array::RecordBatch;
use spanlake::spans::SpanBatchBuilder;
use spanlake::synth::TraceGenerator;

/// Full size under `cargo bench`; a quick run under `cargo test`, which passes no `--bench`.
pub fn full_size() -> bool {
    std::env::args().any(|arg| arg == "--bench")
}

/// Spans per request: the default batch size of the OpenTelemetry SDKs' batch span processors. The
/// ingester buffers one Arrow batch per request, so a block is written from batches of this size.
pub const REQUEST_SPANS: usize = 512;

/// At least `spans` realistic spans (seed 2026), one Arrow batch per request of [`REQUEST_SPANS`].
pub fn request_batches(spans: usize) -> Vec<RecordBatch> {
    let mut generator = TraceGenerator::new(2026);
    let mut batches = Vec::new();
    let mut total = 0;
    while total < spans {
        let mut builder = SpanBatchBuilder::new();
        for resource_spans in generator.next_request(REQUEST_SPANS.min(spans - total)).resource_spans {
            builder.append_resource_spans(&resource_spans);
        }
        total += builder.len();
        batches.push(builder.finish().expect("synthetic spans encode"));
    }
    batches
}
