//! Run-queue depth: how many tasks are runnable, sampled at a high rate and averaged per tick.
//!
//! Two depths are sampled:
//!
//! - **the OS's runnable thread count**, from the 4th field of `/proc/loadavg`
//!   (`running/total`), minus the sampler thread itself, which is always running when it reads.
//!   `/proc/stat`'s `procs_running` holds the same number but its file renders per-CPU times
//!   for every CPU and every interrupt count on each read. Measured on the project's 2-core VMs
//!   (`benches/observe.rs`, `os_runnable/*`): `/proc/stat` 18 µs per read, `/proc/loadavg`
//!   opened each time 7.5 µs, kept open and re-read from offset 0 ([`LoadavgReader`]) 1.5 µs.
//!   The sampler uses the last.
//! - **tokio's global (injection) queue depth** and the runtime's alive task count, from the
//!   stable `RuntimeMetrics` API (feature `tokio`). Per-worker local queue depths need
//!   `--cfg tokio_unstable` and are not read.
//!
//! Missing files (non-Linux, a sandbox without `/proc`) give `None` fields, never an error.
//!
//! # Examples
//!
//! ```
//! use std::time::Duration;
//! use tailguard::observe::run_queue::{RunQueueConfig, RunQueueSampler};
//!
//! let config = RunQueueConfig { rate_hz: 1_000, tick: Duration::from_millis(10) };
//! let sampler = RunQueueSampler::start(config)?;
//! while sampler.latest().is_none() {
//!     std::thread::sleep(Duration::from_millis(1));
//! }
//! let tick = sampler.latest().unwrap();
//! println!("runnable threads: {:?} (avg over {} samples)", tick.os_runnable, tick.samples);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::fs::File;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{ConfigError, MAX_RATE_HZ, MIN_RATE_HZ};

/// The sampler's default rate, in Hz (see [`RunQueueConfig::rate_hz`] for why not 1 kHz).
pub const DEFAULT_SAMPLE_RATE_HZ: u32 = 200;

/// The file holding the OS's runnable count in its 4th field.
pub const LOADAVG_PATH: &str = "/proc/loadavg";
/// The file holding `procs_running`.
pub const STAT_PATH: &str = "/proc/stat";

/// Parses the runnable count (`running` of `running/total`) from `/proc/loadavg`'s text.
pub fn parse_loadavg_running(text: &str) -> Option<u32> {
    let field = text.split_whitespace().nth(3)?;
    field.split_once('/')?.0.parse().ok()
}

/// Parses `procs_running` from `/proc/stat`'s text.
pub fn parse_procs_running(text: &str) -> Option<u32> {
    text.lines().find_map(|line| line.strip_prefix("procs_running ")).and_then(|v| v.trim().parse().ok())
}

/// Reads the OS's runnable count from `/proc/stat` (opening the file each time).
pub fn read_procs_running() -> Option<u32> {
    parse_procs_running(&std::fs::read_to_string(STAT_PATH).ok()?)
}

/// Reads the OS's runnable count from `/proc/loadavg` (opening the file each time).
pub fn read_loadavg_running() -> Option<u32> {
    parse_loadavg_running(&std::fs::read_to_string(LOADAVG_PATH).ok()?)
}

/// `/proc/loadavg` kept open and re-read from offset 0: no open/close per sample.
#[derive(Debug)]
pub struct LoadavgReader {
    file: Option<File>,
    buf: [u8; 128],
}

impl LoadavgReader {
    /// Opens `/proc/loadavg`; reads give `None` if it does not exist.
    pub fn open() -> Self {
        Self { file: File::open(LOADAVG_PATH).ok(), buf: [0; 128] }
    }

    /// The number of runnable threads (including the caller), or `None` when unavailable.
    pub fn runnable(&mut self) -> Option<u32> {
        #[cfg(unix)]
        let n = std::os::unix::fs::FileExt::read_at(self.file.as_ref()?, &mut self.buf, 0).ok()?;
        // Without positional reads, reopen: `/proc` exists only on Unix-likes anyway.
        #[cfg(not(unix))]
        let n = std::io::Read::read(&mut File::open(LOADAVG_PATH).ok()?, &mut self.buf).ok()?;
        parse_loadavg_running(std::str::from_utf8(&self.buf[..n]).ok()?)
    }
}

/// Settings of a [`RunQueueSampler`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunQueueConfig {
    /// Samples per second. Default 200 Hz: 20 samples per default tick. For 1 kHz at little extra
    /// cost, let the runtime probe sample at its firings instead
    /// (`RuntimeProbe::start_with_run_queue`). A sample itself is cheap
    /// (~1.5 µs), but on the project's VMs every wake of a sleeping thread costs ~10–15 µs of CPU,
    /// so the sampler costs ~1.7–2.1 % of a core at 1 kHz against ~0.5–0.9 % at 200 Hz
    /// (`benches/observe.rs`, `cpu_cost/run_queue_sampler_*`).
    pub rate_hz: u32,
    /// The averaging period: one [`RunQueueTick`] is published per tick. Default 100 ms (the
    /// controller's tick).
    pub tick: Duration,
}

