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
//! - Without demand it decays toward the inactive point at `DECAY_PER_SEC`.
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
//! (One file: more than half of it is the tests, which run both variants against the same
//! plants — a smooth one and one with a knee — and belong beside the rules they check.)

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
            let step = (delta * self.inactive_factor).max(DECAY_PER_SEC * secs);
            (self.share - step).max(self.inactive)
        } else {
            self.share
        };
        // Held under, then slowly past, the knee of the last violation: no limit cycle.
        self.knee.limit(self.share, next, secs, delta).clamp(self.floor, self.ceiling)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TICK: Duration = Duration::from_millis(100);
    const MS: u64 = 1_000_000;

    fn config(kind: ControllerKind, initial: f64) -> LimiterConfig {
        LimiterConfig { controller: kind, initial_share: Some(initial), ..Default::default() }
    }

    fn input(p99_micros: u64, waiting: bool) -> ControllerInput {
        ControllerInput {
            p99: Some(Duration::from_micros(p99_micros)),
            recent_p99: None,
            waiting_now: waiting,
            waiting_fraction: if waiting { 1.0 } else { 0.0 },
            used_fraction: if waiting { 1.0 } else { 0.0 },
            elapsed: TICK,
            silent: false,
            cpu: None,
            quiet_p99: None,
            steal: None,
        }
    }

    /// A table of ticks: (p99 µs, waiting, expected share after the tick).
    fn run_table(kind: ControllerKind, initial: f64, table: &[(u64, bool, f64)]) {
        let mut controller = Controller::new(&config(kind, initial));
        for (i, &(p99, waiting, expected)) in table.iter().enumerate() {
            let share = controller.tick(input(p99, waiting));
            assert!((share - expected).abs() < 1e-9, "tick {i}: share {share} != expected {expected}");
        }
    }

    #[test]
    fn reference_reproduces_cockroachdb_rule() {
        run_table(
            ControllerKind::Reference,
            0.50,
            &[
                (500, true, 0.5001),    // under target, waiting: +0.01 %
                (500, true, 0.5002),    //
                (1_500, true, 0.5000),  // over target: -0.02 %
                (1_000, true, 0.5001),  // exactly at target counts as under
                (2_000, false, 0.4999), // over target, idle: still -0.02 %
                (500, false, 0.499875), // idle under target: -0.0025 % toward inactive
                (500, false, 0.49985),
            ],
        );
    }

    #[test]
    fn reference_clamps_at_floor_ceiling_and_inactive_point() {
        run_table(ControllerKind::Reference, 0.05, &[(5_000, true, 0.05), (500, true, 0.0501)]);
        run_table(ControllerKind::Reference, 0.75, &[(500, true, 0.75), (500, true, 0.75)]);
        // Decay stops at the inactive point (0.12) and never goes below it when idle.
        run_table(ControllerKind::Reference, 0.120_01, &[(500, false, 0.12), (500, false, 0.12)]);
        run_table(ControllerKind::Reference, 0.10, &[(500, false, 0.10)]);
    }

    #[test]
    fn reference_climb_takes_about_ten_minutes() {
        let mut controller = Controller::new(&config(ControllerKind::Reference, 0.12));
        let mut ticks = 0;
        while controller.tick(input(500, true)) < 0.75 - 1e-9 {
            ticks += 1;
        }
        // 0.63 / 0.0001 per tick = 6300 ticks = 630 s.
        assert!((6_290..=6_310).contains(&ticks), "{ticks}");
    }

    #[test]
    fn no_signal_holds_the_share() {
        for kind in [ControllerKind::Reference, ControllerKind::Adaptive] {
            let mut controller = Controller::new(&config(kind, 0.3));
            let share = controller.tick(ControllerInput { p99: None, ..input(0, true) });
            assert_eq!(share, 0.3);
        }
    }

    #[test]
    fn a_silent_signal_falls_to_the_floor_and_feedback_resumes() {
        for kind in [ControllerKind::Reference, ControllerKind::Adaptive] {
            let mut controller = Controller::new(&config(kind, 0.75));
            let silent = ControllerInput { silent: true, ..input(100, true) };
            // 0.5 share per second: 0.05 per 100 ms tick, whatever the latency reads.
            assert!((controller.tick(silent) - 0.70).abs() < 1e-9, "{kind:?}");
            let mut ticks = 1;
            while controller.tick(silent) > 0.05 {
                ticks += 1;
                assert!(ticks < 100, "{kind:?} never reached the floor");
            }
            assert_eq!(ticks, 13, "{kind:?}: from 0.70, 0.05 a tick");
            assert_eq!(controller.share(), 0.05);
            // Samples return far under target with demand: the share climbs again.
            assert!(controller.tick(input(100, true)) > 0.05, "{kind:?}");
        }
        let mut fixed = Controller::new(&config(ControllerKind::Fixed(0.4), 0.4));
        assert_eq!(fixed.tick(ControllerInput { silent: true, ..input(100, true) }), 0.4);
    }

    #[test]
    fn fixed_never_moves() {
        let mut controller = Controller::new(&config(ControllerKind::Fixed(0.25), 0.3));
        assert_eq!(controller.share(), 0.25);
        assert_eq!(controller.tick(input(50_000, true)), 0.25);
        assert_eq!(controller.tick(input(10, false)), 0.25);
    }

    #[test]
    fn adaptive_rules_in_a_table() {
        run_table(
            ControllerKind::Adaptive,
            0.50,
            &[
                // Far under target (e = ln 0.25): climbs by 0.08 * 1.386 * 0.1.
                (250, true, 0.5 + 0.08 * 4f64.ln() * 0.1),
                // Over after the climb: a knee; the share is held 5 % under it at once.
                (1_100, true, (0.5 + 0.08 * 4f64.ln() * 0.1) * 0.95),
                // Still over, near target: a reference-sized step down.
                (1_100, true, (0.5 + 0.08 * 4f64.ln() * 0.1) * 0.95 - 0.0002),
                // Far over target (e = ln 4 = 1.386): cut by 0.25 * 1.386 * 0.1.
                (4_000, true, (0.5 + 0.08 * 4f64.ln() * 0.1) * 0.95 - 0.0002 - 0.25 * 4f64.ln() * 0.1),
                // Still over, but falling: the cut is damped.
                (
                    3_000,
                    true,
                    (0.5 + 0.08 * 4f64.ln() * 0.1) * 0.95
                        - 0.0002
                        - 0.25 * 4f64.ln() * 0.1
                        - 0.25 * DAMPING * 3f64.ln() * 0.1,
                ),
            ],
        );
        // Near target without a knee: reference-sized steps.
        run_table(ControllerKind::Adaptive, 0.50, &[(1_100, true, 0.4998), (900, true, 0.4999)]);
        // Far under target with demand: climbs with the error; without demand: decays at 2 %/s.
        run_table(
            ControllerKind::Adaptive,
            0.30,
            &[
                (250, true, 0.30 + 0.08 * 4f64.ln() * 0.1),
                (250, false, 0.30 + 0.08 * 4f64.ln() * 0.1 - 0.002),
            ],
        );
    }

    #[test]
    fn adaptive_needs_waiting_and_use_to_climb() {
        let mut controller = Controller::new(&config(ControllerKind::Adaptive, 0.3));
        // Waited for a sliver of the tick only: not demand; the share decays.
        let sliver = ControllerInput { waiting_now: false, waiting_fraction: 0.05, ..input(250, true) };
        assert!(controller.tick(sliver) < 0.3);
        // Waiting but not using its share (e.g. blocked elsewhere): holds.
        let before = controller.share();
        let unused = ControllerInput { used_fraction: 0.1, ..input(250, true) };
        assert_eq!(controller.tick(unused), before);
    }

    #[test]
    fn adaptive_cuts_from_the_share_elastic_work_used() {
        let over = |used_fraction| ControllerInput { used_fraction, ..input(2_000, true) };
        let cut_from = |used_fraction| {
            let mut controller = Controller::new(&config(ControllerKind::Adaptive, 0.5));
            0.5 - controller.tick(over(used_fraction))
        };
        // Used all of its share: the cut starts from the share.
        let full = cut_from(1.0);
        assert!(full > 0.0 && full < 0.05, "{full}");
        // Used 40 % of it (held back by the foreground): the cut starts from half the share, the
        // deepest a single reading may take it, and takes the same step from there.
        assert!((cut_from(0.4) - (0.25 + full)).abs() < 1e-9, "{}", cut_from(0.4));
        assert!((cut_from(0.8) - (0.1 + full)).abs() < 1e-9, "{}", cut_from(0.8));
        // Nothing granted in the span: no reading, the cut starts from the share.
        assert!((cut_from(0.0) - full).abs() < 1e-9);
        // The reference (CockroachDB's rule) is unchanged.
        let mut reference = Controller::new(&config(ControllerKind::Reference, 0.5));
        assert!(reference.tick(over(0.4)) > 0.49);
    }

    #[test]
    fn adaptive_reads_the_recent_part_of_the_window() {
        let with_recent = |p99: u64, recent: u64| ControllerInput {
            recent_p99: Some(Duration::from_micros(recent)),
            ..input(p99, true)
        };
        let mut controller = Controller::new(&config(ControllerKind::Adaptive, 0.5));
        // The window is over target but the recent part is back under: hold, cuts are working.
        assert_eq!(controller.tick(with_recent(3_000, 800)), 0.5);
        // The recent part over target cuts even while the whole window is still under.
        let cut = controller.tick(with_recent(900, 4_000));
        assert!((cut - (0.5 - DOWN_GAIN_PER_SEC * 4f64.ln() * 0.1)).abs() < 1e-9, "{cut}");
        // Both under: climbs by the recent reading (here 250 µs, e = ln 4), not the window's
        // 900 µs, which would allow only the reference's step. (The violation came with the
        // share standing still: no knee limits the climb.)
        let climbed = controller.tick(with_recent(900, 250));
        assert!((climbed - (cut + UP_GAIN_PER_SEC * 4f64.ln() * 0.1)).abs() < 1e-9, "{climbed}");
    }

    /// A plant: foreground load `fg` plus the elastic share (always in demand) make each tick's
    /// load; a tick's latency tail is exponential with its p99 given by `curve(load)`. The share
    /// reaches the load `lag` ticks late (grants in flight). The controller reads the pooled p99
    /// of the last 25 ticks (the 2.5 s window) and of the last 5 (its recent part): as with real
    /// histograms, a rise shows within a tick or two and a fall only once the window has
    /// forgotten it.
    struct Plant {
        p99s: std::collections::VecDeque<f64>,
        curve: fn(f64) -> f64,
        in_flight: std::collections::VecDeque<f64>,
    }

    impl Plant {
        /// Smooth: p99 = target × exp(8 (load − 0.8)), no lag.
        fn new(initial_load: f64) -> Self {
            Self::with(Self::smooth, 0, initial_load)
        }

        fn with(curve: fn(f64) -> f64, lag: usize, initial_load: f64) -> Self {
            Plant {
                p99s: std::iter::repeat_n(curve(initial_load), 25).collect(),
                curve,
                in_flight: std::iter::repeat_n(initial_load, lag).collect(),
            }
        }

        fn smooth(load: f64) -> f64 {
            MS as f64 * (8.0 * (load - 0.8)).exp()
        }

        /// The 99th percentile of the ticks' samples pooled: `mean(exp(-x ln 100 / p)) = 0.01`.
        fn pooled(p99s: &[f64]) -> Duration {
            let tail =
                |x: f64| p99s.iter().map(|p| (-x * 100f64.ln() / p).exp()).sum::<f64>() / p99s.len() as f64;
            let (mut low, mut high) = (0.0, p99s.iter().copied().fold(0.0, f64::max));
            for _ in 0..100 {
                let mid = (low + high) / 2.0;
                if tail(mid) > 0.01 { low = mid } else { high = mid }
            }
            Duration::from_nanos(high as u64)
        }

        /// Window and recent p99 after a tick at `load`.
        fn read(&mut self, load: f64) -> (Duration, Duration) {
            self.in_flight.push_back(load);
            let load = self.in_flight.pop_front().expect("just pushed");
            self.p99s.pop_front();
            self.p99s.push_back((self.curve)(load));
            let p99s = self.p99s.make_contiguous();
            (Self::pooled(p99s), Self::pooled(&p99s[p99s.len() - 5..]))
        }
    }

    /// Runs `ticks` ticks on `plant`; returns the shares seen and the recent p99s read.
    fn run_plant(
        kind: ControllerKind,
        initial: f64,
        fg: impl Fn(usize) -> f64,
        ticks: usize,
        mut plant: Plant,
    ) -> (Vec<f64>, Vec<Duration>) {
        let mut controller = Controller::new(&config(kind, initial));
        (0..ticks)
            .map(|t| {
                let (p99, recent) = plant.read(fg(t) + controller.share());
                let share = controller.tick(ControllerInput {
                    p99: Some(p99),
                    recent_p99: Some(recent),
                    ..input(0, true)
                });
                (share, recent)
            })
            .unzip()
    }

    /// Runs `ticks` ticks on the smooth plant; returns the shares seen.
    fn simulate(kind: ControllerKind, initial: f64, fg: impl Fn(usize) -> f64, ticks: usize) -> Vec<f64> {
        run_plant(kind, initial, &fg, ticks, Plant::new(fg(0) + initial)).0
    }

    /// First tick after which the share stays within `tolerance` of `equilibrium` to the end.
    fn settling_tick(shares: &[f64], equilibrium: f64, tolerance: f64) -> Option<usize> {
        let last_out = shares.iter().rposition(|s| (s - equilibrium).abs() > tolerance);
        match last_out {
            None => Some(0),
            Some(i) if i + 1 < shares.len() => Some(i + 1),
            Some(_) => None,
        }
    }

    /// Direction changes of the share after `from`, counting moves larger than 0.01.
    fn reversals(shares: &[f64], from: usize) -> usize {
        let mut count = 0;
        let mut direction = 0i8;
        let mut extreme = shares[from];
        for &s in &shares[from..] {
            let d = if s > extreme + 0.01 {
                1
            } else if s < extreme - 0.01 {
                -1
            } else {
                continue;
            };
            if direction != 0 && d != direction {
                count += 1;
            }
            direction = d;
            extreme = s;
        }
        count
    }

    /// Over the last 100 ticks the share moves within a band of 0.01.
    fn assert_no_sustained_oscillation(shares: &[f64]) {
        let tail = &shares[shares.len() - 100..];
        let max = tail.iter().copied().fold(f64::MIN, f64::max);
        let min = tail.iter().copied().fold(f64::MAX, f64::min);
        assert!(max - min < 0.01, "share still swings {min}..{max}");
    }

    #[test]
    fn adaptive_settles_after_a_foreground_step_without_oscillating() {
        // Foreground 40 % for 20 s, then 60 %: equilibrium share 0.4, then 0.2.
        let shares = simulate(ControllerKind::Adaptive, 0.4, |t| if t < 200 { 0.4 } else { 0.6 }, 600);
        let after = &shares[200..];
        let settled = settling_tick(after, 0.2, 0.05).expect("never settled");
        assert!(settled <= 10, "settled after {settled} ticks");
        // At most one turn: the hold below the knee, then the slow approach.
        assert!(reversals(after, settled) <= 1, "oscillates after settling");
        assert_no_sustained_oscillation(after);
        assert!(after.iter().all(|s| (0.05..=0.75).contains(s)));
        // The reference has barely moved in the same time.
        let reference = simulate(ControllerKind::Reference, 0.4, |t| if t < 200 { 0.4 } else { 0.6 }, 600);
        assert!(reference[599] > 0.3, "{}", reference[599]);
    }

    #[test]
    fn adaptive_transients_from_too_high_and_too_low() {
        let high = simulate(ControllerKind::Adaptive, 0.75, |_| 0.4, 400);
        let settled_high = settling_tick(&high, 0.4, 0.05).expect("never settled from 75 %");
        assert!(settled_high <= 20, "from 75 %: {settled_high} ticks");
        // No undershoot beyond the hold below the knee (5 %), and one turn at most: the hold,
        // then the slow approach.
        assert!(reversals(&high, 0) <= 1);
        assert!(
            high.iter().all(|&s| s >= 0.4 * (1.0 - super::super::knee::KNEE_MARGIN) - 0.01),
            "undershoot to {}",
            high.iter().copied().fold(1.0, f64::min)
        );
        assert_no_sustained_oscillation(&high);

        let low = simulate(ControllerKind::Adaptive, 0.05, |_| 0.4, 400);
        let settled_low = settling_tick(&low, 0.4, 0.05).expect("never settled from 5 %");
        assert!(settled_low <= 40, "from 5 %: {settled_low} ticks");
        assert!(reversals(&low, settled_low) <= 1);
        assert_no_sustained_oscillation(&low);
        // The reference from too low climbs 0.01 % per tick: far from settled after 400 ticks.
        let reference = simulate(ControllerKind::Reference, 0.05, |_| 0.4, 400);
        assert!(settling_tick(&reference, 0.4, 0.05).is_none());
    }

    /// A knee: p99 at 0.2 × target up to 80 % load, then ×e for every 2.5 % more (the target at
    /// 84 %), and grants in flight delaying the share's effect by 0.5 s. Foreground 50 %: the knee
    /// is at share 0.34.
    fn knee_curve(load: f64) -> f64 {
        0.2 * MS as f64 * (40.0 * (load - 0.8).max(0.0)).exp()
    }

    /// 500 ms intervals (5 ticks) whose recent p99 went over the 1 ms target.
    fn intervals_over_target(recent: &[Duration]) -> usize {
        recent.chunks(5).filter(|c| c.iter().any(|p| *p > Duration::from_millis(1))).count()
    }

    #[test]
    fn adaptive_remembers_the_knee_instead_of_cycling_through_it() {
        let ticks = 900;
        let (shares, recent) =
            run_plant(ControllerKind::Adaptive, 0.1, |_| 0.5, ticks, Plant::with(knee_curve, 5, 0.6));
        // The last 60 s: at most one 500 ms interval over target per 10 s.
        let tail = &recent[ticks - 600..];
        let over = intervals_over_target(tail);
        assert!(over <= 6, "{over} intervals over target in 60 s");
        // And not by hiding at the floor: near the knee (0.33) on average.
        let mean = shares[ticks - 600..].iter().sum::<f64>() / 600.0;
        assert!(mean > 0.28, "mean share {mean}");
        assert!(shares.iter().all(|s| (0.05..=0.75).contains(s)));
    }

    #[test]
    fn the_utilization_peer_ignores_latency_and_silence() {
        let kind = ControllerKind::Utilization { period: Duration::from_secs(1) };
        let mut controller = Controller::new(&LimiterConfig { cores: 2.0, ..config(kind, 0.3) });
        let cpu = |busy_ms: u64| Some(CpuReading { busy_nanos: busy_ms * MS, elastic_nanos: 0 });
        // Far over target, then silent: the share holds, the period runs.
        assert_eq!(controller.tick(ControllerInput { cpu: cpu(0), ..input(50_000, false) }), 0.3);
        for i in 1..10 {
            let tick = ControllerInput { cpu: cpu(i * 100), silent: i % 2 == 0, ..input(50_000, false) };
            assert_eq!(controller.tick(tick), 0.3);
        }
        // One core busy over the period: (2 - 1) * 0.8 = 0.8 cores of 2 = 40 %.
        let share = controller.tick(ControllerInput { cpu: cpu(1_000), p99: None, ..input(0, false) });
        assert!((share - 0.4).abs() < 1e-9, "{share}");
    }

    #[test]
    fn both_variants_stay_within_bounds_under_any_signal() {
        for kind in [ControllerKind::Reference, ControllerKind::Adaptive] {
            let mut controller = Controller::new(&config(kind, 0.4));
            for i in 0..5_000u64 {
                let p99 = (i * 7_919) % 20_000 + 1;
                let waiting = i % 3 != 0;
                let share = controller.tick(input(p99, waiting));
                assert!((0.05..=0.75).contains(&share), "{kind:?} tick {i}: {share}");
            }
        }
    }
}
