//! Signals: how long runnable work waits for a CPU.
//!
//! Each latency source feeds a [`WindowedHistogram`](crate::histogram::WindowedHistogram)
//! (default 25 slots of 100 ms) exposed by a `window()` accessor, which the controller or a
//! dashboard reads; the OS-level sources complement them:
//!
//! | source | what it measures | needs |
//! |---|---|---|
//! | [`instrument`] | wake→poll delay and poll duration of wrapped futures, per task ([`TaskStats`]) and in aggregate | nothing |
//! | [`runtime_probe`] | wake→poll delay of a probe task woken at 1 kHz from outside a tokio runtime | feature `tokio` |
//! | [`thread_probe`] | timer overshoot of a sleeping thread (cyclictest) | nothing |
//! | [`run_queue`] | runnable OS threads (`/proc/loadavg`) and tokio's global queue depth, sampled at 200 Hz, averaged per tick | Linux `/proc` (else `None`) |
//! | [`psi`] | `/proc/pressure/cpu` stall percentages | Linux PSI (else `None`) |
//!
//! Running-time queries: [`TaskStats::total_running`] is a task's wall time while polled (like
//! Go's `grunning.Time()`, it counts time the OS descheduled the worker mid-poll);
//! [`TaskStats::estimated_cpu`] scales sampled true-CPU readings; a thread's true CPU time is
//! [`thread_cpu_time`](crate::clock::thread_cpu_time), which never counts descheduled time.
//!
//! With the `metrics` feature, `export` publishes every signal: gauges through the `metrics`
//! facade, the scheduling-latency histogram and the PSI stall counter as Prometheus text, all in
//! base units (seconds).
//!
//! # Bad input
//!
//! Rates outside 1 Hz ..= 10 kHz and out-of-range windows are refused with a [`ConfigError`]
//! saying what to use; a missing `/proc` file gives `None`, never an error or a panic.
//!
//! # Examples
//!
//! ```
//! use tailguard::observe::{ConfigError, ProbeConfig};
//! use tailguard::observe::thread_probe::ThreadProbe;
//!
//! let err = ThreadProbe::start(ProbeConfig::with_rate_hz(50_000)).unwrap_err();
//! assert_eq!(err, ConfigError::Rate(50_000));
//! assert_eq!(err.to_string(), "rate of 50000 Hz is out of range: use 1 ..= 10000 Hz (default 1000)");
//! ```

#[cfg(feature = "metrics")]
pub mod export;
pub mod instrument;
pub mod psi;
pub mod run_queue;
#[cfg(feature = "tokio")]
pub mod runtime_probe;
pub mod sampling;
pub mod thread_probe;
pub mod throttle;

use std::time::Duration;

pub use instrument::{Instrumented, PollMonitor, PollMonitorConfig, TaskStats, TaskStatsHandle};
pub use run_queue::{RunQueueConfig, RunQueueSampler, RunQueueTick};
#[cfg(feature = "tokio")]
pub use runtime_probe::RuntimeProbe;
pub use sampling::{ProbeSignal, SamplingDemand};
pub use thread_probe::ThreadProbe;
pub use throttle::CgroupThrottle;

use crate::histogram::{InvalidWindow, WindowConfig};

/// The slowest rate a probe or sampler accepts, in Hz.
pub const MIN_RATE_HZ: u32 = 1;
/// The fastest rate a probe or sampler accepts, in Hz: at 10 kHz a probe already costs a few
/// percent of a core, and OS timers cannot keep up much beyond it.
pub const MAX_RATE_HZ: u32 = 10_000;
/// The default probing rate: 1 kHz, fine enough to see a 1 ms p99 target within one window.
pub const DEFAULT_RATE_HZ: u32 = 1_000;
/// The default idle rate of a runtime probe whose [demand](SamplingDemand) is lowered: 10 Hz,
/// enough to tell a live signal from a stalled one.
pub const DEFAULT_IDLE_RATE_HZ: u32 = 10;

