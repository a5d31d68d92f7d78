//! The WAL's on-disk record format. Every record is framed as
//! `u32 body length | u32 CRC-32 of the body | body`, and the body is
//! `u8 kind | u64 sequence number | u8 tenant length | tenant | kind-specific part`, all little-endian.
//! A segment file starts with [`SEGMENT_MAGIC`], so a file of another format is refused, not misread.

use bytes::{Buf, BufMut, Bytes};

use super::WalError;
use crate::ids::{BlockId, IdError, TenantId};

/// First bytes of every segment file: the format name and its version.
pub const SEGMENT_MAGIC: &[u8; 8] = b"SPLWAL01";

const FRAME_HEADER_BYTES: usize = 8;
/// Larger bodies are corruption, not data: appends refuse them, and start-up refuses a request limit
/// that would let one through ([`MAX_SPANS_PAYLOAD_BYTES`]).
pub(super) const MAX_BODY_BYTES: usize = 256 * 1024 * 1024;
/// The body's bytes besides the payload of a spans record: kind, sequence number, tenant length, tenant.
const MAX_SPANS_OVERHEAD: usize = 1 + 8 + 1 + TenantId::MAX_LEN;
/// The largest request payload a spans record holds: the receivers' decompressed request limit may not
/// be larger (`config` checks it at start-up), or an acknowledged request could not be replayed.
pub const MAX_SPANS_PAYLOAD_BYTES: usize = MAX_BODY_BYTES - MAX_SPANS_OVERHEAD;
const KIND_SPANS: u8 = 1;
const KIND_CUT: u8 = 2;

/// One durable fact in the WAL.
#[derive(Clone, Debug, PartialEq)]
pub enum Record {
    /// Accepted spans of one request, as an OTLP `ExportTraceServiceRequest` in protobuf.
    Spans { tenant: TenantId, payload: Bytes },
    /// The tenant's records with these sequence numbers were cut into this block. Written before the
    /// block is uploaded, so a replay re-flushes exactly the same spans under exactly the same ID and a
    /// block that was already committed is recognised instead of duplicated.
    Cut { tenant: TenantId, block: BlockId, sequences: SequenceRanges },
}

impl Record {
    /// The tenant the record belongs to.
    pub fn tenant(&self) -> &TenantId {
        match self {
            Record::Spans { tenant, .. } | Record::Cut { tenant, .. } => tenant,
        }
    }
}

/// A set of record sequence numbers stored as sorted, disjoint, inclusive ranges: a block's records are
/// nearly contiguous, so a cut record stays a few bytes however many requests the block holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SequenceRanges(Vec<(u64, u64)>);

impl SequenceRanges {
    /// The ranges covering these sequence numbers (in any order, duplicates allowed).
    pub fn from_sequences(mut sequences: Vec<u64>) -> Self {
        sequences.sort_unstable();
        let mut ranges: Vec<(u64, u64)> = Vec::new();
        for seq in sequences {
            match ranges.last_mut() {
                Some((_, end)) if seq <= *end + 1 => *end = (*end).max(seq),
                _ => ranges.push((seq, seq)),
            }
        }
        Self(ranges)
    }

    /// True when `seq` is one of the set.
    pub fn contains(&self, seq: u64) -> bool {
        let index = self.0.partition_point(|(_, end)| *end < seq);
        self.0.get(index).is_some_and(|(start, _)| *start <= seq)
    }

    /// Every sequence number, ascending.
    pub fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        self.0.iter().flat_map(|(start, end)| *start..=*end)
    }
}

/// Bytes of `record`'s body once framed: above `MAX_BODY_BYTES` replay would refuse it, so appends do;
/// also what a group of appends is sized by.
pub fn body_bytes(record: &Record) -> usize {
    let part = match record {
        Record::Spans { payload, .. } => payload.len(),
        Record::Cut { sequences, .. } => 16 + 4 + 16 * sequences.0.len(),
    };
    1 + 8 + 1 + record.tenant().as_str().len() + part
}

