//! The order waiters are granted in: priority and arrival within a tenant, fair sharing across tenants, weights.

use super::*;

#[test]
fn waiters_are_served_by_priority_then_arrival() {
    let clock = ManualClock::new();
    let limiter = fixed_limiter(&clock);
    let held = drain(&limiter);
    let mut low = limiter.acquire_async(&AcquireRequest::new().priority(0));
    let mut high = limiter.acquire_async(&AcquireRequest::new().priority(5));
    let mut high_later = limiter.acquire_async(&AcquireRequest::new().priority(5));
    for future in [&mut low, &mut high, &mut high_later] {
        assert!(poll(future).is_pending());
    }
    assert_eq!(limiter.snapshot().waiters, 3);
    // 100 ms of wall time refills 50 ms: one grant (the balance was 0, now positive).
    let mut kept = Vec::new();
    clock.advance(100 * MS);
    limiter.tick();
    assert!(!poll_keep(&mut high_later, &mut kept));
    assert!(!poll_keep(&mut low, &mut kept));
    assert!(poll_keep(&mut high, &mut kept));
    clock.advance(200 * MS);
    limiter.tick();
    assert!(!poll_keep(&mut low, &mut kept));
    assert!(poll_keep(&mut high_later, &mut kept));
    clock.advance(200 * MS);
    limiter.tick();
    assert!(poll_keep(&mut low, &mut kept));
    drop(held);
}

#[test]
fn tenants_share_fairly_within_a_priority() {
    let clock = ManualClock::new();
    let limiter = fixed_limiter(&clock);
    let held = drain(&limiter);
    // Tenant 1 queues 30 waiters before tenant 2 queues 10.
    let mut futures: Vec<(u64, AcquireFuture)> = (0..30)
        .map(|_| (1, limiter.acquire_async(&AcquireRequest::new().tenant(1))))
        .chain((0..10).map(|_| (2, limiter.acquire_async(&AcquireRequest::new().tenant(2)))))
        .collect();
    for (_, future) in &mut futures {
        assert!(poll(future).is_pending());
    }
    let mut served = [0u32; 3];
    let mut kept = Vec::new();
    for _ in 0..20 {
        clock.advance(200 * MS); // 100 ms of CPU: one grant
        limiter.tick();
        futures.retain_mut(|(tenant, future)| match poll(future) {
            Poll::Ready(handle) => {
                served[*tenant as usize] += 1;
                kept.push(handle);
                false
            }
            Poll::Pending => true,
        });
    }
    // Arrival order alone would give all 20 grants to tenant 1's 30 earlier waiters; fair
    // sharing alternates between the tenants (ties go to arrival).
    assert_eq!(served[1] + served[2], 20);
    assert_eq!(served, [0, 10, 10]);
    drop(held);
}

#[test]
fn tenant_weights_split_grants_in_proportion() {
    let clock = ManualClock::new();
    let limiter = Limiter::builder()
        .cores(2.0)
        .burst(ONE_SECOND_FILL)
        .controller(ControllerKind::Fixed(0.25))
        .tenant_weight(7, std::num::NonZeroU32::new(3).unwrap())
        .clock(clock.shared())
        .build()
        .unwrap();
    let held = drain(&limiter);
    let mut futures: Vec<(u64, AcquireFuture)> = (0..50)
        .flat_map(|_| [7, 8])
        .map(|tenant| (tenant, limiter.acquire_async(&AcquireRequest::new().tenant(tenant))))
        .collect();
    for (_, future) in &mut futures {
        assert!(poll(future).is_pending());
    }
    let mut served = HashMapCount::default();
    let mut kept = Vec::new();
    for _ in 0..40 {
        clock.advance(200 * MS);
        limiter.tick();
        futures.retain_mut(|(tenant, future)| !(poll_keep(future, &mut kept) && served.add(*tenant)));
    }
    assert_eq!(served.get(7) + served.get(8), 40);
    assert!((29..=31).contains(&served.get(7)), "weight 3 got {} of 40", served.get(7));
    drop(held);
}

#[derive(Default)]
struct HashMapCount(std::collections::HashMap<u64, u32>);

impl HashMapCount {
    fn add(&mut self, key: u64) -> bool {
        *self.0.entry(key).or_default() += 1;
        true
    }
    fn get(&self, key: u64) -> u32 {
        self.0.get(&key).copied().unwrap_or(0)
    }
}
