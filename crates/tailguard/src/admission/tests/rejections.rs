//! Refusals and give-ups: deadlines (async and blocking), a full queue, dropped futures.

use super::*;

#[test]
fn a_waiter_fails_fast_at_its_deadline_and_leaves_nothing_behind() {
    let clock = ManualClock::new();
    let queue = fixed(&clock, 1);
    let held = queue.try_admit(&Request::new()).unwrap();
    let deadline = queue.deadline_in(10 * MS);
    let mut late = pending(&queue, Request::new().deadline(deadline));
    let mut patient = pending(&queue, Request::new());
    clock.advance(9 * MS);
    queue.tick();
    assert!(poll(&mut late).is_pending());
    clock.advance(MS);
    queue.tick(); // expiry happens on the queue's events; polling finds it too
    let error = match poll(&mut late) {
        Poll::Ready(Err(error)) => error,
        other => panic!("expected a deadline failure, got {other:?}"),
    };
    assert_eq!(error, AdmitError::DeadlineExceeded { waited: 10 * MS });
    assert!(error.to_string().contains("deadline exceeded after waiting 10ms"), "{error}");
    // The slot goes to the patient waiter, not to the expired one.
    drop(held);
    let permit = match poll(&mut patient) {
        Poll::Ready(Ok(permit)) => permit,
        other => panic!("{other:?}"),
    };
    let snapshot = queue.snapshot();
    assert_eq!((snapshot.waiting, snapshot.used, snapshot.total_rejected.deadline_exceeded), (0, 1, 1));
    drop(permit);
    assert_eq!(queue.snapshot().used, 0);
}

#[test]
fn a_request_past_its_deadline_runs_in_a_free_slot_and_fails_only_when_it_would_wait() {
    let clock = ManualClock::new();
    let queue = fixed(&clock, 1);
    clock.advance(MS);
    let stale = Request::new().deadline(Deadline::at_nanos(clock_now(&clock) - 1));
    let exceeded = AdmitError::DeadlineExceeded { waited: Duration::ZERO };
    // A free slot admits it, on every path: the deadline bounds the wait, and there is none.
    drop(queue.try_admit(&stale).unwrap());
    drop(queue.admit(&stale).unwrap());
    let mut future = queue.admit_async(&stale);
    let Poll::Ready(Ok(permit)) = poll(&mut future) else { panic!("a free slot refused a stale request") };
    // With the slot taken it would wait: it fails at once, and leaves nothing queued.
    assert_eq!(queue.try_admit(&stale).unwrap_err(), exceeded);
    assert_eq!(queue.admit(&stale).unwrap_err(), exceeded);
    assert!(matches!(poll(&mut queue.admit_async(&stale)), Poll::Ready(Err(e)) if e == exceeded));
    let (tx, rx) = std::sync::mpsc::channel();
    queue.submit(&stale, move |admitted| tx.send(admitted.map(drop)).unwrap());
    assert_eq!(rx.try_recv().unwrap(), Err(exceeded));
    let snapshot = queue.snapshot();
    assert_eq!((snapshot.used, snapshot.waiting, snapshot.total_rejected.deadline_exceeded), (1, 0, 4));
    drop(permit);
    let snapshot = queue.snapshot();
    assert_eq!((snapshot.used, snapshot.total_admitted), (0, 3));
}

#[test]
fn expired_waiters_are_never_admitted_by_a_release() {
    let clock = ManualClock::new();
    let queue = fixed(&clock, 1);
    let held = queue.try_admit(&Request::new()).unwrap();
    let mut late = pending(&queue, Request::new().deadline(queue.deadline_in(MS)));
    clock.advance(2 * MS);
    drop(held); // no tick in between: the release itself expires the waiter first
    assert!(matches!(poll(&mut late), Poll::Ready(Err(AdmitError::DeadlineExceeded { .. }))));
    assert_eq!(queue.snapshot().used, 0);
}

