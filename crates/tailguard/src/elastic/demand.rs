//! The demand signal: for how much of a tick elastic work waited for a grant, and how much of
//! its share it was granted (DESIGN §9, "Demand signal": sampling "are requests waiting?" once
//! per tick misses demand).

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
}

/// One tick's demand, as the controller reads it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct DemandReading {
    /// Work waits at the tick (or was refused during it).
    pub(super) waiting_now: bool,
    /// Fraction of the tick (0 ..= 1) during which work waited; 1 after a refusal.
    pub(super) waiting_fraction: f64,
    /// CPU granted during the tick as a fraction of what the rate allowed (may exceed 1).
    pub(super) used_fraction: f64,
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
        let allowed = rate * elapsed_nanos as f64;
        let reading = DemandReading {
            waiting_now: !empty || self.refused,
            waiting_fraction,
            used_fraction: self.granted_nanos as f64 / allowed.max(1.0),
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
