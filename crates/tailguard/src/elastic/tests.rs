//! Limiter, queue and handle tests on a manual clock.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use super::*;
use crate::clock::{Clock, ManualClock};
use crate::histogram::{WindowConfig, WindowedHistogram};
use crate::order::{Priority, TenantId};

const MS: Duration = Duration::from_millis(1);

/// 25 % of 2 cores: fill 0.5 CPU-s per second, capacity 500 ms of CPU (five 100 ms grants).
fn fixed_limiter(clock: &ManualClock) -> Limiter {
    Limiter::builder()
        .cores(2.0)
        .controller(ControllerKind::Fixed(0.25))
        .clock(clock.shared())
        .build()
        .unwrap()
}

fn drain(limiter: &Limiter) -> Vec<ElasticHandle> {
    std::iter::from_fn(|| limiter.try_acquire(&AcquireRequest::new()).ok()).collect()
}

/// Polls once; a grant, if any, is kept alive in `kept` (an unused handle dropped at once
/// would hand its tokens straight to the next waiter).
fn poll_keep(future: &mut AcquireFuture, kept: &mut Vec<ElasticHandle>) -> bool {
    match poll(future) {
        Poll::Ready(handle) => {
            kept.push(handle);
            true
        }
        Poll::Pending => false,
    }
}

/// Polls once on a limiter that is not stopped.
fn poll(future: &mut AcquireFuture) -> Poll<ElasticHandle> {
    poll_result(future).map(|result| result.expect("the limiter is not stopped"))
}

fn poll_result(future: &mut AcquireFuture) -> Poll<Result<ElasticHandle, AcquireError>> {
    Pin::new(future).poll(&mut Context::from_waker(Waker::noop()))
}

use std::future::Future;

#[test]
fn grants_up_to_capacity_then_refunds_unused() {
    let clock = ManualClock::new();
    let limiter = fixed_limiter(&clock);
    let mut handles = drain(&limiter);
    assert_eq!(handles.len(), 5);
    assert_eq!(limiter.snapshot().balance_nanos, 0);
    // The last grant used 40 ms: 60 ms come back and make room for one more grant.
    clock.advance_cpu(40 * MS);
    drop(handles.pop());
    let snapshot = limiter.snapshot();
    assert_eq!(snapshot.balance_nanos, 60_000_000);
    assert_eq!(snapshot.total_used, 40 * MS);
    assert_eq!(snapshot.total_granted, 500 * MS);
    assert!(limiter.try_acquire(&AcquireRequest::new()).is_ok());
}

#[test]
fn over_use_becomes_exact_debt_paid_by_later_waiters() {
    let clock = ManualClock::new();
    let limiter = fixed_limiter(&clock);
    let mut handles = drain(&limiter);
    let greedy = handles.pop().unwrap();
    drop(handles);
    clock.advance_cpu(300 * MS); // used 300 ms of a 100 ms grant
    drop(greedy);
    // The four untouched grants came back (400 ms), the greedy one charged 200 ms extra.
    assert_eq!(limiter.snapshot().balance_nanos, 200_000_000);
    let mut handles = drain(&limiter);
    assert_eq!(handles.len(), 2);
    // Runaway: both grants see the same 10 s of CPU (the manual clock has one counter), and
    // all of their over-use is debt, however much larger than the 500 ms bucket.
    clock.advance_cpu(10 * Duration::from_secs(1));
    drop(handles.pop());
    drop(handles);
    let snapshot = limiter.snapshot();
    assert_eq!(snapshot.debt, 2 * (10 * Duration::from_secs(1) - 100 * MS));
    // Paid back by waiting: 39.6 s of wall time refills 19.8 s of CPU at 0.5 CPU-s per s.
    clock.advance(39_600 * MS);
    assert!(limiter.try_acquire(&AcquireRequest::new()).is_err());
    clock.advance(MS);
    assert!(limiter.try_acquire(&AcquireRequest::new()).is_ok());
}

