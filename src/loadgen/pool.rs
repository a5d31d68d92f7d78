//! Requests generated and encoded once, then re-sent with fresh trace IDs: generating realistic traces
//! and encoding them costs more CPU than the server spends ingesting them, and the load generator
//! shares the machine with the server it measures.

use bytes::{Bytes, BytesMut};
use prost::Message;

use crate::synth::TraceGenerator;

/// A set of prepared requests.
pub struct RequestPool {
    requests: Vec<PreparedRequest>,
}

struct PreparedRequest {
    bytes: Bytes,
    spans: usize,
    traces: Vec<PreparedTrace>,
}

/// One trace of a prepared request: its ID, every byte offset where the ID occurs in the encoding
/// (each span, and links to it), and its span IDs (for the verify file).
struct PreparedTrace {
    id: [u8; 16],
    offsets: Vec<usize>,
    span_ids: Vec<[u8; 8]>,
}

/// One request ready to send.
pub struct PoolRequest {
    pub bytes: Bytes,
    pub spans: usize,
    /// `trace_id span_id` lines of its spans, when asked for.
    pub ids: Option<String>,
}

/// A 64-bit mix (splitmix64's finaliser): distinct inputs give distinct, well-spread outputs.
fn mix(mut value: u64) -> u64 {
    value = (value ^ (value >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    value = (value ^ (value >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    value ^ (value >> 31)
}

impl RequestPool {
    /// Generates `size` requests of at least `spans_per_request` spans each, with traces starting at
    /// `clock_unix_nano`.
    pub fn generate(seed: u64, size: usize, spans_per_request: usize, clock_unix_nano: u64) -> Self {
        let mut generator = TraceGenerator::new(seed);
        generator.set_clock(clock_unix_nano);
        let requests = (0..size.max(1))
            .map(|_| {
                let request = generator.next_request(spans_per_request);
                let bytes = Bytes::from(request.encode_to_vec());
                let mut traces: Vec<PreparedTrace> = Vec::new();
                let mut spans = 0;
                for span in request.resource_spans.iter().flat_map(|rs| &rs.scope_spans).flat_map(|ss| &ss.spans) {
                    spans += 1;
                    let id: [u8; 16] = span.trace_id.as_slice().try_into().expect("generated IDs are 16 bytes");
                    let span_id: [u8; 8] = span.span_id.as_slice().try_into().expect("generated IDs are 8 bytes");
                    match traces.iter_mut().find(|t| t.id == id) {
                        Some(trace) => trace.span_ids.push(span_id),
                        None => traces.push(PreparedTrace { id, offsets: Vec::new(), span_ids: vec![span_id] }),
                    }
                }
                for trace in &mut traces {
                    trace.offsets = memchr::memmem::find_iter(&bytes, &trace.id).collect();
                }
                PreparedRequest { bytes, spans, traces }
            })
            .collect();
        Self { requests }
    }

    /// The `sequence`-th request: pool entry `sequence % size` with every trace ID changed by a mask
    /// unique to (`salt`, `sequence`), so no two sends share a trace ID.
    pub fn request(&self, sequence: u64, salt: u64, with_ids: bool) -> PoolRequest {
        let prepared = &self.requests[(sequence % self.requests.len() as u64) as usize];
        let mask = mix(salt ^ mix(sequence)).to_le_bytes();
        let mut bytes = BytesMut::from(prepared.bytes.as_ref());
        let mut ids = with_ids.then(String::new);
        for trace in &prepared.traces {
            let mut id = trace.id;
            for (byte, mask_byte) in id.iter_mut().zip(mask) {
                *byte ^= mask_byte;
            }
            if id == [0; 16] {
                id[15] = 1;
            }
            for &offset in &trace.offsets {
                bytes[offset..offset + 16].copy_from_slice(&id);
            }
            if let Some(lines) = ids.as_mut() {
                let trace_hex = hex::encode(id);
                for span_id in &trace.span_ids {
                    lines.push_str(&trace_hex);
                    lines.push(' ');
                    lines.push_str(&hex::encode(span_id));
                    lines.push('\n');
                }
            }
        }
        PoolRequest { bytes: bytes.freeze(), spans: prepared.spans, ids }
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;

    use super::*;

    fn trace_ids(bytes: &Bytes) -> Vec<Vec<u8>> {
        let request = ExportTraceServiceRequest::decode(bytes.as_ref()).unwrap();
        request
            .resource_spans
            .iter()
            .flat_map(|rs| &rs.scope_spans)
            .flat_map(|ss| &ss.spans)
            .map(|s| s.trace_id.clone())
            .collect()
    }

    #[test]
    fn each_send_gets_fresh_trace_ids_and_keeps_its_traces_whole() {
        let pool = RequestPool::generate(7, 2, 50, 1_700_000_000_000_000_000);
        let first = pool.request(0, 1, true);
        let again = pool.request(2, 1, false);
        let (first_ids, again_ids) = (trace_ids(&first.bytes), trace_ids(&again.bytes));
        assert_eq!(first_ids.len(), first.spans);
        assert!(first_ids.iter().all(|id| !again_ids.contains(id)), "the same entry re-sent gets new trace IDs");
        let distinct_first: std::collections::HashSet<_> = first_ids.iter().collect();
        let distinct_original: std::collections::HashSet<_> = trace_ids(&pool.requests[0].bytes).into_iter().collect();
        assert_eq!(distinct_first.len(), distinct_original.len(), "spans of one trace keep one trace ID");
        let lines = first.ids.unwrap();
        assert_eq!(lines.lines().count(), first.spans);
        assert!(lines.lines().all(|line| distinct_first.contains(&hex::decode(&line[..32]).unwrap())));
    }
}
