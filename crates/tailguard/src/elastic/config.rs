//! Limiter configuration and its validation.

use std::time::Duration;

use thiserror::Error;

/// Moved to [`crate::budget`]; re-exported here.
pub use crate::budget::detected_cores;

/// Which controller turns the latency signal into the elastic share.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ControllerKind {
    /// CockroachDB's rule and constants: tiny fixed steps (see [`super::controller`]).
    Reference,
    /// Our faster variant: steps scaled with the log of `p99 / target` far from the target,
    /// reference-sized steps near it, damped while the signal already moves the right way.
    Adaptive,
    /// No feedback: the share stays at the given fraction of all cores (the demo's `static`).
    Fixed(f64),
    /// A peer for comparison, not a latency controller: TiKV's utilisation rule, re-adjusted
    /// every `period` from the CPU the foreground left free (see [`super::utilization`]). Reads
    /// a [`CpuUsage`](super::CpuUsage) source (default: the process's CPU), not the latency
    /// signal.
    Utilization {
        /// How often the share is re-adjusted ([`DEFAULT_PERIOD`](super::utilization::DEFAULT_PERIOD),
        /// 10 s, as TiKV); raised to [`MIN_PERIOD`](super::utilization::MIN_PERIOD) (1 s) if
        /// shorter.
        period: std::time::Duration,
    },
}

impl ControllerKind {
    /// A short stable name (`reference`, `adaptive`, `fixed`, `utilization`) for reports.
    pub fn name(&self) -> &'static str {
        match self {
            ControllerKind::Reference => "reference",
            ControllerKind::Adaptive => "adaptive",
            ControllerKind::Fixed(_) => "fixed",
            ControllerKind::Utilization { .. } => "utilization",
        }
    }

    /// The utilisation peer at TiKV's period (10 s).
    pub fn utilization() -> Self {
        ControllerKind::Utilization { period: super::utilization::DEFAULT_PERIOD }
    }

    /// Whether this controller steers by the latency signal (the reference and adaptive
    /// variants): it needs one, starts blind, and fails safe when the signal goes silent.
    pub fn reads_latency(&self) -> bool {
        matches!(self, ControllerKind::Reference | ControllerKind::Adaptive)
    }
}

