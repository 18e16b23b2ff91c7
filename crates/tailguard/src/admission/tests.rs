//! Work-queue tests on a manual clock and a scripted run-queue signal.

use std::future::Future;
use std::num::NonZeroU32;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use super::*;
use crate::clock::ManualClock;

const MS: Duration = Duration::from_millis(1);

/// A queue whose slot count stays at `slots` unless samples move it within `min ..= max`.
fn queue_with(clock: &ManualClock, slots: u32, min: u32, max: u32, order: QueueOrder) -> WorkQueue {
    let config = WorkQueueConfig {
        initial_slots: slots,
        min_slots: min,
        max_slots: max,
        order,
        cores: 2.0,
        ..WorkQueueConfig::default()
    };
    WorkQueue::new(config, clock.shared()).unwrap()
}

/// A queue with exactly `slots` slots.
fn fixed(clock: &ManualClock, slots: u32) -> WorkQueue {
    queue_with(clock, slots, slots, slots, QueueOrder::Fifo)
}

fn poll(future: &mut AdmitFuture) -> Poll<Result<Permit, AdmitError>> {
    Pin::new(future).poll(&mut Context::from_waker(Waker::noop()))
}

fn pending(queue: &WorkQueue, request: Request) -> AdmitFuture {
    let mut future = queue.admit_async(&request);
    assert!(poll(&mut future).is_pending(), "{request:?} should queue");
    future
}

fn tenant(id: u64) -> Request {
    Request::new().tenant(TenantId(id))
}

/// Frees one slot by dropping `held`, and returns the index of the one future (of `futures`)
/// that got it, keeping its permit in `held`.
fn hand_over(held: &mut Permit, futures: &mut Vec<(usize, AdmitFuture)>) -> usize {
    let mut admitted = None;
    // Drop first so the slot is handed on, then find who got it.
    let released = std::mem::replace(held, placeholder());
    drop(released);
    futures.retain_mut(|(label, future)| match poll(future) {
        Poll::Ready(Ok(permit)) => {
            assert!(admitted.is_none(), "one slot admitted two waiters");
            admitted = Some(*label);
            *held = permit;
            false
        }
        Poll::Ready(Err(error)) => panic!("waiter {label} failed: {error}"),
        Poll::Pending => true,
    });
    admitted.expect("a freed slot goes to a waiter")
}

/// A permit of a queue of its own, standing in while a real one is swapped out.
/// A one-slot LIFO-under-overload queue (after 5 ms) whose slot is held, and four waiters
/// labelled 0..4 that arrived 1 ms apart (the clock ends 1 ms after the last).
fn lifo_with_four_waiters(clock: &ManualClock) -> (WorkQueue, Permit, Vec<(usize, AdmitFuture)>) {
    let queue = queue_with(clock, 1, 1, 1, QueueOrder::LifoUnderOverload { after: 5 * MS });
    let held = queue.try_admit(&Request::new()).unwrap();
    let mut futures = Vec::new();
    for i in 0..4 {
        futures.push((i, pending(&queue, Request::new())));
        clock.advance(MS);
    }
    (queue, held, futures)
}

fn placeholder() -> Permit {
    let queue = fixed(&ManualClock::new(), 1);
    queue.try_admit(&Request::new()).unwrap()
}

#[test]
fn handles_cross_threads() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<WorkQueue>();
    send_sync::<Permit>();
    send::<AdmitFuture>();
}

#[test]
fn fast_path_admits_up_to_the_slots_and_a_release_frees_one() {
    let clock = ManualClock::new();
    let queue = fixed(&clock, 2);
    let a = queue.try_admit(&Request::new()).unwrap();
    let b = queue.admit(&Request::new()).unwrap();
    assert_eq!(queue.used(), 2);
    assert_eq!(queue.try_admit(&Request::new()).unwrap_err(), AdmitError::WouldBlock);
    drop(a);
    let c = queue.try_admit(&tenant(9)).unwrap();
    assert_eq!(c.tenant(), TenantId(9));
    drop((b, c));
    let snapshot = queue.snapshot();
    assert_eq!((snapshot.used, snapshot.slots, snapshot.waiting), (0, 2, 0));
    assert_eq!(snapshot.total_admitted, 3);
    assert_eq!(snapshot.total_rejected.would_block, 1);
    assert_eq!(snapshot.wait_time.count(), 3, "immediate admissions count as zero waits");
    assert_eq!(snapshot.wait_time.max(), Some(Duration::ZERO));
}

