//! The order waiters are admitted in: tenant usage per weight, priority, arrival, LIFO under overload.

use super::*;

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
