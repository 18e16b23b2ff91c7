//! The work queue: lock-free admission while nobody waits, an ordered wait queue otherwise.
//!
//! # The admission word
//!
//! One `AtomicU64` holds the slots in use (bits 0..32), the slot count (bits 32..63) and a
//! `QUEUED` flag (bit 63) that is set while anyone waits. The fast path admits with one
//! compare-and-swap when the flag is clear and a slot is free, and releases with one
//! `fetch_sub`; everything else takes the mutex. Because the flag and the counts share one
//! word, a release and an enqueue cannot miss each other: either the release's decrement comes
//! first (then the enqueuer, which sets the flag and then tries to take a slot under the
//! lock, finds it free) or the flag comes first (then the release sees it and hands the slot on
//! under the lock). The flag is cleared under the lock when the last waiter leaves.
//!
//! # The locked path
//!
//! Waiters live in a slab ([`super::waiters`]), named by keys that go stale when they leave;
//! each tenant keeps a FIFO list of keys per priority, and deadlines wait in arrival order or,
//! when they come out of order, in a heap. Leaving is lazy: a waiter that is admitted, expires
//! or gives up is counted out at once (counts are exact) and its keys are dropped when they
//! come to the front. Tenants are found by index from their waiters and through a map with a
//! cheap seeded hasher from callers. Wakers are called after the lock is released
//! ([`Wakeups`]), so a woken task never finds the lock still held by its waker. Nothing on
//! this path allocates in steady state.

use std::cmp::Reverse;
use std::collections::HashMap;
use std::future::Future;
use std::num::NonZeroU32;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use crossbeam_utils::CachePadded;

use super::config::{ConfigError, QueueOrder, WorkQueueConfig};
use super::permit::{CapCharge, Permit};
use super::request::{AdmitError, Deadline, Priority, Request, TenantId};
use super::slots::{SlotChange, SlotController, SlotInput};
use super::snapshot::{Rejections, TenantSnapshot, WorkQueueSnapshot};
use super::waiters::{Deadlines, PriorityCounts, PriorityLists, Slab, TenantHashBuilder, WaiterKey};
use crate::clock::{SharedClock, duration_nanos};
use crate::elastic::TokenBucket;
use crate::histogram::Histogram;
use crate::sync::{AtomicBool, AtomicU64, Condvar, Mutex, MutexGuard};

const USED_MASK: u64 = u32::MAX as u64;
const SLOTS_SHIFT: u32 = 32;
const SLOTS_MASK: u64 = (super::config::MAX_SLOTS_LIMIT as u64) << SLOTS_SHIFT;
const QUEUED: u64 = 1 << 63;

/// Longest a blocked thread sleeps before it re-checks the queue on its own.
const MAX_BLOCK_NANOS: u64 = 100_000_000;
/// Shortest such sleep, so a tiny remaining wait never turns into a busy loop.
const MIN_BLOCK_NANOS: u64 = 50_000;
/// Weight of a new CPU measurement in a capped tenant's per-request estimate (1/8, an EWMA).
const ESTIMATE_SHIFT: u32 = 3;
/// Wake-ups one queue event collects without allocating: a release admits one waiter, a
/// sample may also expire a few.
const INLINE_WAKEUPS: usize = 4;

#[inline]
fn used_of(word: u64) -> u32 {
    (word & USED_MASK) as u32
}

#[inline]
fn slots_of(word: u64) -> u32 {
    ((word & SLOTS_MASK) >> SLOTS_SHIFT) as u32
}

/// The bit of a tenant in the capped-tenants filter (a one-word Bloom filter).
#[inline]
fn tenant_bit(tenant: TenantId) -> u64 {
    1 << (tenant.0 % 64)
}

/// Written by every admission and release: kept on its own cache line.
struct Hot {
    word: AtomicU64,
    /// Admissions by the lock-free path.
    admitted_fast: AtomicU64,
}

pub(crate) struct Shared {
    hot: CachePadded<Hot>,
    /// This value's own `Arc`, for the permits of submitted jobs.
    me: std::sync::Weak<Shared>,
    /// Bits of tenants that have a CPU cap (`tenant_bit`): their requests take the lock.
    capped_mask: AtomicU64,
    would_block: AtomicU64,
    /// Set by the sampler thread while it samples at the idle period.
    sampler_idle: AtomicBool,
    stopped: AtomicBool,
    sampler: OnceLock<std::thread::Thread>,
    pub(crate) clock: SharedClock,
    pub(crate) config: WorkQueueConfig,
    waits: Histogram,
    inner: Mutex<Inner>,
}