#[test]
fn invalid_config_is_a_typed_error() {
    let error = Limiter::builder().share_bounds(0.5, 0.2).build().unwrap_err();
    assert!(matches!(error, ConfigError::ShareBounds { .. }));
    assert!(Limiter::builder().grant(Duration::ZERO).start().is_err());
    let error = Limiter::builder().controller(ControllerKind::Adaptive).build().unwrap_err();
    assert_eq!(error, ConfigError::MissingSignal("adaptive"));
    assert!(error.to_string().contains("latency_window"));
}

#[test]
fn waiters_are_served_by_priority_then_arrival() {
    let clock = ManualClock::new();
    let limiter = fixed_limiter(&clock);
    let held = drain(&limiter);
    let mut low = limiter.acquire_async(&AcquireRequest::new().priority(0));
    let mut high = limiter.acquire_async(&AcquireRequest::new().priority(5));
    let mut high_later = limiter.acquire_async(&AcquireRequest::new().priority(5));
    for future in [&mut low, &mut high, &mut high_later] {
        assert!(poll(future).is_pending());
    }
    assert_eq!(limiter.snapshot().waiters, 3);
    // 100 ms of wall time refills 50 ms: one grant (the balance was 0, now positive).
    let mut kept = Vec::new();
    clock.advance(100 * MS);
    limiter.tick();
    assert!(!poll_keep(&mut high_later, &mut kept));
    assert!(!poll_keep(&mut low, &mut kept));
    assert!(poll_keep(&mut high, &mut kept));
    clock.advance(200 * MS);
    limiter.tick();
    assert!(!poll_keep(&mut low, &mut kept));
    assert!(poll_keep(&mut high_later, &mut kept));
    clock.advance(200 * MS);
    limiter.tick();
    assert!(poll_keep(&mut low, &mut kept));
    drop(held);
}

#[test]
fn dropped_futures_leave_the_queue_clean_and_leak_no_tokens() {
    let clock = ManualClock::new();
    let limiter = fixed_limiter(&clock);
    let held = drain(&limiter);
    let mut waiting = limiter.acquire_async(&AcquireRequest::new());
    let mut granted_uncollected = limiter.acquire_async(&AcquireRequest::new().priority(1));
    assert!(poll(&mut waiting).is_pending());
    assert!(poll(&mut granted_uncollected).is_pending());
    clock.advance(2 * MS);
    limiter.tick(); // granted to the priority-1 future, not yet collected
    let before = limiter.snapshot();
    assert_eq!(before.waiters, 1);
    drop(granted_uncollected); // refunded: the grant passes to the other waiter
    assert_eq!(limiter.snapshot().total_granted, before.total_granted);
    assert!(poll(&mut waiting).is_ready());
    drop(waiting);
    drop(held);
    let after = limiter.snapshot();
    assert_eq!(after.waiters, 0);
    // Nothing used: the full second of fill is back, no more, no less.
    assert_eq!(after.balance_nanos, 500_000_000);
    assert_eq!(after.total_used, Duration::ZERO);
}

#[test]
fn tenants_share_fairly_within_a_priority() {
    let clock = ManualClock::new();
    let limiter = fixed_limiter(&clock);
    let held = drain(&limiter);
    // Tenant 1 queues 30 waiters before tenant 2 queues 10.
    let mut futures: Vec<(u64, AcquireFuture)> = (0..30)
        .map(|_| (1, limiter.acquire_async(&AcquireRequest::new().tenant(1))))
        .chain((0..10).map(|_| (2, limiter.acquire_async(&AcquireRequest::new().tenant(2)))))
        .collect();
    for (_, future) in &mut futures {
        assert!(poll(future).is_pending());
    }
    let mut served = [0u32; 3];
    let mut kept = Vec::new();
    for _ in 0..20 {
        clock.advance(200 * MS); // 100 ms of CPU: one grant
        limiter.tick();
        futures.retain_mut(|(tenant, future)| match poll(future) {
            Poll::Ready(handle) => {
                served[*tenant as usize] += 1;
                kept.push(handle);
                false
            }
            Poll::Pending => true,
        });
    }
    // Arrival order alone would give all 20 grants to tenant 1's 30 earlier waiters; fair
    // sharing alternates between the tenants (ties go to arrival).
    assert_eq!(served[1] + served[2], 20);
    assert_eq!(served, [0, 10, 10]);
    drop(held);
}

