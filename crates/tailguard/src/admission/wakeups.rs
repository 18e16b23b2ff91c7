//! Waking waiters after the lock: wakers, blocked threads, and the jobs of
//! [`WorkQueue::submit`](super::WorkQueue::submit), run on a trampoline so that a job that
//! frees its slot at once starts the next one without nesting.

use std::sync::Arc;
use std::task::Waker;

use super::permit::Permit;
use super::request::AdmitError;
use crate::sync::Condvar;

/// Wake-ups one queue event collects without allocating: a release admits one waiter, a
/// sample may also expire a few.
const INLINE_WAKEUPS: usize = 4;

/// A job handed to [`WorkQueue::submit`].
pub(super) type Job = Box<dyn FnOnce(Result<Permit, AdmitError>) + Send>;
/// A job with the outcome it runs with.
pub(super) type JobRun = (Job, Result<Permit, AdmitError>);

pub(super) enum Notify {
    Waker(Waker),
    Thread(Arc<Condvar>),
    /// A submitted job: nobody collects its outcome, it is run with it.
    Job(Job),
}

impl Notify {
    fn wake(self) {
        match self {
            Notify::Waker(waker) => waker.wake(),
            Notify::Thread(condvar) => condvar.notify_one(),
            // Jobs never reach here: `Wakeups::push` runs them with their outcome instead.
            Notify::Job(_) => debug_assert!(false, "a job woken without its outcome"),
        }
    }
}

std::thread_local! {
    /// Jobs of [`WorkQueue::submit`] to run on this thread, while one of them runs: a job that
    /// drops its permit at once frees a slot and admits the next job, which then waits here
    /// instead of nesting one call deeper per waiter.
    static JOBS: std::cell::RefCell<Option<std::collections::VecDeque<JobRun>>> =
        const { std::cell::RefCell::new(None) };
}

/// Runs `jobs`, and every job queued on this thread while they run, in order. A panicking job
/// does not stop the others; the first panic is resumed once all have run.
pub(super) fn run_jobs(jobs: impl IntoIterator<Item = JobRun>) {
    let outermost = JOBS.with(|queued| {
        let mut queued = queued.borrow_mut();
        let outermost = queued.is_none();
        queued.get_or_insert_with(std::collections::VecDeque::new).extend(jobs);
        outermost
    });
    if !outermost {
        return;
    }
    let mut panic = None;
    while let Some((job, outcome)) =
        JOBS.with(|queued| queued.borrow_mut().as_mut().and_then(std::collections::VecDeque::pop_front))
    {
        if let Err(payload) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || job(outcome))) {
            panic.get_or_insert(payload);
        }
    }
    JOBS.with(|queued| *queued.borrow_mut() = None);
    if let Some(payload) = panic {
        if !std::thread::panicking() {
            std::panic::resume_unwind(payload);
        }
    }
}

/// Waiters to wake once the lock is released, collected while it is held.
///
/// Declare it before the guard: locals drop in reverse order, so on every return the guard
/// goes first and then the wake-ups run. The first few need no allocation.
pub(super) struct Wakeups {
    inline: [Option<Notify>; INLINE_WAKEUPS],
    len: usize,
    spilled: Vec<Notify>,
    /// Submitted jobs with their outcome, run after the wake-ups.
    jobs: Vec<JobRun>,
}

impl Wakeups {
    pub(super) fn new() -> Self {
        Wakeups { inline: [const { None }; INLINE_WAKEUPS], len: 0, spilled: Vec::new(), jobs: Vec::new() }
    }

    pub(super) fn push_job(&mut self, job: Job, outcome: Result<Permit, AdmitError>) {
        self.jobs.push((job, outcome));
    }

    pub(super) fn push(&mut self, notify: Notify) {
        if let Some(slot) = self.inline.get_mut(self.len) {
            *slot = Some(notify);
            self.len += 1;
        } else {
            self.spilled.push(notify);
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.len == 0 && self.jobs.is_empty()
    }

    /// Wakes everyone collected (call it without the lock held).
    #[inline]
    pub(super) fn wake_all(&mut self) {
        for slot in &mut self.inline[..self.len] {
            if let Some(notify) = slot.take() {
                notify.wake();
            }
        }
        self.len = 0;
        if !self.spilled.is_empty() {
            for notify in self.spilled.drain(..) {
                notify.wake();
            }
        }
        if !self.jobs.is_empty() {
            run_jobs(self.jobs.drain(..));
        }
    }
}

impl Drop for Wakeups {
    #[inline]
    fn drop(&mut self) {
        if self.len > 0 || !self.spilled.is_empty() || !self.jobs.is_empty() {
            self.wake_all();
        }
    }
}