#[test]
fn slots_follow_a_scripted_run_queue() {
    let clock = ManualClock::new();
    let queue = queue_with(&clock, 2, 1, 4, QueueOrder::Fifo);
    let mut held = Vec::new();
    // (runnable per CPU, permits to hold during the sample, slots expected after it)
    let script: &[(f64, usize, u32)] = &[
        (1.0, 0, 2),  // short run queue, slots to spare: unchanged
        (1.0, 2, 3),  // short run queue, all slots used: one more
        (16.0, 3, 4), // at half the threshold: still underloaded
        (16.0, 4, 4), // at the maximum
        (20.0, 4, 4), // between half and the threshold: unchanged
        (32.0, 4, 3), // overloaded with slots in use: one fewer per sample
        (50.0, 4, 3), // more in use than slots: an earlier decrease is pending, hold off
        (50.0, 3, 2), //
        (50.0, 0, 2), // nothing admitted: the overload is not ours
        (50.0, 1, 1), //
        (50.0, 1, 1), // at the minimum
        (0.0, 1, 2),  // back up by one per sample
    ];
    for (i, &(runnable, hold, expected)) in script.iter().enumerate() {
        held.truncate(hold);
        while held.len() < hold {
            held.push(queue.try_admit(&Request::new()).expect("the script holds at most `slots` permits"));
        }
        assert_eq!(queue.record_sample(runnable), expected, "row {i}");
        assert_eq!(queue.slots(), expected, "row {i}");
    }
    let snapshot = queue.snapshot();
    assert_eq!(snapshot.total_samples, script.len() as u64);
    assert_eq!((snapshot.total_slot_increases, snapshot.total_slot_decreases), (3, 3));
    assert_eq!(snapshot.runnable_per_cpu, Some(0.0));
}

#[test]
fn a_slot_decrease_stops_admission_until_use_drops_below_it() {
    let clock = ManualClock::new();
    let queue = queue_with(&clock, 2, 1, 2, QueueOrder::Fifo);
    let a = queue.try_admit(&Request::new()).unwrap();
    let b = queue.try_admit(&Request::new()).unwrap();
    assert_eq!(queue.record_sample(100.0), 1);
    drop(a);
    // One in use, one slot: full.
    assert_eq!(queue.try_admit(&Request::new()).unwrap_err(), AdmitError::WouldBlock);
    drop(b);
    let c = queue.try_admit(&Request::new()).unwrap();
    assert_eq!(queue.used(), 1);
    drop(c);
}

#[test]
fn waiters_are_ordered_by_priority_then_arrival_within_a_tenant() {
    let clock = ManualClock::new();
    let queue = fixed(&clock, 1);
    let mut held = queue.try_admit(&Request::new()).unwrap();
    let requests = [
        ("normal-1", Request::new()),
        ("low", Request::new().priority(Priority::LOW)),
        ("heartbeat", Request::new().priority(Priority::HIGHEST)),
        ("normal-2", Request::new()),
        ("high", Request::new().priority(Priority::HIGH)),
        ("level-10", Request::new().priority(Priority::new(10))),
    ];
    let mut futures: Vec<(usize, AdmitFuture)> =
        requests.iter().enumerate().map(|(i, (_, r))| (i, pending(&queue, *r))).collect();
    let snapshot = queue.snapshot();
    assert_eq!(snapshot.waiting, 6);
    assert_eq!(
        snapshot.waiting_by_priority,
        vec![
            (Priority::HIGHEST, 1),
            (Priority::HIGH, 1),
            (Priority::new(10), 1),
            (Priority::NORMAL, 2),
            (Priority::LOW, 1)
        ]
    );
    let order: Vec<&str> = (0..6).map(|_| requests[hand_over(&mut held, &mut futures)].0).collect();
    assert_eq!(order, ["heartbeat", "high", "level-10", "normal-1", "normal-2", "low"]);
}

