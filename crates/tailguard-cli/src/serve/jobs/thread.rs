//! One long-lived thread per job kind.
//!
//! Jobs of one kind run one at a time, so one thread per kind runs them all, one after the
//! other. A thread per job made glibc's allocator give many of them an arena of its own (up to
//! eight per core), each keeping the memory its backup had used: over a ten-minute soak with
//! backups back to back the server's RSS grew 21.5 % after warm-up, against 4.6 % with two
//! arenas (README, "`tailguard serve` soak"). A thread that lives on reuses its arena.
//!
//! A job that panics ends as failed, with the panic's message, and the thread lives on.

use std::panic::AssertUnwindSafe;
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex, PoisonError};

use super::{Ending, Job, JobKind, StartError};

/// A job and its work, run on its kind's thread.
type Work = (Arc<Job>, Box<dyn FnOnce() + Send>);

/// A job kind's thread, started with its first job.
#[derive(Debug)]
pub struct JobThread {
    kind: JobKind,
    sender: Mutex<Option<Sender<Work>>>,
}

impl JobThread {
    /// The thread of `kind`'s jobs, not yet started.
    pub fn new(kind: JobKind) -> Self {
        JobThread { kind, sender: Mutex::new(None) }
    }

    /// Runs `body`, the work of `job`, on the thread, starting it first if it is not running.
    /// A panic in `body` ends `job` as failed.
    ///
    /// # Errors
    ///
    /// [`StartError::Spawn`] when the OS refuses a new thread.
    pub fn run(&self, job: Arc<Job>, body: impl FnOnce() + Send + 'static) -> Result<(), StartError> {
        let mut sender = self.sender.lock().unwrap_or_else(PoisonError::into_inner);
        let mut work: Work = (job, Box::new(body));
        if let Some(running) = sender.as_ref() {
            // A send fails only if the thread is gone: start another.
            match running.send(work) {
                Ok(()) => return Ok(()),
                Err(mpsc::SendError(unsent)) => work = unsent,
            }
        }
        let (tx, rx) = mpsc::channel::<Work>();
        std::thread::Builder::new()
            .name(format!("{}-jobs", self.kind.name()))
            .spawn(move || {
                for (job, body) in rx {
                    if let Err(panic) = std::panic::catch_unwind(AssertUnwindSafe(body)) {
                        let message = panic
                            .downcast_ref::<&str>()
                            .map(|s| (*s).to_owned())
                            .or_else(|| panic.downcast_ref::<String>().cloned())
                            .unwrap_or_else(|| "a panic without a message".to_owned());
                        tracing::error!(job = job.id, "the {} job panicked: {message}", job.kind.name());
                        job.end(Ending::failed(format!("the job panicked: {message}")));
                    }
                }
            })
            .map_err(|source| StartError::Spawn { kind: self.kind.name(), source })?;
        tx.send(work).expect("the new thread holds the receiver");
        *sender = Some(tx);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Job, JobKind, JobState};
    use super::*;

    fn job(id: u64) -> Arc<Job> {
        Arc::new(Job::for_test(id, JobKind::Backup))
    }

    fn thread_of_a_job(thread: &JobThread, id: u64) -> std::thread::ThreadId {
        let (tx, rx) = mpsc::channel();
        thread.run(job(id), move || tx.send(std::thread::current().id()).unwrap()).unwrap();
        rx.recv().unwrap()
    }

    #[test]
    fn jobs_of_a_kind_share_one_thread_which_outlives_a_panic() {
        let thread = JobThread::new(JobKind::Backup);
        let first = thread_of_a_job(&thread, 1);
        assert_eq!(thread_of_a_job(&thread, 2), first, "the second job ran on the same thread");
        assert_ne!(first, std::thread::current().id());
        // A job panics: it ends as failed, with the message, and the thread lives on.
        let panicking = job(3);
        thread.run(Arc::clone(&panicking), || panic!("a job's panic (expected by the test)")).unwrap();
        let mut finished = panicking.finished.subscribe();
        wait_until_finished(&mut finished);
        let status = panicking.status();
        assert_eq!(status.state, JobState::Failed);
        assert!(status.error.as_deref().unwrap().contains("a job's panic"), "{status:?}");
        assert_eq!(thread_of_a_job(&thread, 4), first, "the same thread ran the next job");
    }

    /// Blocks until the watch says the job finished.
    fn wait_until_finished(finished: &mut tokio::sync::watch::Receiver<bool>) {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        runtime.block_on(finished.wait_for(|&done| done)).unwrap();
    }
}
