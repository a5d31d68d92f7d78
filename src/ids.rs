//! Identifier types shared by every stage: trace, span, tenant and block IDs.
//!
//! Owns validation of identifiers. Everything else receives these types already validated at the edge
//! (receive, API, CLI), so a value of one of these types is always well formed. Calls nothing in spanlake.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Why an identifier was refused; the message names the rule that failed so it can go straight into a
/// 400 response or a partial-success message.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum IdError {
    #[error("{kind} must be {expected} bytes, got {actual}")]
    WrongLength { kind: &'static str, expected: usize, actual: usize },
    #[error("{kind} must not be all zeros")]
    AllZero { kind: &'static str },
    #[error("{kind} is not valid hex: {source}")]
    NotHex { kind: &'static str, source: HexError },
    #[error("tenant ID must be 1 to 150 characters, got {0}")]
    TenantLength(usize),
    #[error("tenant ID contains {0:?}; allowed are letters, digits and ! - _ . * ' ( )")]
    TenantCharacter(char),
    #[error("tenant ID must not be \".\" or \"..\"")]
    TenantDots,
}

/// Why the text of an ID is not its hex (or, for block IDs, UUID) form: the cause of [`IdError::NotHex`].
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum HexError {
    #[error("expected 1 to {max} hex characters, got {actual}")]
    Length { max: usize, actual: usize },
    #[error("{character:?} at position {position} is not a hex digit")]
    Digit { character: char, position: usize },
    #[error(transparent)]
    Hex(#[from] hex::FromHexError),
    #[error(transparent)]
    Uuid(#[from] uuid::Error),
}

fn fixed_bytes<const N: usize>(kind: &'static str, bytes: &[u8]) -> Result<[u8; N], IdError> {
    let array: [u8; N] =
        bytes.try_into().map_err(|_| IdError::WrongLength { kind, expected: N, actual: bytes.len() })?;
    if array.iter().all(|b| *b == 0) {
        return Err(IdError::AllZero { kind });
    }
    Ok(array)
}

fn parse_hex_padded<const N: usize>(kind: &'static str, text: &str) -> Result<[u8; N], IdError> {
    let digits = text.trim();
    if digits.is_empty() || digits.len() > N * 2 {
        return Err(IdError::NotHex { kind, source: HexError::Length { max: N * 2, actual: digits.len() } });
    }
    if let Some((position, character)) = digits.char_indices().find(|(_, c)| !c.is_ascii_hexdigit()) {
        return Err(IdError::NotHex { kind, source: HexError::Digit { character, position } });
    }
    // Tempo left-pads short IDs with zeros; so do we, so IDs copied from logs that dropped leading zeros work.
    let padded = format!("{digits:0>width$}", width = N * 2);
    let mut out = [0u8; N];
    hex::decode_to_slice(&padded, &mut out).map_err(|e| IdError::NotHex { kind, source: e.into() })?;
    fixed_bytes(kind, &out)
}

/// A W3C trace ID: 16 bytes, not all zero. Rows in a block are sorted by it. Serialized as lowercase
/// hex, the form users see.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TraceId([u8; 16]);

impl TryFrom<String> for TraceId {
    type Error = IdError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::from_hex(&value)
    }
}

impl From<TraceId> for String {
    fn from(value: TraceId) -> Self {
        value.to_hex()
    }
}

impl TraceId {
    /// Validates raw OTLP bytes; an invalid ID is refused per span, not per request (CONTRACTS §2).
    pub fn from_slice(bytes: &[u8]) -> Result<Self, IdError> {
        fixed_bytes("trace ID", bytes).map(Self)
    }

    /// Parses 1–32 hex characters, left-padding short IDs with zeros as Tempo does.
    pub fn from_hex(text: &str) -> Result<Self, IdError> {
        parse_hex_padded("trace ID", text).map(Self)
    }

    /// The raw bytes, as stored in the `trace_id` column and hashed into the bloom filter.
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// Lowercase hex, the form users see in every API.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

/// A span ID: 8 bytes, not all zero.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SpanId([u8; 8]);

impl SpanId {
    /// Validates raw OTLP bytes.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, IdError> {
        fixed_bytes("span ID", bytes).map(Self)
    }

    /// Parses 1–16 hex characters, left-padded like trace IDs.
    pub fn from_hex(text: &str) -> Result<Self, IdError> {
        parse_hex_padded("span ID", text).map(Self)
    }

    /// The raw bytes as stored in the `span_id` column.
    pub fn as_bytes(&self) -> &[u8; 8] {
        &self.0
    }

    /// Lowercase hex, the form users see.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

macro_rules! hex_display {
    ($($id:ty),*) => {$(
        impl fmt::Display for $id {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }
        impl fmt::Debug for $id {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($id), self.to_hex())
            }
        }
    )*};
}
hex_display!(TraceId, SpanId);

/// A tenant (Tempo's "org ID"): every object a tenant owns lives under a prefix named after it, so the
/// validation rules keep it a single safe path segment (no `/`, not `.` or `..`).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TenantId(String);

impl TenantId {
    /// The tenant every span belongs to when multitenancy is off (CONTRACTS §2).
    pub const SINGLE_TENANT: &'static str = "single-tenant";

    /// The longest tenant ID, in characters (all ASCII, so also in bytes).
    pub const MAX_LEN: usize = 150;

    /// Validates a tenant ID against CONTRACTS §2.
    pub fn new(text: &str) -> Result<Self, IdError> {
        let length = text.chars().count();
        if !(1..=Self::MAX_LEN).contains(&length) {
            return Err(IdError::TenantLength(length));
        }
        if text == "." || text == ".." {
            return Err(IdError::TenantDots);
        }
        if let Some(bad) = text.chars().find(|c| !is_tenant_char(*c)) {
            return Err(IdError::TenantCharacter(bad));
        }
        Ok(Self(text.to_owned()))
    }

    /// The tenant used when multitenancy is off.
    pub fn single_tenant() -> Self {
        Self(Self::SINGLE_TENANT.to_owned())
    }

    /// The validated text, safe to use as one object-store path segment.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn is_tenant_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '!' | '-' | '_' | '.' | '*' | '\'' | '(' | ')')
}

impl TryFrom<String> for TenantId {
    type Error = IdError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(&value)
    }
}

impl From<TenantId> for String {
    fn from(value: TenantId) -> Self {
        value.0
    }
}

impl FromStr for TraceId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_hex(s)
    }
}

