//! Poll wrappers stacked on one task read the clock once per poll edge and once per wake, and
//! each still measures what it measured alone.
#![cfg(all(feature = "tokio", feature = "tracing"))]

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tailguard::capture::Scheduled;
use tailguard::clock::{Clock, ManualClock, SharedClock};
use tailguard::elastic::{ControllerKind, Limiter};
use tailguard::observe::{PollMonitor, PollMonitorConfig};
use tailguard::task::Registry;

/// A manual clock that counts its monotonic reads.
#[derive(Debug, Default)]
struct Counting {
    inner: ManualClock,
    reads: AtomicU64,
}

impl Clock for Counting {
    fn now_nanos(&self) -> u64 {
        self.reads.fetch_add(1, Ordering::Relaxed);
        self.inner.now_nanos()
    }
    fn thread_cpu_nanos(&self) -> u64 {
        self.inner.thread_cpu_nanos()
    }
}

/// Runs 1 ms per poll, keeps its waker for the test, and finishes on its third poll.
struct Script {
    clock: ManualClock,
    polls: u32,
    waker: Arc<Mutex<Option<Waker>>>,
}

impl Future for Script {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.clock.advance(Duration::from_millis(1));
        *self.waker.lock().unwrap() = Some(cx.waker().clone());
        self.polls += 1;
        if self.polls == 3 { Poll::Ready(()) } else { Poll::Pending }
    }
}

fn counting_clock() -> (Arc<Counting>, SharedClock) {
    let counting = Arc::new(Counting::default());
    let clock: SharedClock = counting.clone();
    (counting, clock)
}

#[test]
fn tracked_over_scheduled_over_instrumented_reads_once_per_edge() {
    let (counting, clock) = counting_clock();
    let registry = Registry::with_clock(clock.clone());
    let monitor = PollMonitor::with_clock(PollMonitorConfig::default(), clock.clone()).unwrap();
    let slot = Arc::new(Mutex::new(None));
    let script = Script { clock: counting.inner.clone(), polls: 0, waker: slot.clone() };
    let instrumented = monitor.instrument(script);
    let stats = instrumented.stats_handle();
    let mut task = Box::pin(registry.track(Scheduled::with_clock(instrumented, clock.clone())));
    let mut cx = Context::from_waker(Waker::noop());
    let built = counting.reads.load(Ordering::Relaxed); // the task's spawn time, the windows' start
    let reads = || counting.reads.load(Ordering::Relaxed) - built;

    assert!(task.as_mut().poll(&mut cx).is_pending());
    assert_eq!(reads(), 2, "first poll: its start and its end");
    counting.inner.advance(Duration::from_millis(10)); // idle
    slot.lock().unwrap().take().unwrap().wake();
    assert_eq!(reads(), 3, "a wake through three wakers: one read");
    counting.inner.advance(Duration::from_millis(4)); // woken, waiting for a worker
    assert!(task.as_mut().poll(&mut cx).is_pending());
    assert_eq!(reads(), 5);
    slot.lock().unwrap().take().unwrap().wake();
    assert!(task.as_mut().poll(&mut cx).is_ready());
    assert_eq!(reads(), 8, "three polls and two wakes: eight reads (twenty if each read its own)");

    // Each wrapper measured what it measures alone.
    let stats = stats.stats();
    assert_eq!((stats.polls, stats.total_running), (3, Duration::from_millis(3)));
    assert_eq!(stats.total_scheduling_delay, Duration::from_millis(4));
    assert!(registry.is_empty(), "the tracked task finished");
}

#[test]
fn tracked_over_an_elastic_task_shares_the_limiters_clock() {
    let (counting, clock) = counting_clock();
    let registry = Registry::with_clock(clock.clone());
    let limiter = Limiter::builder()
        .cores(1.0)
        .controller(ControllerKind::Fixed(0.5))
        .clock(clock.clone())
        .build()
        .unwrap();
    let slot = Arc::new(Mutex::new(None));
    let script = Script { clock: counting.inner.clone(), polls: 0, waker: slot.clone() };
    let elastic = limiter.elastic(script);
    let running = elastic.running_time_handle();
    let mut task = Box::pin(registry.track(elastic));
    let mut cx = Context::from_waker(Waker::noop());
    let before = counting.reads.load(Ordering::Relaxed);
    assert!(task.as_mut().poll(&mut cx).is_pending());
    assert_eq!(counting.reads.load(Ordering::Relaxed) - before, 2, "one read per edge");
    assert_eq!(running.get(), Duration::from_millis(1));
}

#[test]
fn wrappers_on_different_clocks_each_read_their_own() {
    let (counting, clock) = counting_clock();
    let (other, other_clock) = counting_clock();
    let registry = Registry::with_clock(clock.clone());
    let slot = Arc::new(Mutex::new(None));
    let script = Script { clock: counting.inner.clone(), polls: 0, waker: slot.clone() };
    let mut task = Box::pin(registry.track(Scheduled::with_clock(script, other_clock)));
    let mut cx = Context::from_waker(Waker::noop());
    let built = counting.reads.load(Ordering::Relaxed);
    assert!(task.as_mut().poll(&mut cx).is_pending());
    slot.lock().unwrap().take().unwrap().wake();
    assert!(task.as_mut().poll(&mut cx).is_pending());
    // The registry's clock: both edges of both polls and the wake; the other clock: the wake
    // and the start of the poll that followed it.
    assert_eq!(counting.reads.load(Ordering::Relaxed) - built, 5);
    assert_eq!(other.reads.load(Ordering::Relaxed), 2);
}
