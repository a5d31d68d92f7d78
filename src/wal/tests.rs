use std::io::Write;

use bytes::Bytes;

use super::*;
use crate::ids::{BlockId, TenantId};

fn spans(tenant: &str, payload: &'static [u8]) -> Record {
    Record::Spans { tenant: TenantId::new(tenant).unwrap(), payload: Bytes::from_static(payload) }
}

fn replayed(wal: &Wal) -> Vec<(WalPosition, Record)> {
    wal.replay().collect::<Result<_, _>>().unwrap()
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    files
}

#[tokio::test]
async fn appended_records_replay_in_order_after_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(dir.path(), WalOptions::default()).unwrap();
    let first = wal.append(spans("a", b"one")).await.unwrap();
    let cut = Record::Cut {
        tenant: TenantId::new("a").unwrap(),
        block: BlockId::from_u128(9),
        sequences: SequenceRanges::from_sequences(vec![first.seq]),
    };
    let second = wal.append(cut.clone()).await.unwrap();
    assert_eq!(second.seq, first.seq + 1);
    drop(wal);

    let wal = Wal::open(dir.path(), WalOptions::default()).unwrap();
    let records: Vec<Record> = replayed(&wal).into_iter().map(|(_, r)| r).collect();
    assert_eq!(records, vec![spans("a", b"one"), cut]);
    let third = wal.append(spans("a", b"three")).await.unwrap();
    assert_eq!(third.seq, second.seq + 1, "sequence numbers continue across restarts");
    assert!(third.segment > first.segment, "appends after a restart go to a fresh segment");
}

#[tokio::test]
async fn concurrent_appends_each_get_their_own_sequence_number() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Arc::new(Wal::open(dir.path(), WalOptions::default()).unwrap());
    let appends = (0..200).map(|_| {
        let wal = wal.clone();
        tokio::spawn(async move { wal.append(spans("a", b"x")).await.unwrap().seq })
    });
    let mut seqs: Vec<u64> = futures::future::join_all(appends).await.into_iter().map(|r| r.unwrap()).collect();
    seqs.sort_unstable();
    seqs.dedup();
    assert_eq!(seqs.len(), 200);
    drop(wal);
    let wal = Wal::open(dir.path(), WalOptions::default()).unwrap();
    assert_eq!(replayed(&wal).len(), 200);
}

#[tokio::test]
async fn a_torn_tail_is_trimmed_and_everything_before_it_replays() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(dir.path(), WalOptions::default()).unwrap();
    let kept = wal.append(spans("a", b"kept")).await.unwrap();
    drop(wal);
    let newest = segment_files(dir.path()).into_iter().rev().find(|p| std::fs::metadata(p).unwrap().len() > 8).unwrap();
    let intact_len = std::fs::metadata(&newest).unwrap().len();
    // Half a record, as a crash in the middle of a write leaves it.
    let mut partial = Vec::new();
    record::encode(kept.seq + 1, &spans("a", b"never acknowledged"), &mut partial);
    OpenOptions::new().append(true).open(&newest).unwrap().write_all(&partial[..partial.len() / 2]).unwrap();

    let wal = Wal::open(dir.path(), WalOptions::default()).unwrap();
    let records: Vec<Record> = replayed(&wal).into_iter().map(|(_, r)| r).collect();
    assert_eq!(records, vec![spans("a", b"kept")]);
    assert_eq!(std::fs::metadata(&newest).unwrap().len(), intact_len, "the torn tail is cut off on disk");
    assert_eq!(wal.append(spans("a", b"next")).await.unwrap().seq, kept.seq + 1);
}

#[tokio::test]
async fn damage_before_the_newest_segment_is_refused_with_its_place() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(dir.path(), WalOptions::default()).unwrap();
    wal.append(spans("a", b"first")).await.unwrap();
    drop(wal);
    let wal = Wal::open(dir.path(), WalOptions::default()).unwrap();
    wal.append(spans("a", b"second")).await.unwrap();
    drop(wal);
    let oldest = segment_files(dir.path()).remove(0);
    let mut bytes = std::fs::read(&oldest).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&oldest, bytes).unwrap();

    let wal = Wal::open(dir.path(), WalOptions::default()).unwrap();
    let error = wal.replay().find_map(Result::err).expect("corruption is reported");
    assert!(matches!(error, WalError::Corrupt { source: Damage::ChecksumMismatch, .. }), "{error:?}");
    let message = error.to_string();
    assert!(message.contains(&oldest.display().to_string()) && message.contains("checksum"), "{message}");
}

