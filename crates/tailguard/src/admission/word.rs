//! The admission word: slots in use, the slot count and a "someone waits" flag in one atomic.
//!
//! One `AtomicU64` holds the slots in use (bits 0..32), the slot count (bits 32..63) and a
//! `QUEUED` flag (bit 63) that is set while anyone waits. The fast path admits with one
//! compare-and-swap when the flag is clear and a slot is free, and releases with one
//! `fetch_sub`; everything else takes the queue's lock. Because the flag and the counts share
//! one word, a release and an enqueue cannot miss each other: either the release's decrement
//! comes first (then the enqueuer, which sets the flag and then tries to take a slot under the
//! lock, finds it free) or the flag comes first (then the release sees it and hands the slot
//! on under the lock). The flag is set and cleared only under the lock.

use std::sync::atomic::Ordering;

use crate::sync::AtomicU64;

/// Bits 0..32: slots in use.
const USED_MASK: u64 = u32::MAX as u64;
/// The slot count starts at bit 32.
const SLOTS_SHIFT: u32 = 32;
/// Bits 32..63: the slot count (at most `MAX_SLOTS_LIMIT`, which fits in 31 bits).
const SLOTS_MASK: u64 = (super::config::MAX_SLOTS_LIMIT as u64) << SLOTS_SHIFT;
/// Bit 63: someone waits under the lock.
const QUEUED: u64 = 1 << 63;

#[inline]
fn used_of(word: u64) -> u32 {
    (word & USED_MASK) as u32
}

#[inline]
fn slots_of(word: u64) -> u32 {
    ((word & SLOTS_MASK) >> SLOTS_SHIFT) as u32
}

/// The admission word and the count of admissions it made without the lock. Written by every
/// admission and release: its owner keeps it on a cache line of its own.
pub(super) struct AdmissionWord {
    word: AtomicU64,
    /// Admissions by the lock-free path. Monotonically increasing, never reset.
    admitted_fast: AtomicU64,
}

impl AdmissionWord {
    /// No slot in use, `slots` slots, nobody waiting.
    pub(super) fn new(slots: u32) -> Self {
        AdmissionWord {
            word: AtomicU64::new(u64::from(slots) << SLOTS_SHIFT),
            admitted_fast: AtomicU64::new(0),
        }
    }

    /// The slot count (one relaxed load).
    #[inline]
    pub(super) fn slots(&self) -> u32 {
        slots_of(self.word.load(Ordering::Relaxed))
    }

    /// Slots in use (one relaxed load).
    #[inline]
    pub(super) fn used(&self) -> u32 {
        used_of(self.word.load(Ordering::Relaxed))
    }

    /// Slots in use and the slot count, read together with acquire ordering (for snapshots
    /// and the slot adjuster).
    pub(super) fn used_and_slots(&self) -> (u32, u32) {
        let word = self.word.load(Ordering::Acquire);
        (used_of(word), slots_of(word))
    }

    /// Whether the `QUEUED` flag is set.
    pub(super) fn queued(&self) -> bool {
        self.word.load(Ordering::Relaxed) & QUEUED != 0
    }

    /// Whether nothing is admitted and nobody waits.
    pub(super) fn idle(&self) -> bool {
        let word = self.word.load(Ordering::Relaxed);
        used_of(word) == 0 && word & QUEUED == 0
    }

    /// Admissions by the lock-free path so far.
    pub(super) fn admitted_fast(&self) -> u64 {
        self.admitted_fast.load(Ordering::Relaxed)
    }

    /// The lock-free admission: one compare-and-swap when nobody waits and a slot is free.
    #[inline]
    pub(super) fn try_admit(&self) -> bool {
        let mut current = self.word.load(Ordering::Relaxed);
        loop {
            if current & QUEUED != 0 || used_of(current) >= slots_of(current) {
                return false;
            }
            match self.word.compare_exchange_weak(current, current + 1, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) => {
                    self.admitted_fast.fetch_add(1, Ordering::Relaxed);
                    return true;
                }
                Err(actual) => current = actual,
            }
        }
    }

    /// Takes a free slot regardless of the flag (under the lock, for a waiter picked in order).
    pub(super) fn take_slot(&self) -> bool {
        let mut current = self.word.load(Ordering::Relaxed);
        loop {
            if used_of(current) >= slots_of(current) {
                return false;
            }
            match self.word.compare_exchange_weak(current, current + 1, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) => return true,
                Err(actual) => current = actual,
            }
        }
    }

    /// Returns a slot; true if waiters may need it (the caller then hands it on under the lock).
    #[inline]
    pub(super) fn return_slot(&self) -> bool {
        self.word.fetch_sub(1, Ordering::AcqRel) & QUEUED != 0
    }

    /// Whether a slot is free now. Under the lock a plain load suffices: a release that frees a
    /// slot after it sees the `QUEUED` flag (set while anyone waits) hands the slot on.
    #[inline]
    pub(super) fn slot_free(&self) -> bool {
        let word = self.word.load(Ordering::Relaxed);
        used_of(word) < slots_of(word)
    }

    /// Sets the slot count (under the lock).
    pub(super) fn set_slots(&self, slots: u32) {
        let mut current = self.word.load(Ordering::Relaxed);
        loop {
            let next = (current & !SLOTS_MASK) | (u64::from(slots) << SLOTS_SHIFT);
            match self.word.compare_exchange_weak(current, next, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => return,
                Err(actual) => current = actual,
            }
        }
    }

    /// Sets the `QUEUED` flag (under the lock only, where it is also cleared, so a plain load
    /// tells whether an earlier waiter already set it).
    #[inline]
    pub(super) fn set_queued(&self) {
        if self.word.load(Ordering::Relaxed) & QUEUED == 0 {
            self.word.fetch_or(QUEUED, Ordering::AcqRel);
        }
    }

    /// Clears the `QUEUED` flag (under the lock, when the last waiter left). A plain load tells
    /// whether it needs clearing, sparing the hot line a write on every sample.
    #[inline]
    pub(super) fn clear_queued(&self) {
        if self.word.load(Ordering::Relaxed) & QUEUED != 0 {
            self.word.fetch_and(!QUEUED, Ordering::AcqRel);
        }
    }
}