/// Appends one framed record to `out`. The caller has checked that its [`body_bytes`] are at most
/// `MAX_BODY_BYTES`.
pub fn encode(seq: u64, record: &Record, out: &mut Vec<u8>) {
    let frame_start = out.len();
    out.extend_from_slice(&[0; FRAME_HEADER_BYTES]);
    let body_start = out.len();
    let tenant = record.tenant().as_str().as_bytes();
    out.put_u8(match record {
        Record::Spans { .. } => KIND_SPANS,
        Record::Cut { .. } => KIND_CUT,
    });
    out.put_u64_le(seq);
    // Tenant IDs are at most `TenantId::MAX_LEN` bytes (validated by TenantId).
    out.put_u8(tenant.len() as u8);
    out.extend_from_slice(tenant);
    match record {
        Record::Spans { payload, .. } => out.extend_from_slice(payload),
        Record::Cut { block, sequences, .. } => {
            out.put_u128_le(block.as_u128());
            out.put_u32_le(sequences.0.len() as u32);
            for (start, end) in &sequences.0 {
                out.put_u64_le(*start);
                out.put_u64_le(*end);
            }
        }
    }
    let body_len = (out.len() - body_start) as u32;
    let checksum = crc32fast::hash(&out[body_start..]);
    out[frame_start..frame_start + 4].copy_from_slice(&body_len.to_le_bytes());
    out[frame_start + 4..frame_start + 8].copy_from_slice(&checksum.to_le_bytes());
}

/// The offset of the first intact record in `bytes` at or after `from` whose sequence number follows
/// `after_seq`, if any. Used after a bad frame: if an intact record follows it, the damage is not a torn
/// tail (a crash only ever tears the last write) but acknowledged records after a damaged one, which
/// must not be cut off. Only positions whose header and body prefix look like a record (a plausible
/// length inside the file, a known kind, a sequence number just after `after_seq`) are checksummed, so
/// the scan stays linear in practice.
pub fn next_intact_record(bytes: &[u8], from: usize, after_seq: Option<u64>) -> Option<usize> {
    // After the largest sequence number nothing can follow (a damaged record can claim any number).
    let lowest = match after_seq {
        None => 0,
        Some(seq) => seq.checked_add(1)?,
    };
    let window = 1u64 << 32;
    (from..bytes.len().saturating_sub(FRAME_HEADER_BYTES + 10)).find(|&at| {
        let frame = &bytes[at..];
        let body_len = u32::from_le_bytes(frame[0..4].try_into().expect("4 bytes")) as usize;
        if !(10..=MAX_BODY_BYTES).contains(&body_len) || FRAME_HEADER_BYTES + body_len > frame.len() {
            return false;
        }
        let kind = frame[FRAME_HEADER_BYTES];
        let seq =
            u64::from_le_bytes(frame[FRAME_HEADER_BYTES + 1..FRAME_HEADER_BYTES + 9].try_into().expect("8 bytes"));
        (kind == KIND_SPANS || kind == KIND_CUT) && seq >= lowest && seq - lowest < window && decode(frame).is_ok()
    })
}

/// One intact record found by [`scan_segment`], with where its frame lies in the segment's bytes.
#[derive(Debug, PartialEq)]
pub struct ScannedRecord {
    pub seq: u64,
    pub record: Record,
    /// Offset of the frame in the segment file.
    pub offset: usize,
    /// Bytes of the frame, header included.
    pub len: usize,
}

/// How a segment's bytes end after its last intact record.
#[derive(Debug, PartialEq)]
pub enum SegmentEnd {
    /// Every byte belongs to an intact record.
    Clean,
    /// The bytes from `offset` are not a record and no intact record follows: a write a crash
    /// interrupted, never acknowledged.
    TornTail { offset: usize, problem: FrameProblem },
    /// The frame at `offset` is damaged and an intact record follows it at `next_intact`: damage to
    /// acknowledged data, never to be cut off.
    Damaged { offset: usize, damage: Damage, next_intact: usize },
}

