//! Requests generated and encoded once, then re-sent with fresh trace IDs: generating realistic traces
//! and encoding them costs more CPU than the server spends ingesting them, and the load generator
//! shares the machine with the server it measures. For a run against several endpoints, a request is
//! cut into one request per endpoint from its encoding ([`RequestPool::request_parts`]), without decoding.

use bytes::{Bytes, BytesMut};
use prost::Message;

use super::route::SpanSlot;
use super::split::{Layout, PlacedSpan};
use crate::synth::TraceGenerator;

/// A set of prepared requests.
pub struct RequestPool {
    requests: Vec<PreparedRequest>,
}

struct PreparedRequest {
    bytes: Bytes,
    spans: usize,
    traces: Vec<PreparedTrace>,
    layout: Layout,
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
                // (trace, place in its trace, span ID) of each span, in encoding order.
                let mut span_traces = Vec::new();
                for span in request.resource_spans.iter().flat_map(|rs| &rs.scope_spans).flat_map(|ss| &ss.spans) {
                    let id: [u8; 16] = span.trace_id.as_slice().try_into().expect("generated IDs are 16 bytes");
                    let span_id: [u8; 8] = span.span_id.as_slice().try_into().expect("generated IDs are 8 bytes");
                    let trace = traces.iter().position(|t| t.id == id).unwrap_or_else(|| {
                        traces.push(PreparedTrace { id, offsets: Vec::new(), span_ids: Vec::new() });
                        traces.len() - 1
                    });
                    span_traces.push((trace, traces[trace].span_ids.len(), span_id));
                    traces[trace].span_ids.push(span_id);
                }
                for trace in &mut traces {
                    trace.offsets = memchr::memmem::find_iter(&bytes, &trace.id).collect();
                }
                let layout = Layout::of(&bytes, &span_traces);
                PreparedRequest { spans: span_traces.len(), bytes, traces, layout }
            })
            .collect();
        Self { requests }
    }

    /// The `sequence`-th request: pool entry `sequence % size` with every trace ID changed by a mask
    /// unique to (`salt`, `sequence`), so no two sends share a trace ID.
    pub fn request(&self, sequence: u64, salt: u64, with_ids: bool) -> PoolRequest {
        let prepared = self.prepared(sequence);
        let (bytes, trace_ids) = prepared.with_fresh_ids(sequence, salt);
        let ids = with_ids.then(|| {
            let mut lines = String::new();
            for (trace, id) in prepared.traces.iter().zip(&trace_ids) {
                for span_id in &trace.span_ids {
                    push_id_line(&mut lines, id, span_id);
                }
            }
            lines
        });
        PoolRequest { bytes: bytes.freeze(), spans: prepared.spans, ids }
    }

    /// The `sequence`-th request (as [`RequestPool::request`]) cut into one request per endpoint:
    /// `endpoint_for` picks each span's endpoint, and each endpoint's spans keep their resource and scope.
    /// Returns (endpoint, request) for the endpoints that got spans, in endpoint order.
    pub fn request_parts(
        &self,
        sequence: u64,
        salt: u64,
        with_ids: bool,
        mut endpoint_for: impl FnMut(SpanSlot<'_>) -> usize,
    ) -> Vec<(usize, PoolRequest)> {
        let prepared = self.prepared(sequence);
        let (bytes, trace_ids) = prepared.with_fresh_ids(sequence, salt);
        let layout = &prepared.layout;
        let destinations: Vec<usize> = layout
            .spans
            .iter()
            .map(|span| {
                let slot =
                    SpanSlot { trace_id: &trace_ids[span.trace], trace: span.trace, nth_in_trace: span.nth_in_trace };
                endpoint_for(slot)
            })
            .collect();
        let endpoints = destinations.iter().max().map_or(0, |last| last + 1);
        (0..endpoints)
            .filter_map(|endpoint| {
                let spans: Vec<&PlacedSpan> =
                    layout.spans.iter().zip(&destinations).filter(|&(_, &to)| to == endpoint).map(|(s, _)| s).collect();
                if spans.is_empty() {
                    return None;
                }
                let ids = with_ids.then(|| {
                    let mut lines = String::new();
                    for span in &spans {
                        push_id_line(&mut lines, &trace_ids[span.trace], &span.span_id);
                    }
                    lines
                });
                let part = PoolRequest { bytes: layout.assemble(&bytes, &spans), spans: spans.len(), ids };
                Some((endpoint, part))
            })
            .collect()
    }

    fn prepared(&self, sequence: u64) -> &PreparedRequest {
        &self.requests[(sequence % self.requests.len() as u64) as usize]
    }
}

