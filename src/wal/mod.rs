//! The write-ahead log: what makes an acknowledgement mean "durable" (CONTRACTS §2).
//!
//! Owns the segment files in the WAL folder. Appends go through one writer thread that batches
//! concurrent appends into one write and one `fdatasync` (group commit) and answers each caller only
//! after that sync. Segments are removed only when the ingester says their spans are committed in blocks.
//! On start, [`Wal::open`] cuts off a torn tail left by a crash and [`Wal::replay`] hands back every
//! record in order. Calls `ids` only; the ingester is its only caller.

/// The on-disk record format; public so that the fuzz targets (tests/fuzz) can read arbitrary bytes as a
/// segment the way replay does.
pub mod record;
pub mod testing;

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};

pub use record::Damage;
use record::{FrameProblem, SEGMENT_MAGIC, SegmentEnd};
pub use record::{MAX_SPANS_PAYLOAD_BYTES, Record, SequenceRanges};

/// How often a WAL that reported a problem checks, between appends, whether it can write again.
const PROBE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// Most bytes written (and synced) as one group; more waiting appends go into the next group.
const MAX_GROUP_BYTES: usize = 32 * 1024 * 1024;

/// Why the WAL could not be opened, replayed or appended to.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WalError {
    #[error("WAL {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("WAL segment {path} is corrupt at byte {offset}: {source}")]
    Corrupt { path: PathBuf, offset: u64, source: Damage },
    /// The group of appends this one was written with failed; every append of the group gets the cause.
    #[error("the WAL stopped accepting writes after an earlier write failed: {0}")]
    Failed(#[source] Arc<WalError>),
    /// Writing or syncing a group of records failed (the partial write was cut off again).
    #[error("WAL write failed: {0}")]
    Write(#[source] std::io::Error),
    /// A write failed and its partial record could not be cut off, so nothing more is appended.
    #[error("an earlier WAL write failed; restart the server")]
    Poisoned,
    #[error("the WAL is closed")]
    Closed,
    /// A record larger than one frame may hold (replay would refuse it), so it is not written.
    #[error("a WAL record of {bytes} bytes is larger than the most a record holds")]
    TooLarge { bytes: usize },
}

impl WalError {
    /// What failed, for a reply to a client: never the segment's path, which only the log gets.
    pub fn public_message(&self) -> String {
        match self {
            WalError::Io { source, .. } => format!("write-ahead log: {}", source.kind()),
            WalError::Corrupt { offset, .. } => format!("a write-ahead log segment is damaged at byte {offset}"),
            WalError::Failed(cause) => format!("the WAL stopped accepting writes: {}", cause.public_message()),
            WalError::Write(source) => format!("WAL write failed: {}", source.kind()),
            other => other.to_string(),
        }
    }
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> WalError + '_ {
    move |source| WalError::Io { path: path.to_owned(), source }
}

/// Where an appended record landed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WalPosition {
    /// The record's sequence number: unique and increasing across the WAL's whole life.
    pub seq: u64,
    /// The number of the segment file holding it.
    pub segment: u64,
}

/// Settings of the WAL.
#[derive(Clone, Debug)]
pub struct WalOptions {
    /// A new segment is started once the current one reaches this size, so finished segments can be
    /// removed one by one as their spans reach blocks.
    pub segment_bytes: u64,
}

impl Default for WalOptions {
    fn default() -> Self {
        Self { segment_bytes: 64 * 1024 * 1024 }
    }
}

/// A handle to the WAL; cheap to share behind an `Arc`.
pub struct Wal {
    dir: PathBuf,
    commands: Mutex<Option<mpsc::Sender<Append>>>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    shared: Arc<Shared>,
    /// Segments that existed when the WAL was opened, oldest first: what [`Wal::replay`] reads.
    replay_segments: Vec<PathBuf>,
}

