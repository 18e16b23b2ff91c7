//! Waiters per priority level, for snapshots.

use crate::order::Priority;

/// Waiters per priority level: one counter per `i8` level.
pub(crate) struct PriorityCounts([usize; 256]);

impl PriorityCounts {
    pub(crate) fn new() -> Self {
        PriorityCounts([0; 256])
    }

    /// The counter of a level, in level order (-128 at 0).
    #[inline]
    fn slot(priority: Priority) -> usize {
        // Flipping the sign bit maps -128..=127 onto 0..=255 in order.
        usize::from(priority.level() as u8 ^ 0x80)
    }

    #[inline]
    pub(crate) fn add(&mut self, priority: Priority) {
        self.0[Self::slot(priority)] += 1;
    }

    #[inline]
    pub(crate) fn remove(&mut self, priority: Priority) {
        self.0[Self::slot(priority)] -= 1;
    }

    /// Levels with waiters and their counts, highest level first.
    pub(crate) fn highest_first(&self) -> Vec<(Priority, usize)> {
        (i8::MIN..=i8::MAX)
            .rev()
            .map(Priority::new)
            .map(|priority| (priority, self.0[Self::slot(priority)]))
            .filter(|&(_, count)| count > 0)
            .collect()
    }
}
