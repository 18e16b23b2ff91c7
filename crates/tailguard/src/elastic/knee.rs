//! The adaptive controller's memory of the knee: the share at which latency last went over the
//! target.
//!
//! Scheduling latency against the elastic share is flat, then steep: it stays far under the
//! target until the CPU runs out, then climbs within a few hundredths of share. A controller that
//! climbs fast whenever latency is far under target therefore runs into the knee at full speed,
//! overshoots by the climb rate times the signal's lag, is cut back, and climbs fast again — a
//! limit cycle with a violation every few seconds, each paid for by the foreground.
//!
//! [`KneeMemory`] remembers the share at which the last violation the controller climbed into
//! began (the share rose by more than [`CLIMBED`] in the last [`CLIMB_SPAN`] or so). A violation
//! with the share standing still or falling is not a knee of the controller's making — the
//! foreground grew, or the machine stalled — and leaves the memory as it was: remembering it would
//! pin the share wherever it happened to be, the floor included. After a knee the violation's cut
//! takes effect at once and stops short: for [`KNEE_SETTLE`] the share stays between
//! `knee × (1 − KNEE_BAND)` and `knee × (1 − KNEE_MARGIN)` — the cuts the controller asks for
//! while the signal still shows grants issued before the violation would overshoot — and after it
//! cuts go on as the controller asks if latency is still over target (the knee has moved down).
//! For [`KNEE_MEMORY`] the share is held under `knee × (1 − KNEE_MARGIN)`, so the controller does
//! not probe the knee again within seconds. The hold then lifts and the share may pass the knee,
//! but slowly: from `knee × (1 − KNEE_BAND)` the climb is capped at [`KNEE_APPROACH_PER_SEC`] of
//! the knee per second, so a crossing overshoots by a fraction of a percent and shows as one
//! short violation, which sets the knee anew. After a further [`KNEE_MEMORY`] past the knee
//! without a violation the load has moved, and the knee is forgotten.
//!
//! Nothing is remembered in the first [`KNEE_ARM`] the controller steers. It warms on a window
//! filled while elastic work ran at the floor and leaves it in one large step; latency in the
//! second after mixes that step with the start of the work (first grants, files, cold caches).
//! A violation then is cut as any other, but a knee set by it held the share near the floor for
//! a whole 30 s window of the adapt scenario where the load left room for four times as much.

use std::time::Duration;

/// Width of the slow zone below the knee, as a fraction of the knee's share; also the deepest a
/// violation's first cut goes.
pub(crate) const KNEE_BAND: f64 = 0.15;
/// Margin below the knee at which the share is held after a violation.
pub(crate) const KNEE_MARGIN: f64 = 0.05;
/// Fastest climb inside the slow zone and past the knee, as a fraction of the knee's share per
/// second: the band takes `KNEE_BAND / KNEE_APPROACH_PER_SEC` = 10 s to cross.
pub(crate) const KNEE_APPROACH_PER_SEC: f64 = 0.015;
/// How long the hold lasts, and how long the share must then stay past the knee without a
/// violation before the knee is forgotten.
pub(crate) const KNEE_MEMORY: Duration = Duration::from_secs(10);
/// How long after a violation begins its cut stops at `knee × (1 − KNEE_BAND)`: the signal's
/// lag (the recent part of the window, 500 ms) and grants in flight (100 ms each), with margin.
pub(crate) const KNEE_SETTLE: Duration = Duration::from_secs(1);

/// How long after the controller's first tick a violation may set a knee.
pub(crate) const KNEE_ARM: Duration = Duration::from_secs(1);

/// A rise of the share by more than this fraction counts as a climb into the knee (the
/// reference's step of 0.01 % of the machine per tick is 0.2 % of a 5 % share).
pub(crate) const CLIMBED: f64 = 0.001;
/// How far back a climb into the knee is looked for (between one and two spans).
pub(crate) const CLIMB_SPAN: Duration = Duration::from_secs(2);

/// Where latency last crossed the target, and what has happened since.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct KneeMemory {
    /// The controller's floor: a violation within `KNEE_BAND` of it is no knee (elastic work
    /// near its minimum is not what put latency over target, and holding it there would starve
    /// it).
    floor: f64,
    knee: Option<f64>,
    /// Whether the share is still held below the knee.
    holding: bool,
    /// Seconds since the violation began.
    since_secs: f64,
    /// Seconds of the current phase (holding, then past the knee) without a violation.
    calm_secs: f64,
    /// Whether the previous tick was over target (a violation begins on the first such tick).
    over: bool,
    /// Lowest share of the previous and of the current [`CLIMB_SPAN`], and the current one's age.
    low: [f64; 2],
    low_age_secs: f64,
    /// Seconds observed so far, up to [`KNEE_ARM`].
    armed_secs: f64,
}

