//! The per-tenant compactor lease: one compactor at a time per tenant, across replicas, with expiry so a
//! dead compactor's lease is taken over.
//!
//! `LocalFileSystem` does not implement `PutMode::Update`, so the lease is a sequence of objects
//! `<tenant>/compactor/lease-<epoch>` written only with `PutMode::Create`, which every backend (local
//! folder, S3, memory) honours with exactly one winner. The object with the highest epoch is the lease.
//! Taking it (when it is expired or already ours) means creating the next epoch; renewing is the same
//! step, so a holder that lost the lease finds out because its create fails or a higher epoch is not
//! its own.

use object_store::path::Path;
use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload};
use serde::{Deserialize, Serialize};

use futures::TryStreamExt;

use super::CompactionError;
use crate::ids::TenantId;
use crate::storage::Storage;

const LEASE_FOLDER: &str = "compactor";
const LEASE_PREFIX: &str = "lease-";

/// What a lease object says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRecord {
    /// The compactor instance holding it (random per process).
    pub holder: String,
    pub epoch: u64,
    /// Unix ms after which anyone may take the lease over.
    pub expires_unix_ms: u64,
}

/// What an attempt to take or renew the lease found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LeaseState {
    /// This compactor holds the lease until the given unix ms, under this epoch (a commit records it).
    Held { expires_unix_ms: u64, epoch: u64 },
    /// Another compactor holds an unexpired lease.
    HeldElsewhere { holder: String, expires_unix_ms: u64 },
}

/// One compactor's handle on one tenant's lease.
#[derive(Debug)]
pub struct Lease {
    storage: Storage,
    tenant: TenantId,
    holder: String,
    ttl_ms: u64,
    /// One take or renewal at a time: two at once by the same holder would race for the same epoch, and
    /// the loser would think the lease taken over.
    taking: tokio::sync::Mutex<()>,
}

impl Lease {
    /// A handle for `holder` (a name unique to this compactor instance) with the given time to live.
    pub fn new(storage: Storage, tenant: TenantId, holder: String, ttl: std::time::Duration) -> Self {
        Self { storage, tenant, holder, ttl_ms: ttl.as_millis() as u64, taking: tokio::sync::Mutex::new(()) }
    }

    fn folder(&self) -> Path {
        Path::from_iter([self.tenant.as_str(), LEASE_FOLDER])
    }

    fn path(&self, epoch: u64) -> Path {
        self.folder().join(format!("{LEASE_PREFIX}{epoch:020}"))
    }

    /// The current lease (highest epoch) and every older epoch still stored.
    async fn current(&self) -> Result<(Option<LeaseRecord>, Vec<u64>), CompactionError> {
        let store = self.storage.object_store();
        let folder = self.folder();
        let objects: Vec<_> = store.list(Some(&folder)).try_collect().await?;
        let mut epochs: Vec<u64> = objects
            .iter()
            .filter_map(|object| object.location.filename()?.strip_prefix(LEASE_PREFIX)?.parse().ok())
            .collect();
        epochs.sort_unstable();
        let Some(&latest) = epochs.last() else { return Ok((None, Vec::new())) };
        let bytes = match store.get(&self.path(latest)).await {
            Ok(result) => result.bytes().await?,
            // Deleted by a newer holder between the LIST and the GET: a newer epoch exists.
            Err(object_store::Error::NotFound { .. }) => {
                return Err(CompactionError::LeaseLost("the lease changed while it was read".into()));
            }
            Err(error) => return Err(error.into()),
        };
        let record: LeaseRecord = serde_json::from_slice(&bytes)
            .map_err(|source| CompactionError::InvalidLease { tenant: self.tenant.clone(), source })?;
        epochs.pop();
        Ok((Some(record), epochs))
    }

