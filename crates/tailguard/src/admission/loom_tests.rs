//! Loom models of the work queue's concurrent core: the admission word shared by the
//! lock-free path and the locked queue. Run with
//! `RUSTFLAGS="--cfg loom" cargo test -p tailguard --release --lib loom`.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::thread;

use super::*;
use crate::clock::ManualClock;

fn one_slot() -> WorkQueue {
    let config =
        WorkQueueConfig { initial_slots: 1, min_slots: 1, max_slots: 1, cores: 1.0, ..Default::default() };
    WorkQueue::new(config, ManualClock::new().shared()).unwrap()
}

fn poll(future: &mut AdmitFuture) -> Poll<Result<Permit, AdmitError>> {
    Pin::new(future).poll(&mut Context::from_waker(Waker::noop()))
}

#[test]
fn loom_a_release_racing_an_enqueue_is_never_lost() {
    loom::model(|| {
        let queue = one_slot();
        let held = queue.try_admit(&Request::new()).unwrap();
        let releaser = thread::spawn(move || drop(held));
        let mut waiting = queue.admit_async(&Request::new());
        let first = poll(&mut waiting);
        releaser.join().unwrap();
        // Either the slot was free when the request came (the fast path or the locked path
        // took it), or the release saw the waiter and handed the slot on.
        let permit = match first {
            Poll::Ready(Ok(permit)) => permit,
            Poll::Pending => {
                // Admitted by the release itself, before the next poll looks at the queue.
                assert_eq!(queue.snapshot().waiting, 0, "the release did not hand its slot on");
                match poll(&mut waiting) {
                    Poll::Ready(Ok(permit)) => permit,
                    other => panic!("the released slot was lost: {other:?}"),
                }
            }
            Poll::Ready(Err(error)) => panic!("{error}"),
        };
        assert_eq!(queue.used(), 1);
        drop(permit);
        let snapshot = queue.snapshot();
        assert_eq!((snapshot.used, snapshot.waiting), (0, 0));
        assert!(queue.try_admit(&Request::new()).is_ok(), "fast path open again");
    });
}

#[test]
fn loom_a_wait_given_up_while_its_slot_comes_back_leaks_nothing() {
    loom::model(|| {
        let queue = one_slot();
        let held = queue.try_admit(&Request::new()).unwrap();
        let mut waiting = queue.admit_async(&Request::new());
        assert!(poll(&mut waiting).is_pending());
        let releaser = thread::spawn(move || drop(held));
        drop(waiting);
        releaser.join().unwrap();
        let snapshot = queue.snapshot();
        assert_eq!((snapshot.used, snapshot.waiting), (0, 0));
        assert!(queue.try_admit(&Request::new()).is_ok(), "no slot leaked");
    });
}

#[test]
fn loom_concurrent_fast_admissions_never_exceed_the_slots() {
    loom::model(|| {
        let queue = one_slot();
        let inside = std::sync::Arc::new(AtomicUsize::new(0));
        let worker = |queue: WorkQueue, inside: std::sync::Arc<AtomicUsize>| {
            move || {
                if let Ok(permit) = queue.try_admit(&Request::new()) {
                    assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0, "two requests in one slot");
                    inside.fetch_sub(1, Ordering::SeqCst);
                    drop(permit);
                }
            }
        };
        let other = thread::spawn(worker(queue.clone(), inside.clone()));
        worker(queue.clone(), inside)();
        other.join().unwrap();
        assert_eq!(queue.used(), 0);
    });
}

#[test]
fn loom_a_waiter_and_a_fast_admission_share_one_slot() {
    loom::model(|| {
        let queue = one_slot();
        let held = queue.try_admit(&Request::new()).unwrap();
        let mut waiting = queue.admit_async(&Request::new());
        assert!(poll(&mut waiting).is_pending());
        // One thread frees the slot while another tries the fast path: the waiter came first,
        // so the newcomer must not barge in.
        let barger = {
            let queue = queue.clone();
            thread::spawn(move || queue.try_admit(&Request::new()).is_ok())
        };
        drop(held);
        let barged = barger.join().unwrap();
        assert!(!barged, "a newcomer took the slot of a waiter");
        let snapshot = queue.snapshot();
        assert_eq!((snapshot.waiting, snapshot.used), (0, 1), "the release handed its slot to the waiter");
        let Poll::Ready(Ok(permit)) = poll(&mut waiting) else { panic!("the waiter lost its slot") };
        drop(permit);
        assert_eq!(queue.snapshot().used, 0);
    });
}

#[test]
fn loom_an_enqueue_behind_a_waiter_racing_a_release_loses_no_slot() {
    loom::model(|| {
        let queue = one_slot();
        let held = queue.try_admit(&Request::new()).unwrap();
        let mut first = queue.admit_async(&Request::new());
        assert!(poll(&mut first).is_pending());
        // The flag is already set: the second enqueue leaves it as it is, and checks for a free
        // slot with a plain load before it looks at the order, while the slot comes back.
        let releaser = thread::spawn(move || drop(held));
        let mut second = queue.admit_async(&Request::new());
        let second_poll = poll(&mut second);
        releaser.join().unwrap();
        assert!(second_poll.is_pending(), "the second waiter barged past the first");
        let Poll::Ready(Ok(permit)) = poll(&mut first) else { panic!("the released slot was lost") };
        assert_eq!(queue.snapshot().waiting, 1);
        drop(permit);
        let Poll::Ready(Ok(permit)) = poll(&mut second) else {
            panic!("the second waiter never got the slot")
        };
        drop(permit);
        let snapshot = queue.snapshot();
        assert_eq!((snapshot.used, snapshot.waiting), (0, 0));
        assert!(queue.try_admit(&Request::new()).is_ok(), "fast path open again");
    });
}