/// What a segment file's bytes hold: its intact records in order and how it ends.
#[derive(Debug, PartialEq)]
pub struct SegmentScan {
    pub records: Vec<ScannedRecord>,
    pub end: SegmentEnd,
}

/// Reads every record of a segment file's bytes (magic included, already checked by [`check_magic`])
/// up to the first frame that is not intact, and says whether that frame is a torn tail or damage
/// before intact records. The one reading of segments, for replay and for trimming at start-up alike,
/// and pure so that it can be fuzzed on arbitrary bytes.
pub fn scan_segment(bytes: &[u8]) -> SegmentScan {
    let mut offset = SEGMENT_MAGIC.len().min(bytes.len());
    let mut records: Vec<ScannedRecord> = Vec::new();
    while offset < bytes.len() {
        match decode(&bytes[offset..]) {
            Ok((seq, record, len)) => {
                records.push(ScannedRecord { seq, record, offset, len });
                offset += len;
            }
            Err(problem) => {
                let after_seq = records.last().map(|last| last.seq);
                let end = match next_intact_record(bytes, offset + 1, after_seq) {
                    Some(next_intact) => {
                        let damage = match problem {
                            FrameProblem::Corrupt(damage) => damage,
                            FrameProblem::Truncated => Damage::CutShort,
                        };
                        SegmentEnd::Damaged { offset, damage, next_intact }
                    }
                    None => SegmentEnd::TornTail { offset, problem },
                };
                return SegmentScan { records, end };
            }
        }
    }
    SegmentScan { records, end: SegmentEnd::Clean }
}

/// Why the bytes at some offset are not a whole, intact record.
#[derive(Debug, PartialEq)]
pub enum FrameProblem {
    /// The file ends inside the record: a write that never completed (a torn tail).
    Truncated,
    /// The record is all there but its checksum or contents are wrong.
    Corrupt(Damage),
}

