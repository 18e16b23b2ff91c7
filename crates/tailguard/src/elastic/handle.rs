//! A grant of elastic CPU and the cheap `over_limit()` check for tight loops.
//!
//! A grant is charged with the time of the work that holds it, never anyone else's: on a
//! thread, the thread's CPU clock; inside an [`ElasticTask`](super::ElasticTask), the task's
//! own running time (the thread's clock would charge the foreground tasks that ran on the
//! worker while the elastic task awaited).

use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::{self, ThreadId};
use std::time::Duration;

use super::shared::Shared;
use super::task;
use crate::clock::duration_nanos;

/// Time between two meter reads in `over_limit()` (DESIGN §8: ~1 ms).
pub(crate) const CHECK_INTERVAL_NANOS: u64 = 1_000_000;
/// Upper bound on iterations between two clock reads.
const MAX_ITERATIONS_PER_CHECK: u32 = 1 << 24;

/// A grant of elastic CPU time, held while doing elastic work.
///
/// Call [`over_limit`](Self::over_limit) every loop iteration; when it says `true`, stop at a
/// resumption point, drop the handle and acquire again. On drop the handle settles up: unused
/// CPU goes back to the bucket, over-use becomes debt. When the limiter cuts the share by more
/// than [`CUT_FORFEITS`](super::CUT_FORFEITS), grants in flight end early: `over_limit()` says
/// `true` at its next meter read (within about 1 ms of work), and the unused rest is forfeited.
/// A panic unwinding through the work drops the handle too, so its grant is settled and the
/// limiter keeps running.
///
/// The handle is `Send` but not `Sync`: its estimator lives in `Cell`s. A handle taken inside
/// an [`ElasticTask`](super::ElasticTask) reads the task's running time wherever the runtime
/// polls it. A thread-metered handle that moves to another thread between checks re-baselines
/// at its next check instead of charging a difference of two threads' clocks.
///
/// # Examples
///
/// Preemptible work returns a resumption point; its caller re-acquires and continues:
///
/// ```
/// use std::time::Duration;
/// use tailguard::clock::ManualClock;
/// use tailguard::elastic::{AcquireRequest, ControllerKind, ElasticHandle, Limiter};
///
/// /// Scans keys from `start`; returns where to resume, or `None` when done.
/// fn export(handle: &ElasticHandle, clock: &ManualClock, start: u64, end: u64) -> Option<u64> {
///     for key in start..end {
///         clock.advance_cpu(Duration::from_micros(100)); // the work for one key
///         if handle.over_limit() && key + 1 < end {
///             return Some(key + 1);
///         }
///     }
///     None
/// }
///
/// let clock = ManualClock::new();
/// let limiter = Limiter::builder()
///     .cores(1.0)
///     .controller(ControllerKind::Fixed(0.5))
///     .clock(clock.shared())
///     .build()?;
/// let request = AcquireRequest::new().grant(Duration::from_millis(10));
/// let (mut next, mut requests) = (Some(0), 0);
/// while let Some(start) = next {
///     let handle = limiter.acquire(&request)?;
///     next = export(&handle, &clock, start, 400);
///     requests += 1;
/// }
/// assert_eq!(requests, 4); // 400 keys x 100 µs in 10 ms grants, within the 50 ms fill
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Cost
///
/// `over_limit()` costs ~1.7 ns per call amortised (`benches/elastic.rs`, `elastic/over_limit`,
/// on the project's 2-core VM). Acquire + release costs ~65 ns of limiter work (manual clock);
/// with the system clock it is ~1.7 µs, dominated by the two thread-CPU-clock reads (a system
/// call each) that bracket the grant.
pub struct ElasticHandle {
    shared: Arc<Shared>,
    granted_nanos: u64,
    /// Whose time the grant is charged with.
    meter: Meter,
    /// Meter reading the current measurement started from.
    base_nanos: Cell<u64>,
    /// Time measured on earlier baselines (before a thread move).
    carried_nanos: Cell<u64>,
    /// Time spent before `start_timer()`: charged, but does not eat the grant.
    pre_work_nanos: Cell<u64>,
    /// Calls left before the next meter read.
    countdown: Cell<u32>,
    /// Current estimate of iterations per check interval.
    iterations_per_check: Cell<u32>,
    last_check_nanos: Cell<u64>,
    /// Used time (since the timer started) as of the last meter read.
    used_nanos: Cell<u64>,
    /// Time between two meter reads: [`CHECK_INTERVAL_NANOS`], or the yield interval if shorter.
    check_interval_nanos: u64,
    /// Yield the OS thread at every meter read ([`AcquireRequest::yield_every`]; threads only).
    yields: bool,
    /// The limiter's count of real cuts when the grant was taken: a later cut ends the grant
    /// at the next meter read.
    cuts_at_grant: u64,
}

