//! Elastic work as a task of the service's own runtime: [`ElasticTask`].

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use crate::clock::SharedClock;

/// Ids of elastic tasks; 0 is never used.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// The elastic task whose poll runs on this thread now.
    static CURRENT: Cell<Option<CurrentPoll>> = const { Cell::new(None) };
}

/// A poll of an elastic task in progress on this thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct CurrentPoll {
    task: u64,
    /// The task's running time before this poll.
    run_before_nanos: u64,
    /// When this poll started, on the limiter's clock.
    start_nanos: u64,
}

/// The elastic task polled on this thread now, if any: its id and its running time as of
/// `now_nanos` (on the clock the task was created with).
#[inline]
pub(crate) fn current(now_nanos: u64) -> Option<(u64, u64)> {
    CURRENT.get().map(|poll| (poll.task, poll.run_before_nanos + now_nanos.saturating_sub(poll.start_nanos)))
}

/// The id of the elastic task polled on this thread now, if any (no clock read).
#[cfg(test)]
fn current_id() -> Option<u64> {
    CURRENT.get().map(|poll| poll.task)
}

/// Marks a poll (or the drop) of an elastic task as current on this thread, restoring what
/// was current before when it ends, also on unwinding.
struct Scope(Option<CurrentPoll>);

impl Scope {
    fn enter(poll: CurrentPoll) -> Scope {
        Scope(CURRENT.replace(Some(poll)))
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        CURRENT.set(self.0);
    }
}

/// A future run as elastic work, charged with its own running time: made by
/// [`Limiter::elastic`](super::Limiter::elastic).
///
/// A backup that runs as a task beside the service's request tasks holds a grant across its
/// `.await`s. While it waits, the worker thread runs foreground tasks; the thread's CPU clock
/// would charge their CPU to the elastic grant. [`Limiter::elastic`](super::Limiter::elastic)
/// wraps the task's future in an [`ElasticTask`], which sums the time the task runs *inside its
/// own polls* — Go's `grunning.Time()`, per task — and every grant taken inside the task (by
/// [`Limiter::acquire_async`](super::Limiter::acquire_async), a
/// [`Pacer`](super::Pacer), or any acquisition) is charged with that running time: its
/// [`over_limit`](super::ElasticHandle::over_limit) checks read it, and it is what the handle
/// settles on drop. Work on threads of its own keeps the thread CPU clock (nothing else runs on
/// that thread under its grant).
///
/// ```
/// use std::time::Duration;
/// use tailguard::elastic::{AcquireRequest, ControllerKind, Limiter};
///
/// let limiter = Limiter::builder().cores(1.0).controller(ControllerKind::Fixed(0.5)).build()?;
/// let runtime = tokio::runtime::Builder::new_current_thread().build()?;
/// let task = limiter.elastic({
///     let limiter = limiter.clone();
///     async move {
///         let grant = limiter.acquire_async(&AcquireRequest::new()).await?;
///         let mut keys = 0u64;
///         while !grant.over_limit() && keys < 1_000 {
///             keys += 1; // one unit of elastic work; stop at a resumption point when over
///         }
///         Ok::<u64, tailguard::elastic::AcquireError>(keys)
///     }
/// });
/// let running = task.running_time_handle();
/// assert_eq!(runtime.block_on(task)?, 1_000);
/// assert!(running.get() > Duration::ZERO);
/// // The grant was charged with part of the task's running time, nothing else.
/// assert!(limiter.snapshot().total_used <= running.get());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Which clock, and what it costs
///
/// Each poll reads the limiter's monotonic clock twice (~31 ns a read on the project's VMs,
/// `benches/clock.rs`) and sets a thread-local. The thread CPU clock would count only true CPU
/// time, but it is a system call (~660 ns) — several times a poll's whole budget — so running
/// time is *wall time while polled*: like the reference's `grunning`, it also counts time the
/// OS took the worker thread away in the middle of a poll. The elastic grant pays for that
/// time, which errs on the side of the foreground. `benches/elastic.rs` (`elastic/task_poll`,
/// criterion medians on the project's quiet 2-core VM, two runs): a bare poll of an
/// always-pending future 2.9 ns, the same poll through the wrapper 78 ns, and with an
/// `over_limit()` check inside it (a grant charged with the task's running time) 80–82 ns,
/// against the ≤ 100 ns per-poll budget.
///
/// Grants are charged with the running time of the task they were taken in, and only while
/// one of that task's polls runs: a handle checked from elsewhere (moved to another task or
/// thread) keeps its last reading. Do not nest `ElasticTask`s: a grant of the outer task checked
/// inside the inner one's poll sees no running time.
///
/// Dropping it (a cancelled task) drops the wrapped future inside the task too, so grants it
/// held settle on the task's running time.
#[must_use = "futures do nothing unless polled"]
pub struct ElasticTask<F> {
    /// The wrapped future, boxed so the wrapper needs no unsafe pin projection (one
    /// allocation per task); `None` once dropped.
    future: Option<Pin<Box<F>>>,
    clock: SharedClock,
    id: u64,
    run_nanos: u64,
    shared_run_nanos: Arc<AtomicU64>,
}

/// Reads an [`ElasticTask`]'s running time from anywhere, also after the task was spawned.
#[derive(Clone, Debug)]
pub struct RunningTime(Arc<AtomicU64>);

