//! The work queue's façade: [`WorkQueue`], what a caller holds to admit requests, tune
//! tenants and read snapshots.

use std::num::NonZeroU32;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock, PoisonError};
use std::time::Duration;

use crossbeam_utils::CachePadded;

use super::caps::{Cap, tenant_bit};
use super::config::{ConfigError, WorkQueueConfig};
use super::future::AdmitFuture;
use super::permit::Permit;
use super::queue::{Inner, Shared};
use super::request::{AdmitError, Deadline, Request, TenantId};
use super::slots::SlotController;
use super::snapshot::WorkQueueSnapshot;
use super::wakeups::{Job, Notify, Wakeups, run_jobs};
use super::word::AdmissionWord;
use crate::clock::{SharedClock, duration_nanos};
use crate::histogram::Histogram;
use crate::sync::{AtomicBool, AtomicU64, Mutex};

/// Stops the sampler thread when the last [`WorkQueue`] clone goes away.
struct Owner {
    shared: Arc<Shared>,
    sampler: std::sync::Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Drop for Owner {
    fn drop(&mut self) {
        self.shared.stop();
        let handle = self.sampler.get_mut().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(handle) = handle {
            // A sampler that panicked must not turn this drop into a panic.
            let _ = handle.join();
        }
    }
}

/// Foreground admission control: at most `slots` requests run at once, the slot count follows
/// the run queue, and waiters are ordered by tenant, priority and arrival.
///
/// Cheap to clone; clones share one queue. The sampler thread of
/// [`start`](Self::start) stops when the last clone is dropped.
///
/// ```
/// use std::time::Duration;
/// use tailguard::admission::{AdmitError, Priority, Request, WorkQueue, WorkQueueConfig};
/// use tailguard::clock::ManualClock;
///
/// let clock = ManualClock::new();
/// let config = WorkQueueConfig { initial_slots: 1, min_slots: 1, max_slots: 4, ..Default::default() };
/// let queue = WorkQueue::new(config, clock.shared())?;
///
/// let running = queue.try_admit(&Request::new())?; // the one slot
/// assert!(matches!(queue.try_admit(&Request::new()), Err(AdmitError::WouldBlock)));
///
/// // The run queue is short and every slot is used: the adjuster adds one.
/// assert_eq!(queue.record_sample(0.5), 2);
/// let heartbeat = queue.try_admit(&Request::new().priority(Priority::HIGHEST))?;
/// drop((running, heartbeat));
/// assert_eq!(queue.snapshot().total_admitted, 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct WorkQueue {
    shared: Arc<Shared>,
    _owner: Arc<Owner>,
}

impl std::fmt::Debug for WorkQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let word = &self.shared.word;
        f.debug_struct("WorkQueue")
            .field("slots", &word.slots())
            .field("used", &word.used())
            .field("queued", &word.queued())
            .finish_non_exhaustive()
    }
}

impl WorkQueue {
    /// A queue driven by hand: call [`record_sample`](Self::record_sample) with the run-queue
    /// signal (every 1 ms is the reference) and [`tick`](Self::tick) so that deadlines of
    /// async waiters and tenant caps are looked at even when no other event comes.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the field out of range.
    pub fn new(config: WorkQueueConfig, clock: SharedClock) -> Result<Self, ConfigError> {
        config.validate()?;
        let now = clock.now_nanos();
        let controller = SlotController::new(
            config.initial_slots,
            config.min_slots,
            config.max_slots,
            config.overload_threshold,
        );
        let word = AdmissionWord::new(controller.slots());
        let usage_reset_at = now.saturating_add(duration_nanos(config.usage_reset));
        let inner = Inner::new(controller, usage_reset_at, config.retired_tenants);
        let shared = Arc::new_cyclic(|me| Shared {
            me: me.clone(),
            word: CachePadded::new(word),
            capped_mask: AtomicU64::new(0),
            would_block: AtomicU64::new(0),
            sampler_idle: AtomicBool::new(false),
            stopped: AtomicBool::new(false),
            sampler: OnceLock::new(),
            clock,
            config,
            waits: Histogram::new(),
            inner: Mutex::new(inner),
        });
        let owner = Arc::new(Owner { shared: shared.clone(), sampler: std::sync::Mutex::new(None) });
        Ok(WorkQueue { shared, _owner: owner })
    }

    /// Keeps the sampler thread's handle, to join it when the last clone goes away.
    pub(crate) fn attach_sampler(&self, handle: std::thread::JoinHandle<()>) {
        *self._owner.sampler.lock().unwrap_or_else(PoisonError::into_inner) = Some(handle);
    }