/// A probe or sampler setting that cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The rate must be within [`MIN_RATE_HZ`] ..= [`MAX_RATE_HZ`].
    #[error("rate of {0} Hz is out of range: use 1 ..= 10000 Hz (default 1000)")]
    Rate(u32),
    /// The idle rate must be within [`MIN_RATE_HZ`] ..= the full rate.
    #[error("idle rate of {idle} Hz is out of range: use 1 ..= the full rate ({rate} Hz)")]
    IdleRate {
        /// The idle rate asked for.
        idle: u32,
        /// The full rate.
        rate: u32,
    },
    /// The window shape is out of range.
    #[error(transparent)]
    Window(#[from] InvalidWindow),
}

/// Settings shared by the periodic probes (`runtime_probe` and [`thread_probe`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProbeConfig {
    /// How often the probe fires, in Hz. Default [`DEFAULT_RATE_HZ`].
    pub rate_hz: u32,
    /// The window its samples go into. Default 25 × 100 ms.
    pub window: WindowConfig,
    /// The rate of a runtime probe while its [demand](SamplingDemand) is lowered, in Hz
    /// (default [`DEFAULT_IDLE_RATE_HZ`]); `None` keeps the full rate always. Only a limiter
    /// steering by the probe's [`signal`](RuntimeProbe::signal) lowers the demand. The
    /// [`ThreadProbe`] always fires at its full rate.
    pub idle_rate_hz: Option<u32>,
    /// Whether a runtime probe also counts the time a cgroup CPU quota throttled the process
    /// as delay ([`throttle`]): a probe inside the cgroup is stopped with everything else and
    /// cannot see it. Default `true`; it costs one file read every ~100 ms, and nothing where
    /// no quota binds. The [`ThreadProbe`] does not.
    pub count_throttling: bool,
}

impl ProbeConfig {
    /// The default settings at another rate.
    pub fn with_rate_hz(rate_hz: u32) -> Self {
        Self {
            rate_hz,
            idle_rate_hz: Some(DEFAULT_IDLE_RATE_HZ.min(rate_hz.max(MIN_RATE_HZ))),
            ..Self::default()
        }
    }

    /// Checks the settings.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Rate`] when the rate is outside 1 Hz ..= 10 kHz, [`ConfigError::Window`]
    /// when the window shape is out of range.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(MIN_RATE_HZ..=MAX_RATE_HZ).contains(&self.rate_hz) {
            return Err(ConfigError::Rate(self.rate_hz));
        }
        if let Some(idle) = self.idle_rate_hz {
            if !(MIN_RATE_HZ..=self.rate_hz).contains(&idle) {
                return Err(ConfigError::IdleRate { idle, rate: self.rate_hz });
            }
        }
        self.window.validate()?;
        Ok(())
    }

    /// Time between two firings.
    ///
    /// # Panics
    ///
    /// Panics if `rate_hz` is zero; [`validate`](Self::validate) first.
    pub fn period(&self) -> Duration {
        Duration::from_secs(1) / self.rate_hz
    }
}

impl Default for ProbeConfig {
    fn default() -> Self {
        Self {
            rate_hz: DEFAULT_RATE_HZ,
            window: WindowConfig::DEFAULT,
            idle_rate_hz: Some(DEFAULT_IDLE_RATE_HZ),
            count_throttling: true,
        }
    }
}

/// Sets `stop`, wakes the background thread and waits for it to end. A failure to join must not
/// turn a drop into a panic, so it is ignored.
fn stop_thread(stop: &std::sync::atomic::AtomicBool, thread: &mut Option<std::thread::JoinHandle<()>>) {
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    if let Some(thread) = thread.take() {
        thread.thread().unpark();
        let _ = thread.join();
    }
}

/// Parks the calling background thread until `deadline`, waking early to look at `stop` whenever
/// it is unparked. Returns `false` once `stop` is set.
fn park_until(deadline: std::time::Instant, stop: &std::sync::atomic::AtomicBool) -> bool {
    loop {
        if stop.load(std::sync::atomic::Ordering::Relaxed) {
            return false;
        }
        let now = std::time::Instant::now();
        if now >= deadline {
            return true;
        }
        std::thread::park_timeout(deadline - now);
    }
}
