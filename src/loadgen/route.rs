//! Which ingester each span goes to when `loadgen` sends to several at once.
//!
//! [`Route::TraceId`] puts every span of a trace on one ingester, choosing it the way the OpenTelemetry
//! Collector's `loadbalancing` exporter does with `routing_key: traceID`
//! (opentelemetry-collector-contrib, `exporter/loadbalancingexporter`). A deployment that puts a
//! Collector tier in front of several ingesters sees exactly this split, so a load run reproduces it,
//! and a test can compute where each acknowledged trace went. [`Route::Spread`] does the opposite on
//! purpose: it splits every trace of more than one span across ingesters, the case a querier must merge.
//!
//! The ring ([`HashRing`]) follows the exporter as of PR #49585 (merged July 2026: order-independent
//! placement, 200 points, 131,071 positions), on top of PR #41271 (4-byte point index, linear probing).
//! Upstream files read: `loadbalancer.go` @ 9cb3011738da, `resolver_static.go` @ 1556b8a4aca7,
//! `resolver_dns.go` @ dc5d47d99534, `trace_exporter.go` (per-span routing), and `consistent_hashing.go`
//! / `consistent_hashing_test.go` from dcbb063cd0b1 through the #41271 and #49585 versions; the tests
//! below reproduce every vector of the #49585 test file. Step by step:
//!
//! 1. Each endpoint string gets [`POINTS_PER_ENDPOINT`] candidate positions: CRC-32 (IEEE) of the
//!    endpoint's UTF-8 bytes followed by the point's index `0..200` as 4 little-endian bytes, modulo
//!    [`RING_POSITIONS`].
//! 2. All candidates of all endpoints are placed in one global order — position, then endpoint, then
//!    index — so the ring doesn't depend on the order endpoints were listed in. A candidate whose position
//!    is taken tries the next one (wrapping at the end), up to [`PROBES`] positions in all, and is dropped
//!    if all are taken. (Upstream's tests don't pin which of two endpoints hashing to the very same
//!    position goes first; endpoint then index is our reading of "globally ordered".)
//! 3. A trace's position is CRC-32 of its 16 trace-ID bytes modulo [`RING_POSITIONS`]; its endpoint owns
//!    the first point at or after that position, or the ring's first point when none is (the ring wraps).
//!
//! The exporter hashes the strings its resolver returns, not URLs: the static resolver's hostnames as
//! configured (`10.0.0.1:4317`; a name without a port is hashed without one, and only the connection gets
//! the default port 4317), the DNS resolver's `ip:port` (`[v6]:port` for IPv6). `loadgen` therefore keys
//! the ring by each endpoint URL's authority, `host:port` as written (see [`ring_key`]).
//!
//! Owns the routing choice and the ring's arithmetic; called by the rest of `loadgen`, calls nothing but `ids`.

use std::str::FromStr;

use super::LoadgenError;
use crate::ids::TraceId;

/// Candidate points per endpoint (the exporter's `defaultWeight`): more points, smoother split.
pub const POINTS_PER_ENDPOINT: u32 = 200;
/// Positions on the ring (the exporter's `maxPositions`): 2^17 − 1, not a power of two, because CRC-32
/// modulo a power of two spreads badly.
pub const RING_POSITIONS: u32 = 131_071;
/// Positions a colliding candidate tries, its own included (the exporter's `linearProbeLimit`).
pub const PROBES: u32 = 10;

/// How a multi-endpoint run splits each generated request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Route {
    /// Every span of a trace to the endpoint the exporter's hash ring picks for the trace ID.
    #[default]
    TraceId,
    /// The spans of each trace to the endpoints in turn, so every trace of two or more spans is split.
    Spread,
}

impl FromStr for Route {
    type Err = LoadgenError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.to_ascii_lowercase().as_str() {
            "trace-id" | "traceid" => Ok(Self::TraceId),
            "spread" => Ok(Self::Spread),
            other => Err(LoadgenError::UnknownRoute(other.to_owned())),
        }
    }
}

