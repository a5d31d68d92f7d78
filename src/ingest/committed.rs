//! The resend window: span keys of blocks this ingester committed recently, per tenant, so a client
//! resending a request whose acknowledgement it lost (its deadline passed while the server worked, or
//! the server was killed) is not stored twice when the first copy already left the buffers for a block.
//!
//! Two generations of exact keys (not a bloom filter: a false positive would drop a span never stored):
//! new keys go into the current one; once it has been filling for half the window, or holds half the
//! byte budget, it becomes the previous one and the old previous one is dropped. A key is therefore
//! remembered for at least half the window (sooner forgotten only when keys arrive faster than half the
//! budget per half window), and the memory held stays within the budget (one block whose keys alone take
//! more than half of it is still remembered whole).
//!
//! Plain data, kept inside the ingester's buffers and changed under their lock; no I/O here (the
//! start-up refill from recent blocks reads the store in `ingest::refill` and hands the keys in).

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use super::buffer::{KeyHasher, SpanKey};
use crate::ids::TenantId;

/// Memory one slot of a hash set of keys takes: the key and its control byte.
const SLOT_BYTES: usize = std::mem::size_of::<SpanKey>() + 1;

/// Memory a hash set able to hold `capacity` keys allocates (its table is at most 7/8 full).
fn table_bytes(capacity: usize) -> usize {
    capacity * 8 / 7 * SLOT_BYTES
}

/// One generation's keys of one tenant.
type KeySet = HashSet<SpanKey, KeyHasher>;

/// Recently committed span keys of every tenant.
pub struct CommittedKeys {
    window: Duration,
    max_bytes: usize,
    current: HashMap<TenantId, KeySet>,
    previous: HashMap<TenantId, KeySet>,
    /// When `current` began filling.
    since: Instant,
}

/// Memory the sets of one generation have allocated.
fn generation_bytes(generation: &HashMap<TenantId, KeySet>) -> usize {
    generation.values().map(|set| table_bytes(set.capacity())).sum()
}

impl Default for CommittedKeys {
    /// Off: remembers nothing.
    fn default() -> Self {
        Self::new(Duration::ZERO, 0)
    }
}

impl CommittedKeys {
    /// A window remembering keys for up to `window`, in at most about `max_bytes` of memory. Either at
    /// zero turns it off.
    pub fn new(window: Duration, max_bytes: usize) -> Self {
        Self { window, max_bytes, current: HashMap::new(), previous: HashMap::new(), since: Instant::now() }
    }

    fn is_off(&self) -> bool {
        self.window.is_zero() || self.max_bytes == 0
    }

    /// Remembers the keys of a block just committed for `tenant`.
    pub fn remember(&mut self, tenant: &TenantId, keys: Vec<SpanKey>) {
        if self.is_off() || keys.is_empty() {
            return;
        }
        self.age();
        // Rotate first when the keys could take the current generation past half the budget: a hash
        // set grows by reallocating to at most twice what it must hold.
        let (len, capacity) = self.current.get(tenant).map_or((0, 0), |set| (set.len(), set.capacity()));
        let worst_growth = if len + keys.len() > capacity {
            table_bytes(2 * (len + keys.len())).saturating_sub(table_bytes(capacity))
        } else {
            0
        };
        let mut current_bytes = generation_bytes(&self.current);
        if current_bytes > 0 && current_bytes + worst_growth > self.max_bytes / 2 {
            self.rotate();
            current_bytes = 0;
        }
        let (previous, half_budget) = (&self.previous, self.max_bytes / 2);
        let set = self.current.entry(tenant.clone()).or_insert_with(|| {
            // Sized for what the tenant put into the last generation (as far as the budget allows), so
            // it fills without rehashing a large table under the ingester's lock.
            let room = half_budget.saturating_sub(current_bytes) / table_bytes(1).max(1);
            let expected = previous.get(tenant).map_or(0, KeySet::len);
            KeySet::with_capacity_and_hasher(expected.min(room).max(keys.len()), KeyHasher::default())
        });
        set.extend(keys);
    }

    /// The tenant's key sets (none, one or both generations): a key is in the window when one of them
    /// holds it.
    pub fn sets_of(&self, tenant: &TenantId) -> Vec<&KeySet> {
        [self.current.get(tenant), self.previous.get(tenant)].into_iter().flatten().collect()
    }

    /// True when `tenant` committed a span with this key within the window.
    #[cfg(test)]
    fn contains(&self, tenant: &TenantId, key: &SpanKey) -> bool {
        self.sets_of(tenant).iter().any(|set| set.contains(key))
    }

