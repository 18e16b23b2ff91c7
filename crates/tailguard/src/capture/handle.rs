//! The handle that arms a capture layer and reads what it captured.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::shared::{Armed, ENDED_DISARMED, NEXT_GENERATION, Shared};
use super::trace::{
    CaptureState, CaptureStatus, MinuteHistogram, MinuteOfHourHistogram, Trace, TraceId, TraceSummary,
};
use super::{ArmError, CaptureId, CaptureSpec};

/// Arms a [`CaptureLayer`](super::CaptureLayer) and reads what it captured. Cheap to clone; clones share the layer.
#[derive(Clone)]
pub struct CaptureHandle {
    pub(super) shared: Arc<Shared>,
}

impl CaptureHandle {
    /// Starts sampling requests whose root span is named `spec.fingerprint`, and drops the
    /// traces of any earlier arming.
    ///
    /// # Errors
    ///
    /// [`ArmError`] when the spec is invalid or another arming still samples (hands the spec
    /// back).
    pub fn arm(&self, spec: CaptureSpec) -> Result<CaptureId, ArmError> {
        spec.validate()?;
        let shared = &self.shared;
        let mut store = shared.store();
        let now = shared.clock.now_nanos();
        if let Some(latest) = shared.slot.latest() {
            if shared.state_at(&latest, now) == CaptureState::Armed {
                return Err(ArmError::AlreadyArmed { armed: latest.id, spec: Box::new(spec) });
            }
        }
        let id = CaptureId(store.next_capture);
        store.next_capture += 1;
        store.traces.clear();
        let generation = NEXT_GENERATION.fetch_add(1, Ordering::Relaxed);
        shared.slot.publish(generation, Arc::new(Armed::new(id, generation, spec, now)));
        Ok(id)
    }

    /// Stops the current arming from sampling; its traces stay readable. Requests already
    /// sampled are still recorded and kept. Returns the arming stopped, `None` when none was
    /// sampling.
    pub fn disarm(&self) -> Option<CaptureId> {
        let _store = self.shared.store();
        let latest = self.shared.slot.latest()?;
        if self.shared.state_at(&latest, self.shared.clock.now_nanos()) != CaptureState::Armed {
            return None;
        }
        self.shared.stop(&latest, ENDED_DISARMED);
        Some(latest.id)
    }

    /// The latest arming's state and counters; `None` before the first arming.
    pub fn status(&self) -> Option<CaptureStatus> {
        let latest = self.shared.slot.latest()?;
        let now = self.shared.clock.now_nanos();
        let state = self.shared.state_at(&latest, now);
        let c = &latest.counters;
        Some(CaptureStatus {
            id: latest.id,
            spec: latest.spec.clone(),
            state,
            elapsed: Duration::from_nanos(now.saturating_sub(latest.armed_at_nanos)),
            remaining: Duration::from_nanos(latest.deadline_nanos.saturating_sub(now)),
            sampled: c.sampled.load(Ordering::Relaxed),
            kept: c.kept.load(Ordering::Relaxed),
            below_threshold: c.below_threshold.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            skipped_in_flight: c.skipped_in_flight.load(Ordering::Relaxed),
        })
    }

    /// Summaries of the kept traces, oldest first.
    pub fn traces(&self) -> Vec<TraceSummary> {
        self.shared.store().traces.iter().map(Trace::summary).collect()
    }

    /// One kept trace with its whole span tree.
    pub fn trace(&self, id: TraceId) -> Option<Trace> {
        self.shared.store().traces.iter().find(|t| t.id == id).cloned()
    }

    /// Drops every kept trace (the arming and its counters stay); returns how many.
    pub fn clear(&self) -> usize {
        let mut store = self.shared.store();
        let n = store.traces.len();
        store.traces = Vec::new();
        n
    }

    /// Kept traces per minute since arming.
    pub fn histogram(&self) -> MinuteHistogram {
        MinuteHistogram::from_start_times(self.shared.store().traces.iter().map(|t| t.started_at))
    }

    /// Kept traces per minute of the hour (0–59, UTC, by the layer's clock's
    /// [`unix_nanos`](crate::clock::Clock::unix_nanos)) at which their root was created: work
    /// scheduled at fixed minutes, such as a backup at :00 and another at :35, shows as spikes.
    pub fn minute_of_hour_histogram(&self) -> MinuteOfHourHistogram {
        MinuteOfHourHistogram::from_wall_times(self.shared.store().traces.iter().map(|t| t.started_at_wall))
    }

    /// Sampled requests being recorded now.
    pub fn in_flight(&self) -> usize {
        self.shared.in_flight.load(Ordering::Relaxed)
    }
}

impl fmt::Debug for CaptureHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CaptureHandle").field("status", &self.status()).finish_non_exhaustive()
    }
}
