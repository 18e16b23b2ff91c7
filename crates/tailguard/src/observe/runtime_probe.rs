//! The tokio runtime probe: the scheduling latency any woken task of a runtime sees.
//!
//! A std thread named `tailguard-probe`, outside the runtime, fires at a fixed rate (default
//! 1 kHz): it stamps the time and wakes a probe task living on the runtime. When the task is
//! polled it records `poll time − stamp` into its window. The delay is what a task woken from
//! outside (by I/O, a timer, another thread) waits in the runtime's queues behind other tasks,
//! plus any time the OS keeps the worker threads off a CPU.
//!
//! If the task has not run by the next firing, the stamp is kept (the delay keeps growing from
//! the first wake) and the firing counts as missed ([`RuntimeProbe::missed_ticks`]).
//!
//! The probe samples on demand ([`super::sampling`]): a limiter steering by
//! [`RuntimeProbe::signal`] lowers its [demand](RuntimeProbe::demand) while no elastic work
//! asks for CPU, and the probe then fires at [`ProbeConfig::idle_rate_hz`] (10 Hz by default)
//! instead of its full rate; the first ask raises it again and the probe fires at once.
//!
//! # Cost
//!
//! Each firing is one timed sleep on the probe thread, one clock read and, when the task was
//! waiting, one wake; each poll of the task is one clock read and one histogram record.
//! [`RuntimeProbe::probe_thread_cpu`] reports the probe thread's own share (read every 256
//! firings, so the ~0.7 µs CPU-clock read is amortised).
//!
//! Measured on the project's 2-core VMs as extra process CPU on an idle 2-worker runtime
//! (`benches/observe.rs`, `cpu_cost/*`, noisy across runs): **~3–4.5 % of one core at 1 kHz,
//! ~0.9–1.9 % at 200 Hz**, against ~1–1.2 % for a bare thread sleeping 1 ms at a time; sampling
//! the run queue at each firing ([`RuntimeProbe::start_with_run_queue`]) adds ~1.4 µs per
//! firing. On these VMs every wake of a sleeping thread costs ~10–20 µs of CPU (timer and
//! inter-processor interrupts exit to the hypervisor), and each firing wakes two threads, the
//! probe and a parked worker. Hence sampling on demand: an idle `tailguard serve` (no requests, no jobs) measured
//! with `scripts/idle-cost.sh` over 60 s costs 0.32 / 0.35 % of one core at the 10 Hz idle rate
//! against 5.5 / 4.7 % at 1 kHz throughout (two interleaved rounds). Under load the probe costs
//! as much as idle, not less: at 5 000 req/s the workers still park between requests, so a
//! firing still wakes one (`scripts/probe-cost.sh`, three rounds: +3.3 to +7.3 % of a core at
//! 1 kHz against 10 Hz, 110 against 99 µs of process CPU per request). Sampling on demand keeps
//! that cost to the times elastic work runs.
//!
//! # Examples
//!
//! ```
//! use std::time::Duration;
//! use tailguard::observe::ProbeConfig;
//! use tailguard::observe::runtime_probe::RuntimeProbe;
//!
//! let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).build()?;
//! let probe = RuntimeProbe::start(runtime.handle(), ProbeConfig::default())?;
//! while probe.window().snapshot().histogram.count() < 5 {
//!     std::thread::sleep(Duration::from_millis(1));
//! }
//! println!("p99 scheduling latency: {:?}", probe.window().snapshot().histogram.p99());
//! drop(probe); // stops the thread and the task
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::runtime::Handle;
use tokio::sync::Notify;

use super::run_queue::{PiggybackSampler, RunQueueTotals};
use super::sampling::{ProbeSignal, SamplingDemand};
use super::throttle::CgroupThrottle;
use super::{ConfigError, ProbeConfig};
use crate::clock::{SharedClock, SystemClock, duration_nanos, thread_cpu_time};
use crate::histogram::WindowedHistogram;

/// How many firings pass between two reads of the probe thread's CPU clock.
const CPU_READ_EVERY: u64 = 256;
/// How often a quota cgroup's throttling is read (`super::throttle`): about one CFS period.
const THROTTLE_READ_EVERY: Duration = Duration::from_millis(100);

