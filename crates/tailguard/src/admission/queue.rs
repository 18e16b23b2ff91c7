//! The work queue's shared state and its locked path: the ordered wait queue behind the
//! admission word.
//!
//! Waiters live in a slab ([`crate::waitlist`]), named by keys that go stale when they leave;
//! each tenant keeps a FIFO list of keys per priority, and deadlines wait in arrival order or,
//! when they come out of order, in a heap. Leaving is lazy: a waiter that is admitted, expires
//! or gives up is counted out at once (counts are exact) and its keys are dropped when they
//! come to the front. Wakers are called after the lock is released ([`Wakeups`]), so a woken
//! task never finds the lock still held by its waker. Nothing on this path allocates in steady
//! state.
//!
//! (One file: the locked path is one invariant — the counts, the per-tenant lists and the
//! deadline order change together under the lock — and splitting it would spread that
//! invariant over modules.)

use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock, PoisonError};
use std::time::Duration;

use crossbeam_utils::CachePadded;

use super::caps::{CapCharge, TenantLedger, tenant_bit};
use super::config::{QueueOrder, WorkQueueConfig};
use super::permit::Permit;
use super::request::{AdmitError, Deadline, Priority, Request, TenantId};
use super::retired::Retired;
use super::slots::{SlotChange, SlotController, SlotInput};
use super::snapshot::{Rejections, TenantSnapshot, WorkQueueSnapshot};
use super::wakeups::{Notify, Wakeups};
use super::word::AdmissionWord;
use crate::clock::{SharedClock, duration_nanos};
use crate::histogram::Histogram;
use crate::sync::{AtomicBool, AtomicU64, Condvar, Mutex, MutexGuard};
use crate::waitlist::{Deadlines, PriorityCounts, Slab, TenantState, Tenants, WaiterKey};

/// Longest a blocked thread sleeps before it re-checks the queue on its own.
const MAX_BLOCK_NANOS: u64 = 100_000_000;
/// Shortest such sleep, so a tiny remaining wait never turns into a busy loop.
const MIN_BLOCK_NANOS: u64 = 50_000;

pub(crate) struct Shared {
    /// Written by every admission and release: on a cache line of its own.
    pub(super) word: CachePadded<AdmissionWord>,
    /// This value's own `Arc`, for the permits of submitted jobs.
    pub(super) me: std::sync::Weak<Shared>,
    /// Bits of tenants that have a CPU cap (`tenant_bit`): their requests take the lock.
    pub(super) capped_mask: AtomicU64,
    pub(super) would_block: AtomicU64,
    /// Set by the sampler thread while it samples at the idle period.
    pub(super) sampler_idle: AtomicBool,
    pub(super) stopped: AtomicBool,
    pub(super) sampler: OnceLock<std::thread::Thread>,
    pub(crate) clock: SharedClock,
    pub(crate) config: WorkQueueConfig,
    pub(super) waits: Histogram,
    pub(super) inner: Mutex<Inner>,
}

pub(super) struct Inner {
    pub(super) controller: SlotController,
    pub(super) tenants: Tenants<TenantLedger>,
    /// Totals of tenants `tenants` no longer tracks.
    pub(super) retired: Retired,
    /// Every waiter until its outcome is collected (or it gives up).
    pub(super) waiters: Slab<Waiter>,
    /// Deadlines of waiting waiters.
    pub(super) deadlines: Deadlines,
    pub(super) waiting_by_priority: PriorityCounts,
    pub(super) waiting: usize,
    pub(super) next_seq: u64,
    pub(super) next_cap_generation: u64,
    pub(super) usage_reset_at: u64,
    pub(super) runnable_per_cpu: Option<f64>,
    pub(super) totals: Totals,
}

/// Counters of the locked path. Monotonically increasing, never reset.
#[derive(Default)]
pub(super) struct Totals {
    admitted_locked: u64,
    admitted_after_queueing: u64,
    deadline_exceeded: u64,
    queue_full: u64,
    cancelled: u64,
    samples: u64,
    increases: u64,
    decreases: u64,
}

pub(super) struct Waiter {
    tenant: TenantId,
    /// The tenant's index in `Tenants`, valid while the waiter waits (a tenant with waiters
    /// stays tracked).
    tenant_index: usize,
    priority: Priority,
    enqueued_nanos: u64,
    deadline: Option<u64>,
    pub(super) state: WaiterState,
}

