//! The elastic side of one mode: backup workers and a catch-up scan, admitted (or not) by a
//! limiter, with their CPU charged to a meter.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use clap::ValueEnum;
use tailguard::clock::{Clock, SystemClock};
use tailguard::elastic::{
    AcquireRequest, ElasticHandle, Limiter, Pacer, ThreadPriority, set_current_thread_priority,
};
use tailguard::histogram::WindowedHistogram;

use super::meter::{ElasticMeter, MeterReading};
use super::{Bench, DemoArgs, Plan};
use crate::CliError;
use crate::report;
use crate::workload::backup::{BackupDriver, BackupError, BackupWriter, export, verify};
use crate::workload::scan::catch_up_scan;
use crate::workload::store::Store;

/// Where elastic work runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Placement {
    /// On threads of its own, beside the foreground runtime's workers.
    Threads,
    /// Backups as tasks in the foreground runtime, yielding every [`QUANTUM`] of work (the
    /// catch-up scan, which has no await points, stays on its own thread).
    Runtime,
}

impl fmt::Display for Placement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Placement::Threads => "threads",
            Placement::Runtime => "runtime",
        })
    }
}

/// Longest stretch an elastic task works before it yields its worker to the foreground.
pub const QUANTUM: Duration = Duration::from_micros(500);

/// A backup worker: a thread, or a task in the foreground runtime.
enum Worker {
    Thread(JoinHandle<Result<Vec<PathBuf>, String>>),
    Task(tokio::task::JoinHandle<Result<Vec<PathBuf>, String>>),
}

/// Keys between two CPU-accounting flushes of the scan (a flush reads the thread CPU clock).
const SCAN_FLUSH_KEYS: u64 = 1024;

/// The running elastic work of one mode.
pub struct ElasticRun {
    limiter: Option<Limiter>,
    meter: Arc<ElasticMeter>,
    stop: Arc<AtomicBool>,
    workers: Vec<Worker>,
    /// When measurement began, and the meter's reading then.
    measured_from: (Instant, MeterReading),
}

/// What the sampler reads from a running [`ElasticRun`].
pub struct Observer {
    limiter: Option<Limiter>,
    meter: Arc<ElasticMeter>,
}

impl Observer {
    /// Elastic CPU so far, nanoseconds.
    pub fn cpu_nanos(&self) -> u64 {
        self.meter.read().cpu_nanos
    }

    /// The share the limiter allows now, of all cores; `None` without a limiter.
    pub fn share(&self) -> Option<f64> {
        self.limiter.as_ref().map(|l| l.snapshot().share)
    }
}

impl ElasticRun {
    /// Starts the elastic threads: one catch-up scan and a backup worker per remaining core (at
    /// least one), so that uncontrolled elastic work can fill the machine.
    pub fn start(
        bench: &Bench,
        plan: &Plan,
        args: &DemoArgs,
        window: &Arc<WindowedHistogram>,
    ) -> Result<ElasticRun, CliError> {
        let limiter = if plan.mode.uses_limiter() {
            Some(
                Limiter::builder()
                    .cores(bench.cores as f64)
                    .target(args.target)
                    .controller(plan.controller)
                    .latency_window(Arc::clone(window))
                    .grant(args.grant)
                    .start()?,
            )
        } else {
            None
        };
        let meter = Arc::new(ElasticMeter::default());
        let stop = Arc::new(AtomicBool::new(false));
        let os_priority = plan.mode.os_priority();
        let new_job = || Job {
            limiter: limiter.clone(),
            meter: Arc::clone(&meter),
            stop: Arc::clone(&stop),
            store: Arc::clone(&bench.store),
            os_priority,
            slice: args.grant,
            interrupted: Arc::clone(&bench.cancelled),
        };
        let mut workers = Vec::new();
        for worker in 0..bench.cores.saturating_sub(1).max(1) {
            let job = new_job();
            let dir = bench.backup_dir.clone();
            let name = plan.name.replace([':', '/', '+'], "-");
            let prefix = format!("{name}-{worker}");
            workers.push(match args.elastic_on {
                Placement::Threads => Worker::Thread(
                    std::thread::Builder::new()
                        .name(format!("backup-{worker}"))
                        .spawn(move || job.backups(&dir, &prefix))?,
                ),
                Placement::Runtime => {
                    Worker::Task(bench.runtime.spawn(async move { job.backup_tasks(&dir, &prefix).await }))
                }
            });
        }
        let job = new_job();
        workers.push(Worker::Thread(std::thread::Builder::new().name("catch-up-scan".into()).spawn(
            move || {
                job.scans();
                Ok(Vec::new())
            },
        )?));
        let measured_from = (Instant::now(), meter.read());
        Ok(ElasticRun { limiter, meter, stop, workers, measured_from })
    }