/// The full, validated configuration of a [`super::Limiter`]. Defaults are CockroachDB's
/// (DESIGN §8) unless noted.
#[derive(Clone, Debug, PartialEq)]
pub struct LimiterConfig {
    /// Target for the latency quantile (default 1 ms; allowed 50 µs ..= 1 s, as CockroachDB).
    pub target: Duration,
    /// Quantile of the latency window compared with `target` (default 0.99).
    pub quantile: f64,
    /// Lowest elastic share of all cores (default 0.05): guarantees progress under overload.
    pub floor: f64,
    /// Highest elastic share of all cores (default 0.75).
    pub ceiling: f64,
    /// Where an unused share decays to, as a fraction of the way from floor to ceiling
    /// (default 0.10, i.e. 12 % with the default floor and ceiling).
    pub inactive_point: f64,
    /// Up step per second of wall time (default 0.001 = 0.1 %/s), scaled by the tick.
    pub delta_per_sec: f64,
    /// Down step as a multiple of `delta_per_sec` (default 2).
    pub down_factor: f64,
    /// Decay step toward the inactive point as a multiple of `delta_per_sec` (default 0.25).
    pub inactive_factor: f64,
    /// Controller period (default 100 ms).
    pub tick: Duration,
    /// CPU per grant (default 100 ms; allowed 1 ms ..= 1 s; CockroachDB clamps to 10–100 ms).
    pub grant: Duration,
    /// Number of cores the share is a fraction of (default: detected, cgroup quota respected).
    pub cores: f64,
    /// Which controller to run (default [`ControllerKind::Adaptive`]).
    pub controller: ControllerKind,
    /// Share the controller starts from once its window is warm (holds
    /// [`WARM_SPAN`](super::WARM_SPAN) of samples); the limiter grants at `floor` until
    /// then ("blind start"). Default: the inactive point.
    pub initial_share: Option<f64>,
    /// OS priority for elastic threads spawned by the limiter (default: none, unchanged).
    pub elastic_priority: Option<super::priority::ThreadPriority>,
    /// How long the latency signal may deliver no samples before the limiter fails safe: the
    /// share decays to the floor until samples return (default 1 s; allowed from one tick to
    /// 60 s). A probe that stopped or stalled must not leave elastic work at a high share.
    pub silence: Duration,
    /// The adaptive controller's working target is at least this many times the latency
    /// quantile measured while no elastic work ran (`elastic/quiet.rs`): elastic work is not
    /// blamed for latency the machine has without it. Default 1.5 (the isolation goal: the
    /// foreground's p99 within 1.5× of its own without elastic work); 0 turns it off, leaving the
    /// configured target alone; allowed 0 or 1 ..= 10. The reference controller ignores it.
    pub quiet_factor: f64,
    /// The adaptive controller's working target is at most this many times the quiet latency
    /// (when known), so that on a machine whose own scheduling p99 is far under the target,
    /// elastic work may add only this multiple of it rather than all the way up to the target:
    /// working target = `min(quiet_headroom × quiet, max(target, quiet_factor × quiet))`, never
    /// below [`MIN_WORKING_TARGET`](super::MIN_WORKING_TARGET). Default 0 (off: the configured
    /// target is the working target's floor); allowed 0 or 1 ..= 10. The reference controller
    /// ignores it.
    pub quiet_headroom: f64,
    /// While at least this fraction of the machine's CPU time was stolen by a hypervisor in a
    /// tick of the newest half second (`elastic/steal.rs`), the adaptive controller holds its share
    /// for latency over target instead of cutting (up to
    /// [`STEAL_CUT_ABOVE`](super::STEAL_CUT_ABOVE) times it): the host caused it, not elastic
    /// work. Default [`DEFAULT_STEAL_HOLD`](super::DEFAULT_STEAL_HOLD) (5 %); 0 turns it off;
    /// allowed 0 ..= 1. The other controllers ignore it.
    pub steal_hold: f64,
    /// How much fill the token bucket holds, as wall time at the share's rate: the most elastic
    /// work can run above its share after it could not use it (it waited on something else, or
    /// its threads were starved at a low OS priority). Default [`DEFAULT_BURST`] (100 ms; DESIGN
    /// §8 says 1 s, see `docs/design-notes.md` for why it is shorter); allowed 1 ms ..= 10 s. The share's rate over time does not depend on it: a grant is handed out
    /// whenever the balance is above zero.
    pub burst: Duration,
}

/// The token bucket's default fill, as wall time at the share's rate ([`LimiterConfig::burst`]):
/// one tick of the controller. A longer fill lets elastic work spend what it saved while the
/// share was high after the share has been cut, which the foreground pays for.
pub const DEFAULT_BURST: Duration = Duration::from_millis(100);

impl Default for LimiterConfig {
    fn default() -> Self {
        LimiterConfig {
            target: Duration::from_millis(1),
            quantile: 0.99,
            floor: 0.05,
            ceiling: 0.75,
            inactive_point: 0.10,
            delta_per_sec: 0.001,
            down_factor: 2.0,
            inactive_factor: 0.25,
            tick: Duration::from_millis(100),
            grant: Duration::from_millis(100),
            cores: detected_cores(),
            controller: ControllerKind::Adaptive,
            initial_share: None,
            elastic_priority: None,
            silence: Duration::from_secs(1),
            quiet_factor: 1.5,
            quiet_headroom: 0.0,
            steal_hold: super::steal::DEFAULT_STEAL_HOLD,
            burst: DEFAULT_BURST,
        }
    }
}

