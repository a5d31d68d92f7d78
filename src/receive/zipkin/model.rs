//! One Zipkin v2 span as both encodings decode to it, already checked: IDs valid (a 64-bit trace ID
//! left-padded to 16 bytes), IPs parsed, ports in range, absent times as `None`. The mapping to OTLP
//! works on this and never on the wire forms.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::ids::{SpanId, TraceId};

/// A Zipkin span. `tags` are sorted by key (both encodings carry them as a map).
#[derive(Clone, Debug, PartialEq)]
pub struct ZipkinSpan {
    pub trace_id: TraceId,
    pub id: SpanId,
    pub parent_id: Option<SpanId>,
    pub kind: Option<Kind>,
    pub name: String,
    /// Start in microseconds since the Unix epoch; `None` when absent or 0.
    pub timestamp_micros: Option<u64>,
    /// Microseconds; `None` when absent.
    pub duration_micros: Option<u64>,
    pub local_endpoint: Option<Endpoint>,
    pub remote_endpoint: Option<Endpoint>,
    pub annotations: Vec<Annotation>,
    pub tags: Vec<(String, String)>,
    pub debug: bool,
    pub shared: bool,
}

impl ZipkinSpan {
    /// The local endpoint's service name, when it has one that is not empty.
    pub fn local_service_name(&self) -> Option<&str> {
        self.local_endpoint.as_ref().map(|e| e.service_name.as_str()).filter(|name| !name.is_empty())
    }

    /// The value of a tag.
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

/// Zipkin's span kinds; a span with none is local (or its kind is unknown).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Client,
    Server,
    Producer,
    Consumer,
}

impl Kind {
    /// The kind a JSON `kind` string names: exactly the upper-case Zipkin names, as the Collector reads
    /// them; anything else is no kind.
    pub fn from_json(text: &str) -> Option<Self> {
        match text {
            "CLIENT" => Some(Self::Client),
            "SERVER" => Some(Self::Server),
            "PRODUCER" => Some(Self::Producer),
            "CONSUMER" => Some(Self::Consumer),
            _ => None,
        }
    }
}

/// A network endpoint: the host that recorded a span, or the other side of it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Endpoint {
    pub service_name: String,
    pub ipv4: Option<IpAddr>,
    pub ipv6: Option<IpAddr>,
    /// `None` for 0 (Zipkin's "unknown").
    pub port: Option<u16>,
}

impl Endpoint {
    /// The endpoint's address as text: the IPv6 one when both are set (as the Collector writes them, the
    /// later overwriting the earlier), an IPv4-mapped IPv6 address in its dotted IPv4 form.
    pub fn address(&self) -> Option<String> {
        self.ipv6.or(self.ipv4).map(|ip| match ip {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => v4.to_string(),
                None => v6.to_string(),
            },
            IpAddr::V4(v4) => v4.to_string(),
        })
    }

    /// True when no field is set; such an endpoint counts as absent.
    pub fn is_empty(&self) -> bool {
        self.service_name.is_empty() && self.ipv4.is_none() && self.ipv6.is_none() && self.port.is_none()
    }
}

/// The names of an endpoint's fields in messages (`localEndpoint.ipv4`, …), as Zipkin's JSON spells them.
pub struct EndpointFields {
    pub ipv4: &'static str,
    pub ipv6: &'static str,
    pub port: &'static str,
}

impl EndpointFields {
    pub const LOCAL: Self = Self { ipv4: "localEndpoint.ipv4", ipv6: "localEndpoint.ipv6", port: "localEndpoint.port" };
    pub const REMOTE: Self =
        Self { ipv4: "remoteEndpoint.ipv4", ipv6: "remoteEndpoint.ipv6", port: "remoteEndpoint.port" };
}

/// An IP address from its raw bytes (the protobuf form): 4 bytes IPv4, 16 bytes IPv6.
pub fn ip_from_bytes(bytes: &[u8]) -> Option<IpAddr> {
    if let Ok(v4) = <[u8; 4]>::try_from(bytes) {
        return Some(IpAddr::V4(Ipv4Addr::from(v4)));
    }
    <[u8; 16]>::try_from(bytes).ok().map(|v6| IpAddr::V6(Ipv6Addr::from(v6)))
}

/// A timestamped event of a span.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Annotation {
    /// Microseconds since the Unix epoch; never 0.
    pub timestamp_micros: u64,
    pub value: String,
}
