//! The elastic side of one mode: backup workers and a catch-up scan, admitted (or not) by a
//! limiter, with their CPU charged to a meter.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tailguard::clock::{Clock, SystemClock};
use tailguard::elastic::{
    AcquireRequest, ElasticHandle, LatencySignal, Limiter, LimiterBuilder, LimiterSnapshot, Pacer,
    ThreadPriority, TickRecord, set_current_thread_priority,
};

use super::args::DemoArgs;
use super::bench::Bench;
use super::meter::{ElasticMeter, MeterReading};
use super::plan::Plan;
use crate::choices::{Placement, QUANTUM};
use crate::error::CliError;
use crate::report;
use crate::workload::backup::{BackupDriver, BackupError, BackupWriter, export, verify};
use crate::workload::scan::catch_up_scan;
use crate::workload::store::Store;

/// A backup worker: a thread, or a task in the foreground runtime.
enum Worker {
    Thread(JoinHandle<Result<WorkerOutput, String>>),
    Task(tokio::task::JoinHandle<Result<WorkerOutput, String>>),
}

/// What one elastic worker leaves behind.
#[derive(Debug, Default)]
struct WorkerOutput {
    /// Complete backups, in the order they were written.
    complete: Vec<PathBuf>,
    /// Backups abandoned unfinished on Ctrl-C; their partial files were removed.
    abandoned: u64,
}

/// How the elastic work of a mode ended.
pub struct Finished {
    /// The figures over the measured time.
    pub report: report::Elastic,
    /// The limiter's ticks up to the end of the measured window (empty without a limiter).
    pub ticks: Vec<report::TickPoint>,
    /// Backups abandoned unfinished on Ctrl-C (no file of theirs is left).
    pub abandoned: u64,
}

/// Keys between two CPU-accounting flushes of the scan (a flush reads the thread CPU clock).
const SCAN_FLUSH_KEYS: u64 = 1024;

/// The running elastic work of one mode.
pub struct ElasticRun {
    limiter: Option<Limiter>,
    meter: Arc<ElasticMeter>,
    stop: Arc<AtomicBool>,
    interrupted: Arc<AtomicBool>,
    workers: Vec<Worker>,
    /// File names of the backups the workers were writing when the run had started.
    first_backups: Vec<String>,
    /// When measurement began, the meter's reading and the limiter's settled CPU then.
    measured_from: (Instant, MeterReading, Duration),
    /// The same when measurement ended (`None` while it runs).
    measured_to: Option<(Instant, MeterReading, Duration)>,
    /// When the limiter started: its ticks are timed from it.
    limiter_started: Instant,
    /// The limiter's ticks, read when measurement ended.
    ticks: Vec<report::TickPoint>,
}

/// The limiter a plan's elastic work runs under, not yet started (`None`: the mode has none):
/// on `cores`, steered by the plan's controller (the utilisation peer reads the process's CPU;
/// the others read `signal`, which every limiter also reports).
fn limiter_for(
    plan: &Plan,
    args: &DemoArgs,
    cores: f64,
    signal: Arc<dyn LatencySignal>,
) -> Option<LimiterBuilder> {
    plan.mode.uses_limiter().then(|| {
        Limiter::builder()
            .cores(cores)
            .target(args.target)
            .quiet_factor(args.quiet_factor)
            .quiet_headroom(args.quiet_headroom)
            .steal_hold(args.steal_hold)
            .burst(args.burst)
            .controller(plan.controller)
            .latency_signal(signal)
            .grant(args.grant)
    })
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

    /// The limiter's state now (share, working target, knee); `None` without a limiter.
    pub fn limiter(&self) -> Option<LimiterSnapshot> {
        self.limiter.as_ref().map(Limiter::snapshot)
    }
}