#[test]
fn tenants_are_ordered_by_usage_per_weight_reset_each_second() {
    let clock = ManualClock::new();
    let queue = fixed(&clock, 1);
    queue.set_tenant_weight(TenantId(2), NonZeroU32::new(3).unwrap());
    let mut held = queue.try_admit(&Request::new()).unwrap();
    // Tenant 1 (weight 1) queues first, then tenant 2 (weight 3); tenant 1 queues a
    // high-priority request last: priority counts only within a tenant.
    let mut futures = Vec::new();
    for i in 0..8 {
        futures.push((i, pending(&queue, tenant(1))));
    }
    for i in 8..16 {
        futures.push((i, pending(&queue, tenant(2))));
    }
    futures.push((16, pending(&queue, tenant(1).priority(Priority::HIGHEST))));
    let tenant_of = |label: usize| if (8..16).contains(&label) { 2 } else { 1 };
    let order: Vec<u64> = (0..8).map(|_| tenant_of(hand_over(&mut held, &mut futures))).collect();
    // usage/weight: 0/1 vs 0/3 tie -> arrival (tenant 1); then 1/1 vs 0/3, 1/3, 2/3 -> tenant 2
    // three times; 1/1 vs 3/3 tie -> tenant 1; ... : 3 to 1 while both wait.
    assert_eq!(order, [1, 2, 2, 2, 1, 2, 2, 2]);
    let snapshot = queue.snapshot();
    let usage: Vec<(TenantId, u64, u32)> =
        snapshot.tenants.iter().map(|t| (t.tenant, t.usage, t.weight)).collect();
    assert_eq!(usage, [(TenantId(1), 2, 1), (TenantId(2), 6, 3)]);
    // Tenant 1's first admission went to its highest priority, not its oldest.
    assert!(futures.iter().all(|(label, _)| *label != 16));

    // A second later usage starts from zero: the tie goes to arrival order again (tenant 1).
    clock.advance(Duration::from_secs(1));
    queue.tick();
    assert!(queue.snapshot().tenants.iter().all(|t| t.usage == 0));
    assert_eq!(tenant_of(hand_over(&mut held, &mut futures)), 1);
}

#[test]
fn lifo_under_overload_serves_the_newest_once_the_oldest_waited_too_long() {
    let clock = ManualClock::new();
    let (queue, mut held, mut futures) = lifo_with_four_waiters(&clock);
    // The oldest waited 4 ms: FIFO still.
    assert_eq!(hand_over(&mut held, &mut futures), 0);
    // Now the oldest (1) has waited 5 ms: overload, the newest goes first.
    clock.advance(2 * MS);
    assert_eq!(hand_over(&mut held, &mut futures), 3);
    futures.push((4, pending(&queue, Request::new())));
    assert_eq!(hand_over(&mut held, &mut futures), 4);
    assert_eq!(hand_over(&mut held, &mut futures), 2);
    // Only a fresh waiter is left: FIFO again.
    futures.push((5, pending(&queue, Request::new())));
    futures.retain(|(label, _)| *label == 5); // the old one gives up
    assert_eq!(hand_over(&mut held, &mut futures), 5);
    assert_eq!(queue.snapshot().total_cancelled, 1);
}

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
    // A request that arrives past its deadline fails even with a slot free.
    let stale = Request::new().deadline(Deadline::at_nanos(clock_now(&clock)));
    assert_eq!(queue.try_admit(&stale).unwrap_err(), AdmitError::DeadlineExceeded { waited: Duration::ZERO });
    assert_eq!(queue.admit(&stale).unwrap_err(), AdmitError::DeadlineExceeded { waited: Duration::ZERO });
    assert_eq!(queue.snapshot().used, 0);
}