/// State the writer thread and the handle both see.
struct Shared {
    /// Size of every segment file on disk, by segment number.
    segments: Mutex<BTreeMap<u64, u64>>,
    disk_bytes: AtomicU64,
    active_segment: AtomicU64,
    failed: AtomicBool,
    /// Why the last group could not be written, until a group is written again: what `/ready` reports.
    problem: Mutex<Option<String>>,
}

struct Append {
    record: Record,
    reply: tokio::sync::oneshot::Sender<Result<WalPosition, WalError>>,
}

fn segment_path(dir: &Path, segment: u64) -> PathBuf {
    dir.join(format!("{segment:020}.wal"))
}

fn segment_number(path: &Path) -> Option<u64> {
    let name = path.file_name()?.to_str()?;
    name.strip_suffix(".wal")?.parse().ok()
}

impl Wal {
    /// Opens (creating if needed) the WAL in `dir`: trims a torn tail from the newest segment, then
    /// starts a fresh segment for appends so replayed segments are never written again.
    pub fn open(dir: &Path, options: WalOptions) -> Result<Self, WalError> {
        std::fs::create_dir_all(dir).map_err(io_error(dir))?;
        let mut found: Vec<(u64, PathBuf)> = std::fs::read_dir(dir)
            .map_err(io_error(dir))?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter_map(|path| segment_number(&path).map(|n| (n, path)))
            .collect();
        found.sort();
        let mut next_seq = 0;
        if let Some((_, newest)) = found.last() {
            next_seq = trim_torn_tail(newest)?;
        }
        let mut sizes = BTreeMap::new();
        for (number, path) in &found {
            let size = std::fs::metadata(path).map_err(io_error(path))?.len();
            sizes.insert(*number, size);
        }
        if next_seq == 0 {
            // The newest segment may have been empty; older ones still number the records.
            for (_, path) in found.iter().rev() {
                if let Some(last) = last_seq_of(path)? {
                    next_seq = last.saturating_add(1);
                    break;
                }
            }
        }
        let active = found.last().map_or(1, |(n, _)| n + 1);
        let file = create_segment(dir, active)?;
        sizes.insert(active, SEGMENT_MAGIC.len() as u64);
        let disk_bytes = sizes.values().sum();
        let shared = Arc::new(Shared {
            segments: Mutex::new(sizes),
            disk_bytes: AtomicU64::new(disk_bytes),
            active_segment: AtomicU64::new(active),
            failed: AtomicBool::new(false),
            problem: Mutex::new(None),
        });
        let (sender, receiver) = mpsc::channel();
        let writer = Writer {
            dir: dir.to_owned(),
            file,
            segment: active,
            segment_len: SEGMENT_MAGIC.len() as u64,
            next_seq,
            options,
            shared: shared.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("spanlake-wal".into())
            .spawn(move || writer.run(receiver))
            .map_err(io_error(dir))?;
        Ok(Self {
            dir: dir.to_owned(),
            commands: Mutex::new(Some(sender)),
            writer: Mutex::new(Some(thread)),
            shared,
            replay_segments: found.into_iter().map(|(_, path)| path).collect(),
        })
    }

    /// Every record that was in the WAL when it was opened, oldest first, one segment in memory at a time.
    pub fn replay(&self) -> impl Iterator<Item = Result<(WalPosition, Record), WalError>> + '_ {
        self.replay_segments.iter().flat_map(|path| match read_segment(path) {
            Ok(records) => records.into_iter().map(Ok).collect::<Vec<_>>(),
            Err(error) => vec![Err(error)],
        })
    }

    /// Appends a record and returns once it is on disk (written and `fdatasync`ed).
    pub async fn append(&self, record: Record) -> Result<WalPosition, WalError> {
        let bytes = record::body_bytes(&record);
        if bytes > record::MAX_BODY_BYTES {
            return Err(WalError::TooLarge { bytes });
        }
        let (reply, answer) = tokio::sync::oneshot::channel();
        {
            let commands = self.commands.lock().map_err(|_| WalError::Closed)?;
            let sender = commands.as_ref().ok_or(WalError::Closed)?;
            sender.send(Append { record, reply }).map_err(|_| WalError::Closed)?;
        }
        answer.await.map_err(|_| WalError::Closed)?
    }