impl ElasticRun {
    /// Starts the elastic threads: one catch-up scan and a backup worker per remaining core (at
    /// least one), so that uncontrolled elastic work can fill the machine. Returns once every
    /// backup worker has created its first backup file (or ended without one).
    pub fn start(
        bench: &Bench,
        plan: &Plan,
        round: usize,
        args: &DemoArgs,
        signal: Arc<dyn LatencySignal>,
    ) -> Result<ElasticRun, CliError> {
        let limiter = limiter_for(plan, args, bench.cores, signal).map(LimiterBuilder::start).transpose()?;
        let limiter_started = Instant::now();
        let meter = Arc::new(ElasticMeter::default());
        let stop = Arc::new(AtomicBool::new(false));
        let os_priority = plan.mode.os_priority().then(|| args.idle_by.priority());
        let (started_tx, started) = mpsc::channel();
        let new_job = |started: Option<mpsc::Sender<PathBuf>>| Job {
            limiter: limiter.clone(),
            meter: Arc::clone(&meter),
            stop: Arc::clone(&stop),
            store: Arc::clone(&bench.store),
            os_priority,
            slice: args.grant,
            request: if args.elastic_yield.is_zero() {
                AcquireRequest::new()
            } else {
                AcquireRequest::new().yield_every(args.elastic_yield)
            },
            interrupted: Arc::clone(&bench.cancelled),
            started,
        };
        let mut workers = Vec::new();
        for worker in 0..crate::capacity::whole_cpus(bench.cores).saturating_sub(1).max(1) {
            let mut job = new_job(Some(started_tx.clone()));
            let dir = bench.backup_dir.clone();
            let name = plan.name.replace([':', '/', '+', '@'], "-");
            let prefix = format!("{name}-r{}-{worker}", round + 1);
            workers.push(match plan.placement {
                Placement::Threads => Worker::Thread(
                    std::thread::Builder::new()
                        .name(format!("backup-{worker}"))
                        .spawn(move || job.backups(&dir, &prefix))?,
                ),
                Placement::Runtime => {
                    let limiter = job.limiter.clone();
                    let work = async move { job.backup_tasks(&dir, &prefix).await };
                    Worker::Task(match limiter {
                        // Grants charged with the backup task's own running time, not with the
                        // foreground tasks that run on its worker while it yields.
                        Some(limiter) => bench.runtime.spawn(limiter.elastic(work)),
                        None => bench.runtime.spawn(work),
                    })
                }
            });
        }
        drop(started_tx);
        let job = new_job(None);
        workers.push(Worker::Thread(std::thread::Builder::new().name("catch-up-scan".into()).spawn(
            move || {
                job.scans();
                Ok(WorkerOutput::default())
            },
        )?));
        // Each backup worker sends its first path once, then drops its sender: the loop ends
        // when all have sent or ended.
        let first_backups = started
            .iter()
            .map(|path| path.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned()))
            .collect();
        let measured_from = (Instant::now(), meter.read(), used_by(limiter.as_ref()));
        Ok(ElasticRun {
            limiter,
            meter,
            stop,
            interrupted: Arc::clone(&bench.cancelled),
            workers,
            first_backups,
            measured_from,
            measured_to: None,
            limiter_started,
            ticks: Vec::new(),
        })
    }

    /// File names of the backups in progress when [`start`](Self::start) returned.
    pub fn first_backups(&self) -> &[String] {
        &self.first_backups
    }

    /// Starts the measured part: figures count from now.
    pub fn begin_measurement(&mut self) {
        self.measured_from = (Instant::now(), self.meter.read(), used_by(self.limiter.as_ref()));
    }

    /// Ends the measured part: figures count up to now, aligned with the foreground's window.
    /// Elastic CPU is charged when a thread flushes its account (at least once per export
    /// request, ~every grant), so the reading may lag the window's end by up to one grant.
    pub fn end_measurement(&mut self) {
        self.measured_to = Some((Instant::now(), self.meter.read(), used_by(self.limiter.as_ref())));
        self.ticks = self.limiter.as_ref().map(|l| self.tick_points(&l.history())).unwrap_or_default();
    }

    /// The limiter's `history` as report points, timed from the start of the measured window.
    fn tick_points(&self, history: &[TickRecord]) -> Vec<report::TickPoint> {
        let offset = self.measured_from.0.saturating_duration_since(self.limiter_started).as_secs_f64();
        let ms = |d: Option<Duration>| d.map(|d| d.as_secs_f64() * 1e3);
        history
            .iter()
            .map(|t| report::TickPoint {
                t_secs: t.at.as_secs_f64() - offset,
                share: t.share,
                p99_ms: ms(t.p99),
                recent_p99_ms: ms(t.recent_p99),
                waiting_fraction: t.waiting_fraction,
                used_fraction: t.used_fraction,
                knee: t.knee,
            })
            .collect()
    }

    /// A read-only view for the sampler.
    pub fn observer(&self) -> Observer {
        Observer { limiter: self.limiter.clone(), meter: Arc::clone(&self.meter) }
    }

    /// Stops the work, verifies every complete backup against the store, and returns the
    /// figures over the measured part (up to [`end_measurement`](Self::end_measurement), or up
    /// to now if it was not called).
    ///
    /// After Ctrl-C the limiter is stopped first, so that workers waiting for a grant return at
    /// once and abandon their backups in progress.
    pub fn finish(mut self, bench: &Bench) -> Result<Finished, CliError> {
        if self.measured_to.is_none() {
            self.end_measurement();
        }
        let (ended, last, accounted) = self.measured_to.expect("measurement ended just above");
        let ticks = std::mem::take(&mut self.ticks);
        self.stop.store(true, Ordering::Relaxed);
        let reading = last.since(&self.measured_from.1);
        let measured = ended.duration_since(self.measured_from.0).max(Duration::from_millis(1));
        let interrupted = self.interrupted.load(Ordering::Relaxed);
        if let Some(limiter) = self.limiter.as_ref().filter(|_| interrupted) {
            limiter.stop();
        }
        // Every complete backup must restore to exactly the source data. Otherwise the limiter
        // keeps ticking until every worker is done: the backups in progress finish under it.
        let (mut backups, mut abandoned, mut failures) = (0u64, 0u64, Vec::new());
        for worker in self.workers {
            let output = match worker {
                Worker::Thread(thread) => thread.join().map_err(|_| "an elastic worker panicked")??,
                Worker::Task(task) => {
                    bench.runtime.block_on(task).map_err(|_| "an elastic task panicked")??
                }
            };
            abandoned += output.abandoned;
            let paths = output.complete;
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
            tracing::error!("backup did not verify: {failure}");
        }
        let verified = (backups > 0).then_some(failures.is_empty());
        let secs = measured.as_secs_f64();
        let report = report::Elastic {
            keys_per_sec: reading.keys as f64 / secs,
            scan_keys_per_sec: reading.scan_keys as f64 / secs,
            bytes_per_sec: reading.bytes as f64 / secs,
            cpu_share: reading.cpu_nanos as f64 / (secs * 1e9 * bench.cores),
            accounted_cpu_share: self
                .limiter
                .as_ref()
                .map(|_| accounted.saturating_sub(self.measured_from.2).as_secs_f64() / (secs * bench.cores)),
            idle_share_used: None,
            requests: reading.requests,
            preemptions: reading.preemptions,
            backups,
            verified,
            mean_share: None,
        };
        Ok(Finished { report, abandoned, ticks })
    }
}

