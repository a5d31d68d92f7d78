//! Values a running server reads from files and reads again when the files change (the credentials
//! file, the TLS certificate and key): the value in force, replaced whole, and the task that watches its
//! files.
//!
//! Owns the watching and the swap only; what a file means belongs to its reader (`auth`, `api`'s TLS).
//! Calls `telemetry` for the reload counters.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How often watched files are read to see whether they changed.
pub const INTERVAL: Duration = Duration::from_secs(1);

/// The value in force; readers take it whole (an `Arc`), so a reload never shows them half of one.
pub struct Reloadable<T>(Arc<RwLock<Arc<T>>>);

impl<T> Clone for Reloadable<T> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<T> Reloadable<T> {
    /// The first value, read at start-up.
    pub fn new(value: T) -> Self {
        Self(Arc::new(RwLock::new(Arc::new(value))))
    }

    /// The value in force now.
    pub fn get(&self) -> Arc<T> {
        match self.0.read() {
            Ok(value) => value.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn set(&self, value: T) {
        let mut slot = match self.0.write() {
            Ok(slot) => slot,
            Err(poisoned) => poisoned.into_inner(),
        };
        *slot = Arc::new(value);
    }
}

/// Reads `paths` every [`INTERVAL`] until `stop`. When their contents change (and all can be read: a
/// file missing for a moment while it is replaced is not a change yet), `load` builds the new value: one
/// that loads replaces `value`, one that does not is logged with its reason and the value in force stays.
/// Both are counted in `metric` (label `outcome`: `loaded`, `refused`). `what` names the files in the log.
pub fn spawn_watch<T, E>(
    value: Reloadable<T>,
    paths: Vec<PathBuf>,
    what: &'static str,
    metric: &'static str,
    load: impl Fn() -> Result<T, E> + Send + 'static,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<()>
where
    T: Send + Sync + 'static,
    E: std::error::Error,
{
    tokio::spawn(async move {
        let mut last = read_all(&paths).await;
        loop {
            tokio::select! {
                _ = stop.wait_for(|stopped| *stopped) => return,
                () = tokio::time::sleep(INTERVAL) => {}
            }
            let current = read_all(&paths).await;
            if current.is_none() || current == last {
                continue;
            }
            last = current;
            match load() {
                Ok(loaded) => {
                    tracing::info!("{what} changed: reloaded");
                    metrics::counter!(metric, "outcome" => "loaded").increment(1);
                    value.set(loaded);
                }
                Err(error) => {
                    let error = crate::telemetry::chain(&error);
                    tracing::error!(%error, "{what} changed but cannot be used; the one in force stays");
                    metrics::counter!(metric, "outcome" => "refused").increment(1);
                }
            }
        }
    })
}

async fn read_all(paths: &[PathBuf]) -> Option<Vec<Vec<u8>>> {
    let mut contents = Vec::with_capacity(paths.len());
    for path in paths {
        contents.push(tokio::fs::read(path).await.ok()?);
    }
    Some(contents)
}
