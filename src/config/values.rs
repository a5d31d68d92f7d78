//! The kinds of value a setting can hold, and how each is written: on the command line and in
//! environment variables (one line of text), in the YAML file (a YAML value), and back out in `--help`
//! and the example config (text that parses to the same value).
//!
//! One trait, [`SettingValue`], so the declaration of a setting only names its type: the flag, the
//! variable, the YAML key and the rendered default all follow from it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde_yaml_ng::Value;

use crate::ids::{IdError, TenantId};

/// Why a setting's value was refused; the text names the value and says what would be accepted.
#[derive(Debug, thiserror::Error)]
pub enum ValueError {
    #[error("{text:?} is not a byte size such as 128MiB")]
    NotByteSize { text: String },
    #[error("unknown unit {unit:?} in {text:?}; use B, KiB, MiB, GiB, KB, MB or GB")]
    UnknownUnit { text: String, unit: String },
    #[error("{text:?} is too large")]
    TooLarge { text: String },
    #[error("{text:?} is not a duration such as 30s or 5m")]
    NotDuration {
        text: String,
        #[source]
        source: humantime::DurationError,
    },
    #[error("{text:?} is not a number")]
    NotNumber { text: String },
    #[error("a false-positive rate must be between 0 and 1 (exclusive), got {value}")]
    RateOutOfRange { value: f64 },
    #[error("{text:?} is not true or false")]
    NotBool { text: String },
    #[error("{text:?} is not HOST:PORT")]
    NotAddress {
        text: String,
        #[source]
        source: std::net::AddrParseError,
    },
    #[error("unknown target {text:?}; use all, ingester, querier or compactor")]
    UnknownTarget { text: String },
    #[error("{entry:?} is not TENANT=DURATION, e.g. team-a=30d")]
    NotTenantEntry { entry: String },
    #[error("{entry:?}: not a valid tenant ID")]
    BadTenant {
        entry: String,
        #[source]
        source: IdError,
    },
    #[error("{entry:?} is not HOST:PORT (a name or address, and the port of an ingester's HTTP API)")]
    NotHostPort { entry: String },
    #[error("expected {expected}, got {got}")]
    WrongShape { expected: &'static str, got: String },
}

/// A type a setting can have. `parse` reads the text of a flag or environment variable; `from_yaml`
/// reads the config file's value (by default the same text); `render` writes text that `parse` reads back
/// to the same value, for `--help` and the example config (`None` for "not set").
pub trait SettingValue: Clone + Send + Sync + 'static + Sized {
    /// Reads one line of text, as flags and environment variables give it.
    fn parse(text: &str) -> Result<Self, ValueError>;

    /// Reads the YAML file's value: scalars through [`SettingValue::parse`].
    fn from_yaml(value: Value) -> Result<Self, ValueError> {
        match value {
            Value::String(text) => Self::parse(&text),
            Value::Number(number) => Self::parse(&number.to_string()),
            Value::Bool(flag) => Self::parse(&flag.to_string()),
            other => Err(ValueError::WrongShape { expected: "a single value", got: describe(&other) }),
        }
    }

    /// The value as text `parse` accepts; `None` when the setting is not set.
    fn render(&self) -> Option<String>;

    /// The value as the YAML file writes it; by default the same text as [`SettingValue::render`].
    fn render_yaml(&self) -> Option<String> {
        self.render()
    }

    /// Combines a later source's value with an earlier one's (flags over the file): by default the later
    /// wins; maps keyed by tenant merge.
    fn overlay(self, _earlier: Self) -> Self {
        self
    }

    /// Whether the flag may be given without a value (`--multitenancy` meaning `--multitenancy true`).
    const SWITCH: bool = false;
}

fn describe(value: &Value) -> String {
    serde_yaml_ng::to_string(value).map_or_else(|_| format!("{value:?}"), |text| text.trim().to_owned())
}

/// A number of bytes, written with a unit (`64MiB`, `4GiB`, `16MB`) or as a plain number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

impl ByteSize {
    /// The size as a `usize`, saturating on 32-bit targets (a limit that large is "no limit" there).
    pub fn as_usize(self) -> usize {
        usize::try_from(self.0).unwrap_or(usize::MAX)
    }