/// A clock that counts CPU-clock reads.
#[derive(Debug)]
struct CountingClock {
    inner: ManualClock,
    cpu_reads: AtomicU64,
}

impl Clock for CountingClock {
    fn now_nanos(&self) -> u64 {
        self.inner.now_nanos()
    }
    fn thread_cpu_nanos(&self) -> u64 {
        self.cpu_reads.fetch_add(1, Ordering::Relaxed);
        self.inner.thread_cpu_nanos()
    }
}

fn counting_limiter() -> (Limiter, Arc<CountingClock>) {
    let clock = Arc::new(CountingClock { inner: ManualClock::new(), cpu_reads: AtomicU64::new(0) });
    let limiter = Limiter::builder()
        .cores(2.0)
        .controller(ControllerKind::Fixed(0.5))
        .clock(clock.clone())
        .build()
        .unwrap();
    (limiter, clock)
}

#[test]
fn over_limit_reads_the_cpu_clock_about_once_per_millisecond() {
    let (limiter, clock) = counting_limiter();
    let handle = limiter.try_acquire(&AcquireRequest::new()).unwrap();
    let reads_before = clock.cpu_reads.load(Ordering::Relaxed);
    let mut iterations = 0u64;
    loop {
        iterations += 1;
        clock.inner.advance_cpu(Duration::from_micros(1)); // 1 µs per iteration
        if handle.over_limit() {
            break;
        }
    }
    let reads = clock.cpu_reads.load(Ordering::Relaxed) - reads_before;
    // 100 ms at 1 µs per iteration; overshoot at most a few iterations.
    assert!((100_000..=100_010).contains(&iterations), "{iterations}");
    // ~100 reads at 1 ms each, plus the ramp-up (doubling from 1) and the end-of-grant ones.
    assert!(reads < 200, "{reads} clock reads for {iterations} iterations");
    assert!(handle.used() >= 100 * MS && handle.used() <= 100 * MS + Duration::from_micros(10));
}

#[test]
fn yield_every_checks_the_clock_at_the_yield_interval() {
    let (limiter, clock) = counting_limiter();
    let request = AcquireRequest::new().yield_every(Duration::from_micros(250));
    assert_eq!(request.yield_every, Some(Duration::from_micros(250)));
    let handle = limiter.try_acquire(&request).unwrap();
    let reads_before = clock.cpu_reads.load(Ordering::Relaxed);
    let mut iterations = 0u64;
    loop {
        iterations += 1;
        clock.inner.advance_cpu(Duration::from_micros(1));
        if handle.over_limit() {
            break;
        }
    }
    let reads = clock.cpu_reads.load(Ordering::Relaxed) - reads_before;
    assert!((100_000..=100_010).contains(&iterations), "{iterations}");
    // 400 yields (and clock reads) at 250 µs each, plus the ramp-up: four times the default.
    assert!((400..600).contains(&reads), "{reads} clock reads");
    // Out-of-range intervals are clamped.
    assert_eq!(
        AcquireRequest::new().yield_every(Duration::ZERO).yield_every,
        Some(Duration::from_micros(10))
    );
    assert_eq!(
        AcquireRequest::new().yield_every(Duration::from_secs(1)).yield_every,
        Some(Duration::from_millis(1))
    );
}

#[test]
fn over_limit_shrinks_its_interval_when_iterations_slow_down() {
    let (limiter, clock) = counting_limiter();
    let handle = limiter.try_acquire(&AcquireRequest::new()).unwrap();
    let mut cost = Duration::from_micros(1);
    loop {
        if handle.used() > 10 * MS {
            cost = Duration::from_micros(100); // iterations become 100× slower
        }
        clock.inner.advance_cpu(cost);
        if handle.over_limit() {
            break;
        }
    }
    // Once the estimator re-learns, checks land every ~1 ms and the overshoot is at most one
    // slow iteration past the grant.
    let used = handle.used();
    assert!(used <= 100 * MS + Duration::from_micros(100), "{used:?}");
}