    /// Why appends are failing right now (the last group could not be written and none has been since),
    /// in words fit for a probe's reply (no paths); `None` while the WAL works. A WAL that cannot write
    /// makes the server unready, so an orchestrator stops sending it spans it cannot acknowledge.
    pub fn problem(&self) -> Option<String> {
        if self.shared.failed.load(Ordering::Relaxed) {
            return Some(WalError::Poisoned.to_string());
        }
        self.shared.problem.lock().ok().and_then(|problem| problem.clone())
    }

    /// Bytes of all segment files: what the WAL disk limit is checked against.
    pub fn disk_bytes(&self) -> u64 {
        self.shared.disk_bytes.load(Ordering::Relaxed)
    }

    /// The segment appends currently go to; it is never removed.
    pub fn active_segment(&self) -> u64 {
        self.shared.active_segment.load(Ordering::Acquire)
    }

    /// Deletes every segment numbered below `segment` (the active one excepted): the caller promises
    /// that all their spans are committed in blocks.
    pub fn remove_segments_before(&self, segment: u64) -> Result<usize, WalError> {
        let active = self.active_segment();
        let mut segments = self.shared.segments.lock().map_err(|_| WalError::Closed)?;
        let doomed: Vec<(u64, u64)> =
            segments.range(..segment.min(active)).map(|(number, size)| (*number, *size)).collect();
        for (number, size) in &doomed {
            let path = segment_path(&self.dir, *number);
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => return Err(WalError::Io { path, source }),
            }
            segments.remove(number);
            self.shared.disk_bytes.fetch_sub(*size, Ordering::Relaxed);
        }
        Ok(doomed.len())
    }

    /// Stops the writer thread after it has answered every append already sent.
    pub fn close(&self) {
        if let Ok(mut commands) = self.commands.lock() {
            commands.take();
        }
        let thread = self.writer.lock().ok().and_then(|mut writer| writer.take());
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }
}

impl Drop for Wal {
    fn drop(&mut self) {
        self.close();
    }
}

/// The writer thread's state: the open segment and the next sequence number.
struct Writer {
    dir: PathBuf,
    file: File,
    segment: u64,
    segment_len: u64,
    next_seq: u64,
    options: WalOptions,
    shared: Arc<Shared>,
}

impl Writer {
    fn run(mut self, commands: mpsc::Receiver<Append>) {
        let mut group: Vec<Append> = Vec::new();
        let mut buffer: Vec<u8> = Vec::new();
        loop {
            let first = match commands.recv_timeout(PROBE_INTERVAL) {
                Ok(first) => first,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    self.probe();
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            };
            group.push(first);
            // Group commit: everything that queued up while the previous sync ran shares the next one.
            let mut group_bytes = 0;
            while group_bytes < MAX_GROUP_BYTES {
                match commands.try_recv() {
                    Ok(append) => {
                        group_bytes += record::body_bytes(&append.record);
                        group.push(append);
                    }
                    Err(_) => break,
                }
            }
            let outcome = self.write_group(&group, &mut buffer).map_err(Arc::new);
            if let Ok(mut problem) = self.shared.problem.lock() {
                *problem = outcome.as_ref().err().map(|error| error.public_message());
            }
            for (index, append) in group.drain(..).enumerate() {
                let answer = match &outcome {
                    Ok(first_seq) => Ok(WalPosition { seq: first_seq + index as u64, segment: self.segment }),
                    Err(cause) => Err(WalError::Failed(Arc::clone(cause))),
                };
                let _ = append.reply.send(answer);
            }
        }
        let _ = self.file.sync_all();
    }