/// The string the exporter would hash for an endpoint URL: its authority, `host:port` as written
/// (`http://127.0.0.1:4317/v1/traces` → `127.0.0.1:4317`). A URL without an authority is used whole.
pub fn ring_key(endpoint: &str) -> String {
    match endpoint.parse::<hyper::Uri>() {
        Ok(uri) => uri.authority().map_or_else(|| endpoint.to_owned(), |a| a.as_str().to_owned()),
        Err(_) => endpoint.to_owned(),
    }
}

/// A consistent hash ring over endpoint strings, built and searched as the `loadbalancing` exporter's.
/// Never empty: [`HashRing::new`] refuses an empty endpoint list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HashRing {
    /// Distinct endpoints, in the order first given; points refer to them by index.
    endpoints: Vec<String>,
    /// Placed points, sorted by position (positions are distinct).
    points: Vec<RingPoint>,
    /// Positions on the ring: [`RING_POSITIONS`] but in tests.
    positions: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct RingPoint {
    position: u32,
    endpoint: usize,
}

/// The ring's shape; tests shrink it to match upstream vectors computed with fewer points.
#[derive(Clone, Copy, Debug)]
struct Shape {
    points_per_endpoint: u32,
    positions: u32,
    probes: u32,
}

const EXPORTER_SHAPE: Shape =
    Shape { points_per_endpoint: POINTS_PER_ENDPOINT, positions: RING_POSITIONS, probes: PROBES };

impl HashRing {
    /// The exporter's ring for `endpoints`; `None` when there are none. An endpoint listed twice gets
    /// its points twice (the second set one position further on), as in the exporter.
    pub fn new<S: AsRef<str>>(endpoints: &[S]) -> Option<Self> {
        Self::with_shape(endpoints, EXPORTER_SHAPE)
    }

    fn with_shape<S: AsRef<str>>(endpoints: &[S], shape: Shape) -> Option<Self> {
        let mut distinct: Vec<String> = Vec::new();
        let mut candidates = Vec::new();
        for endpoint in endpoints.iter().map(AsRef::as_ref) {
            let index = distinct.iter().position(|known| known == endpoint).unwrap_or_else(|| {
                distinct.push(endpoint.to_owned());
                distinct.len() - 1
            });
            for point in 0..shape.points_per_endpoint {
                candidates.push((candidate_position(endpoint, point, shape.positions), index, point));
            }
        }
        if distinct.is_empty() {
            return None;
        }
        // One global order, so the same endpoint set builds the same ring whatever order it came in.
        candidates.sort_by(|a, b| (a.0, &distinct[a.1], a.2).cmp(&(b.0, &distinct[b.1], b.2)));
        let mut taken = vec![false; shape.positions as usize];
        let mut points = Vec::with_capacity(candidates.len());
        for (wanted, endpoint, _) in candidates {
            let free = (0..shape.probes)
                .map(|step| ((u64::from(wanted) + u64::from(step)) % u64::from(shape.positions)) as u32)
                .find(|&position| !taken[position as usize]);
            if let Some(position) = free {
                taken[position as usize] = true;
                points.push(RingPoint { position, endpoint });
            }
        }
        points.sort_by_key(|point| point.position);
        Some(Self { endpoints: distinct, points, positions: shape.positions })
    }

    /// The endpoint that receives every span of `trace_id`.
    pub fn endpoint_for(&self, trace_id: &TraceId) -> &str {
        &self.endpoints[self.index_for(trace_id.as_bytes())]
    }

    /// The endpoint for any routing key (the exporter hashes service names or attributes the same way
    /// under its other routing keys).
    pub fn endpoint_for_key(&self, key: &[u8]) -> &str {
        &self.endpoints[self.index_for(key)]
    }

    /// Index into [`HashRing::endpoints`] of the endpoint for `key`.
    pub fn index_for(&self, key: &[u8]) -> usize {
        self.index_at(crc32fast::hash(key) % self.positions)
    }

    fn index_at(&self, position: u32) -> usize {
        let next = self.points.partition_point(|point| point.position < position);
        self.points.get(next).unwrap_or(&self.points[0]).endpoint
    }

