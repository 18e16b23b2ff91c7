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
                gauge!("tailguard_admission_waiting_by_priority", "priority" => priority.to_string()).set(0.0);
            }
        }
    }
    for (priority, waiting) in &snapshot.waiting_by_priority {
        gauge!("tailguard_admission_waiting_by_priority", "priority" => priority.to_string()).set(*waiting as f64);
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