impl Default for RunQueueConfig {
    fn default() -> Self {
        Self { rate_hz: DEFAULT_SAMPLE_RATE_HZ, tick: Duration::from_millis(100) }
    }
}

impl RunQueueConfig {
    /// Checks the settings.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Rate`] when the rate is outside 1 Hz ..= 10 kHz;
    /// [`ConfigError::Window`] when the tick is outside 1 ms ..= 1 h.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(MIN_RATE_HZ..=MAX_RATE_HZ).contains(&self.rate_hz) {
            return Err(ConfigError::Rate(self.rate_hz));
        }
        crate::histogram::WindowConfig { slot: self.tick, slots: 1 }.validate()?;
        Ok(())
    }
}

/// Run-queue depths averaged over one tick.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct RunQueueTick {
    /// Mean runnable OS threads, excluding the sampler; `None` without `/proc/loadavg`.
    pub os_runnable: Option<f64>,
    /// Mean depth of tokio's global queue; `None` without a runtime.
    pub tokio_global_queue: Option<f64>,
    /// Mean alive tasks of the runtime; `None` without a runtime.
    pub tokio_alive_tasks: Option<f64>,
    /// The runtime's worker count; `None` without a runtime.
    pub tokio_workers: Option<usize>,
    /// Samples averaged.
    pub samples: u32,
}

impl RunQueueTick {
    /// Mean runnable tasks per tokio worker (global queue over workers): how many tasks a
    /// woken task may queue behind, per worker.
    pub fn tokio_global_queue_per_worker(&self) -> Option<f64> {
        Some(self.tokio_global_queue? / self.tokio_workers?.max(1) as f64)
    }
}

#[derive(Default)]
struct Sums {
    os: Option<f64>,
    global: f64,
    alive: f64,
    samples: u32,
}

/// Running sums of every sample since the sampler started (monotonically increasing, never
/// reset): the difference of two readings ([`RunQueueTotals::since`]) averages any interval,
/// not only whole ticks.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct RunQueueTotals {
    /// Samples taken.
    pub samples: u64,
    /// Samples in which `/proc/loadavg` could be read.
    pub os_samples: u64,
    /// Sum of runnable OS threads (excluding the sampler) over those samples.
    pub os_runnable_sum: f64,
    /// Sum of tokio's global queue depth over all samples (0 without a runtime).
    pub tokio_global_queue_sum: f64,
    /// Sum of the runtime's alive tasks over all samples (0 without a runtime).
    pub tokio_alive_tasks_sum: f64,
    /// The runtime's worker count; `None` without a runtime.
    pub tokio_workers: Option<usize>,
}

impl RunQueueTotals {
    /// The averages of the samples taken between `earlier` and `self`; `None` when none were.
    pub fn since(&self, earlier: &RunQueueTotals) -> Option<RunQueueTick> {
        let samples = self.samples.checked_sub(earlier.samples).filter(|&n| n > 0)?;
        let os_samples = self.os_samples.saturating_sub(earlier.os_samples);
        let n = samples as f64;
        let runtime = self.tokio_workers.is_some();
        Some(RunQueueTick {
            os_runnable: (os_samples > 0)
                .then(|| (self.os_runnable_sum - earlier.os_runnable_sum) / os_samples as f64),
            tokio_global_queue: runtime
                .then(|| (self.tokio_global_queue_sum - earlier.tokio_global_queue_sum) / n),
            tokio_alive_tasks: runtime
                .then(|| (self.tokio_alive_tasks_sum - earlier.tokio_alive_tasks_sum) / n),
            tokio_workers: self.tokio_workers,
            samples: u32::try_from(samples).unwrap_or(u32::MAX),
        })
    }
}

/// A thread (`tailguard-runq`) that samples run-queue depths; stops when dropped.
pub struct RunQueueSampler {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    config: RunQueueConfig,
}

struct Shared {
    stop: AtomicBool,
    latest: Mutex<Option<RunQueueTick>>,
    totals: Mutex<RunQueueTotals>,
}

impl RunQueueSampler {
    /// Samples the OS's runnable count only.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] when the rate or tick is out of range.
    ///
    /// # Panics
    ///
    /// Panics if the OS cannot spawn the sampler thread.
    pub fn start(config: RunQueueConfig) -> Result<Self, ConfigError> {
        Self::spawn(config, Source::os_only())
    }

