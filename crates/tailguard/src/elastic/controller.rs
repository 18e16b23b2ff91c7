//! The controller: a pure, deterministic state machine from the latency signal to the share.
//!
//! Each tick it reads the window's p99 (or the configured quantile), whether elastic work waits
//! for grants and how much of its share it used, and returns the elastic share of all cores,
//! always within `[floor, ceiling]`.
//!
//! # Reference variant (CockroachDB's rule, DESIGN §4 and §8)
//!
//! ```text
//! delta = delta_per_sec * tick                      (0.1 %/s -> 0.01 % per 100 ms tick)
//! if p99 > target:      share = max(share - down_factor * delta, floor)      (2 x delta)
//! else if waiting now:  share = min(share + delta, ceiling)
//! else if share > inactive:
//!                       share = max(share - inactive_factor * delta, inactive) (0.25 x delta)
//! ```
//!
//! Constants come from CockroachDB's elastic CPU granter defaults: target 1 ms, floor 5 %,
//! ceiling 75 %, inactive point 10 % of the way from floor to ceiling, delta 0.1 %/s,
//! down factor 2, inactive factor 0.25. Climbing from 12 % to 75 % takes ~630 s.
//!
//! # Adaptive variant (ours)
//!
//! It reads two p99s: the whole window's (2.5 s) and its recent part's
//! ([`RECENT_SPAN`](super::RECENT_SPAN), 500 ms, when it holds at least
//! [`MIN_RECENT_SAMPLES`](super::MIN_RECENT_SAMPLES)). A window's p99 rises within a few
//! samples of a rise but holds a fall for its whole length; the recent part tells whether the
//! latency is high *now*. The error is `e = ln(p99 / target)`, where the target is the
//! *working* target: the configured one, or [`LimiterConfig::quiet_factor`] (1.5) times the
//! p99 the limiter measured while no elastic work ran (`elastic/quiet.rs`) when that is higher
//! — elastic work is not blamed for the latency the machine has without it.
//!
//! - Near the target (`|e| <= NEAR_BAND`, p99 within ×0.8 ..= ×1.25 of target) it takes the
//!   reference's small steps, so it is as stable as the reference where it matters.
//! - Over target now (the recent p99, or the window's when there is no recent part) beyond the
//!   band it cuts at `DOWN_GAIN_PER_SEC × min(e, MAX_ERROR)` per second (at least the reference
//!   down step), from the share elastic work used over the last 500 ms when that was less (not
//!   under half the share): a cut of an allotment it could not use would change nothing. While that p99 already falls (by more than `FALLING` a tick), earlier cuts are
//!   still reaching it, so the cut is scaled by `DAMPING`.
//! - The window over target but the recent part back under it: it holds. The window only
//!   remembers; cutting on it is what made a 2.5 s window undershoot.
//! - Under target in both, and only while work waits for a meaningful part of the tick
//!   (`waiting_fraction >= DEMAND_FRACTION`) and uses at least `USED_FRACTION` of its share (over
//!   the last 500 ms, [`USE_SPAN`](super::USE_SPAN)), it
//!   climbs at `UP_GAIN_PER_SEC × min(-e, MAX_ERROR)` per second with the recent p99 (at least
//!   the reference step), damped while it rises within `RISE_ZONE` of the target (below half
//!   the target a rise is noise the climb can afford). It once climbed by the worse of the two
//!   p99s, and the window's, holding every spike of its 2.5 s, kept it at the reference's step
//!   for seconds at a time; overshoot is now the knee memory's business.
//! - Without demand it decays toward the inactive point at `DECAY_PER_SEC`, and faster toward
//!   `USE_HEADROOM` (1.25) times the share elastic work used over the last 500 ms when that is
//!   lower, closing `TRACK_USE_PER_SEC` of the gap per second: work held back by the foreground
//!   (at `SCHED_IDLE`) leaves an allotment it cannot use, and the share follows it down so that
//!   the share binds — a climb is then the controller's to make, and the knee memory sees it.
//! - Over all of these, the knee of the last violation (`elastic/knee.rs`): after latency goes
//!   over target the share is held 5 % under the share where it did, for 10 s; then it may pass
//!   that share, but only at 1.5 % of it per second. A controller that climbs fast far under
//!   target would otherwise run into the steep part of the latency curve at full speed, again
//!   and again (a limit cycle).
//!
//! # Utilisation peer
//!
//! [`ControllerKind::Utilization`] is not a latency controller: it runs TiKV's utilisation rule
//! ([`super::utilization`]) on the CPU totals of [`ControllerInput::cpu`], once per period, and
//! ignores p99 and silence. It is here so the demo can measure it beside the two variants above.
//!
//! # A silent signal
//!
//! When the limiter finds the latency signal silent (no samples for
//! [`LimiterConfig::silence`]), both feedback variants fail safe: the share falls toward the
//! floor at `SILENT_DECAY_PER_SEC` whatever else the input says, and feedback resumes from
//! there when samples return.
//!
//! On this module's test plant the adaptive controller settles after a 40 % → 60 % load step
//! within 4 ticks (0.4 s); the reference is still above 0.3 forty seconds later (the transient
//! tests; docs/design-notes.md, "Controller reads a recent part of its window").
//!
//! The tests, which run both variants against the same plants (a smooth one and one with a
//! knee), are in `controller/tests.rs`.