pub(super) enum WaiterState {
    Waiting(Notify),
    Admitted(Option<CapCharge>),
    Failed(AdmitError),
}

/// Whether `key` names a waiter that still waits.
#[inline]
fn is_waiting(waiters: &Slab<Waiter>, key: WaiterKey) -> bool {
    waiters.get(key).is_some_and(|waiter| matches!(waiter.state, WaiterState::Waiting(_)))
}

impl Inner {
    /// The state of a queue with `controller`'s slots, whose first usage reset is due at
    /// `usage_reset_at`.
    pub(super) fn new(controller: SlotController, usage_reset_at: u64, retired_tenants: usize) -> Self {
        Inner {
            controller,
            tenants: Tenants::new(),
            retired: Retired::new(retired_tenants),
            waiters: Slab::new(),
            deadlines: Deadlines::new(),
            waiting_by_priority: PriorityCounts::new(),
            waiting: 0,
            next_seq: 0,
            next_cap_generation: 0,
            usage_reset_at,
            runnable_per_cpu: None,
            totals: Totals::default(),
        }
    }

    /// A tenant's index, tracking it from now on if it was not (with the totals kept from
    /// when it was last tracked).
    pub(super) fn tenant_index(&mut self, tenant: TenantId) -> usize {
        let Inner { tenants, retired, .. } = self;
        tenants.index_or_insert_with(tenant, || TenantLedger { cap: None, totals: retired.restore(tenant) })
    }

    /// A tenant's state, tracking it from now on if it was not (see [`tenant_index`](Self::tenant_index)).
    pub(super) fn tenant(&mut self, tenant: TenantId) -> &mut TenantState<TenantLedger> {
        let index = self.tenant_index(tenant);
        self.tenants.at(index)
    }
}

