//! Async elastic work on a manual clock: grants charged with the task's own running time,
//! deadlines that fire without a grant, wakers called outside the lock, and re-polls.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use super::*;
use crate::clock::ManualClock;

const MS: Duration = Duration::from_millis(1);

/// 50 % of one core: capacity 500 ms of CPU, five 100 ms grants.
fn limiter(clock: &ManualClock) -> Limiter {
    Limiter::builder()
        .cores(1.0)
        .burst(ONE_SECOND_FILL)
        .controller(ControllerKind::Fixed(0.5))
        .clock(clock.shared())
        .build()
        .unwrap()
}

/// Counts its wakes.
#[derive(Default)]
struct Wakes(AtomicU32);

impl Wake for Wakes {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn poll<F: Future + Unpin>(future: &mut F, waker: &Waker) -> Poll<F::Output> {
    Pin::new(future).poll(&mut Context::from_waker(waker))
}

#[test]
fn a_task_holding_a_grant_is_charged_its_own_running_time_not_the_foregrounds() {
    // One worker, polled by hand: the elastic task takes a grant, works 3 ms, yields; a
    // foreground task burns 50 ms on the same thread (the manual clock's CPU counter is the
    // thread's); the elastic task works 2 ms more and drops its grant.
    let clock = ManualClock::new();
    let limiter = limiter(&clock);
    let step = Arc::new(AtomicU32::new(0));
    let mut elastic = Box::pin(limiter.elastic({
        let (limiter, clock, step) = (limiter.clone(), clock.clone(), Arc::clone(&step));
        async move {
            let grant = limiter.acquire_async(&AcquireRequest::new()).await.unwrap();
            assert!(grant.charges_task());
            clock.run_for(3 * MS);
            step.store(1, Ordering::SeqCst);
            YieldOnce(false).await;
            clock.run_for(2 * MS);
            assert_eq!(grant.used(), 5 * MS);
            drop(grant);
        }
    }));
    let running = elastic.running_time_handle();
    let waker = Waker::noop();
    assert!(poll(&mut elastic, waker).is_pending());
    assert_eq!(step.load(Ordering::SeqCst), 1);
    clock.run_for(50 * MS); // the foreground task, between the elastic task's polls
    assert!(poll(&mut elastic, waker).is_ready());
    let snapshot = limiter.snapshot();
    assert_eq!(snapshot.total_used, 5 * MS, "none of the foreground's 50 ms");
    assert_eq!(running.get(), 5 * MS);
}

#[test]
fn a_grant_outside_any_elastic_task_keeps_the_thread_cpu_clock() {
    let clock = ManualClock::new();
    let limiter = limiter(&clock);
    let grant = limiter.try_acquire(&AcquireRequest::new()).unwrap();
    assert!(!grant.charges_task());
    clock.advance_cpu(7 * MS);
    clock.advance(100 * MS); // wall time alone is not charged to a thread's grant
    assert_eq!(grant.used(), 7 * MS);
}

#[test]
fn over_limit_inside_a_task_reads_its_running_time() {
    let clock = ManualClock::new();
    let limiter = limiter(&clock);
    let request = AcquireRequest::new().grant(10 * MS);
    let mut task = Box::pin(limiter.elastic({
        let (limiter, clock) = (limiter.clone(), clock.clone());
        async move {
            let grant = limiter.acquire_async(&request).await.unwrap();
            let mut iterations = 0u32;
            // 100 µs of running time per iteration; the thread CPU clock never moves.
            while !grant.over_limit() {
                clock.advance(Duration::from_micros(100));
                iterations += 1;
                assert!(iterations < 10_000, "over_limit never saw the task's running time");
            }
            (iterations, grant.used_at_last_check())
        }
    }));
    let Poll::Ready((iterations, used)) = poll(&mut task, Waker::noop()) else { panic!("one poll") };
    assert!((100..=101).contains(&iterations), "{iterations}");
    assert!(used >= 10 * MS && used <= 10 * MS + Duration::from_micros(100), "{used:?}");
}

#[test]
fn a_grant_dropped_with_a_cancelled_task_settles_on_its_running_time() {
    let clock = ManualClock::new();
    let limiter = limiter(&clock);
    let mut task = Box::pin(limiter.elastic({
        let (limiter, clock) = (limiter.clone(), clock.clone());
        async move {
            let _grant = limiter.acquire_async(&AcquireRequest::new()).await.unwrap();
            clock.run_for(4 * MS);
            std::future::pending::<()>().await;
        }
    }));
    assert!(poll(&mut task, Waker::noop()).is_pending());
    clock.run_for(30 * MS); // others run; then the task is cancelled
    drop(task);
    assert_eq!(limiter.snapshot().total_used, 4 * MS);
}

/// Yields once (no runtime needed).
struct YieldOnce(bool);

impl Future for YieldOnce {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            return Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

#[test]
fn acquire_async_timeout_fires_at_the_next_tick_without_a_grant() {
    let clock = ManualClock::new();
    // 5 % of one core holds 50 ms: one 100 ms grant leaves 50 ms of debt, 1 s of refill.
    let limiter = Limiter::builder()
        .cores(1.0)
        .burst(ONE_SECOND_FILL)
        .controller(ControllerKind::Fixed(0.05))
        .clock(clock.shared())
        .build()
        .unwrap();
    let held = limiter.try_acquire(&AcquireRequest::new()).unwrap();
    let wakes = Arc::new(Wakes::default());
    let waker = Waker::from(Arc::clone(&wakes));
    let mut waiting = limiter.acquire_async_timeout(&AcquireRequest::new(), 250 * MS);
    assert!(poll(&mut waiting, &waker).is_pending());
    assert_eq!(limiter.snapshot().waiters, 1);
    clock.advance(200 * MS);
    limiter.tick();
    assert_eq!(wakes.0.load(Ordering::SeqCst), 0, "not before the deadline");
    clock.advance(100 * MS); // past the deadline; the bucket is still dry (held grants)
    limiter.tick();
    assert_eq!(wakes.0.load(Ordering::SeqCst), 1, "the tick after the deadline wakes it");
    assert_eq!(limiter.snapshot().waiters, 0);
    match poll(&mut waiting, &waker) {
        Poll::Ready(Err(AcquireError::Timeout(timeout))) => assert_eq!(timeout, 250 * MS),
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert_eq!(limiter.snapshot().total_granted, 100 * MS, "nothing was granted to it");
    drop(held);
}

#[test]
fn a_deadline_already_passed_times_out_on_the_first_poll_and_a_grant_at_hand_wins() {
    let clock = ManualClock::new();
    let limiter = limiter(&clock);
    let mut late = limiter.acquire_async_timeout(&AcquireRequest::new(), Duration::ZERO);
    // Tokens exist: the grant is taken at once, whatever the deadline.
    assert!(matches!(poll(&mut late, Waker::noop()), Poll::Ready(Ok(_))));
    let held: Vec<_> = std::iter::from_fn(|| limiter.try_acquire(&AcquireRequest::new()).ok()).collect();
    let mut dry = limiter.acquire_async_timeout(&AcquireRequest::new(), Duration::ZERO);
    assert!(matches!(poll(&mut dry, Waker::noop()), Poll::Ready(Err(AcquireError::Timeout(_)))));
    assert_eq!(limiter.snapshot().waiters, 0);
    drop(held);
}

#[test]
fn pace_async_with_a_timeout_returns_timeout_without_a_grant() {
    let clock = ManualClock::new();
    let limiter = limiter(&clock);
    let held: Vec<_> = std::iter::from_fn(|| limiter.try_acquire(&AcquireRequest::new()).ok()).collect();
    let mut pacer = Pacer::new(limiter.clone(), AcquireRequest::new()).with_timeout(100 * MS);
    let wakes = Arc::new(Wakes::default());
    let waker = Waker::from(Arc::clone(&wakes));
    let mut pacing = Box::pin(pacer.pace_async());
    assert!(pacing.as_mut().poll(&mut Context::from_waker(&waker)).is_pending());
    clock.advance(100 * MS);
    limiter.tick();
    assert_eq!(wakes.0.load(Ordering::SeqCst), 1);
    assert_eq!(
        pacing.as_mut().poll(&mut Context::from_waker(&waker)),
        Poll::Ready(Err(AcquireError::Timeout(100 * MS)))
    );
    drop(held);
}

#[test]
#[should_panic(expected = "polled after it completed")]
fn polling_a_completed_acquisition_again_panics_instead_of_taking_a_second_grant() {
    let clock = ManualClock::new();
    let limiter = limiter(&clock);
    let mut future = limiter.acquire_async(&AcquireRequest::new());
    let Poll::Ready(Ok(_grant)) = poll(&mut future, Waker::noop()) else { panic!("tokens exist") };
    let _ = poll(&mut future, Waker::noop());
}

/// A waker that records whether the limiter's lock was free when it was called.
struct LockProbe {
    limiter: Mutex<Option<Limiter>>,
    lock_was_free: AtomicBool,
    woken: AtomicBool,
}

impl Wake for LockProbe {
    fn wake(self: Arc<Self>) {
        if let Some(limiter) = self.limiter.lock().unwrap().as_ref() {
            self.lock_was_free.store(limiter.lock_is_free(), Ordering::SeqCst);
        }
        self.woken.store(true, Ordering::SeqCst);
    }
}

#[test]
fn wakers_are_called_after_the_lock_is_released() {
    let clock = ManualClock::new();
    let limiter = limiter(&clock);
    let probe = Arc::new(LockProbe {
        limiter: Mutex::new(Some(limiter.clone())),
        lock_was_free: AtomicBool::new(false),
        woken: AtomicBool::new(false),
    });
    let waker = Waker::from(Arc::clone(&probe));
    // Woken by a returned grant.
    let mut held: Vec<_> = std::iter::from_fn(|| limiter.try_acquire(&AcquireRequest::new()).ok()).collect();
    let mut waiting = limiter.acquire_async(&AcquireRequest::new());
    assert!(poll(&mut waiting, &waker).is_pending());
    drop(held.pop());
    assert!(probe.woken.load(Ordering::SeqCst) && probe.lock_was_free.load(Ordering::SeqCst));
    let Poll::Ready(Ok(kept)) = poll(&mut waiting, &waker) else { panic!("granted") };
    held.push(kept); // every grant out: the bucket is dry
    // Woken by a deadline on a tick.
    probe.woken.store(false, Ordering::SeqCst);
    probe.lock_was_free.store(false, Ordering::SeqCst);
    let mut timing_out = limiter.acquire_async_timeout(&AcquireRequest::new(), MS);
    assert!(poll(&mut timing_out, &waker).is_pending());
    clock.advance(2 * MS);
    limiter.tick();
    assert!(probe.woken.load(Ordering::SeqCst) && probe.lock_was_free.load(Ordering::SeqCst));
    probe.limiter.lock().unwrap().take(); // no cycle through the waker
}

#[test]
fn a_cancelled_waiters_uncollected_grant_goes_back_to_its_tenant_too() {
    let clock = ManualClock::new();
    let limiter = Limiter::builder()
        .cores(1.0)
        .burst(ONE_SECOND_FILL)
        .controller(ControllerKind::Fixed(0.5))
        .clock(clock.shared())
        .build()
        .unwrap();
    let held: Vec<_> = std::iter::from_fn(|| limiter.try_acquire(&AcquireRequest::new()).ok()).collect();
    let tenant = AcquireRequest::new().tenant(7);
    let mut waiting = limiter.acquire_async(&tenant);
    assert!(poll(&mut waiting, Waker::noop()).is_pending());
    drop(held); // the waiter is granted, but never collects
    assert_eq!(limiter.tenant_granted(7), 100 * MS);
    drop(waiting);
    assert_eq!(limiter.tenant_granted(7), Duration::ZERO, "the refund reaches the tenant's total");
    assert_eq!(limiter.snapshot().total_granted, 500 * MS);
}