/// A running probe of one tokio runtime; stops when dropped.
pub struct RuntimeProbe {
    shared: Arc<Shared>,
    run_queue: Option<Arc<Mutex<RunQueueTotals>>>,
    thread: Option<JoinHandle<()>>,
    config: ProbeConfig,
    throttle_stat: Option<std::path::PathBuf>,
}

struct Shared {
    /// Clock reading of the pending wake; 0 when none is pending.
    stamp_nanos: AtomicU64,
    notify: Notify,
    stop: AtomicBool,
    clock: SharedClock,
    window: Arc<WindowedHistogram>,
    ticks: AtomicU64,
    missed: AtomicU64,
    probe_cpu_nanos: AtomicU64,
    /// Full rate or idle rate.
    demand: SamplingDemand,
}

impl RuntimeProbe {
    /// Starts probing the runtime behind `handle`, on the system clock.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] when the rate or window is out of range.
    ///
    /// # Panics
    ///
    /// Panics if the OS cannot spawn the probe thread.
    pub fn start(handle: &Handle, config: ProbeConfig) -> Result<Self, ConfigError> {
        Self::with_clock(handle, config, SystemClock::shared())
    }

    /// Starts probing with the given clock for stamps and window rotation (the probe thread
    /// still sleeps in real time).
    ///
    /// # Errors
    ///
    /// [`ConfigError`] when the rate or window is out of range.
    ///
    /// # Panics
    ///
    /// Panics if the OS cannot spawn the probe thread.
    pub fn with_clock(handle: &Handle, config: ProbeConfig, clock: SharedClock) -> Result<Self, ConfigError> {
        Self::spawn(handle, config, clock, false)
    }

    /// Starts probing, and samples run-queue depths (as a
    /// [`RunQueueSampler`](super::run_queue::RunQueueSampler) does) at every firing from the
    /// probe thread: the probe's rate (1 kHz by default) for ~0.15 % of a core more, instead of a
    /// sampler thread with wake-ups of its own. Read them with [`run_queue_totals`](Self::run_queue_totals).
    ///
    /// # Errors
    ///
    /// [`ConfigError`] when the rate or window is out of range.
    ///
    /// # Panics
    ///
    /// Panics if the OS cannot spawn the probe thread.
    pub fn start_with_run_queue(handle: &Handle, config: ProbeConfig) -> Result<Self, ConfigError> {
        Self::spawn(handle, config, SystemClock::shared(), true)
    }

    fn spawn(
        handle: &Handle,
        config: ProbeConfig,
        clock: SharedClock,
        sample_run_queue: bool,
    ) -> Result<Self, ConfigError> {
        config.validate()?;
        let window = Arc::new(WindowedHistogram::with_clock(config.window, clock.clone())?);
        let shared = Arc::new(Shared {
            stamp_nanos: AtomicU64::new(0),
            notify: Notify::new(),
            stop: AtomicBool::new(false),
            clock,
            window,
            ticks: AtomicU64::new(0),
            missed: AtomicU64::new(0),
            probe_cpu_nanos: AtomicU64::new(0),
            demand: SamplingDemand::new(),
        });
        let (sampler, run_queue) = if sample_run_queue {
            let (sampler, totals) = PiggybackSampler::new(handle);
            (Some(sampler), Some(totals))
        } else {
            (None, None)
        };
        handle.spawn(probe_task(shared.clone()));
        let periods = Periods {
            full: config.period(),
            idle: config.idle_rate_hz.map(|hz| Duration::from_secs(1) / hz),
        };
        let throttle = if config.count_throttling { CgroupThrottle::detect() } else { None };
        let throttle_stat = throttle.as_ref().map(|t| t.stat_path().to_path_buf());
        let for_thread = shared.clone();
        let thread = std::thread::Builder::new()
            .name("tailguard-probe".into())
            .spawn(move || probe_thread(&for_thread, periods, sampler, throttle))
            .expect("the OS refused to spawn the tailguard-probe thread");
        shared.demand.attach(thread.thread().clone());
        Ok(Self { shared, run_queue, thread: Some(thread), config, throttle_stat })
    }

