//! What the capture layer and its handles share: the current arming with its sampling
//! threshold and counters, and the store of kept traces.

use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use super::slot::ArmSlot;
use super::trace::{CaptureState, Trace, TraceId};
use super::{CaptureId, CaptureSpec};
use crate::clock::{SharedClock, duration_nanos};

/// Generations of armed specs, unique in the process (so that one thread-local cache serves
/// every layer). 0 means "none".
pub(super) static NEXT_GENERATION: AtomicU64 = AtomicU64::new(1);

/// An arming: its spec, its sampling threshold and its counters.
pub(crate) struct Armed {
    pub(crate) id: CaptureId,
    pub(super) generation: u64,
    pub(crate) spec: CaptureSpec,
    /// A root is sampled when its draw is below this (`probability × 2^64`), ...
    sample_below: u64,
    /// ... or always, for a probability of 1.
    sample_all: bool,
    pub(crate) armed_at_nanos: u64,
    pub(super) deadline_nanos: u64,
    /// Threads that have cached this arming, to seed their generators apart.
    pub(super) threads: AtomicU64,
    /// 0 while sampling, else the [`CaptureState`] code it ended with.
    ended: AtomicU8,
    pub(crate) counters: Counters,
}

/// Counters of an arming, all monotonically increasing, never reset.
#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) sampled: AtomicU64,
    pub(crate) kept: AtomicU64,
    pub(crate) below_threshold: AtomicU64,
    pub(crate) dropped: AtomicU64,
    pub(crate) skipped_in_flight: AtomicU64,
}

/// The [`CaptureState`] codes an arming ends with (0: still sampling).
pub(super) const ENDED_EXPIRED: u8 = 1;
pub(super) const ENDED_FULL: u8 = 2;
pub(super) const ENDED_DISARMED: u8 = 3;

impl Armed {
    pub(super) fn new(id: CaptureId, generation: u64, spec: CaptureSpec, now_nanos: u64) -> Self {
        let sample_all = spec.probability >= 1.0;
        // Saturating float-to-int cast; `probability` is in 0.0 ..= 1.0 (validated).
        let sample_below = (spec.probability * 18_446_744_073_709_551_616.0) as u64;
        let deadline_nanos = now_nanos.saturating_add(duration_nanos(spec.window));
        Self {
            id,
            generation,
            spec,
            sample_below,
            sample_all,
            armed_at_nanos: now_nanos,
            deadline_nanos,
            threads: AtomicU64::new(0),
            ended: AtomicU8::new(0),
            counters: Counters::default(),
        }
    }

    #[inline]
    pub(super) fn samples(&self, draw: u64) -> bool {
        draw < self.sample_below || self.sample_all
    }

    /// Ends sampling with `code` unless it already ended; true when this call ended it.
    pub(super) fn end(&self, code: u8) -> bool {
        self.ended.compare_exchange(0, code, Ordering::AcqRel, Ordering::Acquire).is_ok()
    }

    pub(super) fn state(&self) -> CaptureState {
        match self.ended.load(Ordering::Acquire) {
            0 => CaptureState::Armed,
            ENDED_EXPIRED => CaptureState::Expired,
            ENDED_FULL => CaptureState::Full,
            _ => CaptureState::Disarmed,
        }
    }
}

/// Kept traces and id counters, behind the layer's one lock (taken by sampled requests when
/// they finish, and by the handle).
#[derive(Default)]
pub(super) struct Store {
    pub(super) traces: Vec<Trace>,
    pub(super) next_capture: u64,
    pub(super) next_trace: u64,
}

/// State shared by the layer and its handles.
pub(crate) struct Shared {
    pub(crate) clock: SharedClock,
    pub(super) slot: ArmSlot<Armed>,
    /// Sampled requests being recorded (of any arming). While 0, span events skip the lookup of
    /// the span's extensions altogether.
    pub(crate) in_flight: AtomicUsize,
    pub(super) store: Mutex<Store>,
}

impl Shared {
    pub(super) fn store(&self) -> MutexGuard<'_, Store> {
        // Every update of the store is a single push, clear or counter step.
        self.store.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The state of `armed` at `now_nanos`; notices the end of its window.
    pub(super) fn state_at(&self, armed: &Armed, now_nanos: u64) -> CaptureState {
        if armed.state() == CaptureState::Armed && now_nanos >= armed.deadline_nanos {
            self.stop(armed, ENDED_EXPIRED);
        }
        armed.state()
    }

    pub(super) fn stop(&self, armed: &Armed, code: u8) {
        armed.end(code);
        self.slot.retire(armed.generation);
    }

    /// Keeps a finished trace of `armed`, if it is still the latest arming and has room.
    pub(crate) fn keep(&self, armed: &Arc<Armed>, mut trace: Trace) {
        let mut store = self.store();
        let latest = self.slot.latest().is_some_and(|latest| Arc::ptr_eq(&latest, armed));
        let kept = armed.counters.kept.load(Ordering::Relaxed);
        if !latest || kept >= armed.spec.max_captures.get() as u64 {
            armed.counters.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        trace.id = TraceId(store.next_trace);
        store.next_trace += 1;
        store.traces.push(trace);
        armed.counters.kept.store(kept + 1, Ordering::Relaxed);
        if kept + 1 >= armed.spec.max_captures.get() as u64 {
            self.stop(armed, ENDED_FULL);
        }
    }
}
