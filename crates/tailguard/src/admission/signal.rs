//! The run-queue signal that drives the slot count, and the sampler thread that reads it.
//!
//! The adjuster wants runnable tasks per CPU, sampled often (CockroachDB: every 1 ms, every
//! 250 ms while idle). A [`RunQueueSignal`] says how to read it; [`WorkQueue::start`] runs a
//! thread (`tailguard-admission`) that reads it at the configured periods and calls
//! [`WorkQueue::record_sample`]. Sources:
//!
//! | source | reads | cost per sample |
//! |---|---|---|
//! | [`OsRunQueue`] | runnable OS threads (`/proc/loadavg`, minus the sampler) per core | ~1.5 µs (`benches/observe.rs`) |
//! | `TokioRunQueue` (feature `tokio`) | tokio's global queue depth per worker, and the OS count | ~1.5 µs |
//! | [`SampledRunQueue`] | the averages of an [`observe::RunQueueSampler`](crate::observe::RunQueueSampler) since the last read | a lock |
//! | any `FnMut() -> Option<f64>` | whatever it returns | — |
//!
//! A `None` reading skips the adjustment for that sample (the chores of
//! [`WorkQueue::tick`] still run).
//!
//! Between samples the thread parks; while idle (nothing admitted, nobody waiting) it samples
//! at the idle period, and the first request that has to queue unparks it at once.

use std::sync::Arc;
use std::thread;
use std::time::Instant;

use super::config::{ConfigError, WorkQueueConfig};
use super::queue::Shared;
use super::work_queue::WorkQueue;
use crate::clock::{SharedClock, SystemClock};
use crate::observe::run_queue::{LoadavgReader, RunQueueSampler, RunQueueTotals};

/// A source of runnable tasks per CPU, read by the sampler thread.
pub trait RunQueueSignal: Send + 'static {
    /// Runnable tasks per CPU now (or on average since the last call); `None` when unknown.
    fn runnable_per_cpu(&mut self) -> Option<f64>;
}

impl<F> RunQueueSignal for F
where
    F: FnMut() -> Option<f64> + Send + 'static,
{
    fn runnable_per_cpu(&mut self) -> Option<f64> {
        self()
    }
}

/// Runnable OS threads per core, from `/proc/loadavg` kept open; the sampler thread itself is
/// not counted. `None` where the file does not exist.
#[derive(Debug)]
pub struct OsRunQueue {
    reader: LoadavgReader,
    cores: f64,
}

impl OsRunQueue {
    /// Reads the OS run queue, dividing by `cores`.
    pub fn new(cores: f64) -> Self {
        OsRunQueue { reader: LoadavgReader::open(), cores: cores.max(0.01) }
    }
}

impl RunQueueSignal for OsRunQueue {
    fn runnable_per_cpu(&mut self) -> Option<f64> {
        let running = self.reader.runnable()?;
        Some(f64::from(running.saturating_sub(1)) / self.cores)
    }
}

/// Runnable tasks per worker of a tokio runtime (its global queue over its workers; per-worker
/// local queues need `--cfg tokio_unstable` and are not read), or runnable OS threads per core
/// if higher.
#[cfg(feature = "tokio")]
#[derive(Debug)]
pub struct TokioRunQueue {
    runtime: tokio::runtime::Handle,
    os: OsRunQueue,
}

#[cfg(feature = "tokio")]
impl TokioRunQueue {
    /// Reads the runtime behind `runtime` and the OS run queue (over `cores`).
    pub fn new(runtime: &tokio::runtime::Handle, cores: f64) -> Self {
        TokioRunQueue { runtime: runtime.clone(), os: OsRunQueue::new(cores) }
    }
}

#[cfg(feature = "tokio")]
impl RunQueueSignal for TokioRunQueue {
    fn runnable_per_cpu(&mut self) -> Option<f64> {
        let metrics = self.runtime.metrics();
        let per_worker = metrics.global_queue_depth() as f64 / metrics.num_workers().max(1) as f64;
        Some(self.os.runnable_per_cpu().map_or(per_worker, |os| os.max(per_worker)))
    }
}

/// The averages of a running [`RunQueueSampler`] since the previous read: runnable OS threads
/// per core, or tokio's global queue per worker if higher. `None` when the sampler took no
/// sample since (it samples at 200 Hz by default, so a 1 ms reader sees every fifth).
#[derive(Debug)]
pub struct SampledRunQueue {
    sampler: Arc<RunQueueSampler>,
    last: RunQueueTotals,
    cores: f64,
}

impl SampledRunQueue {
    /// Reads `sampler`, dividing OS counts by `cores`.
    pub fn new(sampler: Arc<RunQueueSampler>, cores: f64) -> Self {
        let last = sampler.totals();
        SampledRunQueue { sampler, last, cores: cores.max(0.01) }
    }
}

