//! Elastic jobs of the server: backups and catch-up scans, started, watched and cancelled over
//! HTTP, each admitted by the limiter (when control is on) exactly as the demo's are.
//!
//! A backup is a sequence of export requests, each under one grant, writing `PATH.partial` and
//! renaming it to `PATH` once complete. A cancelled backup (a request, or server shutdown) stops
//! at its next resumption point and keeps its output as `PATH.partial` without a footer: the name
//! and the missing footer both mark it incomplete, and `restore` refuses it.
//!
//! Backup files are named by job id, and ids continue after the highest number already in the
//! backup directory; an earlier run's partial file shows as an `interrupted` job, and each
//! completed backup applies retention (see [`super::backups`]).

use std::collections::BTreeMap;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde::Serialize;
use tailguard::clock::{Clock, SystemClock};
use tailguard::elastic::{
    AcquireRequest, ElasticHandle, Limiter, Pacer, ThreadPriority, set_current_thread_priority,
};
use tokio::sync::watch;

use super::backups::{self, BackupFile};
use crate::choices::{Placement, QUANTUM};
use crate::workload::backup::{BackupError, BackupWriter, export_until, read_partial};
use crate::workload::keyspace::Key;
use crate::workload::scan::catch_up_scan_until;
use crate::workload::store::Store;

mod range;
mod runner;
#[cfg(test)]
mod tests;
mod thread;

pub use self::range::BackupRange;
use self::runner::Runner;
pub use self::runner::restore_into;
use self::thread::JobThread;

/// Finished jobs kept for `GET /jobs` (the oldest finished ones are forgotten first).
const KEEP_FINISHED: usize = 64;
/// Keys between two CPU-clock reads of the scan.
const SCAN_FLUSH_KEYS: u64 = 1024;
/// Keys per digest range of the catch-up scan.
const SCAN_RANGE_KEYS: u64 = 4096;

/// What a job does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum JobKind {
    /// A backup of the whole store into a file.
    Backup,
    /// A catch-up scan: per-range digests and a value-size index, paced by a `Pacer`.
    Scan,
}

impl JobKind {
    /// `backup` or `scan`.
    pub fn name(self) -> &'static str {
        match self {
            JobKind::Backup => "backup",
            JobKind::Scan => "scan",
        }
    }
}

/// Where a job stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum JobState {
    /// Working or waiting for a grant.
    Running,
    /// Done; a backup's file is complete.
    Completed,
    /// Stopped on request or at shutdown, at a resumption point.
    Cancelled,
    /// Stopped by an error (see `error`).
    Failed,
    /// A backup of an earlier run of the server that stopped before completing (a crash, a
    /// `kill -9`): its `.partial` file was found at startup and is left as it is.
    Interrupted,
}

/// Live counters of one job (relaxed, monotonically increasing).
#[derive(Debug, Default)]
struct Counters {
    keys: AtomicU64,
    raw_bytes: AtomicU64,
    compressed_bytes: AtomicU64,
    requests: AtomicU64,
    preemptions: AtomicU64,
    cpu_nanos: AtomicU64,
}

/// How a job ended.
#[derive(Clone, Debug, Default)]
struct Ending {
    state: Option<JobState>,
    elapsed: Option<Duration>,
    error: Option<String>,
    /// The key to resume from, for a cancelled job.
    resume_key: Option<Key>,
    /// The complete backup file, or the kept partial one of a cancelled backup.
    output: Option<PathBuf>,
    /// Digest ranges computed by a scan.
    ranges: Option<usize>,
    /// Files retention removed after this backup completed.
    pruned: Vec<PathBuf>,
}

/// One job.
#[derive(Debug)]
pub struct Job {
    id: u64,
    kind: JobKind,
    started: Instant,
    total_keys: u64,
    /// Where a backup's complete file goes.
    path: Option<PathBuf>,
    /// The keys a backup exports.
    range: Option<BackupRange>,
    /// While a backup runs: the key after its last chunk handed to the file, where a backup
    /// resuming it would start (`None` once nothing is left).
    next_key: Mutex<Option<Key>>,
    counters: Counters,
    cancel: watch::Sender<bool>,
    ending: Mutex<Ending>,
    finished: watch::Sender<bool>,
}

