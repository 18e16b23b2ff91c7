//! Building a [`Limiter`]: [`LimiterBuilder`], whose setters map to [`LimiterConfig`] fields.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use super::config::{ConfigError, ControllerKind, LimiterConfig};
use super::controller::Controller;
use super::demand::{Demand, Sampling};
use super::limiter::Limiter;
use super::quiet::QuietLatency;
use super::shared::{Shared, State};
use super::signal::{LatencySignal, SignalMemory};
use super::snapshot::History;
use super::steal::{MachineSteal, StealMeter, StealSource};
use super::utilization::{CpuUsage, ProcessCpu};
use super::waiters::WaitQueue;
use crate::budget::TokenBucket;
use crate::clock::{SharedClock, SystemClock};
use crate::histogram::WindowedHistogram;
use crate::order::TenantId;

impl Limiter {
    /// A builder with CockroachDB's defaults and the adaptive controller.
    pub fn builder() -> LimiterBuilder {
        LimiterBuilder {
            config: LimiterConfig::default(),
            clock: None,
            signal: None,
            cpu: None,
            steal: None,
            tenant_weights: HashMap::new(),
        }
    }
}

/// Builds a [`Limiter`]; every setter maps to a [`LimiterConfig`] field.
#[must_use]
pub struct LimiterBuilder {
    config: LimiterConfig,
    clock: Option<SharedClock>,
    signal: Option<Arc<dyn LatencySignal>>,
    cpu: Option<Arc<dyn CpuUsage>>,
    steal: Option<Arc<dyn StealSource>>,
    tenant_weights: HashMap<TenantId, NonZeroU32>,
}

