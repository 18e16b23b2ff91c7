//! The demand signal: for how much of a tick elastic work waited for a grant, and how much of
//! its share it was granted (DESIGN §9, "Demand signal": sampling "are requests waiting?" once
//! per tick misses demand).
//!
//! The share used is read over the ticks of the last [`USE_SPAN`], not one tick: a grant
//! (100 ms of CPU by default) is larger than a tick's allowance at any share under half the
//! machine on 2 cores, so work that uses its whole share is granted nothing in some ticks and
//! twice the allowance in others. Read per tick, the adaptive controller's "used at least half
//! its share" failed on about every other tick and its climb ran at half its rate (measured:
//! 0.08–0.1 of the machine per second where the rule gives 0.16, docs/design-notes.md).

use std::collections::VecDeque;
use std::time::Duration;

/// How far back the share used is read.
pub const USE_SPAN: Duration = Duration::from_millis(500);

/// Demand during the tick under way.
#[derive(Debug, Default)]
pub(super) struct Demand {
    /// Since when the wait queue has been non-empty, if it is.
    waiting_since_nanos: Option<u64>,
    /// Time during this tick the queue was non-empty, before `waiting_since_nanos`.
    waited_nanos: u64,
    /// A `try_acquire` (or a timed-out wait) was refused this tick: work wanted CPU.
    refused: bool,
    /// CPU granted this tick, in nanoseconds.
    granted_nanos: u64,
    /// Grants handed out and not yet settled (or refunded).
    held: u64,
    /// A grant was held at some time during this tick.
    busy: bool,
    /// The ticks of the last [`USE_SPAN`]: when each ended, the CPU granted in it and what the
    /// rate allowed, in nanoseconds.
    recent: VecDeque<(u64, u64, f64)>,
}

/// One tick's demand, as the controller reads it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct DemandReading {
    /// Work waits at the tick (or was refused during it).
    pub(super) waiting_now: bool,
    /// Fraction of the tick (0 ..= 1) during which work waited; 1 after a refusal.
    pub(super) waiting_fraction: f64,
    /// CPU granted during the ticks of the last [`USE_SPAN`] as a fraction of what the rate
    /// allowed in them (may exceed 1).
    pub(super) used_fraction: f64,
    /// Some CPU was granted during this tick.
    pub(super) granted: bool,
    /// No grant was held at any time during the tick: the latency it saw is the machine's own.
    pub(super) quiet: bool,
}

impl Demand {
    /// Notes whether the wait queue is empty now (call after every change to it).
    #[inline]
    pub(super) fn note_queue(&mut self, empty: bool, now: u64) {
        match (empty, self.waiting_since_nanos) {
            (false, None) => self.waiting_since_nanos = Some(now),
            (true, Some(since)) => {
                self.waited_nanos += now.saturating_sub(since);
                self.waiting_since_nanos = None;
            }
            _ => {}
        }
    }

    /// A request for CPU was refused.
    #[inline]
    pub(super) fn refused(&mut self) {
        self.refused = true;
    }

    /// `nanos` of CPU were granted.
    #[inline]
    pub(super) fn granted(&mut self, nanos: u64) {
        self.granted_nanos += nanos;
        self.held += 1;
        self.busy = true;
    }

    /// A grant of `nanos` was never collected: it does not count.
    pub(super) fn ungranted(&mut self, nanos: u64) {
        self.granted_nanos = self.granted_nanos.saturating_sub(nanos);
        self.settled();
    }

    /// A grant's work ended (its handle was dropped).
    pub(super) fn settled(&mut self) {
        self.held = self.held.saturating_sub(1);
    }

    /// Ends the tick that began at `tick_start` at `now`, with the queue `empty` or not and the
    /// bucket filling at `rate` CPU-nanoseconds per nanosecond, and starts the next one.
    pub(super) fn end_tick(&mut self, empty: bool, tick_start: u64, now: u64, rate: f64) -> DemandReading {
        let elapsed_nanos = now.saturating_sub(tick_start).max(1);
        if let Some(since) = self.waiting_since_nanos {
            self.waited_nanos += now.saturating_sub(since.max(tick_start));
            self.waiting_since_nanos = Some(now);
        }
        let waiting_fraction =
            if self.refused { 1.0 } else { (self.waited_nanos as f64 / elapsed_nanos as f64).min(1.0) };
        self.recent.push_back((now, self.granted_nanos, rate * elapsed_nanos as f64));
        let span_start = now.saturating_sub(crate::clock::duration_nanos(USE_SPAN));
        while self.recent.front().is_some_and(|&(end, _, _)| end <= span_start) {
            self.recent.pop_front();
        }
        let (granted, allowed) =
            self.recent.iter().fold((0u64, 0.0), |(g, a), &(_, granted, allowed)| (g + granted, a + allowed));
        let reading = DemandReading {
            waiting_now: !empty || self.refused,
            waiting_fraction,
            used_fraction: granted as f64 / allowed.max(1.0),
            granted: self.granted_nanos > 0,
            quiet: !self.busy,
        };
        // A grant still held is held during the next tick too.
        self.busy = self.held > 0;
        self.waited_nanos = 0;
        self.granted_nanos = 0;
        self.refused = false;
        reading
    }
}

/// Whether the limiter wants its signal at full rate, and when work last asked for CPU
/// ([`crate::observe::sampling`]).
#[derive(Debug)]
pub(super) struct Sampling {
    /// The signal was told it is wanted.
    pub(super) wanted: bool,
    /// When work last asked for CPU (a grant, a refusal, a wait) or waited at a tick.
    pub(super) last_asked_nanos: u64,
}

impl Sampling {
    /// Wanted from `now` on, as if work had just asked.
    pub(super) fn new(now: u64) -> Self {
        Sampling { wanted: true, last_asked_nanos: now }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TICK: u64 = 100_000_000;

    #[test]
    fn the_share_used_is_read_over_the_span_not_one_tick() {
        // A rate of 0.6 CPU-ns per ns allows 60 ms a tick; a 100 ms grant every other tick uses
        // 5/6 of it. One tick alone reads 0 or 5/3.
        let mut demand = Demand::default();
        let mut readings = Vec::new();
        for tick in 0..20u64 {
            if tick % 2 == 0 {
                demand.granted(100_000_000);
                demand.settled();
            }
            readings.push(demand.end_tick(false, tick * TICK, (tick + 1) * TICK, 0.6));
        }
        for reading in &readings[5..] {
            // Five ticks in the span: three grants or two.
            assert!((0.66..=1.0).contains(&reading.used_fraction), "{}", reading.used_fraction);
        }
        assert!(readings.iter().step_by(2).all(|r| r.granted));
        assert!(readings.iter().skip(1).step_by(2).all(|r| !r.granted));
        // Work that stops: the span forgets it within USE_SPAN.
        for tick in 20..26u64 {
            let reading = demand.end_tick(true, tick * TICK, (tick + 1) * TICK, 0.6);
            assert_eq!(reading.used_fraction == 0.0, tick >= 23, "tick {tick}: {}", reading.used_fraction);
        }
    }
}
