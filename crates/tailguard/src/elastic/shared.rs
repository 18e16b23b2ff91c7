//! The limiter's shared state, and the paths that hand out and settle grants under its lock.
//!
//! A grant goes out at once when nobody waits and the bucket's balance is above zero
//! ([`Shared::grant_now`], the one fast path of `try_acquire`, `acquire` and `acquire_async`);
//! otherwise the caller waits in line ([`WaitQueue`]) and is granted, in order, whenever tokens
//! come back, the bucket refills or a tick runs. Wakers are collected under the lock and called
//! after it is released ([`Shared::unlock`]): a waker may run an executor's code.

use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};
use std::task::Waker;
use std::time::Duration;

use super::config::LimiterConfig;
use super::controller::Controller;
use super::demand::{Demand, Sampling};
use super::handle::ElasticHandle;
use super::quiet::QuietLatency;
use super::request::{AcquireError, AcquireRequest};
use super::signal::{LatencySignal, SignalMemory};
use super::snapshot::History;
use super::steal::{StealMeter, StealSource};
use super::utilization::{CpuReading, CpuUsage};
use super::waiters::{Outcome, WaitQueue};
use crate::budget::TokenBucket;
use crate::clock::{SharedClock, duration_nanos};
use crate::sync::{AtomicBool, AtomicU64, Condvar, Mutex, MutexGuard};
use crate::waitlist::WaiterKey;

/// Shortest a blocked waiter or the limiter thread sleeps before re-checking the bucket, so a
/// tiny deficit never turns into a busy loop.
pub(super) const MIN_WAIT_NANOS: u64 = 50_000;
/// Smallest grant: 1 ms of CPU (a grant must amortise the clock reads that bracket it).
const MIN_GRANT: Duration = Duration::from_millis(1);
/// Largest grant: 1 s of CPU, the bucket's capacity at one core's full share.
const MAX_GRANT: Duration = Duration::from_secs(1);

/// Everything behind the limiter's lock.
pub(crate) struct State {
    /// The share rule; its share is the one the limiter enforces once the window is warm.
    pub(super) controller: Controller,
    /// CPU-time tokens, filled at the enforced share × cores.
    pub(super) bucket: TokenBucket,
    pub(super) queue: WaitQueue,
    /// Wakers to call once the lock is released: a waker may run user code.
    pub(super) to_wake: Vec<Waker>,
    pub(super) signal: SignalMemory,
    pub(super) demand: Demand,
    pub(super) sampling: Sampling,
    pub(super) last_tick_nanos: u64,
    /// Controller ticks so far. Monotonically increasing, never reset.
    pub(super) ticks: u64,
    pub(super) history: History,
    /// The latency of ticks without elastic work, the working target's lower bound.
    pub(super) quiet: QuietLatency,
    /// The machine's steal over the newest half second (adaptive controller only).
    pub(super) steal: StealMeter,
}

impl State {
    /// The share the limiter enforces: the controller's once the window is warm (a fixed share
    /// is warm from the start), the floor before ("blind start").
    #[inline]
    pub(super) fn share(&self, config: &LimiterConfig) -> f64 {
        if self.signal.warm { self.controller.share() } else { config.floor }
    }
}

/// The limiter, shared by its clones, its handles, its futures and its thread.
pub(crate) struct Shared {
    pub(crate) config: LimiterConfig,
    pub(crate) clock: SharedClock,
    pub(super) signal: Option<Arc<dyn LatencySignal>>,
    /// CPU busy so far, for the utilisation peer (`None` for the other controllers).
    pub(super) cpu: Option<Arc<dyn CpuUsage>>,
    /// The machine's stolen CPU time, for the adaptive controller (`None` for the others, or
    /// with `steal_hold` 0).
    pub(super) steal: Option<Arc<dyn StealSource>>,
    state: Mutex<State>,
    /// Notified whenever tokens may be available or a waiter's outcome changed.
    pub(super) changed: Condvar,
    pub(super) stopped: AtomicBool,
    pub(super) created_nanos: u64,
    /// CPU granted, in nanoseconds. Monotonically increasing, except that a grant handed out
    /// but never collected is taken back.
    pub(crate) total_granted_nanos: AtomicU64,
    /// CPU used by settled grants, in nanoseconds. Monotonically increasing, never reset.
    pub(crate) total_used_nanos: AtomicU64,
    /// Real cuts of the share so far (see [`CUT_FORFEITS`](super::tick::CUT_FORFEITS)): a grant
    /// taken before the latest one ends at its handle's next meter read, and its unused rest is
    /// forfeited. Monotonically increasing, never reset.
    pub(crate) cuts: AtomicU64,
}

