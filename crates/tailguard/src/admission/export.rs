//! Export of a work queue (feature `metrics`): gauges and request counters through the
//! [`metrics`] facade, and the admission-wait histogram and per-tenant CPU counters as
//! Prometheus text ([`crate::prometheus`]).
//!
//! [`WorkQueue::start`](super::WorkQueue::start)'s sampler thread publishes once per
//! [`EXPORT_INTERVAL`] (and [`describe`]s the metrics when it starts); a queue driven by hand
//! can call [`publish`] from its own tick. [`write()`] renders the text when `/metrics` is
//! scraped.
//!
//! | name | type | labels | unit | meaning |
//! |---|---|---|---|---|
//! | `tailguard_admission_wait_seconds` | histogram (text) | | seconds | time from the admission call to admission, every admitted request (0 for the lock-free path); cumulative, never reset |
//! | `tailguard_admission_tenant_cpu_seconds_total` | counter (text) | `tenant` | CPU seconds | CPU charged by the tenant's permits; never goes back (see below) |
//! | `tailguard_admission_tenant_requests_total` | counter | `tenant` | requests | permits that charged the tenant CPU (capped tenants' permits, and permits given `charge_cpu`); never goes back |
//! | `tailguard_admission_admitted_total` | counter | | requests | admitted; monotonic, never reset |
//! | `tailguard_admission_rejected_total` | counter | `reason` (`deadline_exceeded`, `queue_full`, `would_block`) | requests | refused; monotonic, never reset |
//! | `tailguard_admission_cancelled_total` | counter | | requests | waits given up by the caller; monotonic, never reset |
//! | `tailguard_admission_slots` | gauge | | slots | requests allowed to run at once |
//! | `tailguard_admission_slots_used` | gauge | | slots | slots in use |
//! | `tailguard_admission_waiting` | gauge | | requests | requests waiting |
//! | `tailguard_admission_waiting_by_priority` | gauge | `priority` | requests | waiting per priority level (0 once a level empties) |
//! | `tailguard_admission_waiting_by_tenant` | gauge | `tenant` | requests | waiting per tenant (0 once a tenant's waiters are gone) |
//! | `tailguard_admission_runnable_per_cpu` | gauge | | tasks per CPU | last run-queue sample |
//! | `tailguard_admission_wait_p50_seconds`, `_p99_seconds`, `_p999_seconds`, `_max_seconds` | gauge | | seconds | admission wait over the interval since the previous publish (not set while empty) |
//!
//! The histogram is the primary view of admission waits (it aggregates across instances); the
//! quantile gauges stay for recorders that are not Prometheus and for dashboards without
//! PromQL. Per-tenant totals come from
//! [`WorkQueueSnapshot::tenant_totals`]: tenants the queue tracks and tenants it forgot while
//! idle (whose totals it keeps), so a tenant's counters do not go back when it is forgotten;
//! the totals of tenants evicted from that bounded table are added together under
//! `tenant="evicted"`, so the sum over tenants never goes back either.

use std::time::Duration;

use metrics::{Unit, counter, describe_counter, describe_gauge, gauge};

use super::snapshot::WorkQueueSnapshot;
use crate::prometheus::{Exposition, Kind};

/// The `tenant` label of the totals of tenants evicted from the retired tenants' table.
pub const EVICTED_TENANTS: &str = "evicted";

/// Describes every metric [`publish`] sets (units and `# HELP` text) to the installed
/// recorder; call it once after installing one.
pub fn describe() {
    describe_gauge!(
        "tailguard_admission_slots",
        Unit::Count,
        "Admission slots: foreground requests allowed to run at once."
    );
    describe_gauge!("tailguard_admission_slots_used", Unit::Count, "Admission slots in use.");
    describe_gauge!("tailguard_admission_waiting", Unit::Count, "Requests waiting for admission.");
    describe_gauge!(
        "tailguard_admission_waiting_by_priority",
        Unit::Count,
        "Requests waiting for admission, by priority level."
    );
    describe_gauge!(
        "tailguard_admission_waiting_by_tenant",
        Unit::Count,
        "Requests waiting for admission, by tenant."
    );
    describe_gauge!(
        "tailguard_admission_runnable_per_cpu",
        "Last run-queue sample of the admission queue, in runnable tasks per CPU."
    );
    for (name, what) in [
        ("tailguard_admission_wait_p50_seconds", "Median"),
        ("tailguard_admission_wait_p99_seconds", "p99"),
        ("tailguard_admission_wait_p999_seconds", "p99.9"),
        ("tailguard_admission_wait_max_seconds", "Largest"),
    ] {
        describe_gauge!(name, Unit::Seconds, format!("{what} admission wait since the previous publish."));
    }
    describe_counter!("tailguard_admission_admitted_total", Unit::Count, "Requests admitted. Never reset.");
    describe_counter!(
        "tailguard_admission_rejected_total",
        Unit::Count,
        "Requests refused admission, by reason. Never reset."
    );
    describe_counter!(
        "tailguard_admission_cancelled_total",
        Unit::Count,
        "Admission waits given up by the caller. Never reset."
    );
    describe_counter!(
        "tailguard_admission_tenant_requests_total",
        Unit::Count,
        "Requests that charged CPU to the tenant (tenant=\"evicted\": tenants whose own totals were evicted). Never goes back."
    );
}