    /// From an in-memory size.
    pub fn of(bytes: usize) -> Self {
        Self(bytes as u64)
    }
}

const BINARY_UNITS: [(&str, u64); 3] = [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)];

impl SettingValue for ByteSize {
    fn parse(text: &str) -> Result<Self, ValueError> {
        let trimmed = text.trim();
        let split = trimmed.find(|c: char| !c.is_ascii_digit()).unwrap_or(trimmed.len());
        let (digits, unit) = trimmed.split_at(split);
        let number: u64 = digits.parse().map_err(|_| ValueError::NotByteSize { text: text.to_owned() })?;
        let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "kib" => 1 << 10,
            "mib" => 1 << 20,
            "gib" => 1 << 30,
            "kb" => 1_000,
            "mb" => 1_000_000,
            "gb" => 1_000_000_000,
            other => return Err(ValueError::UnknownUnit { text: text.to_owned(), unit: other.to_owned() }),
        };
        number.checked_mul(multiplier).map(Self).ok_or_else(|| ValueError::TooLarge { text: text.to_owned() })
    }

    fn render(&self) -> Option<String> {
        let unit = BINARY_UNITS.iter().find(|(_, size)| self.0 != 0 && self.0.is_multiple_of(*size));
        Some(match unit {
            Some((name, size)) => format!("{}{name}", self.0 / size),
            None => self.0.to_string(),
        })
    }
}

const TIME_UNITS: [(&str, u128); 7] = [
    ("d", 86_400_000_000_000),
    ("h", 3_600_000_000_000),
    ("m", 60_000_000_000),
    ("s", 1_000_000_000),
    ("ms", 1_000_000),
    ("us", 1_000),
    ("ns", 1),
];

impl SettingValue for Duration {
    fn parse(text: &str) -> Result<Self, ValueError> {
        humantime::parse_duration(text.trim())
            .map_err(|source| ValueError::NotDuration { text: text.to_owned(), source })
    }

    /// In the largest unit that divides it (`14d`, `90s`), as people write durations.
    fn render(&self) -> Option<String> {
        let nanos = self.as_nanos();
        if nanos == 0 {
            return Some("0s".to_owned());
        }
        let (name, size) =
            TIME_UNITS.iter().find(|(_, size)| nanos.is_multiple_of(*size)).copied().unwrap_or(("ns", 1));
        Some(format!("{}{name}", nanos / size))
    }
}

impl SettingValue for bool {
    fn parse(text: &str) -> Result<Self, ValueError> {
        match text.trim() {
            "true" => Ok(true),
            "false" => Ok(false),
            other => Err(ValueError::NotBool { text: other.to_owned() }),
        }
    }

    fn render(&self) -> Option<String> {
        Some(self.to_string())
    }

    const SWITCH: bool = true;
}

impl SettingValue for usize {
    fn parse(text: &str) -> Result<Self, ValueError> {
        text.trim().parse().map_err(|_| ValueError::NotNumber { text: text.to_owned() })
    }

    fn render(&self) -> Option<String> {
        Some(self.to_string())
    }
}

impl SettingValue for SocketAddr {
    fn parse(text: &str) -> Result<Self, ValueError> {
        text.trim().parse().map_err(|source| ValueError::NotAddress { text: text.to_owned(), source })
    }

    fn render(&self) -> Option<String> {
        Some(self.to_string())
    }
}

/// A port that may be turned off: an empty value (or `off`) means "do not listen".
impl SettingValue for Option<SocketAddr> {
    fn parse(text: &str) -> Result<Self, ValueError> {
        match text.trim() {
            "" | "off" => Ok(None),
            address => SocketAddr::parse(address).map(Some),
        }
    }

    fn from_yaml(value: Value) -> Result<Self, ValueError> {
        match value {
            Value::Null => Ok(None),
            Value::String(text) => Self::parse(&text),
            other => Err(ValueError::WrongShape { expected: "HOST:PORT or an empty value", got: describe(&other) }),
        }
    }

    fn render(&self) -> Option<String> {
        Some(self.map(|address| address.to_string()).unwrap_or_default())
    }
}

impl SettingValue for PathBuf {
    fn parse(text: &str) -> Result<Self, ValueError> {
        Ok(PathBuf::from(text))
    }

