//! A test hook: makes the next segment creations (after the file was created) or group writes of one
//! WAL folder fail, as a full or failing disk would (the failures a real disk gives cannot be caused on
//! demand, least of all by a test running as root). Keyed by WAL folder, so tests side by side in one
//! process never touch each other's WALs; with nothing injected, the WAL only looks at an empty list.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Where a failure is injected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    /// Writing a new segment's header, after its file was created.
    CreateSegment,
    /// Writing and syncing a group of records.
    WriteGroup,
}

/// Failures still to inject, by WAL folder and operation.
static FAILURES: Mutex<Vec<(PathBuf, Operation, usize)>> = Mutex::new(Vec::new());

/// Makes the next `count` operations of kind `operation` in `wal_dir` fail.
pub fn inject_failures(wal_dir: &Path, operation: Operation, count: usize) {
    let mut failures = FAILURES.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    failures.retain(|(dir, op, _)| dir != wal_dir || *op != operation);
    failures.push((wal_dir.to_owned(), operation, count));
}

/// Slow syncs, by WAL folder: how long each group write of that folder takes at least.
static DELAYS: Mutex<Vec<(PathBuf, std::time::Duration)>> = Mutex::new(Vec::new());

/// Makes every later group write in `wal_dir` take at least `delay` after its data is synced, as a slow
/// disk would: the spans are durable, their acknowledgement late (a client's deadline can pass first).
pub fn inject_sync_delay(wal_dir: &Path, delay: std::time::Duration) {
    let mut delays = DELAYS.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    delays.retain(|(dir, _)| dir != wal_dir);
    delays.push((wal_dir.to_owned(), delay));
}

/// Waits out the sync delay injected for `dir`, if any.
pub(super) fn injected_sync_delay(dir: &Path) {
    let delay = {
        let delays = DELAYS.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        delays.iter().find(|(wal_dir, _)| wal_dir == dir).map(|(_, delay)| *delay)
    };
    if let Some(delay) = delay {
        std::thread::sleep(delay);
    }
}

/// The failure to give the `operation` under way in `dir`, if one is injected.
pub(super) fn injected_failure(dir: &Path, operation: Operation) -> Option<std::io::Error> {
    let mut failures = FAILURES.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let (_, _, left) =
        failures.iter_mut().find(|(wal_dir, op, left)| wal_dir == dir && *op == operation && *left > 0)?;
    *left -= 1;
    Some(std::io::Error::new(std::io::ErrorKind::StorageFull, "injected by a test: no space left"))
}