fn clock_now(clock: &ManualClock) -> u64 {
    crate::clock::Clock::now_nanos(clock)
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

#[test]
fn a_capped_tenant_stays_within_its_share_of_the_cpu() {
    // 25 % of 2 cores: 0.5 CPU-seconds per second, a bucket of 0.5 s.
    let clock = ManualClock::new();
    let queue = fixed(&clock, 4);
    queue.set_tenant_cap(TenantId(1), 0.25).unwrap();
    let capped = tenant(1);
    // Ten seconds in 5 ms steps on one simulated thread: the capped tenant runs a 5 ms
    // request whenever it is admitted; otherwise another tenant's work takes the step.
    let step = 5 * MS;
    let (mut capped_cpu, mut other_steps) = (Duration::ZERO, 0);
    while clock_now(&clock) < 10_000_000_000 {
        match queue.try_admit(&capped) {
            Ok(permit) => {
                clock.run_for(step); // measured by the permit on this thread
                assert_eq!(permit.cpu_used(), step);
                capped_cpu += step;
            }
            Err(AdmitError::WouldBlock) => {
                let other = queue.try_admit(&tenant(2)).unwrap();
                clock.run_for(step);
                drop(other);
                other_steps += 1;
            }
            Err(error) => panic!("{error}"),
        }
    }
    // Allowed: 10 s x 0.5 of fill, the initial full bucket (0.5 s), and one request of
    // overshoot (admission needs only a positive balance).
    let fill = Duration::from_secs(5);
    let capacity = Duration::from_millis(500);
    assert!(capped_cpu <= fill + capacity + step, "{capped_cpu:?}");
    assert!(capped_cpu >= fill, "a capped tenant with constant demand gets its share: {capped_cpu:?}");
    assert!(other_steps > 0);
    let snapshot = queue.snapshot();
    let t1 = snapshot.tenants.iter().find(|t| t.tenant == TenantId(1)).unwrap();
    assert_eq!(t1.cap, Some(0.25));
    assert_eq!(t1.total_cpu, capped_cpu);
    // Constant demand keeps the balance near zero: within one step's refill of it.
    assert!(t1.cap_balance_nanos.unwrap() <= 2_500_000, "{:?}", t1.cap_balance_nanos);
    // Uncapped tenants take the lock-free path and are not measured.
    let t2 = snapshot.tenants.iter().find(|t| t.tenant == TenantId(2));
    assert!(t2.is_none_or(|t| t.total_cpu.is_zero()));

    // Without the cap the tenant is admitted at once.
    queue.clear_tenant_cap(TenantId(1));
    assert!(queue.try_admit(&capped).is_ok());
    assert_eq!(queue.set_tenant_cap(TenantId(1), 1.5).unwrap_err(), ConfigError::TenantCap(1.5));
}

#[test]
fn capped_async_waiters_wait_for_their_bucket_and_charge_reported_cpu() {
    let clock = ManualClock::new();
    let queue = fixed(&clock, 4);
    // 5 % of 2 cores: 0.1 CPU-s per second, a bucket of 100 ms.
    queue.set_tenant_cap(TenantId(1), 0.05).unwrap();
    let mut first = queue.admit_async(&tenant(1));
    let Poll::Ready(Ok(mut permit)) = poll(&mut first) else { panic!("a full bucket admits") };
    permit.charge_cpu(150 * MS); // async work reports its CPU: 50 ms of debt
    permit.charge_cpu(50 * MS);
    assert_eq!(permit.cpu_used(), 200 * MS);
    drop(permit);
    let mut second = pending(&queue, tenant(1));
    // An uncapped tenant is not held up by the capped one's wait, though slots are shared.
    let other = queue.try_admit(&tenant(2)).unwrap();
    drop(other);
    // The debt (100 ms of CPU) refills at 0.1 CPU-s/s: positive after 1 s.
    clock.advance(Duration::from_millis(999));
    queue.tick();
    assert!(poll(&mut second).is_pending());
    clock.advance(2 * MS);
    queue.tick();
    let Poll::Ready(Ok(permit)) = poll(&mut second) else { panic!("refilled") };
    drop(permit); // nothing reported, not measured (async): charges 0
    let snapshot = queue.snapshot();
    let t1 = snapshot.tenants.iter().find(|t| t.tenant == TenantId(1)).unwrap();
    assert_eq!(t1.total_cpu, 200 * MS);
    assert_eq!(snapshot.used, 0);
}

#[test]
fn snapshot_reports_waiters_per_tenant_and_wait_times() {
    let clock = ManualClock::new();
    let queue = fixed(&clock, 1);
    let mut held = queue.try_admit(&Request::new()).unwrap();
    let mut futures = vec![
        (0, pending(&queue, tenant(1))),
        (1, pending(&queue, tenant(1).priority(Priority::LOW))),
        (2, pending(&queue, tenant(2))),
    ];
    let snapshot = queue.snapshot();
    let waiting: Vec<(TenantId, usize)> = snapshot.tenants.iter().map(|t| (t.tenant, t.waiting)).collect();
    assert_eq!(waiting, [(TenantId(1), 2), (TenantId(2), 1)]);
    clock.advance(2 * MS);
    hand_over(&mut held, &mut futures);
    clock.advance(3 * MS);
    hand_over(&mut held, &mut futures);
    let snapshot = queue.snapshot();
    assert_eq!(snapshot.total_admitted, 3);
    assert_eq!(snapshot.total_admitted_after_queueing, 2);
    let waits = snapshot.wait_time;
    assert_eq!(waits.count(), 3);
    let max = waits.max().unwrap();
    assert!(max >= 5 * MS && max <= 5 * MS + 5 * MS / 32, "{max:?}");
    drop(held);
    drop(futures);
    assert_eq!(queue.snapshot().total_cancelled, 1);
}

#[test]
fn a_panic_while_admitted_returns_the_slot() {
    let clock = ManualClock::new();
    let queue = fixed(&clock, 1);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _permit = queue.admit(&Request::new()).unwrap();
        panic!("request failed");
    }));
    assert!(result.is_err());
    assert_eq!(queue.used(), 0);
}