    /// With a problem reported and no appends coming (an unready server gets no traffic), checks whether
    /// the WAL can write again: the rotation it owes, then a sync. Success clears the problem, so the
    /// server becomes ready again without a restart.
    fn probe(&mut self) {
        let reported = self.shared.problem.lock().is_ok_and(|problem| problem.is_some());
        if !reported || self.shared.failed.load(Ordering::Relaxed) {
            return;
        }
        let healthy = (self.segment_len < self.options.segment_bytes || self.rotate().is_ok())
            && testing::injected_failure(&self.dir, testing::Operation::WriteGroup)
                .map_or_else(|| self.file.sync_data(), Err)
                .is_ok();
        if healthy && let Ok(mut problem) = self.shared.problem.lock() {
            tracing::info!("the WAL writes again");
            *problem = None;
        }
    }

    /// Writes and syncs one group; returns the sequence number of its first record.
    fn write_group(&mut self, group: &[Append], buffer: &mut Vec<u8>) -> Result<u64, WalError> {
        if self.shared.failed.load(Ordering::Relaxed) {
            return Err(WalError::Poisoned);
        }
        if self.segment_len >= self.options.segment_bytes {
            // The segment size is a target, not a limit: if the next segment cannot be made, the group
            // still goes into this one (a full disk fails that write too, and says so).
            if let Err(error) = self.rotate() {
                tracing::warn!(%error, segment = self.segment, "WAL segment rotation failed; appending to the current segment");
            }
        }
        buffer.clear();
        let first_seq = self.next_seq;
        for (index, append) in group.iter().enumerate() {
            record::encode(first_seq + index as u64, &append.record, buffer);
        }
        let written = testing::injected_failure(&self.dir, testing::Operation::WriteGroup)
            .map_or_else(|| self.file.write_all(buffer).and_then(|()| self.file.sync_data()), Err);
        testing::injected_sync_delay(&self.dir);
        if let Err(error) = written {
            // Cut the partial write off so later records are not hidden behind garbage; if even that
            // fails, refuse further appends rather than acknowledge records a replay could not reach.
            let restored = self.file.set_len(self.segment_len).and_then(|()| self.file.sync_data());
            if restored.is_err() {
                self.shared.failed.store(true, Ordering::Relaxed);
            }
            tracing::error!(%error, segment = self.segment, "WAL write failed");
            return Err(WalError::Write(error));
        }
        self.next_seq += group.len() as u64;
        self.segment_len += buffer.len() as u64;
        if let Ok(mut segments) = self.shared.segments.lock() {
            segments.insert(self.segment, self.segment_len);
        }
        self.shared.disk_bytes.fetch_add(buffer.len() as u64, Ordering::Relaxed);
        Ok(first_seq)
    }

    fn rotate(&mut self) -> Result<(), WalError> {
        let next = self.segment + 1;
        let file = create_segment(&self.dir, next)?;
        self.file = file;
        self.segment = next;
        self.segment_len = SEGMENT_MAGIC.len() as u64;
        if let Ok(mut segments) = self.shared.segments.lock() {
            segments.insert(next, self.segment_len);
        }
        self.shared.disk_bytes.fetch_add(self.segment_len, Ordering::Relaxed);
        self.shared.active_segment.store(next, Ordering::Release);
        Ok(())
    }
}