#[test]
fn a_blocking_wait_times_out_at_its_deadline_without_leaking() {
    let clock = ManualClock::new();
    let queue = fixed(&clock, 1);
    let held = queue.try_admit(&Request::new()).unwrap();
    let request = Request::new().deadline(queue.deadline_in(50 * MS));
    let waiter = {
        let queue = queue.clone();
        std::thread::spawn(move || queue.admit(&request).map(|permit| permit.tenant()))
    };
    while queue.snapshot().waiting == 0 {
        std::thread::yield_now();
    }
    clock.advance(50 * MS);
    queue.tick();
    assert_eq!(waiter.join().unwrap(), Err(AdmitError::DeadlineExceeded { waited: 50 * MS }));
    let snapshot = queue.snapshot();
    assert_eq!((snapshot.waiting, snapshot.used), (0, 1));
    drop(held);
    assert!(queue.try_admit(&Request::new()).is_ok(), "no slot leaked");
}

#[test]
fn a_blocking_wait_is_woken_by_a_release() {
    let clock = ManualClock::new();
    let queue = fixed(&clock, 1);
    let held = queue.try_admit(&Request::new()).unwrap();
    let waiter = {
        let queue = queue.clone();
        std::thread::spawn(move || queue.admit(&tenant(4)).map(|permit| permit.tenant()))
    };
    while queue.snapshot().waiting == 0 {
        std::thread::yield_now();
    }
    clock.advance(3 * MS);
    drop(held);
    assert_eq!(waiter.join().unwrap(), Ok(TenantId(4)));
    let snapshot = queue.snapshot();
    assert_eq!((snapshot.waiting, snapshot.used, snapshot.total_admitted_after_queueing), (0, 0, 1));
    assert_eq!(snapshot.wait_time.max(), Some(3 * MS));
}

#[test]
fn dropped_futures_leak_nothing() {
    let clock = ManualClock::new();
    let queue = fixed(&clock, 1);
    let held = queue.try_admit(&Request::new()).unwrap();
    let given_up = pending(&queue, Request::new().priority(Priority::HIGH));
    let mut uncollected = pending(&queue, Request::new());
    let mut next = pending(&queue, Request::new());
    drop(given_up);
    assert_eq!(queue.snapshot().waiting, 2);
    // The release hands the slot to `uncollected`, which is dropped before it polls again:
    // the slot goes on to `next`.
    drop(held);
    assert_eq!(queue.snapshot().waiting, 1);
    drop(std::mem::replace(&mut uncollected, queue.admit_async(&Request::new())));
    let permit = match poll(&mut next) {
        Poll::Ready(Ok(permit)) => permit,
        other => panic!("{other:?}"),
    };
    drop(uncollected); // never polled: nothing to undo
    drop(permit);
    let snapshot = queue.snapshot();
    assert_eq!((snapshot.waiting, snapshot.used, snapshot.total_cancelled), (0, 0, 2));
    assert!(snapshot.waiting_by_priority.is_empty());
    assert!(queue.try_admit(&Request::new()).is_ok());
}

#[test]
fn a_full_queue_sheds_new_arrivals() {
    let clock = ManualClock::new();
    let config = WorkQueueConfig {
        initial_slots: 1,
        min_slots: 1,
        max_slots: 1,
        queue_limit: Some(2),
        cores: 1.0,
        ..WorkQueueConfig::default()
    };
    let queue = WorkQueue::new(config, clock.shared()).unwrap();
    let _held = queue.try_admit(&Request::new()).unwrap();
    let _a = pending(&queue, Request::new());
    let _b = pending(&queue, Request::new());
    let mut shed = queue.admit_async(&Request::new());
    assert_eq!(poll(&mut shed).map(|r| r.map(|_| ())), Poll::Ready(Err(AdmitError::QueueFull { limit: 2 })));
    assert_eq!(queue.admit(&Request::new()).unwrap_err(), AdmitError::QueueFull { limit: 2 });
    assert_eq!(queue.snapshot().total_rejected.queue_full, 2);
}