#[tokio::test]
async fn segments_rotate_and_only_released_ones_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(dir.path(), WalOptions { segment_bytes: 64 }).unwrap();
    let mut positions = Vec::new();
    for _ in 0..5 {
        positions.push(wal.append(spans("a", b"a payload longer than the segment limit ....")).await.unwrap());
    }
    let segments: Vec<u64> = positions.iter().map(|p| p.segment).collect();
    assert!(segments.windows(2).all(|w| w[0] < w[1]), "each record in its own segment: {segments:?}");
    let before = wal.disk_bytes();
    let removed = wal.remove_segments_before(positions[3].segment).unwrap();
    assert_eq!(removed, 3);
    assert!(wal.disk_bytes() < before);
    // Never the active segment, whatever the caller asks.
    wal.remove_segments_before(u64::MAX).unwrap();
    assert!(segment_path(dir.path(), wal.active_segment()).exists());
    drop(wal);
    let wal = Wal::open(dir.path(), WalOptions { segment_bytes: 64 }).unwrap();
    let left: Vec<u64> = replayed(&wal).into_iter().map(|(p, _)| p.seq).collect();
    assert_eq!(left, vec![positions[4].seq]);
}

#[test]
fn a_file_of_another_format_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(segment_path(dir.path(), 1), b"NOT A WAL SEGMENT").unwrap();
    let error = Wal::open(dir.path(), WalOptions::default()).err().expect("refused");
    assert!(error.to_string().contains("not a spanlake WAL segment"), "{error}");
}

#[tokio::test]
async fn a_record_too_large_to_replay_is_refused_and_the_wal_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(dir.path(), WalOptions::default()).unwrap();
    let largest = Bytes::from(vec![7u8; MAX_SPANS_PAYLOAD_BYTES]);
    let tenant = TenantId::new(&"t".repeat(150)).unwrap();
    let fits = Record::Spans { tenant: tenant.clone(), payload: largest.clone() };
    let position = wal.append(fits.clone()).await.unwrap();
    let too_large = Record::Spans { tenant, payload: Bytes::from(vec![7u8; MAX_SPANS_PAYLOAD_BYTES + 1]) };
    let refused = wal.append(too_large).await.unwrap_err();
    assert!(matches!(refused, WalError::TooLarge { .. }), "{refused}");
    let after = wal.append(spans("a", b"next")).await.unwrap();
    assert_eq!(after.seq, position.seq + 1, "the refusal took no sequence number");
    drop(wal);

    // The largest accepted record replays: acknowledged means replayable.
    let wal = Wal::open(dir.path(), WalOptions::default()).unwrap();
    let records: Vec<Record> = replayed(&wal).into_iter().map(|(_, record)| record).collect();
    assert_eq!(records, vec![fits, spans("a", b"next")]);
}

