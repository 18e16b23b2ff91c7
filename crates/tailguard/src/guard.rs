//! The front door: one call that starts tailguard's whole loop for a tokio runtime, and one
//! handle that stops it.
//!
//! [`Tailguard::builder()`](Tailguard::builder)`.start(runtime.handle())` starts, from one
//! configuration:
//!
//! | part | thread | what it does |
//! |---|---|---|
//! | [runtime probe](crate::observe::RuntimeProbe) | `tailguard-probe` (+ a task on the runtime) | measures the runtime's scheduling latency (wake→poll delay) into a window, and samples its run queue |
//! | [elastic limiter](crate::elastic::Limiter) | `tailguard-limiter` | steers the elastic share so the window's p99 stays under target; hands out grants of CPU |
//! | metrics exporter (feature `metrics`) | `tailguard-export` | publishes the probe's window (`source="runtime"`) and PSI every second through the `metrics` facade |
//! | [work queue](crate::admission::WorkQueue), if asked for | `tailguard-admission` | admits foreground requests by tenant, priority and deadline, its slots following the runtime's run queue |
//!
//! The limiter and the work queue export their own metrics (feature `metrics`) from their
//! threads; nothing here changes their names.
//!
//! # Use
//!
//! Build once at start-up, next to the runtime; hand [`Tailguard::limiter`] to background work
//! and [`Tailguard::work_queue`] to the foreground (with the `tower` feature, as an
//! [`AdmissionLayer`](crate::admission::layer::AdmissionLayer)). [`Tailguard::shutdown`] — or
//! dropping the handle — stops every part and joins every thread it started, before the
//! runtime goes away or after. Clones of the limiter and the work queue handed out earlier stay
//! usable as values: the limiter refuses new grants ([`AcquireError::Stopped`](crate::elastic::AcquireError::Stopped)),
//! the work queue keeps admitting with the slot count it had.
//!
//! # Costs
//!
//! Three threads (four with the work queue, two without `metrics`), mostly asleep: the probe
//! wakes 1000 times a second and polls one tiny task on the runtime per wake (its run-queue
//! sample adds ~0.15 % of a core: [`RuntimeProbe::start_with_run_queue`]); the limiter ticks
//! every 100 ms; the exporter every second; the work queue's sampler every 1 ms while requests
//! wait, every 250 ms while idle. Memory: a few fixed-size histograms
//! (tens of KiB). The per-call costs are those of the parts: `over_limit()` a counter and a
//! branch, an admission with a free slot one compare-and-swap.
//!
//! # Examples
//!
//! ```
//! use std::time::Duration;
//! use tailguard::Tailguard;
//! use tailguard::admission::{Request, WorkQueueConfig};
//!
//! let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
//! let guard = Tailguard::builder()
//!     .cores(2.0)
//!     .limiter(tailguard::elastic::Limiter::builder().target(Duration::from_millis(2)))
//!     .work_queue(WorkQueueConfig::default())
//!     .start(runtime.handle())?;
//! let queue = guard.work_queue().expect("asked for").clone();
//! runtime.block_on(async {
//!     let permit = queue.admit_async(&Request::new()).await?; // a free slot: at once
//!     drop(permit);
//!     Ok::<(), tailguard::admission::AdmitError>(())
//! })?;
//! guard.shutdown(); // every tailguard thread has ended when this returns
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::sync::Arc;
use std::thread::JoinHandle;
#[cfg(feature = "metrics")]
use std::time::Duration;

use tokio::runtime::Handle;

use crate::admission::{self, WorkQueue, WorkQueueConfig};
use crate::elastic::{self, LatencySignal, Limiter, LimiterBuilder};
use crate::histogram::WindowedHistogram;
use crate::observe::{self, ProbeConfig, RuntimeProbe};

/// Whether [`Tailguard`] starts a thread that exports the probe's window through the `metrics`
/// facade (feature `metrics`).
#[cfg(feature = "metrics")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricsExport {
    /// No exporter thread: publish yourself with
    /// [`publish_window`](crate::observe::export::publish_window).
    Off,
    /// Publish every this often (1 ms ..= 1 h), first at start.
    Every(Duration),
}

#[cfg(feature = "metrics")]
impl Default for MetricsExport {
    /// Every second.
    fn default() -> Self {
        MetricsExport::Every(Duration::from_secs(1))
    }
}