impl KneeMemory {
    /// A memory for a controller whose share never goes under `floor`.
    pub(crate) fn new(floor: f64) -> Self {
        KneeMemory { floor, ..KneeMemory::default() }
    }

    /// The remembered knee, if any.
    pub(crate) fn knee(&self) -> Option<f64> {
        self.knee
    }

    /// Records one tick: whether latency is over target now and the share the tick ran at.
    pub(crate) fn observe(&mut self, over: bool, share: f64, secs: f64) {
        let was_over = std::mem::replace(&mut self.over, over);
        let climbed = self.track_low(share, secs);
        // (Tolerant of the rounding in a sum of tick lengths.)
        let armed = self.armed_secs >= KNEE_ARM.as_secs_f64() - 1e-9;
        self.armed_secs = (self.armed_secs + secs).min(KNEE_ARM.as_secs_f64());
        if over && !was_over && climbed && armed && share > self.floor * (1.0 + KNEE_BAND) {
            self.knee = Some(share);
            self.holding = true;
            self.since_secs = 0.0;
            self.calm_secs = 0.0;
            return;
        }
        self.since_secs += secs;
        if over {
            self.calm_secs = 0.0;
            return;
        }
        let Some(knee) = self.knee else { return };
        // The hold's time runs from the violation; the time past the knee only while past it.
        if self.holding || share >= knee {
            self.calm_secs += secs;
        }
        if self.calm_secs >= KNEE_MEMORY.as_secs_f64() {
            self.calm_secs = 0.0;
            if self.holding {
                self.holding = false;
            } else {
                self.knee = None;
            }
        }
    }

    /// Keeps the lowest share of the last one to two [`CLIMB_SPAN`]s; returns whether `share`
    /// is a climb from it.
    fn track_low(&mut self, share: f64, secs: f64) -> bool {
        if self.low_age_secs == 0.0 && self.low == [0.0; 2] {
            self.low = [share; 2];
        }
        self.low_age_secs += secs;
        if self.low_age_secs >= CLIMB_SPAN.as_secs_f64() {
            self.low = [self.low[1], share];
            self.low_age_secs = 0.0;
        }
        self.low[1] = self.low[1].min(share);
        share > self.low[0].min(self.low[1]) * (1.0 + CLIMBED)
    }