impl RunQueueSignal for SampledRunQueue {
    fn runnable_per_cpu(&mut self) -> Option<f64> {
        let totals = self.sampler.totals();
        let tick = totals.since(&self.last)?;
        self.last = totals;
        let os = tick.os_runnable.map(|runnable| runnable / self.cores);
        match (os, tick.tokio_global_queue_per_worker()) {
            (Some(os), Some(tokio)) => Some(os.max(tokio)),
            (os, tokio) => os.or(tokio),
        }
    }
}

impl WorkQueue {
    /// A queue on the system clock whose slots follow `signal`, sampled by a thread
    /// (`tailguard-admission`) every `sample_period` (every `idle_sample_period` while idle).
    /// The thread stops on [`stop`](Self::stop) or when the last clone is dropped.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the field out of range.
    ///
    /// # Panics
    ///
    /// If the OS refuses to spawn the thread.
    pub fn start(config: WorkQueueConfig, signal: impl RunQueueSignal) -> Result<Self, ConfigError> {
        Self::start_with_clock(config, SystemClock::shared(), signal)
    }

    /// [`start`](Self::start) on the OS run queue ([`OsRunQueue`] over `config.cores`), for
    /// thread-pool services.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the field out of range.
    ///
    /// # Panics
    ///
    /// If the OS refuses to spawn the thread.
    pub fn start_os(config: WorkQueueConfig) -> Result<Self, ConfigError> {
        let signal = OsRunQueue::new(config.cores);
        Self::start(config, signal)
    }

    /// [`start`](Self::start) on a tokio runtime's run queue ([`TokioRunQueue`]).
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the field out of range.
    ///
    /// # Panics
    ///
    /// If the OS refuses to spawn the thread.
    #[cfg(feature = "tokio")]
    pub fn start_with_runtime(
        config: WorkQueueConfig,
        runtime: &tokio::runtime::Handle,
    ) -> Result<Self, ConfigError> {
        let signal = TokioRunQueue::new(runtime, config.cores);
        Self::start(config, signal)
    }

    /// [`start`](Self::start) with another clock for the queue's deadlines, waits and caps
    /// (the thread itself paces on the OS clock).
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the field out of range.
    ///
    /// # Panics
    ///
    /// If the OS refuses to spawn the thread.
    pub fn start_with_clock(
        config: WorkQueueConfig,
        clock: SharedClock,
        signal: impl RunQueueSignal,
    ) -> Result<Self, ConfigError> {
        let queue = Self::new(config, clock)?;
        let shared = queue.shared().clone();
        let handle = thread::Builder::new()
            .name("tailguard-admission".into())
            .spawn(move || sample_loop(&shared, signal))
            .expect("the OS refused to spawn the tailguard-admission thread");
        queue.attach_sampler(handle);
        Ok(queue)
    }
}

fn sample_loop(shared: &Shared, mut signal: impl RunQueueSignal) {
    shared.register_sampler(thread::current());
    let busy = shared.config.sample_period;
    let idle = shared.config.idle_sample_period;
    #[cfg(feature = "metrics")]
    let mut export = Export::default();
    let mut next = Instant::now();
    while !shared.stopped() {
        match signal.runnable_per_cpu() {
            Some(runnable_per_cpu) => {
                shared.record_sample(runnable_per_cpu);
            }
            None => shared.tick(),
        }
        #[cfg(feature = "metrics")]
        export.maybe_publish(shared);
        let idle_now = shared.idle();
        shared.set_sampler_idle(idle_now);
        next = (next + if idle_now { idle } else { busy }).max(Instant::now());
        loop {
            if shared.stopped() {
                return;
            }
            let now = Instant::now();
            if now >= next {
                break;
            }
            if idle_now && !shared.sampler_idle() {
                // A request queued: sample now, and at the busy period from here on.
                next = now;
                break;
            }
            thread::park_timeout(next - now);
        }
    }
}

/// Publishes a snapshot once per second from the sampler thread.
#[cfg(feature = "metrics")]
#[derive(Default)]
struct Export {
    next: Option<Instant>,
    previous: Option<super::WorkQueueSnapshot>,
}

#[cfg(feature = "metrics")]
impl Export {
    fn maybe_publish(&mut self, shared: &Shared) {
        let now = Instant::now();
        if self.next.is_some_and(|next| now < next) {
            return;
        }
        if self.next.is_none() {
            super::export::describe();
        }
        self.next = Some(now + super::export::EXPORT_INTERVAL);
        let snapshot = shared.snapshot();
        super::export::publish(&snapshot, self.previous.as_ref());
        self.previous = Some(snapshot);
    }
}
