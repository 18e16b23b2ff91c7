//! Loom models of the limiter's concurrent parts: a waiter giving up while tokens come back,
//! concurrent settle/acquire, and `stop()` racing blocked and async waiters (no lost wake-up,
//! no lost tokens). Run with
//! `RUSTFLAGS="--cfg loom" cargo test -p tailguard --release --lib loom`.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};

use loom::thread;

use super::*;
use crate::clock::ManualClock;

fn limiter() -> Limiter {
    // Capacity 200 ms of CPU: two 100 ms grants.
    Limiter::builder()
        .cores(1.0)
        .burst(super::tests::ONE_SECOND_FILL)
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

#[test]
fn loom_stop_wakes_a_blocked_waiter() {
    // Loom's condvar waits have no timeout, so a waiter that missed the stop's notification
    // would block forever and loom would report the deadlock.
    loom::model(|| {
        let limiter = limiter();
        let held = [
            limiter.try_acquire(&AcquireRequest::new()).unwrap(),
            limiter.try_acquire(&AcquireRequest::new()).unwrap(),
        ];
        let other = limiter.clone();
        let waiter =
            thread::spawn(move || other.acquire(&AcquireRequest::new()).map(|handle| handle.granted()));
        limiter.stop();
        assert_eq!(waiter.join().unwrap(), Err(AcquireError::Stopped));
        drop(held);
        let snapshot = limiter.snapshot();
        assert_eq!((snapshot.waiters, snapshot.balance_nanos), (0, 200_000_000));
    });
}

#[test]
fn loom_stop_racing_a_returned_grant_settles_every_token() {
    loom::model(|| {
        let limiter = limiter();
        let first = limiter.try_acquire(&AcquireRequest::new()).unwrap();
        let second = limiter.try_acquire(&AcquireRequest::new()).unwrap();
        let other = limiter.clone();
        // Either the returned grant reaches the waiter before the stop, or the waiter is
        // stopped; both end with every token back in the bucket.
        let waiter = thread::spawn(move || other.acquire(&AcquireRequest::new()).map(drop));
        let stopper = {
            let limiter = limiter.clone();
            thread::spawn(move || limiter.stop())
        };
        drop(first);
        let outcome = waiter.join().unwrap();
        stopper.join().unwrap();
        assert!(matches!(outcome, Ok(()) | Err(AcquireError::Stopped)), "{outcome:?}");
        drop(second);
        let snapshot = limiter.snapshot();
        assert_eq!((snapshot.waiters, snapshot.balance_nanos), (0, 200_000_000));
    });
}

/// Records whether it was woken.
#[derive(Default)]
struct WakeFlag(AtomicBool);

impl Wake for WakeFlag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[test]
fn loom_stop_wakes_a_pending_future() {
    loom::model(|| {
        let limiter = limiter();
        let held = [
            limiter.try_acquire(&AcquireRequest::new()).unwrap(),
            limiter.try_acquire(&AcquireRequest::new()).unwrap(),
        ];
        let flag = Arc::new(WakeFlag::default());
        let waker = Waker::from(Arc::clone(&flag));
        let mut cx = Context::from_waker(&waker);
        let mut waiting = limiter.acquire_async(&AcquireRequest::new());
        assert!(std::future::Future::poll(Pin::new(&mut waiting), &mut cx).is_pending());
        let stopper = {
            let limiter = limiter.clone();
            thread::spawn(move || limiter.stop())
        };
        // A poll racing the stop either sees it, or leaves a waker that the stop wakes.
        let raced = std::future::Future::poll(Pin::new(&mut waiting), &mut cx);
        stopper.join().unwrap();
        match raced {
            Poll::Ready(result) => assert_eq!(result.unwrap_err(), AcquireError::Stopped),
            Poll::Pending => {
                assert!(flag.0.load(Ordering::SeqCst), "the stop did not wake the future");
                let result = std::future::Future::poll(Pin::new(&mut waiting), &mut cx);
                assert!(matches!(result, Poll::Ready(Err(AcquireError::Stopped))));
            }
        }
        drop(waiting);
        drop(held);
        let snapshot = limiter.snapshot();
        assert_eq!((snapshot.waiters, snapshot.balance_nanos), (0, 200_000_000));
    });
}

#[test]
fn loom_a_returned_grant_wakes_a_pending_future_outside_the_lock() {
    // Wakers are collected under the lock and called after it: a poll racing the return
    // either takes the grant, or leaves a waker that the return calls.
    loom::model(|| {
        let limiter = limiter();
        let first = limiter.try_acquire(&AcquireRequest::new()).unwrap();
        let second = limiter.try_acquire(&AcquireRequest::new()).unwrap();
        let flag = Arc::new(WakeFlag::default());
        let waker = Waker::from(Arc::clone(&flag));
        let mut cx = Context::from_waker(&waker);
        let mut waiting = limiter.acquire_async(&AcquireRequest::new());
        assert!(std::future::Future::poll(Pin::new(&mut waiting), &mut cx).is_pending());
        let returner = thread::spawn(move || drop(first));
        let raced = std::future::Future::poll(Pin::new(&mut waiting), &mut cx);
        returner.join().unwrap();
        let granted = match raced {
            Poll::Ready(result) => result.unwrap(),
            Poll::Pending => {
                assert!(flag.0.load(Ordering::SeqCst), "the returned grant did not wake the future");
                match std::future::Future::poll(Pin::new(&mut waiting), &mut cx) {
                    Poll::Ready(result) => result.unwrap(),
                    Poll::Pending => panic!("woken, yet not granted"),
                }
            }
        };
        drop(granted);
        drop(second);
        let snapshot = limiter.snapshot();
        assert_eq!((snapshot.waiters, snapshot.balance_nanos), (0, 200_000_000));
    });
}