struct Inner {
    controller: SlotController,
    tenants: Tenants,
    /// Every waiter until its outcome is collected (or it gives up).
    waiters: Slab<Waiter>,
    /// Deadlines of waiting waiters.
    deadlines: Deadlines,
    waiting_by_priority: PriorityCounts,
    waiting: usize,
    next_seq: u64,
    next_cap_generation: u64,
    usage_reset_at: u64,
    runnable_per_cpu: Option<f64>,
    totals: Totals,
}

#[derive(Default)]
struct Totals {
    admitted_locked: u64,
    admitted_after_queueing: u64,
    deadline_exceeded: u64,
    queue_full: u64,
    cancelled: u64,
    samples: u64,
    increases: u64,
    decreases: u64,
}

/// The tenants the queue tracks, at reusable indices: waiters name theirs by index, callers
/// by id through a map with a cheap hasher.
struct Tenants {
    states: Vec<TenantState>,
    /// Indices of untracked states, kept (with their lists' capacity) for the next new tenant.
    free: Vec<usize>,
    index: HashMap<TenantId, usize, TenantHashBuilder>,
    /// Indices of tenants with waiters, in no particular order.
    waiting: Vec<usize>,
}

impl Tenants {
    fn new() -> Self {
        Tenants {
            states: Vec::new(),
            free: Vec::new(),
            index: HashMap::with_hasher(TenantHashBuilder::new()),
            waiting: Vec::new(),
        }
    }

    fn get(&self, tenant: TenantId) -> Option<&TenantState> {
        self.index.get(&tenant).map(|&index| &self.states[index])
    }

    fn get_mut(&mut self, tenant: TenantId) -> Option<&mut TenantState> {
        self.index.get(&tenant).map(|&index| &mut self.states[index])
    }

    /// The index of a tenant's state, tracking it from now on if it was not.
    fn index_or_insert(&mut self, tenant: TenantId) -> usize {
        if let Some(&index) = self.index.get(&tenant) {
            return index;
        }
        let index = match self.free.pop() {
            Some(index) => {
                self.states[index].reuse(tenant);
                index
            }
            None => {
                self.states.push(TenantState::new(tenant));
                self.states.len() - 1
            }
        };
        self.index.insert(tenant, index);
        index
    }

    fn entry(&mut self, tenant: TenantId) -> &mut TenantState {
        let index = self.index_or_insert(tenant);
        &mut self.states[index]
    }

    fn tracked(&self) -> impl Iterator<Item = &TenantState> {
        self.states.iter().filter(|state| state.tracked)
    }

    fn push_waiter(&mut self, index: usize, priority: Priority, key: WaiterKey) {
        let state = &mut self.states[index];
        if state.queue.is_empty() {
            state.waiting_at = self.waiting.len();
            self.waiting.push(index);
        }
        state.queue.push(priority, key);
    }

    /// Counts out a waiter that left (see [`PriorityLists::leave`]).
    fn leave(&mut self, index: usize, priority: Priority, waiting: impl Fn(WaiterKey) -> bool) {
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

    /// Zeroes usage and stops tracking tenants with nothing left to remember.
    fn reset_usage(&mut self) {
        for (index, state) in self.states.iter_mut().enumerate() {
            if !state.tracked {
                continue;
            }
            state.usage = 0;
            if state.queue.is_empty() && state.cap.is_none() && state.weight == NonZeroU32::MIN {
                state.tracked = false;
                self.index.remove(&state.id);
                self.free.push(index);
            }
        }
    }
}

struct TenantState {
    id: TenantId,
    /// False while the state waits in `Tenants::free` for reuse.
    tracked: bool,
    weight: NonZeroU32,
    usage: u64,
    /// Its waiters, by priority then arrival.
    queue: PriorityLists,
    /// Its position in `Tenants::waiting` while it has waiters.
    waiting_at: usize,
    cap: Option<Cap>,
    total_cpu_nanos: u64,
}

impl TenantState {
    fn new(id: TenantId) -> Self {
        TenantState {
            id,
            tracked: true,
            weight: NonZeroU32::MIN,
            usage: 0,
            queue: PriorityLists::new(),
            waiting_at: 0,
            cap: None,
            total_cpu_nanos: 0,
        }
    }