#[test]
fn the_sampler_thread_moves_slots_from_its_signal() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    // The signal reads a scripted value (f64 bits); the test changes it.
    let value = Arc::new(AtomicU64::new(100f64.to_bits()));
    let signal = {
        let value = value.clone();
        move || Some(f64::from_bits(value.load(Ordering::Relaxed)))
    };
    let config =
        WorkQueueConfig { initial_slots: 3, min_slots: 1, max_slots: 3, cores: 1.0, ..Default::default() };
    let queue = WorkQueue::start(config, signal).unwrap();
    let held = queue.admit(&Request::new()).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while queue.slots() > 1 {
        assert!(std::time::Instant::now() < deadline, "overload never lowered the slots");
        std::thread::sleep(MS);
    }
    // Saturated and a short run queue: back up.
    value.store(0f64.to_bits(), Ordering::Relaxed);
    let more = queue.admit(&Request::new()).unwrap(); // waits until the sampler adds a slot
    assert!(queue.slots() >= 2);
    drop((held, more));
    let snapshot = queue.snapshot();
    assert!(snapshot.total_samples >= 3 && snapshot.total_slot_decreases >= 2);
    drop(queue); // joins the sampler thread
}

#[test]
fn os_signal_reads_the_run_queue_where_proc_exists() {
    let mut signal = OsRunQueue::new(2.0);
    let reading = signal.runnable_per_cpu();
    assert_eq!(reading.is_some(), std::fs::metadata(crate::observe::run_queue::LOADAVG_PATH).is_ok());
    assert!(reading.is_none_or(|r| r >= 0.0));
}

#[test]
fn sampled_signal_averages_an_observe_sampler_between_reads() {
    use crate::observe::{RunQueueConfig, RunQueueSampler};
    let config = RunQueueConfig { rate_hz: 2_000, tick: Duration::from_millis(5) };
    let sampler = std::sync::Arc::new(RunQueueSampler::start(config).unwrap());
    let mut signal = SampledRunQueue::new(sampler.clone(), 2.0);
    if std::fs::metadata(crate::observe::run_queue::LOADAVG_PATH).is_err() {
        return; // no OS run queue to read here
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let reading = loop {
        if let Some(reading) = signal.runnable_per_cpu() {
            break reading;
        }
        assert!(std::time::Instant::now() < deadline, "the sampler took no sample");
        std::thread::sleep(MS);
    };
    assert!(reading >= 0.0);
    // Nothing new between two immediate reads is `None` (most of the time) or a fresh average.
    assert!(signal.runnable_per_cpu().is_none_or(|r| r >= 0.0));
}

#[cfg(feature = "tokio")]
#[test]
fn tokio_signal_reads_the_runtime_queue() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().unwrap();
    let mut signal = TokioRunQueue::new(runtime.handle(), 2.0);
    assert!(signal.runnable_per_cpu().is_some_and(|r| r >= 0.0));
    let config = WorkQueueConfig { cores: 2.0, initial_slots: 2, ..Default::default() };
    let queue = WorkQueue::start_with_runtime(config, runtime.handle()).unwrap();
    let permit = runtime.block_on(queue.admit_async(&Request::new())).unwrap();
    drop(permit);
    queue.stop();
}

mod properties {
    use proptest::prelude::*;

    use super::*;