use std::time::Duration;

use super::config::{ControllerKind, LimiterConfig};
use super::knee::KneeMemory;
use super::steal::STEAL_CUT_ABOVE;
use super::utilization::{CpuReading, UtilizationRule};

/// Half-width of the band around the target, in units of `ln(p99/target)`: `ln 1.25`.
/// Inside it the adaptive variant takes reference-sized steps.
pub(crate) const NEAR_BAND: f64 = 0.223_143_551_314_209_7;
/// Adaptive down gain: share per second per unit of `ln(p99/target)`. 0.25 halves a 50 %
/// share within a second when p99 is e (2.7) times the target.
pub(crate) const DOWN_GAIN_PER_SEC: f64 = 0.25;
/// Adaptive up gain: share per second per unit of `-ln(p99/target)`; a third of the down gain
/// (down faster than up, as the reference's factor 2, but with more margin for the lag).
pub(crate) const UP_GAIN_PER_SEC: f64 = 0.08;
/// Largest error the adaptive steps scale with (p99 at ~7.4× or ~0.14× the target).
pub(crate) const MAX_ERROR: f64 = 2.0;
/// Relative fall of p99 between ticks counted as "already falling".
pub(crate) const FALLING: f64 = 0.02;
/// Scale applied to cuts while p99 already falls, and to climbs while it rises within
/// [`RISE_ZONE`] of the target.
pub(crate) const DAMPING: f64 = 0.5;
/// Below `target × e^-RISE_ZONE` (half the target) a rising p99 does not slow the climb.
pub(crate) const RISE_ZONE: f64 = std::f64::consts::LN_2;
/// Highest working target the quiet latency may raise the adaptive variant's to: the highest
/// target a configuration may set (1 s).
const MAX_WORKING_TARGET_NANOS: f64 = 1e9;
/// Lowest working target [`LimiterConfig::quiet_headroom`] may bring the adaptive variant's
/// to: under it a probe's p99 is timer and wake-up noise on the project's VMs (their quietest
/// scheduling p99 measured, 0.06 ms).
pub const MIN_WORKING_TARGET: Duration = Duration::from_micros(50);
/// Fraction of the tick during which work must have waited to count as demand.
pub(crate) const DEMAND_FRACTION: f64 = 0.10;
/// Fraction of its share elastic work must have used to earn an increase.
pub(crate) const USED_FRACTION: f64 = 0.50;
/// The least fraction of its share a cut may start from when elastic work used less (one
/// reading of the grants over 500 ms is coarse: a grant or two).
pub(crate) const CUT_FROM_USE_LEAST: f64 = 0.5;
/// Adaptive decay of an unused share toward the inactive point, share per second (2 %/s).
pub(crate) const DECAY_PER_SEC: f64 = 0.02;
/// Without demand, the adaptive share falls toward this multiple of the share elastic work
/// used over the last 500 ms, at [`TRACK_USE_PER_SEC`]: an allotment the work cannot use (held
/// back at `SCHED_IDLE` by the foreground) is one no later cut can take back from it.
pub(crate) const USE_HEADROOM: f64 = 1.25;
/// Fraction of the gap between the share and [`USE_HEADROOM`] × its use closed per second.
pub(crate) const TRACK_USE_PER_SEC: f64 = 1.0;
/// Fall of the share toward the floor while the signal is silent, share per second: from the
/// default ceiling (75 %) to the floor (5 %) in 1.4 s, as fast as the adaptive variant's
/// largest cut.
pub(crate) const SILENT_DECAY_PER_SEC: f64 = DOWN_GAIN_PER_SEC * MAX_ERROR;