    fn render(&self) -> Option<String> {
        Some(self.display().to_string())
    }
}

/// A text that may be left unset (the storage URL: unset means the data folder).
impl SettingValue for Option<String> {
    fn parse(text: &str) -> Result<Self, ValueError> {
        Ok(Some(text.to_owned()))
    }

    fn from_yaml(value: Value) -> Result<Self, ValueError> {
        match value {
            Value::Null => Ok(None),
            Value::String(text) => Ok(Some(text)),
            other => Err(ValueError::WrongShape { expected: "a text", got: describe(&other) }),
        }
    }

    fn render(&self) -> Option<String> {
        self.clone()
    }
}

/// A file that may be left unset (the credentials file: unset means auth off).
impl SettingValue for Option<PathBuf> {
    fn parse(text: &str) -> Result<Self, ValueError> {
        Ok((!text.is_empty()).then(|| PathBuf::from(text)))
    }

    fn from_yaml(value: Value) -> Result<Self, ValueError> {
        match value {
            Value::Null => Ok(None),
            Value::String(text) => Self::parse(&text),
            other => Err(ValueError::WrongShape { expected: "a file path", got: describe(&other) }),
        }
    }

    fn render(&self) -> Option<String> {
        self.as_ref().map(|path| path.display().to_string())
    }
}

/// A probability strictly between 0 and 1, as a bloom filter can be sized for.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FalsePositiveRate(f64);

impl FalsePositiveRate {
    /// Checks the range.
    pub fn new(value: f64) -> Result<Self, ValueError> {
        if value > 0.0 && value < 1.0 { Ok(Self(value)) } else { Err(ValueError::RateOutOfRange { value }) }
    }

    /// The probability.
    pub fn get(self) -> f64 {
        self.0
    }
}

impl SettingValue for FalsePositiveRate {
    /// Reads `0.00001`, `1e-5` or `0.001%`.
    fn parse(text: &str) -> Result<Self, ValueError> {
        let trimmed = text.trim();
        let (number, scale) = match trimmed.strip_suffix('%') {
            Some(number) => (number.trim(), 100.0),
            None => (trimmed, 1.0),
        };
        let value: f64 = number.parse().map_err(|_| ValueError::NotNumber { text: trimmed.to_owned() })?;
        Self::new(value / scale)
    }

    fn render(&self) -> Option<String> {
        Some(self.0.to_string())
    }
}

/// Which roles `spanlake serve` runs (CONTRACTS §1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Target {
    /// Ingest, query and compaction in one process.
    #[default]
    All,
    /// The OTLP and Zipkin ports, a WAL, blocks uploaded; on the HTTP address `/ready`, `/metrics`,
    /// `/flush` and the internal endpoint queriers read its recent spans from. No queries, no compaction.
    Ingester,
    /// The query port (and Jaeger's), no WAL: blocks from the store, recent spans from the ingesters
    /// the `ingesters` setting names. Stateless, so any number can run.
    Querier,
    /// Compaction and retention only (with `/ready` and `/metrics` on the HTTP port).
    Compactor,
}

impl Target {
    /// The name `--target` takes, also shown by `/ready` and `/metrics`.
    pub fn name(self) -> &'static str {
        match self {
            Self::All => "all",
            Self::Ingester => "ingester",
            Self::Querier => "querier",
            Self::Compactor => "compactor",
        }
    }

    /// Whether this process reads blocks for queries (and so keeps a block catalogue).
    pub fn queries_blocks(self) -> bool {
        matches!(self, Self::All | Self::Querier)
    }
}

impl SettingValue for Target {
    fn parse(text: &str) -> Result<Self, ValueError> {
        [Self::All, Self::Ingester, Self::Querier, Self::Compactor]
            .into_iter()
            .find(|target| target.name() == text.trim())
            .ok_or_else(|| ValueError::UnknownTarget { text: text.trim().to_owned() })
    }

    fn render(&self) -> Option<String> {
        Some(self.name().to_owned())
    }
}

/// The ingesters a querier reads recent spans from: `HOST:PORT` entries (their HTTP API), each resolved
/// by DNS again on every refresh, every address a name resolves to being one ingester, so one name of a
/// Kubernetes headless Service finds all of them. One line of comma-separated entries as a flag or
/// variable, a list or that line in YAML.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostPorts(pub Vec<String>);