#[test]
fn start_timer_charges_pre_work_without_eating_the_grant() {
    let clock = ManualClock::new();
    let limiter = fixed_limiter(&clock);
    let handle = limiter.try_acquire(&AcquireRequest::new().grant(10 * MS)).unwrap();
    clock.advance_cpu(30 * MS); // pre-work: resolving locks
    handle.start_timer();
    assert!(!handle.over_limit());
    clock.advance_cpu(9 * MS);
    assert!(!handle.over_limit());
    clock.advance_cpu(MS);
    assert!(handle.over_limit());
    assert_eq!(handle.used(), 40 * MS);
    drop(handle);
    assert_eq!(limiter.snapshot().total_used, 40 * MS);
    // Charged 30 ms over the 10 ms grant: capacity 500 ms - 40 ms.
    assert_eq!(limiter.snapshot().balance_nanos, 460_000_000);
}

#[test]
fn a_panic_in_elastic_work_returns_its_grant() {
    let clock = ManualClock::new();
    let limiter = fixed_limiter(&clock);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _handle = limiter.try_acquire(&AcquireRequest::new()).unwrap();
        clock.advance_cpu(20 * MS);
        panic!("elastic work failed");
    }));
    assert!(result.is_err());
    let snapshot = limiter.snapshot();
    assert_eq!(snapshot.total_used, 20 * MS);
    assert_eq!(snapshot.balance_nanos, 480_000_000);
    assert_eq!(drain(&limiter).len(), 5);
}

#[test]
fn blocking_acquire_is_woken_by_returned_tokens() {
    let clock = ManualClock::new();
    let limiter = fixed_limiter(&clock);
    let mut held = drain(&limiter);
    let waiter = {
        let limiter = limiter.clone();
        std::thread::spawn(move || limiter.acquire(&AcquireRequest::new()).unwrap().granted())
    };
    while limiter.snapshot().waiters == 0 {
        std::thread::yield_now();
    }
    drop(held.pop()); // unused: 100 ms back, granted to the waiter
    assert_eq!(waiter.join().unwrap(), 100 * MS);
    assert_eq!(limiter.snapshot().waiters, 0);
}

#[test]
fn a_timed_out_wait_leaves_the_queue_clean() {
    let clock = ManualClock::new();
    let limiter = fixed_limiter(&clock);
    let held = drain(&limiter);
    let error = limiter.acquire_timeout(&AcquireRequest::new(), Duration::ZERO).unwrap_err();
    assert_eq!(error, AcquireError::Timeout(Duration::ZERO));
    assert_eq!(limiter.snapshot().waiters, 0);
    assert!(matches!(limiter.try_acquire(&AcquireRequest::new()), Err(AcquireError::WouldBlock)));
    drop(held);
}

/// An adaptive limiter on 2 cores starting at a 50 % share, steered by a default window; both
/// on `clock`.
fn windowed_limiter(clock: &ManualClock) -> (Arc<WindowedHistogram>, Limiter) {
    let window = Arc::new(WindowedHistogram::with_clock(WindowConfig::DEFAULT, clock.shared()).unwrap());
    let limiter = Limiter::builder()
        .cores(2.0)
        .initial_share(0.5)
        .clock(clock.shared())
        .latency_window(window.clone())
        .build()
        .unwrap();
    (window, limiter)
}

#[test]
fn blind_start_grants_at_the_floor_until_the_window_is_warm() {
    let clock = ManualClock::new();
    let (window, limiter) = windowed_limiter(&clock);
    // Warm once the window holds `WARM_SPAN` (1 s) of samples, ten ticks.
    for _ in 0..9 {
        window.record(Duration::from_micros(200));
        clock.advance(100 * MS);
        assert_eq!(limiter.tick(), 0.05);
    }
    let snapshot = limiter.snapshot();
    assert!(!snapshot.warm);
    assert_eq!(snapshot.share, 0.05);
    for _ in 0..21 {
        window.record(Duration::from_micros(200));
        clock.advance(100 * MS);
        limiter.tick();
    }
    let snapshot = limiter.snapshot();
    assert!(snapshot.warm);
    assert!(snapshot.share >= 0.45, "{}", snapshot.share);
    assert!(snapshot.latest_p99.unwrap() < MS);
    assert_eq!(limiter.history().len(), 30);
}