/// A job as shown over HTTP.
#[derive(Clone, Debug, Serialize)]
pub struct JobStatus {
    /// Job id, unique for the server's lifetime.
    pub id: u64,
    /// `backup` or `scan`.
    pub kind: JobKind,
    /// `running`, `completed`, `cancelled` or `failed`.
    pub state: JobState,
    /// Keys processed.
    pub keys: u64,
    /// Keys in the store when the job started.
    pub total_keys: u64,
    /// `keys / total_keys`, at most 1.
    pub fraction: f64,
    /// Export requests issued (backups).
    pub requests: u64,
    /// Export requests that ended preempted by `over_limit()`.
    pub preemptions: u64,
    /// Raw record bytes exported (backups).
    pub raw_bytes: u64,
    /// Compressed bytes written (backups).
    pub compressed_bytes: u64,
    /// CPU time the job used, seconds.
    pub cpu_seconds: f64,
    /// Wall time since the start (or until the end), seconds.
    pub elapsed_seconds: f64,
    /// Where the complete backup goes.
    pub path: Option<PathBuf>,
    /// The key range a backup exports (`None` for scans and for an earlier run's backup).
    pub range: Option<BackupRange>,
    /// The complete file (completed backup) or the kept partial file (cancelled backup).
    pub output: Option<PathBuf>,
    /// The key to resume from: of a cancelled or interrupted job, and of a running backup (the
    /// key after the last chunk in its partial file, so a coordinator polling it knows where to
    /// resume should the process die).
    pub resume_key: Option<u64>,
    /// Digest ranges (completed or cancelled scans).
    pub ranges: Option<usize>,
    /// Why a failed job failed.
    pub error: Option<String>,
    /// Backup files that retention (`--keep-backups`) removed once this backup completed.
    pub pruned: Vec<PathBuf>,
}

impl Job {
    /// The job's id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The job's kind.
    pub fn kind(&self) -> JobKind {
        self.kind
    }

    /// Asks the job to stop at its next resumption point; no effect once it has ended.
    pub fn cancel(&self) {
        self.cancel.send_replace(true);
    }

    fn cancelled(&self) -> bool {
        *self.cancel.borrow()
    }

    /// Whether the job has ended.
    pub fn is_finished(&self) -> bool {
        *self.finished.borrow()
    }

    /// Waits until the job has ended.
    pub async fn wait(&self) {
        let mut finished = self.finished.subscribe();
        let _ = finished.wait_for(|done| *done).await;
    }

    /// The complete backup file of a completed backup.
    pub fn completed_backup(&self) -> Option<PathBuf> {
        let ending = self.ending.lock().unwrap_or_else(PoisonError::into_inner);
        (self.kind == JobKind::Backup && ending.state == Some(JobState::Completed))
            .then(|| ending.output.clone())
            .flatten()
    }

    /// CPU time used so far, nanoseconds.
    pub fn cpu_nanos(&self) -> u64 {
        self.counters.cpu_nanos.load(Relaxed)
    }

    /// The job's current status.
    pub fn status(&self) -> JobStatus {
        let ending = self.ending.lock().unwrap_or_else(PoisonError::into_inner).clone();
        let c = &self.counters;
        let keys = c.keys.load(Relaxed);
        JobStatus {
            id: self.id,
            kind: self.kind,
            state: ending.state.unwrap_or(JobState::Running),
            keys,
            total_keys: self.total_keys,
            fraction: if ending.state == Some(JobState::Interrupted) {
                // An earlier run's: how far it got is not known.
                0.0
            } else if self.total_keys == 0 {
                1.0
            } else {
                (keys as f64 / self.total_keys as f64).min(1.0)
            },
            requests: c.requests.load(Relaxed),
            preemptions: c.preemptions.load(Relaxed),
            raw_bytes: c.raw_bytes.load(Relaxed),
            compressed_bytes: c.compressed_bytes.load(Relaxed),
            cpu_seconds: c.cpu_nanos.load(Relaxed) as f64 / 1e9,
            elapsed_seconds: ending.elapsed.unwrap_or_else(|| self.started.elapsed()).as_secs_f64(),
            path: self.path.clone(),
            range: self.range,
            output: ending.output,
            resume_key: match ending.state {
                None => *self.next_key.lock().unwrap_or_else(PoisonError::into_inner),
                Some(_) => ending.resume_key,
            }
            .map(|k| k.0),
            ranges: ending.ranges,
            error: ending.error,
            pruned: ending.pruned,
        }
    }

