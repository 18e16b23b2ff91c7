//! Jobs run once admitted (`WorkQueue::submit`): order, refusals, the trampoline, panics.

use super::*;

/// Outcomes of submitted jobs, in the order the jobs ran: (label, permit or error).
type Ran = std::sync::Arc<std::sync::Mutex<Vec<(u32, Result<Permit, AdmitError>)>>>;

fn submit(queue: &WorkQueue, ran: &Ran, label: u32, request: Request) {
    let ran = ran.clone();
    queue.submit(&request, move |outcome| ran.lock().unwrap().push((label, outcome)));
}

fn labels(ran: &Ran) -> Vec<u32> {
    ran.lock().unwrap().iter().map(|(label, _)| *label).collect()
}

#[test]
fn submitted_jobs_run_with_their_permit_in_order_when_slots_free() {
    let clock = ManualClock::new();
    let queue = fixed(&clock, 1);
    let ran = Ran::default();
    submit(&queue, &ran, 0, Request::new());
    assert_eq!(labels(&ran), [0], "a free slot runs the job at once");
    submit(&queue, &ran, 1, Request::new());
    submit(&queue, &ran, 2, Request::new().priority(Priority::HIGHEST));
    assert_eq!(labels(&ran), [0]);
    assert_eq!(queue.snapshot().waiting, 2);
    // Releasing the running job's permit runs the next job in order: priority first.
    let (_, first) = ran.lock().unwrap().remove(0);
    drop(first);
    assert_eq!(labels(&ran), [2]);
    let (_, second) = ran.lock().unwrap().remove(0);
    assert!(second.is_ok());
    drop(second);
    let (label, third) = ran.lock().unwrap().remove(0);
    assert_eq!(label, 1);
    drop(third);
    let snapshot = queue.snapshot();
    assert_eq!((snapshot.used, snapshot.waiting, snapshot.total_admitted), (0, 0, 3));
}

#[test]
fn submitted_jobs_are_refused_at_their_deadline_or_when_the_queue_is_full() {
    let clock = ManualClock::new();
    let config = WorkQueueConfig {
        initial_slots: 1,
        min_slots: 1,
        max_slots: 1,
        queue_limit: Some(1),
        ..WorkQueueConfig::default()
    };
    let queue = WorkQueue::new(config, clock.shared()).unwrap();
    let held = queue.try_admit(&Request::new()).unwrap();
    let ran = Ran::default();
    submit(&queue, &ran, 1, Request::new().deadline(queue.deadline_in(10 * MS)));
    submit(&queue, &ran, 2, Request::new());
    {
        let ran = ran.lock().unwrap();
        assert_eq!(ran.len(), 1);
        assert!(matches!(ran[0], (2, Err(AdmitError::QueueFull { limit: 1 }))));
    }
    clock.advance(10 * MS);
    queue.tick();
    {
        let ran = ran.lock().unwrap();
        assert_eq!(ran.len(), 2);
        assert!(matches!(ran[1], (1, Err(AdmitError::DeadlineExceeded { waited })) if waited == 10 * MS));
    }
    drop(held);
    let snapshot = queue.snapshot();
    assert_eq!((snapshot.used, snapshot.waiting), (0, 0));
}

#[test]
fn jobs_that_release_at_once_run_one_after_another_without_nesting() {
    let clock = ManualClock::new();
    let queue = fixed(&clock, 1);
    let held = queue.try_admit(&Request::new()).unwrap();
    let order = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let depth = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    const JOBS: u32 = 10_000;
    for label in 0..JOBS {
        let (order, depth) = (order.clone(), depth.clone());
        queue.submit(&Request::new(), move |outcome| {
            // Dropping the permit here hands the slot to the next job: it must not run inside
            // this call (10 000 nested calls would overflow the stack).
            let nested = depth.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            assert_eq!(nested, 0, "job {label} ran inside another job");
            drop(outcome.unwrap());
            order.lock().unwrap().push(label);
            depth.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        });
    }
    drop(held);
    assert_eq!(*order.lock().unwrap(), (0..JOBS).collect::<Vec<_>>());
    let snapshot = queue.snapshot();
    assert_eq!((snapshot.used, snapshot.waiting, snapshot.total_admitted), (0, 0, u64::from(JOBS) + 1));
}

#[test]
fn a_panicking_job_returns_its_slot_and_the_others_still_run() {
    let clock = ManualClock::new();
    let queue = fixed(&clock, 1);
    let held = queue.try_admit(&Request::new()).unwrap();
    let ran = Ran::default();
    queue.submit(&Request::new(), |_permit| panic!("job failed"));
    submit(&queue, &ran, 1, Request::new());
    let released = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(held)));
    assert!(released.is_err(), "the job's panic is resumed on the releasing thread");
    // The panicking job's permit went back with its unwinding; the next job got the slot.
    assert_eq!(labels(&ran), [1]);
    ran.lock().unwrap().clear();
    let snapshot = queue.snapshot();
    assert_eq!((snapshot.used, snapshot.waiting), (0, 0));
}
