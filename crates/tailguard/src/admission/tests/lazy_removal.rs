//! Waiters leaving from the middle of their lists: stale keys never name a new waiter.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::task::Wake;

use super::*;

#[test]
fn a_reused_entry_inherits_neither_the_place_nor_the_deadline_of_a_cancelled_waiter() {
    let clock = ManualClock::new();
    let queue = fixed(&clock, 1);
    let mut held = queue.try_admit(&Request::new()).unwrap();
    let given_up = pending(&queue, Request::new().priority(Priority::HIGH).deadline(queue.deadline_in(MS)));
    let mut futures = vec![(0, pending(&queue, Request::new()))];
    drop(given_up);
    // The next waiter takes the freed entry; the cancelled one's key is still in the HIGH
    // list and in the deadline queue.
    futures.push((1, pending(&queue, Request::new().priority(Priority::LOW))));
    clock.advance(2 * MS);
    queue.tick();
    let snapshot = queue.snapshot();
    assert_eq!(snapshot.total_rejected.deadline_exceeded, 0, "a stale deadline expired a waiter");
    assert_eq!(snapshot.total_cancelled, 1);
    assert_eq!(snapshot.waiting_by_priority, vec![(Priority::NORMAL, 1), (Priority::LOW, 1)]);
    assert_eq!(hand_over(&mut held, &mut futures), 0, "a stale HIGH key promoted nobody");
    assert_eq!(hand_over(&mut held, &mut futures), 1);
    // Many rounds through the same entries: every arrival is admitted exactly once.
    for round in 2..200 {
        let gone = pending(&queue, tenant(round % 3).deadline(queue.deadline_in(MS)));
        futures.push((round as usize, pending(&queue, tenant(round % 3))));
        drop(gone);
        clock.advance(MS);
        assert_eq!(hand_over(&mut held, &mut futures), round as usize);
    }
    let snapshot = queue.snapshot();
    assert_eq!((snapshot.waiting, snapshot.total_rejected.deadline_exceeded), (0, 0));
    assert_eq!(snapshot.total_cancelled, 199);
}

#[test]
fn counts_stay_exact_while_waiters_leave_from_the_middle() {
    let clock = ManualClock::new();
    let queue = fixed(&clock, 1);
    let mut held = queue.try_admit(&Request::new()).unwrap();
    let priorities = [Priority::LOW, Priority::NORMAL, Priority::HIGH];
    // (label, tenant, priority, expires)
    let mut model: Vec<(usize, u64, Priority, bool)> = Vec::new();
    let mut futures = Vec::new();
    for i in 0..120 {
        let (tenant_id, priority, expires) = (i as u64 % 3, priorities[i / 3 % 3], i % 7 == 0);
        let mut request = tenant(tenant_id).priority(priority);
        if expires {
            request = request.deadline(queue.deadline_in(5 * MS));
        }
        futures.push((i, pending(&queue, request)));
        model.push((i, tenant_id, priority, expires));
    }
    let check = |model: &[(usize, u64, Priority, bool)]| {
        let snapshot = queue.snapshot();
        assert_eq!(snapshot.waiting, model.len());
        // Highest first.
        let by_priority: Vec<(Priority, usize)> = priorities
            .iter()
            .rev()
            .map(|&p| (p, model.iter().filter(|w| w.2 == p).count()))
            .filter(|&(_, n)| n > 0)
            .collect();
        assert_eq!(snapshot.waiting_by_priority, by_priority);
        for t in &snapshot.tenants {
            assert_eq!(t.waiting, model.iter().filter(|w| w.1 == t.tenant.0).count(), "{t:?}");
        }
    };
    check(&model);
    // Every third waiter gives up: most are neither the oldest nor the newest of their list.
    futures.retain(|(label, _)| label % 3 != 1);
    model.retain(|w| w.0 % 3 != 1);
    check(&model);
    // Deadlines pass: those waiters fail at the tick, wherever they stand.
    clock.advance(5 * MS);
    queue.tick();
    let mut expired = 0;
    futures.retain_mut(|(label, future)| match poll(future) {
        Poll::Ready(Err(AdmitError::DeadlineExceeded { .. })) => {
            expired += 1;
            false
        }
        Poll::Pending => true,
        other => panic!("waiter {label}: {other:?}"),
    });
    model.retain(|w| !w.3);
    assert_eq!(expired, 120 / 7 + 1 - (0..120).filter(|i| i % 7 == 0 && i % 3 == 1).count());
    check(&model);
    // The rest are admitted one by one, the counts following each admission.
    while !model.is_empty() {
        let label = hand_over(&mut held, &mut futures);
        model.retain(|w| w.0 != label);
        check(&model);
    }
    assert!(queue.snapshot().tenants.iter().all(|t| t.waiting == 0));
}