    #[derive(Clone, Debug)]
    enum Op {
        Submit { tenant: u64, priority: i8, deadline_ms: Option<u64> },
        Release(usize),
        Cancel(usize),
        Advance(u64),
        Sample(f64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0u64..3, prop::sample::select(vec![-50i8, 0, 50]), prop::option::of(0u64..40))
                .prop_map(|(tenant, priority, deadline_ms)| Op::Submit { tenant, priority, deadline_ms }),
            3 => any::<usize>().prop_map(Op::Release),
            1 => any::<usize>().prop_map(Op::Cancel),
            2 => (1u64..400).prop_map(Op::Advance),
            1 => prop::sample::select(vec![0.0, 20.0, 40.0]).prop_map(Op::Sample),
        ]
    }

    struct Waiting {
        arrival: u64,
        tenant: usize,
        priority: Priority,
        deadline: Option<u64>,
        future: AdmitFuture,
    }

    /// The spec: the next waiter is the one minimal by (tenant usage / weight, priority
    /// descending, arrival).
    fn next_in_order(waiting: &[&Waiting], usage: &[u64; 3], weights: &[u32]) -> usize {
        let mut best = 0;
        for (i, w) in waiting.iter().enumerate().skip(1) {
            let b = waiting[best];
            let mine = u128::from(usage[w.tenant]) * u128::from(weights[b.tenant]);
            let theirs = u128::from(usage[b.tenant]) * u128::from(weights[w.tenant]);
            let key = (mine, Reverse(w.priority), w.arrival);
            if key < (theirs, Reverse(b.priority), b.arrival) {
                best = i;
            }
        }
        best
    }

    use std::cmp::Reverse;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Slots in use never exceed the slot count when someone is admitted, every permit is
        /// accounted for, every waiter is admitted or failed exactly once, expired waiters fail
        /// and are never admitted, and the waiters admitted by each event are the first in
        /// (usage / weight, priority, arrival) order.
        #[test]
        fn admission_respects_order_and_conserves_slots(
            weights in prop::collection::vec(1u32..4, 3),
            ops in prop::collection::vec(op(), 1..120),
        ) {
            let clock = ManualClock::new();
            let queue = queue_with(&clock, 2, 1, 4, QueueOrder::Fifo);
            for (t, &w) in weights.iter().enumerate() {
                queue.set_tenant_weight(TenantId(t as u64), NonZeroU32::new(w).unwrap());
            }
            let second = 1_000_000_000u64;
            let (mut usage, mut reset_at) = ([0u64; 3], second);
            let (mut held, mut waiting): (Vec<Permit>, Vec<Waiting>) = (Vec::new(), Vec::new());
            let (mut arrivals, mut queued, mut resolved, mut cancelled) = (0u64, 0usize, 0usize, 0usize);
            for op in ops {
                let before = queue.snapshot();
                match op {
                    Op::Submit { tenant, priority, deadline_ms } => {
                        let deadline = deadline_ms.map(|ms| queue.deadline_in(Duration::from_millis(ms)));
                        let mut request = Request::new().tenant(TenantId(tenant)).priority(Priority::new(priority));
                        request.deadline = deadline;
                        let mut future = queue.admit_async(&request);
                        match poll(&mut future) {
                            Poll::Ready(Ok(permit)) => {
                                prop_assert!(waiting.is_empty() && before.used < before.slots);
                                held.push(permit);
                            }
                            Poll::Ready(Err(error)) => {
                                prop_assert_eq!(error, AdmitError::DeadlineExceeded { waited: Duration::ZERO });
                                prop_assert_eq!(deadline_ms, Some(0));
                            }
                            Poll::Pending => {
                                prop_assert!(!waiting.is_empty() || before.used >= before.slots);
                                arrivals += 1;
                                queued += 1;
                                waiting.push(Waiting {
                                    arrival: arrivals,
                                    tenant: tenant as usize,
                                    priority: Priority::new(priority),
                                    deadline: deadline.map(Deadline::nanos),
                                    future,
                                });
                                continue;
                            }
                        }
                    }
                    Op::Release(i) if !held.is_empty() => drop(held.swap_remove(i % held.len())),
                    Op::Cancel(i) if !waiting.is_empty() => {
                        drop(waiting.remove(i % waiting.len()));
                        cancelled += 1;
                    }
                    Op::Advance(ms) => {
                        clock.advance(Duration::from_millis(ms));
                        let now = clock_now(&clock);
                        if now >= reset_at {
                            usage = [0; 3];
                            reset_at = now + second - (now - reset_at) % second;
                        }
                        queue.tick();
                    }
                    Op::Sample(runnable) => {
                        queue.record_sample(runnable);
                    }
                    Op::Release(_) | Op::Cancel(_) => {}
                }
                // Collect outcomes, and check them against the spec.
                let now = clock_now(&clock);
                let expired = |w: &Waiting| w.deadline.is_some_and(|d| d <= now);
                let mut admitted = Vec::new();
                let mut outcomes = Vec::new();
                for w in &mut waiting {
                    match poll(&mut w.future) {
                        Poll::Pending => outcomes.push(None),
                        Poll::Ready(result) => outcomes.push(Some(result)),
                    }
                }
                let mut still = Vec::new();
                for (w, outcome) in waiting.drain(..).zip(outcomes) {
                    match outcome {
                        None => {
                            prop_assert!(!expired(&w), "an expired waiter is still waiting");
                            still.push(w);
                        }
                        Some(Err(error)) => {
                            let deadline_failure = matches!(error, AdmitError::DeadlineExceeded { .. });
                            prop_assert!(deadline_failure, "{:?}", error);
                            prop_assert!(expired(&w), "failed before its deadline");
                            resolved += 1;
                        }
                        Some(Ok(permit)) => {
                            prop_assert!(!expired(&w), "admitted after its deadline");
                            held.push(permit);
                            admitted.push(w);
                            resolved += 1;
                        }
                    }
                }
                if !admitted.is_empty() {
                    // The admitted ones are the first in order among those not expired.
                    let mut candidates: Vec<&Waiting> = still.iter().chain(admitted.iter()).collect();
                    let mut expected = Vec::new();
                    for _ in 0..admitted.len() {
                        let next = candidates.remove(next_in_order(&candidates, &usage, &weights));
                        usage[next.tenant] += 1;
                        expected.push(next.arrival);
                    }
                    let mut got: Vec<u64> = admitted.iter().map(|w| w.arrival).collect();
                    expected.sort_unstable();
                    got.sort_unstable();
                    prop_assert_eq!(got, expected);
                }
                waiting = still;
                let after = queue.snapshot();
                prop_assert_eq!(after.used as usize, held.len(), "every slot in use belongs to a permit");
                prop_assert_eq!(after.waiting, waiting.len());
                if !admitted.is_empty() {
                    prop_assert!(after.used <= after.slots);
                }
            }
            // Drain: free everything and open the slots; every waiter ends exactly once.
            for _ in 0..1_000 {
                if waiting.is_empty() {
                    break;
                }
                held.clear();
                queue.record_sample(0.0);
                waiting.retain_mut(|w| match poll(&mut w.future) {
                    Poll::Pending => true,
                    Poll::Ready(result) => {
                        held.extend(result.ok());
                        resolved += 1;
                        false
                    }
                });
            }
            prop_assert!(waiting.is_empty());
            prop_assert_eq!(resolved + cancelled, queued);
            held.clear();
            let end = queue.snapshot();
            prop_assert_eq!((end.used, end.waiting), (0, 0));
        }
    }
}