/// Creates a segment file with its magic bytes, synced together with its directory entry. A file of that
/// number can only be the leftover of an earlier attempt that failed half-way (segment numbers only grow,
/// and no record is written to a segment before its creation succeeded), so it is replaced, not an
/// error: otherwise one failed rotation would fail every later one with "File exists". A failed attempt
/// also removes what it created, where it can.
fn create_segment(dir: &Path, number: u64) -> Result<File, WalError> {
    let path = segment_path(dir, number);
    match std::fs::remove_file(&path) {
        Ok(()) => tracing::info!(path = %path.display(), "removed the leftover of a failed WAL segment creation"),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => return Err(WalError::Io { path, source: error }),
    }
    let mut file = OpenOptions::new().create_new(true).append(true).open(&path).map_err(io_error(&path))?;
    let written = testing::injected_failure(dir, testing::Operation::CreateSegment)
        .map_or_else(|| file.write_all(SEGMENT_MAGIC).and_then(|()| file.sync_all()), Err)
        .and_then(|()| File::open(dir).and_then(|d| d.sync_all()));
    if let Err(source) = written {
        if let Err(error) = std::fs::remove_file(&path) {
            tracing::warn!(path = %path.display(), %error, "could not remove a WAL segment whose creation failed");
        }
        return Err(WalError::Io { path, source });
    }
    Ok(file)
}

fn read_file(path: &Path) -> Result<Vec<u8>, WalError> {
    let mut bytes = Vec::new();
    File::open(path).and_then(|mut f| f.read_to_end(&mut bytes)).map_err(io_error(path))?;
    record::check_magic(&bytes, path)?;
    Ok(bytes)
}

/// Reads every record of a segment; any damage is an error (only the newest segment may have a torn
/// tail, and [`Wal::open`] trims that before replay).
fn read_segment(path: &Path) -> Result<Vec<(WalPosition, Record)>, WalError> {
    let segment = segment_number(path).unwrap_or(0);
    let scan = record::scan_segment(&read_file(path)?);
    let (offset, source) = match scan.end {
        SegmentEnd::Clean => {
            let records = scan.records.into_iter();
            return Ok(records.map(|found| (WalPosition { seq: found.seq, segment }, found.record)).collect());
        }
        SegmentEnd::TornTail { offset, problem: FrameProblem::Truncated } => (offset, Damage::CutShort),
        SegmentEnd::TornTail { offset, problem: FrameProblem::Corrupt(damage) } => (offset, damage),
        SegmentEnd::Damaged { offset, damage, .. } => (offset, damage),
    };
    Err(WalError::Corrupt { path: path.to_owned(), offset: offset as u64, source })
}

/// Truncates the segment after its last intact record (a crash can leave half a record, never
/// acknowledged); returns the sequence number after that record, or 0 when the segment has none.
/// Only damage that runs to the end of the file is a torn tail: a bad record followed by an intact one
/// is damage to acknowledged data, and opening refuses with the file and offset named rather than cut
/// off the records after it.
fn trim_torn_tail(path: &Path) -> Result<u64, WalError> {
    let bytes = read_file(path)?;
    let scan = record::scan_segment(&bytes);
    let next_seq = scan.records.last().map_or(0, |last| last.seq.saturating_add(1));
    match scan.end {
        SegmentEnd::Clean => {}
        SegmentEnd::Damaged { offset, damage, next_intact } => {
            tracing::error!(
                path = %path.display(),
                offset,
                next_intact_record_at = next_intact,
                source = %damage,
                "WAL segment is damaged before records that follow it; refusing to start rather than drop them"
            );
            return Err(WalError::Corrupt { path: path.to_owned(), offset: offset as u64, source: damage });
        }
        SegmentEnd::TornTail { offset, problem } => {
            tracing::warn!(
                path = %path.display(),
                offset,
                dropped_bytes = bytes.len() - offset,
                ?problem,
                "WAL ends in an incomplete record (a write interrupted by a crash); it was never acknowledged and is dropped"
            );
            let file = OpenOptions::new().write(true).open(path).map_err(io_error(path))?;
            file.set_len(offset as u64).and_then(|()| file.sync_all()).map_err(io_error(path))?;
        }
    }
    Ok(next_seq)
}

fn last_seq_of(path: &Path) -> Result<Option<u64>, WalError> {
    Ok(read_segment(path)?.last().map(|(position, _)| position.seq))
}

#[cfg(test)]
mod tests;
