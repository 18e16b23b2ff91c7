//! A point-in-time view of a work queue, for dashboards and the `metrics` export.

use std::time::Duration;

use super::request::{Priority, TenantId};
use crate::histogram::HistogramSnapshot;

/// A point-in-time view of a [`WorkQueue`](super::WorkQueue).
///
/// Gauges (`slots`, `used`, `waiting`, ...) are current values; every `total_*` field is
/// monotonically increasing and never reset. Plain fields, so a caller can serialise them with
/// whatever it uses.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkQueueSnapshot {
    /// Slots: requests allowed to run at once.
    pub slots: u32,
    /// Slots in use (admitted permits not yet dropped). May exceed `slots` for a while after
    /// the count went down.
    pub used: u32,
    /// Requests waiting.
    pub waiting: usize,
    /// Requests waiting per priority level, highest level first; levels without waiters are
    /// left out.
    pub waiting_by_priority: Vec<(Priority, usize)>,
    /// Tenants the queue tracks, by id: every tenant with a weight or cap set, every tenant
    /// with waiters, and tenants seen since the last usage reset.
    pub tenants: Vec<TenantSnapshot>,
    /// Tenants no longer tracked (forgotten while idle at a usage reset) whose totals the
    /// queue keeps, by id; at most
    /// [`retired_tenants`](super::WorkQueueConfig::retired_tenants) of them. A tenant is in
    /// `tenants` or here, never both; see [`tenant_totals`](Self::tenant_totals).
    pub retired_tenants: Vec<TenantTotals>,
    /// Totals of the tenants evicted from `retired_tenants` to bound it, added together.
    pub evicted_tenants: EvictedTotals,
    /// Time from the admission call to admission, for every admitted request. Requests
    /// admitted at once by the lock-free path count as zero.
    pub wait_time: HistogramSnapshot,
    /// Requests admitted.
    pub total_admitted: u64,
    /// Requests admitted after queueing (the rest were admitted at once).
    pub total_admitted_after_queueing: u64,
    /// Requests refused, by reason.
    pub total_rejected: Rejections,
    /// Waits given up by the caller (a dropped future), including admitted-but-uncollected
    /// ones whose slot went back.
    pub total_cancelled: u64,
    /// The last run-queue sample, in runnable tasks per CPU; `None` before the first.
    pub runnable_per_cpu: Option<f64>,
    /// Run-queue samples applied.
    pub total_samples: u64,
    /// Samples that added a slot.
    pub total_slot_increases: u64,
    /// Samples that removed a slot.
    pub total_slot_decreases: u64,
}

/// Refused requests by reason; monotonically increasing, never reset.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rejections {
    /// Deadlines that passed before admission (in the queue or on arrival).
    pub deadline_exceeded: u64,
    /// Arrivals refused because the queue held `queue_limit` waiters.
    pub queue_full: u64,
    /// `try_admit` calls that found no free slot.
    pub would_block: u64,
}

impl Rejections {
    /// All rejections.
    pub fn total(&self) -> u64 {
        self.deadline_exceeded + self.queue_full + self.would_block
    }
}

/// One tenant's state.
#[derive(Clone, Debug, PartialEq)]
pub struct TenantSnapshot {
    /// The tenant.
    pub tenant: TenantId,
    /// Its weight (default 1).
    pub weight: u32,
    /// Its CPU cap as a share of the machine, if any.
    pub cap: Option<f64>,
    /// CPU-time balance of the cap's token bucket in nanoseconds (negative: debt), if capped.
    pub cap_balance_nanos: Option<i64>,
    /// Its requests waiting.
    pub waiting: usize,
    /// Admissions counted for ordering since the last usage reset.
    pub usage: u64,
    /// CPU charged by its permits (measured for capped tenants, reported with
    /// [`Permit::charge_cpu`](super::Permit::charge_cpu) otherwise); monotonically
    /// increasing, never reset, kept while the tenant is not tracked (see
    /// [`WorkQueueSnapshot::retired_tenants`]).
    pub total_cpu: Duration,
    /// Its permits that charged CPU, as [`TenantTotals::total_requests`] counts them.
    pub total_requests: u64,
}

/// A tenant's cumulative figures: monotonically increasing, never reset (unless the tenant was
/// evicted from the retired tenants' table and came back; its earlier totals are then in
/// [`WorkQueueSnapshot::evicted_tenants`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TenantTotals {
    /// The tenant.
    pub tenant: TenantId,
    /// CPU charged by its permits.
    pub total_cpu: Duration,
    /// Its permits that charged CPU when dropped: every permit of a capped tenant, and every
    /// permit given [`Permit::charge_cpu`](super::Permit::charge_cpu). Permits of uncapped
    /// tenants that report nothing take the lock-free path and are counted only in
    /// [`WorkQueueSnapshot::total_admitted`].
    pub total_requests: u64,
}

/// The totals of tenants evicted from the retired tenants' table, added together.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvictedTotals {
    /// Tenants evicted (one that returned and was evicted again counts twice).
    pub tenants: u64,
    /// Their CPU.
    pub total_cpu: Duration,
    /// Their requests.
    pub total_requests: u64,
}

impl WorkQueueSnapshot {
    /// Totals of every tenant the queue remembers, tracked or retired, by id.
    pub fn tenant_totals(&self) -> Vec<TenantTotals> {
        let tracked = self.tenants.iter().map(|t| TenantTotals {
            tenant: t.tenant,
            total_cpu: t.total_cpu,
            total_requests: t.total_requests,
        });
        let mut totals: Vec<TenantTotals> = tracked.chain(self.retired_tenants.iter().copied()).collect();
        totals.sort_by_key(|t| t.tenant);
        totals
    }
}
