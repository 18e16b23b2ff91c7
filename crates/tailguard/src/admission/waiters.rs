//! The bookkeeping of waiters behind the work queue's lock: a slab of waiters named by keys
//! that go stale, per-priority FIFO lists, a deadline heap, counts per priority, and a cheap
//! hasher for tenant ids.
//!
//! Removal from the lists and the heap is lazy. A waiter that leaves (admitted, expired or
//! cancelled) is counted out at once, so the counts stay exact, but its key stays where it is
//! until it reaches an end of its list or the top of the heap, where it is dropped; when stale
//! keys come to outnumber live ones the structure is compacted in one pass, so each removal
//! costs amortised O(1) and memory stays within twice the live waiters (plus a little slack).
//! In steady state nothing allocates: the slab, the lists and the heap keep their capacity.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::hash::{BuildHasher, Hasher};

use super::request::Priority;

/// Stale keys a list or the heap tolerates beyond twice its live ones before it is compacted.
const COMPACT_SLACK: usize = 32;

/// Names a waiter in a [`Slab`]: where it lives, and its arrival number.
///
/// Arrival numbers are never reused, so a key kept after its waiter left (in a list, in the
/// heap) never names the next waiter stored at the same index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct WaiterKey {
    /// Arrival number: unique over the queue's life, and the FIFO order.
    pub(super) seq: u64,
    pub(super) index: usize,
}

/// Values stored at reusable indices, each named by a [`WaiterKey`].
pub(super) struct Slab<T> {
    entries: Vec<Entry<T>>,
    /// Indices of empty entries, reused last-freed first.
    free: Vec<usize>,
}

struct Entry<T> {
    seq: u64,
    value: Option<T>,
}

impl<T> Slab<T> {
    pub(super) fn new() -> Self {
        Slab { entries: Vec::new(), free: Vec::new() }
    }

    /// Stores `value` under arrival number `seq`, which the caller never uses twice.
    pub(super) fn insert(&mut self, seq: u64, value: T) -> WaiterKey {
        let entry = Entry { seq, value: Some(value) };
        let index = match self.free.pop() {
            Some(index) => {
                self.entries[index] = entry;
                index
            }
            None => {
                self.entries.push(entry);
                self.entries.len() - 1
            }
        };
        WaiterKey { seq, index }
    }

    /// The value `key` names, unless it was removed.
    #[inline]
    pub(super) fn get(&self, key: WaiterKey) -> Option<&T> {
        self.entries.get(key.index).filter(|entry| entry.seq == key.seq)?.value.as_ref()
    }

    #[inline]
    pub(super) fn get_mut(&mut self, key: WaiterKey) -> Option<&mut T> {
        self.entries.get_mut(key.index).filter(|entry| entry.seq == key.seq)?.value.as_mut()
    }

    /// Takes the value `key` names out; its index is reused by a later insert.
    pub(super) fn remove(&mut self, key: WaiterKey) -> Option<T> {
        let entry = self.entries.get_mut(key.index).filter(|entry| entry.seq == key.seq)?;
        let value = entry.value.take()?;
        self.free.push(key.index);
        Some(value)
    }

    /// Values stored.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.entries.len() - self.free.len()
    }
}

/// One tenant's waiters: a FIFO list per priority level, highest level first.
///
/// Invariant: a level with live waiters has a live waiter at both ends of its list, and a
/// level without any has an empty list (kept, with its capacity, for the next waiter).
pub(super) struct PriorityLists {
    /// By priority, highest first; few levels are in use at once, so a linear search is cheap.
    levels: Vec<Level>,
    live: usize,
}

struct Level {
    priority: Priority,
    live: usize,
    keys: VecDeque<WaiterKey>,
}

impl PriorityLists {
    pub(super) fn new() -> Self {
        PriorityLists { levels: Vec::new(), live: 0 }
    }

    /// Waiters counted in (pushed and not yet counted out).
    #[inline]
    pub(super) fn len(&self) -> usize {
        self.live
    }

    #[inline]
    pub(super) fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Appends a waiter at `priority`.
    pub(super) fn push(&mut self, priority: Priority, key: WaiterKey) {
        let at = match self.levels.iter().position(|level| level.priority <= priority) {
            Some(at) if self.levels[at].priority == priority => at,
            Some(at) => {
                self.levels.insert(at, Level { priority, live: 0, keys: VecDeque::new() });
                at
            }
            None => {
                self.levels.push(Level { priority, live: 0, keys: VecDeque::new() });
                self.levels.len() - 1
            }
        };
        let level = &mut self.levels[at];
        level.keys.push_back(key);
        level.live += 1;
        self.live += 1;
    }