impl PreparedRequest {
    /// The encoding with every trace ID changed by a mask unique to (`salt`, `sequence`), and the new IDs
    /// in the order of `traces`.
    fn with_fresh_ids(&self, sequence: u64, salt: u64) -> (BytesMut, Vec<[u8; 16]>) {
        let mask = mix(salt ^ mix(sequence)).to_le_bytes();
        let mut bytes = BytesMut::from(self.bytes.as_ref());
        let mut ids = Vec::with_capacity(self.traces.len());
        for trace in &self.traces {
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
            ids.push(id);
        }
        (bytes, ids)
    }
}

/// Appends `trace_id span_id` (hex) and a newline: a line of the verify file.
fn push_id_line(lines: &mut String, trace_id: &[u8; 16], span_id: &[u8; 8]) {
    lines.push_str(&hex::encode(trace_id));
    lines.push(' ');
    lines.push_str(&hex::encode(span_id));
    lines.push('\n');
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

    /// (trace ID, span ID, the span's resource and scope) of every span, as a server would read them.
    fn spans_with_origin(bytes: &Bytes) -> Vec<(Vec<u8>, Vec<u8>, String)> {
        let request = ExportTraceServiceRequest::decode(bytes.as_ref()).unwrap();
        let mut spans = Vec::new();
        for resource_spans in &request.resource_spans {
            for scope_spans in &resource_spans.scope_spans {
                let origin = format!("{:?} {:?}", resource_spans.resource, scope_spans.scope);
                for span in &scope_spans.spans {
                    spans.push((span.trace_id.clone(), span.span_id.clone(), origin.clone()));
                }
            }
        }
        spans.sort();
        spans
    }

    #[test]
    fn parts_by_trace_id_hold_every_span_once_with_its_resource_and_each_trace_whole() {
        let pool = RequestPool::generate(11, 1, 300, 1_700_000_000_000_000_000);
        let whole = pool.request(5, 9, true);
        let parts = pool.request_parts(5, 9, true, |span| span.trace_id[0] as usize % 3);
        assert!(parts.len() > 1, "three endpoints share the traces");
        let mut all = Vec::new();
        let mut owner = std::collections::HashMap::new();
        for (endpoint, part) in &parts {
            let spans = spans_with_origin(&part.bytes);
            assert_eq!(spans.len(), part.spans);
            let lines: Vec<String> =
                spans.iter().map(|(t, s, _)| format!("{} {}", hex::encode(t), hex::encode(s))).collect();
            let mut recorded: Vec<&str> = part.ids.as_deref().unwrap().lines().collect();
            recorded.sort();
            assert_eq!(recorded, lines, "a part's verify lines are its own spans");
            for (trace, _, _) in &spans {
                assert_eq!(*owner.entry(trace.clone()).or_insert(*endpoint), *endpoint, "a trace goes to one endpoint");
                assert_eq!(trace[0] as usize % 3, *endpoint);
            }
            all.extend(spans);
        }
        all.sort();
        assert_eq!(all, spans_with_origin(&whole.bytes), "the parts are the request, span for span");
    }

    #[test]
    fn spread_parts_split_every_trace_of_two_or_more_spans() {
        let endpoints = ["http://127.0.0.1:4317".to_owned(), "http://127.0.0.1:4417".to_owned()];
        let router = super::super::route::Router::new(super::super::route::Route::Spread, &endpoints).unwrap();
        let pool = RequestPool::generate(12, 1, 300, 1_700_000_000_000_000_000);
        let parts = pool.request_parts(3, 4, false, |span| router.endpoint_for(span, 3));
        let mut endpoints_of = std::collections::HashMap::<Vec<u8>, std::collections::HashSet<usize>>::new();
        let mut spans_of = std::collections::HashMap::<Vec<u8>, usize>::new();
        for (endpoint, part) in &parts {
            for trace in trace_ids(&part.bytes) {
                endpoints_of.entry(trace.clone()).or_default().insert(*endpoint);
                *spans_of.entry(trace).or_default() += 1;
            }
        }
        assert!(spans_of.values().any(|&n| n > 1), "the request has multi-span traces");
        for (trace, spans) in spans_of {
            assert_eq!(endpoints_of[&trace].len(), spans.min(2), "{spans} spans on {:?}", endpoints_of[&trace]);
        }
    }
}