    /// Limits the controller's move from `share` to `next` over `secs`: while holding, under
    /// `knee × (1 − KNEE_MARGIN)`, and for [`KNEE_SETTLE`] not under `knee × (1 − KNEE_BAND)`;
    /// climbing fast up to the slow zone, then at most [`KNEE_APPROACH_PER_SEC`] of the knee per
    /// second (but never less than `min_step`, the controller's smallest step).
    pub(crate) fn limit(&self, share: f64, next: f64, secs: f64, min_step: f64) -> f64 {
        let Some(knee) = self.knee else { return next };
        let slow_from = knee * (1.0 - KNEE_BAND);
        let mut next = next;
        if next > share {
            next = if share < slow_from {
                next.min(slow_from)
            } else {
                next.min(share + (KNEE_APPROACH_PER_SEC * knee * secs).max(min_step))
            };
        }
        if self.holding {
            if self.since_secs < KNEE_SETTLE.as_secs_f64() {
                next = next.max(slow_from);
            }
            next = next.min(knee * (1.0 - KNEE_MARGIN));
        }
        next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A memory that saw the share climb from half of `knee` and a violation begin at `knee`.
    fn violated_at(knee: f64) -> KneeMemory {
        let mut memory = KneeMemory::new(0.05);
        memory.observe(false, knee / 2.0, 1.0);
        memory.observe(true, knee, 0.5);
        assert_eq!(memory.knee(), Some(knee));
        memory
    }

    #[test]
    fn no_knee_in_the_first_second() {
        // The first climb out of the floor and a violation right after it: cut, not remembered.
        let mut memory = KneeMemory::new(0.05);
        memory.observe(false, 0.05, 0.1);
        memory.observe(true, 0.136, 0.1);
        assert_eq!(memory.knee(), None);
        assert_eq!(memory.limit(0.12, 0.2, 0.1, 0.0001), 0.2);
        // Armed after KNEE_ARM: the next climb into a violation sets the knee.
        for _ in 0..8 {
            memory.observe(false, 0.12, 0.1);
        }
        memory.observe(true, 0.2, 0.1);
        assert_eq!(memory.knee(), Some(0.2));
    }

    #[test]
    fn no_knee_no_limit() {
        let memory = KneeMemory::new(0.05);
        assert_eq!(memory.limit(0.1, 0.3, 0.1, 0.0001), 0.3);
        assert_eq!(memory.limit(0.3, 0.1, 0.1, 0.0001), 0.1);
    }

    #[test]
    fn a_violation_sets_the_knee_once_per_episode() {
        let mut memory = violated_at(0.4);
        // Still over while the share is cut: the knee stays where the violation began.
        memory.observe(true, 0.35, 0.1);
        assert_eq!(memory.knee(), Some(0.4));
        memory.observe(false, 0.3, 0.1);
        // A new violation after a climb moves the knee down ...
        memory.observe(true, 0.32, 0.1);
        assert_eq!(memory.knee(), Some(0.32));
        // ... one with the share standing still does not.
        for _ in 0..50 {
            memory.observe(false, 0.2, 0.1);
        }
        memory.observe(true, 0.2, 0.1);
        assert_eq!(memory.knee(), Some(0.32));
    }

    #[test]
    fn holds_below_the_knee_then_climbs_slowly() {
        let mut memory = violated_at(0.4);
        // The hold cuts at once to 0.38 and keeps the share there.
        assert!((memory.limit(0.4, 0.39, 0.1, 0.0001) - 0.38).abs() < 1e-12);
        assert!((memory.limit(0.38, 0.385, 0.1, 0.0001) - 0.38).abs() < 1e-12);
        // Once the first cut has settled, far below the knee the climb is fast, up to the slow
        // zone (0.34).
        memory.observe(false, 0.38, 0.5);
        memory.observe(false, 0.38, 0.5);
        assert!((memory.limit(0.2, 0.25, 0.1, 0.0001) - 0.25).abs() < 1e-12);
        assert!((memory.limit(0.33, 0.36, 0.1, 0.0001) - 0.34).abs() < 1e-12);
        // The hold lifts after KNEE_MEMORY (half-second ticks add up exactly).
        for _ in 0..17 {
            memory.observe(false, 0.38, 0.5);
        }
        assert!((memory.limit(0.38, 0.39, 0.1, 0.0001) - 0.38).abs() < 1e-12);
        memory.observe(false, 0.38, 0.5);
        // In the slow zone: 1.5 % of the knee per second, never below the smallest step.
        let capped = memory.limit(0.38, 0.39, 0.1, 0.0001);
        assert!((capped - (0.38 + 0.015 * 0.4 * 0.1)).abs() < 1e-12, "{capped}");
        assert!((memory.limit(0.38, 0.39, 0.1, 0.002) - 0.382).abs() < 1e-12);
        // Cuts pass unchanged.
        assert_eq!(memory.limit(0.38, 0.30, 0.1, 0.0001), 0.30);
    }

    #[test]
    fn forgotten_after_the_memory_past_it_without_violation() {
        let mut memory = violated_at(0.4);
        for _ in 0..20 {
            memory.observe(false, 0.38, 0.5);
        }
        // Below the knee, once the hold is over, time does not count.
        for _ in 0..100 {
            memory.observe(false, 0.39, 0.5);
        }
        assert_eq!(memory.knee(), Some(0.4));
        for _ in 0..19 {
            memory.observe(false, 0.41, 0.5);
        }
        assert_eq!(memory.knee(), Some(0.4));
        memory.observe(false, 0.41, 0.5);
        assert_eq!(memory.knee(), None);
    }

    #[test]
    fn the_first_cut_stops_short_until_the_signal_has_caught_up() {
        let mut memory = violated_at(0.4);
        // A deep cut asked for while the signal still shows the violation: not under 0.34.
        assert!((memory.limit(0.38, 0.1, 0.1, 0.0001) - 0.34).abs() < 1e-12);
        memory.observe(true, 0.34, 0.5);
        memory.observe(true, 0.34, 0.5);
        // Still over after KNEE_SETTLE: the knee has moved; cuts go on.
        assert_eq!(memory.limit(0.34, 0.2, 0.1, 0.0001), 0.2);
        assert_eq!(memory.knee(), Some(0.4));
    }

    #[test]
    fn a_violation_without_a_climb_is_no_knee() {
        // The share sat still (at the floor, say) and latency went over: the foreground grew or
        // the machine stalled. No knee, no hold, no limit on the cut or the climb after it.
        let mut memory = KneeMemory::new(0.05);
        for _ in 0..10 {
            memory.observe(false, 0.2, 0.5);
        }
        memory.observe(true, 0.2, 0.5);
        assert_eq!(memory.knee(), None);
        assert_eq!(memory.limit(0.2, 0.3, 0.1, 0.0001), 0.3);
        // Nor is one just above the floor, climbed into or not.
        let mut memory = KneeMemory::new(0.05);
        memory.observe(false, 0.05, 1.0);
        memory.observe(true, 0.055, 0.5);
        assert_eq!(memory.knee(), None);
    }
}