    /// Counts out a waiter of `priority` that has left; `waiting` tells whether a key still
    /// names a waiting waiter (false already for the one leaving). Stale keys at the ends of
    /// the level's list are dropped, and the list is compacted once they dominate it.
    pub(super) fn leave(&mut self, priority: Priority, waiting: impl Fn(WaiterKey) -> bool) {
        let Some(level) = self.levels.iter_mut().find(|level| level.priority == priority) else {
            debug_assert!(false, "a waiter left a level it was never pushed to");
            return;
        };
        debug_assert!(level.live > 0 && self.live > 0, "more waiters left than were pushed");
        level.live -= 1;
        self.live -= 1;
        if level.live == 0 {
            level.keys.clear();
            return;
        }
        while level.keys.front().is_some_and(|&key| !waiting(key)) {
            level.keys.pop_front();
        }
        while level.keys.back().is_some_and(|&key| !waiting(key)) {
            level.keys.pop_back();
        }
        if level.keys.len() > 2 * level.live + COMPACT_SLACK {
            level.keys.retain(|&key| waiting(key));
        }
    }

    /// The highest level with waiters, with its oldest and newest waiter.
    #[inline]
    pub(super) fn head(&self) -> Option<(Priority, WaiterKey, WaiterKey)> {
        let level = self.levels.iter().find(|level| level.live > 0)?;
        Some((level.priority, *level.keys.front()?, *level.keys.back()?))
    }

    /// Keys held, live and stale (for tests of the compaction bound).
    #[cfg(test)]
    pub(super) fn keys_held(&self) -> usize {
        self.levels.iter().map(|level| level.keys.len()).sum()
    }
}

/// Deadlines of waiting waiters, earliest first, with lazy removal.
///
/// A deadline no earlier than the last one queued in order goes to the back of a FIFO (with a
/// fixed timeout per request, deadlines arrive in order: O(1) in and out); any other goes to
/// a binary heap (O(log n)). The earliest deadline is at the front of one of the two.
pub(super) struct Deadlines {
    in_order: VecDeque<(u64, WaiterKey)>,
    heap: BinaryHeap<Reverse<(u64, WaiterKey)>>,
    /// Waiters with a deadline that still wait; both may hold more (stale) entries.
    live: usize,
}

impl Deadlines {
    pub(super) fn new() -> Self {
        Deadlines { in_order: VecDeque::new(), heap: BinaryHeap::new(), live: 0 }
    }

    pub(super) fn push(&mut self, deadline_nanos: u64, key: WaiterKey) {
        if self.in_order.back().is_none_or(|&(last, _)| deadline_nanos >= last) {
            self.in_order.push_back((deadline_nanos, key));
        } else {
            self.heap.push(Reverse((deadline_nanos, key)));
        }
        self.live += 1;
    }

    /// Counts out a waiter with a deadline that has left (see [`PriorityLists::leave`]).
    pub(super) fn leave(&mut self, waiting: impl Fn(WaiterKey) -> bool) {
        debug_assert!(self.live > 0, "more deadlines left than were pushed");
        self.live -= 1;
        if self.in_order.len() + self.heap.len() > 2 * self.live + COMPACT_SLACK {
            self.in_order.retain(|&(_, key)| waiting(key));
            self.heap.retain(|Reverse((_, key))| waiting(*key));
        }
    }

    /// Takes the earliest deadline at or before `now` of a waiter that still waits, dropping
    /// stale entries on the way. The caller then counts the waiter out with
    /// [`leave`](Self::leave).
    #[inline]
    pub(super) fn pop_expired(&mut self, now: u64, waiting: impl Fn(WaiterKey) -> bool) -> Option<WaiterKey> {
        while self.in_order.front().is_some_and(|&(_, key)| !waiting(key)) {
            self.in_order.pop_front();
        }
        while self.heap.peek().is_some_and(|&Reverse((_, key))| !waiting(key)) {
            self.heap.pop();
        }
        let from_heap = match (self.in_order.front(), self.heap.peek()) {
            (Some(first), Some(Reverse(top))) => top < first,
            (None, Some(_)) => true,
            (_, None) => false,
        };
        if from_heap {
            let &Reverse((deadline, key)) = self.heap.peek()?;
            if deadline > now {
                return None;
            }
            self.heap.pop();
            Some(key)
        } else {
            let &(deadline, key) = self.in_order.front()?;
            if deadline > now {
                return None;
            }
            self.in_order.pop_front();
            Some(key)
        }
    }

    /// Entries held, live and stale (for tests of the compaction bound).
    #[cfg(test)]
    pub(super) fn entries_held(&self) -> usize {
        self.in_order.len() + self.heap.len()
    }
}

/// Waiters per priority level: one counter per `i8` level.
pub(super) struct PriorityCounts([usize; 256]);

impl PriorityCounts {
    pub(super) fn new() -> Self {
        PriorityCounts([0; 256])
    }

