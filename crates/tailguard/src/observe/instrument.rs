//! Instrumented futures: scheduling latency (wake→poll) and running time (poll duration) of
//! every poll, per task and in aggregate.
//!
//! Wrap a future with [`PollMonitor::instrument`]. The wrapper hands the inner future its own
//! waker; when that waker fires it stamps the time (the first wake since the last poll wins), and
//! the next poll records `poll start − wake stamp` as scheduling delay, then the poll's own
//! duration as running time. Both go into the monitor's shared windows and into the task's own
//! counters ([`TaskStats`]), readable from a [`TaskStatsHandle`] after the future was spawned.
//!
//! # Costs, and which clock
//!
//! Every poll reads the injected clock's monotonic time twice and records two histogram
//! samples. Reading the thread CPU clock costs ~660 ns on the project's VMs (a system call)
//! against ~31 ns for the monotonic clock (`benches/clock.rs`), several times the whole per-poll
//! budget, so running time is *wall time while polled*: like Go's `grunning.Time()` it includes
//! time the OS deschedules the worker thread in the middle of a poll. True CPU time is read only
//! on sampled polls (every Nth, [`PollMonitorConfig::cpu_sample_every`], off by default), where
//! its cost is amortised; [`TaskStats::estimated_cpu`] scales the sampled CPU/wall ratio to the
//! task's whole running time.
//!
//! Measured in one run of `benches/observe.rs` (2-core VM, criterion medians):
//!
//! | one poll of an always-pending future | bare | `Instrumented` | tokio-metrics `TaskMonitor` |
//! |---|---|---|---|
//! | plain poll | 0.75 ns | 64 ns | 106 ns |
//! | poll that wakes itself (as `yield_now` does) | 1.9 ns | 123 ns | 167 ns |
//! | plain poll, CPU clock sampled every 64th poll | | 87 ns | |
//!
//! Two monotonic clock reads are ~62 ns of the 64; the wake path adds a third read, and a lock
//! and clone of the executor's waker (never woken under our lock).
//!
//! The first poll has no wake before it and records no scheduling delay: the time between
//! creating a future and spawning it is not the scheduler's doing.
//!
//! # Examples
//!
//! ```
//! use std::time::Duration;
//! use tailguard::observe::instrument::{PollMonitor, PollMonitorConfig};
//!
//! let monitor = PollMonitor::new(PollMonitorConfig::default())?;
//! let task = monitor.instrument(async { 40 + 2 });
//! let stats = task.stats_handle();
//! let runtime = tokio::runtime::Builder::new_current_thread().build()?;
//! assert_eq!(runtime.block_on(task), 42);
//! assert_eq!(stats.stats().polls, 1);
//! assert_eq!(monitor.poll_window().snapshot().histogram.count(), 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::future::Future;
use std::num::NonZeroU32;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use crate::clock::{SharedClock, SystemClock};
use crate::histogram::{InvalidWindow, WindowConfig, WindowedHistogram};

/// Settings of a [`PollMonitor`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PollMonitorConfig {
    /// The shape of the scheduling-delay and poll-duration windows. Default 25 × 100 ms.
    pub window: WindowConfig,
    /// Read the thread CPU clock around every Nth poll of each task (`None`: never, the
    /// default). Each sampled poll costs two CPU-clock reads (~1–1.5 µs on the project's VMs).
    pub cpu_sample_every: Option<NonZeroU32>,
}

impl Default for PollMonitorConfig {
    fn default() -> Self {
        Self { window: WindowConfig::DEFAULT, cpu_sample_every: None }
    }
}

/// The aggregate side of instrumented futures: windows shared by every task it instrumented.
///
/// Cheap to clone (clones share the windows).
#[derive(Clone)]
pub struct PollMonitor {
    scheduling: Arc<WindowedHistogram>,
    polls: Arc<WindowedHistogram>,
    clock: SharedClock,
    cpu_sample_every: Option<NonZeroU32>,
}

impl PollMonitor {
    /// A monitor on the system clock.
    ///
    /// # Errors
    ///
    /// [`InvalidWindow`] when the window shape is out of range.
    pub fn new(config: PollMonitorConfig) -> Result<Self, InvalidWindow> {
        Self::with_clock(config, SystemClock::shared())
    }