/// CPU the limiter's settled grants were charged with so far (zero without a limiter).
fn used_by(limiter: Option<&Limiter>) -> Duration {
    limiter.map_or(Duration::ZERO, |limiter| limiter.snapshot().total_used)
}

/// One elastic thread's share of the work.
struct Job {
    limiter: Option<Limiter>,
    meter: Arc<ElasticMeter>,
    stop: Arc<AtomicBool>,
    store: Arc<Store>,
    /// The OS's idle priority for elastic threads, and how (`None`: normal priority).
    os_priority: Option<ThreadPriority>,
    /// Set by Ctrl-C: backups in progress are abandoned (their partial files removed).
    interrupted: Arc<AtomicBool>,
    /// Wall-time length of an uncontrolled export request: the grant size, so requests are
    /// comparable across modes.
    slice: Duration,
    /// What an elastic thread asks the limiter for (with the yield interval, if any).
    request: AcquireRequest,
    /// Where a backup worker sends the path of its first backup once the file exists.
    started: Option<mpsc::Sender<PathBuf>>,
}

impl Job {
    fn lower_priority(&self) {
        if let Some(priority) = self.os_priority {
            // Best effort: where the OS refuses, the mode runs at normal priority and says so.
            if let Err(error) = set_current_thread_priority(priority) {
                tracing::warn!("cannot lower an elastic thread's priority: {error}");
            }
        }
    }

