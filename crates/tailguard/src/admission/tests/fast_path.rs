//! The lock-free path: admission and release while nobody waits, panics, snapshots of it.

use super::*;

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