    /// The distinct endpoints, in the order first given.
    pub fn endpoints(&self) -> &[String] {
        &self.endpoints
    }

    /// The placed points as (position, endpoint), in ring order.
    pub fn points(&self) -> impl Iterator<Item = (u32, &str)> {
        self.points.iter().map(|point| (point.position, self.endpoints[point.endpoint].as_str()))
    }
}

/// What a [`Router`] knows of a span when it picks the span's endpoint.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SpanSlot<'a> {
    /// The trace ID as sent (after the pool gave the request fresh IDs).
    pub trace_id: &'a [u8; 16],
    /// The trace's place among the request's traces.
    pub trace: usize,
    /// The span's place among its trace's spans in the request.
    pub nth_in_trace: usize,
}

/// Picks, for each span of a request, the endpoint (an index into the run's endpoint list) it goes to.
pub(crate) struct Router {
    route: Route,
    ring: HashRing,
    /// The run's endpoint index for each of the ring's endpoints.
    ring_to_endpoint: Vec<usize>,
    endpoints: usize,
}

impl Router {
    /// A router over `endpoints` (URLs, distinct by [`ring_key`]); `None` when there are none.
    pub(crate) fn new(route: Route, endpoints: &[String]) -> Option<Self> {
        let keys: Vec<String> = endpoints.iter().map(|endpoint| ring_key(endpoint)).collect();
        let ring = HashRing::new(&keys)?;
        let ring_to_endpoint = ring
            .endpoints()
            .iter()
            .map(|key| keys.iter().position(|k| k == key).expect("the ring's endpoints are the keys given"))
            .collect();
        Some(Self { route, ring, ring_to_endpoint, endpoints: endpoints.len() })
    }

    /// The endpoint for one span of the `sequence`-th request of a worker.
    pub(crate) fn endpoint_for(&self, span: SpanSlot<'_>, sequence: u64) -> usize {
        match self.route {
            Route::TraceId => self.ring_to_endpoint[self.ring.index_for(span.trace_id)],
            // Each trace starts on a different endpoint (so one-span traces spread too), then takes the
            // endpoints in turn: its first two spans never share one.
            Route::Spread => {
                let start = span.trace.wrapping_add((sequence % self.endpoints as u64) as usize);
                start.wrapping_add(span.nth_in_trace) % self.endpoints
            }
        }
    }
}