/// A configuration value out of range. Each message names the field and what to change.
#[derive(Clone, Debug, PartialEq, Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// `target` must be within 50 µs ..= 1 s.
    #[error("target {0:?} is out of range: use 50µs ..= 1s (default 1ms)")]
    Target(Duration),
    /// `quantile` must be within (0, 1).
    #[error("quantile {0} is out of range: use a value strictly between 0 and 1 (default 0.99)")]
    Quantile(f64),
    /// Floor and ceiling must satisfy 0 < floor <= ceiling <= 1.
    #[error("share bounds floor={floor} ceiling={ceiling} are invalid: need 0 < floor <= ceiling <= 1")]
    ShareBounds {
        /// The floor given.
        floor: f64,
        /// The ceiling given.
        ceiling: f64,
    },
    /// `inactive_point` must be within 0 ..= 1.
    #[error("inactive_point {0} is out of range: use 0 ..= 1 (default 0.10)")]
    InactivePoint(f64),
    /// Step sizes must be finite and positive (`delta_per_sec` at most 1).
    #[error("step {field}={value} is invalid: use a finite positive value (delta_per_sec <= 1)")]
    Step {
        /// Which step field.
        field: &'static str,
        /// The value given.
        value: f64,
    },
    /// `down_factor` must be at least 1: the share must go down at least as fast as it goes up.
    #[error("down_factor {0} is below 1: down steps must be at least as large as up steps (default 2)")]
    DownFactor(f64),
    /// `tick` must be within 1 ms ..= 10 s.
    #[error("tick {0:?} is out of range: use 1ms ..= 10s (default 100ms)")]
    Tick(Duration),
    /// `grant` must be within 1 ms ..= 1 s.
    #[error("grant {0:?} is out of range: use 1ms ..= 1s (default 100ms)")]
    Grant(Duration),
    /// `cores` must be finite, >= 0.01 and <= 4096.
    #[error("cores {0} is out of range: use 0.01 ..= 4096 (default: detected)")]
    Cores(f64),
    /// A fixed share must be within (0, 1].
    #[error("fixed share {0} is out of range: use a value in (0, 1]")]
    FixedShare(f64),
    /// The reference and adaptive controllers steer by latency: give the builder a signal.
    #[error(
        "controller {0} needs a latency signal: call .latency_window(..) or .latency_signal(..), \
         or use ControllerKind::Fixed(share)"
    )]
    MissingSignal(&'static str),
    /// The initial share must be within [floor, ceiling].
    #[error("initial_share {0} is outside [floor, ceiling]")]
    InitialShare(f64),
    /// `silence` must be within one tick ..= 60 s.
    #[error("silence {0:?} is out of range: use one tick ..= 60s (default 1s)")]
    Silence(Duration),
    /// `steal_hold` must be within 0 ..= 1.
    #[error("steal_hold {0} is out of range: use a fraction in 0 ..= 1 (0: off; default 0.05)")]
    StealHold(f64),
    /// `burst` must be within 1 ms ..= 10 s.
    #[error("burst {0:?} is out of range: use 1ms ..= 10s (default 100ms)")]
    Burst(Duration),
    /// `quiet_headroom` must be 0 (off) or within 1 ..= 10.
    #[error("quiet_headroom {0} is out of range: use 0 (off) or 1 ..= 10")]
    QuietHeadroom(f64),
    /// `quiet_factor` must be 0 (off) or within 1 ..= 10.
    #[error("quiet_factor {0} is out of range: use 0 (off) or 1 ..= 10 (default 1.5)")]
    QuietFactor(f64),
    /// Elastic threads may not run at a real-time priority: they would come before the
    /// foreground they must yield to.
    #[error(
        "elastic_priority {0:?} would put elastic work ahead of the foreground: use \
         ThreadPriority::Idle, IdleCgroup or a nice value"
    )]
    ElasticPriority(super::priority::ThreadPriority),
}