    /// An earlier run's backup found as `file` (a partial one) at startup: its complete chunks
    /// give the keys it holds and where a backup resuming it would start.
    fn interrupted(file: &BackupFile) -> Self {
        let (resume_key, keys, error) = match read_partial(&file.path) {
            Ok(prefix) => (prefix.last_key.map_or(Some(Key(0)), Key::successor), prefix.keys, None),
            Err(error) => (None, 0, Some(format!("cannot be read as the beginning of a backup: {error}"))),
        };
        let job = Job {
            id: file.number,
            kind: JobKind::Backup,
            started: Instant::now(),
            total_keys: 0,
            path: Some(backups::path_of(file.path.parent().unwrap_or(Path::new(".")), file.number)),
            range: None,
            next_key: Mutex::new(None),
            counters: Counters::default(),
            cancel: watch::Sender::new(true),
            ending: Mutex::new(Ending {
                state: Some(JobState::Interrupted),
                elapsed: Some(Duration::ZERO),
                output: Some(file.path.clone()),
                resume_key,
                error,
                ..Ending::default()
            }),
            finished: watch::Sender::new(true),
        };
        job.counters.compressed_bytes.store(file.bytes, Relaxed);
        job.counters.keys.store(keys, Relaxed);
        job
    }

    fn end(&self, ending: Ending) {
        let ending = Ending { elapsed: Some(self.started.elapsed()), ..ending };
        *self.ending.lock().unwrap_or_else(PoisonError::into_inner) = ending;
        self.finished.send_replace(true);
    }
}

#[cfg(test)]
impl Job {
    /// A running job of `kind` over no keys, for tests of what runs jobs.
    fn for_test(id: u64, kind: JobKind) -> Self {
        Job {
            id,
            kind,
            started: Instant::now(),
            total_keys: 0,
            path: None,
            range: None,
            next_key: Mutex::new(None),
            counters: Counters::default(),
            cancel: watch::Sender::new(false),
            ending: Mutex::default(),
            finished: watch::Sender::new(false),
        }
    }
}