/// What the controller sees each tick.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ControllerInput {
    /// The window's latency quantile; `None` while the window has no samples or is not warm
    /// (the share then stays put).
    pub p99: Option<Duration>,
    /// The same quantile over the newest part of the window
    /// ([`RECENT_SPAN`](super::RECENT_SPAN)); `None` when the signal does not keep it apart or
    /// it holds too few samples. Only the adaptive variant reads it.
    pub recent_p99: Option<Duration>,
    /// Whether work was waiting for a grant at the moment of the tick (the reference's signal).
    pub waiting_now: bool,
    /// Fraction of the tick (0 ..= 1) during which some work waited for a grant.
    pub waiting_fraction: f64,
    /// CPU granted as a fraction of what the share allowed (may exceed 1), over the ticks of the
    /// last [`USE_SPAN`](super::USE_SPAN): a grant is larger than one tick's allowance.
    pub used_fraction: f64,
    /// Wall time since the previous tick.
    pub elapsed: Duration,
    /// The signal delivered no samples for the configured silence span: fail safe, fall
    /// toward the floor (feedback variants only; a fixed share does not read the signal).
    pub silent: bool,
    /// CPU totals read at this tick, for the utilisation peer
    /// ([`ControllerKind::Utilization`]); `None` when the limiter has no CPU source or it could
    /// not be read. The latency variants ignore it.
    pub cpu: Option<CpuReading>,
    /// The latency quantile of recent ticks without elastic work (`elastic/quiet.rs`), when
    /// enough were seen. The adaptive variant keeps its working target at least
    /// [`LimiterConfig::quiet_factor`] times this.
    pub quiet_p99: Option<Duration>,
    /// Fraction of the machine's CPU time stolen by a hypervisor over the newest half second
    /// (`elastic/steal.rs`), when read. The adaptive variant holds instead of cutting while it
    /// is at least [`LimiterConfig::steal_hold`].
    pub steal: Option<f64>,
}

/// The share controller. `tick` is a pure function of its state and input.
#[derive(Clone, Debug)]
pub struct Controller {
    kind: ControllerKind,
    target_nanos: f64,
    quiet_factor: f64,
    quiet_headroom: f64,
    steal_hold: f64,
    /// The adaptive variant's target at its last tick.
    working_target_nanos: f64,
    floor: f64,
    ceiling: f64,
    inactive: f64,
    delta_per_sec: f64,
    down_factor: f64,
    inactive_factor: f64,
    share: f64,
    last_p99_nanos: Option<f64>,
    last_recent_nanos: Option<f64>,
    /// Where the adaptive variant last went over target (`elastic/knee.rs`).
    knee: KneeMemory,
    /// The utilisation peer's state (only for [`ControllerKind::Utilization`]).
    utilization: Option<UtilizationRule>,
}

