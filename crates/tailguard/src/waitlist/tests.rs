//! The wait-list parts against scripted waiters.

use std::cell::RefCell;
use std::collections::HashSet;

use super::COMPACT_SLACK;
use super::counts::PriorityCounts;
use super::deadlines::Deadlines;
use super::hash::TenantHashBuilder;
use super::lists::PriorityLists;
use super::slab::{Slab, WaiterKey};
use crate::order::{Priority, TenantId};
use std::hash::{BuildHasher, Hasher};

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
    let levels: Vec<(i8, usize)> = counts.highest_first().into_iter().map(|(p, n)| (p.level(), n)).collect();
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