/// What is wrong with a WAL segment or one of its records: the cause of [`WalError::Corrupt`].
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum Damage {
    #[error("record length {0} is implausible")]
    ImplausibleLength(usize),
    #[error("checksum mismatch")]
    ChecksumMismatch,
    #[error("record body is too short")]
    TooShort,
    #[error("tenant is not UTF-8: {0}")]
    TenantNotUtf8(#[source] std::str::Utf8Error),
    #[error(transparent)]
    Tenant(#[from] IdError),
    #[error("cut record announces {count} ranges but holds {bytes} bytes")]
    RangeCount { count: usize, bytes: usize },
    #[error("unknown record kind {0}")]
    UnknownKind(u8),
    #[error("record cut short")]
    CutShort,
    #[error("not a spanlake WAL segment of format {:?}", String::from_utf8_lossy(SEGMENT_MAGIC))]
    NotASegment,
}

/// Decodes the record at the start of `bytes`; returns it with its sequence number and framed length.
pub fn decode(bytes: &[u8]) -> Result<(u64, Record, usize), FrameProblem> {
    if bytes.len() < FRAME_HEADER_BYTES {
        return Err(FrameProblem::Truncated);
    }
    let body_len = u32::from_le_bytes(bytes[0..4].try_into().expect("4 bytes")) as usize;
    let checksum = u32::from_le_bytes(bytes[4..8].try_into().expect("4 bytes"));
    if body_len > MAX_BODY_BYTES {
        return Err(FrameProblem::Corrupt(Damage::ImplausibleLength(body_len)));
    }
    let Some(body) = bytes.get(FRAME_HEADER_BYTES..FRAME_HEADER_BYTES + body_len) else {
        return Err(FrameProblem::Truncated);
    };
    if crc32fast::hash(body) != checksum {
        return Err(FrameProblem::Corrupt(Damage::ChecksumMismatch));
    }
    let (seq, record) = decode_body(body).map_err(FrameProblem::Corrupt)?;
    Ok((seq, record, FRAME_HEADER_BYTES + body_len))
}

fn decode_body(mut body: &[u8]) -> Result<(u64, Record), Damage> {
    if body.remaining() < 10 {
        return Err(Damage::TooShort);
    }
    let kind = body.get_u8();
    let seq = body.get_u64_le();
    let tenant_len = body.get_u8() as usize;
    if body.remaining() < tenant_len {
        return Err(Damage::TooShort);
    }
    let tenant_text = std::str::from_utf8(&body[..tenant_len]).map_err(Damage::TenantNotUtf8)?;
    let tenant = TenantId::new(tenant_text)?;
    body.advance(tenant_len);
    let record = match kind {
        KIND_SPANS => Record::Spans { tenant, payload: Bytes::copy_from_slice(body) },
        KIND_CUT => {
            if body.remaining() < 20 {
                return Err(Damage::TooShort);
            }
            let block = BlockId::from_u128(body.get_u128_le());
            let count = body.get_u32_le() as usize;
            if body.remaining() != count * 16 {
                return Err(Damage::RangeCount { count, bytes: body.remaining() });
            }
            let ranges = (0..count).map(|_| (body.get_u64_le(), body.get_u64_le())).collect();
            Record::Cut { tenant, block, sequences: SequenceRanges(ranges) }
        }
        other => return Err(Damage::UnknownKind(other)),
    };
    Ok((seq, record))
}

/// Checks that a segment starts with the magic bytes of this format.
pub fn check_magic(bytes: &[u8], path: &std::path::Path) -> Result<(), WalError> {
    if bytes.len() >= SEGMENT_MAGIC.len() && &bytes[..SEGMENT_MAGIC.len()] == SEGMENT_MAGIC {
        return Ok(());
    }
    if bytes.len() < SEGMENT_MAGIC.len() && SEGMENT_MAGIC.starts_with(bytes) {
        // Created but the header never reached the disk: an empty segment.
        return Ok(());
    }
    Err(WalError::Corrupt { path: path.to_owned(), offset: 0, source: Damage::NotASegment })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn tenant() -> TenantId {
        TenantId::new("team-a").unwrap()
    }

    #[test]
    fn records_round_trip_through_their_frames() {
        let spans = Record::Spans { tenant: tenant(), payload: Bytes::from_static(b"\x0a\x03abc") };
        let cut = Record::Cut {
            tenant: tenant(),
            block: BlockId::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef),
            sequences: SequenceRanges::from_sequences(vec![7, 3, 4, 5, 9]),
        };
        let mut out = Vec::new();
        encode(41, &spans, &mut out);
        encode(42, &cut, &mut out);
        let (seq, decoded, used) = decode(&out).unwrap();
        assert_eq!((seq, &decoded), (41, &spans));
        let (seq, decoded, rest) = decode(&out[used..]).unwrap();
        assert_eq!((seq, &decoded), (42, &cut));
        assert_eq!(used + rest, out.len());
    }

    #[test]
    fn a_cut_short_record_is_a_torn_tail_and_a_flipped_bit_is_corruption() {
        let mut out = Vec::new();
        encode(1, &Record::Spans { tenant: tenant(), payload: Bytes::from_static(b"payload") }, &mut out);
        for cut_at in 0..out.len() {
            assert_eq!(decode(&out[..cut_at]).unwrap_err(), FrameProblem::Truncated, "cut at {cut_at}");
        }
        let last = out.len() - 1;
        out[last] ^= 1;
        assert_eq!(decode(&out).unwrap_err(), FrameProblem::Corrupt(Damage::ChecksumMismatch));
    }

    proptest! {
        #[test]
        fn sequence_ranges_hold_exactly_their_members(mut members in proptest::collection::vec(0u64..200, 0..60)) {
            let ranges = SequenceRanges::from_sequences(members.clone());
            members.sort_unstable();
            members.dedup();
            prop_assert_eq!(ranges.iter().collect::<Vec<_>>(), members.clone());
            for probe in 0..210 {
                prop_assert_eq!(ranges.contains(probe), members.binary_search(&probe).is_ok());
            }
        }
    }
}