    /// A monitor on the given clock (used for stamps, durations and window rotation).
    ///
    /// # Errors
    ///
    /// [`InvalidWindow`] when the window shape is out of range.
    pub fn with_clock(config: PollMonitorConfig, clock: SharedClock) -> Result<Self, InvalidWindow> {
        let scheduling = Arc::new(WindowedHistogram::with_clock(config.window, clock.clone())?);
        let polls = Arc::new(WindowedHistogram::with_clock(config.window, clock.clone())?);
        Ok(Self { scheduling, polls, clock, cpu_sample_every: config.cpu_sample_every })
    }

    /// Wraps a future so that its polls are measured.
    pub fn instrument<F: Future>(&self, future: F) -> Instrumented<F> {
        let state = Arc::new(TaskState {
            woken_at_nanos: AtomicU64::new(0),
            waker: Mutex::new(None),
            clock: self.clock.clone(),
            counters: Counters::default(),
        });
        let own_waker = Waker::from(state.clone());
        Instrumented {
            future,
            state,
            own_waker,
            registered: None,
            scheduling: self.scheduling.clone(),
            polls: self.polls.clone(),
            clock: self.clock.clone(),
            cpu_sample_every: self.cpu_sample_every.map_or(0, NonZeroU32::get),
            until_cpu_sample: self.cpu_sample_every.map_or(0, NonZeroU32::get),
        }
    }

    /// Like [`instrument`](Self::instrument), for a future that is runnable from now on: one
    /// about to be spawned. Its first poll records the delay since this call as scheduling
    /// latency, the time the new task waited for a worker, which [`instrument`](Self::instrument)
    /// leaves out (it cannot know when a future was spawned). Costs one more clock read.
    ///
    /// ```
    /// use tailguard::observe::instrument::{PollMonitor, PollMonitorConfig};
    ///
    /// let monitor = PollMonitor::new(PollMonitorConfig::default())?;
    /// let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).build()?;
    /// let task = runtime.spawn(monitor.instrument_runnable(async { 40 + 2 }));
    /// assert_eq!(runtime.block_on(task)?, 42);
    /// // The spawn→poll delay of its one poll:
    /// assert_eq!(monitor.scheduling_window().snapshot().histogram.count(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn instrument_runnable<F: Future>(&self, future: F) -> Instrumented<F> {
        let task = self.instrument(future);
        task.state.stamp();
        task
    }

    /// Wake→poll delays of every instrumented task (scheduling latency), in nanoseconds.
    pub fn scheduling_window(&self) -> &Arc<WindowedHistogram> {
        &self.scheduling
    }

    /// Durations of every poll of every instrumented task (running time), in nanoseconds.
    pub fn poll_window(&self) -> &Arc<WindowedHistogram> {
        &self.polls
    }

    /// The window a controller steers by: the scheduling-latency window.
    pub fn window(&self) -> &Arc<WindowedHistogram> {
        &self.scheduling
    }
}

impl fmt::Debug for PollMonitor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PollMonitor")
            .field("window", &self.scheduling.config())
            .field("cpu_sample_every", &self.cpu_sample_every)
            .finish_non_exhaustive()
    }
}

/// Per-task counters. Written only by the thread polling the task (polls need `&mut`), read by
/// anyone: relaxed loads and stores, no read-modify-write on the hot path.
#[derive(Default)]
struct Counters {
    polls: AtomicU64,
    scheduled_polls: AtomicU64,
    total_scheduling_nanos: AtomicU64,
    max_scheduling_nanos: AtomicU64,
    total_running_nanos: AtomicU64,
    max_poll_nanos: AtomicU64,
    sampled_polls: AtomicU64,
    sampled_running_nanos: AtomicU64,
    sampled_cpu_nanos: AtomicU64,
}

/// Adds to a counter that only one thread writes.
#[inline]
fn bump(counter: &AtomicU64, by: u64) {
    counter.store(counter.load(Ordering::Relaxed).wrapping_add(by), Ordering::Relaxed);
}

