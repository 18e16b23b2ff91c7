//! The tenants a queue tracks, each with its waiters, and the pick of the next waiter in the
//! crate's one order ([`crate::order`]).

use std::collections::HashMap;
use std::num::NonZeroU32;

use super::hash::TenantHashBuilder;
use super::lists::PriorityLists;
use super::slab::WaiterKey;
use crate::order::{Priority, Rank, TenantId};

/// The tenants a queue tracks, at reusable indices: waiters name theirs by index, callers by
/// id through a map with a cheap hasher. `L` is what the queue keeps per tenant besides its
/// place in line (its ledger: a CPU cap, totals).
pub(crate) struct Tenants<L> {
    states: Vec<TenantState<L>>,
    /// Indices of untracked states, kept (with their lists' capacity) for the next new tenant.
    free: Vec<usize>,
    index: HashMap<TenantId, usize, TenantHashBuilder>,
    /// Indices of tenants with waiters, in no particular order.
    waiting: Vec<usize>,
}

/// One tenant: its weight, its usage, its waiters and its ledger.
pub(crate) struct TenantState<L> {
    pub(crate) id: TenantId,
    /// False while the state waits in `Tenants::free` for reuse.
    tracked: bool,
    pub(crate) weight: NonZeroU32,
    /// What the queue counts toward fair sharing (see [`crate::order`]).
    pub(crate) usage: u64,
    /// Its waiters, by priority then arrival.
    pub(crate) queue: PriorityLists,
    /// Its position in `Tenants::waiting` while it has waiters.
    waiting_at: usize,
    pub(crate) ledger: L,
}

impl<L: Default> TenantState<L> {
    fn new(id: TenantId, ledger: L) -> Self {
        TenantState {
            id,
            tracked: true,
            weight: NonZeroU32::MIN,
            usage: 0,
            queue: PriorityLists::new(),
            waiting_at: 0,
            ledger,
        }
    }

    /// Tracks another tenant in this untracked state (its lists are empty).
    fn reuse(&mut self, id: TenantId, ledger: L) {
        debug_assert!(!self.tracked && self.queue.is_empty());
        self.id = id;
        self.tracked = true;
        self.weight = NonZeroU32::MIN;
        self.usage = 0;
        self.ledger = ledger;
    }
}

impl<L: Default> Tenants<L> {
    pub(crate) fn new() -> Self {
        Tenants {
            states: Vec::new(),
            free: Vec::new(),
            index: HashMap::with_hasher(TenantHashBuilder::new()),
            waiting: Vec::new(),
        }
    }

    pub(crate) fn get(&self, tenant: TenantId) -> Option<&TenantState<L>> {
        self.index.get(&tenant).map(|&index| &self.states[index])
    }

    pub(crate) fn get_mut(&mut self, tenant: TenantId) -> Option<&mut TenantState<L>> {
        self.index.get(&tenant).map(|&index| &mut self.states[index])
    }

    /// The state at `index` (valid while a waiter names it: a tenant with waiters stays
    /// tracked).
    #[inline]
    pub(crate) fn at(&mut self, index: usize) -> &mut TenantState<L> {
        &mut self.states[index]
    }

    /// The index of a tenant's state, tracking it from now on if it was not.
    pub(crate) fn index_or_insert(&mut self, tenant: TenantId) -> usize {
        self.index_or_insert_with(tenant, L::default)
    }

    /// [`index_or_insert`](Self::index_or_insert), a new tenant starting with `ledger()`.
    pub(crate) fn index_or_insert_with(&mut self, tenant: TenantId, ledger: impl FnOnce() -> L) -> usize {
        if let Some(&index) = self.index.get(&tenant) {
            return index;
        }
        let index = match self.free.pop() {
            Some(index) => {
                self.states[index].reuse(tenant, ledger());
                index
            }
            None => {
                self.states.push(TenantState::new(tenant, ledger()));
                self.states.len() - 1
            }
        };
        self.index.insert(tenant, index);
        index
    }

    pub(crate) fn entry(&mut self, tenant: TenantId) -> &mut TenantState<L> {
        let index = self.index_or_insert(tenant);
        &mut self.states[index]
    }

    pub(crate) fn tracked(&self) -> impl Iterator<Item = &TenantState<L>> {
        self.states.iter().filter(|state| state.tracked)
    }

    pub(crate) fn push_waiter(&mut self, index: usize, priority: Priority, key: WaiterKey) {
        let state = &mut self.states[index];
        if state.queue.is_empty() {
            state.waiting_at = self.waiting.len();
            self.waiting.push(index);
        }
        state.queue.push(priority, key);
    }

    /// Counts out a waiter that left (see [`PriorityLists::leave`]).
    pub(crate) fn leave(&mut self, index: usize, priority: Priority, waiting: impl Fn(WaiterKey) -> bool) {
        let state = &mut self.states[index];
        state.queue.leave(priority, waiting);
        if state.queue.is_empty() {
            let at = state.waiting_at;
            self.waiting.swap_remove(at);
            if let Some(&moved) = self.waiting.get(at) {
                self.states[moved].waiting_at = at;
            }
        }
    }

    /// Zeroes usage and stops tracking tenants without waiters that `forget` allows (nothing
    /// else left to remember). `forget` is asked last: a state it says yes to is forgotten, so
    /// it may take what it wants to keep (e.g. totals) from it.
    pub(crate) fn reset_usage(&mut self, mut forget: impl FnMut(&TenantState<L>) -> bool) {
        for (index, state) in self.states.iter_mut().enumerate() {
            if !state.tracked {
                continue;
            }
            state.usage = 0;
            if state.queue.is_empty() && state.weight == NonZeroU32::MIN && forget(state) {
                state.tracked = false;
                self.index.remove(&state.id);
                self.free.push(index);
            }
        }
    }

    /// The next waiter in the crate's one order: among tenants with waiters that `eligible`
    /// accepts, the least usage per weight; ties by the candidate's priority, then arrival.
    /// Within a tenant its highest priority, and of that level the waiter `choose` picks from
    /// the oldest and the newest. O(tenants with waiters).
    #[inline]
    pub(crate) fn pick(
        &mut self,
        mut eligible: impl FnMut(&mut TenantState<L>) -> bool,
        mut choose: impl FnMut(WaiterKey, WaiterKey) -> WaiterKey,
    ) -> Option<WaiterKey> {
        let mut best: Option<(Rank, WaiterKey)> = None;
        for &index in &self.waiting {
            let state = &mut self.states[index];
            let Some((priority, oldest, newest)) = state.queue.head() else { continue };
            if !eligible(state) {
                continue;
            }
            let key = choose(oldest, newest);
            let rank = Rank { usage: state.usage, weight: state.weight, priority, arrival: key.seq };
            if best.is_none_or(|(best, _)| rank.serve_cmp(&best).is_lt()) {
                best = Some((rank, key));
            }
        }
        best.map(|(_, key)| key)
    }
}