    /// Writes the epoch `record` names if nobody has; whether it was this call that wrote it.
    async fn create_epoch(&self, record: &LeaseRecord) -> Result<bool, CompactionError> {
        let create = PutOptions { mode: PutMode::Create, ..Default::default() };
        let body = PutPayload::from(serde_json::to_vec(record).unwrap_or_default());
        match self.storage.object_store().put_opts(&self.path(record.epoch), body, create).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
            Err(error) => Err(error.into()),
        }
    }

    /// Takes the lease if it is free, expired or already ours, extending it to `now + ttl`.
    pub async fn acquire(&self, now_unix_ms: u64) -> Result<LeaseState, CompactionError> {
        let _taking = self.taking.lock().await;
        let (current, older) = match self.current().await {
            Ok(found) => found,
            Err(CompactionError::LeaseLost(_)) => self.current().await?,
            Err(error) => return Err(error),
        };
        let next_epoch = match &current {
            Some(record) if record.holder != self.holder && record.expires_unix_ms > now_unix_ms => {
                return Ok(LeaseState::HeldElsewhere {
                    holder: record.holder.clone(),
                    expires_unix_ms: record.expires_unix_ms,
                });
            }
            Some(record) => record.epoch + 1,
            None => 1,
        };
        let record =
            LeaseRecord { holder: self.holder.clone(), epoch: next_epoch, expires_unix_ms: now_unix_ms + self.ttl_ms };
        if !self.create_epoch(&record).await? {
            return Err(CompactionError::LeaseLost(format!(
                "another compactor took epoch {next_epoch} of tenant {}'s lease first",
                self.tenant
            )));
        }
        // Older epochs are history; removing them keeps the LIST short. Best effort.
        let store = self.storage.object_store();
        for epoch in older.into_iter().chain(current.map(|record| record.epoch)) {
            let _ = store.delete(&self.path(epoch)).await;
        }
        Ok(LeaseState::Held { expires_unix_ms: record.expires_unix_ms, epoch: record.epoch })
    }

    /// Renews a lease this compactor holds, returning its new epoch; an error when another compactor has
    /// taken it meanwhile.
    pub async fn renew(&self, now_unix_ms: u64) -> Result<u64, CompactionError> {
        match self.acquire(now_unix_ms).await? {
            LeaseState::Held { epoch, .. } => Ok(epoch),
            LeaseState::HeldElsewhere { holder, .. } => {
                Err(CompactionError::LeaseLost(format!("compactor {holder} took tenant {}'s lease over", self.tenant)))
            }
        }
    }

    /// Gives the lease up at once (an expired epoch), so another compactor need not wait for the expiry.
    pub async fn release(&self, now_unix_ms: u64) -> Result<(), CompactionError> {
        let _taking = self.taking.lock().await;
        let (Some(current), _) = self.current().await? else { return Ok(()) };
        if current.holder != self.holder {
            return Ok(());
        }
        let record =
            LeaseRecord { holder: self.holder.clone(), epoch: current.epoch + 1, expires_unix_ms: now_unix_ms };
        let create = PutOptions { mode: PutMode::Create, ..Default::default() };
        let body = PutPayload::from(serde_json::to_vec(&record).unwrap_or_default());
        match self.storage.object_store().put_opts(&self.path(record.epoch), body, create).await {
            Ok(_) | Err(object_store::Error::AlreadyExists { .. }) => Ok(()),
            Err(error) => Err(error.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn lease(storage: &Storage, holder: &str) -> Lease {
        Lease::new(storage.clone(), TenantId::new("t").unwrap(), holder.into(), Duration::from_secs(10))
    }

    #[tokio::test]
    async fn one_holder_at_a_time_and_an_expired_lease_is_taken_over() {
        let storage = Storage::open("memory://").unwrap();
        let (a, b) = (lease(&storage, "a"), lease(&storage, "b"));
        assert_eq!(a.acquire(1_000).await.unwrap(), LeaseState::Held { expires_unix_ms: 11_000, epoch: 1 });
        assert_eq!(
            b.acquire(5_000).await.unwrap(),
            LeaseState::HeldElsewhere { holder: "a".into(), expires_unix_ms: 11_000 }
        );
        assert_eq!(a.renew(6_000).await.unwrap(), 2, "the holder renews, under the next epoch");
        assert!(matches!(b.acquire(15_999).await.unwrap(), LeaseState::HeldElsewhere { .. }));
        // a stops renewing (it died); once expired, b takes over and a finds out on its next renewal.
        assert_eq!(b.acquire(16_001).await.unwrap(), LeaseState::Held { expires_unix_ms: 26_001, epoch: 3 });
        let lost = a.renew(16_002).await.unwrap_err();
        assert!(matches!(lost, CompactionError::LeaseLost(_)), "{lost}");
        b.release(17_000).await.unwrap();
        assert!(matches!(a.acquire(17_001).await.unwrap(), LeaseState::Held { .. }), "released: free at once");
        let leases = storage.object_store().list(Some(&a.folder())).try_collect::<Vec<_>>().await.unwrap();
        assert!(leases.len() <= 2, "old epochs are removed: {leases:?}");
    }

    #[tokio::test]
    async fn of_two_compactors_racing_for_a_free_lease_exactly_one_wins() {
        let storage = Storage::open("memory://").unwrap();
        for round in 0..20u64 {
            let now = round * 100_000;
            let (a, b) = (lease(&storage, &format!("a{round}")), lease(&storage, &format!("b{round}")));
            let (ra, rb) = tokio::join!(a.acquire(now), b.acquire(now));
            let won = [ra, rb].into_iter().filter(|r| matches!(r, Ok(LeaseState::Held { .. }))).count();
            assert_eq!(won, 1, "round {round}");
        }
    }
}