/// Writes the admission-wait histogram and the per-tenant CPU counters of `snapshot`.
pub fn write(out: &mut Exposition, snapshot: &WorkQueueSnapshot) {
    out.family(
        "tailguard_admission_wait_seconds",
        Kind::Histogram,
        "Time from the admission call to admission, every admitted request. Cumulative since start.",
    )
    .histogram(&[], &snapshot.wait_time);
    let mut cpu = out.family(
        "tailguard_admission_tenant_cpu_seconds_total",
        Kind::Counter,
        "CPU seconds charged by the tenant's requests (tenant=\"evicted\": tenants whose own totals were evicted). Never goes back.",
    );
    let mut label = String::new();
    for tenant in snapshot.tenant_totals() {
        label.clear();
        label.push_str(&tenant.tenant.to_string());
        cpu.value(&[("tenant", &label)], tenant.total_cpu.as_secs_f64());
    }
    let evicted = &snapshot.evicted_tenants;
    if evicted.tenants > 0 {
        cpu.value(&[("tenant", EVICTED_TENANTS)], evicted.total_cpu.as_secs_f64());
    }
}

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
        gauge!("tailguard_admission_waiting_by_tenant", "tenant" => tenant.tenant.to_string())
            .set(tenant.waiting as f64);
    }
    for tenant in snapshot.tenant_totals() {
        counter!("tailguard_admission_tenant_requests_total", "tenant" => tenant.tenant.to_string())
            .absolute(tenant.total_requests);
    }
    if snapshot.evicted_tenants.tenants > 0 {
        counter!("tailguard_admission_tenant_requests_total", "tenant" => EVICTED_TENANTS)
            .absolute(snapshot.evicted_tenants.total_requests);
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

    use super::{publish, write};
    use crate::admission::{Priority, Request, TenantId, WorkQueue, WorkQueueConfig};
    use crate::clock::ManualClock;
    use crate::prometheus::Exposition;

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
        assert!(seen.keys().all(|name| !name.contains("nanos")), "{seen:?}");
    }

    #[test]
    fn writes_the_wait_histogram_and_cpu_of_tracked_retired_and_evicted_tenants() {
        let clock = ManualClock::new();
        let config = WorkQueueConfig {
            initial_slots: 1,
            min_slots: 1,
            max_slots: 1,
            cores: 1.0,
            retired_tenants: 2,
            ..Default::default()
        };
        let queue = WorkQueue::new(config, clock.shared()).unwrap();
        for (tenant, cpu) in [(1, 250), (2, 500), (3, 125)] {
            let mut permit = queue.try_admit(&Request::new().tenant(TenantId(tenant))).unwrap();
            permit.charge_cpu(Duration::from_millis(cpu));
            drop(permit);
            clock.advance(Duration::from_secs(1)); // a usage reset at the next release
        }
        let mut permit = queue.try_admit(&Request::new().tenant(TenantId(3))).unwrap();
        permit.charge_cpu(Duration::from_millis(125));
        drop(permit);
        // 1 and 2 retired at the second reset, 3 at the third, evicting 1 (the table holds two);
        // 3 is tracked again.
        let snapshot = queue.snapshot();
        let mut out = Exposition::new();
        write(&mut out, &snapshot);
        let text = out.finish();
        for line in [
            "tailguard_admission_wait_seconds_bucket{le=\"0.00001\"} 4",
            "tailguard_admission_wait_seconds_count 4",
            "tailguard_admission_tenant_cpu_seconds_total{tenant=\"2\"} 0.5",
            "tailguard_admission_tenant_cpu_seconds_total{tenant=\"3\"} 0.25",
            "tailguard_admission_tenant_cpu_seconds_total{tenant=\"evicted\"} 0.25",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing from\n{text}");
        }
        let capture = Capture::default();
        metrics::with_local_recorder(&capture, || publish(&snapshot, None));
        let seen = capture.0.lock().unwrap();
        assert_eq!(seen["tailguard_admission_tenant_requests_total{tenant=2}"], 1.0);
        assert_eq!(seen["tailguard_admission_tenant_requests_total{tenant=3}"], 2.0);
        assert_eq!(seen["tailguard_admission_tenant_requests_total{tenant=evicted}"], 1.0);
    }
}