    /// Drops the older generation once the current one has been filling for half the window; called on
    /// every change and by the flusher's periodic tick, so an idle server lets go of its keys too.
    pub fn age(&mut self) {
        if !self.is_off() && self.since.elapsed() >= self.window / 2 {
            self.rotate();
        }
    }

    fn rotate(&mut self) {
        self.previous = std::mem::take(&mut self.current);
        self.since = Instant::now();
    }

    /// How many keys fit before the current generation could pass half the budget: what the start-up
    /// refill reads at most.
    pub fn room(&self) -> usize {
        if self.is_off() {
            return 0;
        }
        (self.max_bytes / 2).saturating_sub(generation_bytes(&self.current)) / table_bytes(2)
    }

    /// Keys remembered and the memory they hold, for the metrics.
    pub fn size(&self) -> (usize, usize) {
        let keys = self.current.values().chain(self.previous.values()).map(KeySet::len).sum();
        (keys, generation_bytes(&self.current) + generation_bytes(&self.previous))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(range: std::ops::Range<u64>) -> Vec<SpanKey> {
        range.map(|i| (u128::from(i) << 64 | 7, i)).collect()
    }

    #[test]
    fn a_key_is_remembered_for_its_tenant_only() {
        let (a, b) = (TenantId::new("a").unwrap(), TenantId::new("b").unwrap());
        let mut window = CommittedKeys::new(Duration::from_secs(600), 1 << 30);
        assert!(window.sets_of(&a).is_empty());
        window.remember(&a, keys(0..100));
        assert!(keys(0..100).iter().all(|key| window.contains(&a, key)));
        assert!(!window.contains(&a, &(0, 100)));
        assert!(!window.contains(&b, &keys(0..1)[0]), "tenants do not share keys");
        assert!(window.sets_of(&b).is_empty());
        assert_eq!(window.size().0, 100);
    }

    #[test]
    fn keys_outlive_one_rotation_and_not_two() {
        let tenant = TenantId::single_tenant();
        let mut window = CommittedKeys::new(Duration::from_millis(40), 1 << 30);
        window.remember(&tenant, keys(0..10));
        let first = Instant::now();
        // Polled, not slept blindly: the first rotation happens once 20 ms have passed.
        while first.elapsed() < Duration::from_millis(20) {
            std::thread::sleep(Duration::from_millis(2));
        }
        window.age();
        assert!(window.contains(&tenant, &keys(0..1)[0]), "one rotation keeps the older generation");
        let second = Instant::now();
        while second.elapsed() < Duration::from_millis(20) {
            std::thread::sleep(Duration::from_millis(2));
        }
        window.age();
        assert!(!window.contains(&tenant, &keys(0..1)[0]), "the second rotation forgets it");
        assert!(window.sets_of(&tenant).is_empty(), "a tenant with no keys left holds no state");
        assert_eq!(window.size(), (0, 0));
    }

    #[test]
    fn memory_stays_near_the_budget_however_many_keys_arrive() {
        let tenant = TenantId::single_tenant();
        let budget = 64 * 1024;
        let mut window = CommittedKeys::new(Duration::from_secs(3600), budget);
        for block in 0..200 {
            window.remember(&tenant, keys(block * 100..(block + 1) * 100));
            assert!(window.size().1 <= budget, "{:?}", window.size());
        }
        let newest = keys(199 * 100..200 * 100);
        assert!(newest.iter().all(|key| window.contains(&tenant, key)), "the newest block is always remembered");
        assert!(!window.contains(&tenant, &keys(0..1)[0]), "the oldest made room");
    }

    #[test]
    fn a_new_generation_is_sized_for_what_the_last_one_held() {
        let tenant = TenantId::single_tenant();
        let mut window = CommittedKeys::new(Duration::from_secs(3600), 1 << 30);
        for block in 0..50 {
            window.remember(&tenant, keys(block * 100..(block + 1) * 100));
        }
        window.rotate();
        window.remember(&tenant, keys(10_000..10_100));
        let set = &window.current[&tenant];
        assert!(set.capacity() >= 5_000, "room for the last generation's 5,000 keys: {}", set.capacity());
        assert!(window.size().1 >= table_bytes(5_000), "and counted: {:?}", window.size());
    }

    #[test]
    fn a_zero_window_or_budget_remembers_nothing() {
        let tenant = TenantId::single_tenant();
        for mut window in [CommittedKeys::new(Duration::ZERO, 1 << 20), CommittedKeys::new(Duration::from_secs(1), 0)] {
            window.remember(&tenant, keys(0..10));
            assert!(!window.contains(&tenant, &keys(0..1)[0]));
            assert_eq!(window.size(), (0, 0));
        }
    }
}
