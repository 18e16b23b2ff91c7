//! Tenant CPU caps: a capped tenant stays within its share, async waiters wait for their bucket.

use super::*;

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