    /// Runs backups back to back until stopped; returns the paths of the complete ones.
    fn backups(&mut self, dir: &std::path::Path, prefix: &str) -> Result<WorkerOutput, String> {
        self.lower_priority();
        let mut account = self.meter.cpu_account();
        let mut output = WorkerOutput::default();
        let mut started = self.started.take();
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
            let (stop, interrupted) = (&self.stop, &self.interrupted);
            let result = driver.run(
                || -> Box<dyn FnMut() -> bool> {
                    // The driver asks for the first grant right after creating the file.
                    if let Some(started) = started.take() {
                        let _ = started.send(path.clone());
                    }
                    charge(&mut account);
                    if stop.load(Ordering::Relaxed) {
                        // The mode is over: the backup in progress runs to completion outside
                        // the measurement, so that it can be verified however often it was
                        // preempted.
                        return Box::new(|| false);
                    }
                    match &self.limiter {
                        // Blocks until the grant's CPU exists (at most grant / rate).
                        Some(limiter) => match limiter.acquire(&self.request) {
                            Ok(handle) => {
                                Box::new(move || handle.over_limit() || stop.load(Ordering::Relaxed))
                            }
                            // Stopped on Ctrl-C: end the request at once, the driver then sees
                            // the interruption. (Otherwise the limiter stops only after its
                            // workers are done; a request meeting it would run unlimited.)
                            Err(_stopped) => Box::new(move || interrupted.load(Ordering::Relaxed)),
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
                Ok(_) => output.complete.push(path),
                Err(BackupError::Cancelled { .. }) => {
                    output.abandoned += 1;
                    break;
                }
                Err(error) => return Err(format!("backup to {} failed: {error}", path.display())),
            }
            if self.stop.load(Ordering::Relaxed) {
                break;
            }
        }
        Ok(output)
    }

    /// [`Job::backups`] as a task in the foreground runtime: each export request takes its grant
    /// asynchronously and works in slices of at most [`QUANTUM`], yielding between them so that
    /// a foreground task never waits behind a whole grant. CPU is measured per slice (a slice runs
    /// within one poll, on one thread).
    async fn backup_tasks(&mut self, dir: &std::path::Path, prefix: &str) -> Result<WorkerOutput, String> {
        let mut output = WorkerOutput::default();
        for n in 0.. {
            let path = dir.join(format!("{prefix}-{n}.tgbak"));
            let fail = |error: BackupError| format!("backup to {} failed: {error}", path.display());
            let mut writer = BackupWriter::create(&path).map_err(fail)?;
            if let Some(started) = self.started.take() {
                let _ = started.send(path.clone());
            }
            let mut resume = None;
            loop {
                if self.interrupted.load(Ordering::Relaxed) {
                    output.abandoned += 1;
                    return Ok(output); // dropping the writer removes the partial file
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
                    Some(handle) => handle.over_limit(),
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
            output.complete.push(path);
            if self.stop.load(Ordering::Relaxed) {
                break;
            }
        }
        Ok(output)
    }

    /// Runs catch-up scans back to back until stopped, paced by the limiter when there is one.
    fn scans(&self) {
        self.lower_priority();
        let mut account = self.meter.cpu_account();
        let mut pacer = self.limiter.as_ref().map(|l| Pacer::new(l.clone(), self.request));
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tailguard::elastic::ControllerKind;
    use tailguard::histogram::{WindowConfig, WindowedHistogram};

    use super::*;
    use crate::demo::args::tests::demo_args;
    use crate::demo::compare;

    #[test]
    fn each_plan_gets_the_limiter_of_its_mode() {
        let args =
            demo_args(&["--modes", "baseline,static:0.3,elastic,utilization", "--utilization-period", "4s"]);
        let signal: Arc<dyn LatencySignal> = Arc::new(WindowedHistogram::new(WindowConfig::DEFAULT).unwrap());
        let limiters: Vec<Option<Limiter>> = compare::plans(&args)
            .unwrap()
            .iter()
            .map(|plan| limiter_for(plan, &args, 2.0, Arc::clone(&signal)).map(|b| b.build().unwrap()))
            .collect();
        assert!(limiters[0].is_none(), "the baseline runs no limiter");
        let kind = |i: usize| limiters[i].as_ref().unwrap().config().controller;
        assert_eq!(kind(1), ControllerKind::Fixed(0.3));
        assert_eq!(kind(2), ControllerKind::Adaptive);
        // The peer: TiKV's rule at the period given, on the same cores, grants and signal.
        let peer = limiters[3].as_ref().unwrap();
        assert_eq!(kind(3), ControllerKind::Utilization { period: Duration::from_secs(4) });
        assert_eq!(peer.config().cores, 2.0);
        assert_eq!(peer.config().grant, args.grant);
        // It reads no latency: no blind start at the floor, its initial share at once.
        assert!(peer.snapshot().warm);
        assert_eq!(peer.snapshot().share, peer.config().inactive_share());
    }
}
