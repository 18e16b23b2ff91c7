//! The bookkeeping of waiters behind a queue's lock, shared by the admission queue and the
//! elastic limiter: a slab of waiters named by keys that go stale, per-tenant FIFO lists per
//! priority, deadlines, counts per priority, and the pick of the next waiter in the crate's one
//! order ([`crate::order`]).
//!
//! Removal is lazy. A waiter that leaves (served, expired or cancelled) is counted out at once,
//! so the counts stay exact, but its key stays where it is until it reaches an end of its list
//! or the top of the deadline heap, where it is dropped; when stale keys come to outnumber live
//! ones the structure is compacted in one pass, so each removal costs amortised O(1) and memory
//! stays within twice the live waiters (plus a little slack). In steady state nothing
//! allocates: the slab, the lists and the heap keep their capacity. Picking the next waiter
//! costs O(tenants with waiters).

mod counts;
mod deadlines;
mod hash;
mod lists;
mod slab;
mod tenants;

pub(crate) use counts::PriorityCounts;
pub(crate) use deadlines::Deadlines;
pub(crate) use hash::TenantHashBuilder;
pub(crate) use slab::{Slab, WaiterKey};
pub(crate) use tenants::{TenantState, Tenants};

/// Stale keys a list or the heap tolerates beyond twice its live ones before it is compacted.
const COMPACT_SLACK: usize = 32;

#[cfg(test)]
mod tests;
