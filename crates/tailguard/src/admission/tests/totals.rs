//! Per-tenant totals survive the pruning of idle tenants, and the table that keeps them is
//! bounded.

use super::*;

const MICROS: Duration = Duration::from_micros(1);

/// The totals every snapshot reports, tracked or retired, by tenant.
fn totals(queue: &WorkQueue) -> Vec<(u64, Duration, u64)> {
    queue.snapshot().tenant_totals().iter().map(|t| (t.tenant.0, t.total_cpu, t.total_requests)).collect()
}

#[test]
fn an_uncapped_tenants_cpu_and_requests_never_go_back_across_usage_resets() {
    // `serve --admission --tenant-cap 1=0.05` with closed-loop clients of tenants 1 and 2: every
    // request reports its CPU; tenant 2 has no cap and no waiters, so each usage reset forgets it.
    let clock = ManualClock::new();
    let queue = fixed(&clock, 4);
    queue.set_tenant_cap(TenantId(1), 0.05).unwrap();
    let (mut cpu, mut requests) = ([Duration::ZERO; 3], [0u64; 3]);
    let mut previous = totals(&queue);
    let mut retired_seen = false;
    // Ten seconds (ten usage resets) of requests 1 ms apart, 500 µs of CPU each, alternating
    // tenants: tenant 1 asks for 0.25 CPU-seconds a second and its cap allows 0.1.
    for step in 0..10_000u64 {
        let id = 1 + step % 2;
        if let Ok(mut permit) = queue.try_admit(&tenant(id)) {
            permit.charge_cpu(500 * MICROS);
            drop(permit);
            cpu[id as usize] += 500 * MICROS;
            requests[id as usize] += 1;
        }
        clock.advance(MS);
        if step % 250 == 0 {
            let snapshot = queue.snapshot();
            retired_seen |= snapshot.retired_tenants.iter().any(|t| t.tenant == TenantId(2));
            let now = totals(&queue);
            for &(tenant, cpu, requests) in &now {
                if let Some(&(_, was_cpu, was_requests)) = previous.iter().find(|t| t.0 == tenant) {
                    assert!(
                        cpu >= was_cpu && requests >= was_requests,
                        "tenant {tenant} went back at {step}"
                    );
                }
            }
            assert!(previous.iter().all(|p| now.iter().any(|n| n.0 == p.0)), "a tenant vanished at {step}");
            previous = now;
        }
    }
    assert!(retired_seen, "tenant 2 is forgotten at usage resets");
    assert_eq!(
        totals(&queue),
        vec![(1, cpu[1], requests[1]), (2, cpu[2], requests[2])],
        "every charged request and its CPU is counted once"
    );
    assert!(requests[2] > requests[1], "the cap held tenant 1 back: {requests:?}");
    assert_eq!(queue.snapshot().evicted_tenants, EvictedTotals::default());
}

#[test]
fn retired_tenants_beyond_the_bound_fold_into_the_evicted_totals() {
    let clock = ManualClock::new();
    let config =
        WorkQueueConfig { initial_slots: 1, cores: 2.0, retired_tenants: 2, ..WorkQueueConfig::default() };
    let queue = WorkQueue::new(config, clock.shared()).unwrap();
    for id in 1..=5 {
        let mut permit = queue.try_admit(&tenant(id)).unwrap();
        permit.charge_cpu(Duration::from_millis(id));
        drop(permit);
        clock.advance(Duration::from_secs(1)); // the next release resets usage: `id` retires
    }
    queue.tick();
    let snapshot = queue.snapshot();
    assert!(snapshot.tenants.is_empty(), "{:?}", snapshot.tenants);
    let kept: Vec<u64> = snapshot.retired_tenants.iter().map(|t| t.tenant.0).collect();
    assert_eq!(kept, [4, 5], "the two retired last are kept");
    assert_eq!(
        snapshot.evicted_tenants,
        EvictedTotals { tenants: 3, total_cpu: Duration::from_millis(1 + 2 + 3), total_requests: 3 }
    );
    // A kept tenant that returns carries on from its totals.
    let mut permit = queue.try_admit(&tenant(5)).unwrap();
    permit.charge_cpu(Duration::from_millis(1));
    drop(permit);
    let five = queue.snapshot().tenants.into_iter().find(|t| t.tenant == TenantId(5)).unwrap();
    assert_eq!((five.total_cpu, five.total_requests), (Duration::from_millis(6), 2));
}