impl Controller {
    /// A controller for a validated config, starting at `initial_share` (default: the inactive
    /// point) or at the fixed share.
    pub fn new(config: &LimiterConfig) -> Self {
        let share = match config.controller {
            ControllerKind::Fixed(share) => share,
            _ => config.initial_share.unwrap_or_else(|| config.inactive_share()),
        };
        Controller {
            kind: config.controller,
            target_nanos: config.target.as_nanos() as f64,
            quiet_factor: config.quiet_factor,
            quiet_headroom: config.quiet_headroom,
            steal_hold: config.steal_hold,
            working_target_nanos: config.target.as_nanos() as f64,
            floor: config.floor,
            ceiling: config.ceiling,
            inactive: config.inactive_share(),
            delta_per_sec: config.delta_per_sec,
            down_factor: config.down_factor,
            inactive_factor: config.inactive_factor,
            share,
            last_p99_nanos: None,
            last_recent_nanos: None,
            knee: KneeMemory::new(config.floor),
            utilization: match config.controller {
                ControllerKind::Utilization { period } => {
                    Some(UtilizationRule::new(period, config.cores, config.floor, config.ceiling))
                }
                _ => None,
            },
        }
    }

    /// The current share of all cores.
    pub fn share(&self) -> f64 {
        self.share
    }

    /// The target the last tick steered by: the configured one, or for the adaptive variant
    /// [`LimiterConfig::quiet_factor`] times the quiet latency when that is higher.
    pub fn working_target(&self) -> Duration {
        Duration::from_nanos(self.working_target_nanos as u64)
    }

    /// Which variant this is.
    pub fn kind(&self) -> ControllerKind {
        self.kind
    }

    /// The share at which the adaptive variant last saw latency go over target, while it
    /// remembers it (`elastic/knee.rs`); `None` for the other variants.
    pub fn knee(&self) -> Option<f64> {
        self.knee.knee()
    }

    /// Sets the share by hand (clamped to `[floor, ceiling]`); ignored by `Fixed`.
    pub fn set_share(&mut self, share: f64) {
        if !matches!(self.kind, ControllerKind::Fixed(_)) && share.is_finite() {
            self.share = share.clamp(self.floor, self.ceiling);
        }
    }

    /// Advances one tick and returns the new share.
    pub fn tick(&mut self, input: ControllerInput) -> f64 {
        if let Some(rule) = &mut self.utilization {
            // The peer reads CPU, not latency: neither p99 nor silence concerns it.
            self.share = rule.tick(self.share, input.elapsed, input.cpu);
            return self.share;
        }
        if input.silent && self.kind.reads_latency() {
            let step = SILENT_DECAY_PER_SEC * input.elapsed.as_secs_f64();
            self.share = (self.share - step).max(self.floor);
            // Feedback resumes from fresh readings, not from those before the silence.
            self.last_p99_nanos = None;
            self.last_recent_nanos = None;
            return self.share;
        }
        let Some(p99) = input.p99 else { return self.share };
        let p99_nanos = p99.as_nanos() as f64;
        let secs = input.elapsed.as_secs_f64();
        let share = match self.kind {
            ControllerKind::Fixed(share) => share,
            ControllerKind::Reference => self.reference(p99_nanos, input.waiting_now, secs),
            ControllerKind::Adaptive => self.adaptive(p99_nanos, input, secs),
            // Handled above: the rule exists for every utilisation controller.
            ControllerKind::Utilization { .. } => self.share,
        };
        self.last_p99_nanos = Some(p99_nanos);
        self.last_recent_nanos = input.recent_p99.map(|recent| recent.as_nanos() as f64);
        self.share = share;
        share
    }

    fn reference(&self, p99_nanos: f64, waiting: bool, secs: f64) -> f64 {
        let delta = self.delta_per_sec * secs;
        if p99_nanos > self.target_nanos {
            (self.share - delta * self.down_factor).max(self.floor)
        } else if waiting {
            (self.share + delta).min(self.ceiling)
        } else if self.share > self.inactive {
            (self.share - delta * self.inactive_factor).max(self.inactive)
        } else {
            self.share
        }
    }

    /// Where the adaptive variant's cut starts: the share elastic work used over the last
    /// [`USE_SPAN`](super::USE_SPAN) when it used less than its share, never under
    /// `CUT_FROM_USE_LEAST` of it; the share when nothing was granted (no reading). A cut of an
    /// allotment elastic work could not use — held back by the foreground, at `SCHED_IDLE` —
    /// changes nothing until the share has come down to its use, seconds at the cut rate.
    fn used_share(&self, used_fraction: f64) -> f64 {
        if used_fraction > 0.0 {
            self.share * used_fraction.clamp(CUT_FROM_USE_LEAST, 1.0)
        } else {
            self.share
        }
    }