    /// Running sums of the run-queue samples taken at each firing; `None` unless the probe was
    /// started with [`start_with_run_queue`](Self::start_with_run_queue). Subtract two readings
    /// ([`RunQueueTotals::since`]) to average an interval.
    pub fn run_queue_totals(&self) -> Option<RunQueueTotals> {
        Some(*self.run_queue.as_ref()?.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Wake→poll delays of the probe task, in nanoseconds.
    pub fn window(&self) -> &Arc<WindowedHistogram> {
        &self.shared.window
    }

    /// The probe's window with its [demand](SamplingDemand), for a limiter to steer by: the
    /// limiter lowers the demand while no elastic work asks for CPU (the probe then fires at
    /// [`ProbeConfig::idle_rate_hz`]) and raises it when work asks again.
    ///
    /// ```
    /// use tailguard::elastic::Limiter;
    /// use tailguard::observe::{ProbeConfig, RuntimeProbe};
    ///
    /// let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).build()?;
    /// let probe = RuntimeProbe::start(runtime.handle(), ProbeConfig::default())?;
    /// let limiter = Limiter::builder().latency_signal(probe.signal()).start()?;
    /// # drop(limiter);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn signal(&self) -> Arc<ProbeSignal> {
        Arc::new(ProbeSignal { window: Arc::clone(&self.shared.window), demand: self.shared.demand.clone() })
    }

    /// The probe's demand: raised, it fires at its full rate; lowered, at its idle rate.
    pub fn demand(&self) -> &SamplingDemand {
        &self.shared.demand
    }

    /// The probe's settings.
    pub fn config(&self) -> ProbeConfig {
        self.config
    }

    /// The `cpu.stat` whose throttling the probe counts as delay
    /// ([`ProbeConfig::count_throttling`]); `None` where no cgroup quota binds the process.
    pub fn throttle_stat(&self) -> Option<&std::path::Path> {
        self.throttle_stat.as_deref()
    }

    /// Firings so far (monotonically increasing, never reset).
    pub fn ticks(&self) -> u64 {
        self.shared.ticks.load(Ordering::Relaxed)
    }

    /// Firings that found the previous wake still pending (the task had not run for a whole
    /// period); monotonically increasing, never reset.
    pub fn missed_ticks(&self) -> u64 {
        self.shared.missed.load(Ordering::Relaxed)
    }

    /// CPU time used by the probe thread so far (as of its last read, every 256 firings); the
    /// probe task's cost on the workers is not included.
    pub fn probe_thread_cpu(&self) -> Duration {
        Duration::from_nanos(self.shared.probe_cpu_nanos.load(Ordering::Relaxed))
    }

    /// Stops the probe and waits for its thread to end. Dropping the probe does the same.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        super::stop_thread(&self.shared.stop, &mut self.thread);
        // Let the task see `stop` and end.
        self.shared.notify.notify_one();
    }
}

impl Drop for RuntimeProbe {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl fmt::Debug for RuntimeProbe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RuntimeProbe")
            .field("config", &self.config)
            .field("ticks", &self.ticks())
            .field("missed_ticks", &self.missed_ticks())
            .finish_non_exhaustive()
    }
}

async fn probe_task(shared: Arc<Shared>) {
    loop {
        shared.notify.notified().await;
        if shared.stop.load(Ordering::Relaxed) {
            return;
        }
        let stamp = shared.stamp_nanos.swap(0, Ordering::Relaxed);
        if stamp != 0 {
            shared.window.record_nanos(shared.clock.now_nanos().saturating_sub(stamp));
            shared.demand.sampled();
        }
    }
}

/// The probe thread's periods: at full rate, and while the demand is lowered (`None`: full).
#[derive(Clone, Copy, Debug)]
struct Periods {
    full: Duration,
    idle: Option<Duration>,
}

impl Periods {
    fn now(&self, demand: &SamplingDemand) -> Duration {
        match self.idle {
            Some(idle) if !demand.is_wanted() => idle,
            _ => self.full,
        }
    }
}

/// Parks until a period after `last` — the full or the idle one, as the demand says when the
/// thread wakes, so a raised demand (which unparks it) fires at once. `false` once stopped.
fn park_for_period(shared: &Shared, periods: Periods, last: Instant) -> bool {
    loop {
        if shared.stop.load(Ordering::Relaxed) {
            return false;
        }
        let due = last + periods.now(&shared.demand);
        let now = Instant::now();
        if now >= due {
            return true;
        }
        std::thread::park_timeout(due - now);
    }
}