/// Why [`TailguardBuilder::start`] started nothing. Whatever it had started before the error is
/// stopped and joined.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The probe settings ([`TailguardBuilder::probe`]) are out of range.
    #[error("runtime probe settings: {0}")]
    Probe(#[source] observe::ConfigError),
    /// The limiter settings ([`TailguardBuilder::limiter`], or the cores) are out of range.
    #[error("limiter settings: {0}")]
    Limiter(#[from] elastic::ConfigError),
    /// The work-queue settings ([`TailguardBuilder::work_queue`], or the cores) are out of range.
    #[error("work queue settings: {0}")]
    WorkQueue(#[from] admission::ConfigError),
    /// The export interval ([`TailguardBuilder::metrics_export`]) is out of range.
    #[cfg(feature = "metrics")]
    #[error("metrics export interval: {0}")]
    Export(#[source] observe::ConfigError),
}

/// Configures and starts a [`Tailguard`]; see [the module docs](self).
#[must_use]
pub struct TailguardBuilder {
    cores: Option<f64>,
    probe: ProbeConfig,
    limiter: LimiterBuilder,
    /// What the limiter steers by instead of the probe's window.
    signal: Option<Arc<dyn LatencySignal>>,
    work_queue: Option<WorkQueueConfig>,
    #[cfg(feature = "metrics")]
    export: MetricsExport,
}

impl std::fmt::Debug for TailguardBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TailguardBuilder")
            .field("cores", &self.cores)
            .field("probe", &self.probe)
            .field("own_signal", &self.signal.is_some())
            .field("work_queue", &self.work_queue)
            .finish_non_exhaustive()
    }
}

impl TailguardBuilder {
    /// Cores the elastic share and the work queue's run-queue signal are of. Default: those
    /// this process may use ([`detected_cores`](crate::budget::detected_cores): affinity, cgroup
    /// quota, cpuset). Overrides the cores of [`limiter`](Self::limiter) and
    /// [`work_queue`](Self::work_queue) settings.
    pub fn cores(mut self, cores: f64) -> Self {
        self.cores = Some(cores);
        self
    }

    /// Rate and window of the runtime probe (default 1 kHz, 25 × 100 ms).
    pub fn probe(mut self, config: ProbeConfig) -> Self {
        self.probe = config;
        self
    }

    /// The limiter's settings (target, grant, share bounds, controller, …). Its cores and its
    /// latency window are set at start: the cores of [`cores`](Self::cores), the probe's window.
    pub fn limiter(mut self, limiter: LimiterBuilder) -> Self {
        self.limiter = limiter;
        self
    }

    /// What the limiter steers by instead of the runtime probe's window: the service's own
    /// request latency, say, a [`WindowedHistogram`] its handlers record into (pair it with a
    /// working target relative to the latency without elastic work,
    /// [`LimiterBuilder::quiet_headroom`]). The probe still runs and its window is still
    /// [`scheduling_latency`](Tailguard::scheduling_latency), but the limiter no longer tells
    /// it when elastic work waits, so it keeps the idle rate of its [`ProbeConfig`]. Default:
    /// the probe's window.
    pub fn latency_signal(mut self, signal: Arc<dyn LatencySignal>) -> Self {
        self.signal = Some(signal);
        self
    }

    /// Also start a foreground [`WorkQueue`] on the runtime's run queue (off by default).
    pub fn work_queue(mut self, config: WorkQueueConfig) -> Self {
        self.work_queue = Some(config);
        self
    }

    /// Whether and how often to export the probe's window (default every second).
    #[cfg(feature = "metrics")]
    pub fn metrics_export(mut self, export: MetricsExport) -> Self {
        self.export = export;
        self
    }

    /// Starts every part for the runtime behind `runtime`.
    ///
    /// # Errors
    ///
    /// A [`StartError`] naming the settings out of range; nothing is left running then.
    ///
    /// # Panics
    ///
    /// If the OS refuses to spawn a thread.
    pub fn start(self, runtime: &Handle) -> Result<Tailguard, StartError> {
        let mut parts = Parts::default();
        let probe = RuntimeProbe::start_with_run_queue(runtime, self.probe).map_err(StartError::Probe)?;
        let window = Arc::clone(probe.window());
        parts.probe = Some(probe);
        let cores = self.cores.unwrap_or_else(crate::budget::detected_cores);
        if let Some(mut config) = self.work_queue {
            if self.cores.is_some() {
                config.cores = cores;
            }
            let queue = WorkQueue::start_with_runtime(config, runtime)?;
            parts.queue_thread = queue.take_sampler();
            parts.queue = Some(queue);
        }
        // The limiter steers by the probe and tells it when to sample at its full rate, unless
        // it was given a signal of its own.
        let signal = match self.signal {
            Some(signal) => signal,
            None => parts.probe.as_ref().map(RuntimeProbe::signal).expect("the probe started above"),
        };
        let (limiter, thread) = self.limiter.cores(cores).latency_signal(signal).start_joinable()?;
        parts.limiter = Some(limiter);
        parts.limiter_thread = Some(thread);
        #[cfg(feature = "metrics")]
        if let MetricsExport::Every(interval) = self.export {
            let windows = vec![("runtime".to_owned(), Arc::clone(&window))];
            let exporter =
                observe::export::PeriodicExporter::start(interval, windows).map_err(StartError::Export)?;
            parts.exporter = Some(exporter);
        }
        Ok(Tailguard { parts, window, cores })
    }
}

/// What a [`Tailguard`] runs; each part is stopped and joined on drop.
#[derive(Default)]
struct Parts {
    probe: Option<RuntimeProbe>,
    limiter: Option<Limiter>,
    limiter_thread: Option<JoinHandle<()>>,
    queue: Option<WorkQueue>,
    queue_thread: Option<JoinHandle<()>>,
    #[cfg(feature = "metrics")]
    exporter: Option<observe::export::PeriodicExporter>,
}

impl Drop for Parts {
    fn drop(&mut self) {
        // Foreground first (its sampler reads the runtime), then the limiter, the exporter, and
        // the probe that feeds them.
        if let Some(queue) = &self.queue {
            queue.stop();
        }
        if let Some(thread) = self.queue_thread.take() {
            // A part that panicked must not turn the shutdown into a panic.
            let _ = thread.join();
        }
        if let Some(limiter) = &self.limiter {
            limiter.stop();
        }
        if let Some(thread) = self.limiter_thread.take() {
            let _ = thread.join();
        }
        #[cfg(feature = "metrics")]
        drop(self.exporter.take());
        if let Some(probe) = self.probe.take() {
            probe.stop();
        }
    }
}

/// tailguard running for one tokio runtime: the probe, the limiter, the exporter, and the work
/// queue if asked for. [`shutdown`](Self::shutdown) or drop stops them all and joins their
/// threads. See [the module docs](self).
pub struct Tailguard {
    parts: Parts,
    window: Arc<WindowedHistogram>,
    cores: f64,
}

impl std::fmt::Debug for Tailguard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tailguard")
            .field("cores", &self.cores)
            .field("limiter", &self.parts.limiter)
            .field("work_queue", &self.parts.queue)
            .finish_non_exhaustive()
    }
}