/// Raises a maximum that only one thread writes.
#[inline]
fn raise(counter: &AtomicU64, to: u64) {
    if to > counter.load(Ordering::Relaxed) {
        counter.store(to, Ordering::Relaxed);
    }
}

struct TaskState {
    /// Clock reading of the first wake since the last poll; 0 when none is pending.
    woken_at_nanos: AtomicU64,
    /// The waker of the executor's last poll, woken by ours.
    waker: Mutex<Option<Waker>>,
    clock: SharedClock,
    counters: Counters,
}

impl TaskState {
    #[inline]
    fn stamp(&self) {
        if self.woken_at_nanos.load(Ordering::Relaxed) == 0 {
            // 0 means "not woken": a clock reading of exactly 0 is stored as 1.
            let now = self.clock.now_nanos().max(1);
            let _ = self.woken_at_nanos.compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed);
        }
    }

    fn inner_waker(&self) -> Option<Waker> {
        // A poisoned lock only means a waker's clone panicked; the slot is still valid.
        self.waker.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl Wake for TaskState {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.stamp();
        // The executor's waker is cloned out so that it is never woken under our lock.
        if let Some(waker) = self.inner_waker() {
            waker.wake();
        }
    }
}

/// A future whose polls are measured; made by [`PollMonitor::instrument`].
pub struct Instrumented<F> {
    future: F,
    state: Arc<TaskState>,
    /// Our waker, made once: handing it out per poll costs nothing.
    own_waker: Waker,
    /// The executor waker last stored in `state.waker`, compared without the lock.
    registered: Option<Waker>,
    scheduling: Arc<WindowedHistogram>,
    polls: Arc<WindowedHistogram>,
    clock: SharedClock,
    cpu_sample_every: u32,
    until_cpu_sample: u32,
}

impl<F> Instrumented<F> {
    /// This task's counters as of now.
    pub fn stats(&self) -> TaskStats {
        self.stats_handle().stats()
    }

    /// A handle that reads this task's counters, also after the future was moved or spawned.
    pub fn stats_handle(&self) -> TaskStatsHandle {
        TaskStatsHandle { state: self.state.clone() }
    }

    /// The wrapped future.
    pub fn get_ref(&self) -> &F {
        &self.future
    }

    /// Unwraps the future.
    pub fn into_inner(self) -> F {
        self.future
    }

    #[cold]
    fn register(&mut self, waker: &Waker) {
        *self.state.waker.lock().unwrap_or_else(|p| p.into_inner()) = Some(waker.clone());
        self.registered = Some(waker.clone());
    }
}

impl<F: Future> Future for Instrumented<F> {
    type Output = F::Output;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // SAFETY: `future` is structurally pinned: it is never moved out of a pinned
        // `Instrumented` (`into_inner` takes `self` by value, which needs `Unpin` once pinned),
        // `Instrumented` has no `Drop` impl, and it is `Unpin` only when `F` is. Every other
        // field is never pinned and may be moved freely.
        let this = unsafe { self.get_unchecked_mut() };
        if !this.registered.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            this.register(cx.waker());
        }
        let start = this.clock.now_nanos();
        let woken_at = this.state.woken_at_nanos.swap(0, Ordering::Relaxed);
        let counters = &this.state.counters;
        if woken_at != 0 {
            let delay = start.saturating_sub(woken_at);
            this.scheduling.record_nanos(delay);
            bump(&counters.scheduled_polls, 1);
            bump(&counters.total_scheduling_nanos, delay);
            raise(&counters.max_scheduling_nanos, delay);
        }
        let sample_cpu = this.cpu_sample_every != 0 && {
            this.until_cpu_sample -= 1;
            this.until_cpu_sample == 0
        };
        let cpu_start = if sample_cpu { this.clock.thread_cpu_nanos() } else { 0 };

        let mut own_cx = Context::from_waker(&this.own_waker);
        // SAFETY: see above; `future` is pinned because `self` is.
        let future = unsafe { Pin::new_unchecked(&mut this.future) };
        let result = future.poll(&mut own_cx);

        let end = this.clock.now_nanos();
        let running = end.saturating_sub(start);
        this.polls.record_nanos(running);
        let counters = &this.state.counters;
        bump(&counters.polls, 1);
        bump(&counters.total_running_nanos, running);
        raise(&counters.max_poll_nanos, running);
        if sample_cpu {
            this.sample_cpu(cpu_start, running);
        }
        result
    }
}