#[test]
fn the_limiter_steps_down_when_latency_is_over_target() {
    let clock = ManualClock::new();
    let window = Arc::new(WindowedHistogram::with_clock(WindowConfig::DEFAULT, clock.shared()).unwrap());
    let limiter = Limiter::builder()
        .cores(2.0)
        .initial_share(0.5)
        .controller(ControllerKind::Reference)
        .clock(clock.shared())
        .latency_window(window.clone())
        .build()
        .unwrap();
    for _ in 0..30 {
        window.record(5 * MS);
        clock.advance(100 * MS);
        limiter.tick();
    }
    let history = limiter.history();
    let warm_ticks = history.iter().filter(|t| t.share > 0.05).count();
    // Warm from tick 10 on (1 s of samples): -0.02 % per tick from 0.5 for 21 ticks.
    assert_eq!(warm_ticks, 21);
    let last = history.last().unwrap();
    assert!((last.share - (0.5 - 21.0 * 0.0002)).abs() < 1e-9, "{}", last.share);
}

#[test]
fn permanent_overload_still_grants_at_the_floor() {
    let clock = ManualClock::new();
    let window = Arc::new(WindowedHistogram::with_clock(WindowConfig::DEFAULT, clock.shared()).unwrap());
    let limiter = Limiter::builder()
        .cores(2.0)
        .initial_share(0.75)
        .clock(clock.shared())
        .latency_window(window.clone())
        .build()
        .unwrap();
    let mut granted = Duration::ZERO;
    for tick in 0..600 {
        window.record(Duration::from_millis(50)); // 50× over target, forever
        clock.advance(100 * MS);
        limiter.tick();
        while let Ok(handle) = limiter.try_acquire(&AcquireRequest::new().grant(10 * MS)) {
            if tick >= 100 {
                granted += handle.granted();
            }
            clock.advance_cpu(10 * MS);
        }
        if tick >= 100 {
            assert_eq!(limiter.snapshot().share, 0.05, "tick {tick}");
        }
    }
    // From tick 100 on: 50 s at 5 % of 2 cores = 5 s of CPU, give or take the bucket's
    // 0.1 s capacity and one grant: the floor keeps elastic work going.
    assert!((granted.as_secs_f64() - 5.0).abs() <= 0.11, "{granted:?}");
}

#[test]
fn a_handle_moved_to_another_thread_rebaselines_instead_of_charging_garbage() {
    let clock = ManualClock::new();
    let limiter = fixed_limiter(&clock);
    let handle = limiter.try_acquire(&AcquireRequest::new()).unwrap();
    clock.advance_cpu(5 * MS);
    assert!(!handle.over_limit());
    assert_eq!(handle.used_at_last_check(), 5 * MS);
    let moved_clock = clock.clone();
    let handle = std::thread::spawn(move || {
        // The other thread's CPU clock has an unrelated origin: the first check there only
        // re-baselines; CPU from then on counts.
        moved_clock.advance_cpu(3 * MS);
        assert!(!handle.over_limit());
        assert_eq!(handle.used_at_last_check(), 5 * MS);
        moved_clock.advance_cpu(2 * MS);
        assert_eq!(handle.used(), 7 * MS);
        handle
    })
    .join()
    .unwrap();
    drop(handle);
    assert_eq!(limiter.snapshot().total_used, 7 * MS);
}

mod cancellation_property {
    use super::*;
    use proptest::prelude::*;