    fn adaptive(&mut self, p99_nanos: f64, input: ControllerInput, secs: f64) -> f64 {
        // Elastic work is not blamed for the latency the machine has without it.
        let quiet = input.quiet_p99.map_or(0.0, |quiet| quiet.as_nanos() as f64);
        let mut target = self.target_nanos.max(self.quiet_factor * quiet);
        if self.quiet_headroom > 0.0 && quiet > 0.0 {
            target = target.min(self.quiet_headroom * quiet).max(MIN_WORKING_TARGET.as_nanos() as f64);
        }
        let target = target.min(MAX_WORKING_TARGET_NANOS);
        self.working_target_nanos = target;
        let recent_nanos = input.recent_p99.map(|recent| recent.as_nanos() as f64);
        // Whether latency is over target now: the recent part says so when there is one (the
        // whole window holds a fall for its whole length).
        let now_nanos = recent_nanos.unwrap_or(p99_nanos);
        // Over target while the host steals the machine's CPU: the host's doing, unless far over.
        let stolen = self.steal_hold > 0.0
            && input.steal.is_some_and(|steal| steal >= self.steal_hold)
            && now_nanos <= target * STEAL_CUT_ABOVE;
        self.knee.observe(now_nanos > target && !stolen, self.share, secs);
        let last_now = self.last_recent_nanos.or(self.last_p99_nanos);
        let delta = self.delta_per_sec * secs;
        let demand = input.waiting_now || input.waiting_fraction >= DEMAND_FRACTION;
        let next = if now_nanos > target && stolen {
            self.share
        } else if now_nanos > target {
            let error = (now_nanos / target).ln();
            let mut step = delta * self.down_factor;
            if error > NEAR_BAND {
                step = step.max(DOWN_GAIN_PER_SEC * error.min(MAX_ERROR) * secs);
                let falling = last_now.is_some_and(|last| now_nanos < last * (1.0 - FALLING));
                if falling {
                    step = (step * DAMPING).max(delta * self.down_factor);
                }
            }
            self.used_share(input.used_fraction) - step
        } else if p99_nanos > target {
            // Back under target now; the window still remembers: earlier cuts are working.
            self.share
        } else if demand && input.used_fraction >= USED_FRACTION {
            // Climbs by the recent reading: the window's p99 holds every spike of its 2.5 s, and
            // climbing by it kept the share at reference-sized steps wherever the window had
            // caught one; overshoot is what the knee memory is for.
            let level = now_nanos;
            let error = (level.max(1.0) / target).ln();
            let mut step = delta;
            if -error > NEAR_BAND {
                step = step.max(UP_GAIN_PER_SEC * (-error).min(MAX_ERROR) * secs);
                // Far below target a rise is noise the climb can afford; nearer, it may be the
                // climb's own effect still reaching the window.
                let rising = last_now.is_some_and(|last| level > last * (1.0 + FALLING));
                if error > -RISE_ZONE && rising {
                    step = (step * DAMPING).max(delta);
                }
            }
            self.share + step
        } else if !demand && self.share > self.inactive {
            let mut step = (delta * self.inactive_factor).max(DECAY_PER_SEC * secs);
            if input.used_fraction > 0.0 {
                // Unused allotment goes: the share follows down what elastic work used.
                let level = self.share * input.used_fraction * USE_HEADROOM;
                step = step.max((self.share - level) * (TRACK_USE_PER_SEC * secs).min(1.0));
            }
            (self.share - step).max(self.inactive)
        } else {
            self.share
        };
        // Held under, then slowly past, the knee of the last violation: no limit cycle.
        self.knee.limit(self.share, next, secs, delta).clamp(self.floor, self.ceiling)
    }
}

#[cfg(test)]
mod tests;
