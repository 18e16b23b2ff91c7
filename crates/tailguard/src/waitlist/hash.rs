//! A cheap seeded hasher for tenant ids.

use std::hash::{BuildHasher, Hasher};

/// Builds [`TenantHasher`]s with a seed drawn once per queue.
#[derive(Clone)]
pub(crate) struct TenantHashBuilder {
    seed: u64,
}

impl TenantHashBuilder {
    /// A builder with a seed from std's random hasher keys.
    pub(crate) fn new() -> Self {
        TenantHashBuilder { seed: std::collections::hash_map::RandomState::new().hash_one(0x7461_696c_u64) }
    }
}

impl BuildHasher for TenantHashBuilder {
    type Hasher = TenantHasher;

    #[inline]
    fn build_hasher(&self) -> TenantHasher {
        TenantHasher(self.seed)
    }
}

/// Hashes tenant ids (a `u64` each) with a 64-bit finaliser (MurmurHash3's `fmix64`) over the
/// seeded id: every output bit depends on every input bit, in a few nanoseconds where SipHash
/// takes tens. Not a keyed PRF: the seed only keeps collisions from being the same on every
/// queue.
pub(crate) struct TenantHasher(u64);

impl Hasher for TenantHasher {
    #[inline]
    fn write_u64(&mut self, n: u64) {
        let mut h = self.0 ^ n;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^= h >> 33;
        self.0 = h;
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used by `TenantId`; any other input is folded in 8 bytes at a time.
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}
