//! Export of a work queue through the [`metrics`] facade (feature `metrics`).
//!
//! [`WorkQueue::start`](super::WorkQueue::start)'s sampler thread publishes once per
//! [`EXPORT_INTERVAL`]; a queue driven by hand can call [`publish`] from its own tick.
//!
//! | name | kind | labels | unit |
//! |---|---|---|---|
//! | `tailguard_admission_slots` | gauge | | slots |
//! | `tailguard_admission_slots_used` | gauge | | slots |
//! | `tailguard_admission_waiting` | gauge | | requests |
//! | `tailguard_admission_waiting_by_priority` | gauge | `priority` | requests (0 once a level empties) |
//! | `tailguard_admission_waiting_by_tenant` | gauge | `tenant` | requests |
//! | `tailguard_admission_runnable_per_cpu` | gauge | | last run-queue sample |
//! | `tailguard_admission_wait_p50_seconds`, `_p99_seconds`, `_p999_seconds`, `_max_seconds` | gauge | | admission wait over the interval since the previous publish (not set while empty) |
//! | `tailguard_admission_admitted_total` | counter | | requests, monotonic, never reset |
//! | `tailguard_admission_rejected_total` | counter | `reason` (`deadline_exceeded`, `queue_full`, `would_block`) | requests, monotonic, never reset |
//! | `tailguard_admission_cancelled_total` | counter | | requests, monotonic, never reset |
//! | `tailguard_admission_tenant_cpu_nanos_total` | counter | `tenant` | CPU nanoseconds charged, monotonic while tracked |

use std::time::Duration;

use metrics::{counter, gauge};

use super::snapshot::WorkQueueSnapshot;

/// How often the sampler thread publishes.
pub const EXPORT_INTERVAL: Duration = Duration::from_secs(1);