    /// Samples the OS's runnable count and the depths of the runtime behind `handle`.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] when the rate or tick is out of range.
    ///
    /// # Panics
    ///
    /// Panics if the OS cannot spawn the sampler thread.
    #[cfg(feature = "tokio")]
    pub fn start_with_runtime(
        config: RunQueueConfig,
        handle: &tokio::runtime::Handle,
    ) -> Result<Self, ConfigError> {
        let mut source = Source::os_only();
        source.runtime = Some(handle.clone());
        Self::spawn(config, source)
    }

    fn spawn(config: RunQueueConfig, source: Source) -> Result<Self, ConfigError> {
        config.validate()?;
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            latest: Mutex::new(None),
            totals: Mutex::new(RunQueueTotals::default()),
        });
        let for_thread = shared.clone();
        let thread = std::thread::Builder::new()
            .name("tailguard-runq".into())
            .spawn(move || sample_loop(&for_thread, config, source))
            .expect("the OS refused to spawn the tailguard-runq thread");
        Ok(Self { shared, thread: Some(thread), config })
    }

    /// The averages of the last complete tick; `None` before the first tick ends.
    pub fn latest(&self) -> Option<RunQueueTick> {
        *self.shared.latest.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Running sums of every sample so far; subtract two readings to average any interval.
    pub fn totals(&self) -> RunQueueTotals {
        *self.shared.totals.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The sampler's settings.
    pub fn config(&self) -> RunQueueConfig {
        self.config
    }

    /// Stops sampling and waits for the thread to end. Dropping the sampler does the same.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        super::stop_thread(&self.shared.stop, &mut self.thread);
    }
}

impl Drop for RunQueueSampler {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl fmt::Debug for RunQueueSampler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunQueueSampler").field("config", &self.config).finish_non_exhaustive()
    }
}

/// Run-queue sampling for a thread that already wakes periodically (the runtime probe's): each
/// [`sample`](Self::sample) adds one sample to shared running sums, sparing a thread of its own
/// and its wake-ups.
#[cfg(feature = "tokio")]
pub(crate) struct PiggybackSampler {
    source: Source,
    totals: Arc<Mutex<RunQueueTotals>>,
}

#[cfg(feature = "tokio")]
impl PiggybackSampler {
    /// A sampler of the OS and of the runtime behind `handle`, and the sums it adds to.
    pub(crate) fn new(handle: &tokio::runtime::Handle) -> (Self, Arc<Mutex<RunQueueTotals>>) {
        let mut source = Source::os_only();
        source.runtime = Some(handle.clone());
        let totals = Arc::new(Mutex::new(RunQueueTotals::default()));
        (Self { source, totals: totals.clone() }, totals)
    }

    /// Takes one sample (~1.5 µs).
    pub(crate) fn sample(&mut self) {
        self.source.sample(&mut Sums::default(), &self.totals);
    }
}

struct Source {
    loadavg: LoadavgReader,
    #[cfg(feature = "tokio")]
    runtime: Option<tokio::runtime::Handle>,
}

impl Source {
    fn os_only() -> Self {
        Self {
            loadavg: LoadavgReader::open(),
            #[cfg(feature = "tokio")]
            runtime: None,
        }
    }

    fn sample(&mut self, sums: &mut Sums, totals: &Mutex<RunQueueTotals>) {
        // The sampler is running while it reads: do not count it.
        let os = self.loadavg.runnable().map(|running| f64::from(running.saturating_sub(1)));
        let (global, alive, workers) = self.runtime_depths();
        if let Some(os) = os {
            *sums.os.get_or_insert(0.0) += os;
        }
        sums.global += global;
        sums.alive += alive;
        sums.samples += 1;
        let mut totals = totals.lock().unwrap_or_else(|p| p.into_inner());
        totals.samples += 1;
        if let Some(os) = os {
            totals.os_samples += 1;
            totals.os_runnable_sum += os;
        }
        totals.tokio_global_queue_sum += global;
        totals.tokio_alive_tasks_sum += alive;
        totals.tokio_workers = workers;
    }

    /// Global queue depth, alive tasks and workers of the runtime; zeros and `None` without one.
    fn runtime_depths(&self) -> (f64, f64, Option<usize>) {
        #[cfg(feature = "tokio")]
        if let Some(runtime) = &self.runtime {
            let metrics = runtime.metrics();
            return (
                metrics.global_queue_depth() as f64,
                metrics.num_alive_tasks() as f64,
                Some(metrics.num_workers()),
            );
        }
        (0.0, 0.0, None)
    }