    /// The counter of a level, in level order (-128 at 0).
    #[inline]
    fn slot(priority: Priority) -> usize {
        // Flipping the sign bit maps -128..=127 onto 0..=255 in order.
        usize::from(priority.level() as u8 ^ 0x80)
    }

    #[inline]
    pub(super) fn add(&mut self, priority: Priority) {
        self.0[Self::slot(priority)] += 1;
    }

    #[inline]
    pub(super) fn remove(&mut self, priority: Priority) {
        self.0[Self::slot(priority)] -= 1;
    }

    /// Levels with waiters and their counts, highest level first.
    pub(super) fn highest_first(&self) -> Vec<(Priority, usize)> {
        (i8::MIN..=i8::MAX)
            .rev()
            .map(Priority::new)
            .map(|priority| (priority, self.0[Self::slot(priority)]))
            .filter(|&(_, count)| count > 0)
            .collect()
    }
}

/// Builds [`TenantHasher`]s with a seed drawn once per queue.
#[derive(Clone)]
pub(super) struct TenantHashBuilder {
    seed: u64,
}

impl TenantHashBuilder {
    /// A builder with a seed from std's random hasher keys.
    pub(super) fn new() -> Self {
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
pub(super) struct TenantHasher(u64);

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

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::collections::HashSet;

    use super::*;
    use crate::admission::TenantId;

    #[test]
    fn stale_keys_never_name_a_reused_entry() {
        let mut slab = Slab::new();
        let first = slab.insert(1, "first");
        assert_eq!(slab.remove(first), Some("first"));
        let second = slab.insert(2, "second");
        assert_eq!(second.index, first.index, "the freed index is reused");
        assert_eq!(slab.get(first), None);
        assert_eq!(slab.remove(first), None, "a stale key removes nothing");
        assert_eq!(slab.get(second), Some(&"second"));
        assert_eq!(slab.len(), 1);
        *slab.get_mut(second).unwrap() = "changed";
        assert_eq!(slab.remove(second), Some("changed"));
        assert_eq!(slab.remove(second), None, "removed once");
        assert_eq!(slab.len(), 0);
    }

    /// A slab of waiting flags, as the queue keeps one per waiter.
    struct Fixture {
        slab: RefCell<Slab<bool>>,
        next_seq: u64,
    }

    impl Fixture {
        fn new() -> Self {
            Fixture { slab: RefCell::new(Slab::new()), next_seq: 0 }
        }

        fn add(&mut self) -> WaiterKey {
            self.next_seq += 1;
            self.slab.borrow_mut().insert(self.next_seq, true)
        }

        /// Marks a waiter gone (the queue does this before counting it out).
        fn gone(&self, key: WaiterKey) {
            *self.slab.borrow_mut().get_mut(key).unwrap() = false;
        }

        fn waiting(&self) -> impl Fn(WaiterKey) -> bool + '_ {
            |key| self.slab.borrow().get(key).copied().unwrap_or(false)
        }
    }

    #[test]
    fn lists_keep_fifo_per_level_and_count_exactly_under_lazy_removal() {
        let mut fixture = Fixture::new();
        let mut lists = PriorityLists::new();
        let (low, normal, high) = (Priority::LOW, Priority::NORMAL, Priority::HIGH);
        let a = fixture.add();
        lists.push(normal, a);
        let b = fixture.add();
        lists.push(low, b);
        let c = fixture.add();
        lists.push(normal, c);
        let d = fixture.add();
        lists.push(high, d);
        let e = fixture.add();
        lists.push(normal, e);
        assert_eq!(lists.len(), 5);
        assert_eq!(lists.head(), Some((high, d, d)));
        fixture.gone(d);
        lists.leave(high, fixture.waiting());
        assert_eq!(lists.head(), Some((normal, a, e)));
        // The middle one leaves: counted out at once, its key dropped only later.
        fixture.gone(c);
        lists.leave(normal, fixture.waiting());
        assert_eq!((lists.len(), lists.head()), (3, Some((normal, a, e))));
        // The newest leaves: the back moves past it.
        fixture.gone(e);
        lists.leave(normal, fixture.waiting());
        assert_eq!(lists.head(), Some((normal, a, a)));
        fixture.gone(a);
        lists.leave(normal, fixture.waiting());
        assert_eq!((lists.len(), lists.head()), (1, Some((low, b, b))));
        fixture.gone(b);
        lists.leave(low, fixture.waiting());
        assert_eq!((lists.len(), lists.head(), lists.keys_held()), (0, None, 0));
    }