    #[derive(Clone, Debug)]
    enum Op {
        Enqueue { priority: i8, tenant: Option<u64> },
        Poll(usize),
        DropFuture(usize),
        DropHandle(usize),
        Advance(u64),
        Tick,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0..3i8, proptest::option::of(0..3u64))
                .prop_map(|(priority, tenant)| Op::Enqueue { priority, tenant }),
            (0..16usize).prop_map(Op::Poll),
            (0..16usize).prop_map(Op::DropFuture),
            (0..16usize).prop_map(Op::DropHandle),
            (0..300u64).prop_map(Op::Advance),
            Just(Op::Tick),
        ]
    }

    proptest! {
        /// Whatever mix of waits, grants, cancellations and releases happens, once everything
        /// is dropped the queue is empty and every unused nanosecond is back in the bucket.
        #[test]
        fn cancellation_never_leaks(ops in proptest::collection::vec(op(), 1..80)) {
            let clock = ManualClock::new();
            let limiter = fixed_limiter(&clock);
            let mut futures: Vec<(i8, AcquireFuture)> = Vec::new(); // (priority, future)
            let mut handles: Vec<ElasticHandle> = drain(&limiter);
            let mut collected = Duration::ZERO;
            for op in ops {
                match op {
                    Op::Enqueue { priority, tenant } => {
                        let priority_level = Priority::new(priority);
                        let tenant = tenant.map_or(TenantId::DEFAULT, TenantId);
                        let request =
                            AcquireRequest { priority: priority_level, tenant, grant: None, yield_every: None };
                        futures.push((priority, limiter.acquire_async(&request)));
                    }
                    Op::Poll(i) if !futures.is_empty() => {
                        let i = i % futures.len();
                        if let Poll::Ready(handle) = poll(&mut futures[i].1) {
                            drop(futures.remove(i));
                            collected += handle.granted();
                            handles.push(handle);
                        }
                    }
                    Op::DropFuture(i) if !futures.is_empty() => {
                        let i = i % futures.len();
                        drop(futures.remove(i));
                    }
                    Op::DropHandle(i) if !handles.is_empty() => {
                        let i = i % handles.len();
                        handles.remove(i);
                    }
                    Op::Advance(ms) => clock.advance(Duration::from_millis(ms)),
                    Op::Tick => {
                        limiter.tick();
                    }
                    _ => {}
                }
            }
            futures.clear();
            handles.clear();
            let snapshot = limiter.snapshot();
            prop_assert_eq!(snapshot.waiters, 0);
            prop_assert_eq!(snapshot.balance_nanos, 500_000_000);
            prop_assert_eq!(snapshot.total_used, Duration::ZERO);
            // Granted = the initial drain plus what was collected: nothing granted was lost.
            prop_assert_eq!(snapshot.total_granted, 500 * MS + collected);
        }
    }
}

#[test]
fn tenant_weights_split_grants_in_proportion() {
    let clock = ManualClock::new();
    let limiter = Limiter::builder()
        .cores(2.0)
        .controller(ControllerKind::Fixed(0.25))
        .tenant_weight(7, std::num::NonZeroU32::new(3).unwrap())
        .clock(clock.shared())
        .build()
        .unwrap();
    let held = drain(&limiter);
    let mut futures: Vec<(u64, AcquireFuture)> = (0..50)
        .flat_map(|_| [7, 8])
        .map(|tenant| (tenant, limiter.acquire_async(&AcquireRequest::new().tenant(tenant))))
        .collect();
    for (_, future) in &mut futures {
        assert!(poll(future).is_pending());
    }
    let mut served = HashMapCount::default();
    let mut kept = Vec::new();
    for _ in 0..40 {
        clock.advance(200 * MS);
        limiter.tick();
        futures.retain_mut(|(tenant, future)| !(poll_keep(future, &mut kept) && served.add(*tenant)));
    }
    assert_eq!(served.get(7) + served.get(8), 40);
    assert!((29..=31).contains(&served.get(7)), "weight 3 got {} of 40", served.get(7));
    drop(held);
}

#[derive(Default)]
struct HashMapCount(std::collections::HashMap<u64, u32>);

impl HashMapCount {
    fn add(&mut self, key: u64) -> bool {
        *self.0.entry(key).or_default() += 1;
        true
    }
    fn get(&self, key: u64) -> u32 {
        self.0.get(&key).copied().unwrap_or(0)
    }
}

// Stopping the limiter: every waiter is woken with `Stopped`, grants in hand still settle.