    /// Tracks another tenant in this untracked state (its lists are empty).
    fn reuse(&mut self, id: TenantId) {
        debug_assert!(!self.tracked && self.queue.is_empty());
        self.id = id;
        self.tracked = true;
        self.weight = NonZeroU32::MIN;
        self.usage = 0;
        self.cap = None;
        self.total_cpu_nanos = 0;
    }
}

/// A tenant's CPU cap: the elastic limiter's token bucket, filled at `share × cores`.
struct Cap {
    share: f64,
    bucket: TokenBucket,
    /// Moving estimate of the CPU one request uses, taken from the bucket at admission and
    /// settled against the measurement at release (as a grant is).
    estimate_nanos: u64,
    generation: u64,
}

struct Waiter {
    tenant: TenantId,
    /// The tenant's index in `Tenants`, valid while the waiter waits (a tenant with waiters
    /// stays tracked).
    tenant_index: usize,
    priority: Priority,
    enqueued_nanos: u64,
    deadline: Option<u64>,
    state: WaiterState,
}

enum WaiterState {
    Waiting(Notify),
    Admitted(Option<CapCharge>),
    Failed(AdmitError),
}

/// A job handed to [`WorkQueue::submit`].
type Job = Box<dyn FnOnce(Result<Permit, AdmitError>) + Send>;
/// A job with the outcome it runs with.
type JobRun = (Job, Result<Permit, AdmitError>);

enum Notify {
    Waker(Waker),
    Thread(Arc<Condvar>),
    /// A submitted job: nobody collects its outcome, it is run with it.
    Job(Job),
}

impl Notify {
    fn wake(self) {
        match self {
            Notify::Waker(waker) => waker.wake(),
            Notify::Thread(condvar) => condvar.notify_one(),
            // Jobs never reach here: `Wakeups::push` runs them with their outcome instead.
            Notify::Job(_) => debug_assert!(false, "a job woken without its outcome"),
        }
    }
}

std::thread_local! {
    /// Jobs of [`WorkQueue::submit`] to run on this thread, while one of them runs: a job that
    /// drops its permit at once frees a slot and admits the next job, which then waits here
    /// instead of nesting one call deeper per waiter.
    static JOBS: std::cell::RefCell<Option<std::collections::VecDeque<JobRun>>> =
        const { std::cell::RefCell::new(None) };
}

/// Runs `jobs`, and every job queued on this thread while they run, in order. A panicking job
/// does not stop the others; the first panic is resumed once all have run.
fn run_jobs(jobs: impl IntoIterator<Item = JobRun>) {
    let outermost = JOBS.with(|queued| {
        let mut queued = queued.borrow_mut();
        let outermost = queued.is_none();
        queued.get_or_insert_with(std::collections::VecDeque::new).extend(jobs);
        outermost
    });
    if !outermost {
        return;
    }
    let mut panic = None;
    while let Some((job, outcome)) =
        JOBS.with(|queued| queued.borrow_mut().as_mut().and_then(std::collections::VecDeque::pop_front))
    {
        if let Err(payload) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || job(outcome))) {
            panic.get_or_insert(payload);
        }
    }
    JOBS.with(|queued| *queued.borrow_mut() = None);
    if let Some(payload) = panic {
        if !std::thread::panicking() {
            std::panic::resume_unwind(payload);
        }
    }
}

/// Waiters to wake once the lock is released, collected while it is held.
///
/// Declare it before the guard: locals drop in reverse order, so on every return the guard
/// goes first and then the wake-ups run. The first few need no allocation.
struct Wakeups {
    inline: [Option<Notify>; INLINE_WAKEUPS],
    len: usize,
    spilled: Vec<Notify>,
    /// Submitted jobs with their outcome, run after the wake-ups.
    jobs: Vec<JobRun>,
}

impl Wakeups {
    fn new() -> Self {
        Wakeups { inline: [const { None }; INLINE_WAKEUPS], len: 0, spilled: Vec::new(), jobs: Vec::new() }
    }

    fn push_job(&mut self, job: Job, outcome: Result<Permit, AdmitError>) {
        self.jobs.push((job, outcome));
    }

    fn push(&mut self, notify: Notify) {
        if let Some(slot) = self.inline.get_mut(self.len) {
            *slot = Some(notify);
            self.len += 1;
        } else {
            self.spilled.push(notify);
        }
    }

