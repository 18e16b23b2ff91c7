//! Seeded generation of the keyspace: ordered keys and reproducible values.

use std::fmt;
use std::sync::Arc;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A key: a 64-bit id, ordered and encoded big-endian, so byte order equals numeric order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key(pub u64);

impl Key {
    /// Encoded length in bytes.
    pub const ENCODED_BYTES: usize = 8;

    /// The big-endian encoding.
    pub fn to_bytes(self) -> [u8; Self::ENCODED_BYTES] {
        self.0.to_be_bytes()
    }

    /// The next key in order, `None` after `u64::MAX`.
    pub fn successor(self) -> Option<Key> {
        self.0.checked_add(1).map(Key)
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// A value: immutable bytes, cheap to clone out of the store.
pub type Value = Arc<[u8]>;

/// Shape of the keyspace; the same config gives the same keys and values on every run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyspaceConfig {
    /// Number of keys, `Key(0)..Key(keys)`.
    pub keys: u64,
    /// Mean value size in bytes (lowercase letters `a..=p`); each value's size is drawn uniformly from `[mean/2, 3*mean/2]`.
    pub mean_value_bytes: usize,
    /// Seed of the value generator.
    pub seed: u64,
}

impl Default for KeyspaceConfig {
    fn default() -> Self {
        Self { keys: 100_000, mean_value_bytes: 256, seed: 0x7a11_9a2d }
    }
}

impl KeyspaceConfig {
    /// The canonical value of `key`: a pure function of the seed and the key, so any part of
    /// the workload (a put, a test oracle) can regenerate it without reading the store.
    pub fn value_of(&self, key: Key) -> Value {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        rng.set_stream(key.0);
        let mean = self.mean_value_bytes.max(1);
        let len = rng.random_range(mean / 2..=mean + mean / 2).max(1);
        let mut bytes = vec![0u8; len];
        rng.fill(&mut bytes[..]);
        // Text over a 16-letter alphabet: 4 bits of entropy per byte, so values compress about
        // 2:1 and the backup's deflate does real work with a real result.
        for b in &mut bytes {
            *b = b'a' + (*b & 15);
        }
        bytes.into()
    }

    /// Every key of the keyspace with its canonical value, in key order.
    pub fn entries(&self) -> impl Iterator<Item = (Key, Value)> + '_ {
        (0..self.keys).map(move |id| (Key(id), self.value_of(Key(id))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_values_and_different_seed_differs() {
        let a = KeyspaceConfig { keys: 10, mean_value_bytes: 64, seed: 1 };
        let b = KeyspaceConfig { seed: 2, ..a };
        assert_eq!(a.value_of(Key(3)), a.value_of(Key(3)));
        assert_ne!(a.value_of(Key(3)), b.value_of(Key(3)));
        assert_ne!(a.value_of(Key(3)), a.value_of(Key(4)));
        for (_, v) in a.entries() {
            assert!((32..=96).contains(&v.len()), "size {} outside [mean/2, 3mean/2]", v.len());
        }
    }

    #[test]
    fn key_bytes_order_matches_numeric_order() {
        assert!(Key(255).to_bytes() < Key(256).to_bytes());
        assert_eq!(Key(7).successor(), Some(Key(8)));
        assert_eq!(Key(u64::MAX).successor(), None);
        assert_eq!(Key(0xab).to_string(), "00000000000000ab");
    }
}
