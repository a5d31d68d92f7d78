//! A test hook: holds an ingester's WAL replay until the test lets it go, so a test can look at a
//! server in the middle of its start-up (query port open, WAL not yet replayed) for as long as it likes
//! instead of racing a fast replay. Holds are keyed by WAL folder, so tests running side by side in
//! one process never hold each other's servers; with no hold set, a replay only looks at an empty list.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

/// Replays held right now, by WAL folder.
static HOLDS: Mutex<Vec<(PathBuf, Arc<Hold>)>> = Mutex::new(Vec::new());

struct Hold {
    /// Becomes true when a replay of the folder is waiting at the hold.
    reached: watch::Sender<bool>,
    /// Becomes true when the test lets the replay go.
    released: watch::Sender<bool>,
}

/// A hold on the replay of one WAL folder; dropping it lets the replay go.
#[must_use = "dropping the hold releases the replay at once"]
pub struct ReplayHold {
    wal_dir: PathBuf,
    hold: Arc<Hold>,
}

/// Holds the next replay of the WAL in `wal_dir` (as `IngestOptions::wal_dir` names it) before it reads
/// a record, until the returned hold is released or dropped.
pub fn hold_replay(wal_dir: &Path) -> ReplayHold {
    let hold = Arc::new(Hold { reached: watch::channel(false).0, released: watch::channel(false).0 });
    HOLDS.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push((wal_dir.to_owned(), hold.clone()));
    ReplayHold { wal_dir: wal_dir.to_owned(), hold }
}

impl ReplayHold {
    /// Waits until a replay of the folder is held here.
    pub async fn reached(&self) {
        let _ = self.hold.reached.subscribe().wait_for(|reached| *reached).await;
    }

    /// Lets the replay go.
    pub fn release(self) {}
}

impl Drop for ReplayHold {
    fn drop(&mut self) {
        HOLDS.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).retain(|(dir, _)| *dir != self.wal_dir);
        self.hold.released.send_replace(true);
    }
}

/// Waits here while a test holds the replay of `wal_dir`.
pub(super) async fn wait_if_held(wal_dir: &Path) {
    let hold = {
        let holds = HOLDS.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        holds.iter().find(|(dir, _)| dir == wal_dir).map(|(_, hold)| hold.clone())
    };
    if let Some(hold) = hold {
        let mut released = hold.released.subscribe();
        hold.reached.send_replace(true);
        let _ = released.wait_for(|released| *released).await;
    }
}