/// Publishes `snapshot`; wait-time quantiles cover the admissions since `previous` (since the
/// queue started without one), and priority levels or tenants that had waiters in `previous`
/// but have none now are set to 0.
pub fn publish(snapshot: &WorkQueueSnapshot, previous: Option<&WorkQueueSnapshot>) {
    gauge!("tailguard_admission_slots").set(f64::from(snapshot.slots));
    gauge!("tailguard_admission_slots_used").set(f64::from(snapshot.used));
    gauge!("tailguard_admission_waiting").set(snapshot.waiting as f64);
    if let Some(previous) = previous {
        for (priority, _) in &previous.waiting_by_priority {
            if !snapshot.waiting_by_priority.iter().any(|(p, _)| p == priority) {
                gauge!("tailguard_admission_waiting_by_priority", "priority" => priority.to_string())
                    .set(0.0);
            }
        }
    }
    for (priority, waiting) in &snapshot.waiting_by_priority {
        gauge!("tailguard_admission_waiting_by_priority", "priority" => priority.to_string())
            .set(*waiting as f64);
    }
    for tenant in previous.map_or(&[][..], |p| &p.tenants[..]) {
        if tenant.waiting > 0 && !snapshot.tenants.iter().any(|t| t.tenant == tenant.tenant) {
            gauge!("tailguard_admission_waiting_by_tenant", "tenant" => tenant.tenant.to_string()).set(0.0);
        }
    }
    for tenant in &snapshot.tenants {
        let label = tenant.tenant.to_string();
        gauge!("tailguard_admission_waiting_by_tenant", "tenant" => label.clone()).set(tenant.waiting as f64);
        counter!("tailguard_admission_tenant_cpu_nanos_total", "tenant" => label)
            .absolute(crate::clock::duration_nanos(tenant.total_cpu));
    }
    if let Some(runnable) = snapshot.runnable_per_cpu {
        gauge!("tailguard_admission_runnable_per_cpu").set(runnable);
    }
    let waits = match previous {
        Some(previous) => snapshot.wait_time.since(&previous.wait_time),
        None => snapshot.wait_time.clone(),
    };
    let quantiles = waits.summary();
    let gauges = [
        ("tailguard_admission_wait_p50_seconds", quantiles.p50),
        ("tailguard_admission_wait_p99_seconds", quantiles.p99),
        ("tailguard_admission_wait_p999_seconds", quantiles.p999),
        ("tailguard_admission_wait_max_seconds", quantiles.max),
    ];
    for (name, value) in gauges {
        if let Some(value) = value {
            gauge!(name).set(value.as_secs_f64());
        }
    }
    counter!("tailguard_admission_admitted_total").absolute(snapshot.total_admitted);
    let rejected = &snapshot.total_rejected;
    for (reason, total) in [
        ("deadline_exceeded", rejected.deadline_exceeded),
        ("queue_full", rejected.queue_full),
        ("would_block", rejected.would_block),
    ] {
        counter!("tailguard_admission_rejected_total", "reason" => reason).absolute(total);
    }
    counter!("tailguard_admission_cancelled_total").absolute(snapshot.total_cancelled);
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use metrics::{
        Counter, CounterFn, Gauge, GaugeFn, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit,
    };

    use super::publish;
    use crate::admission::{Priority, Request, TenantId, WorkQueue, WorkQueueConfig};
    use crate::clock::ManualClock;

    type Values = Arc<Mutex<BTreeMap<String, f64>>>;

    /// Keeps the last value written to each metric, keyed `name{label=value,...}`.
    #[derive(Default)]
    struct Capture(Values);

    struct Slot(String, Values);

    impl GaugeFn for Slot {
        fn increment(&self, _: f64) {}
        fn decrement(&self, _: f64) {}
        fn set(&self, value: f64) {
            self.1.lock().unwrap().insert(self.0.clone(), value);
        }
    }

    impl CounterFn for Slot {
        fn increment(&self, _: u64) {}
        fn absolute(&self, value: u64) {
            GaugeFn::set(self, value as f64);
        }
    }

    fn name(key: &Key) -> String {
        let labels: Vec<String> = key.labels().map(|l| format!("{}={}", l.key(), l.value())).collect();
        format!("{}{{{}}}", key.name(), labels.join(","))
    }

    impl Recorder for Capture {
        fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
            Counter::from_arc(Arc::new(Slot(name(key), self.0.clone())))
        }
        fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
            Gauge::from_arc(Arc::new(Slot(name(key), self.0.clone())))
        }
        fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
            Histogram::noop()
        }
    }

    #[test]
    fn publishes_slots_waiters_waits_and_rejections() {
        let clock = ManualClock::new();
        let config = WorkQueueConfig {
            initial_slots: 1,
            min_slots: 1,
            max_slots: 1,
            cores: 1.0,
            ..Default::default()
        };
        let queue = WorkQueue::new(config, clock.shared()).unwrap();
        let held = queue.try_admit(&Request::new()).unwrap();
        let waiting = queue.admit_async(&Request::new().tenant(TenantId(3)).priority(Priority::HIGH));
        let mut waiting = Box::pin(waiting);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        assert!(std::future::Future::poll(waiting.as_mut(), &mut cx).is_pending());
        let _ = queue.try_admit(&Request::new()); // refused: would block
        queue.record_sample(3.0);
        let capture = Capture::default();
        let first = queue.snapshot();
        metrics::with_local_recorder(&capture, || publish(&first, None));
        {
            let seen = capture.0.lock().unwrap();
            let get = |k: &str| *seen.get(k).unwrap_or_else(|| panic!("{k} not published: {seen:?}"));
            assert_eq!(get("tailguard_admission_slots{}"), 1.0);
            assert_eq!(get("tailguard_admission_slots_used{}"), 1.0);
            assert_eq!(get("tailguard_admission_waiting{}"), 1.0);
            assert_eq!(get("tailguard_admission_waiting_by_priority{priority=50}"), 1.0);
            assert_eq!(get("tailguard_admission_waiting_by_tenant{tenant=3}"), 1.0);
            assert_eq!(get("tailguard_admission_runnable_per_cpu{}"), 3.0);
            assert_eq!(get("tailguard_admission_admitted_total{}"), 1.0);
            assert_eq!(get("tailguard_admission_rejected_total{reason=would_block}"), 1.0);
            assert_eq!(get("tailguard_admission_wait_max_seconds{}"), 0.0);
        }
        // The waiter is admitted after 4 ms: the next publish shows only that wait, and the
        // emptied priority level and tenant go to zero.
        clock.advance(Duration::from_millis(4));
        drop(held);
        let std::task::Poll::Ready(Ok(permit)) = std::future::Future::poll(waiting.as_mut(), &mut cx) else {
            panic!("the waiter gets the slot")
        };
        drop(permit);
        let second = queue.snapshot();
        metrics::with_local_recorder(&capture, || publish(&second, Some(&first)));
        let seen = capture.0.lock().unwrap();
        assert_eq!(seen["tailguard_admission_waiting_by_priority{priority=50}"], 0.0);
        assert_eq!(seen["tailguard_admission_waiting_by_tenant{tenant=3}"], 0.0);
        assert_eq!(seen["tailguard_admission_admitted_total{}"], 2.0);
        let p50 = seen["tailguard_admission_wait_p50_seconds{}"];
        assert!((p50 - 0.004).abs() < 0.004 / 32.0, "{p50}");
    }
}
