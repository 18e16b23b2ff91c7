//! Waiters that give up: dropped futures and timed-out waits leave no waiter and no token behind.

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