impl SettingValue for HostPorts {
    fn parse(text: &str) -> Result<Self, ValueError> {
        text.split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .map(host_port)
            .collect::<Result<_, _>>()
            .map(Self)
    }

    fn from_yaml(value: Value) -> Result<Self, ValueError> {
        match value {
            Value::Null => Ok(Self::default()),
            Value::String(text) => Self::parse(&text),
            Value::Sequence(entries) => entries
                .into_iter()
                .map(|entry| match entry {
                    Value::String(text) => host_port(text.trim()),
                    other => Err(ValueError::WrongShape { expected: "HOST:PORT", got: describe(&other) }),
                })
                .collect::<Result<_, _>>()
                .map(Self),
            other => Err(ValueError::WrongShape { expected: "a list of HOST:PORT", got: describe(&other) }),
        }
    }

    /// `None` (not set) for an empty list.
    fn render(&self) -> Option<String> {
        (!self.0.is_empty()).then(|| self.0.join(","))
    }
}

/// One `HOST:PORT` entry: a name or address, then a port number (IPv6 addresses in brackets).
fn host_port(entry: &str) -> Result<String, ValueError> {
    let refused = || ValueError::NotHostPort { entry: entry.to_owned() };
    let (host, port) = entry.rsplit_once(':').ok_or_else(refused)?;
    let host_ok = !host.is_empty() && !host.contains('/') && !host.contains(char::is_whitespace);
    match (host_ok, port.parse::<u16>()) {
        (true, Ok(port)) if port > 0 => Ok(entry.to_owned()),
        _ => Err(refused()),
    }
}

/// Retention of particular tenants: a YAML map (`{team-a: 30d}`), or one line as flags and environment
/// variables give it (`team-a=30d,team-b=7d`). Later sources add to earlier ones tenant by tenant.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TenantRetention(pub BTreeMap<TenantId, Duration>);

impl TenantRetention {
    fn entry(tenant: &str, duration: &str, entry: &str) -> Result<(TenantId, Duration), ValueError> {
        let tenant =
            TenantId::new(tenant.trim()).map_err(|source| ValueError::BadTenant { entry: entry.to_owned(), source })?;
        Ok((tenant, Duration::parse(duration)?))
    }
}

impl SettingValue for TenantRetention {
    fn parse(text: &str) -> Result<Self, ValueError> {
        text.split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .map(|entry| {
                let (tenant, duration) =
                    entry.split_once('=').ok_or_else(|| ValueError::NotTenantEntry { entry: entry.to_owned() })?;
                Self::entry(tenant, duration, entry)
            })
            .collect::<Result<_, _>>()
            .map(Self)
    }

    fn from_yaml(value: Value) -> Result<Self, ValueError> {
        let Value::Mapping(entries) = value else {
            return Err(ValueError::WrongShape { expected: "a map of tenant: duration", got: describe(&value) });
        };
        entries
            .into_iter()
            .map(|(tenant, duration)| match (tenant, duration) {
                (Value::String(tenant), Value::String(duration)) => {
                    Self::entry(&tenant, &duration, &format!("{tenant}: {duration}"))
                }
                (tenant, duration) => Err(ValueError::WrongShape {
                    expected: "tenant: duration",
                    got: format!("{}: {}", describe(&tenant), describe(&duration)),
                }),
            })
            .collect::<Result<_, _>>()
            .map(Self)
    }

    /// The one-line form; `None` when no tenant has its own retention.
    fn render(&self) -> Option<String> {
        let entries: Vec<String> = self
            .0
            .iter()
            .map(|(tenant, duration)| format!("{tenant}={}", duration.render().unwrap_or_default()))
            .collect();
        (!entries.is_empty()).then(|| entries.join(","))
    }

    /// A YAML map: `{team-a: 30d}`, `{}` when empty.
    fn render_yaml(&self) -> Option<String> {
        let entries: Vec<String> = self
            .0
            .iter()
            .map(|(tenant, duration)| format!("{tenant}: {}", duration.render().unwrap_or_default()))
            .collect();
        Some(format!("{{{}}}", entries.join(", ")))
    }

