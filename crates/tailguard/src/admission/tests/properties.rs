//! Random scripts of arrivals, releases and give-ups against a model of the FIFO order.

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
                            // Only a request that would wait fails at once, whatever its deadline.
                            prop_assert_eq!(error, AdmitError::DeadlineExceeded { waited: Duration::ZERO });
                            prop_assert_eq!(deadline_ms, Some(0));
                            prop_assert!(!waiting.is_empty() || before.used >= before.slots);
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