/// The locked path's bookkeeping: waiters leave lazily (counted out at once, their keys
/// dropped later), their slab entries are reused, and wakers run after the lock.
mod lazy_removal {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, mpsc};
    use std::task::Wake;

    use super::*;

    #[test]
    fn a_reused_entry_inherits_neither_the_place_nor_the_deadline_of_a_cancelled_waiter() {
        let clock = ManualClock::new();
        let queue = fixed(&clock, 1);
        let mut held = queue.try_admit(&Request::new()).unwrap();
        let given_up =
            pending(&queue, Request::new().priority(Priority::HIGH).deadline(queue.deadline_in(MS)));
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
}

mod lifo_properties {
    use std::cmp::Reverse;

    use proptest::prelude::*;

    use super::*;

    const AFTER: Duration = Duration::from_millis(3);

    #[derive(Clone, Debug)]
    enum Op {
        Submit { tenant: u64, priority: i8, deadline_ms: Option<u64> },
        Release,
        Cancel(usize),
        Advance(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            5 => (0u64..3, prop::sample::select(vec![-50i8, 0, 50]), prop::option::of(1u64..20))
                .prop_map(|(tenant, priority, deadline_ms)| Op::Submit { tenant, priority, deadline_ms }),
            3 => Just(Op::Release),
            2 => any::<usize>().prop_map(Op::Cancel),
            2 => (1u64..6).prop_map(Op::Advance),
        ]
    }

    struct Waiting {
        arrival: u64,
        enqueued: u64,
        tenant: u64,
        priority: Priority,
        deadline: Option<u64>,
        future: AdmitFuture,
    }