    /// Starts the measured part: figures count from now.
    pub fn begin_measurement(&mut self) {
        self.measured_from = (Instant::now(), self.meter.read());
    }

    /// A read-only view for the sampler.
    pub fn observer(&self) -> Observer {
        Observer { limiter: self.limiter.clone(), meter: Arc::clone(&self.meter) }
    }

    /// Stops the work, verifies each worker's last complete backup against the store, and
    /// returns the figures over `wall`, the measured time.
    pub fn finish(self, bench: &Bench, wall: Duration) -> Result<report::Elastic, CliError> {
        self.stop.store(true, Ordering::Relaxed);
        let reading = self.meter.read().since(&self.measured_from.1);
        let measured = self.measured_from.0.elapsed().max(wall);
        // Every complete backup must restore to exactly the source data. The limiter keeps
        // ticking until every worker is done: a task waiting for a grant is woken by its ticks.
        let (mut backups, mut failures) = (0u64, Vec::new());
        for worker in self.workers {
            let paths = match worker {
                Worker::Thread(thread) => thread.join().map_err(|_| "an elastic worker panicked")??,
                Worker::Task(task) => {
                    bench.runtime.block_on(task).map_err(|_| "an elastic task panicked")??
                }
            };
            let last = paths.len().saturating_sub(1);
            for (i, path) in paths.iter().enumerate() {
                backups += 1;
                if let Err(error) = verify(path, &bench.store) {
                    failures.push(format!("{}: {error}", path.display()));
                }
                // Kept backups (one per worker) can be checked again with `tailguard restore`.
                if !(bench.keep_backups && i == last) {
                    let _ = std::fs::remove_file(path);
                }
            }
        }
        if let Some(limiter) = &self.limiter {
            limiter.stop();
        }
        for failure in &failures {
            eprintln!("tailguard demo: backup did not verify: {failure}");
        }
        let verified = (backups > 0).then_some(failures.is_empty());
        let secs = measured.as_secs_f64();
        Ok(report::Elastic {
            keys_per_sec: reading.keys as f64 / secs,
            scan_keys_per_sec: reading.scan_keys as f64 / secs,
            bytes_per_sec: reading.bytes as f64 / secs,
            cpu_share: reading.cpu_nanos as f64 / (secs * 1e9 * bench.cores as f64),
            idle_share_used: f64::NAN,
            requests: reading.requests,
            preemptions: reading.preemptions,
            backups,
            verified,
            mean_share: None,
        })
    }
}

/// One elastic thread's share of the work.
struct Job {
    limiter: Option<Limiter>,
    meter: Arc<ElasticMeter>,
    stop: Arc<AtomicBool>,
    store: Arc<Store>,
    os_priority: bool,
    /// Set by Ctrl-C: backups in progress are abandoned (their partial files removed).
    interrupted: Arc<AtomicBool>,
    /// Wall-time length of an uncontrolled export request: the grant size, so requests are
    /// comparable across modes.
    slice: Duration,
}

impl Job {
    fn lower_priority(&self) {
        if self.os_priority {
            // Best effort: where the OS refuses, the mode runs at normal priority and says so.
            if let Err(error) = set_current_thread_priority(ThreadPriority::Idle) {
                eprintln!("tailguard demo: cannot lower an elastic thread's priority: {error}");
            }
        }
    }