#[test]
fn stop_refuses_every_acquisition_and_grants_in_hand_still_settle() {
    let clock = ManualClock::new();
    let limiter = fixed_limiter(&clock);
    let held = limiter.try_acquire(&AcquireRequest::new()).unwrap();
    clock.advance_cpu(30 * MS);
    assert!(!limiter.is_stopped());
    limiter.stop();
    assert!(limiter.is_stopped());
    let request = AcquireRequest::new();
    assert_eq!(limiter.try_acquire(&request).unwrap_err(), AcquireError::Stopped);
    assert_eq!(limiter.acquire(&request).unwrap_err(), AcquireError::Stopped);
    assert_eq!(limiter.acquire_timeout(&request, Duration::from_secs(5)).unwrap_err(), AcquireError::Stopped);
    let mut future = limiter.acquire_async(&request);
    assert!(matches!(poll_result(&mut future), Poll::Ready(Err(AcquireError::Stopped))));
    assert!(AcquireError::Stopped.to_string().contains("stopped"));
    // The grant from before the stop keeps working and settles on drop: 30 ms used, 70 back.
    assert!(!held.over_limit());
    drop(held);
    limiter.stop(); // idempotent
    let snapshot = limiter.snapshot();
    assert_eq!(snapshot.total_used, 30 * MS);
    assert_eq!(snapshot.total_granted, 100 * MS);
    assert_eq!(snapshot.balance_nanos, 500_000_000 - 30_000_000);
    assert_eq!(snapshot.waiters, 0);
}

#[test]
fn stop_wakes_a_blocked_thread() {
    let clock = ManualClock::new();
    let limiter = fixed_limiter(&clock);
    let held = drain(&limiter);
    let waiter = {
        let limiter = limiter.clone();
        std::thread::spawn(move || limiter.acquire(&AcquireRequest::new()).map(|handle| handle.granted()))
    };
    // The manual clock never moves, so nothing but the stop can end this wait.
    while limiter.snapshot().waiters == 0 {
        std::thread::yield_now();
    }
    limiter.stop();
    assert_eq!(waiter.join().unwrap(), Err(AcquireError::Stopped));
    assert_eq!(limiter.snapshot().waiters, 0);
    drop(held);
    assert_eq!(limiter.snapshot().balance_nanos, 500_000_000);
}

#[test]
fn stop_wakes_a_blocked_timed_wait_and_a_blocked_pacer() {
    let clock = ManualClock::new();
    let limiter = fixed_limiter(&clock);
    let held = drain(&limiter);
    let waiters: Vec<_> = (0..2)
        .map(|i| {
            let limiter = limiter.clone();
            std::thread::spawn(move || {
                if i == 0 {
                    limiter.acquire_timeout(&AcquireRequest::new(), Duration::from_secs(3600)).map(drop)
                } else {
                    Pacer::new(limiter, AcquireRequest::new()).pace()
                }
            })
        })
        .collect();
    while limiter.snapshot().waiters < 2 {
        std::thread::yield_now();
    }
    limiter.stop();
    for waiter in waiters {
        assert_eq!(waiter.join().unwrap(), Err(AcquireError::Stopped));
    }
    drop(held);
    assert_eq!(limiter.snapshot().balance_nanos, 500_000_000);
}

#[test]
fn a_grant_handed_out_before_the_stop_is_still_collected() {
    let clock = ManualClock::new();
    let limiter = fixed_limiter(&clock);
    let mut held = drain(&limiter);
    let mut first = limiter.acquire_async(&AcquireRequest::new());
    let mut second = limiter.acquire_async(&AcquireRequest::new());
    assert!(poll(&mut first).is_pending());
    assert!(poll(&mut second).is_pending());
    drop(held.pop()); // 100 ms back: granted to `first`, not collected yet
    limiter.stop();
    let collected = match poll_result(&mut first) {
        Poll::Ready(Ok(handle)) => handle,
        other => panic!("the grant made before the stop was lost: {other:?}"),
    };
    assert!(matches!(poll_result(&mut second), Poll::Ready(Err(AcquireError::Stopped))));
    drop((first, second, held));
    clock.advance_cpu(10 * MS); // the manual CPU clock is shared: only `collected` is alive
    drop(collected);
    let snapshot = limiter.snapshot();
    assert_eq!(snapshot.balance_nanos, 500_000_000 - 10_000_000);
    assert_eq!(snapshot.total_used, 10 * MS);
    assert_eq!(snapshot.waiters, 0);
}