    /// Takes the sampler thread's handle (to join it after [`stop`](Self::stop)); later drops
    /// of the last clone then have nothing to join.
    #[cfg_attr(not(feature = "tokio"), allow(dead_code, reason = "only the front door joins it"))]
    pub(crate) fn take_sampler(&self) -> Option<std::thread::JoinHandle<()>> {
        self._owner.sampler.lock().unwrap_or_else(PoisonError::into_inner).take()
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// The validated configuration.
    pub fn config(&self) -> &WorkQueueConfig {
        &self.shared.config
    }

    /// The current slot count (one atomic load).
    pub fn slots(&self) -> u32 {
        self.shared.word.slots()
    }

    /// Slots in use now (one atomic load).
    pub fn used(&self) -> u32 {
        self.shared.word.used()
    }

    /// A deadline `after` from now on the queue's clock.
    pub fn deadline_in(&self, after: Duration) -> Deadline {
        Deadline::at_nanos(self.shared.clock.now_nanos().saturating_add(duration_nanos(after)))
    }

    /// Admits the request, blocking the thread while it waits.
    ///
    /// When a slot is free and nobody waits this is one compare-and-swap (no lock, no clock
    /// read), whatever the request's deadline: a deadline bounds the wait only. For a tenant with a CPU cap, the permit
    /// measures the thread's CPU time until it is dropped (on this thread) and charges it.
    ///
    /// Blocks the calling thread: from async code use [`admit_async`](Self::admit_async), so
    /// that a runtime worker is not held while its request waits.
    ///
    /// # Errors
    ///
    /// [`AdmitError::DeadlineExceeded`] when the deadline passes first (the wait is given up
    /// and leaves nothing behind), [`AdmitError::QueueFull`] when `queue_limit` waiters wait.
    pub fn admit(&self, request: &Request) -> Result<Permit, AdmitError> {
        if self.shared.try_fast(request.tenant) {
            return Ok(Permit::fast(self.shared.clone(), request.tenant));
        }
        self.shared.admit_blocking(request)
    }

    /// Admits the request without blocking the thread: the future resolves once admitted.
    ///
    /// Cancellation-safe: dropping the future gives up its place, and a slot it was handed
    /// but did not collect goes back (to the next waiter). A waiting future fails at its
    /// deadline on the queue's next event — a sample (every 1 ms while work waits, with
    /// [`start`](Self::start)), a tick, an admission or a release — or when polled.
    ///
    /// Permits of async admissions do not measure thread CPU (a task shares its thread with
    /// others); for a capped tenant report the CPU with [`Permit::charge_cpu`].
    pub fn admit_async(&self, request: &Request) -> AdmitFuture {
        AdmitFuture::new(self.shared.clone(), *request)
    }

    /// Queues `job` to run once the request is admitted, without holding a thread or a task
    /// while it waits: `job` gets its [`Permit`], or the [`AdmitError`] that refused it.
    ///
    /// - A free slot (and nobody waiting first): `job` runs now, on this thread.
    /// - Otherwise it waits in order like any other request and runs on the thread whose
    ///   release (or sample, or tick) hands it a slot, after the queue's lock is released; a
    ///   worker of an async runtime that finishes a request thus starts the next one on its own
    ///   run queue. At its deadline it runs with [`AdmitError::DeadlineExceeded`] on the thread
    ///   that notices (the next event, as for [`admit_async`](Self::admit_async)); when the
    ///   queue is full, at once with [`AdmitError::QueueFull`].
    ///
    /// Keep `job` short (spawn the work, or send it somewhere): it runs inside another
    /// request's release. Jobs that become runnable while one runs wait for it on the same
    /// thread rather than nesting. A job that panics does not stop the others; its panic is
    /// resumed on that thread once they have run. The permit does not measure thread CPU (report
    /// it with [`Permit::charge_cpu`]). A job still waiting when the last handle to the queue
    /// (clones, permits, futures) is dropped is dropped without running.
    ///
    /// ```
    /// use std::sync::mpsc;
    /// use tailguard::admission::{Request, WorkQueue, WorkQueueConfig};
    /// use tailguard::clock::ManualClock;
    ///
    /// let clock = ManualClock::new();
    /// let config = WorkQueueConfig { initial_slots: 1, min_slots: 1, max_slots: 1, ..Default::default() };
    /// let queue = WorkQueue::new(config, clock.shared())?;
    /// let (tx, rx) = mpsc::channel();
    /// for name in ["first", "second"] {
    ///     let tx = tx.clone();
    ///     queue.submit(&Request::new(), move |admitted| tx.send((name, admitted)).unwrap());
    /// }
    /// let (name, first) = rx.recv()?; // ran at once, on this thread: the slot was free
    /// assert_eq!(name, "first");
    /// assert!(rx.try_recv().is_err()); // the second waits, holding no thread
    /// drop(first); // its release runs the second job with the slot
    /// let (name, second) = rx.recv()?;
    /// assert_eq!(name, "second");
    /// assert!(second.is_ok());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn submit<F>(&self, request: &Request, job: F)
    where
        F: FnOnce(Result<Permit, AdmitError>) + Send + 'static,
    {
        if self.shared.try_fast(request.tenant) {
            run_jobs([(Box::new(job) as Job, Ok(Permit::fast(self.shared.clone(), request.tenant)))]);
            return;
        }
        let now = self.shared.clock.now_nanos();
        let mut job = Some(Box::new(job) as Job);
        // Before the guard: the jobs this admits (this one included) run after it is dropped.
        let mut wakeups = Wakeups::new();
        let mut inner = self.shared.lock();
        let queued = self.shared.enqueue(
            &mut inner,
            request,
            || Notify::Job(job.take().expect("taken once")),
            now,
            &mut wakeups,
        );
        drop(inner);
        if let (Err(error), Some(job)) = (queued, job) {
            wakeups.push_job(job, Err(error));
        }
    }

    /// Admits the request if a slot is free now and no waiter comes first.
    ///
    /// # Errors
    ///
    /// [`AdmitError::WouldBlock`] when it would have to wait, [`AdmitError::DeadlineExceeded`]
    /// instead when it would have to wait and its deadline has already passed (a free slot
    /// admits it whatever its deadline).
    pub fn try_admit(&self, request: &Request) -> Result<Permit, AdmitError> {
        if self.shared.try_fast(request.tenant) {
            return Ok(Permit::fast(self.shared.clone(), request.tenant));
        }
        self.shared.try_admit_locked(request)
    }

    /// Sets a tenant's weight (default 1): among waiting tenants, the one with the least
    /// usage per weight goes first, so a tenant of weight 3 is admitted three times as often
    /// as one of weight 1 while both wait.
    pub fn set_tenant_weight(&self, tenant: TenantId, weight: NonZeroU32) {
        let mut inner = self.shared.lock();
        inner.tenant(tenant).weight = weight;
    }

    /// Soft-caps a tenant at `share` of the machine's CPU (`share × cores` CPU-seconds per
    /// second).
    ///
    /// The cap is the elastic limiter's [`TokenBucket`](crate::budget::TokenBucket) of CPU nanoseconds (capacity one second
    /// of fill): a request of the tenant is admitted while the balance is above zero, takes
    /// the tenant's moving estimate of CPU per request, and settles against the CPU measured
    /// when its permit is dropped — unused CPU goes back, over-use becomes debt (bounded at one
    /// second of fill) that later requests wait out. Requests of capped tenants always take the
    /// locked path, and while they wait for their bucket to refill, so do other tenants'
    /// (the queue is not empty). Replacing a cap starts a full bucket.
    ///
    /// # Errors
    ///
    /// [`ConfigError::TenantCap`] unless `0 < share <= 1`.
    pub fn set_tenant_cap(&self, tenant: TenantId, share: f64) -> Result<(), ConfigError> {
        if !(share > 0.0 && share <= 1.0) {
            return Err(ConfigError::TenantCap(share));
        }
        let now = self.shared.clock.now_nanos();
        let mut inner = self.shared.lock();
        let generation = inner.next_cap_generation;
        inner.next_cap_generation += 1;
        let state = inner.tenant(tenant);
        let estimate_nanos = state.ledger.cap.as_ref().map_or(0, Cap::estimate_nanos);
        state.ledger.cap = Some(Cap::new(share, self.shared.config.cores, estimate_nanos, generation, now));
        self.shared.capped_mask.fetch_or(tenant_bit(tenant), Ordering::Relaxed);
        Ok(())
    }

    /// Removes a tenant's CPU cap; its waiters become eligible at once.
    pub fn clear_tenant_cap(&self, tenant: TenantId) {
        let now = self.shared.clock.now_nanos();
        let mut wakeups = Wakeups::new();
        let mut inner = self.shared.lock();
        if let Some(state) = inner.tenants.get_mut(tenant) {
            state.ledger.cap = None;
        }
        let mask =
            inner.tenants.tracked().filter(|s| s.ledger.cap.is_some()).fold(0, |m, s| m | tenant_bit(s.id));
        self.shared.capped_mask.store(mask, Ordering::Relaxed);
        self.shared.housekeeping(&mut inner, now, &mut wakeups);
    }

    /// Feeds one run-queue sample (runnable tasks per CPU) to the slot adjuster, then does
    /// the [`tick`](Self::tick) chores. Returns the slot count after the sample.
    ///
    /// This is the entry point of the sampler thread of [`start`](Self::start); call it
    /// yourself with [`new`](Self::new). A NaN sample leaves the slots unchanged. With
    /// [`count_admitted`](WorkQueueConfig::count_admitted), slots in use per core are added.
    pub fn record_sample(&self, runnable_per_cpu: f64) -> u32 {
        self.shared.record_sample(runnable_per_cpu)
    }

    /// Fails waiters whose deadline has passed, resets tenant usage when its interval ends,
    /// and admits waiters whose tenant cap has refilled.
    pub fn tick(&self) {
        self.shared.tick();
    }

    /// Stops the sampler thread of [`start`](Self::start), if any. Admission keeps working;
    /// the slot count stays where it is unless samples are recorded by hand.
    pub fn stop(&self) {
        self.shared.stop();
    }

    /// A point-in-time view (takes the lock; builds a histogram copy).
    pub fn snapshot(&self) -> WorkQueueSnapshot {
        self.shared.snapshot()
    }
}