impl FromStr for TenantId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TenantId({})", self.0)
    }
}

/// Names one immutable block. A UUIDv7, so IDs sort by creation time and listings come out oldest first;
/// a later WAL can derive IDs deterministically with [`BlockId::from_u128`] to make flushes idempotent.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct BlockId(uuid::Uuid);

impl BlockId {
    /// A fresh, time-ordered block ID.
    pub fn new_random() -> Self {
        Self(uuid::Uuid::now_v7())
    }

    /// A block ID chosen by the caller, for deterministic naming.
    pub fn from_u128(value: u128) -> Self {
        Self(uuid::Uuid::from_u128(value))
    }

    /// When the ID was made (unix ms): the block's cut, or its compaction. `None` for an ID not made by
    /// [`BlockId::new_random`].
    pub fn created_unix_ms(&self) -> Option<u64> {
        (self.0.get_version_num() == 7).then(|| (self.0.as_u128() >> 80) as u64)
    }

    /// The 128 bits of the ID, for compact binary records such as the WAL's cut records.
    pub fn as_u128(&self) -> u128 {
        self.0.as_u128()
    }
}

impl FromStr for BlockId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        uuid::Uuid::parse_str(s).map(Self).map_err(|e| IdError::NotHex { kind: "block ID", source: e.into() })
    }
}

impl TryFrom<String> for BlockId {
    type Error = IdError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        value.parse()
    }
}

impl From<BlockId> for String {
    fn from(value: BlockId) -> Self {
        value.to_string()
    }
}

impl fmt::Display for BlockId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.as_hyphenated().fmt(f)
    }
}

impl fmt::Debug for BlockId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BlockId({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_id_rejects_wrong_length_and_zero() {
        assert!(matches!(TraceId::from_slice(&[1; 15]), Err(IdError::WrongLength { actual: 15, .. })));
        assert!(matches!(TraceId::from_slice(&[0; 16]), Err(IdError::AllZero { .. })));
        assert_eq!(TraceId::from_slice(&[7; 16]).unwrap().as_bytes(), &[7; 16]);
    }

    #[test]
    fn short_hex_ids_are_left_padded_like_tempo() {
        let id = TraceId::from_hex("abc").unwrap();
        assert_eq!(id.to_hex(), "00000000000000000000000000000abc");
        assert!(TraceId::from_hex("zz").is_err());
        let error = TraceId::from_hex("12x4").unwrap_err();
        assert!(matches!(error, IdError::NotHex { source: HexError::Digit { character: 'x', position: 2 }, .. }));
        let error = error.to_string();
        assert!(error.contains("'x' at position 2"), "positions count in what the user typed: {error}");
        assert!(TraceId::from_hex(&"1".repeat(33)).is_err());
        assert!(TraceId::from_hex("0").is_err());
        assert_eq!(SpanId::from_hex("00f").unwrap().to_hex(), "000000000000000f");
    }

    #[test]
    fn tenant_ids_follow_the_contract() {
        for good in ["a", "single-tenant", "A1!-_.*'()", &"x".repeat(150)] {
            assert!(TenantId::new(good).is_ok(), "{good} should be valid");
        }
        assert_eq!(TenantId::new(""), Err(IdError::TenantLength(0)));
        assert_eq!(TenantId::new(&"x".repeat(151)), Err(IdError::TenantLength(151)));
        assert_eq!(TenantId::new("."), Err(IdError::TenantDots));
        assert_eq!(TenantId::new(".."), Err(IdError::TenantDots));
        assert_eq!(TenantId::new("a/b"), Err(IdError::TenantCharacter('/')));
        assert_eq!(TenantId::new("é"), Err(IdError::TenantCharacter('é')));
    }

    #[test]
    fn block_ids_round_trip_through_text_and_sort_by_creation() {
        let first = BlockId::new_random();
        let second = BlockId::new_random();
        assert!(first < second);
        assert_eq!(first.to_string().parse::<BlockId>().unwrap(), first);
        assert!("not-a-uuid".parse::<BlockId>().is_err());
    }

    #[test]
    fn a_block_id_tells_when_it_was_made() {
        let now_ms = || std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
        let before = now_ms();
        let made = BlockId::new_random().created_unix_ms().expect("a time-ordered ID");
        assert!((before..=now_ms()).contains(&made), "{before} {made}");
        assert_eq!(BlockId::from_u128(42).created_unix_ms(), None, "an ID chosen by hand has no time");
    }
}