/// Whose time a grant is charged with.
#[derive(Debug)]
enum Meter {
    /// The CPU clock of the thread the handle is used on (re-baselined when it moves).
    Thread(Cell<ThreadId>),
    /// The running time of the elastic task the grant was taken in
    /// ([`ElasticTask`](super::ElasticTask)).
    Task(u64),
}

impl ElasticHandle {
    pub(crate) fn new(shared: Arc<Shared>, granted_nanos: u64, yield_every: Option<Duration>) -> Self {
        let (meter, start) = match task::current(shared.clock.now_nanos()) {
            Some((id, running)) => (Meter::Task(id), running),
            None => (Meter::Thread(Cell::new(thread::current().id())), shared.clock.thread_cpu_nanos()),
        };
        let yield_nanos =
            yield_every.map(duration_nanos).filter(|&n| n > 0 && matches!(meter, Meter::Thread(_)));
        let cuts_at_grant = shared.cuts.load(Ordering::Relaxed);
        ElasticHandle {
            shared,
            granted_nanos,
            meter,
            base_nanos: Cell::new(start),
            carried_nanos: Cell::new(0),
            pre_work_nanos: Cell::new(0),
            countdown: Cell::new(1),
            iterations_per_check: Cell::new(1),
            last_check_nanos: Cell::new(start),
            used_nanos: Cell::new(0),
            check_interval_nanos: yield_nanos.map_or(CHECK_INTERVAL_NANOS, |n| n.min(CHECK_INTERVAL_NANOS)),
            yields: yield_nanos.is_some(),
            cuts_at_grant,
        }
    }

    /// Whether the share was cut since the grant was taken (the grant then ends).
    fn cut(&self) -> bool {
        self.shared.cuts.load(Ordering::Relaxed) != self.cuts_at_grant
    }

    /// The CPU granted.
    pub fn granted(&self) -> Duration {
        Duration::from_nanos(self.granted_nanos)
    }

    /// Whether the grant is charged with an elastic task's running time (taken inside an
    /// [`ElasticTask`](super::ElasticTask)) rather than its thread's CPU clock.
    pub fn charges_task(&self) -> bool {
        matches!(self.meter, Meter::Task(_))
    }

    /// Marks the end of pre-work: time used so far is charged on drop but does not count
    /// against the grant checked by [`over_limit`](Self::over_limit).
    pub fn start_timer(&self) {
        let used = self.measure();
        self.pre_work_nanos.set(self.pre_work_nanos.get() + used);
        self.carried_nanos.set(0);
        let now = self.read().unwrap_or(self.base_nanos.get() + used);
        self.base_nanos.set(now);
        self.last_check_nanos.set(now);
        self.used_nanos.set(0);
        self.countdown.set(1);
    }

    /// Time used under this grant so far, pre-work included (reads the meter: the thread CPU
    /// clock, a system call, or the task's running time).
    pub fn used(&self) -> Duration {
        Duration::from_nanos(self.pre_work_nanos.get() + self.measure())
    }

    /// Time used under this grant (pre-work excluded) as of the last meter read: what the last
    /// [`over_limit`](Self::over_limit) check saw, without reading a clock.
    pub fn used_at_last_check(&self) -> Duration {
        Duration::from_nanos(self.used_nanos.get())
    }