impl Shared {
    pub(super) fn lock(&self) -> MutexGuard<'_, Inner> {
        // The state stays consistent across a panic: no user code runs under the lock.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn stopped(&self) -> bool {
        self.stopped.load(Ordering::Acquire)
    }

    pub(super) fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
        if let Some(thread) = self.sampler.get() {
            thread.unpark();
        }
    }

    /// Whether nothing is admitted and nobody waits (the sampler may slow down).
    pub(crate) fn idle(&self) -> bool {
        self.word.idle()
    }

    /// Called by the sampler thread itself, first thing: an enqueue unparks it when idle.
    pub(crate) fn register_sampler(&self, thread: std::thread::Thread) {
        let _ = self.sampler.set(thread);
    }

    pub(crate) fn set_sampler_idle(&self, idle: bool) {
        self.sampler_idle.store(idle, Ordering::Relaxed);
    }

    /// Whether the sampler still samples at the idle period (an enqueue clears it).
    pub(crate) fn sampler_idle(&self) -> bool {
        self.sampler_idle.load(Ordering::Relaxed)
    }

    /// The lock-free path: one CAS when nobody waits, a slot is free and the tenant has no cap.
    #[inline]
    pub(super) fn try_fast(&self, tenant: TenantId) -> bool {
        self.capped_mask.load(Ordering::Relaxed) & tenant_bit(tenant) == 0 && self.word.try_admit()
    }

    /// Releases the slot of a permit admitted without a cap charge or CPU report.
    #[inline]
    pub(crate) fn release_fast(&self) {
        if self.word.return_slot() {
            self.hand_on();
        }
    }

    #[cold]
    #[inline(never)]
    fn hand_on(&self) {
        let now = self.clock.now_nanos();
        let mut wakeups = Wakeups::new();
        let mut inner = self.lock();
        self.housekeeping(&mut inner, now, &mut wakeups);
    }

    /// Releases the slot of a permit that charges CPU: settles the tenant's cap and totals.
    pub(crate) fn release_charged(&self, tenant: TenantId, cap: Option<CapCharge>, used_nanos: u64) {
        let now = self.clock.now_nanos();
        let mut wakeups = Wakeups::new();
        let mut inner = self.lock();
        let ledger = &mut inner.tenant(tenant).ledger;
        ledger.totals.cpu_nanos = ledger.totals.cpu_nanos.saturating_add(used_nanos);
        ledger.totals.requests += 1;
        if let (Some(charge), Some(cap)) = (cap, ledger.cap.as_mut()) {
            cap.settle(charge, used_nanos, now);
        }
        self.word.return_slot();
        self.housekeeping(&mut inner, now, &mut wakeups);
    }

    /// Usage reset, deadline expiry, then admission of waiters while slots are free.
    pub(super) fn housekeeping(&self, inner: &mut Inner, now: u64, wakeups: &mut Wakeups) {
        if now >= inner.usage_reset_at {
            self.reset_usage(inner, now);
        }
        loop {
            let Inner { waiters, deadlines, .. } = &mut *inner;
            let Some(key) = deadlines.pop_expired(now, |key| is_waiting(waiters, key)) else { break };
            let enqueued = waiters.get(key).map_or(now, |waiter| waiter.enqueued_nanos);
            let waited = Duration::from_nanos(now.saturating_sub(enqueued));
            let failed = WaiterState::Failed(AdmitError::DeadlineExceeded { waited });
            if let Some(notify) = Self::unqueue(inner, key, failed) {
                inner.totals.deadline_exceeded += 1;
                self.deliver(inner, key, notify, wakeups);
            }
        }
        self.grant(inner, now, wakeups);
    }

    /// Zeroes tenant usage and forgets tenants with nothing left to remember.
    fn reset_usage(&self, inner: &mut Inner, now: u64) {
        let period = duration_nanos(self.config.usage_reset).max(1);
        let behind = now - inner.usage_reset_at;
        inner.usage_reset_at = now + period - behind % period;
        let Inner { tenants, retired, .. } = inner;
        tenants.reset_usage(|state| {
            let forget = state.ledger.cap.is_none();
            if forget {
                retired.retire(state.id, state.ledger.totals);
            }
            forget
        });
    }

    /// Counts a waiting waiter out of the queue and gives it its outcome (`outcome`); returns
    /// how to wake it, or `None` (and changes nothing) if it was not waiting. The waiter stays
    /// in the slab until its outcome is collected.
    fn unqueue(inner: &mut Inner, key: WaiterKey, outcome: WaiterState) -> Option<Notify> {
        let waiter = inner.waiters.get_mut(key)?;
        let notify = match std::mem::replace(&mut waiter.state, outcome) {
            WaiterState::Waiting(notify) => notify,
            other => {
                waiter.state = other;
                return None;
            }
        };
        let (tenant_index, priority, has_deadline) =
            (waiter.tenant_index, waiter.priority, waiter.deadline.is_some());
        let Inner { tenants, waiters, deadlines, .. } = &mut *inner;
        let waiting = |key| is_waiting(waiters, key);
        tenants.leave(tenant_index, priority, waiting);
        if has_deadline {
            deadlines.leave(waiting);
        }
        inner.waiting_by_priority.remove(priority);
        inner.waiting -= 1;
        Some(notify)
    }

    /// The waiter to admit next, in the crate's one order ([`crate::order`]): among tenants
    /// with an eligible waiter (no cap, or a cap with a positive balance), the least usage per
    /// weight; within the tenant its highest priority, then FIFO (or LIFO under overload).
    fn pick(&self, inner: &mut Inner, now: u64) -> Option<WaiterKey> {
        let Inner { tenants, waiters, .. } = inner;
        let eligible = |state: &mut TenantState<TenantLedger>| {
            state.ledger.cap.as_mut().is_none_or(|cap| cap.eligible(now))
        };
        match self.config.order {
            QueueOrder::Fifo => tenants.pick(eligible, |oldest, _| oldest),
            QueueOrder::LifoUnderOverload { after } => tenants.pick(eligible, |oldest, newest| {
                let waited = waiters.get(oldest).map_or(0, |w| now.saturating_sub(w.enqueued_nanos));
                if waited >= duration_nanos(after) { newest } else { oldest }
            }),
        }
    }

    /// Admits waiters in order while slots are free. Returns whether any was admitted.
    /// Hands a waiter that has its outcome to `wakeups`: to be woken (it collects the outcome
    /// itself), or, for a submitted job, forgotten here and run with its permit or error.
    fn deliver(&self, inner: &mut Inner, key: WaiterKey, notify: Notify, wakeups: &mut Wakeups) {
        let Notify::Job(job) = notify else {
            wakeups.push(notify);
            return;
        };
        let tenant = inner.waiters.get(key).map(|waiter| waiter.tenant);
        match (Self::outcome(inner, key), tenant) {
            (Some(Ok(charge)), Some(tenant)) => match self.me.upgrade() {
                Some(shared) => wakeups.push_job(job, Ok(Permit::locked(shared, tenant, charge, false))),
                // Unreachable while `self` is borrowed from an `Arc`; never leak the slot.
                None => {
                    self.word.return_slot();
                }
            },
            (Some(Err(error)), _) => wakeups.push_job(job, Err(error)),
            _ => debug_assert!(false, "a job delivered without an outcome"),
        }
    }

    fn grant(&self, inner: &mut Inner, now: u64, wakeups: &mut Wakeups) -> bool {
        let mut any = false;
        // Free slots are checked first: under overload no slot is, and the order is not looked at.
        while inner.waiting > 0 && self.word.slot_free() {
            let Some(key) = self.pick(inner, now) else { break };
            if !self.word.take_slot() {
                break;
            }
            let Some(notify) = Self::unqueue(inner, key, WaiterState::Admitted(None)) else {
                debug_assert!(false, "picked waiters are waiting");
                self.word.return_slot();
                break;
            };
            let Inner { tenants, waiters, totals, .. } = &mut *inner;
            let Some(waiter) = waiters.get_mut(key) else { break };
            let state = tenants.at(waiter.tenant_index);
            state.usage += 1;
            let charge = state.ledger.cap.as_mut().map(|cap| cap.charge(now));
            waiter.state = WaiterState::Admitted(charge);
            let waited = now.saturating_sub(waiter.enqueued_nanos);
            self.waits.record(waited);
            totals.admitted_locked += 1;
            if waited > 0 {
                totals.admitted_after_queueing += 1;
            }
            self.deliver(inner, key, notify, wakeups);
            any = true;
        }
        if inner.waiting == 0 {
            self.word.clear_queued();
        }
        any
    }

    /// Under the lock: chores, checks, then queues the request and admits in order (it may be
    /// admitted at once). Returns its key. `notify` is called only if the request queues.
    pub(super) fn enqueue(
        &self,
        inner: &mut Inner,
        request: &Request,
        notify: impl FnOnce() -> Notify,
        now: u64,
        wakeups: &mut Wakeups,
    ) -> Result<WaiterKey, AdmitError> {
        self.housekeeping(inner, now, wakeups);
        // A deadline bounds the wait only: a request that finds a free slot (and no eligible
        // waiter ahead) is admitted below by `grant` whatever its deadline; one that would
        // have to wait past it fails there, at once.
        let expired = request.deadline.is_some_and(|deadline| now >= deadline.nanos());
        if let Some(limit) = self.config.queue_limit {
            if inner.waiting >= limit {
                if expired {
                    inner.totals.deadline_exceeded += 1;
                    return Err(AdmitError::DeadlineExceeded { waited: Duration::ZERO });
                }
                inner.totals.queue_full += 1;
                return Err(AdmitError::QueueFull { limit });
            }
        }
        let seq = inner.next_seq;
        inner.next_seq += 1;
        let deadline = request.deadline.map(Deadline::nanos);
        let tenant_index = inner.tenant_index(request.tenant);
        let key = inner.waiters.insert(
            seq,
            Waiter {
                tenant: request.tenant,
                tenant_index,
                priority: request.priority,
                enqueued_nanos: now,
                deadline,
                state: WaiterState::Waiting(notify()),
            },
        );
        inner.tenants.push_waiter(tenant_index, request.priority, key);
        if let Some(deadline) = deadline {
            inner.deadlines.push(deadline, key);
        }
        inner.waiting_by_priority.add(request.priority);
        inner.waiting += 1;
        self.word.set_queued();
        if self.sampler_idle.load(Ordering::Relaxed) && self.sampler_idle.swap(false, Ordering::Relaxed) {
            if let Some(thread) = self.sampler.get() {
                thread.unpark();
            }
        }
        self.grant(inner, now, wakeups);
        if expired {
            let failed = WaiterState::Failed(AdmitError::DeadlineExceeded { waited: Duration::ZERO });
            if let Some(notify) = Self::unqueue(inner, key, failed) {
                inner.totals.deadline_exceeded += 1;
                if inner.waiting == 0 {
                    self.word.clear_queued();
                }
                self.deliver(inner, key, notify, wakeups);
            }
        }
        Ok(key)
    }

    /// The outcome of a waiter, if it has one (the waiter is then forgotten).
    pub(super) fn outcome(
        inner: &mut Inner,
        key: WaiterKey,
    ) -> Option<Result<Option<CapCharge>, AdmitError>> {
        let waiter = inner.waiters.get(key)?;
        let outcome = match waiter.state {
            WaiterState::Waiting(_) => return None,
            WaiterState::Admitted(charge) => Ok(charge),
            WaiterState::Failed(error) => Err(error),
        };
        inner.waiters.remove(key);
        Some(outcome)
    }

    /// A waiter gives up: leaves the queue, or returns the slot it was handed. Returns its
    /// waker (or condvar) if it was still waiting, for the caller to drop after the lock.
    pub(super) fn cancel(
        &self,
        inner: &mut Inner,
        key: WaiterKey,
        now: u64,
        wakeups: &mut Wakeups,
    ) -> Option<Notify> {
        // The state given here is never read: the waiter is removed right after.
        let notify = Self::unqueue(inner, key, WaiterState::Failed(AdmitError::WouldBlock));
        let waiter = inner.waiters.remove(key);
        if notify.is_some() {
            inner.totals.cancelled += 1;
        } else if let Some(waiter) = waiter {
            if let WaiterState::Admitted(charge) = waiter.state {
                inner.totals.cancelled += 1;
                let cap = inner.tenants.get_mut(waiter.tenant).and_then(|state| state.ledger.cap.as_mut());
                if let (Some(charge), Some(cap)) = (charge, cap) {
                    cap.refund(charge, now);
                }
                self.word.return_slot();
            }
        }
        self.housekeeping(inner, now, wakeups);
        notify
    }

    // Out of line, so that the lock-free path it is the fallback of stays small.
    #[cold]
    #[inline(never)]
    pub(super) fn admit_blocking(self: &Arc<Self>, request: &Request) -> Result<Permit, AdmitError> {
        let condvar = Arc::new(Condvar::new());
        let now = self.clock.now_nanos();
        // Before the guard: whatever is collected is woken after the guard is dropped.
        let mut wakeups = Wakeups::new();
        let mut inner = self.lock();
        let key = self.enqueue(&mut inner, request, || Notify::Thread(condvar.clone()), now, &mut wakeups)?;
        loop {
            if let Some(outcome) = Self::outcome(&mut inner, key) {
                drop(inner);
                return outcome.map(|charge| Permit::locked(self.clone(), request.tenant, charge, true));
            }
            if !wakeups.is_empty() {
                // Others to wake first, without the lock; then look again.
                drop(inner);
                wakeups.wake_all();
                inner = self.lock();
                continue;
            }
            let now = self.clock.now_nanos();
            let mut wait = MAX_BLOCK_NANOS;
            if let Some(deadline) = request.deadline {
                wait = wait.min(deadline.nanos().saturating_sub(now));
            }
            if let Some(cap) = inner.tenants.get(request.tenant).and_then(|state| state.ledger.cap.as_ref()) {
                let refill = cap.bucket.nanos_until_positive();
                if refill > 0 {
                    wait = wait.min(refill);
                }
            }
            let wait = Duration::from_nanos(wait.max(MIN_BLOCK_NANOS));
            inner = condvar.wait_timeout(inner, wait).unwrap_or_else(PoisonError::into_inner).0;
            let now = self.clock.now_nanos();
            self.housekeeping(&mut inner, now, &mut wakeups);
        }
    }

    #[cold]
    #[inline(never)]
    pub(super) fn try_admit_locked(self: &Arc<Self>, request: &Request) -> Result<Permit, AdmitError> {
        let now = self.clock.now_nanos();
        let mut wakeups = Wakeups::new();
        let mut inner = self.lock();
        self.housekeeping(&mut inner, now, &mut wakeups);
        // Nobody eligible waits (`grant` just ran, so any eligible waiter left has no slot).
        let ahead = inner.waiting > 0 && self.pick(&mut inner, now).is_some();
        let state = inner.tenant(request.tenant);
        let eligible = state.ledger.cap.as_mut().is_none_or(|cap| cap.eligible(now));
        if ahead || !eligible || !self.word.take_slot() {
            // A free slot admits whatever the deadline; without one, a passed deadline says why.
            if request.deadline.is_some_and(|deadline| now >= deadline.nanos()) {
                inner.totals.deadline_exceeded += 1;
                return Err(AdmitError::DeadlineExceeded { waited: Duration::ZERO });
            }
            drop(inner);
            self.would_block.fetch_add(1, Ordering::Relaxed);
            return Err(AdmitError::WouldBlock);
        }
        state.usage += 1;
        let charge = state.ledger.cap.as_mut().map(|cap| cap.charge(now));
        inner.totals.admitted_locked += 1;
        self.waits.record(0);
        drop(inner);
        Ok(Permit::locked(self.clone(), request.tenant, charge, true))
    }

    pub(crate) fn record_sample(&self, runnable_per_cpu: f64) -> u32 {
        let now = self.clock.now_nanos();
        let mut wakeups = Wakeups::new();
        let mut inner = self.lock();
        let (used, _) = self.word.used_and_slots();
        let runnable_per_cpu = if self.config.count_admitted {
            runnable_per_cpu + f64::from(used) / self.config.cores
        } else {
            runnable_per_cpu
        };
        match inner.controller.sample(SlotInput { runnable_per_cpu, used }) {
            SlotChange::Increased => inner.totals.increases += 1,
            SlotChange::Decreased => inner.totals.decreases += 1,
            SlotChange::Unchanged => {}
        }
        let slots = inner.controller.slots();
        if slots != self.word.slots() {
            self.word.set_slots(slots);
        }
        inner.totals.samples += 1;
        if !runnable_per_cpu.is_nan() {
            inner.runnable_per_cpu = Some(runnable_per_cpu);
        }
        self.housekeeping(&mut inner, now, &mut wakeups);
        slots
    }

    pub(crate) fn tick(&self) {
        let now = self.clock.now_nanos();
        let mut wakeups = Wakeups::new();
        let mut inner = self.lock();
        self.housekeeping(&mut inner, now, &mut wakeups);
    }

    pub(crate) fn snapshot(&self) -> WorkQueueSnapshot {
        let now = self.clock.now_nanos();
        let inner = self.lock();
        let (used, slots) = self.word.used_and_slots();
        let fast = self.word.admitted_fast();
        let mut wait_time = self.waits.snapshot();
        if fast > 0 {
            let zeros = Histogram::new();
            zeros.record_n(0, fast);
            wait_time.merge(&zeros.snapshot());
        }
        let mut tenants: Vec<TenantSnapshot> = inner
            .tenants
            .tracked()
            .map(|state| TenantSnapshot {
                tenant: state.id,
                weight: state.weight.get(),
                cap: state.ledger.cap.as_ref().map(|cap| cap.share),
                cap_balance_nanos: state.ledger.cap.as_ref().map(|cap| {
                    let mut bucket = cap.bucket.clone();
                    bucket.refill(now);
                    bucket.balance_nanos()
                }),
                waiting: state.queue.len(),
                usage: state.usage,
                total_cpu: Duration::from_nanos(state.ledger.totals.cpu_nanos),
                total_requests: state.ledger.totals.requests,
            })
            .collect();
        tenants.sort_by_key(|t| t.tenant);
        WorkQueueSnapshot {
            slots,
            used,
            waiting: inner.waiting,
            waiting_by_priority: inner.waiting_by_priority.highest_first(),
            tenants,
            retired_tenants: inner.retired.totals(),
            evicted_tenants: inner.retired.evicted(),
            wait_time,
            total_admitted: fast + inner.totals.admitted_locked,
            total_admitted_after_queueing: inner.totals.admitted_after_queueing,
            total_rejected: Rejections {
                deadline_exceeded: inner.totals.deadline_exceeded,
                queue_full: inner.totals.queue_full,
                would_block: self.would_block.load(Ordering::Relaxed),
            },
            total_cancelled: inner.totals.cancelled,
            runnable_per_cpu: inner.runnable_per_cpu,
            total_samples: inner.totals.samples,
            total_slot_increases: inner.totals.increases,
            total_slot_decreases: inner.totals.decreases,
        }
    }
}