    #[test]
    fn lists_stay_within_twice_their_live_keys() {
        let mut fixture = Fixture::new();
        let mut lists = PriorityLists::new();
        // One waiter that never leaves at the head, then many that come and go behind it.
        let head = fixture.add();
        lists.push(Priority::NORMAL, head);
        let mut tail = fixture.add();
        lists.push(Priority::NORMAL, tail);
        for _ in 0..10_000 {
            let next = fixture.add();
            lists.push(Priority::NORMAL, next);
            // The one before the newest leaves: neither end, so its key stays until compaction.
            fixture.gone(tail);
            lists.leave(Priority::NORMAL, fixture.waiting());
            tail = next;
            assert_eq!(lists.len(), 2);
            assert!(lists.keys_held() <= 2 * 2 + COMPACT_SLACK + 1, "{}", lists.keys_held());
        }
        assert_eq!(lists.head(), Some((Priority::NORMAL, head, tail)));
    }

    #[test]
    fn deadlines_in_and_out_of_arrival_order_pop_earliest_first() {
        let mut fixture = Fixture::new();
        let mut deadlines = Deadlines::new();
        // Two timeouts interleaved: each in order, together not.
        let mut expected = Vec::new();
        for i in 0..100u64 {
            let key = fixture.add();
            let deadline = if i % 2 == 0 { 1_000 + i } else { 250 + i };
            deadlines.push(deadline, key);
            expected.push((deadline, key));
        }
        expected.sort();
        let mut popped = Vec::new();
        for now in (0..1_200).step_by(7) {
            while let Some(key) = deadlines.pop_expired(now, fixture.waiting()) {
                let deadline = expected.iter().find(|&&(_, k)| k == key).unwrap().0;
                assert!(deadline <= now);
                fixture.gone(key);
                deadlines.leave(fixture.waiting());
                popped.push((deadline, key));
            }
        }
        assert_eq!(popped, expected);
    }

    #[test]
    fn deadlines_pop_in_order_skip_the_gone_and_stay_bounded() {
        let mut fixture = Fixture::new();
        let mut deadlines = Deadlines::new();
        let keys: Vec<WaiterKey> = (0..4).map(|_| fixture.add()).collect();
        for (i, &key) in keys.iter().enumerate() {
            deadlines.push(40 - 10 * i as u64, key); // 40, 30, 20, 10
        }
        fixture.gone(keys[3]); // deadline 10: gone before it passed
        deadlines.leave(fixture.waiting());
        assert_eq!(deadlines.pop_expired(15, fixture.waiting()), None);
        assert_eq!(deadlines.pop_expired(30, fixture.waiting()), Some(keys[2]));
        fixture.gone(keys[2]);
        deadlines.leave(fixture.waiting());
        assert_eq!(deadlines.pop_expired(30, fixture.waiting()), Some(keys[1]));
        fixture.gone(keys[1]);
        deadlines.leave(fixture.waiting());
        assert_eq!(deadlines.pop_expired(39, fixture.waiting()), None);

        // Waiters that leave long before their deadline do not pile up.
        for _ in 0..10_000 {
            let key = fixture.add();
            deadlines.push(u64::MAX, key);
            fixture.gone(key);
            deadlines.leave(fixture.waiting());
            assert!(deadlines.entries_held() <= 2 + COMPACT_SLACK + 1);
        }
        assert_eq!(deadlines.pop_expired(u64::MAX, fixture.waiting()), Some(keys[0]));
    }

    #[test]
    fn priority_counts_report_highest_first() {
        let mut counts = PriorityCounts::new();
        for level in [0, -128, 127, 0, 50] {
            counts.add(Priority::new(level));
        }
        counts.remove(Priority::new(50));
        let levels: Vec<(i8, usize)> =
            counts.highest_first().into_iter().map(|(p, n)| (p.level(), n)).collect();
        assert_eq!(levels, [(127, 1), (0, 2), (-128, 1)]);
    }

    #[test]
    fn tenant_hashes_spread_structured_ids() {
        let builder = TenantHashBuilder::new();
        let hash = |id: u64| builder.hash_one(TenantId(id));
        assert_eq!(hash(7), hash(7));
        // Ids differing only in high bits, or multiples of a power of two, still spread over
        // the low bits that pick a bucket and the high bits that tag it.
        for ids in [(0..256).map(|i| i << 40).collect::<Vec<u64>>(), (0..256).map(|i| i * 4096).collect()] {
            let low: HashSet<u64> = ids.iter().map(|&id| hash(id) & 0xff).collect();
            let high: HashSet<u64> = ids.iter().map(|&id| hash(id) >> 57).collect();
            assert!(low.len() > 128, "{}", low.len());
            assert!(high.len() > 64, "{}", high.len());
        }
        // Bytes (unused by tenant ids) are folded in too.
        let mut hasher = builder.build_hasher();
        hasher.write(&[1, 2, 3]);
        assert_ne!(hasher.finish(), builder.build_hasher().finish());
    }
}
