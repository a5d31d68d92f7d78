//! Shared spans: in Zipkin, the server side of an RPC may report its half of the span under the span ID
//! the client chose (`shared: true`), so one ID names two spans. In OTLP, and in spanlake, a span is
//! known by its (trace ID, span ID): the ingester drops a second span with a key it already holds as a
//! client's resend, and trace-by-ID keeps one span per key. The server half would be lost.
//!
//! So the server half gets an ID of its own, derived from the trace and the shared ID (the same span
//! resent gets the same ID, and is still recognised as a resend), and becomes the child of the client
//! half, whose ID it shared. Spans of the same request that the server recorded under the shared span
//! (same trace, same local service, parent = the shared ID) become children of the server half. This is
//! what Jaeger's query side does with such spans, moved to ingest because spanlake stores spans by key.

use std::collections::HashMap;

use super::model::ZipkinSpan;
use crate::ids::{SpanId, TraceId};

/// Prefix of the hashed input, so the derived IDs belong to this one use.
const DERIVATION_CONTEXT: &[u8] = b"spanlake zipkin shared server half";

/// The span ID of the server half of the shared span `shared_id` of `trace`: the first 8 bytes of
/// SHA-256 over [`DERIVATION_CONTEXT`], the trace ID (16 bytes) and the shared ID (8 bytes). Should that
/// be zero or the shared ID itself (odds of 2^-63), a counter (4 bytes, big-endian) is appended until
/// it is neither.
pub fn server_half_id(trace: &TraceId, shared_id: &SpanId) -> SpanId {
    (0u32..)
        .find_map(|attempt| {
            let mut input = Vec::with_capacity(DERIVATION_CONTEXT.len() + 28);
            input.extend_from_slice(DERIVATION_CONTEXT);
            input.extend_from_slice(trace.as_bytes());
            input.extend_from_slice(shared_id.as_bytes());
            if attempt > 0 {
                input.extend_from_slice(&attempt.to_be_bytes());
            }
            let digest = ring::digest::digest(&ring::digest::SHA256, &input);
            SpanId::from_slice(&digest.as_ref()[..8]).ok().filter(|id| id != shared_id)
        })
        .expect("a SHA-256 prefix is all zeros or one given value with probability 2^-63: the first attempt serves")
}

/// Gives every shared span its own ID under the span it shared, and moves its children in `spans` under
/// it (see the module doc).
pub fn separate_shared_halves(spans: &mut [ZipkinSpan]) {
    // (trace, shared ID, the server's service) → the server half's ID.
    let mut server_halves: HashMap<(TraceId, SpanId, Option<String>), SpanId> = HashMap::new();
    for span in spans.iter_mut().filter(|span| span.shared) {
        let own = server_half_id(&span.trace_id, &span.id);
        server_halves.insert((span.trace_id, span.id, span.local_service_name().map(str::to_owned)), own);
        span.parent_id = Some(span.id);
        span.id = own;
    }
    if server_halves.is_empty() {
        return;
    }
    for span in spans.iter_mut().filter(|span| !span.shared) {
        let Some(parent) = span.parent_id else { continue };
        let key = (span.trace_id, parent, span.local_service_name().map(str::to_owned));
        if let Some(server_half) = server_halves.get(&key) {
            span.parent_id = Some(*server_half);
        }
    }
}