    /// The spec, over the waiters not expired at `now`: per tenant its highest priority, and
    /// within it the oldest, or the newest once the oldest has waited `AFTER`; among tenants
    /// the least usage, then the higher priority, then the earlier arrival of the chosen
    /// waiter. Returns the chosen arrival.
    fn next_in_order(waiting: &[Waiting], usage: &[u64; 3], now: u64) -> Option<u64> {
        let live: Vec<&Waiting> = waiting.iter().filter(|w| w.deadline.is_none_or(|d| d > now)).collect();
        let mut best: Option<(u64, Reverse<Priority>, u64)> = None;
        for tenant in 0..3u64 {
            let Some(top) = live.iter().filter(|w| w.tenant == tenant).map(|w| w.priority).max() else {
                continue;
            };
            let level: Vec<&&Waiting> =
                live.iter().filter(|w| w.tenant == tenant && w.priority == top).collect();
            let oldest = level.iter().min_by_key(|w| w.arrival)?;
            let newest = level.iter().max_by_key(|w| w.arrival)?;
            let overloaded = now - oldest.enqueued >= AFTER.as_nanos() as u64;
            let chosen = if overloaded { newest } else { oldest };
            let key = (usage[tenant as usize], Reverse(top), chosen.arrival);
            if best.is_none_or(|b| key < b) {
                best = Some(key);
            }
        }
        best.map(|(.., arrival)| arrival)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// With one slot and LIFO under overload, each release admits exactly the waiter the
        /// spec names among those not expired, expired waiters fail at the next event, and
        /// the counts per priority and per tenant match the live waiters after every event,
        /// however many left from the middle of their lists.
        #[test]
        fn lifo_order_and_exact_counts_under_lazy_removal(ops in prop::collection::vec(op(), 1..150)) {
            let clock = ManualClock::new();
            let queue = queue_with(&clock, 1, 1, 1, QueueOrder::LifoUnderOverload { after: AFTER });
            let second = 1_000_000_000u64;
            let (mut usage, mut reset_at) = ([0u64; 3], second);
            let mut held: Option<Permit> = None;
            let mut waiting: Vec<Waiting> = Vec::new();
            let mut arrivals = 0u64;
            for op in ops {
                let now = clock_now(&clock);
                let mut expected = None;
                match op {
                    Op::Submit { tenant, priority, deadline_ms } => {
                        let deadline = deadline_ms.map(|ms| queue.deadline_in(Duration::from_millis(ms)));
                        let mut request = Request::new().tenant(TenantId(tenant)).priority(Priority::new(priority));
                        request.deadline = deadline;
                        let mut future = queue.admit_async(&request);
                        match poll(&mut future) {
                            Poll::Ready(Ok(permit)) => {
                                prop_assert!(held.is_none() && waiting.is_empty());
                                held = Some(permit);
                            }
                            Poll::Ready(Err(error)) => prop_assert!(false, "{}", error),
                            Poll::Pending => {
                                arrivals += 1;
                                waiting.push(Waiting {
                                    arrival: arrivals,
                                    enqueued: now,
                                    tenant,
                                    priority: Priority::new(priority),
                                    deadline: deadline.map(Deadline::nanos),
                                    future,
                                });
                            }
                        }
                    }
                    Op::Release => {
                        if let Some(permit) = held.take() {
                            expected = next_in_order(&waiting, &usage, now);
                            drop(permit);
                        }
                    }
                    Op::Cancel(i) => {
                        if !waiting.is_empty() {
                            let i = i % waiting.len();
                            drop(waiting.remove(i));
                        }
                    }
                    Op::Advance(ms) => {
                        clock.advance(Duration::from_millis(ms));
                        let now = clock_now(&clock);
                        if now >= reset_at {
                            usage = [0; 3];
                            reset_at = now + second - (now - reset_at) % second;
                        }
                        queue.tick();
                    }
                }
                let now = clock_now(&clock);
                let mut admitted = None;
                let mut still = Vec::new();
                for mut w in waiting.drain(..) {
                    match poll(&mut w.future) {
                        Poll::Pending => {
                            prop_assert!(w.deadline.is_none_or(|d| d > now), "an expired waiter still waits");
                            still.push(w);
                        }
                        Poll::Ready(Err(AdmitError::DeadlineExceeded { .. })) => {
                            prop_assert!(w.deadline.is_some_and(|d| d <= now), "failed before its deadline");
                        }
                        Poll::Ready(Err(error)) => prop_assert!(false, "{}", error),
                        Poll::Ready(Ok(permit)) => {
                            prop_assert!(admitted.is_none() && held.is_none(), "one slot, two permits");
                            admitted = Some(w.arrival);
                            usage[w.tenant as usize] += 1;
                            held = Some(permit);
                        }
                    }
                }
                waiting = still;
                prop_assert_eq!(admitted, expected);
                let snapshot = queue.snapshot();
                prop_assert_eq!(snapshot.waiting, waiting.len());
                let mut by_priority: Vec<(Priority, usize)> = Vec::new();
                for level in [50i8, 0, -50].map(Priority::new) {
                    let n = waiting.iter().filter(|w| w.priority == level).count();
                    if n > 0 {
                        by_priority.push((level, n));
                    }
                }
                prop_assert_eq!(snapshot.waiting_by_priority, by_priority);
                for t in &snapshot.tenants {
                    prop_assert_eq!(t.waiting, waiting.iter().filter(|w| w.tenant == t.tenant.0).count());
                }
                prop_assert_eq!(snapshot.used, u32::from(held.is_some()));
            }
        }
    }
}

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

#[test]
fn count_admitted_adds_slots_in_use_per_core_to_the_signal() {
    let clock = ManualClock::new();
    let config = |count_admitted| WorkQueueConfig {
        initial_slots: 4,
        min_slots: 1,
        max_slots: 100,
        overload_threshold: 4.0,
        cores: 2.0,
        count_admitted,
        ..WorkQueueConfig::default()
    };
    let counting = WorkQueue::new(config(true), clock.shared()).unwrap();
    let plain = WorkQueue::new(config(false), clock.shared()).unwrap();
    let mut held = Vec::new();
    for queue in [&counting, &plain] {
        for _ in 0..4 {
            held.push(queue.try_admit(&Request::new()).unwrap());
        }
    }
    // 4 admitted over 2 cores count as 2 runnable: at half the threshold, all slots used: +1.
    assert_eq!(counting.record_sample(0.0), 5);
    held.push(counting.try_admit(&Request::new()).unwrap());
    // 1.5 + 5 / 2 = 4.0 reaches the threshold: -1. Without counting, 1.5 is underloaded: +1.
    assert_eq!(counting.record_sample(1.5), 4);
    assert_eq!(plain.record_sample(1.5), 5);
    assert_eq!(counting.snapshot().runnable_per_cpu, Some(4.0));
}
