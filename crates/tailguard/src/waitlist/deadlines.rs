//! Deadlines of waiting waiters, earliest first, with lazy removal.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

use super::COMPACT_SLACK;
use super::slab::WaiterKey;

/// Deadlines of waiting waiters, earliest first, with lazy removal.
///
/// A deadline no earlier than the last one queued in order goes to the back of a FIFO (with a
/// fixed timeout per request, deadlines arrive in order: O(1) in and out); any other goes to
/// a binary heap (O(log n)). The earliest deadline is at the front of one of the two.
pub(crate) struct Deadlines {
    in_order: VecDeque<(u64, WaiterKey)>,
    heap: BinaryHeap<Reverse<(u64, WaiterKey)>>,
    /// Waiters with a deadline that still wait; both may hold more (stale) entries.
    live: usize,
}

impl Deadlines {
    pub(crate) fn new() -> Self {
        Deadlines { in_order: VecDeque::new(), heap: BinaryHeap::new(), live: 0 }
    }

    pub(crate) fn push(&mut self, deadline_nanos: u64, key: WaiterKey) {
        if self.in_order.back().is_none_or(|&(last, _)| deadline_nanos >= last) {
            self.in_order.push_back((deadline_nanos, key));
        } else {
            self.heap.push(Reverse((deadline_nanos, key)));
        }
        self.live += 1;
    }

    /// Counts out a waiter with a deadline that has left (see [`PriorityLists::leave`](super::lists::PriorityLists::leave)).
    pub(crate) fn leave(&mut self, waiting: impl Fn(WaiterKey) -> bool) {
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
    pub(crate) fn pop_expired(&mut self, now: u64, waiting: impl Fn(WaiterKey) -> bool) -> Option<WaiterKey> {
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

    /// The earliest deadline of a waiter that still waits, dropping stale entries on the way.
    pub(crate) fn earliest(&mut self, waiting: impl Fn(WaiterKey) -> bool) -> Option<u64> {
        while self.in_order.front().is_some_and(|&(_, key)| !waiting(key)) {
            self.in_order.pop_front();
        }
        while self.heap.peek().is_some_and(|&Reverse((_, key))| !waiting(key)) {
            self.heap.pop();
        }
        let in_order = self.in_order.front().map(|&(deadline, _)| deadline);
        let heap = self.heap.peek().map(|&Reverse((deadline, _))| deadline);
        match (in_order, heap) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Entries held, live and stale (for tests of the compaction bound).
    #[cfg(test)]
    pub(crate) fn entries_held(&self) -> usize {
        self.in_order.len() + self.heap.len()
    }
}