impl Shared {
    /// A limiter at `now` with `state` behind its lock.
    pub(super) fn new(
        config: LimiterConfig,
        clock: SharedClock,
        signal: Option<Arc<dyn LatencySignal>>,
        state: State,
        now: u64,
    ) -> Self {
        Shared {
            config,
            clock,
            signal,
            cpu: None,
            steal: None,
            state: Mutex::new(state),
            changed: Condvar::new(),
            stopped: AtomicBool::new(false),
            created_nanos: now,
            total_granted_nanos: AtomicU64::new(0),
            total_used_nanos: AtomicU64::new(0),
            cuts: AtomicU64::new(0),
        }
    }

    /// The CPU totals the utilisation peer reads: the source's busy time and the CPU the
    /// settled grants used. `None` without a source or when it cannot be read.
    pub(super) fn cpu_reading(&self) -> Option<CpuReading> {
        let busy_nanos = self.cpu.as_ref()?.busy_nanos()?;
        Some(CpuReading { busy_nanos, elastic_nanos: self.total_used_nanos.load(Ordering::Relaxed) })
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // The state stays consistent across a panic (no user code runs under the lock).
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Releases the lock, then calls the wakers collected under it: a waker may run user code
    /// (an executor's), which must not run while the limiter's lock is held.
    pub(crate) fn unlock(&self, mut state: MutexGuard<'_, State>) {
        let wakers = std::mem::take(&mut state.to_wake);
        drop(state);
        for waker in wakers {
            waker.wake();
        }
    }

    /// Whether the state lock is free now (tests check that wakers run outside it).
    #[cfg(test)]
    pub(super) fn lock_is_free(&self) -> bool {
        self.state.try_lock().is_ok()
    }

    /// The CPU a request asks for, in nanoseconds: its own grant or the configured one,
    /// clamped to 1 ms ..= 1 s.
    pub(super) fn grant_nanos(&self, request: &AcquireRequest) -> u64 {
        let grant = request.grant.unwrap_or(self.config.grant);
        duration_nanos(grant.clamp(MIN_GRANT, MAX_GRANT))
    }

    /// Refuses further grants and wakes every waiter (see [`Limiter::stop`](super::Limiter::stop)).
    ///
    /// The flag is set under the state lock, and every waiter checks it under that lock before
    /// it sleeps, so no waiter can miss the stop: it either sees the flag or is in the queue
    /// that is drained here.
    pub(super) fn stop(&self) {
        let mut state = self.lock();
        self.stopped.store(true, Ordering::Release);
        let now = self.clock.now_nanos();
        let State { queue, to_wake, demand, .. } = &mut *state;
        queue.stop(to_wake);
        demand.note_queue(true, now);
        self.changed.notify_all();
        self.unlock(state);
    }

    /// `Err(Stopped)` once [`stop`](Self::stop) ran. Takes the locked state so that the answer
    /// cannot change before the caller enqueues or sleeps.
    pub(super) fn check_running(&self, _locked: &State) -> Result<(), AcquireError> {
        if self.stopped.load(Ordering::Acquire) { Err(AcquireError::Stopped) } else { Ok(()) }
    }

    /// The fast path of every acquisition: a grant now, if nobody waits ahead and the balance
    /// is above zero. Returns the CPU granted, in nanoseconds.
    #[inline]
    pub(super) fn grant_now(&self, state: &mut State, request: &AcquireRequest, now: u64) -> Option<u64> {
        let grant_nanos = self.grant_nanos(request);
        if !state.queue.is_empty() || state.quiet.draining(now) || !state.bucket.try_take(grant_nanos, now) {
            return None;
        }
        state.queue.charge(request.tenant, grant_nanos);
        state.demand.granted(grant_nanos);
        self.asked(state, now);
        self.total_granted_nanos.fetch_add(grant_nanos, Ordering::Relaxed);
        Some(grant_nanos)
    }

    /// Work asked for CPU at `now`: the signal is wanted at its full rate from now on (the
    /// probe fires at once if it idled).
    #[inline]
    pub(super) fn asked(&self, state: &mut State, now: u64) {
        state.sampling.last_asked_nanos = now;
        if !state.sampling.wanted {
            state.sampling.wanted = true;
            if let Some(signal) = &self.signal {
                signal.set_wanted(true);
            }
        }
    }

    /// A request for CPU was refused at `now` (`try_acquire`, or a wait that timed out).
    pub(super) fn refused(&self, state: &mut State, now: u64) {
        state.demand.refused();
        self.asked(state, now);
    }

    /// Times out expired async waiters, then grants waiters in order while the balance is
    /// above zero. Returns whether any was granted. Wakers are collected in `state.to_wake`,
    /// for [`unlock`](Self::unlock) to call.
    pub(crate) fn grant_waiters(&self, state: &mut State, now: u64) -> bool {
        let mut any = false;
        let State { queue, bucket, to_wake, demand, quiet, .. } = state;
        queue.expire(now, to_wake);
        bucket.refill(now);
        while let Some((key, grant_nanos)) = queue.next().filter(|_| !quiet.draining(now)) {
            if !bucket.try_take(grant_nanos, now) {
                break;
            }
            to_wake.extend(queue.grant(key));
            demand.granted(grant_nanos);
            self.total_granted_nanos.fetch_add(grant_nanos, Ordering::Relaxed);
            any = true;
        }
        demand.note_queue(queue.is_empty(), now);
        any
    }

    /// Settles a finished handle and passes returned tokens on.
    pub(crate) fn settle(&self, granted_nanos: u64, used_nanos: u64) {
        self.total_used_nanos.fetch_add(used_nanos, Ordering::Relaxed);
        let now = self.clock.now_nanos();
        let mut state = self.lock();
        state.bucket.settle(granted_nanos, used_nanos, now);
        state.demand.settled();
        if self.grant_waiters(&mut state, now) {
            self.changed.notify_all();
        }
        self.unlock(state);
    }

    /// Puts a request in line (with an async waiter's waker and deadline).
    pub(super) fn enqueue(
        &self,
        state: &mut State,
        request: &AcquireRequest,
        waker: Option<Waker>,
        deadline_nanos: Option<u64>,
        now: u64,
    ) -> WaiterKey {
        let grant_nanos = self.grant_nanos(request);
        let key = state.queue.push(request.tenant, request.priority, grant_nanos, waker, deadline_nanos);
        state.demand.note_queue(false, now);
        self.asked(state, now);
        key
    }

    /// Forgets a waiter that gives up; a grant it was handed but did not collect is refunded,
    /// to the bucket, the totals and its tenant's granted CPU.
    pub(super) fn cancel(&self, state: &mut State, key: WaiterKey, now: u64) {
        if let Some(grant_nanos) = state.queue.cancel(key) {
            state.bucket.refund(grant_nanos, now);
            state.demand.ungranted(grant_nanos);
            self.total_granted_nanos.fetch_sub(grant_nanos, Ordering::Relaxed);
        }
        state.demand.note_queue(state.queue.is_empty(), now);
        if self.grant_waiters(state, now) {
            self.changed.notify_all();
        }
    }

    /// `acquire` and `acquire_timeout`: waits on the condvar, re-checking at least every tick.
    pub(super) fn acquire_blocking(
        self: &Arc<Self>,
        request: &AcquireRequest,
        timeout: Option<Duration>,
    ) -> Result<ElasticHandle, AcquireError> {
        let start = self.clock.now_nanos();
        let deadline = timeout.map(|t| start.saturating_add(duration_nanos(t)));
        let mut state = self.lock();
        self.check_running(&state)?;
        if let Some(grant_nanos) = self.grant_now(&mut state, request, start) {
            drop(state);
            return Ok(ElasticHandle::new(self.clone(), grant_nanos, request.yield_every));
        }
        let key = self.enqueue(&mut state, request, None, None, start);
        loop {
            match state.queue.outcome(key) {
                Outcome::Granted(grant_nanos) => {
                    self.unlock(state);
                    return Ok(ElasticHandle::new(self.clone(), grant_nanos, request.yield_every));
                }
                // Stopped: `stop` took it out of line and nothing was granted to it.
                Outcome::Stopped | Outcome::Expired => {
                    self.unlock(state);
                    return Err(AcquireError::Stopped);
                }
                Outcome::Waiting => {}
            }
            let now = self.clock.now_nanos();
            if self.grant_waiters(&mut state, now) {
                self.changed.notify_all();
                self.unlock(state);
                state = self.lock();
                continue;
            }
            if let (Some(deadline), Some(timeout)) = (deadline, timeout) {
                if now >= deadline {
                    self.cancel(&mut state, key, now);
                    self.unlock(state);
                    return Err(AcquireError::Timeout(timeout));
                }
            }
            if !state.to_wake.is_empty() {
                // Expired async waiters to wake: do it outside the lock, then look again.
                self.unlock(state);
                state = self.lock();
                continue;
            }
            let mut wait = state.bucket.nanos_until_positive().min(duration_nanos(self.config.tick));
            if let Some(deadline) = deadline {
                wait = wait.min(deadline - now);
            }
            let wait = Duration::from_nanos(wait.max(MIN_WAIT_NANOS));
            state = self.changed.wait_timeout(state, wait).unwrap_or_else(PoisonError::into_inner).0;
        }
    }
}
