//! Stopping: every waiter is woken with `Stopped`, grants in hand still settle.

use super::*;

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
