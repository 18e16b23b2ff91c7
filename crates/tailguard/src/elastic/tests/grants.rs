//! Grants and settling up: capacity, refunds, exact debt, panics, blocking waits, config errors.

use super::*;

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
fn a_shorter_burst_holds_less_after_a_pause_at_the_same_rate() {
    // 0.25 of 2 cores fills 0.5 CPU-s per s. A bucket of 1 s holds five 100 ms grants after a
    // pause (`fixed_limiter`); one of 200 ms holds 100 ms: one grant, then one per 200 ms.
    let clock = ManualClock::new();
    let short = Limiter::builder()
        .cores(2.0)
        .controller(ControllerKind::Fixed(0.25))
        .burst(200 * MS)
        .clock(clock.shared())
        .build()
        .unwrap();
    clock.advance(10 * Duration::from_secs(1));
    let mut taken = 0;
    for round in 0..=10 {
        if round > 0 {
            clock.advance(200 * MS);
        }
        for handle in drain(&short) {
            taken += 1;
            clock.advance_cpu(100 * MS); // each grant used in full
            drop(handle);
        }
    }
    // The pause's one grant, then 2 s at 0.5 CPU-s per s: ten more.
    assert_eq!(taken, 11);
    assert_eq!(drain(&fixed_limiter(&clock)).len(), 5);
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