#[test]
fn dropping_the_last_limiter_stops_its_waiters() {
    let clock = ManualClock::new();
    let limiter = fixed_limiter(&clock);
    let held = drain(&limiter);
    let mut waiting = limiter.acquire_async(&AcquireRequest::new());
    assert!(poll(&mut waiting).is_pending());
    drop(limiter);
    assert!(matches!(poll_result(&mut waiting), Poll::Ready(Err(AcquireError::Stopped))));
    drop(held); // settles against the stopped limiter without a panic
}

#[test]
fn a_pacer_uses_up_its_grant_in_hand_then_reports_the_stop() {
    let clock = ManualClock::new();
    let limiter = fixed_limiter(&clock);
    let mut pacer = Pacer::new(limiter.clone(), AcquireRequest::new().grant(10 * MS));
    assert_eq!(pacer.pace(), Ok(()));
    limiter.stop();
    clock.advance_cpu(5 * MS);
    assert_eq!(pacer.pace(), Ok(()), "half of the grant in hand is left");
    clock.advance_cpu(5 * MS);
    assert_eq!(pacer.pace(), Err(AcquireError::Stopped));
    assert!(pacer.handle().is_none(), "the spent grant was settled");
    let mut cx = Context::from_waker(Waker::noop());
    let result = std::pin::pin!(pacer.pace_async()).poll(&mut cx);
    assert_eq!(result, Poll::Ready(Err(AcquireError::Stopped)));
    let snapshot = limiter.snapshot();
    assert_eq!((snapshot.total_granted, snapshot.total_used), (10 * MS, 10 * MS));
}

#[test]
fn stop_wakes_an_async_waiter_on_a_current_thread_runtime() {
    // Paused time: if the stop did not wake the waiter the runtime would be idle, its clock
    // would jump to the guard's deadline at once, and the test would fail without waiting.
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap();
    let clock = ManualClock::new();
    let limiter = fixed_limiter(&clock);
    let held = drain(&limiter);
    let outcome = runtime.block_on(async {
        let waiter = tokio::spawn({
            let limiter = limiter.clone();
            async move {
                let mut pacer = Pacer::new(limiter.clone(), AcquireRequest::new());
                let paced = pacer.pace_async().await;
                (limiter.acquire_async(&AcquireRequest::new()).await.map(drop), paced)
            }
        });
        while limiter.snapshot().waiters == 0 {
            tokio::task::yield_now().await;
        }
        limiter.stop();
        tokio::time::timeout(Duration::from_secs(3600), waiter).await
    });
    let (acquired, paced) = outcome.expect("the stop woke the waiting task").unwrap();
    assert_eq!(paced, Err(AcquireError::Stopped));
    assert_eq!(acquired, Err(AcquireError::Stopped));
    drop(held);
    assert_eq!(limiter.snapshot().waiters, 0);
}

#[test]
fn the_adaptive_limiter_holds_once_the_recent_part_of_the_window_recovers() {
    let clock = ManualClock::new();
    let (window, limiter) = windowed_limiter(&clock);
    let tick_with = |latency: Duration| {
        for _ in 0..300 {
            window.record(latency);
        }
        clock.advance(100 * MS);
        limiter.tick()
    };
    // Warm after 1 s of samples; 5 ms is over the 1 ms target: the share is cut, twice.
    for _ in 0..11 {
        tick_with(5 * MS);
    }
    let snapshot = limiter.snapshot();
    let cut = snapshot.share;
    assert!(cut < 0.5, "{cut}");
    // Nothing was granted: the bucket was full, and the second cut forfeited its unspent tokens.
    assert_eq!(snapshot.balance_nanos, 0);
    // Good latency from here: cuts go on while the recent part (500 ms) still holds bad
    // samples, then the share holds though the whole window is still over target.
    let shares: Vec<f64> = (0..8).map(|_| tick_with(Duration::from_micros(100))).collect();
    assert!(shares[0] < cut && shares[3] < shares[0], "{shares:?}");
    assert_eq!(shares[4], shares[7], "{shares:?}");
    assert!(limiter.snapshot().latest_p99.unwrap() > Duration::from_millis(1));
}
