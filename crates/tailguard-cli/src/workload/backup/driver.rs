//! A whole backup from request to request: each export request takes a grant (or any stop
//! rule), and the driver appends its chunk and starts the next from the resumption key.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use tailguard::clock::{SharedClock, SystemClock};

use super::export::{ExportEnd, export};
use super::format::{BackupError, BackupManifest, BackupWriter};
use crate::workload::store::Store;

/// One export request's elastic grant: asked after every exported key whether to stop.
///
/// Any `FnMut() -> bool` is a grant, so a limiter's grant plugs in as a closure that owns it:
/// `|| { let grant = limiter.acquire(); move || grant.over_limit() }`. The grant is dropped
/// (released) when the request ends.
pub trait ExportGrant {
    /// Whether the request must stop now (the grant's CPU slice is used up).
    fn over_limit(&mut self) -> bool;
}

impl<F: FnMut() -> bool> ExportGrant for F {
    fn over_limit(&mut self) -> bool {
        self()
    }
}

/// Live counters of a running backup, readable from another thread (relaxed; monotonically
/// increasing, never reset).
#[derive(Debug, Default)]
pub struct BackupProgress {
    /// Export requests issued.
    pub requests: AtomicU64,
    /// Requests that ended preempted (`over_limit()` said stop before the keyspace ended).
    pub preemptions: AtomicU64,
    /// Keys exported.
    pub keys: AtomicU64,
    /// Raw (uncompressed) record bytes exported.
    pub raw_bytes: AtomicU64,
    /// Compressed bytes written.
    pub compressed_bytes: AtomicU64,
}

/// Totals of a finished backup.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BackupStats {
    /// Footer of the written file.
    pub manifest: BackupManifest,
    /// Export requests issued.
    pub requests: u64,
    /// Requests that ended preempted.
    pub preemptions: u64,
    /// Raw record bytes exported.
    pub raw_bytes: u64,
    /// Compressed bytes written.
    pub compressed_bytes: u64,
    /// Wall time from start to the renamed file.
    pub elapsed: Duration,
}

#[cfg(test)]
impl BackupStats {
    /// Keys per second of wall time (0 when no time passed).
    pub fn keys_per_sec(&self) -> f64 {
        per_sec(self.manifest.keys, self.elapsed)
    }
    /// Raw bytes per second of wall time (0 when no time passed).
    pub fn raw_bytes_per_sec(&self) -> f64 {
        per_sec(self.raw_bytes, self.elapsed)
    }
}

#[cfg(test)]
fn per_sec(count: u64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs > 0.0 { count as f64 / secs } else { 0.0 }
}

/// Runs a whole backup as a sequence of export requests, re-issuing each preempted one from
/// its resumption key, and writes the file.
#[derive(Debug)]
pub struct BackupDriver {
    store: Arc<Store>,
    path: PathBuf,
    clock: SharedClock,
    progress: Arc<BackupProgress>,
}

impl BackupDriver {
    /// A driver backing `store` up to `path`, timed by the system clock.
    pub fn new(store: Arc<Store>, path: impl Into<PathBuf>) -> Self {
        Self::with_clock(store, path, SystemClock::shared())
    }

    /// A driver timed by `clock`.
    pub fn with_clock(store: Arc<Store>, path: impl Into<PathBuf>, clock: SharedClock) -> Self {
        Self { store, path: path.into(), clock, progress: Arc::default() }
    }

    /// The live counters, to sample from another thread while [`run`](Self::run) works.
    pub fn progress(&self) -> Arc<BackupProgress> {
        Arc::clone(&self.progress)
    }

    /// Runs the backup: before each export request calls `acquire()` for a grant (which may
    /// block until elastic capacity is free), runs the request under it, appends the chunk and
    /// drops the grant. `cancelled()` is checked between requests (e.g. a Ctrl-C flag).
    ///
    /// # Errors
    /// [`BackupError::Cancelled`] when `cancelled()` returned true (no file is left at the
    /// destination); [`BackupError::Io`] when the file cannot be written.
    pub fn run<G: ExportGrant>(
        &self,
        mut acquire: impl FnMut() -> G,
        cancelled: &dyn Fn() -> bool,
    ) -> Result<BackupStats, BackupError> {
        let start_nanos = self.clock.now_nanos();
        let mut writer = BackupWriter::create(&self.path)?;
        let (mut requests, mut preemptions, mut raw_bytes, mut compressed_bytes) = (0u64, 0u64, 0u64, 0u64);
        let mut resume = None;
        loop {
            if cancelled() {
                return Err(BackupError::Cancelled { keys: writer.keys });
            }
            let outcome = {
                let mut grant = acquire();
                export(&self.store, resume, &mut || grant.over_limit())
            };
            writer.append(&outcome.chunk)?;
            requests += 1;
            raw_bytes += outcome.chunk.raw_bytes();
            compressed_bytes += outcome.chunk.compressed_bytes();
            let p = &self.progress;
            p.requests.fetch_add(1, Relaxed);
            p.keys.fetch_add(outcome.chunk.keys(), Relaxed);
            p.raw_bytes.fetch_add(outcome.chunk.raw_bytes(), Relaxed);
            p.compressed_bytes.fetch_add(outcome.chunk.compressed_bytes(), Relaxed);
            if outcome.end == ExportEnd::Preempted {
                preemptions += 1;
                p.preemptions.fetch_add(1, Relaxed);
            }
            resume = outcome.resume;
            if resume.is_none() {
                break;
            }
        }
        let manifest = writer.finish()?;
        let elapsed = Duration::from_nanos(self.clock.now_nanos().saturating_sub(start_nanos));
        Ok(BackupStats { manifest, requests, preemptions, raw_bytes, compressed_bytes, elapsed })
    }
}