impl<F> Instrumented<F> {
    #[cold]
    fn sample_cpu(&mut self, cpu_start: u64, running_nanos: u64) {
        let cpu = self.clock.thread_cpu_nanos().saturating_sub(cpu_start);
        let counters = &self.state.counters;
        bump(&counters.sampled_polls, 1);
        bump(&counters.sampled_running_nanos, running_nanos);
        bump(&counters.sampled_cpu_nanos, cpu);
        self.until_cpu_sample = self.cpu_sample_every;
    }
}

impl<F> fmt::Debug for Instrumented<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Instrumented").field("stats", &self.stats()).finish_non_exhaustive()
    }
}

/// Reads one instrumented task's counters; cheap to clone.
#[derive(Clone)]
pub struct TaskStatsHandle {
    state: Arc<TaskState>,
}

impl TaskStatsHandle {
    /// The task's counters as of now (each read is relaxed: a poll in progress may be partly
    /// included).
    pub fn stats(&self) -> TaskStats {
        let c = &self.state.counters;
        let nanos = |a: &AtomicU64| Duration::from_nanos(a.load(Ordering::Relaxed));
        TaskStats {
            polls: c.polls.load(Ordering::Relaxed),
            scheduled_polls: c.scheduled_polls.load(Ordering::Relaxed),
            total_scheduling_delay: nanos(&c.total_scheduling_nanos),
            max_scheduling_delay: nanos(&c.max_scheduling_nanos),
            total_running: nanos(&c.total_running_nanos),
            max_poll: nanos(&c.max_poll_nanos),
            sampled_polls: c.sampled_polls.load(Ordering::Relaxed),
            sampled_running: nanos(&c.sampled_running_nanos),
            sampled_cpu: nanos(&c.sampled_cpu_nanos),
        }
    }
}

impl fmt::Debug for TaskStatsHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("TaskStatsHandle").field(&self.stats()).finish()
    }
}

/// One task's counters. All are monotonically increasing, never reset.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TaskStats {
    /// Completed polls.
    pub polls: u64,
    /// Polls that followed a wake (all but the first, unless the future woke itself early).
    pub scheduled_polls: u64,
    /// Sum of wake→poll delays.
    pub total_scheduling_delay: Duration,
    /// Longest wake→poll delay.
    pub max_scheduling_delay: Duration,
    /// Sum of poll durations: wall time while polled, the analogue of Go's `grunning.Time()`
    /// (it includes time the OS descheduled the thread mid-poll).
    pub total_running: Duration,
    /// Longest poll.
    pub max_poll: Duration,
    /// Polls around which the thread CPU clock was read.
    pub sampled_polls: u64,
    /// Wall time of the sampled polls.
    pub sampled_running: Duration,
    /// True CPU time of the sampled polls (time the OS descheduled the thread is not counted).
    pub sampled_cpu: Duration,
}

impl TaskStats {
    /// Mean wake→poll delay, `None` before the first scheduled poll.
    pub fn mean_scheduling_delay(&self) -> Option<Duration> {
        let n = u32::try_from(self.scheduled_polls).ok().filter(|&n| n > 0)?;
        Some(self.total_scheduling_delay / n)
    }

    /// Mean poll duration, `None` before the first poll.
    pub fn mean_poll(&self) -> Option<Duration> {
        let n = u32::try_from(self.polls).ok().filter(|&n| n > 0)?;
        Some(self.total_running / n)
    }

