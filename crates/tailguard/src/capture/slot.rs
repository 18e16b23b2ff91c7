//! The armed spec, published to the layer's hot path without a lock on the read side.
//!
//! Readers load the generation (an atomic word, 0 when nothing is armed) on every candidate
//! root span and compare it with the one their thread has cached; only when it changed do they
//! take the lock to fetch the spec of that generation. Generations are unique for the life of
//! the process, so an equal generation always means the same spec.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::sync::{AtomicU64, Mutex, MutexGuard};

/// The latest armed value and its generation.
pub(crate) struct ArmSlot<T> {
    /// The generation that samples now; 0 when none does.
    generation: AtomicU64,
    /// The latest published value, kept after it is retired (its status is still read).
    current: Mutex<Option<(u64, Arc<T>)>>,
}

impl<T> ArmSlot<T> {
    pub(crate) fn new() -> Self {
        Self { generation: AtomicU64::new(0), current: Mutex::new(None) }
    }

    fn lock(&self) -> MutexGuard<'_, Option<(u64, Arc<T>)>> {
        // The slot is a single assignment: a panic elsewhere cannot leave it half-written.
        self.current.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The generation that samples now (0: none). One atomic load.
    #[inline]
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Makes `value` the latest, sampling under `generation` (non-zero, never used before).
    pub(crate) fn publish(&self, generation: u64, value: Arc<T>) {
        debug_assert_ne!(generation, 0);
        let mut current = self.lock();
        *current = Some((generation, value));
        self.generation.store(generation, Ordering::Release);
    }

    /// Stops `generation` from sampling, if it still does; the value stays the latest.
    pub(crate) fn retire(&self, generation: u64) -> bool {
        self.generation.compare_exchange(generation, 0, Ordering::AcqRel, Ordering::Acquire).is_ok()
    }

    /// The value of `generation`, if it is still the latest.
    pub(crate) fn fetch(&self, generation: u64) -> Option<Arc<T>> {
        match &*self.lock() {
            Some((g, value)) if *g == generation => Some(Arc::clone(value)),
            _ => None,
        }
    }

    /// The latest published value, sampling or not.
    pub(crate) fn latest(&self) -> Option<Arc<T>> {
        self.lock().as_ref().map(|(_, value)| Arc::clone(value))
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use loom::thread;

    /// A reader that sees generation `g` and fetches gets the value published with `g` or
    /// nothing, never another generation's; a retired generation is never seen again.
    #[test]
    fn loom_readers_never_mix_generations() {
        loom::model(|| {
            let slot = Arc::new(ArmSlot::<u64>::new());
            slot.publish(1, Arc::new(1));
            let writer = {
                let slot = Arc::clone(&slot);
                thread::spawn(move || {
                    assert!(slot.retire(1));
                    slot.publish(2, Arc::new(2));
                })
            };
            let reader = {
                let slot = Arc::clone(&slot);
                thread::spawn(move || {
                    let mut last = 0;
                    for _ in 0..2 {
                        let g = slot.generation();
                        if g != 0 {
                            assert!(g >= last, "generations only move forward");
                            last = g;
                            if let Some(value) = slot.fetch(g) {
                                assert_eq!(*value, g);
                            }
                        }
                    }
                })
            };
            writer.join().unwrap();
            reader.join().unwrap();
            assert_eq!(slot.generation(), 2);
            assert!(!slot.retire(1), "a retired generation cannot be retired again");
            assert_eq!(slot.latest().map(|v| *v), Some(2));
        });
    }
}
