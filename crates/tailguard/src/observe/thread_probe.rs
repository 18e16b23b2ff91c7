//! The OS thread probe: timer overshoot, as `cyclictest` measures it, for services built on
//! plain threads.
//!
//! A thread named `tailguard-thread-probe` sleeps for one period (default 1 ms, i.e. 1 kHz) and
//! records how late it woke: `actual wake − intended wake`. The overshoot is the timer slack plus
//! the time the thread waited in the OS run queue once its timer fired: the scheduling latency a
//! thread woken by I/O or a condition variable would see.
//!
//! **Caveat.** A thread that sleeps nearly all the time is favoured by the kernel's fair
//! scheduler (CFS/EEVDF credit it for the time it did not run and place it ahead of CPU-bound
//! threads when it wakes), so this probe *under-states* what a busy worker thread sees. Where
//! there is a tokio runtime, prefer the [`runtime_probe`](super) or instrumented futures; use this
//! probe for thread-pool services and as a machine-wide baseline.
//!
//! # Examples
//!
//! ```
//! use std::time::Duration;
//! use tailguard::observe::ProbeConfig;
//! use tailguard::observe::thread_probe::ThreadProbe;
//!
//! let probe = ThreadProbe::start(ProbeConfig::default())?;
//! while probe.window().snapshot().histogram.count() < 5 {
//!     std::thread::sleep(Duration::from_millis(1));
//! }
//! println!("timer overshoot p99: {:?}", probe.window().snapshot().histogram.p99());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{ConfigError, ProbeConfig};
use crate::clock::{SharedClock, SystemClock, duration_nanos};
use crate::histogram::WindowedHistogram;

/// A running timer-overshoot probe; stops when dropped.
pub struct ThreadProbe {
    window: Arc<WindowedHistogram>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    config: ProbeConfig,
}

impl ThreadProbe {
    /// Starts the probe on the system clock.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] when the rate or window is out of range.
    ///
    /// # Panics
    ///
    /// Panics if the OS cannot spawn the probe thread.
    pub fn start(config: ProbeConfig) -> Result<Self, ConfigError> {
        Self::with_clock(config, SystemClock::shared())
    }

    /// Starts the probe, measuring overshoot and rotating the window with `clock` (the thread
    /// still sleeps in real time).
    ///
    /// # Errors
    ///
    /// [`ConfigError`] when the rate or window is out of range.
    ///
    /// # Panics
    ///
    /// Panics if the OS cannot spawn the probe thread.
    pub fn with_clock(config: ProbeConfig, clock: SharedClock) -> Result<Self, ConfigError> {
        config.validate()?;
        let window = Arc::new(WindowedHistogram::with_clock(config.window, clock.clone())?);
        let stop = Arc::new(AtomicBool::new(false));
        let (w, s) = (window.clone(), stop.clone());
        let period = config.period();
        let thread = std::thread::Builder::new()
            .name("tailguard-thread-probe".into())
            .spawn(move || probe_loop(&w, &s, &clock, period))
            .expect("the OS refused to spawn the tailguard-thread-probe thread");
        Ok(Self { window, stop, thread: Some(thread), config })
    }

    /// Timer overshoots, in nanoseconds.
    pub fn window(&self) -> &Arc<WindowedHistogram> {
        &self.window
    }

    /// The probe's settings.
    pub fn config(&self) -> ProbeConfig {
        self.config
    }

    /// Stops the probe and waits for its thread to end. Dropping the probe does the same.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        super::stop_thread(&self.stop, &mut self.thread);
    }
}

impl Drop for ThreadProbe {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl fmt::Debug for ThreadProbe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThreadProbe").field("config", &self.config).finish_non_exhaustive()
    }
}

fn probe_loop(window: &WindowedHistogram, stop: &AtomicBool, clock: &SharedClock, period: Duration) {
    let period_nanos = duration_nanos(period);
    while !stop.load(Ordering::Relaxed) {
        let start = clock.now_nanos();
        let deadline = Instant::now() + period;
        // `park_timeout` may return early (spuriously, or by `unpark` on stop): sleep again
        // until the deadline, so only lateness is measured.
        loop {
            let now = Instant::now();
            if now >= deadline || stop.load(Ordering::Relaxed) {
                break;
            }
            std::thread::park_timeout(deadline - now);
        }
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let slept = clock.now_nanos().saturating_sub(start);
        window.record_nanos(overshoot_nanos(slept, period_nanos));
    }
}

/// How late a sleep of `period_nanos` ended after `slept_nanos`.
#[inline]
fn overshoot_nanos(slept_nanos: u64, period_nanos: u64) -> u64 {
    slept_nanos.saturating_sub(period_nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overshoot_is_lateness_only() {
        assert_eq!(overshoot_nanos(1_050_000, 1_000_000), 50_000);
        assert_eq!(overshoot_nanos(999_000, 1_000_000), 0);
    }

    #[test]
    fn records_and_stops() {
        let probe = ThreadProbe::start(ProbeConfig::with_rate_hz(5_000)).unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while probe.window().snapshot().histogram.count() < 20 {
            assert!(Instant::now() < deadline, "the probe recorded nothing");
            std::thread::sleep(Duration::from_millis(1));
        }
        probe.stop(); // joins the thread: returns only once it ended
    }

    #[test]
    fn rejects_bad_rates() {
        assert_eq!(ThreadProbe::start(ProbeConfig::with_rate_hz(0)).unwrap_err(), ConfigError::Rate(0));
    }
}