    fn overlay(self, earlier: Self) -> Self {
        let mut merged = earlier.0;
        merged.extend(self.0);
        Self(merged)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trips<T: SettingValue + PartialEq + std::fmt::Debug>(value: T) {
        if let Some(text) = value.render() {
            assert_eq!(T::parse(&text).unwrap(), value, "{text}");
        }
        let text = value.render_yaml().expect("the file can write every value");
        let yaml: Value = serde_yaml_ng::from_str(&crate::config::declare::yaml_scalar(&text)).unwrap();
        assert_eq!(T::from_yaml(yaml).unwrap(), value, "{text} as YAML");
    }

    #[test]
    fn every_kind_reads_back_what_it_renders() {
        for bytes in [0, 1, 1000, 1 << 10, 3 << 20, 64 << 20, 4 << 30, (1 << 30) + 1] {
            round_trips(ByteSize(bytes));
        }
        for nanos in [0, 1, 1_500, 250_000_000, 90_000_000_000, 14 * 86_400_000_000_000] {
            round_trips(Duration::from_nanos(nanos));
        }
        round_trips(true);
        round_trips(false);
        round_trips(4usize);
        round_trips(SocketAddr::from(([0, 0, 0, 0], 3200)));
        round_trips(SocketAddr::from(([0, 0, 0, 0, 0, 0, 0, 1], 4317)));
        round_trips(PathBuf::from("spanlake-data"));
        round_trips(Some("s3://traces/prefix".to_owned()));
        round_trips(FalsePositiveRate::new(1e-5).unwrap());
        round_trips(Target::Compactor);
        let tenants = TenantRetention::parse("team-a=30d,team-b=12h").unwrap();
        round_trips(tenants);
        round_trips(TenantRetention::default());
    }

    #[test]
    fn sizes_and_durations_take_their_units_and_name_what_is_wrong() {
        assert_eq!(ByteSize::parse("128MiB").unwrap(), ByteSize(128 << 20));
        assert_eq!(ByteSize::parse("16MB").unwrap(), ByteSize(16_000_000));
        assert_eq!(ByteSize(64 << 20).render().unwrap(), "64MiB");
        assert!(ByteSize::parse("12 parsecs").unwrap_err().to_string().contains("parsecs"));
        assert!(ByteSize::parse("99999999999GiB").unwrap_err().to_string().contains("too large"));
        assert_eq!(Duration::parse("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(Duration::from_secs(14 * 86_400).render().unwrap(), "14d");
        assert_eq!(Duration::from_secs(60).render().unwrap(), "1m");
        let error = Duration::parse("soon").unwrap_err();
        assert!(error.to_string().contains("soon"), "{error}");
        assert!(std::error::Error::source(&error).is_some(), "the parser's own reason is kept");
        assert_eq!(FalsePositiveRate::parse("0.001%").unwrap(), FalsePositiveRate::new(1e-5).unwrap());
        assert!(FalsePositiveRate::parse("1.5").is_err());
        assert!(bool::parse("yes").unwrap_err().to_string().contains("yes"));
    }

    #[test]
    fn tenant_retention_parses_from_one_line_and_names_what_is_wrong() {
        let parsed = TenantRetention::parse("team-a=30d, team-b=12h,").unwrap();
        assert_eq!(parsed.0[&TenantId::new("team-a").unwrap()], Duration::from_secs(30 * 86_400));
        assert_eq!(parsed.0[&TenantId::new("team-b").unwrap()], Duration::from_secs(12 * 3600));
        assert!(TenantRetention::parse("").unwrap().0.is_empty());
        assert!(TenantRetention::parse("team-a").unwrap_err().to_string().contains("TENANT=DURATION"));
        assert!(TenantRetention::parse("team-a=soon").unwrap_err().to_string().contains("not a duration"));
        assert!(TenantRetention::parse("../x=1d").unwrap_err().to_string().contains("../x"));
    }

    #[test]
    fn later_tenant_retention_adds_to_the_earlier_tenant_by_tenant() {
        let file = TenantRetention::parse("team-a=30d,team-b=7d").unwrap();
        let flag = TenantRetention::parse("team-b=1d").unwrap();
        let merged = flag.overlay(file);
        assert_eq!(merged, TenantRetention::parse("team-a=30d,team-b=1d").unwrap());
    }
}