impl LimiterConfig {
    /// Checks every field.
    ///
    /// # Errors
    ///
    /// The first field out of range, as a [`ConfigError`] naming it.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.target < Duration::from_micros(50) || self.target > Duration::from_secs(1) {
            return Err(ConfigError::Target(self.target));
        }
        if !(self.quantile > 0.0 && self.quantile < 1.0) {
            return Err(ConfigError::Quantile(self.quantile));
        }
        if !(self.floor > 0.0 && self.floor <= self.ceiling && self.ceiling <= 1.0) {
            return Err(ConfigError::ShareBounds { floor: self.floor, ceiling: self.ceiling });
        }
        if !(0.0..=1.0).contains(&self.inactive_point) {
            return Err(ConfigError::InactivePoint(self.inactive_point));
        }
        if !(self.delta_per_sec.is_finite() && self.delta_per_sec > 0.0 && self.delta_per_sec <= 1.0) {
            return Err(ConfigError::Step { field: "delta_per_sec", value: self.delta_per_sec });
        }
        if !(self.inactive_factor.is_finite() && self.inactive_factor > 0.0) {
            return Err(ConfigError::Step { field: "inactive_factor", value: self.inactive_factor });
        }
        if !(self.down_factor.is_finite() && self.down_factor >= 1.0) {
            return Err(ConfigError::DownFactor(self.down_factor));
        }
        if self.tick < Duration::from_millis(1) || self.tick > Duration::from_secs(10) {
            return Err(ConfigError::Tick(self.tick));
        }
        if self.grant < Duration::from_millis(1) || self.grant > Duration::from_secs(1) {
            return Err(ConfigError::Grant(self.grant));
        }
        if !(self.cores.is_finite() && (0.01..=4096.0).contains(&self.cores)) {
            return Err(ConfigError::Cores(self.cores));
        }
        if let ControllerKind::Fixed(share) = self.controller {
            if !(share > 0.0 && share <= 1.0) {
                return Err(ConfigError::FixedShare(share));
            }
        }
        if self.silence < self.tick || self.silence > Duration::from_secs(60) {
            return Err(ConfigError::Silence(self.silence));
        }
        if !(self.quiet_factor == 0.0 || (1.0..=10.0).contains(&self.quiet_factor)) {
            return Err(ConfigError::QuietFactor(self.quiet_factor));
        }
        if !(self.quiet_headroom == 0.0 || (1.0..=10.0).contains(&self.quiet_headroom)) {
            return Err(ConfigError::QuietHeadroom(self.quiet_headroom));
        }
        if !(0.0..=1.0).contains(&self.steal_hold) {
            return Err(ConfigError::StealHold(self.steal_hold));
        }
        if self.burst < Duration::from_millis(1) || self.burst > Duration::from_secs(10) {
            return Err(ConfigError::Burst(self.burst));
        }
        if let Some(initial) = self.initial_share {
            if !(initial >= self.floor && initial <= self.ceiling) {
                return Err(ConfigError::InitialShare(initial));
            }
        }
        if let Some(priority @ super::priority::ThreadPriority::Realtime(_)) = self.elastic_priority {
            return Err(ConfigError::ElasticPriority(priority));
        }
        Ok(())
    }

    /// The share an unused allowance decays to: `floor + inactive_point * (ceiling - floor)`.
    pub fn inactive_share(&self) -> f64 {
        self.floor + self.inactive_point * (self.ceiling - self.floor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_match_design() {
        let config = LimiterConfig::default();
        config.validate().unwrap();
        assert!((config.inactive_share() - 0.12).abs() < 1e-12);
    }

    #[test]
    fn each_invalid_field_is_named() {
        let cases: Vec<(LimiterConfig, &str)> = vec![
            (LimiterConfig { target: Duration::from_micros(10), ..Default::default() }, "target"),
            (LimiterConfig { quantile: 1.0, ..Default::default() }, "quantile"),
            (LimiterConfig { floor: 0.8, ..Default::default() }, "floor"),
            (LimiterConfig { ceiling: f64::NAN, ..Default::default() }, "ceiling"),
            (LimiterConfig { inactive_point: 2.0, ..Default::default() }, "inactive_point"),
            (LimiterConfig { delta_per_sec: 0.0, ..Default::default() }, "delta_per_sec"),
            (LimiterConfig { down_factor: 0.5, ..Default::default() }, "down_factor"),
            (LimiterConfig { tick: Duration::ZERO, ..Default::default() }, "tick"),
            (LimiterConfig { grant: Duration::from_secs(5), ..Default::default() }, "grant"),
            (LimiterConfig { cores: 0.0, ..Default::default() }, "cores"),
            (LimiterConfig { controller: ControllerKind::Fixed(1.5), ..Default::default() }, "fixed share"),
            (LimiterConfig { initial_share: Some(0.9), ..Default::default() }, "initial_share"),
            (LimiterConfig { silence: Duration::from_millis(10), ..Default::default() }, "silence"),
            (LimiterConfig { quiet_factor: 0.5, ..Default::default() }, "quiet_factor"),
            (LimiterConfig { quiet_headroom: 0.5, ..Default::default() }, "quiet_headroom"),
            (LimiterConfig { steal_hold: 1.5, ..Default::default() }, "steal_hold"),
            (LimiterConfig { steal_hold: f64::NAN, ..Default::default() }, "steal_hold"),
            (LimiterConfig { burst: Duration::ZERO, ..Default::default() }, "burst"),
            (LimiterConfig { burst: Duration::from_secs(11), ..Default::default() }, "burst"),
            (LimiterConfig { quiet_headroom: f64::NAN, ..Default::default() }, "quiet_headroom"),
            (
                LimiterConfig {
                    elastic_priority: Some(super::super::priority::ThreadPriority::Realtime(1)),
                    ..Default::default()
                },
                "elastic_priority",
            ),
        ];
        for (config, field) in cases {
            let message = config.validate().unwrap_err().to_string();
            assert!(message.contains(field), "{message:?} should name {field}");
        }
    }
}