    /// Runs backups back to back until stopped; returns the paths of the complete ones.
    fn backups(&self, dir: &std::path::Path, prefix: &str) -> Result<Vec<PathBuf>, String> {
        self.lower_priority();
        let mut account = self.meter.cpu_account();
        let mut complete = Vec::new();
        for n in 0.. {
            let path = dir.join(format!("{prefix}-{n}.tgbak"));
            let driver = BackupDriver::new(Arc::clone(&self.store), &path);
            let progress = driver.progress();
            let mut seen = (0, 0, 0, 0);
            let mut charge = |account: &mut super::meter::CpuAccount<'_>| {
                account.flush();
                let now = (
                    progress.keys.load(Ordering::Relaxed),
                    progress.compressed_bytes.load(Ordering::Relaxed),
                    progress.requests.load(Ordering::Relaxed),
                    progress.preemptions.load(Ordering::Relaxed),
                );
                self.meter.add_work(now.0 - seen.0, now.1 - seen.1);
                self.meter.add_requests(now.2 - seen.2, now.3 - seen.3);
                seen = now;
            };
            let stop = &self.stop;
            let result = driver.run(
                || -> Box<dyn FnMut() -> bool> {
                    charge(&mut account);
                    if stop.load(Ordering::Relaxed) {
                        // The mode is over: the backup in progress runs to completion outside
                        // the measurement, so that it can be verified however often it was
                        // preempted.
                        return Box::new(|| false);
                    }
                    match &self.limiter {
                        // Blocks until the grant's CPU exists (at most grant / rate).
                        Some(limiter) => match limiter.acquire(&AcquireRequest::new()) {
                            Ok(handle) => {
                                Box::new(move || handle.over_limit().0 || stop.load(Ordering::Relaxed))
                            }
                            // The limiter is stopped only once its workers are done; a request
                            // that still meets a stopped limiter runs to the end unlimited.
                            Err(_stopped) => Box::new(|| false),
                        },
                        None => {
                            let deadline = Instant::now() + self.slice;
                            let mut keys = 0u32;
                            Box::new(move || {
                                keys = keys.wrapping_add(1);
                                keys % 64 == 0 && (Instant::now() >= deadline || stop.load(Ordering::Relaxed))
                            })
                        }
                    }
                },
                &|| self.interrupted.load(Ordering::Relaxed),
            );
            charge(&mut account);
            match result {
                Ok(_) => complete.push(path),
                Err(BackupError::Cancelled { .. }) => break,
                Err(error) => return Err(format!("backup to {} failed: {error}", path.display())),
            }
            if self.stop.load(Ordering::Relaxed) {
                break;
            }
        }
        Ok(complete)
    }

    /// [`Job::backups`] as a task in the foreground runtime: each export request takes its grant
    /// asynchronously and works in slices of at most [`QUANTUM`], yielding between them so that
    /// a foreground task never waits behind a whole grant. CPU is measured per slice (a slice runs
    /// within one poll, on one thread).
    async fn backup_tasks(&self, dir: &std::path::Path, prefix: &str) -> Result<Vec<PathBuf>, String> {
        let mut complete = Vec::new();
        for n in 0.. {
            let path = dir.join(format!("{prefix}-{n}.tgbak"));
            let fail = |error: BackupError| format!("backup to {} failed: {error}", path.display());
            let mut writer = BackupWriter::create(&path).map_err(fail)?;
            let mut resume = None;
            loop {
                if self.interrupted.load(Ordering::Relaxed) {
                    return Ok(complete); // dropping the writer removes the partial file
                }
                // Once the mode is over the backup finishes unlimited, outside the measurement.
                let stopping = self.stop.load(Ordering::Relaxed);
                let handle = match (&self.limiter, stopping) {
                    // A stopped limiter (`None`) leaves the request to its wall-time slice.
                    (Some(limiter), false) => limiter.acquire_async(&AcquireRequest::new()).await.ok(),
                    _ => None,
                };
                let request_end = Instant::now() + self.slice;
                let spent = |handle: &Option<ElasticHandle>| match handle {
                    Some(handle) => handle.over_limit().0,
                    None => !stopping && Instant::now() >= request_end,
                };
                loop {
                    let cpu_before = SystemClock.thread_cpu_nanos();
                    let slice_end = Instant::now() + QUANTUM;
                    let mut keys = 0u32;
                    let outcome = export(&self.store, resume, &mut || {
                        keys = keys.wrapping_add(1);
                        keys % 16 == 0 && (Instant::now() >= slice_end || spent(&handle))
                    });
                    self.meter.add_cpu_nanos(SystemClock.thread_cpu_nanos().saturating_sub(cpu_before));
                    writer.append(&outcome.chunk).map_err(fail)?;
                    self.meter.add_work(outcome.chunk.keys(), outcome.chunk.compressed_bytes());
                    resume = outcome.resume;
                    let grant_spent = spent(&handle);
                    tokio::task::yield_now().await;
                    if resume.is_none() || grant_spent {
                        self.meter.add_requests(1, u64::from(resume.is_some()));
                        break;
                    }
                }
                if resume.is_none() {
                    break;
                }
            }
            writer.finish().map_err(fail)?;
            complete.push(path);
            if self.stop.load(Ordering::Relaxed) {
                break;
            }
        }
        Ok(complete)
    }

    /// Runs catch-up scans back to back until stopped, paced by the limiter when there is one.
    fn scans(&self) {
        self.lower_priority();
        let mut account = self.meter.cpu_account();
        let mut pacer = self.limiter.as_ref().map(|l| Pacer::new(l.clone(), AcquireRequest::new()));
        while !self.stop.load(Ordering::Relaxed) {
            let mut keys = 0u64;
            let summary = catch_up_scan(&self.store, 4096, &mut || {
                keys += 1;
                if keys % SCAN_FLUSH_KEYS == 0 {
                    account.flush();
                }
                // Once the mode is over, the scan in progress finishes unpaced, unmeasured.
                if let Some(pacer) = pacer.as_mut().filter(|_| !self.stop.load(Ordering::Relaxed)) {
                    // Without a timeout, pace() waits until the grant exists; it fails only
                    // once the limiter is stopped, and then the scan goes on unpaced.
                    let _ = pacer.pace();
                }
            });
            account.flush();
            self.meter.add_scanned(summary.keys);
        }
    }
}