/// Where the `point`-th candidate of `endpoint` wants to sit.
fn candidate_position(endpoint: &str, point: u32, positions: u32) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(endpoint.as_bytes());
    hasher.update(&point.to_le_bytes());
    hasher.finalize() % positions
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small(endpoints: &[&str]) -> Vec<(u32, String)> {
        let shape = Shape { points_per_endpoint: 5, ..EXPORTER_SHAPE };
        HashRing::with_shape(endpoints, shape).unwrap().points().map(|(p, e)| (p, e.to_owned())).collect()
    }

    fn positions(ring: &[(u32, String)]) -> Vec<u32> {
        ring.iter().map(|(position, _)| *position).collect()
    }

    fn trace(n: u64) -> TraceId {
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&n.wrapping_mul(0x9e37_79b9_7f4a_7c15).to_le_bytes());
        bytes[8..].copy_from_slice(&(n ^ 0x5555).wrapping_mul(0xc2b2_ae3d_27d4_eb4f).to_le_bytes());
        TraceId::from_slice(&bytes).unwrap()
    }

    // Vectors from upstream's consistent_hashing_test.go as of #49585: TestPositionsForEndpoints
    // ("Single Endpoint", 5 points per endpoint).
    #[test]
    fn an_endpoints_points_are_the_exporters() {
        assert_eq!(positions(&small(&["endpoint-1"])), [0x4be4, 0x666a, 0xad6f, 0x1a4c1, 0x1bae2]);
    }

    // TestPositionsForEndpoints, "Duplicate Endpoint": the second copy probes one position on.
    #[test]
    fn an_endpoint_listed_twice_takes_the_next_free_positions() {
        let ring = small(&["endpoint-1", "endpoint-1"]);
        let expected = [0x4be4, 0x4be5, 0x666a, 0x666b, 0xad6f, 0xad70, 0x1a4c1, 0x1a4c2, 0x1bae2, 0x1bae3];
        assert_eq!(positions(&ring), expected);
        assert!(ring.iter().all(|(_, endpoint)| endpoint == "endpoint-1"));
    }

    // TestPositionsForEndpoints, "Multiple Endpoints".
    #[test]
    fn two_endpoints_interleave_as_in_the_exporter() {
        let (a, b) = ("endpoint-A".to_owned(), "endpoint-B".to_owned());
        let expected = vec![
            (0x61a4, b.clone()),
            (0xca91, a.clone()),
            (0x10b72, a.clone()),
            (0x11372, b.clone()),
            (0x116b1, b.clone()),
            (0x11801, a.clone()),
            (0x18a36, b.clone()),
            (0x1af01, b.clone()),
            (0x1af16, a.clone()),
            (0x1e723, a),
        ];
        assert_eq!(small(&["endpoint-A", "endpoint-B"]), expected);
    }

    // TestNewHashRing and TestEndpointFor: full-size ring, keys of any length.
    #[test]
    fn keys_reach_the_endpoints_the_exporter_picks() {
        let ring = HashRing::new(&["endpoint-1", "endpoint-2"]).unwrap();
        assert_eq!(ring.points().count(), 2 * POINTS_PER_ENDPOINT as usize);
        assert_eq!(ring.endpoint_for_key(&[1, 2, 0, 0]), "endpoint-2");
        assert_eq!(ring.endpoint_for_key(&[128, 128, 0, 0]), "endpoint-1");
        assert_eq!(ring.endpoint_for_key(b"ad-service-7"), "endpoint-2");
        assert_eq!(ring.endpoint_for_key(b"get-recommendations-1"), "endpoint-2");
    }

    // TestHashRingIsInvariantToEndpointOrder and TestHashRingRetainsFullWeightAcrossManyEndpoints.
    #[test]
    fn the_ring_ignores_endpoint_order_and_keeps_every_point_of_300_endpoints() {
        let endpoints: Vec<String> = (0..300).map(|i| format!("endpoint-{i}")).collect();
        let reversed: Vec<String> = endpoints.iter().rev().cloned().collect();
        let ring = HashRing::new(&endpoints).unwrap();
        let ring_points: Vec<_> = ring.points().collect();
        let reversed_ring = HashRing::new(&reversed).unwrap();
        assert_eq!(ring_points, reversed_ring.points().collect::<Vec<_>>());
        assert_eq!(ring_points.len(), 300 * POINTS_PER_ENDPOINT as usize);
        let mut per_endpoint = std::collections::HashMap::new();
        for (_, endpoint) in &ring_points {
            *per_endpoint.entry(*endpoint).or_insert(0) += 1;
        }
        assert!(per_endpoint.values().all(|&n| n == POINTS_PER_ENDPOINT));
    }

    // TestPositionsForEndpointsDropsWhenProbeLimitIsExhausted: one position, one probe.
    #[test]
    fn a_candidate_with_no_free_position_within_the_probes_is_dropped() {
        let shape = Shape { points_per_endpoint: 2, positions: 1, probes: 1 };
        let ring = HashRing::with_shape(&["endpoint-1", "endpoint-2", "endpoint-3"], shape).unwrap();
        assert_eq!(ring.points().map(|(position, _)| position).collect::<Vec<_>>(), [0]);
    }

    // Not upstream vectors: computed by a separate model of the steps in the module doc (Python's
    // zlib.crc32), so a test elsewhere can rely on where these traces go.
    #[test]
    fn loopback_ingesters_receive_these_traces() {
        let ring = HashRing::new(&["127.0.0.1:4317", "127.0.0.1:4417", "127.0.0.1:4517"]).unwrap();
        let cases = [
            ("00000000000000000000000000000001", "127.0.0.1:4317"),
            ("0af7651916cd43dd8448eb211c80319c", "127.0.0.1:4517"),
            ("4bf92f3577b34da6a3ce929d0e0e4736", "127.0.0.1:4417"),
            ("ffffffffffffffffffffffffffffffff", "127.0.0.1:4417"),
        ];
        for (trace_id, endpoint) in cases {
            assert_eq!(ring.endpoint_for(&TraceId::from_hex(trace_id).unwrap()), endpoint, "{trace_id}");
        }
        let points: Vec<_> = ring.points().collect();
        assert_eq!(points[..2], [(28, "127.0.0.1:4417"), (101, "127.0.0.1:4517")]);
        assert_eq!(points[points.len() - 1], (130_790, "127.0.0.1:4417"));
    }

    #[test]
    fn a_trace_position_past_the_last_point_wraps_to_the_first() {
        let ring = HashRing::new(&["a:1", "b:2"]).unwrap();
        let (first, last) = (ring.points[0], *ring.points.last().unwrap());
        assert_eq!(ring.index_at(last.position + 1), first.endpoint);
        assert_eq!(ring.index_at(first.position), first.endpoint, "a point owns its own position");
        assert_eq!(ring.index_at(0), first.endpoint);
    }

    #[test]
    fn no_endpoints_no_ring() {
        assert!(HashRing::new::<&str>(&[]).is_none());
    }

    #[test]
    fn the_same_trace_always_reaches_the_same_endpoint() {
        let endpoints = ["127.0.0.1:4317", "127.0.0.1:4417", "127.0.0.1:4517"];
        let ring = HashRing::new(&endpoints).unwrap();
        let again = HashRing::new(&[endpoints[2], endpoints[0], endpoints[1]]).unwrap();
        for n in 0..1_000 {
            assert_eq!(ring.endpoint_for(&trace(n)), ring.endpoint_for(&trace(n)));
            assert_eq!(ring.endpoint_for(&trace(n)), again.endpoint_for(&trace(n)));
        }
    }

    #[test]
    fn three_endpoints_share_traces_roughly_evenly() {
        let ring = HashRing::new(&["127.0.0.1:4317", "127.0.0.1:4417", "127.0.0.1:4517"]).unwrap();
        let traces = 30_000;
        let mut counts = [0usize; 3];
        for n in 0..traces {
            counts[ring.index_for(trace(n).as_bytes())] += 1;
        }
        for count in counts {
            let share = count as f64 / traces as f64;
            assert!((0.25..0.42).contains(&share), "{counts:?}");
        }
    }

    #[test]
    fn adding_a_fourth_endpoint_moves_only_the_traces_it_takes() {
        let three = HashRing::new(&["127.0.0.1:4317", "127.0.0.1:4417", "127.0.0.1:4517"]).unwrap();
        let four = HashRing::new(&["127.0.0.1:4317", "127.0.0.1:4417", "127.0.0.1:4517", "127.0.0.1:4617"]).unwrap();
        let traces = 20_000;
        let mut moved = 0;
        for n in 0..traces {
            let (before, after) = (three.endpoint_for(&trace(n)), four.endpoint_for(&trace(n)));
            if before != after {
                assert_eq!(after, "127.0.0.1:4617", "a trace moves only to the new endpoint");
                moved += 1;
            }
        }
        let share = moved as f64 / traces as f64;
        assert!((0.15..0.35).contains(&share), "about a quarter moves, not all: {share}");
    }

    #[test]
    fn the_ring_is_keyed_by_host_and_port_as_written() {
        assert_eq!(ring_key("http://127.0.0.1:4317"), "127.0.0.1:4317");
        assert_eq!(ring_key("http://127.0.0.1:4318/v1/traces"), "127.0.0.1:4318");
        assert_eq!(ring_key("http://[::1]:4317"), "[::1]:4317");
        assert_eq!(ring_key("http://ingester-1"), "ingester-1");
    }

    #[test]
    fn routes_parse_from_their_flag_values() {
        assert_eq!("trace-id".parse::<Route>().unwrap(), Route::TraceId);
        assert_eq!("spread".parse::<Route>().unwrap(), Route::Spread);
        assert!("round-robin".parse::<Route>().is_err());
    }
}
