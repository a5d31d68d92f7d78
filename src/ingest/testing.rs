//! A test hook: holds an ingester's WAL replay until the test lets it go, so a test can look at a
//! server in the middle of its start-up (query port open, WAL not yet replayed) for as long as it likes
//! instead of racing a fast replay. Holds are keyed by WAL folder, so tests running side by side in
//! one process never hold each other's servers; with no hold set, a replay only looks at an empty list.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

/// Where an ingester can be held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Point {
    /// Before the WAL replay reads its first record.
    Replay,
    /// After a push's WAL append, before its spans join the buffer.
    Registration,
}

/// Holds set right now, by WAL folder and point.
static HOLDS: Mutex<Vec<(PathBuf, Point, Arc<Hold>)>> = Mutex::new(Vec::new());

struct Hold {
    /// Becomes true when a replay of the folder is waiting at the hold.
    reached: watch::Sender<bool>,
    /// Becomes true when the test lets the replay go.
    released: watch::Sender<bool>,
}

/// A hold on one point of the ingester of one WAL folder; dropping it lets the ingester go.
#[must_use = "dropping the hold releases the ingester at once"]
pub struct ReplayHold {
    wal_dir: PathBuf,
    point: Point,
    hold: Arc<Hold>,
}

/// Holds the next replay of the WAL in `wal_dir` (as `IngestOptions::wal_dir` names it) before it reads
/// a record, until the returned hold is released or dropped.
pub fn hold_replay(wal_dir: &Path) -> ReplayHold {
    hold(wal_dir, Point::Replay)
}

/// Holds pushes into the ingester of `wal_dir` after their WAL append, before their spans join the
/// buffer, until the returned hold is released or dropped.
pub fn hold_registration(wal_dir: &Path) -> ReplayHold {
    hold(wal_dir, Point::Registration)
}

fn hold(wal_dir: &Path, point: Point) -> ReplayHold {
    let hold = Arc::new(Hold { reached: watch::channel(false).0, released: watch::channel(false).0 });
    HOLDS.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push((wal_dir.to_owned(), point, hold.clone()));
    ReplayHold { wal_dir: wal_dir.to_owned(), point, hold }
}

impl ReplayHold {
    /// Waits until the ingester is held here.
    pub async fn reached(&self) {
        let _ = self.hold.reached.subscribe().wait_for(|reached| *reached).await;
    }

    /// Lets the replay go.
    pub fn release(self) {}
}

impl Drop for ReplayHold {
    fn drop(&mut self) {
        HOLDS
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .retain(|(dir, point, _)| *dir != self.wal_dir || *point != self.point);
        self.hold.released.send_replace(true);
    }
}

/// Waits here while a test holds the ingester of `wal_dir` at `point`.
pub(super) async fn wait_if_held(wal_dir: &Path, point: Point) {
    let hold = {
        let mut holds = HOLDS.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        // A hold stops one pass only: the first to reach it; the ones after go by.
        let index = holds.iter().position(|(dir, at, _)| dir == wal_dir && *at == point);
        index.map(|index| holds.remove(index).2)
    };
    if let Some(hold) = hold {
        let mut released = hold.released.subscribe();
        hold.reached.send_replace(true);
        let _ = released.wait_for(|released| *released).await;
    }
}
