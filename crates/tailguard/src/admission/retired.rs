//! Totals of tenants the work queue stopped tracking, so that a tenant's cumulative CPU and
//! request counts never go back.
//!
//! The queue forgets an idle tenant at a usage reset (every `usage_reset`, 1 s by default) to
//! keep its per-tenant state small; a tenant whose requests all take the lock-free path is idle
//! at almost every reset, however busy it is. Its totals move here, and come back when the
//! tenant is tracked again. The table is bounded by
//! [`WorkQueueConfig::retired_tenants`](super::WorkQueueConfig::retired_tenants) entries of
//! 24 bytes (plus the map's overhead, about 50 bytes an entry in all): when it is full, the
//! tenant retired longest ago is evicted into one aggregate, `evicted`, so the sum over all
//! tenants still never goes back. Only a tenant that returns after its eviction starts again
//! from zero. Tenants that return are taken out of the table, so it fills only with tenants
//! that stay away.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use super::request::TenantId;
use super::snapshot::{EvictedTotals, TenantTotals};
use crate::waitlist::TenantHashBuilder;

/// One tenant's totals. Monotonically increasing, never reset.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Kept {
    /// CPU charged by its permits, in nanoseconds.
    pub(super) cpu_nanos: u64,
    /// Permits that charged it (see [`TenantTotals::total_requests`]).
    pub(super) requests: u64,
}

impl Kept {
    pub(super) fn is_zero(&self) -> bool {
        self.cpu_nanos == 0 && self.requests == 0
    }

    fn add(&mut self, other: Kept) {
        self.cpu_nanos = self.cpu_nanos.saturating_add(other.cpu_nanos);
        self.requests = self.requests.saturating_add(other.requests);
    }

    pub(super) fn totals(&self, tenant: TenantId) -> TenantTotals {
        TenantTotals {
            tenant,
            total_cpu: Duration::from_nanos(self.cpu_nanos),
            total_requests: self.requests,
        }
    }
}

/// The totals of untracked tenants, oldest retirement evicted first.
pub(super) struct Retired {
    capacity: usize,
    /// Totals and the retirement's sequence number (to tell live entries of `order` from stale).
    by_tenant: HashMap<TenantId, (Kept, u64), TenantHashBuilder>,
    /// Retirements in order; an entry is stale once its tenant returned (or retired again).
    order: VecDeque<(TenantId, u64)>,
    next_seq: u64,
    evicted: Kept,
    evicted_tenants: u64,
}

impl Retired {
    pub(super) fn new(capacity: usize) -> Self {
        Retired {
            capacity,
            by_tenant: HashMap::with_hasher(TenantHashBuilder::new()),
            order: VecDeque::new(),
            next_seq: 0,
            evicted: Kept::default(),
            evicted_tenants: 0,
        }
    }

    /// Keeps the totals of a tenant the queue stops tracking (nothing to keep for zero).
    pub(super) fn retire(&mut self, tenant: TenantId, kept: Kept) {
        if kept.is_zero() {
            return;
        }
        if self.capacity == 0 {
            self.evict(kept);
            return;
        }
        while self.by_tenant.len() >= self.capacity {
            let Some((oldest, seq)) = self.order.pop_front() else { break };
            if self.by_tenant.get(&oldest).is_some_and(|&(_, at)| at == seq) {
                let (kept, _) = self.by_tenant.remove(&oldest).unwrap_or_default();
                self.evict(kept);
            }
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.by_tenant.insert(tenant, (kept, seq));
        self.order.push_back((tenant, seq));
        // Returning tenants leave stale entries behind: drop them once they are half the queue,
        // so `order` stays within twice the table (amortised O(1) per retirement).
        if self.order.len() > 2 * self.capacity.max(self.by_tenant.len()) {
            let by_tenant = &self.by_tenant;
            self.order.retain(|(tenant, seq)| by_tenant.get(tenant).is_some_and(|&(_, at)| at == *seq));
        }
    }

    /// Takes back the totals of a tenant tracked again (zero if none were kept).
    pub(super) fn restore(&mut self, tenant: TenantId) -> Kept {
        self.by_tenant.remove(&tenant).map(|(kept, _)| kept).unwrap_or_default()
    }

    fn evict(&mut self, kept: Kept) {
        self.evicted.add(kept);
        self.evicted_tenants += 1;
    }

    /// The kept totals, by tenant id.
    pub(super) fn totals(&self) -> Vec<TenantTotals> {
        let mut totals: Vec<TenantTotals> =
            self.by_tenant.iter().map(|(&tenant, (kept, _))| kept.totals(tenant)).collect();
        totals.sort_by_key(|t| t.tenant);
        totals
    }

    /// What eviction folded together.
    pub(super) fn evicted(&self) -> EvictedTotals {
        EvictedTotals {
            tenants: self.evicted_tenants,
            total_cpu: Duration::from_nanos(self.evicted.cpu_nanos),
            total_requests: self.evicted.requests,
        }
    }

    #[cfg(test)]
    pub(super) fn order_len(&self) -> usize {
        self.order.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kept(cpu_nanos: u64, requests: u64) -> Kept {
        Kept { cpu_nanos, requests }
    }

    #[test]
    fn a_full_table_evicts_the_oldest_retirement_into_the_aggregate() {
        let mut retired = Retired::new(2);
        retired.retire(TenantId(1), kept(10, 1));
        retired.retire(TenantId(2), kept(20, 2));
        retired.retire(TenantId(3), Kept::default()); // nothing to keep
        assert_eq!(retired.restore(TenantId(2)), kept(20, 2)); // 2 came back
        retired.retire(TenantId(4), kept(40, 4));
        retired.retire(TenantId(2), kept(25, 3)); // 2 retires again: 1 is the oldest, evicted
        let ids: Vec<u64> = retired.totals().iter().map(|t| t.tenant.0).collect();
        assert_eq!(ids, [2, 4]);
        assert_eq!(
            retired.evicted(),
            EvictedTotals { tenants: 1, total_cpu: Duration::from_nanos(10), total_requests: 1 }
        );
        assert_eq!(retired.restore(TenantId(1)), Kept::default()); // evicted: starts from zero
    }

    #[test]
    fn returning_tenants_leave_no_unbounded_trail() {
        let mut retired = Retired::new(4);
        for round in 1..=1000 {
            retired.retire(TenantId(7), kept(round, round));
            assert_eq!(retired.restore(TenantId(7)), kept(round, round));
        }
        assert!(retired.order_len() <= 8, "{}", retired.order_len());
        assert_eq!(retired.evicted().tenants, 0);
    }

    #[test]
    fn capacity_zero_evicts_at_once() {
        let mut retired = Retired::new(0);
        retired.retire(TenantId(1), kept(5, 1));
        assert!(retired.totals().is_empty());
        assert_eq!(retired.evicted().total_requests, 1);
    }
}
