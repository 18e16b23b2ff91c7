//! The in-memory key-value store: a lock-free ordered map, as an LSM engine's memtable is.
//!
//! Readers take no lock, so a scan whose thread the OS preempts holds nothing a foreground
//! request waits for. That matters when elastic work runs at `SCHED_IDLE`: the store was once
//! range-sharded `RwLock<BTreeMap>`s, and a backup or catch-up scan preempted while it held a
//! shard's read lock kept the foreground's writers (and, behind a waiting writer, its readers)
//! blocked until the scan's thread ran again — on a busy machine, up to 7 ms of a runtime
//! worker's time (docs/design-notes.md, "Elastic work at SCHED_IDLE must hold no lock the
//! foreground waits for").

use crossbeam_skiplist::SkipMap;

use super::keyspace::{Key, KeyspaceConfig, Value};

/// An ordered in-memory store that gets, puts and scans share without locks.
#[derive(Debug, Default)]
pub struct Store {
    map: SkipMap<Key, Value>,
}

impl Store {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// A store holding every key of `keyspace` with its canonical value.
    pub fn populate(keyspace: &KeyspaceConfig) -> Self {
        let store = Self::new();
        for (key, value) in keyspace.entries() {
            store.put(key, value);
        }
        store
    }

    /// The value of `key`, if present.
    pub fn get(&self, key: Key) -> Option<Value> {
        self.map.get(&key).map(|entry| entry.value().clone())
    }

    /// Stores `value` under `key`, replacing any value it had.
    pub fn put(&self, key: Key, value: Value) {
        self.map.insert(key, value);
    }

    /// Removes `key`, returning its value.
    pub fn remove(&self, key: Key) -> Option<Value> {
        self.map.remove(&key).map(|entry| entry.value().clone())
    }

    /// Number of keys (not an atomic snapshot while writers run).
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Number of keys in `from..until` (`until` `None`: to the end), values untouched.
    pub fn count_range(&self, from: Key, until: Option<Key>) -> u64 {
        match until {
            Some(until) if until <= from => 0,
            Some(until) => self.map.range(from..until).count() as u64,
            None => self.map.range(from..).count() as u64,
        }
    }

    /// Whether the store holds no key.
    #[allow(dead_code)] // the pair of `len`, kept for clippy's `len_without_is_empty`
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Up to `max` entries in key order starting at `from` (inclusive), appended to `out`
    /// (values are reference-counted, so copying is cheap).
    pub fn scan_into(&self, from: Key, max: usize, out: &mut Vec<(Key, Value)>) {
        out.extend(self.map.range(from..).take(max).map(|entry| (*entry.key(), entry.value().clone())));
    }
}

/// Keys in batches, in key order: every scan of the store walks it this way, holding no lock
/// between batches. Made by [`Store::batches`].
#[derive(Debug)]
pub struct Batches<'a> {
    store: &'a Store,
    /// Where the next batch starts; `None` once the keyspace is done.
    from: Option<Key>,
    size: usize,
    batch: Vec<(Key, Value)>,
}

impl Store {
    /// Walks the keys from `from` on in batches of `size` (at least 1).
    pub fn batches(&self, from: Key, size: usize) -> Batches<'_> {
        Batches { store: self, from: Some(from), size: size.max(1), batch: Vec::with_capacity(size.max(1)) }
    }

    /// The first key at or after `from`, if any.
    pub fn first_key_from(&self, from: Key) -> Option<Key> {
        let mut one = Vec::with_capacity(1);
        self.scan_into(from, 1, &mut one);
        one.first().map(|(key, _)| *key)
    }
}

impl Batches<'_> {
    /// The next batch, in key order; `None` at the end of the keyspace.
    pub fn next_batch(&mut self) -> Option<&[(Key, Value)]> {
        let from = self.from?;
        self.batch.clear();
        self.store.scan_into(from, self.size, &mut self.batch);
        self.from = self.batch.last().and_then(|(key, _)| key.successor());
        if self.batch.is_empty() {
            self.from = None;
            return None;
        }
        Some(&self.batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_walk_every_key_once_in_order() {
        let keyspace = KeyspaceConfig { keys: 100, mean_value_bytes: 8, seed: 3 };
        let store = Store::populate(&keyspace);
        let mut batches = store.batches(Key(5), 16);
        let mut seen = Vec::new();
        while let Some(batch) = batches.next_batch() {
            assert!(batch.len() <= 16);
            seen.extend(batch.iter().map(|(k, _)| k.0));
        }
        assert_eq!(seen, (5..100).collect::<Vec<_>>());
        assert!(batches.next_batch().is_none(), "done stays done");
        assert_eq!(store.first_key_from(Key(99)), Some(Key(99)));
        assert_eq!(store.first_key_from(Key(100)), None);
    }

    #[test]
    fn scan_walks_shards_in_order_from_the_resumption_key() {
        let keyspace = KeyspaceConfig { keys: 100, mean_value_bytes: 8, seed: 3 };
        let store = Store::populate(&keyspace);
        assert_eq!(store.len(), 100);
        let mut out = Vec::new();
        store.scan_into(Key(10), 30, &mut out);
        let keys: Vec<u64> = out.iter().map(|(k, _)| k.0).collect();
        assert_eq!(keys, (10..40).collect::<Vec<_>>());
        out.clear();
        store.scan_into(Key(95), 30, &mut out);
        assert_eq!(out.len(), 5);
        assert_eq!(out[0].1, keyspace.value_of(Key(95)));
    }

    #[test]
    fn get_put_and_keys_beyond_the_bound() {
        let store = Store::new();
        assert!(store.is_empty());
        let v: Value = vec![1, 2, 3].into();
        store.put(Key(1_000), v.clone());
        assert_eq!(store.get(Key(1_000)), Some(v));
        store.put(Key(1_000), vec![9].into());
        assert_eq!(store.len(), 1, "a put of a key present replaces its value");
        assert_eq!(store.get(Key(2)), None);
        assert_eq!(store.remove(Key(1_000)), Some(vec![9].into()));
        assert_eq!(store.remove(Key(1_000)), None);
    }
}