impl LimiterBuilder {
    /// Target for the latency quantile.
    pub fn target(mut self, target: Duration) -> Self {
        self.config.target = target;
        self
    }
    /// Quantile read from the window (default 0.99).
    pub fn quantile(mut self, quantile: f64) -> Self {
        self.config.quantile = quantile;
        self
    }
    /// Share floor and ceiling.
    pub fn share_bounds(mut self, floor: f64, ceiling: f64) -> Self {
        self.config.floor = floor;
        self.config.ceiling = ceiling;
        self
    }
    /// Inactive point (fraction of the way from floor to ceiling).
    pub fn inactive_point(mut self, point: f64) -> Self {
        self.config.inactive_point = point;
        self
    }
    /// Up step per second, down factor and inactive decay factor.
    pub fn steps(mut self, delta_per_sec: f64, down_factor: f64, inactive_factor: f64) -> Self {
        self.config.delta_per_sec = delta_per_sec;
        self.config.down_factor = down_factor;
        self.config.inactive_factor = inactive_factor;
        self
    }
    /// Controller period.
    pub fn tick(mut self, tick: Duration) -> Self {
        self.config.tick = tick;
        self
    }
    /// Default grant size.
    pub fn grant(mut self, grant: Duration) -> Self {
        self.config.grant = grant;
        self
    }
    /// Number of cores (default: detected, cgroup quota respected).
    pub fn cores(mut self, cores: f64) -> Self {
        self.config.cores = cores;
        self
    }
    /// Controller variant.
    pub fn controller(mut self, kind: ControllerKind) -> Self {
        self.config.controller = kind;
        self
    }
    /// Share used once the window is warm, before any feedback.
    pub fn initial_share(mut self, share: f64) -> Self {
        self.config.initial_share = Some(share);
        self
    }
    /// OS priority for threads spawned with [`Limiter::spawn_elastic_thread`].
    pub fn elastic_priority(mut self, priority: super::priority::ThreadPriority) -> Self {
        self.config.elastic_priority = Some(priority);
        self
    }
    /// Weight of a tenant in fair sharing (default 1): while both wait, a tenant with weight 3
    /// is granted three times the CPU of a tenant with weight 1 (see [`crate::order`]).
    pub fn tenant_weight(mut self, tenant: impl Into<TenantId>, weight: NonZeroU32) -> Self {
        self.tenant_weights.insert(tenant.into(), weight);
        self
    }
    /// Replaces the whole configuration.
    pub fn config(mut self, config: LimiterConfig) -> Self {
        self.config = config;
        self
    }
    /// The clock (default: the system clock).
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = Some(clock);
        self
    }
    /// Reads latency from this window (e.g. the runtime probe's).
    pub fn latency_window(mut self, window: Arc<WindowedHistogram>) -> Self {
        self.signal = Some(window);
        self
    }
    /// Reads latency from any signal.
    pub fn latency_signal(mut self, signal: Arc<dyn LatencySignal>) -> Self {
        self.signal = Some(signal);
        self
    }
    /// Where the utilisation peer ([`ControllerKind::Utilization`]) reads CPU busy time
    /// (default: the process's CPU, [`ProcessCpu`]); the other controllers ignore it.
    pub fn cpu_usage(mut self, source: Arc<dyn CpuUsage>) -> Self {
        self.cpu = Some(source);
        self
    }
    /// How long the signal may deliver no samples before the share falls to the floor
    /// (default 1 s).
    pub fn silence(mut self, silence: Duration) -> Self {
        self.config.silence = silence;
        self
    }

    /// The adaptive controller steers by at least `factor` times the latency measured while no
    /// elastic work ran (default 1.5; 0: the configured target alone). See
    /// [`LimiterConfig::quiet_factor`].
    pub fn quiet_factor(mut self, factor: f64) -> Self {
        self.config.quiet_factor = factor;
        self
    }

    /// Caps the adaptive controller's working target at this many times the quiet latency
    /// (0: off); see [`LimiterConfig::quiet_headroom`].
    pub fn quiet_headroom(mut self, headroom: f64) -> Self {
        self.config.quiet_headroom = headroom;
        self
    }

    /// Holds the adaptive controller's share while at least this fraction of the machine's CPU
    /// time is stolen (0: off); see [`LimiterConfig::steal_hold`].
    pub fn steal_hold(mut self, fraction: f64) -> Self {
        self.config.steal_hold = fraction;
        self
    }

    /// How much fill the token bucket holds (default 100 ms); see [`LimiterConfig::burst`].
    pub fn burst(mut self, span: Duration) -> Self {
        self.config.burst = span;
        self
    }

    /// Where the adaptive controller reads the machine's stolen CPU time (default:
    /// `/proc/stat`, [`MachineSteal`]; none for a limiter on an injected [`clock`](Self::clock),
    /// whose time is not the machine's).
    pub fn steal_source(mut self, source: Arc<dyn StealSource>) -> Self {
        self.steal = Some(source);
        self
    }

    /// Builds a limiter without a background thread: call [`Limiter::tick`] by hand.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the field out of range, or [`ConfigError::MissingSignal`] for
    /// a latency controller without a latency signal.
    pub fn build(self) -> Result<Limiter, ConfigError> {
        self.config.validate()?;
        // A fixed share and the utilisation peer read no latency: no blind start for them.
        let fixed = !self.config.controller.reads_latency();
        if !fixed && self.signal.is_none() {
            return Err(ConfigError::MissingSignal(self.config.controller.name()));
        }
        // The machine's steal is read in real time: a limiter on an injected clock (a test's)
        // reads it only from an injected source.
        let real_time = self.clock.is_none();
        let clock = self.clock.unwrap_or_else(SystemClock::shared);
        let now = clock.now_nanos();
        let controller = Controller::new(&self.config);
        // Blind start: a feedback controller grants at the floor until the window is warm.
        let share = if fixed { controller.share() } else { self.config.floor };
        let state = State {
            bucket: TokenBucket::with_capacity(share * self.config.cores, self.config.burst, now),
            controller,
            queue: WaitQueue::new(&self.tenant_weights),
            to_wake: Vec::new(),
            signal: SignalMemory::new(self.signal.is_some(), fixed, now),
            demand: Demand::default(),
            sampling: Sampling::new(now),
            last_tick_nanos: now,
            ticks: 0,
            history: History::default(),
            quiet: QuietLatency::default(),
            steal: StealMeter::default(),
        };
        let cpu = match self.config.controller {
            ControllerKind::Utilization { .. } => Some(self.cpu.unwrap_or_else(ProcessCpu::shared)),
            _ => None,
        };
        let steal = match self.config.controller {
            ControllerKind::Adaptive if self.config.steal_hold > 0.0 => {
                self.steal.or_else(|| real_time.then(MachineSteal::shared))
            }
            _ => None,
        };
        let mut shared = Shared::new(self.config, clock, self.signal, state, now);
        shared.cpu = cpu;
        shared.steal = steal;
        let shared = Arc::new(shared);
        Ok(Limiter::from_shared(shared))
    }

    /// Builds the limiter and starts its control loop on a thread named `tailguard-limiter`,
    /// which ticks every `tick` and wakes waiters as soon as their tokens exist. The thread
    /// stops on [`Limiter::stop`] or when the last clone of the limiter is dropped.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the field out of range.
    ///
    /// # Panics
    ///
    /// If the OS refuses to spawn the thread.
    pub fn start(self) -> Result<Limiter, ConfigError> {
        self.start_joinable().map(|(limiter, _thread)| limiter)
    }

    /// [`start`](Self::start), keeping the thread's handle so that a shutdown can join it.
    pub(crate) fn start_joinable(self) -> Result<(Limiter, std::thread::JoinHandle<()>), ConfigError> {
        let limiter = self.build()?;
        let shared = Arc::clone(limiter.shared());
        let thread = std::thread::Builder::new()
            .name("tailguard-limiter".into())
            .spawn(move || shared.run())
            .expect("failed to spawn the tailguard-limiter thread");
        Ok((limiter, thread))
    }
}