    /// Whether the grant is used up (pre-work excluded).
    ///
    /// Meant for every iteration of a tight loop: most calls decrement a `Cell` countdown and
    /// return; every ~1 ms worth of iterations (or every
    /// [`yield_every`](super::AcquireRequest::yield_every), then yielding the thread) it reads
    /// the meter — the thread CPU clock, or inside an [`ElasticTask`](super::ElasticTask) the
    /// task's running time — and re-estimates how many iterations make 1 ms (growing at most
    /// ×2 per check, shrinking as far as needed when iterations get slower, and never
    /// overshooting the rest of the grant).
    #[inline]
    pub fn over_limit(&self) -> bool {
        let countdown = self.countdown.get();
        if countdown > 1 {
            self.countdown.set(countdown - 1);
            return false;
        }
        self.check()
    }

    #[cold]
    #[inline(never)]
    fn check(&self) -> bool {
        let Some(now) = self.read() else {
            // Checked outside the task it was taken in: nothing of its time can be read here.
            self.countdown.set(self.iterations_per_check.get().max(1));
            return self.used_nanos.get() >= self.granted_nanos || self.cut();
        };
        let used = self.measure_at(now);
        let spent = now.saturating_sub(self.last_check_nanos.get());
        self.last_check_nanos.set(now);
        let iterations = u64::from(self.iterations_per_check.get());
        let interval = self.check_interval_nanos;
        let mut estimate = (iterations * interval)
            .checked_div(spent)
            .map_or(iterations * 2, |scaled| scaled.clamp(1, iterations * 2));
        estimate = estimate.min(u64::from(MAX_ITERATIONS_PER_CHECK));
        self.iterations_per_check.set(estimate as u32);
        let remaining = self.granted_nanos.saturating_sub(used);
        // Near the end of the grant, check proportionally sooner.
        let next = if remaining < interval { (estimate * remaining / interval).max(1) } else { estimate };
        self.countdown.set(next as u32);
        if self.yields {
            // Let a foreground thread that became runnable on this CPU run now rather than
            // after the rest of this thread's OS time slice.
            thread::yield_now();
        }
        used >= self.granted_nanos || self.cut()
    }

    /// The meter now: the thread's CPU clock, or the running time of the task the grant was
    /// taken in (`None` when that task is not being polled on this thread).
    #[inline]
    fn read(&self) -> Option<u64> {
        match self.meter {
            Meter::Thread(_) => Some(self.shared.clock.thread_cpu_nanos()),
            Meter::Task(id) => task::current(self.shared.clock.now_nanos())
                .and_then(|(task, run)| (task == id).then_some(run)),
        }
    }

    fn measure(&self) -> u64 {
        match self.read() {
            Some(now) => self.measure_at(now),
            None => self.used_nanos.get(),
        }
    }

    /// Used time since the timer started, re-baselining if a thread-metered handle changed
    /// threads.
    fn measure_at(&self, now: u64) -> u64 {
        let moved = match &self.meter {
            Meter::Thread(thread) => {
                let current = thread::current().id();
                (current != thread.get()).then(|| thread.set(current)).is_some()
            }
            Meter::Task(_) => false,
        };
        let used = if moved {
            // Another thread's clock: keep what was measured, start afresh from here.
            self.carried_nanos.set(self.used_nanos.get());
            self.base_nanos.set(now);
            self.last_check_nanos.set(now);
            self.used_nanos.get()
        } else {
            self.carried_nanos.get() + now.saturating_sub(self.base_nanos.get())
        };
        self.used_nanos.set(used);
        used
    }
}

impl Drop for ElasticHandle {
    fn drop(&mut self) {
        let used = self.pre_work_nanos.get() + self.measure();
        // After a cut the grant's unused rest is forfeited, as the bucket's balance was: giving
        // it back would let the work resume at the old share.
        let granted = if self.cut() { self.granted_nanos.min(used) } else { self.granted_nanos };
        self.shared.settle(granted, used);
    }
}

impl std::fmt::Debug for ElasticHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ElasticHandle")
            .field("granted_nanos", &self.granted_nanos)
            .field("used_nanos", &self.used_nanos.get())
            .finish()
    }
}