fn probe_thread(
    shared: &Shared,
    periods: Periods,
    mut run_queue: Option<PiggybackSampler>,
    mut throttle: Option<CgroupThrottle>,
) {
    let mut last = Instant::now();
    let mut throttle_read = last;
    loop {
        if !park_for_period(shared, periods, last) {
            return;
        }
        // Before the wake: sampled after it, the global queue would count the probe task itself.
        if let Some(sampler) = &mut run_queue {
            sampler.sample();
        }
        if shared.stamp_nanos.load(Ordering::Relaxed) == 0 {
            shared.stamp_nanos.store(shared.clock.now_nanos().max(1), Ordering::Relaxed);
            shared.notify.notify_one();
        } else {
            // The last wake is still pending: waking again would only add a wasted poll.
            shared.missed.fetch_add(1, Ordering::Relaxed);
        }
        let ticks = shared.ticks.fetch_add(1, Ordering::Relaxed) + 1;
        if ticks % CPU_READ_EVERY == 1 {
            shared.probe_cpu_nanos.store(duration_nanos(thread_cpu_time()), Ordering::Relaxed);
        }
        let period = periods.now(&shared.demand);
        if let Some(throttle) = &mut throttle {
            if last >= throttle_read {
                throttle_read = last + THROTTLE_READ_EVERY;
                let _ = throttle.record(&shared.window, period);
            }
        }
        last += period;
        let now = Instant::now();
        if last + period < now {
            // Overslept by more than a period (the machine is loaded, or the rate just rose):
            // do not fire a burst to catch up, resume the rhythm from now.
            last = now;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    #[test]
    fn records_delays_and_stops_on_drop() {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).build().unwrap();
        let probe = RuntimeProbe::start(runtime.handle(), ProbeConfig::with_rate_hz(2_000)).unwrap();
        wait_for("50 probe samples", || probe.window().snapshot().histogram.count() >= 50);
        assert!(probe.ticks() >= 50);
        drop(probe);
        // The drop joined the thread; the task ends too, leaving no task alive.
        wait_for("the probe task to end", || runtime.metrics().num_alive_tasks() == 0);
    }

    #[test]
    fn samples_the_run_queue_at_each_firing_when_asked() {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().unwrap();
        let plain = RuntimeProbe::start(runtime.handle(), ProbeConfig::default()).unwrap();
        assert_eq!(plain.run_queue_totals(), None);
        let probe =
            RuntimeProbe::start_with_run_queue(runtime.handle(), ProbeConfig::with_rate_hz(2_000)).unwrap();
        wait_for("20 run-queue samples", || probe.run_queue_totals().unwrap().samples >= 20);
        let average = probe.run_queue_totals().unwrap().since(&RunQueueTotals::default()).unwrap();
        assert_eq!(average.tokio_workers, Some(2));
        assert!(average.tokio_alive_tasks.unwrap() >= 1.0, "the probe tasks are alive");
    }

    #[test]
    fn a_raised_demand_resumes_the_full_rate_at_once() {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).build().unwrap();
        // An idle rate of 1 Hz: only the raise can bring 50 firings within the wait below.
        let config = ProbeConfig { idle_rate_hz: Some(1), ..ProbeConfig::with_rate_hz(2_000) };
        let probe = RuntimeProbe::start(runtime.handle(), config).unwrap();
        wait_for("a first firing", || probe.ticks() >= 1);
        probe.demand().set_wanted(false);
        assert!(!probe.signal().demand.is_primed());
        let before = probe.ticks();
        probe.demand().set_wanted(true);
        wait_for("50 firings at the full rate", || probe.ticks() >= before + 50);
        wait_for("the signal to be primed", || probe.demand().is_primed());
    }

    #[test]
    fn rejects_an_idle_rate_above_the_full_rate() {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let config = ProbeConfig { idle_rate_hz: Some(2_000), ..ProbeConfig::default() };
        let err = RuntimeProbe::start(runtime.handle(), config).unwrap_err();
        assert_eq!(err, ConfigError::IdleRate { idle: 2_000, rate: 1_000 });
        assert!(ProbeConfig::with_rate_hz(5).validate().is_ok(), "a slow probe idles at its own rate");
    }

    #[test]
    fn rejects_bad_rates() {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        for rate in [0, 10_001, u32::MAX] {
            let err = RuntimeProbe::start(runtime.handle(), ProbeConfig::with_rate_hz(rate)).unwrap_err();
            assert_eq!(err, ConfigError::Rate(rate));
            assert!(err.to_string().contains("1 ..= 10000 Hz"), "{err}");
        }
    }
}