/// Why a job could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// One of the same kind is running.
    #[error("a {kind} is already running (job {running}); cancel it or wait for it to finish")]
    Busy {
        /// Kind asked for.
        kind: &'static str,
        /// The running job's id.
        running: u64,
    },
    /// The server is shutting down.
    #[error("the server is shutting down; no new job starts")]
    ShuttingDown,
    /// The OS refused a thread.
    #[error("cannot start the {kind} thread: {source}")]
    Spawn {
        /// Kind asked for.
        kind: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Settings every job shares.
#[derive(Clone, Debug)]
pub struct JobSettings {
    /// The limiter that admits elastic work; `None` runs it uncontrolled.
    pub limiter: Option<Limiter>,
    /// Where elastic work runs.
    pub placement: Placement,
    /// Run elastic threads at the OS's idle priority, this way.
    pub os_priority: Option<ThreadPriority>,
    /// Wall-time length of one uncontrolled export request (the grant size).
    pub slice: Duration,
    /// What elastic threads ask the limiter for (their yield interval).
    pub request: AcquireRequest,
    /// Directory of backup files.
    pub backup_dir: PathBuf,
    /// Complete backups (and, apart, partial ones) kept by retention.
    pub keep_backups: NonZeroUsize,
}

/// The server's jobs.
#[derive(Debug)]
pub struct Jobs {
    store: Arc<Store>,
    settings: JobSettings,
    runtime: tokio::runtime::Handle,
    /// The threads that run backups (when on threads) and scans.
    backup_thread: JobThread,
    scan_thread: JobThread,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    next_id: u64,
    jobs: BTreeMap<u64, Arc<Job>>,
    shutting_down: bool,
}

impl Jobs {
    /// The jobs of a server whose backup directory holds `earlier` (its files at startup): ids
    /// start after their highest number, and each partial file is an interrupted job. Backup and
    /// scan tasks run on `runtime` (when placed there).
    pub fn new(
        store: Arc<Store>,
        settings: JobSettings,
        runtime: tokio::runtime::Handle,
        earlier: &[BackupFile],
    ) -> Self {
        let mut inner = Inner { next_id: backups::next_number(earlier), ..Inner::default() };
        for file in earlier.iter().filter(|f| f.completeness == backups::Completeness::Partial) {
            let job = Job::interrupted(file);
            inner.jobs.insert(job.id, Arc::new(job));
        }
        Self {
            store,
            settings,
            runtime,
            backup_thread: JobThread::new(JobKind::Backup),
            scan_thread: JobThread::new(JobKind::Scan),
            inner: Mutex::new(inner),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The job with this id.
    pub fn get(&self, id: u64) -> Option<Arc<Job>> {
        self.lock().jobs.get(&id).cloned()
    }

    /// Every job known, oldest first.
    pub fn list(&self) -> Vec<Arc<Job>> {
        self.lock().jobs.values().cloned().collect()
    }

    /// CPU used by every job so far (finished ones included while remembered), nanoseconds.
    pub fn cpu_nanos(&self) -> u64 {
        self.lock().jobs.values().map(|j| j.cpu_nanos()).sum()
    }

    /// Starts a job of `kind` unless one of that kind is running (a backup of every key).
    ///
    /// # Errors
    /// [`StartError`] says why not.
    #[cfg_attr(not(test), allow(dead_code))] // the routes start backups with a range
    pub fn start(&self, kind: JobKind) -> Result<Arc<Job>, StartError> {
        self.start_range(kind, BackupRange::ALL)
    }

    /// Starts a job of `kind` unless one of that kind is running; a backup exports `range`
    /// (checked by the caller with [`BackupRange::check`]), a scan ignores it.
    ///
    /// # Errors
    /// [`StartError`] says why not.
    pub fn start_range(&self, kind: JobKind, range: BackupRange) -> Result<Arc<Job>, StartError> {
        let is_backup = kind == JobKind::Backup;
        let total_keys = if is_backup && !range.is_all() {
            self.store.count_range(range.start(), range.until())
        } else {
            self.store.len() as u64
        };
        let mut inner = self.lock();
        if inner.shutting_down {
            return Err(StartError::ShuttingDown);
        }
        if let Some(running) = inner.jobs.values().find(|j| j.kind == kind && !j.is_finished()) {
            return Err(StartError::Busy { kind: kind.name(), running: running.id });
        }
        if kind == JobKind::Backup {
            // Another process may have written backups here since: never reuse a number.
            if let Ok(files) = backups::list(&self.settings.backup_dir) {
                inner.next_id = inner.next_id.max(backups::next_number(&files));
            }
        }
        let id = inner.next_id;
        let job = Arc::new(Job {
            id,
            kind,
            started: Instant::now(),
            total_keys,
            path: is_backup.then(|| backups::path_of(&self.settings.backup_dir, id)),
            range: is_backup.then_some(range),
            next_key: Mutex::new(is_backup.then(|| range.start())),
            counters: Counters::default(),
            cancel: watch::Sender::new(false),
            ending: Mutex::default(),
            finished: watch::Sender::new(false),
        });
        let runner =
            Runner { job: Arc::clone(&job), store: Arc::clone(&self.store), settings: self.settings.clone() };
        match (kind, self.settings.placement) {
            (JobKind::Backup, Placement::Runtime) => {
                let limiter = self.settings.limiter.clone();
                let work = async move {
                    let ending = runner.backup(Some(QUANTUM)).await;
                    runner.job.end(ending);
                };
                let task = tailguard::task::Builder::new().name("backup");
                match limiter {
                    // Its grants are charged with the backup task's own running time, not with
                    // the requests that run on its worker while it yields.
                    Some(limiter) => drop(self.runtime.spawn(task.track(limiter.elastic(work)))),
                    None => drop(self.runtime.spawn(task.track(work))),
                }
            }
            (JobKind::Backup, Placement::Threads) => {
                self.backup_thread.run(Arc::clone(&job), move || {
                    runner.lower_priority();
                    let ending = match tokio::runtime::Builder::new_current_thread().build() {
                        Ok(rt) => rt.block_on(runner.backup(None)),
                        Err(e) => Ending::failed(format!("cannot build the backup thread's executor: {e}")),
                    };
                    runner.job.end(ending);
                })?;
            }
            (JobKind::Scan, _) => {
                // The scan has no await points: it always runs on a thread of its own.
                self.scan_thread.run(Arc::clone(&job), move || {
                    runner.lower_priority();
                    let ending = runner.scan();
                    runner.job.end(ending);
                })?;
            }
        }
        inner.next_id += 1;
        inner.jobs.insert(id, Arc::clone(&job));
        let finished: Vec<u64> = inner.jobs.values().filter(|j| j.is_finished()).map(|j| j.id).collect();
        for id in finished.iter().take(finished.len().saturating_sub(KEEP_FINISHED)) {
            inner.jobs.remove(id);
        }
        Ok(job)
    }

    /// Refuses new jobs and cancels every running one; returns those still running.
    pub fn shut_down(&self) -> Vec<Arc<Job>> {
        let mut inner = self.lock();
        inner.shutting_down = true;
        let running: Vec<Arc<Job>> = inner.jobs.values().filter(|j| !j.is_finished()).cloned().collect();
        for job in &running {
            job.cancel();
        }
        running
    }

    /// Whether any job is running.
    pub fn any_running(&self) -> Option<u64> {
        self.lock().jobs.values().find(|j| !j.is_finished()).map(|j| j.id)
    }
}

impl Ending {
    fn failed(error: String) -> Self {
        Ending { state: Some(JobState::Failed), error: Some(error), ..Ending::default() }
    }
}
