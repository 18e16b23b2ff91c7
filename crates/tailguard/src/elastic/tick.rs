//! The control loop: each tick reads the signal, runs the controller and sets the bucket's
//! rate; between ticks the limiter's thread grants waiters as soon as their tokens exist and
//! wakes async waiters at their deadlines.

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::config::ControllerKind;
use super::controller::ControllerInput;
use super::shared::{MIN_WAIT_NANOS, Shared, State};
use super::signal::RECENT_SPAN;
use super::snapshot::TickRecord;
use crate::clock::duration_nanos;
use crate::observe::sampling::SAMPLING_LINGER;

/// A cut of more than this fraction of the share in one tick forfeits the bucket's unspent
/// balance and ends the grants in flight at their next meter read (about 1 ms of work), their
/// unused rest forfeited too. Reference-sized steps (0.02 % of the machine per tick) stay
/// below it.
pub const CUT_FORFEITS: f64 = 0.01;

impl Shared {
    /// One controller tick: read the signal → the controller → set the rate; then grant the
    /// waiters whose tokens exist. Returns the share.
    pub(super) fn tick(&self) -> f64 {
        // The window is read before the lock: a snapshot copies histograms.
        let window = self.signal.as_ref().map(|signal| signal.window_snapshot_with_recent(RECENT_SPAN));
        let primed = self.signal.as_ref().is_none_or(|signal| signal.is_primed());
        // Only the adaptive controller reads the quiet latency.
        let total = match self.config.controller {
            ControllerKind::Adaptive if self.config.quiet_factor > 0.0 => {
                self.signal.as_ref().and_then(|signal| signal.total_snapshot())
            }
            _ => None,
        };
        // The utilisation peer's CPU totals, also before the lock (a source may read a file).
        let cpu = self.cpu_reading();
        let steal = self.steal.as_ref().and_then(|source| source.read());
        let now = self.clock.now_nanos();
        let mut guard = self.lock();
        let state = &mut *guard;
        let previous = state.share(&self.config);
        let tick_start = state.last_tick_nanos;

        // Read the signal, and the demand since the last tick.
        let reading = state.signal.read(window.as_ref(), primed, &self.config, now);
        let demand = state.demand.end_tick(state.queue.is_empty(), tick_start, now, state.bucket.rate());
        self.lower_sampling_when_idle(state, now);
        state.quiet.observe(total, demand.quiet, now);
        let quiet_p99 = state.quiet.quantile(self.config.quantile);
        let steal = state.steal.observe(now, steal);

        // The controller.
        state.controller.tick(ControllerInput {
            p99: reading.p99,
            recent_p99: reading.recent_p99,
            waiting_now: demand.waiting_now,
            waiting_fraction: demand.waiting_fraction,
            used_fraction: demand.used_fraction,
            elapsed: Duration::from_nanos(now.saturating_sub(tick_start).max(1)),
            silent: reading.silent,
            cpu,
            quiet_p99,
            steal,
        });

        // Set the rate. Blind start grants at the floor, silent or not; once warm, a silent
        // signal makes the controller fall to the floor.
        let share = state.share(&self.config);
        state.bucket.set_rate(share * self.config.cores, now);
        if share < previous * (1.0 - CUT_FORFEITS) {
            // A real cut (not a reference-sized trim): unspent tokens of the old share would let
            // elastic work run on at that share for up to a second after latency went over.
            state.bucket.forfeit(now);
            // Grants in flight were sized for the old share: they end at their next check.
            self.cuts.fetch_add(1, Ordering::Relaxed);
        }

        // No quiet tick for a while, though work asks for CPU: drain, to measure the machine's
        // own latency (`elastic/quiet.rs`); grants in flight end at their next check.
        let demanding = demand.waiting_now || demand.granted;
        if state.signal.warm && state.quiet.begin_drain(demanding, now, duration_nanos(self.config.tick)) {
            self.cuts.fetch_add(1, Ordering::Relaxed);
        }

        state.ticks += 1;
        state.last_tick_nanos = now;
        let at = Duration::from_nanos(now.saturating_sub(self.created_nanos));
        let p99 = state.signal.latest_p99;
        let (waiting_fraction, used_fraction) = (demand.waiting_fraction, demand.used_fraction);
        let recent_p99 = reading.recent_p99;
        let knee = state.controller.knee();
        state.history.push(TickRecord { at, share, p99, recent_p99, waiting_fraction, used_fraction, knee });
        #[cfg(feature = "metrics")]
        super::metrics::record(&super::metrics::TickMetrics {
            share,
            p99,
            target: state.controller.working_target(),
            waiters: state.queue.len(),
            balance_nanos: state.bucket.balance_nanos(),
            silent: reading.silent,
        });
        if self.grant_waiters(state, now) {
            self.changed.notify_all();
        }
        self.unlock(guard);
        share
    }

    /// Tells the signal it is no longer wanted at full rate once no work has asked for CPU for
    /// [`SAMPLING_LINGER`] (waiters still in line are asking).
    fn lower_sampling_when_idle(&self, state: &mut State, now: u64) {
        if !state.queue.is_empty() {
            state.sampling.last_asked_nanos = now;
        }
        let idle_for = now.saturating_sub(state.sampling.last_asked_nanos);
        if state.sampling.wanted && idle_for >= duration_nanos(SAMPLING_LINGER) {
            state.sampling.wanted = false;
            if let Some(signal) = &self.signal {
                signal.set_wanted(false);
            }
        }
    }

    /// The background loop of [`LimiterBuilder::start`](super::LimiterBuilder::start).
    pub(super) fn run(&self) {
        let tick_nanos = duration_nanos(self.config.tick);
        let mut next_tick = self.clock.now_nanos().saturating_add(tick_nanos);
        while !self.stopped.load(Ordering::Acquire) {
            let now = self.clock.now_nanos();
            if now >= next_tick {
                self.tick();
                next_tick = next_tick.saturating_add(tick_nanos).max(now);
                continue;
            }
            let mut state = self.lock();
            if self.grant_waiters(&mut state, now) {
                self.changed.notify_all();
            }
            if !state.to_wake.is_empty() {
                self.unlock(state);
                continue;
            }
            let mut wait = next_tick - now;
            if state.quiet.draining(now) {
                // Nothing is granted until the drain ends.
                wait = wait.min(state.quiet.drain_left(now).max(MIN_WAIT_NANOS));
            } else if !state.queue.is_empty() {
                wait = wait.min(state.bucket.nanos_until_positive().max(MIN_WAIT_NANOS));
            }
            if let Some(deadline) = state.queue.earliest_deadline() {
                // An async waiter's deadline: wake it then, not at the next tick.
                wait = wait.min(deadline.saturating_sub(now).max(MIN_WAIT_NANOS));
            }
            if self.stopped.load(Ordering::Acquire) {
                break;
            }
            drop(self.changed.wait_timeout(state, Duration::from_nanos(wait)));
        }
    }
}
