//! Loom models of the limiter's concurrent parts: a waiter giving up while tokens come back,
//! and concurrent settle/acquire. Run with
//! `RUSTFLAGS="--cfg loom" cargo test -p tailguard --release --lib loom`.

use std::pin::Pin;
use std::task::{Context, Waker};

use loom::thread;

use super::*;
use crate::clock::ManualClock;

fn limiter() -> Limiter {
    // Capacity 200 ms of CPU: two 100 ms grants.
    Limiter::builder()
        .cores(1.0)
        .controller(ControllerKind::Fixed(0.2))
        .clock(ManualClock::new().shared())
        .build()
        .unwrap()
}

#[test]
fn loom_cancel_racing_a_grant_leaks_nothing() {
    loom::model(|| {
        let limiter = limiter();
        let first = limiter.try_acquire(&AcquireRequest::new()).unwrap();
        let second = limiter.try_acquire(&AcquireRequest::new()).unwrap();
        let mut waiting = limiter.acquire_async(&AcquireRequest::new());
        let mut cx = Context::from_waker(Waker::noop());
        assert!(std::future::Future::poll(Pin::new(&mut waiting), &mut cx).is_pending());
        // One thread returns a grant (which may hand it to the waiter) while the waiter gives up.
        let returner = thread::spawn(move || drop(first));
        drop(waiting);
        returner.join().unwrap();
        drop(second);
        let snapshot = limiter.snapshot();
        assert_eq!(snapshot.waiters, 0);
        assert_eq!(snapshot.balance_nanos, 200_000_000);
        assert_eq!(snapshot.total_granted, std::time::Duration::from_millis(200));
    });
}

#[test]
fn loom_concurrent_acquire_and_settle_conserve_tokens() {
    loom::model(|| {
        let limiter = limiter();
        let held = limiter.try_acquire(&AcquireRequest::new()).unwrap();
        let other = limiter.clone();
        let taker = thread::spawn(move || {
            let a = other.try_acquire(&AcquireRequest::new()).is_ok();
            let b = other.try_acquire(&AcquireRequest::new()).is_ok();
            usize::from(a) + usize::from(b)
        });
        drop(held);
        let taken = taker.join().unwrap();
        // The second slot is always free; the first one only once `held` is back.
        assert!((1..=2).contains(&taken));
        let snapshot = limiter.snapshot();
        assert_eq!(snapshot.balance_nanos, 200_000_000);
        assert_eq!(snapshot.waiters, 0);
    });
}