#[test]
fn lifo_under_overload_skips_newest_waiters_that_left() {
    let clock = ManualClock::new();
    let (queue, mut held, mut futures) = lifo_with_four_waiters(&clock);
    clock.advance(2 * MS); // the oldest waited 6 ms: overload
    futures.retain(|(label, _)| *label != 3); // the newest gives up
    assert_eq!(hand_over(&mut held, &mut futures), 2, "the newest still waiting");
    // A newer one comes and goes, with a deadline that then passes.
    let mut late = pending(&queue, Request::new().deadline(queue.deadline_in(MS)));
    clock.advance(MS);
    queue.tick();
    assert!(matches!(poll(&mut late), Poll::Ready(Err(AdmitError::DeadlineExceeded { .. }))));
    assert_eq!(hand_over(&mut held, &mut futures), 1);
    assert_eq!(hand_over(&mut held, &mut futures), 0);
    let snapshot = queue.snapshot();
    assert_eq!((snapshot.waiting, snapshot.total_cancelled), (0, 1));
}

/// A waker that takes the queue's lock when woken: it would deadlock if woken under it.
struct LockingWaker {
    queue: WorkQueue,
    woken: AtomicUsize,
}

impl Wake for LockingWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let _ = self.queue.snapshot();
        self.woken.fetch_add(1, Ordering::SeqCst);
    }
}

/// Runs `step` on another thread; false if it never finishes (deadlocked).
fn finishes(step: impl FnOnce() + Send + 'static) -> bool {
    let (done, finished) = mpsc::channel();
    std::thread::spawn(move || {
        step();
        let _ = done.send(());
    });
    // Generous: this only turns a deadlock into a failure, it times nothing.
    finished.recv_timeout(Duration::from_secs(60)).is_ok()
}

#[test]
fn wakers_run_after_the_lock_is_released() {
    let clock = ManualClock::new();
    let queue = fixed(&clock, 1);
    let held = queue.try_admit(&Request::new()).unwrap();
    let probe = Arc::new(LockingWaker { queue: queue.clone(), woken: AtomicUsize::new(0) });
    let waker = Waker::from(probe.clone());
    let mut cx = Context::from_waker(&waker);
    let mut admitted = queue.admit_async(&Request::new());
    let mut expiring = queue.admit_async(&Request::new().deadline(queue.deadline_in(MS)));
    assert!(Pin::new(&mut admitted).poll(&mut cx).is_pending());
    assert!(Pin::new(&mut expiring).poll(&mut cx).is_pending());
    // A release admits one waiter; a tick expires the other. Should either deadlock, the
    // futures are leaked so that the failure does not hang on the lock too.
    let ticking = queue.clone();
    let tick_later = clock.clone();
    let released = finishes(move || drop(held));
    let ticked = released && {
        tick_later.advance(MS);
        finishes(move || ticking.tick())
    };
    if !(released && ticked) {
        std::mem::forget((admitted, expiring));
        panic!("a waker ran under the queue's lock (released {released}, ticked {ticked})");
    }
    assert_eq!(probe.woken.load(Ordering::SeqCst), 2);
    assert!(matches!(Pin::new(&mut admitted).poll(&mut cx), Poll::Ready(Ok(_))));
    assert!(matches!(Pin::new(&mut expiring).poll(&mut cx), Poll::Ready(Err(_))));
    assert_eq!(queue.snapshot().used, 0);
}