impl Tailguard {
    /// A builder with the defaults: detected cores, a 1 kHz probe, the limiter's defaults
    /// (1 ms p99 target, 100 ms grants, 5 %–75 % share), metrics exported every second (feature
    /// `metrics`), no work queue.
    pub fn builder() -> TailguardBuilder {
        TailguardBuilder {
            cores: None,
            probe: ProbeConfig::default(),
            limiter: Limiter::builder(),
            signal: None,
            work_queue: None,
            #[cfg(feature = "metrics")]
            export: MetricsExport::default(),
        }
    }

    /// The elastic limiter: take grants ([`acquire`](Limiter::acquire),
    /// [`acquire_async`](Limiter::acquire_async)), pace work ([`Pacer`](crate::elastic::Pacer)),
    /// run tasks under it ([`elastic`](Limiter::elastic)). Clone it to hand it out.
    pub fn limiter(&self) -> &Limiter {
        self.parts.limiter.as_ref().expect("a started Tailguard has a limiter")
    }

    /// The foreground work queue, if [`TailguardBuilder::work_queue`] asked for one.
    pub fn work_queue(&self) -> Option<&WorkQueue> {
        self.parts.queue.as_ref()
    }

    /// The runtime probe (its tick counts, its run-queue totals).
    pub fn probe(&self) -> &RuntimeProbe {
        self.parts.probe.as_ref().expect("a started Tailguard has a probe")
    }

    /// The runtime's scheduling latency, as the probe measures it: the window the limiter reads.
    pub fn scheduling_latency(&self) -> &Arc<WindowedHistogram> {
        &self.window
    }

    /// The cores the limiter's share is of.
    pub fn cores(&self) -> f64 {
        self.cores
    }

    /// Stops every part and joins every thread it started; dropping the handle does the same.
    pub fn shutdown(self) {
        drop(self);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::histogram::WindowConfig;

    #[test]
    fn the_limiter_steers_by_a_signal_given_instead_of_the_probes() {
        let runtime =
            tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        // Request latencies of 40 ms: the probe of an idle runtime sees nothing like it.
        let requests = Arc::new(WindowedHistogram::new(WindowConfig::default()).unwrap());
        for _ in 0..100 {
            requests.record(Duration::from_millis(40));
        }
        let guard = Tailguard::builder().cores(1.0).latency_signal(requests).start(runtime.handle()).unwrap();
        guard.limiter().tick();
        let p99 = guard.limiter().snapshot().latest_p99;
        assert!(p99.is_some_and(|p| p >= Duration::from_millis(30)), "{p99:?}");
        guard.shutdown();
    }
}
