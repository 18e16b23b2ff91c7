//! The limiter's waiters: callers waiting for a grant, served in the crate's one order
//! ([`crate::order`]) on the work queue's wait list ([`crate::waitlist`]).
//!
//! A tenant's usage is the CPU granted to it so far, in nanoseconds, never reset. A waiter
//! stays in the slab after it leaves the line until it collects its outcome (a grant, its
//! deadline, the stop) or gives up; the limiter's lock guards all of it. Queueing, granting,
//! expiring and cancelling cost amortised O(1) each, picking the next waiter O(tenants with
//! waiters); nothing allocates in steady state.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::task::Waker;

use crate::order::{Priority, TenantId};
use crate::waitlist::{Deadlines, Slab, Tenants, WaiterKey};

/// The index of [`TenantId::DEFAULT`] in `Tenants`: tracked first, never forgotten, so grants
/// to requests without a tenant of their own find it without hashing.
const DEFAULT_TENANT: usize = 0;

/// The limiter's waiters and the CPU granted per tenant.
pub(super) struct WaitQueue {
    waiters: Slab<Waiter>,
    /// Every tenant that asked, with its weight and the CPU granted to it (its usage); tenants
    /// are never forgotten.
    tenants: Tenants<()>,
    /// Deadlines of waiting async waiters ([`Limiter::acquire_async_timeout`](super::Limiter::acquire_async_timeout)).
    deadlines: Deadlines,
    /// Waiters in line (not yet granted, expired or stopped).
    waiting: usize,
    next_seq: u64,
}

struct Waiter {
    /// The tenant's index in `Tenants` (tenants are never forgotten, so it stays valid).
    tenant_index: usize,
    priority: Priority,
    grant_nanos: u64,
    deadline_nanos: Option<u64>,
    state: WaiterState,
}

enum WaiterState {
    /// In line; an async waiter's waker (a blocked thread waits on the limiter's condvar).
    Waiting(Option<Waker>),
    /// Handed its grant, not collected yet.
    Granted,
    /// Its deadline passed while it waited.
    Expired,
    /// Taken out of line by the limiter's stop.
    Stopped,
}

/// What a waiter finds when it looks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Outcome {
    /// Still in line.
    Waiting,
    /// Granted this much CPU, in nanoseconds.
    Granted(u64),
    /// Its deadline passed.
    Expired,
    /// The limiter stopped.
    Stopped,
}

/// Whether `key` names a waiter still in line.
#[inline]
fn is_waiting(waiters: &Slab<Waiter>, key: WaiterKey) -> bool {
    waiters.get(key).is_some_and(|waiter| matches!(waiter.state, WaiterState::Waiting(_)))
}

impl WaitQueue {
    /// An empty queue; tenants of `weights` weigh that much in fair sharing (others 1).
    pub(super) fn new(weights: &HashMap<TenantId, NonZeroU32>) -> Self {
        let mut tenants = Tenants::new();
        let default = tenants.index_or_insert(TenantId::DEFAULT);
        debug_assert_eq!(default, DEFAULT_TENANT);
        for (&tenant, &weight) in weights {
            tenants.entry(tenant).weight = weight;
        }
        WaitQueue { waiters: Slab::new(), tenants, deadlines: Deadlines::new(), waiting: 0, next_seq: 0 }
    }

    /// Waiters in line.
    #[inline]
    pub(super) fn len(&self) -> usize {
        self.waiting
    }

    #[inline]
    pub(super) fn is_empty(&self) -> bool {
        self.waiting == 0
    }

    /// Puts a waiter in line; `deadline_nanos` for an async waiter that gives up then.
    pub(super) fn push(
        &mut self,
        tenant: TenantId,
        priority: Priority,
        grant_nanos: u64,
        waker: Option<Waker>,
        deadline_nanos: Option<u64>,
    ) -> WaiterKey {
        let seq = self.next_seq;
        self.next_seq += 1;
        let tenant_index = self.index_of(tenant);
        let waiter = Waiter {
            tenant_index,
            priority,
            grant_nanos,
            deadline_nanos,
            state: WaiterState::Waiting(waker),
        };
        let key = self.waiters.insert(seq, waiter);
        self.tenants.push_waiter(tenant_index, priority, key);
        if let Some(deadline) = deadline_nanos {
            self.deadlines.push(deadline, key);
        }
        self.waiting += 1;
        key
    }

    /// Keeps the waker of an async waiter that is still in line current.
    pub(super) fn set_waker(&mut self, key: WaiterKey, waker: &Waker) {
        if let Some(Waiter { state: WaiterState::Waiting(slot), .. }) = self.waiters.get_mut(key) {
            match slot {
                Some(current) if current.will_wake(waker) => {}
                _ => *slot = Some(waker.clone()),
            }
        }
    }

