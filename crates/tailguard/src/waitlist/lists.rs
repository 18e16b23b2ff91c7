//! One tenant's waiters: a FIFO list of keys per priority level, with lazy removal.

use std::collections::VecDeque;

use super::COMPACT_SLACK;
use super::slab::WaiterKey;
use crate::order::Priority;

/// One tenant's waiters: a FIFO list per priority level, highest level first.
///
/// Invariant: a level with live waiters has a live waiter at both ends of its list, and a
/// level without any has an empty list (kept, with its capacity, for the next waiter).
pub(crate) struct PriorityLists {
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
    pub(crate) fn new() -> Self {
        PriorityLists { levels: Vec::new(), live: 0 }
    }

    /// Waiters counted in (pushed and not yet counted out).
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.live
    }

    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Appends a waiter at `priority`.
    pub(crate) fn push(&mut self, priority: Priority, key: WaiterKey) {
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
    pub(crate) fn leave(&mut self, priority: Priority, waiting: impl Fn(WaiterKey) -> bool) {
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
    pub(crate) fn head(&self) -> Option<(Priority, WaiterKey, WaiterKey)> {
        let level = self.levels.iter().find(|level| level.live > 0)?;
        Some((level.priority, *level.keys.front()?, *level.keys.back()?))
    }

    /// Keys held, live and stale (for tests of the compaction bound).
    #[cfg(test)]
    pub(crate) fn keys_held(&self) -> usize {
        self.levels.iter().map(|level| level.keys.len()).sum()
    }
}
