//! A job's work, on whichever thread or task runs it: the backup's export requests under
//! grants, the paced scan, and restoring a backup into the store.

use super::*;
use std::ops::ControlFlow;

/// A job's work, on whichever thread or task runs it.
pub(super) struct Runner {
    pub(super) job: Arc<Job>,
    pub(super) store: Arc<Store>,
    pub(super) settings: JobSettings,
}

impl Runner {
    pub(super) fn lower_priority(&self) {
        if let Some(priority) = self.settings.os_priority {
            if let Err(error) = set_current_thread_priority(priority) {
                tracing::warn!("cannot lower the {} thread's priority: {error}", self.job.kind.name());
            }
        }
    }

    /// Waits for a grant, or returns `None` when the job is cancelled first (a stopped limiter
    /// cancels the job: it never runs on without control).
    async fn grant(&self, limiter: &Limiter, request: &AcquireRequest) -> Option<ElasticHandle> {
        let mut cancel = self.job.cancel.subscribe();
        tokio::select! {
            granted = limiter.acquire_async(request) => match granted {
                Ok(handle) => Some(handle),
                Err(_) => {
                    self.job.cancel();
                    None
                }
            },
            _ = cancel.wait_for(|c| *c) => None,
        }
    }

    /// Runs the backup; with `quantum`, works in slices of at most that long and yields between
    /// them (placement in the foreground runtime).
    pub(super) async fn backup(&self, quantum: Option<Duration>) -> Ending {
        let path = self.job.path.clone().expect("a backup job has a path");
        let fail =
            |error: BackupError| Ending::failed(format!("backup to {} failed: {error}", path.display()));
        let mut writer = match BackupWriter::create_new(&path) {
            Ok(writer) => writer,
            Err(error) => return fail(error),
        };
        let counters = &self.job.counters;
        // A thread of its own may yield the OS thread; a task in the runtime yields the task.
        let request = if quantum.is_some() { AcquireRequest::new() } else { self.settings.request };
        let range = self.job.range.unwrap_or_default();
        let mut resume: Option<Key> = Some(range.start());
        loop {
            let handle = match &self.settings.limiter {
                Some(limiter) if !self.job.cancelled() => self.grant(limiter, &request).await,
                _ => None,
            };
            if self.job.cancelled() {
                return match writer.abandon() {
                    Ok(partial) => Ending {
                        state: Some(JobState::Cancelled),
                        resume_key: resume,
                        output: Some(partial),
                        ..Ending::default()
                    },
                    Err(error) => fail(error),
                };
            }
            let request_end = Instant::now() + self.settings.slice;
            let spent = |handle: &Option<ElasticHandle>| match handle {
                Some(handle) => handle.over_limit(),
                None => Instant::now() >= request_end,
            };
            loop {
                let cpu_before = SystemClock.thread_cpu_nanos();
                let slice_end = quantum.map(|q| Instant::now() + q);
                let mut keys = 0u32;
                let outcome = export_until(&self.store, resume, range.until(), &mut || {
                    keys = keys.wrapping_add(1);
                    keys % 16 == 0
                        && (slice_end.is_some_and(|end| Instant::now() >= end)
                            || spent(&handle)
                            || self.job.cancelled())
                });
                counters
                    .cpu_nanos
                    .fetch_add(SystemClock.thread_cpu_nanos().saturating_sub(cpu_before), Relaxed);
                if let Err(error) = writer.append(&outcome.chunk) {
                    return fail(error);
                }
                counters.keys.fetch_add(outcome.chunk.keys(), Relaxed);
                counters.raw_bytes.fetch_add(outcome.chunk.raw_bytes(), Relaxed);
                counters.compressed_bytes.fetch_add(outcome.chunk.compressed_bytes(), Relaxed);
                resume = outcome.resume;
                *self.job.next_key.lock().unwrap_or_else(PoisonError::into_inner) = resume;
                let request_over = resume.is_none() || spent(&handle) || self.job.cancelled();
                if quantum.is_some() {
                    tokio::task::yield_now().await;
                }
                if request_over {
                    counters.requests.fetch_add(1, Relaxed);
                    counters.preemptions.fetch_add(u64::from(resume.is_some()), Relaxed);
                    break;
                }
            }
            if resume.is_none() {
                break;
            }
        }
        match writer.finish() {
            Ok(_) => {
                let pruned = backups::prune(&self.settings.backup_dir, self.settings.keep_backups);
                Ending {
                    state: Some(JobState::Completed),
                    output: Some(path),
                    pruned: pruned.into_iter().map(|f| f.path).collect(),
                    ..Ending::default()
                }
            }
            Err(error) => fail(error),
        }
    }

    /// Runs the catch-up scan, paced by the limiter when there is one.
    pub(super) fn scan(&self) -> Ending {
        let counters = &self.job.counters;
        let mut pacer = self.settings.limiter.as_ref().map(|l| Pacer::new(l.clone(), self.settings.request));
        let mut cpu_mark = SystemClock.thread_cpu_nanos();
        let mut flush = |keys: u64| {
            let now = SystemClock.thread_cpu_nanos();
            counters.cpu_nanos.fetch_add(now.saturating_sub(cpu_mark), Relaxed);
            counters.keys.fetch_add(keys, Relaxed);
            cpu_mark = now;
        };
        let mut unflushed = 0u64;
        let summary = catch_up_scan_until(&self.store, SCAN_RANGE_KEYS, &mut || {
            unflushed += 1;
            if unflushed == SCAN_FLUSH_KEYS {
                flush(unflushed);
                unflushed = 0;
            }
            if self.job.cancelled() {
                return ControlFlow::Break(());
            }
            // Without a timeout, pace() waits until the grant exists; it fails only once the
            // limiter has stopped, and the scan stops with it.
            if pacer.as_mut().is_some_and(|pacer| pacer.pace().is_err()) {
                return ControlFlow::Break(());
            }
            ControlFlow::Continue(())
        });
        flush(unflushed);
        let state = if summary.stopped_after.is_some() { JobState::Cancelled } else { JobState::Completed };
        Ending {
            state: Some(state),
            resume_key: summary.stopped_after.and_then(Key::successor),
            ranges: Some(summary.ranges.len()),
            ..Ending::default()
        }
    }
}

/// Restores `path` into `store`: afterwards the store holds exactly the backup's entries.
/// Returns `(keys written, keys removed)`.
///
/// # Errors
/// The backup's [`RestoreError`](crate::workload::backup::RestoreError) when it cannot be read.
pub fn restore_into(path: &Path, store: &Store) -> Result<(u64, u64), crate::workload::backup::RestoreError> {
    let restored = crate::workload::backup::restore(path)?;
    let mut removed = 0u64;
    let mut stale = Vec::new();
    let mut batches = store.batches(Key(0), 1024);
    while let Some(batch) = batches.next_batch() {
        stale.extend(batch.iter().map(|(key, _)| *key).filter(|key| !restored.entries.contains_key(key)));
    }
    for key in stale {
        store.remove(key);
        removed += 1;
    }
    for (key, value) in &restored.entries {
        store.put(*key, value.clone());
    }
    Ok((restored.entries.len() as u64, removed))
}