    /// The next waiter in the crate's order, and the CPU it asks for.
    #[inline]
    pub(super) fn next(&mut self) -> Option<(WaiterKey, u64)> {
        let key = self.tenants.pick(|_| true, |oldest, _| oldest)?;
        Some((key, self.waiters.get(key)?.grant_nanos))
    }

    /// Hands `key` its grant and charges its tenant; returns its waker, to call after the lock.
    pub(super) fn grant(&mut self, key: WaiterKey) -> Option<Waker> {
        let waker = self.leave(key, WaiterState::Granted)?;
        let waiter = self.waiters.get(key)?;
        let tenant = self.tenants.at(waiter.tenant_index);
        tenant.usage = tenant.usage.saturating_add(waiter.grant_nanos);
        waker
    }

    /// Charges a grant handed out without queueing to its tenant.
    #[inline]
    pub(super) fn charge(&mut self, tenant: TenantId, grant_nanos: u64) {
        let index = self.index_of(tenant);
        let usage = &mut self.tenants.at(index).usage;
        *usage = usage.saturating_add(grant_nanos);
    }

    /// The index of `tenant`'s state, tracking it from now on if it was not.
    #[inline]
    fn index_of(&mut self, tenant: TenantId) -> usize {
        if tenant == TenantId::DEFAULT { DEFAULT_TENANT } else { self.tenants.index_or_insert(tenant) }
    }

    /// CPU granted to `tenant` so far, in nanoseconds.
    pub(super) fn granted_to(&self, tenant: TenantId) -> u64 {
        self.tenants.get(tenant).map_or(0, |state| state.usage)
    }

    /// Takes waiters whose deadline is at or before `now` out of line; their wakers go to
    /// `to_wake`.
    pub(super) fn expire(&mut self, now: u64, to_wake: &mut Vec<Waker>) {
        loop {
            let waiters = &self.waiters;
            let Some(key) = self.deadlines.pop_expired(now, |key| is_waiting(waiters, key)) else { break };
            if let Some(waker) = self.leave(key, WaiterState::Expired) {
                to_wake.extend(waker);
            }
        }
    }

    /// The earliest deadline of a waiter in line.
    pub(super) fn earliest_deadline(&mut self) -> Option<u64> {
        let waiters = &self.waiters;
        self.deadlines.earliest(|key| is_waiting(waiters, key))
    }

    /// Takes every waiter out of line (the limiter stopped); their wakers go to `to_wake`.
    pub(super) fn stop(&mut self, to_wake: &mut Vec<Waker>) {
        let keys: Vec<WaiterKey> = self.waiters.keys().collect();
        for key in keys {
            if let Some(waker) = self.leave(key, WaiterState::Stopped) {
                to_wake.extend(waker);
            }
        }
    }

    /// What `key` finds; a waiter out of line is forgotten once it looks.
    pub(super) fn outcome(&mut self, key: WaiterKey) -> Outcome {
        let Some(waiter) = self.waiters.get(key) else { return Outcome::Stopped };
        let outcome = match waiter.state {
            WaiterState::Waiting(_) => return Outcome::Waiting,
            WaiterState::Granted => Outcome::Granted(waiter.grant_nanos),
            WaiterState::Expired => Outcome::Expired,
            WaiterState::Stopped => Outcome::Stopped,
        };
        self.waiters.remove(key);
        outcome
    }

    /// Forgets a waiter that gives up. Returns the grant it was handed but never collected
    /// (taken back from its tenant's usage), for the caller to return to the bucket.
    pub(super) fn cancel(&mut self, key: WaiterKey) -> Option<u64> {
        let _waker = self.leave(key, WaiterState::Stopped);
        let waiter = self.waiters.remove(key)?;
        if !matches!(waiter.state, WaiterState::Granted) {
            return None;
        }
        let tenant = self.tenants.at(waiter.tenant_index);
        tenant.usage = tenant.usage.saturating_sub(waiter.grant_nanos);
        Some(waiter.grant_nanos)
    }

    /// Takes a waiter in line out of it with `outcome`; returns its waker, or `None` (and
    /// changes nothing) if it was not in line.
    fn leave(&mut self, key: WaiterKey, outcome: WaiterState) -> Option<Option<Waker>> {
        let waiter = self.waiters.get_mut(key)?;
        let waker = match std::mem::replace(&mut waiter.state, outcome) {
            WaiterState::Waiting(waker) => waker,
            other => {
                waiter.state = other;
                return None;
            }
        };
        let (tenant_index, priority, has_deadline) =
            (waiter.tenant_index, waiter.priority, waiter.deadline_nanos.is_some());
        let waiters = &self.waiters;
        let waiting = |key| is_waiting(waiters, key);
        self.tenants.leave(tenant_index, priority, waiting);
        if has_deadline {
            self.deadlines.leave(waiting);
        }
        self.waiting -= 1;
        Some(waker)
    }
}
