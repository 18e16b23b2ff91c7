//! Who is served first: the tenant and priority that the elastic limiter ([`crate::elastic`])
//! and the admission queue ([`crate::admission`]) share, and the one order both serve their
//! waiters in.
//!
//! # The order
//!
//! 1. **Tenant.** Among tenants with a waiter that may go now, the one with the least usage
//!    per weight (weights default to 1). Usage is what each queue counts: the CPU granted so
//!    far for the limiter, the admissions since the last reset (every second) for the work
//!    queue. Ties go to the tenant whose next waiter has the higher priority, then to the
//!    earlier arrival.
//! 2. **Priority.** Within a tenant, the highest [`Priority`] first.
//! 3. **Arrival.** Within a priority, first come, first served (the work queue may serve the
//!    newest first under overload, see
//!    [`QueueOrder`](crate::admission::QueueOrder)).
//!
//! A tenant's priorities order its own requests: raising them never takes another tenant's
//! fair share. Requests that name no tenant belong to [`TenantId::DEFAULT`]. This is the order
//! of CockroachDB's admission work queues, used there for foreground and elastic work alike.
//!
//! ```
//! use tailguard::order::{Priority, TenantId};
//!
//! assert!(Priority::HIGHEST > Priority::HIGH && Priority::HIGH > Priority::NORMAL);
//! assert_eq!(Priority::from(-50), Priority::LOW);
//! assert_eq!(TenantId::from(7), TenantId(7));
//! assert_eq!(TenantId::default(), TenantId::DEFAULT);
//! ```
//!
//! # Costs
//!
//! Both types are plain integers (`u64`, `i8`); comparing two waiters' places costs two
//! 128-bit multiplications and two compares.

use std::cmp::Ordering;
use std::fmt;
use std::num::NonZeroU32;

/// A tenant: the unit of fair sharing, weights and CPU caps.
///
/// Requests without a tenant of their own use [`TenantId::DEFAULT`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TenantId(pub u64);

impl TenantId {
    /// The tenant of requests that name none.
    pub const DEFAULT: TenantId = TenantId(0);
}

impl From<u64> for TenantId {
    fn from(id: u64) -> Self {
        TenantId(id)
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// How urgent a request is, within its tenant: higher levels are served first.
///
/// Any `i8` level is allowed; the named levels follow CockroachDB's `admissionpb.WorkPriority`
/// (`LowPri` -128, `UserLowPri` -50, `NormalPri` 0, `UserHighPri` 50, `HighPri` 127), so that
/// liveness work such as heartbeats ([`Priority::HIGHEST`]) outranks normal requests.
///
/// ```
/// use tailguard::order::Priority;
///
/// assert!(Priority::new(-10) < Priority::NORMAL);
/// assert_eq!(Priority::default(), Priority::NORMAL);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Priority(i8);

impl Priority {
    /// The lowest level (-128): work that may wait for everything else.
    pub const LOWEST: Priority = Priority(i8::MIN);
    /// Low (-50): background requests of users.
    pub const LOW: Priority = Priority(-50);
    /// Normal (0), the default.
    pub const NORMAL: Priority = Priority(0);
    /// High (50): latency-critical user requests.
    pub const HIGH: Priority = Priority(50);
    /// The highest level (127): liveness work such as heartbeats.
    pub const HIGHEST: Priority = Priority(i8::MAX);

    /// A priority at any level.
    pub const fn new(level: i8) -> Self {
        Priority(level)
    }

    /// The level.
    pub const fn level(self) -> i8 {
        self.0
    }
}

impl From<i8> for Priority {
    fn from(level: i8) -> Self {
        Priority(level)
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A waiter's place in [the order](self): its tenant's usage and weight, its priority and its
/// arrival number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Rank {
    /// The tenant's usage, in the queue's own unit.
    pub(crate) usage: u64,
    pub(crate) weight: NonZeroU32,
    pub(crate) priority: Priority,
    /// Arrival number: lower came first.
    pub(crate) arrival: u64,
}

impl Rank {
    /// `Less` when `self` is served before `other`.
    #[inline]
    pub(crate) fn serve_cmp(&self, other: &Rank) -> Ordering {
        // usage / weight, compared exactly by cross-multiplication.
        let mine = u128::from(self.usage) * u128::from(other.weight.get());
        let theirs = u128::from(other.usage) * u128::from(self.weight.get());
        mine.cmp(&theirs).then(other.priority.cmp(&self.priority)).then(self.arrival.cmp(&other.arrival))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rank(usage: u64, weight: u32, priority: Priority, arrival: u64) -> Rank {
        Rank { usage, weight: NonZeroU32::new(weight).unwrap(), priority, arrival }
    }

    #[test]
    fn tenant_usage_per_weight_then_priority_then_arrival() {
        // Less usage per weight goes first, whatever the priority.
        let light = rank(1, 1, Priority::LOW, 9);
        let heavy = rank(2, 1, Priority::HIGHEST, 0);
        assert_eq!(light.serve_cmp(&heavy), Ordering::Less);
        // Weight 3 with usage 5 (5/3) goes before weight 1 with usage 2.
        assert_eq!(
            rank(5, 3, Priority::NORMAL, 9).serve_cmp(&rank(2, 1, Priority::NORMAL, 0)),
            Ordering::Less
        );
        // Equal usage per weight (2/1 = 6/3): priority, then arrival.
        assert_eq!(rank(2, 1, Priority::HIGH, 9).serve_cmp(&rank(6, 3, Priority::NORMAL, 0)), Ordering::Less);
        assert_eq!(
            rank(2, 1, Priority::HIGH, 9).serve_cmp(&rank(6, 3, Priority::HIGH, 0)),
            Ordering::Greater
        );
        assert_eq!(light.serve_cmp(&light), Ordering::Equal);
        // No overflow at the extremes.
        assert_eq!(
            rank(u64::MAX, u32::MAX, Priority::NORMAL, 0).serve_cmp(&rank(u64::MAX, 1, Priority::NORMAL, 0)),
            Ordering::Less
        );
    }
}