    fn finish(&self, sums: &Sums) -> RunQueueTick {
        let n = f64::from(sums.samples.max(1));
        #[cfg(feature = "tokio")]
        let runtime = self.runtime.as_ref();
        #[cfg(not(feature = "tokio"))]
        let runtime: Option<&()> = None;
        RunQueueTick {
            os_runnable: sums.os.map(|s| s / n),
            tokio_global_queue: runtime.map(|_| sums.global / n),
            tokio_alive_tasks: runtime.map(|_| sums.alive / n),
            #[cfg(feature = "tokio")]
            tokio_workers: runtime.map(|r| r.metrics().num_workers()),
            #[cfg(not(feature = "tokio"))]
            tokio_workers: None,
            samples: sums.samples,
        }
    }
}

fn sample_loop(shared: &Shared, config: RunQueueConfig, mut source: Source) {
    let period = Duration::from_secs(1) / config.rate_hz;
    let mut sums = Sums::default();
    let mut tick_end = Instant::now() + config.tick;
    let mut next = Instant::now();
    loop {
        if !super::park_until(next, &shared.stop) {
            return;
        }
        source.sample(&mut sums, &shared.totals);
        let now = Instant::now();
        if now >= tick_end {
            let tick = source.finish(&sums);
            *shared.latest.lock().unwrap_or_else(|p| p.into_inner()) = Some(tick);
            sums = Sums::default();
            tick_end = (tick_end + config.tick).max(now);
        }
        next = (next + period).max(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_sources() {
        assert_eq!(parse_loadavg_running("0.52 0.58 0.59 3/1234 5678\n"), Some(3));
        assert_eq!(parse_loadavg_running("0.52 0.58"), None);
        assert_eq!(parse_loadavg_running("0.52 0.58 0.59 x/1 5"), None);
        let stat = "cpu  1 2 3\nprocs_running 5\nprocs_blocked 0\n";
        assert_eq!(parse_procs_running(stat), Some(5));
        assert_eq!(parse_procs_running("cpu 1 2 3\n"), None);
    }

    #[test]
    fn readers_agree_that_this_thread_is_running() {
        // On Linux the calling thread is itself runnable; elsewhere both are None.
        let mut reader = LoadavgReader::open();
        match (reader.runnable(), read_procs_running()) {
            (Some(a), Some(b)) => assert!(a >= 1 && b >= 1),
            (None, _) => assert!(std::fs::metadata(LOADAVG_PATH).is_err()),
            (Some(_), None) => assert!(std::fs::metadata(STAT_PATH).is_err()),
        }
    }

    #[test]
    fn totals_average_an_interval() {
        let earlier =
            RunQueueTotals { samples: 10, os_samples: 10, os_runnable_sum: 5.0, ..Default::default() };
        let later = RunQueueTotals {
            samples: 14,
            os_samples: 12,
            os_runnable_sum: 11.0,
            tokio_global_queue_sum: 8.0,
            tokio_alive_tasks_sum: 40.0,
            tokio_workers: Some(2),
        };
        let tick = later.since(&earlier).unwrap();
        assert_eq!(tick.os_runnable, Some(3.0));
        assert_eq!(tick.tokio_global_queue, Some(2.0));
        assert_eq!(tick.tokio_alive_tasks, Some(10.0));
        assert_eq!(tick.tokio_global_queue_per_worker(), Some(1.0));
        assert_eq!(tick.samples, 4);
    }

    #[test]
    fn rejects_bad_settings() {
        let bad_rate = RunQueueConfig { rate_hz: 0, ..RunQueueConfig::default() };
        assert_eq!(RunQueueSampler::start(bad_rate).unwrap_err(), ConfigError::Rate(0));
        let bad_tick = RunQueueConfig { tick: Duration::ZERO, ..RunQueueConfig::default() };
        let err = RunQueueSampler::start(bad_tick).unwrap_err();
        assert!(matches!(err, ConfigError::Window(_)), "{err}");
    }

    #[cfg(feature = "tokio")]
    #[test]
    fn publishes_tick_averages_with_runtime_depths() {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().unwrap();
        let config = RunQueueConfig { rate_hz: 2_000, tick: Duration::from_millis(5) };
        let sampler = RunQueueSampler::start_with_runtime(config, runtime.handle()).unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        let tick = loop {
            if let Some(tick) = sampler.latest() {
                break tick;
            }
            assert!(Instant::now() < deadline, "no tick published");
            std::thread::sleep(Duration::from_millis(1));
        };
        assert!(tick.samples >= 1);
        assert_eq!(tick.tokio_workers, Some(2));
        let totals = sampler.totals();
        assert!(totals.samples >= u64::from(tick.samples));
        let average = totals.since(&RunQueueTotals::default()).unwrap();
        assert_eq!(average.tokio_workers, Some(2));
        assert_eq!(totals.since(&totals), None, "no samples between equal readings");
        assert!(tick.tokio_global_queue.is_some_and(|d| d >= 0.0));
        assert_eq!(tick.os_runnable.is_some(), std::fs::metadata(LOADAVG_PATH).is_ok());
    }
}