/// Issue 26, item 4: a damaged record with intact ones after it is not a torn tail. Opening refuses,
/// naming the segment and the damaged record's offset, and the file is left as it was (nothing
/// acknowledged is cut off); a torn last record is still trimmed.
#[tokio::test]
async fn damage_followed_by_intact_records_is_refused_not_trimmed() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(dir.path(), WalOptions::default()).unwrap();
    let mut offsets = Vec::new();
    for payload in [&b"one"[..], b"two", b"three", b"four", b"five"] {
        wal.append(Record::Spans { tenant: TenantId::new("a").unwrap(), payload: Bytes::from_static(payload) })
            .await
            .unwrap();
    }
    drop(wal);
    let newest = segment_files(dir.path()).into_iter().rev().find(|p| std::fs::metadata(p).unwrap().len() > 8).unwrap();
    let mut bytes = std::fs::read(&newest).unwrap();
    let mut offset = SEGMENT_MAGIC.len();
    while offset < bytes.len() {
        offsets.push(offset);
        offset += record::decode(&bytes[offset..]).unwrap().2;
    }
    assert_eq!(offsets.len(), 5);
    // A flipped byte inside the second record's payload.
    let second = offsets[1];
    let last_byte_of_second = offsets[2] - 1;
    bytes[last_byte_of_second] ^= 0x5a;
    std::fs::write(&newest, &bytes).unwrap();

    let error = Wal::open(dir.path(), WalOptions::default()).err().expect("damage in the middle is refused");
    assert!(matches!(error, WalError::Corrupt { source: Damage::ChecksumMismatch, .. }), "{error:?}");
    let message = error.to_string();
    assert!(message.contains(&newest.display().to_string()), "{message}");
    assert!(message.contains(&format!("at byte {second}")), "{message}");
    assert_eq!(std::fs::read(&newest).unwrap(), bytes, "nothing was cut off");

    // Damage in the header's length of the last record, running past the end: a torn tail, trimmed.
    bytes[last_byte_of_second] ^= 0x5a;
    let fifth = offsets[4];
    bytes[fifth + 2] = 0x7f;
    std::fs::write(&newest, &bytes).unwrap();
    let wal = Wal::open(dir.path(), WalOptions::default()).unwrap();
    assert_eq!(replayed(&wal).len(), 4);
    assert_eq!(std::fs::metadata(&newest).unwrap().len(), fifth as u64);
}

/// Issue 26, item 2: a segment creation that fails half-way (the file made, its header not written)
/// does not stop appends (they go into the current segment) and leaves nothing in the way of the next
/// rotation, which succeeds instead of failing forever on the leftover file.
#[tokio::test]
async fn a_failed_rotation_leaves_nothing_behind_and_appends_go_on() {
    let dir = tempfile::tempdir().unwrap();
    // Every group rotates: the segment is full after one record.
    let wal = Wal::open(dir.path(), WalOptions { segment_bytes: 1 }).unwrap();
    let first = wal.append(spans("a", b"one")).await.unwrap();
    let segments = segment_files(dir.path()).len();

    testing::inject_failures(dir.path(), testing::Operation::CreateSegment, 2);
    let second = wal.append(spans("a", b"two")).await.unwrap();
    let third = wal.append(spans("a", b"three")).await.unwrap();
    assert_eq!(segment_files(dir.path()).len(), segments, "no segment made, no leftover file");
    assert_eq!(second.segment, first.segment, "appended to the current segment");
    assert_eq!(wal.problem(), None, "a late rotation is not a failed WAL");

    let fourth = wal.append(spans("a", b"four")).await.unwrap();
    assert_eq!(fourth.segment, third.segment + 1, "the next rotation succeeds");
    assert_eq!(segment_files(dir.path()).len(), segments + 1);
    drop(wal);
    let wal = Wal::open(dir.path(), WalOptions::default()).unwrap();
    let records: Vec<Record> = replayed(&wal).into_iter().map(|(_, record)| record).collect();
    let payloads: [&'static [u8]; 4] = [b"one", b"two", b"three", b"four"];
    assert_eq!(records, payloads.map(|payload| spans("a", payload)).to_vec());
}

/// A write that fails is reported (for `/ready`) until the WAL can write again, which it finds out by
/// itself when no appends come: an unready server gets no traffic to retry with.
#[tokio::test]
async fn a_failed_write_is_reported_until_the_wal_can_write_again() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(dir.path(), WalOptions::default()).unwrap();
    wal.append(spans("a", b"one")).await.unwrap();
    testing::inject_failures(dir.path(), testing::Operation::WriteGroup, 2);
    let error = wal.append(spans("a", b"refused")).await.unwrap_err();
    assert!(error.to_string().contains("no space left"), "{error}");
    let problem = wal.problem().expect("the failure is reported");
    assert!(problem.contains("storage space") && !problem.contains(&dir.path().display().to_string()), "{problem}");
    // The probe fails once more (the second injected failure), then succeeds.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while wal.problem().is_some() {
        assert!(std::time::Instant::now() < deadline, "the WAL never found it can write again");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    wal.append(spans("a", b"two")).await.unwrap();
    drop(wal);
    let wal = Wal::open(dir.path(), WalOptions::default()).unwrap();
    let records: Vec<Record> = replayed(&wal).into_iter().map(|(_, record)| record).collect();
    assert_eq!(records, vec![spans("a", b"one"), spans("a", b"two")]);
}