    /// The task's CPU time estimated from the sampled polls: `total_running × sampled_cpu /
    /// sampled_running`. `None` when no poll was sampled (sampling is off, or too few polls).
    pub fn estimated_cpu(&self) -> Option<Duration> {
        if self.sampled_polls == 0 || self.sampled_running.is_zero() {
            return None;
        }
        let ratio = (self.sampled_cpu.as_secs_f64() / self.sampled_running.as_secs_f64()).min(1.0);
        Some(self.total_running.mul_f64(ratio))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use std::task::Waker;

    /// A future scripted by the test: each poll runs for the given time on the manual clock, then
    /// either finishes or keeps its waker for the test to wake.
    struct Script {
        clock: ManualClock,
        runs: Vec<Duration>,
        cpu: Vec<Duration>,
        waker: Arc<Mutex<Option<Waker>>>,
    }

    impl Future for Script {
        type Output = usize;
        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<usize> {
            let run = self.runs.remove(0);
            self.clock.advance(run);
            if !self.cpu.is_empty() {
                let cpu = self.cpu.remove(0);
                self.clock.advance_cpu(cpu);
            }
            *self.waker.lock().unwrap() = Some(cx.waker().clone());
            if self.runs.is_empty() { Poll::Ready(7) } else { Poll::Pending }
        }
    }

    struct CountingWaker(AtomicU64);
    impl Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn setup(runs: Vec<Duration>, cpu: Vec<Duration>, every: Option<u32>) -> Fixture {
        let clock = ManualClock::new();
        let config = PollMonitorConfig {
            window: WindowConfig::DEFAULT,
            cpu_sample_every: every.and_then(NonZeroU32::new),
        };
        let monitor = PollMonitor::with_clock(config, clock.shared()).unwrap();
        let slot = Arc::new(Mutex::new(None));
        let script = Script { clock: clock.clone(), runs, cpu, waker: slot.clone() };
        let task = Box::pin(monitor.instrument(script));
        Fixture { clock, monitor, task, slot }
    }

    struct Fixture {
        clock: ManualClock,
        monitor: PollMonitor,
        task: Pin<Box<Instrumented<Script>>>,
        slot: Arc<Mutex<Option<Waker>>>,
    }

    impl Fixture {
        fn wake_task(&self) {
            self.slot.lock().unwrap().take().expect("the future stored a waker").wake();
        }
    }

    #[test]
    fn records_wake_to_poll_delay_and_poll_duration() {
        let mut f = setup(vec![ms(2), ms(3), ms(5)], vec![], None);
        let outer = Arc::new(CountingWaker(AtomicU64::new(0)));
        let waker = Waker::from(outer.clone());
        let mut cx = Context::from_waker(&waker);

        assert!(f.task.as_mut().poll(&mut cx).is_pending()); // runs 2 ms, no delay recorded
        f.clock.advance(ms(10)); // idle, not woken: not scheduling latency
        f.wake_task();
        assert_eq!(outer.0.load(Ordering::Relaxed), 1, "the executor's waker is woken");
        f.clock.advance(ms(4)); // woken, waiting for a worker
        assert!(f.task.as_mut().poll(&mut cx).is_pending()); // delay 4 ms, runs 3 ms
        f.wake_task();
        f.clock.advance(ms(1));
        f.wake_task_again_is_harmless();
        f.clock.advance(ms(1));
        assert_eq!(f.task.as_mut().poll(&mut cx), Poll::Ready(7)); // delay 2 ms (first wake), runs 5

        let stats = f.task.stats();
        assert_eq!(stats.polls, 3);
        assert_eq!(stats.scheduled_polls, 2);
        assert_eq!(stats.total_scheduling_delay, ms(6));
        assert_eq!(stats.max_scheduling_delay, ms(4));
        assert_eq!(stats.mean_scheduling_delay(), Some(ms(3)));
        assert_eq!(stats.total_running, ms(10));
        assert_eq!(stats.max_poll, ms(5));
        assert_eq!(stats.estimated_cpu(), None);

        let scheduling = f.monitor.scheduling_window().snapshot().histogram;
        assert_eq!(scheduling.count(), 2);
        let max = scheduling.max().unwrap();
        assert!(max >= ms(4) && max < ms(4) + ms(4) / 32, "{max:?}");
        let polls = f.monitor.poll_window().snapshot().histogram;
        assert_eq!(polls.count(), 3);
        let p50 = polls.p50().unwrap();
        assert!(p50.abs_diff(ms(3)) <= ms(3) / 25, "p50 {p50:?} should be the 3 ms poll");
    }

    impl Fixture {
        fn wake_task_again_is_harmless(&self) {
            // The stored waker was taken by the first wake; wake through a fresh clone of ours.
            self.task.own_waker.wake_by_ref();
        }
    }

    #[test]
    fn a_runnable_task_records_its_wait_for_the_first_poll() {
        let clock = ManualClock::new();
        let monitor = PollMonitor::with_clock(PollMonitorConfig::default(), clock.shared()).unwrap();
        clock.advance(ms(1)); // a stamp never reads 0 (0 means "not woken")
        let mut spawned = Box::pin(monitor.instrument_runnable(async { 1 }));
        let mut created = Box::pin(monitor.instrument(async { 2 }));
        clock.advance(ms(3)); // both wait for a worker; only the runnable one says so
        let mut cx = Context::from_waker(Waker::noop());
        assert_eq!(spawned.as_mut().poll(&mut cx), Poll::Ready(1));
        assert_eq!(created.as_mut().poll(&mut cx), Poll::Ready(2));
        assert_eq!(spawned.stats().scheduled_polls, 1);
        assert_eq!(spawned.stats().total_scheduling_delay, ms(3));
        assert_eq!(created.stats().scheduled_polls, 0);
        let scheduling = monitor.scheduling_window().snapshot().histogram;
        assert_eq!(scheduling.count(), 1);
        assert!(scheduling.max().unwrap() >= ms(3));
    }

    #[test]
    fn aggregates_across_tasks_and_windows_forget_old_polls() {
        let f = setup(vec![ms(1)], vec![], None);
        let other = f.monitor.instrument(async { 1 });
        let waker = Waker::noop();
        let mut cx = Context::from_waker(waker);
        let mut first = f.task;
        let mut second = Box::pin(other);
        assert!(first.as_mut().poll(&mut cx).is_ready());
        assert!(second.as_mut().poll(&mut cx).is_ready());
        assert_eq!(f.monitor.poll_window().snapshot().histogram.count(), 2);
        f.clock.advance(Duration::from_secs(5));
        assert_eq!(f.monitor.poll_window().snapshot().histogram.count(), 0);
        assert_eq!(f.monitor.poll_window().cumulative().snapshot().count(), 2);
    }

    #[test]
    fn samples_true_cpu_every_nth_poll() {
        // Four polls of 4 ms wall each; the CPU clock moves 1 ms per poll (the thread was
        // descheduled 3/4 of the time). Sampling every 2nd poll reads it on polls 2 and 4.
        let mut f = setup(vec![ms(4); 4], vec![ms(1); 4], Some(2));
        let waker = Waker::noop();
        let mut cx = Context::from_waker(waker);
        for _ in 0..3 {
            assert!(f.task.as_mut().poll(&mut cx).is_pending());
            f.wake_task();
        }
        assert!(f.task.as_mut().poll(&mut cx).is_ready());
        let stats = f.task.stats();
        assert_eq!(stats.sampled_polls, 2);
        assert_eq!(stats.sampled_running, ms(8));
        assert_eq!(stats.sampled_cpu, ms(2));
        assert_eq!(stats.total_running, ms(16));
        assert_eq!(stats.estimated_cpu(), Some(ms(4)));
    }

    #[test]
    fn a_changed_executor_waker_is_the_one_woken() {
        let mut f = setup(vec![ms(1), ms(1), ms(1)], vec![], None);
        let a = Arc::new(CountingWaker(AtomicU64::new(0)));
        let b = Arc::new(CountingWaker(AtomicU64::new(0)));
        let wa = Waker::from(a.clone());
        let wb = Waker::from(b.clone());
        assert!(f.task.as_mut().poll(&mut Context::from_waker(&wa)).is_pending());
        f.wake_task();
        assert!(f.task.as_mut().poll(&mut Context::from_waker(&wb)).is_pending());
        f.wake_task();
        assert_eq!((a.0.load(Ordering::Relaxed), b.0.load(Ordering::Relaxed)), (1, 1));
    }
}
