//! Random scripts against a model of the LIFO-under-overload order.

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
        let level: Vec<&&Waiting> = live.iter().filter(|w| w.tenant == tenant && w.priority == top).collect();
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