    fn is_empty(&self) -> bool {
        self.len == 0 && self.jobs.is_empty()
    }

    /// Wakes everyone collected (call it without the lock held).
    #[inline]
    fn wake_all(&mut self) {
        for slot in &mut self.inline[..self.len] {
            if let Some(notify) = slot.take() {
                notify.wake();
            }
        }
        self.len = 0;
        if !self.spilled.is_empty() {
            for notify in self.spilled.drain(..) {
                notify.wake();
            }
        }
        if !self.jobs.is_empty() {
            run_jobs(self.jobs.drain(..));
        }
    }
}

impl Drop for Wakeups {
    #[inline]
    fn drop(&mut self) {
        if self.len > 0 || !self.spilled.is_empty() || !self.jobs.is_empty() {
            self.wake_all();
        }
    }
}

/// Whether `key` names a waiter that still waits.
#[inline]
fn is_waiting(waiters: &Slab<Waiter>, key: WaiterKey) -> bool {
    waiters.get(key).is_some_and(|waiter| matches!(waiter.state, WaiterState::Waiting(_)))
}

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
        let word = self.shared.hot.word.load(Ordering::Relaxed);
        f.debug_struct("WorkQueue")
            .field("slots", &slots_of(word))
            .field("used", &used_of(word))
            .field("queued", &(word & QUEUED != 0))
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
        let word = u64::from(controller.slots()) << SLOTS_SHIFT;
        let inner = Inner {
            controller,
            tenants: Tenants::new(),
            waiters: Slab::new(),
            deadlines: Deadlines::new(),
            waiting_by_priority: PriorityCounts::new(),
            waiting: 0,
            next_seq: 0,
            next_cap_generation: 0,
            usage_reset_at: now.saturating_add(duration_nanos(config.usage_reset)),
            runnable_per_cpu: None,
            totals: Totals::default(),
        };
        let shared = Arc::new_cyclic(|me| Shared {
            me: me.clone(),
            hot: CachePadded::new(Hot { word: AtomicU64::new(word), admitted_fast: AtomicU64::new(0) }),
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

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// The validated configuration.
    pub fn config(&self) -> &WorkQueueConfig {
        &self.shared.config
    }

    /// The current slot count (one atomic load).
    pub fn slots(&self) -> u32 {
        slots_of(self.shared.hot.word.load(Ordering::Relaxed))
    }

    /// Slots in use now (one atomic load).
    pub fn used(&self) -> u32 {
        used_of(self.shared.hot.word.load(Ordering::Relaxed))
    }

    /// A deadline `after` from now on the queue's clock.
    pub fn deadline_in(&self, after: Duration) -> Deadline {
        Deadline::at_nanos(self.shared.clock.now_nanos().saturating_add(duration_nanos(after)))
    }

    /// Admits the request, blocking the thread while it waits.
    ///
    /// When a slot is free and nobody waits this is one compare-and-swap (no lock, no clock
    /// read unless the request has a deadline). For a tenant with a CPU cap, the permit
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
        if self.fast_admissible(request) && self.shared.try_fast(request.tenant) {
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
        AdmitFuture { shared: self.shared.clone(), request: *request, key: None, done: false }
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
        if self.fast_admissible(request) && self.shared.try_fast(request.tenant) {
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
    /// when its deadline has already passed.
    pub fn try_admit(&self, request: &Request) -> Result<Permit, AdmitError> {
        if self.fast_admissible(request) && self.shared.try_fast(request.tenant) {
            return Ok(Permit::fast(self.shared.clone(), request.tenant));
        }
        self.shared.try_admit_locked(request)
    }

    /// Whether the request may take the lock-free path: no deadline, or one still ahead.
    #[inline]
    fn fast_admissible(&self, request: &Request) -> bool {
        match request.deadline {
            None => true,
            Some(deadline) => self.shared.clock.now_nanos() < deadline.nanos(),
        }
    }

    /// Sets a tenant's weight (default 1): among waiting tenants, the one with the least
    /// usage per weight goes first, so a tenant of weight 3 is admitted three times as often
    /// as one of weight 1 while both wait.
    pub fn set_tenant_weight(&self, tenant: TenantId, weight: NonZeroU32) {
        let mut inner = self.shared.lock();
        inner.tenants.entry(tenant).weight = weight;
    }

    /// Soft-caps a tenant at `share` of the machine's CPU (`share × cores` CPU-seconds per
    /// second).
    ///
    /// The cap is the elastic limiter's [`TokenBucket`] of CPU nanoseconds (capacity one second
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
        let state = inner.tenants.entry(tenant);
        let estimate_nanos = state.cap.as_ref().map_or(0, |cap| cap.estimate_nanos);
        let bucket = TokenBucket::new(share * self.shared.config.cores, now);
        state.cap = Some(Cap { share, bucket, estimate_nanos, generation });
        self.shared.capped_mask.fetch_or(tenant_bit(tenant), Ordering::Relaxed);
        Ok(())
    }

    /// Removes a tenant's CPU cap; its waiters become eligible at once.
    pub fn clear_tenant_cap(&self, tenant: TenantId) {
        let now = self.shared.clock.now_nanos();
        let mut wakeups = Wakeups::new();
        let mut inner = self.shared.lock();
        if let Some(state) = inner.tenants.get_mut(tenant) {
            state.cap = None;
        }
        let mask = inner.tenants.tracked().filter(|s| s.cap.is_some()).fold(0, |m, s| m | tenant_bit(s.id));
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

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // The state stays consistent across a panic: no user code runs under the lock.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn stopped(&self) -> bool {
        self.stopped.load(Ordering::Acquire)
    }

    fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
        if let Some(thread) = self.sampler.get() {
            thread.unpark();
        }
    }

    /// Whether nothing is admitted and nobody waits (the sampler may slow down).
    pub(crate) fn idle(&self) -> bool {
        let word = self.hot.word.load(Ordering::Relaxed);
        used_of(word) == 0 && word & QUEUED == 0
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
    fn try_fast(&self, tenant: TenantId) -> bool {
        if self.capped_mask.load(Ordering::Relaxed) & tenant_bit(tenant) != 0 {
            return false;
        }
        let word = &self.hot.word;
        let mut current = word.load(Ordering::Relaxed);
        loop {
            if current & QUEUED != 0 || used_of(current) >= slots_of(current) {
                return false;
            }
            match word.compare_exchange_weak(current, current + 1, Ordering::Acquire, Ordering::Relaxed) {
                Ok(_) => {
                    self.hot.admitted_fast.fetch_add(1, Ordering::Relaxed);
                    return true;
                }
                Err(actual) => current = actual,
            }
        }
    }

    /// Takes a free slot regardless of the flag (under the lock, for a waiter picked in order).
    fn take_slot(&self) -> bool {
        let word = &self.hot.word;
        let mut current = word.load(Ordering::Relaxed);
        loop {
            if used_of(current) >= slots_of(current) {
                return false;
            }
            match word.compare_exchange_weak(current, current + 1, Ordering::Acquire, Ordering::Relaxed) {
                Ok(_) => return true,
                Err(actual) => current = actual,
            }
        }
    }

    /// Returns a slot; true if waiters may need it (the caller then hands it on under the lock).
    #[inline]
    fn return_slot(&self) -> bool {
        self.hot.word.fetch_sub(1, Ordering::AcqRel) & QUEUED != 0
    }

    fn set_slots(&self, slots: u32) {
        let word = &self.hot.word;
        let mut current = word.load(Ordering::Relaxed);
        loop {
            let next = (current & !SLOTS_MASK) | (u64::from(slots) << SLOTS_SHIFT);
            match word.compare_exchange_weak(current, next, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => return,
                Err(actual) => current = actual,
            }
        }
    }

    /// Releases the slot of a permit admitted without a cap charge or CPU report.
    #[inline]
    pub(crate) fn release_fast(&self) {
        if self.return_slot() {
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
        let state = inner.tenants.entry(tenant);
        state.total_cpu_nanos = state.total_cpu_nanos.saturating_add(used_nanos);
        if let (Some(charge), Some(cap)) = (cap, state.cap.as_mut()) {
            if cap.generation == charge.generation {
                cap.bucket.settle(charge.estimate_nanos, used_nanos, now);
                let estimate = cap.estimate_nanos as i128;
                let step = (i128::from(used_nanos) - estimate) >> ESTIMATE_SHIFT;
                // Between 0 and max(estimate, used): fits in u64.
                cap.estimate_nanos = if estimate == 0 { used_nanos } else { (estimate + step) as u64 };
            }
        }
        self.return_slot();
        self.housekeeping(&mut inner, now, &mut wakeups);
    }

    /// Usage reset, deadline expiry, then admission of waiters while slots are free.
    fn housekeeping(&self, inner: &mut Inner, now: u64, wakeups: &mut Wakeups) {
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
        inner.tenants.reset_usage();
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

    /// The waiter to admit next: among tenants with an eligible waiter (no cap, or a cap with
    /// a positive balance), the least usage per weight; ties by the head waiter's priority,
    /// then arrival. Within the tenant: its highest priority, then FIFO (or LIFO under
    /// overload).
    fn pick(&self, inner: &mut Inner, now: u64) -> Option<WaiterKey> {
        let Inner { tenants, waiters, .. } = inner;
        let Tenants { states, waiting, .. } = tenants;
        // (usage, weight, priority, key) of the best head so far.
        let mut best: Option<(u64, u32, Reverse<Priority>, WaiterKey)> = None;
        for &index in waiting.iter() {
            let state = &mut states[index];
            let Some((priority, oldest, newest)) = state.queue.head() else { continue };
            if let Some(cap) = state.cap.as_mut() {
                cap.bucket.refill(now);
                if cap.bucket.balance_nanos() <= 0 {
                    continue;
                }
            }
            let key = match self.config.order {
                QueueOrder::Fifo => oldest,
                QueueOrder::LifoUnderOverload { after } => {
                    let waited = waiters.get(oldest).map_or(0, |w| now.saturating_sub(w.enqueued_nanos));
                    if waited >= duration_nanos(after) { newest } else { oldest }
                }
            };
            let candidate = (state.usage, state.weight.get(), Reverse(priority), key);
            let better = match best {
                None => true,
                Some((usage, weight, best_priority, best_key)) => {
                    // usage / weight compared exactly by cross-multiplication.
                    let mine = u128::from(candidate.0) * u128::from(weight);
                    let theirs = u128::from(usage) * u128::from(candidate.1);
                    mine.cmp(&theirs)
                        .then(candidate.2.cmp(&best_priority))
                        .then(candidate.3.seq.cmp(&best_key.seq))
                        .is_lt()
                }
            };
            if better {
                best = Some(candidate);
            }
        }
        best.map(|(.., key)| key)
    }

    /// Whether a slot is free now. Under the lock a plain load suffices: a release that frees a
    /// slot after it sees the `QUEUED` flag (set while anyone waits) and hands the slot on.
    #[inline]
    fn slot_free(&self) -> bool {
        let word = self.hot.word.load(Ordering::Relaxed);
        used_of(word) < slots_of(word)
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
                    self.return_slot();
                }
            },
            (Some(Err(error)), _) => wakeups.push_job(job, Err(error)),
            _ => debug_assert!(false, "a job delivered without an outcome"),
        }
    }

    fn grant(&self, inner: &mut Inner, now: u64, wakeups: &mut Wakeups) -> bool {
        let mut any = false;
        // Free slots are checked first: under overload no slot is, and the order is not looked at.
        while inner.waiting > 0 && self.slot_free() {
            let Some(key) = self.pick(inner, now) else { break };
            if !self.take_slot() {
                break;
            }
            let Some(notify) = Self::unqueue(inner, key, WaiterState::Admitted(None)) else {
                debug_assert!(false, "picked waiters are waiting");
                self.return_slot();
                break;
            };
            let Inner { tenants, waiters, totals, .. } = &mut *inner;
            let Some(waiter) = waiters.get_mut(key) else { break };
            let state = &mut tenants.states[waiter.tenant_index];
            state.usage += 1;
            let charge = state.cap.as_mut().map(|cap| {
                cap.bucket.try_take(cap.estimate_nanos, now);
                CapCharge { generation: cap.generation, estimate_nanos: cap.estimate_nanos }
            });
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
        // The flag is only ever set under the lock: a plain load tells whether it needs
        // clearing, sparing the hot line a write on every sample.
        if inner.waiting == 0 && self.hot.word.load(Ordering::Relaxed) & QUEUED != 0 {
            self.hot.word.fetch_and(!QUEUED, Ordering::AcqRel);
        }
        any
    }

    /// Under the lock: chores, checks, then queues the request and admits in order (it may be
    /// admitted at once). Returns its key. `notify` is called only if the request queues.
    fn enqueue(
        &self,
        inner: &mut Inner,
        request: &Request,
        notify: impl FnOnce() -> Notify,
        now: u64,
        wakeups: &mut Wakeups,
    ) -> Result<WaiterKey, AdmitError> {
        self.housekeeping(inner, now, wakeups);
        if request.deadline.is_some_and(|deadline| now >= deadline.nanos()) {
            inner.totals.deadline_exceeded += 1;
            return Err(AdmitError::DeadlineExceeded { waited: Duration::ZERO });
        }
        if let Some(limit) = self.config.queue_limit {
            if inner.waiting >= limit {
                inner.totals.queue_full += 1;
                return Err(AdmitError::QueueFull { limit });
            }
        }
        let seq = inner.next_seq;
        inner.next_seq += 1;
        let deadline = request.deadline.map(Deadline::nanos);
        let tenant_index = inner.tenants.index_or_insert(request.tenant);
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
        // Set under the lock only (and cleared only there), so a plain load tells whether an
        // earlier waiter already set it.
        if self.hot.word.load(Ordering::Relaxed) & QUEUED == 0 {
            self.hot.word.fetch_or(QUEUED, Ordering::AcqRel);
        }
        if self.sampler_idle.load(Ordering::Relaxed) && self.sampler_idle.swap(false, Ordering::Relaxed) {
            if let Some(thread) = self.sampler.get() {
                thread.unpark();
            }
        }
        self.grant(inner, now, wakeups);
        Ok(key)
    }

    /// The outcome of a waiter, if it has one (the waiter is then forgotten).
    fn outcome(inner: &mut Inner, key: WaiterKey) -> Option<Result<Option<CapCharge>, AdmitError>> {
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
    fn cancel(&self, inner: &mut Inner, key: WaiterKey, now: u64, wakeups: &mut Wakeups) -> Option<Notify> {
        // The state given here is never read: the waiter is removed right after.
        let notify = Self::unqueue(inner, key, WaiterState::Failed(AdmitError::WouldBlock));
        let waiter = inner.waiters.remove(key);
        if notify.is_some() {
            inner.totals.cancelled += 1;
        } else if let Some(waiter) = waiter {
            if let WaiterState::Admitted(charge) = waiter.state {
                inner.totals.cancelled += 1;
                if let (Some(charge), Some(state)) = (charge, inner.tenants.get_mut(waiter.tenant)) {
                    if let Some(cap) = state.cap.as_mut().filter(|cap| cap.generation == charge.generation) {
                        cap.bucket.refund(charge.estimate_nanos, now);
                    }
                }
                self.return_slot();
            }
        }
        self.housekeeping(inner, now, wakeups);
        notify
    }

    // Out of line, so that the lock-free path it is the fallback of stays small.
    #[cold]
    #[inline(never)]
    fn admit_blocking(self: &Arc<Self>, request: &Request) -> Result<Permit, AdmitError> {
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
            if let Some(cap) = inner.tenants.get(request.tenant).and_then(|state| state.cap.as_ref()) {
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
    fn try_admit_locked(self: &Arc<Self>, request: &Request) -> Result<Permit, AdmitError> {
        let now = self.clock.now_nanos();
        let mut wakeups = Wakeups::new();
        let mut inner = self.lock();
        self.housekeeping(&mut inner, now, &mut wakeups);
        if request.deadline.is_some_and(|deadline| now >= deadline.nanos()) {
            inner.totals.deadline_exceeded += 1;
            return Err(AdmitError::DeadlineExceeded { waited: Duration::ZERO });
        }
        // Nobody eligible waits (`grant` just ran, so any eligible waiter left has no slot).
        let ahead = inner.waiting > 0 && self.pick(&mut inner, now).is_some();
        let state = inner.tenants.entry(request.tenant);
        let eligible = state.cap.as_mut().is_none_or(|cap| {
            cap.bucket.refill(now);
            cap.bucket.balance_nanos() > 0
        });
        if ahead || !eligible || !self.take_slot() {
            drop(inner);
            self.would_block.fetch_add(1, Ordering::Relaxed);
            return Err(AdmitError::WouldBlock);
        }
        state.usage += 1;
        let charge = state.cap.as_mut().map(|cap| {
            cap.bucket.try_take(cap.estimate_nanos, now);
            CapCharge { generation: cap.generation, estimate_nanos: cap.estimate_nanos }
        });
        inner.totals.admitted_locked += 1;
        self.waits.record(0);
        drop(inner);
        Ok(Permit::locked(self.clone(), request.tenant, charge, true))
    }

    pub(crate) fn record_sample(&self, runnable_per_cpu: f64) -> u32 {
        let now = self.clock.now_nanos();
        let mut wakeups = Wakeups::new();
        let mut inner = self.lock();
        let used = used_of(self.hot.word.load(Ordering::Acquire));
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
        if slots != slots_of(self.hot.word.load(Ordering::Relaxed)) {
            self.set_slots(slots);
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
        let word = self.hot.word.load(Ordering::Acquire);
        let fast = self.hot.admitted_fast.load(Ordering::Relaxed);
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
                cap: state.cap.as_ref().map(|cap| cap.share),
                cap_balance_nanos: state.cap.as_ref().map(|cap| {
                    let mut bucket = cap.bucket.clone();
                    bucket.refill(now);
                    bucket.balance_nanos()
                }),
                waiting: state.queue.len(),
                usage: state.usage,
                total_cpu: Duration::from_nanos(state.total_cpu_nanos),
            })
            .collect();
        tenants.sort_by_key(|t| t.tenant);
        WorkQueueSnapshot {
            slots: slots_of(word),
            used: used_of(word),
            waiting: inner.waiting,
            waiting_by_priority: inner.waiting_by_priority.highest_first(),
            tenants,
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

/// The future of [`WorkQueue::admit_async`]. Dropping it leaves the queue clean.
///
/// # Panics
///
/// If polled again after it completed.
#[must_use = "futures do nothing unless polled"]
pub struct AdmitFuture {
    shared: Arc<Shared>,
    request: Request,
    /// Its waiter while it waits or has an uncollected outcome.
    key: Option<WaiterKey>,
    done: bool,
}

impl std::fmt::Debug for AdmitFuture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdmitFuture")
            .field("request", &self.request)
            .field("queued", &self.key.is_some())
            .finish()
    }
}

impl Future for AdmitFuture {
    type Output = Result<Permit, AdmitError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        assert!(!this.done, "AdmitFuture polled after it completed");
        let shared = &this.shared;
        let tenant = this.request.tenant;
        let outcome = match this.key {
            None => {
                let fresh = this.request.deadline.is_none_or(|d| shared.clock.now_nanos() < d.nanos());
                if fresh && shared.try_fast(tenant) {
                    this.done = true;
                    return Poll::Ready(Ok(Permit::fast(shared.clone(), tenant)));
                }
                let now = shared.clock.now_nanos();
                let mut wakeups = Wakeups::new();
                let mut inner = shared.lock();
                let notify = || Notify::Waker(cx.waker().clone());
                let outcome = match shared.enqueue(&mut inner, &this.request, notify, now, &mut wakeups) {
                    Err(error) => Some(Err(error)),
                    Ok(key) => {
                        let outcome = Shared::outcome(&mut inner, key);
                        if outcome.is_none() {
                            this.key = Some(key);
                        }
                        outcome
                    }
                };
                drop(inner);
                wakeups.wake_all();
                outcome
            }
            Some(key) => {
                let now = shared.clock.now_nanos();
                let mut wakeups = Wakeups::new();
                let mut inner = shared.lock();
                shared.housekeeping(&mut inner, now, &mut wakeups);
                let outcome = Shared::outcome(&mut inner, key);
                if outcome.is_some() {
                    this.key = None;
                } else if let Some(WaiterState::Waiting(Notify::Waker(waker))) =
                    inner.waiters.get_mut(key).map(|waiter| &mut waiter.state)
                {
                    if !waker.will_wake(cx.waker()) {
                        waker.clone_from(cx.waker());
                    }
                }
                drop(inner);
                wakeups.wake_all();
                outcome
            }
        };
        match outcome {
            None => Poll::Pending,
            Some(result) => {
                this.done = true;
                Poll::Ready(result.map(|charge| Permit::locked(shared.clone(), tenant, charge, false)))
            }
        }
    }
}

impl Drop for AdmitFuture {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            let now = self.shared.clock.now_nanos();
            let mut wakeups = Wakeups::new();
            let mut inner = self.shared.lock();
            let gone = self.shared.cancel(&mut inner, key, now, &mut wakeups);
            // Its waker goes after the lock, like the wake-ups.
            drop(inner);
            drop(gone);
        }
    }
}