impl RunningTime {
    /// Time the task has run inside its polls so far (as of its last completed poll).
    /// Monotonically increasing, never reset.
    pub fn get(&self) -> Duration {
        Duration::from_nanos(self.0.load(Ordering::Relaxed))
    }
}

impl<F> ElasticTask<F> {
    pub(crate) fn new(future: F, clock: SharedClock) -> Self {
        ElasticTask {
            future: Some(Box::pin(future)),
            clock,
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            run_nanos: 0,
            shared_run_nanos: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Time the task has run inside its polls so far.
    pub fn running_time(&self) -> Duration {
        Duration::from_nanos(self.run_nanos)
    }

    /// A reader of the running time that stays valid after the task is spawned.
    pub fn running_time_handle(&self) -> RunningTime {
        RunningTime(Arc::clone(&self.shared_run_nanos))
    }

    fn scope(&self, start_nanos: u64) -> Scope {
        Scope::enter(CurrentPoll { task: self.id, run_before_nanos: self.run_nanos, start_nanos })
    }
}

impl<F: Future> Future for ElasticTask<F> {
    type Output = F::Output;

    #[inline]
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = &mut *self;
        let start = this.clock.now_nanos();
        let result = {
            let _scope = this.scope(start);
            let future = this.future.as_mut().expect("ElasticTask polled after it was dropped");
            future.as_mut().poll(cx)
        };
        this.run_nanos += this.clock.now_nanos().saturating_sub(start);
        this.shared_run_nanos.store(this.run_nanos, Ordering::Relaxed);
        result
    }
}

impl<F> Drop for ElasticTask<F> {
    fn drop(&mut self) {
        if let Some(future) = self.future.take() {
            // Grants the future still holds settle inside the task, on its running time.
            let _scope = self.scope(self.clock.now_nanos());
            drop(future);
        }
    }
}

impl<F> std::fmt::Debug for ElasticTask<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ElasticTask").field("id", &self.id).field("run_nanos", &self.run_nanos).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, ManualClock};
    use std::task::Waker;

    /// A future that advances the clock by `step` on each poll and is ready after `polls`.
    struct Work {
        clock: ManualClock,
        step: Duration,
        polls: u32,
        seen: Vec<Option<(u64, u64)>>,
    }

    impl Future for Work {
        type Output = Vec<Option<(u64, u64)>>;

        fn poll(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Self::Output> {
            self.clock.advance(self.step);
            let now = self.clock.now_nanos();
            self.seen.push(current(now));
            self.polls -= 1;
            if self.polls == 0 { Poll::Ready(std::mem::take(&mut self.seen)) } else { Poll::Pending }
        }
    }

    #[test]
    fn running_time_counts_only_the_tasks_own_polls() {
        let clock = ManualClock::new();
        let work = Work { clock: clock.clone(), step: Duration::from_millis(2), polls: 3, seen: Vec::new() };
        let mut task = ElasticTask::new(work, clock.shared());
        let running = task.running_time_handle();
        let id = task.id;
        let mut cx = Context::from_waker(Waker::noop());
        assert!(Pin::new(&mut task).poll(&mut cx).is_pending());
        clock.advance(Duration::from_millis(50)); // other tasks run between polls
        assert!(Pin::new(&mut task).poll(&mut cx).is_pending());
        assert_eq!(running.get(), Duration::from_millis(4));
        let Poll::Ready(seen) = Pin::new(&mut task).poll(&mut cx) else { panic!("ready after 3 polls") };
        assert_eq!(task.running_time(), Duration::from_millis(6));
        assert_eq!(running.get(), Duration::from_millis(6));
        // Inside each poll the task saw itself as current, with its running time so far.
        let ms = 1_000_000;
        assert_eq!(seen, [Some((id, 2 * ms)), Some((id, 4 * ms)), Some((id, 6 * ms))]);
        // Outside its polls, no task is current.
        assert_eq!(current(clock.now_nanos()), None);
        assert_eq!(current_id(), None);
    }

    #[test]
    fn a_panicking_poll_leaves_no_task_current() {
        struct Panics;
        impl Future for Panics {
            type Output = ();
            fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<()> {
                assert!(current_id().is_some());
                panic!("elastic work failed");
            }
        }
        let clock = ManualClock::new();
        let mut task = ElasticTask::new(Panics, clock.shared());
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _ = Pin::new(&mut task).poll(&mut Context::from_waker(Waker::noop()));
        }));
        assert!(caught.is_err());
        assert_eq!(current_id(), None);
    }

    #[test]
    fn ids_are_distinct_and_drop_runs_inside_the_task() {
        struct Dropped(Arc<AtomicU64>);
        impl Drop for Dropped {
            fn drop(&mut self) {
                self.0.store(current_id().unwrap_or(0), Ordering::Relaxed);
            }
        }
        let clock = ManualClock::new();
        let seen = Arc::new(AtomicU64::new(0));
        let guard = Dropped(Arc::clone(&seen));
        let task = ElasticTask::new(async move { drop(guard) }, clock.shared());
        let other = ElasticTask::new(async {}, clock.shared());
        assert_ne!(task.id, other.id);
        let id = task.id;
        drop(task);
        assert_eq!(seen.load(Ordering::Relaxed), id);
    }
}
