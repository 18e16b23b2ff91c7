//! The catch-up scan: a second elastic job that walks the keyspace building per-range digests
//! and an index of value sizes, calling a pacing hook after every key.

use std::ops::ControlFlow;

use super::keyspace::Key;
use super::store::Store;

/// Entries copied out of the store per lock acquisition.
const SCAN_BATCH: usize = 64;
/// Value-size classes: class `c` holds sizes in `[2^c, 2^(c+1))` (class 0 also holds 0).
pub const SIZE_CLASSES: usize = 33;

/// The digest of one range of consecutive keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RangeDigest {
    /// First key of the range.
    pub first: Key,
    /// Last key of the range.
    pub last: Key,
    /// Keys in the range.
    pub keys: u64,
    /// CRC-32 over every key (big-endian) and value in the range, in order.
    pub crc32: u32,
}

/// What the scan computed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScanSummary {
    /// Keys scanned.
    pub keys: u64,
    /// Value bytes scanned.
    pub value_bytes: u64,
    /// Digests of consecutive ranges of `range_keys` keys (the last may be shorter).
    pub ranges: Vec<RangeDigest>,
    /// `value_size_index[c]`: number of values whose size is in `[2^c, 2^(c+1))`.
    pub value_size_index: [u64; SIZE_CLASSES],
    /// Where a stopped scan stopped (the last key scanned); `None` when it covered the store.
    pub stopped_after: Option<Key>,
}

/// The size class of a value of `len` bytes.
pub fn size_class(len: usize) -> usize {
    (usize::BITS - len.max(1).leading_zeros() - 1) as usize
}

/// Scans the whole store in key order, calling `pace()` after every key (where a `Pacer` plugs
/// in: `&mut || pacer.pace()`; it may block to keep the scan within its CPU share).
///
/// `range_keys` (at least 1) is the number of keys per digest range.
pub fn catch_up_scan(store: &Store, range_keys: u64, pace: &mut dyn FnMut()) -> ScanSummary {
    catch_up_scan_until(store, range_keys, &mut || {
        pace();
        ControlFlow::Continue(())
    })
}

/// [`catch_up_scan`] that can be stopped: after every key `pace()` says whether to go on. A
/// stopped scan returns what it computed so far (its last range closed early) and sets
/// [`ScanSummary::stopped_after`] to the last key scanned.
pub fn catch_up_scan_until(
    store: &Store,
    range_keys: u64,
    pace: &mut dyn FnMut() -> ControlFlow<()>,
) -> ScanSummary {
    let range_keys = range_keys.max(1);
    let mut summary = ScanSummary {
        keys: 0,
        value_bytes: 0,
        ranges: Vec::new(),
        value_size_index: [0; SIZE_CLASSES],
        stopped_after: None,
    };
    let mut current: Option<(RangeDigest, crc32fast::Hasher)> = None;
    let mut batches = store.batches(Key(0), SCAN_BATCH);
    'scan: while let Some(batch) = batches.next_batch() {
        for (key, value) in batch {
            let (range, hasher) = current.get_or_insert_with(|| {
                (RangeDigest { first: *key, last: *key, keys: 0, crc32: 0 }, crc32fast::Hasher::new())
            });
            hasher.update(&key.to_bytes());
            hasher.update(value);
            range.last = *key;
            range.keys += 1;
            if range.keys == range_keys {
                let (mut range, hasher) = current.take().expect("just filled");
                range.crc32 = hasher.finalize();
                summary.ranges.push(range);
            }
            summary.keys += 1;
            summary.value_bytes += value.len() as u64;
            summary.value_size_index[size_class(value.len())] += 1;
            if pace().is_break() {
                summary.stopped_after = Some(*key);
                break 'scan;
            }
        }
    }
    if let Some((mut range, hasher)) = current {
        range.crc32 = hasher.finalize();
        summary.ranges.push(range);
    }
    summary
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::keyspace::KeyspaceConfig;

    #[test]
    fn scan_digests_and_indexes_every_key_and_paces_each() {
        let keyspace = KeyspaceConfig { keys: 1_050, mean_value_bytes: 100, seed: 4 };
        let store = Store::populate(&keyspace, 3);
        let mut paced = 0u64;
        let summary = catch_up_scan(&store, 100, &mut || paced += 1);
        assert_eq!((summary.keys, paced), (1_050, 1_050));
        assert_eq!(summary.ranges.len(), 11);
        assert_eq!(summary.ranges[10].keys, 50);
        assert_eq!(summary.stopped_after, None);

        let mut left = 250;
        let stopped = catch_up_scan_until(&store, 100, &mut || {
            left -= 1;
            if left == 0 { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
        });
        assert_eq!((stopped.keys, stopped.stopped_after), (250, Some(Key(249))));
        assert_eq!(stopped.ranges.len(), 3, "two full ranges and the one cut short");
        assert_eq!(stopped.ranges[..2], summary.ranges[..2]);
        // Oracle: recompute from the keyspace itself.
        let entries: Vec<_> = keyspace.entries().collect();
        for (range, part) in summary.ranges.iter().zip(entries.chunks(100)) {
            let mut h = crc32fast::Hasher::new();
            for (k, v) in part {
                h.update(&k.to_bytes());
                h.update(v);
            }
            assert_eq!(
                (range.first, range.last, range.crc32),
                (part[0].0, part.last().unwrap().0, h.finalize())
            );
        }
        let mut index = [0u64; SIZE_CLASSES];
        for (_, v) in &entries {
            index[size_class(v.len())] += 1;
        }
        assert_eq!(summary.value_size_index, index);
        assert_eq!(summary.value_bytes, entries.iter().map(|(_, v)| v.len() as u64).sum::<u64>());

        // Changing one value changes exactly its range's digest.
        store.put(Key(333), vec![0; 7].into());
        let changed = catch_up_scan(&store, 100, &mut || ());
        let differing: Vec<usize> =
            (0..11).filter(|&i| changed.ranges[i].crc32 != summary.ranges[i].crc32).collect();
        assert_eq!(differing, vec![3]);
    }

    #[test]
    fn size_classes() {
        assert_eq!([size_class(0), size_class(1), size_class(2), size_class(3)], [0, 0, 1, 1]);
        assert_eq!([size_class(255), size_class(256)], [7, 8]);
        assert_eq!(catch_up_scan(&Store::new(1, 1), 0, &mut || ()).ranges, vec![]);
    }
}
