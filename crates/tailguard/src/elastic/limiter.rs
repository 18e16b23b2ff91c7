//! The limiter façade: owns the latency signal, the controller tick, the bucket and the queue.

use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::future::Future;
use std::num::NonZeroU32;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use super::bucket::TokenBucket;
use super::config::{ConfigError, ControllerKind, LimiterConfig};
use super::controller::{Controller, ControllerInput};
use super::handle::ElasticHandle;
use super::request::{AcquireError, AcquireRequest};
use super::task::ElasticTask;
use crate::clock::{SharedClock, SystemClock, duration_nanos};
use crate::histogram::{HistogramSnapshot, WindowSnapshot, WindowedHistogram};
use crate::sync::{AtomicBool, AtomicU64, AtomicUsize, Condvar, Mutex, MutexGuard};

/// Ticks kept in [`Limiter::history`] (one minute at the default 100 ms tick).
pub const HISTORY_TICKS: usize = 600;
/// Shortest a blocked waiter or the limiter thread sleeps before re-checking the bucket, so a
/// tiny deficit never turns into a busy loop.
const MIN_WAIT_NANOS: u64 = 50_000;

/// The controller acts once its window holds this much time of samples (or is full, if
/// shorter): enough for a steady p99 at the sampling rates of a runtime probe, well before a
/// 2.5 s window fills.
pub const WARM_SPAN: Duration = Duration::from_secs(1);
/// The newest part of the window the controller also reads, to tell a latency that is still
/// high from one the window still remembers.
pub const RECENT_SPAN: Duration = Duration::from_millis(500);
/// Fewest samples in the recent part for its p99 to count.
pub const MIN_RECENT_SAMPLES: u64 = 200;

/// A cut of more than this fraction of the share in one tick forfeits the bucket's unspent
/// balance. Reference-sized steps (0.02 % of the machine per tick) stay below it.
pub const CUT_FORFEITS: f64 = 0.01;

/// A source of the latency the controller keeps under its target.
pub trait LatencySignal: Send + Sync + 'static {
    /// The current window of latency samples.
    fn window_snapshot(&self) -> WindowSnapshot;

    /// The window, and the samples of about its newest `recent` if the source keeps them
    /// apart (default: it does not).
    fn window_snapshot_with_recent(&self, recent: Duration) -> (WindowSnapshot, Option<HistogramSnapshot>) {
        let _ = recent;
        (self.window_snapshot(), None)
    }
}

impl LatencySignal for WindowedHistogram {
    fn window_snapshot(&self) -> WindowSnapshot {
        self.snapshot()
    }

    fn window_snapshot_with_recent(&self, recent: Duration) -> (WindowSnapshot, Option<HistogramSnapshot>) {
        let (window, recent) = self.snapshot_with_recent(recent);
        (window, Some(recent))
    }
}

/// One controller tick, as kept in the bounded history.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TickRecord {
    /// Wall time since the limiter was built.
    pub at: Duration,
    /// Share after the tick.
    pub share: f64,
    /// The latency quantile read (`None` before the window is warm or while empty).
    pub p99: Option<Duration>,
    /// Fraction of the tick during which work waited for a grant.
    pub waiting_fraction: f64,
    /// CPU granted during the tick as a fraction of what the share allowed.
    pub used_fraction: f64,
}

/// A point-in-time view of the limiter. Totals are monotonically increasing, never reset.
#[derive(Clone, Debug, PartialEq)]
pub struct LimiterSnapshot {
    /// Elastic share of all cores currently enforced (the floor during blind start).
    pub share: f64,
    /// Cores the share is a fraction of.
    pub cores: f64,
    /// Bucket balance in CPU nanoseconds (negative: debt).
    pub balance_nanos: i64,
    /// Debt (the negative part of the balance).
    pub debt: Duration,
    /// Callers waiting for a grant.
    pub waiters: usize,
    /// CPU granted in total.
    pub total_granted: Duration,
    /// CPU actually used by settled grants in total.
    pub total_used: Duration,
    /// Latest latency quantile the controller read.
    pub latest_p99: Option<Duration>,
    /// Whether the latency window has held [`WARM_SPAN`] of samples, or its full length if
    /// shorter (before: blind start).
    pub warm: bool,
    /// The controller variant.
    pub controller: ControllerKind,
    /// Controller ticks so far.
    pub ticks: u64,
    /// Whether the latency signal is feeding the controller, and if not, why.
    pub signal: SignalState,
}

/// What the latency signal is doing, as of the last tick.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignalState {
    /// The limiter reads no signal: a fixed share.
    None,
    /// The window does not hold [`WARM_SPAN`] of samples yet: grants go out at the floor.
    Warming,
    /// Samples arrive; the controller steers by them.
    Live,
    /// No samples for at least [`LimiterConfig::silence`]: the probe stopped or stalled. The
    /// share falls to the floor until samples return.
    Silent {
        /// How long the signal has been silent.
        since: Duration,
    },
}

struct Waiter {
    grant_nanos: u64,
    tenant: Option<u64>,
    waker: Option<Waker>,
    /// When an async waiter gives up ([`Limiter::acquire_async_timeout`]); a blocked thread
    /// keeps its own deadline.
    deadline_nanos: Option<u64>,
}

/// A grant handed to a queued waiter that has not collected it yet.
#[derive(Clone, Copy)]
struct Uncollected {
    grant_nanos: u64,
    tenant: Option<u64>,
}

pub(crate) struct State {
    controller: Controller,
    bucket: TokenBucket,
    /// Waiters by (priority descending, arrival).
    queue: BTreeMap<(Reverse<i32>, u64), Waiter>,
    /// Grants handed to queued waiters that have not collected them yet, by seq.
    granted: HashMap<u64, Uncollected>,
    /// Async waiters whose deadline passed while queued (they collect their timeout), by seq.
    expired: HashSet<u64>,
    /// No queued deadline is earlier than this (it may be stale after removals: a scan then
    /// finds nothing and moves it on).
    earliest_deadline_nanos: Option<u64>,
    /// Wakers to call once the lock is released: a waker may run user code.
    to_wake: Vec<Waker>,
    /// When the signal last delivered samples.
    last_heard_nanos: u64,
    signal: SignalState,
    next_seq: u64,
    tenant_granted_nanos: HashMap<u64, u64>,
    waiting_since_nanos: Option<u64>,
    waited_in_tick_nanos: u64,
    refused_in_tick: bool,
    granted_in_tick_nanos: u64,
    last_tick_nanos: u64,
    ticks: u64,
    latest_p99: Option<Duration>,
    warm: bool,
    history: VecDeque<TickRecord>,
}

pub(crate) struct Shared {
    pub(crate) config: LimiterConfig,
    pub(crate) clock: SharedClock,
    signal: Option<Arc<dyn LatencySignal>>,
    tenant_weights: HashMap<u64, NonZeroU32>,
    state: Mutex<State>,
    changed: Condvar,
    stopped: AtomicBool,
    created_nanos: u64,
    pub(crate) total_granted_nanos: AtomicU64,
    pub(crate) total_used_nanos: AtomicU64,
    waiters: AtomicUsize,
}

/// Stops the limiter thread when the last [`Limiter`] clone goes away.
struct Owner {
    shared: Arc<Shared>,
}

impl Drop for Owner {
    fn drop(&mut self) {
        self.shared.stop();
    }
}

/// Elastic CPU admission control: hands out grants of CPU time at the share the controller
/// finds, so background work never pushes the service's latency over its target.
///
/// Cheap to clone; clones share one limiter.
///
/// ```
/// use std::time::Duration;
/// use tailguard::clock::ManualClock;
/// use tailguard::elastic::{AcquireRequest, ControllerKind, Limiter};
///
/// let clock = ManualClock::new();
/// let limiter = Limiter::builder()
///     .cores(2.0)
///     .controller(ControllerKind::Fixed(0.25))
///     .clock(clock.shared())
///     .build()?;
/// let handle = limiter.try_acquire(&AcquireRequest::new())?;
/// clock.run_for(Duration::from_millis(40));
/// drop(handle); // returns the unused 60 ms
/// assert_eq!(limiter.snapshot().total_used, Duration::from_millis(40));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Limiter {
    shared: Arc<Shared>,
    _owner: Arc<Owner>,
}

impl std::fmt::Debug for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiter").field("snapshot", &self.snapshot()).finish()
    }
}

/// Builds a [`Limiter`]; every setter maps to a [`LimiterConfig`] field.
#[must_use]
pub struct LimiterBuilder {
    config: LimiterConfig,
    clock: Option<SharedClock>,
    signal: Option<Arc<dyn LatencySignal>>,
    tenant_weights: HashMap<u64, NonZeroU32>,
}

impl LimiterBuilder {
    /// Target for the latency quantile.
    pub fn target(mut self, target: Duration) -> Self {
        self.config.target = target;
        self
    }
    /// Quantile read from the window (default 0.99).
    pub fn quantile(mut self, quantile: f64) -> Self {
        self.config.quantile = quantile;
        self
    }
    /// Share floor and ceiling.
    pub fn share_bounds(mut self, floor: f64, ceiling: f64) -> Self {
        self.config.floor = floor;
        self.config.ceiling = ceiling;
        self
    }
    /// Inactive point (fraction of the way from floor to ceiling).
    pub fn inactive_point(mut self, point: f64) -> Self {
        self.config.inactive_point = point;
        self
    }
    /// Up step per second, down factor and inactive decay factor.
    pub fn steps(mut self, delta_per_sec: f64, down_factor: f64, inactive_factor: f64) -> Self {
        self.config.delta_per_sec = delta_per_sec;
        self.config.down_factor = down_factor;
        self.config.inactive_factor = inactive_factor;
        self
    }
    /// Controller period.
    pub fn tick(mut self, tick: Duration) -> Self {
        self.config.tick = tick;
        self
    }
    /// Default grant size.
    pub fn grant(mut self, grant: Duration) -> Self {
        self.config.grant = grant;
        self
    }
    /// Number of cores (default: detected, cgroup quota respected).
    pub fn cores(mut self, cores: f64) -> Self {
        self.config.cores = cores;
        self
    }
    /// Controller variant.
    pub fn controller(mut self, kind: ControllerKind) -> Self {
        self.config.controller = kind;
        self
    }
    /// Share used once the window is warm, before any feedback.
    pub fn initial_share(mut self, share: f64) -> Self {
        self.config.initial_share = Some(share);
        self
    }
    /// OS priority for threads spawned with [`Limiter::spawn_elastic_thread`].
    pub fn elastic_priority(mut self, priority: super::priority::ThreadPriority) -> Self {
        self.config.elastic_priority = Some(priority);
        self
    }
    /// Weight of a tenant in fair sharing (default 1): among waiters of equal priority, a
    /// tenant with weight 3 is granted three times the CPU of a tenant with weight 1.
    pub fn tenant_weight(mut self, tenant: u64, weight: NonZeroU32) -> Self {
        self.tenant_weights.insert(tenant, weight);
        self
    }
    /// Replaces the whole configuration.
    pub fn config(mut self, config: LimiterConfig) -> Self {
        self.config = config;
        self
    }
    /// The clock (default: the system clock).
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = Some(clock);
        self
    }
    /// Reads latency from this window (e.g. the runtime probe's).
    pub fn latency_window(mut self, window: Arc<WindowedHistogram>) -> Self {
        self.signal = Some(window);
        self
    }
    /// Reads latency from any signal.
    pub fn latency_signal(mut self, signal: Arc<dyn LatencySignal>) -> Self {
        self.signal = Some(signal);
        self
    }
    /// How long the signal may deliver no samples before the share falls to the floor
    /// (default 1 s).
    pub fn silence(mut self, silence: Duration) -> Self {
        self.config.silence = silence;
        self
    }

    /// Builds a limiter without a background thread: call [`Limiter::tick`] by hand.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the field out of range, or [`ConfigError::MissingSignal`] for
    /// a feedback controller without a latency signal.
    pub fn build(self) -> Result<Limiter, ConfigError> {
        self.config.validate()?;
        let fixed = matches!(self.config.controller, ControllerKind::Fixed(_));
        if !fixed && self.signal.is_none() {
            return Err(ConfigError::MissingSignal(self.config.controller.name()));
        }
        let clock = self.clock.unwrap_or_else(SystemClock::shared);
        let now = clock.now_nanos();
        let controller = Controller::new(&self.config);
        // Blind start: a feedback controller grants at the floor until the window is warm.
        let share = if fixed { controller.share() } else { self.config.floor };
        let state = State {
            bucket: TokenBucket::new(share * self.config.cores, now),
            controller,
            queue: BTreeMap::new(),
            granted: HashMap::new(),
            expired: HashSet::new(),
            earliest_deadline_nanos: None,
            to_wake: Vec::new(),
            last_heard_nanos: now,
            signal: if fixed || self.signal.is_none() { SignalState::None } else { SignalState::Warming },
            next_seq: 0,
            tenant_granted_nanos: HashMap::new(),
            waiting_since_nanos: None,
            waited_in_tick_nanos: 0,
            refused_in_tick: false,
            granted_in_tick_nanos: 0,
            last_tick_nanos: now,
            ticks: 0,
            latest_p99: None,
            warm: fixed,
            history: VecDeque::new(),
        };
        let shared = Arc::new(Shared {
            config: self.config,
            clock,
            signal: self.signal,
            tenant_weights: self.tenant_weights,
            state: Mutex::new(state),
            changed: Condvar::new(),
            stopped: AtomicBool::new(false),
            created_nanos: now,
            total_granted_nanos: AtomicU64::new(0),
            total_used_nanos: AtomicU64::new(0),
            waiters: AtomicUsize::new(0),
        });
        Ok(Limiter { _owner: Arc::new(Owner { shared: shared.clone() }), shared })
    }

    /// Builds the limiter and starts its control loop on a thread named `tailguard-limiter`,
    /// which ticks every `tick` and wakes waiters as soon as their tokens exist. The thread
    /// stops on [`Limiter::stop`] or when the last clone of the limiter is dropped.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the field out of range.
    ///
    /// # Panics
    ///
    /// If the OS refuses to spawn the thread.
    pub fn start(self) -> Result<Limiter, ConfigError> {
        let limiter = self.build()?;
        let shared = limiter.shared.clone();
        std::thread::Builder::new()
            .name("tailguard-limiter".into())
            .spawn(move || shared.run())
            .expect("failed to spawn the tailguard-limiter thread");
        Ok(limiter)
    }
}

impl Limiter {
    /// A builder with CockroachDB's defaults and the adaptive controller.
    pub fn builder() -> LimiterBuilder {
        LimiterBuilder {
            config: LimiterConfig::default(),
            clock: None,
            signal: None,
            tenant_weights: HashMap::new(),
        }
    }

    /// The validated configuration.
    pub fn config(&self) -> &LimiterConfig {
        &self.shared.config
    }

    /// Runs one controller tick now: reads the signal, updates the share and the fill rate,
    /// and grants waiters whose tokens exist. Returns the share.
    pub fn tick(&self) -> f64 {
        self.shared.tick()
    }

    /// Shuts the limiter down: stops its background thread (if any) and hands out no more
    /// grants.
    ///
    /// Every waiter is woken at once — threads blocked in [`acquire`](Self::acquire) or
    /// [`acquire_timeout`](Self::acquire_timeout), futures from
    /// [`acquire_async`](Self::acquire_async), and the [`Pacer`](super::Pacer)s built on them —
    /// and returns [`AcquireError::Stopped`]; so does every later acquisition, `try_acquire`
    /// included. Grants handed out before the stop stay valid: their handles keep checking
    /// [`over_limit`](ElasticHandle::over_limit) and settle on drop as before (unused CPU goes
    /// back to the bucket, over-use is counted), and a waiter that was granted just before the
    /// stop but had not collected its grant yet still receives it. The same happens when the
    /// last clone of the limiter is dropped. Stopping twice does nothing more.
    ///
    /// Work that must finish under the limiter's share should be joined before its limiter is
    /// stopped; work that sees `Stopped` should end at its next resumption point.
    ///
    /// ```
    /// use tailguard::clock::ManualClock;
    /// use tailguard::elastic::{AcquireError, AcquireRequest, ControllerKind, Limiter};
    ///
    /// let clock = ManualClock::new();
    /// let limiter = Limiter::builder()
    ///     .cores(1.0)
    ///     .controller(ControllerKind::Fixed(0.1))
    ///     .clock(clock.shared())
    ///     .build()?;
    /// let held = limiter.try_acquire(&AcquireRequest::new())?; // the whole 100 ms capacity
    /// limiter.stop();
    /// assert_eq!(limiter.acquire(&AcquireRequest::new()).unwrap_err(), AcquireError::Stopped);
    /// drop(held); // a grant from before the stop still settles
    /// assert_eq!(limiter.snapshot().balance_nanos, 100_000_000);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn stop(&self) {
        self.shared.stop();
    }

    /// Whether [`stop`](Self::stop) was called (or the last clone was dropped).
    pub fn is_stopped(&self) -> bool {
        self.shared.stopped.load(Ordering::Acquire)
    }

    /// Takes a grant if one is available now and nobody waits ahead.
    ///
    /// # Errors
    ///
    /// [`AcquireError::WouldBlock`] when no tokens are available;
    /// [`AcquireError::Stopped`] once the limiter is stopped.
    pub fn try_acquire(&self, request: &AcquireRequest) -> Result<ElasticHandle, AcquireError> {
        let grant_nanos = self.shared.grant_nanos(request);
        let now = self.shared.clock.now_nanos();
        let mut state = self.shared.lock();
        self.shared.check_running(&state)?;
        if state.queue.is_empty() && state.bucket.try_take(grant_nanos, now) {
            self.shared.note_granted(&mut state, grant_nanos, request.tenant);
            drop(state);
            return Ok(ElasticHandle::new(self.shared.clone(), grant_nanos, request.yield_every));
        }
        state.refused_in_tick = true;
        Err(AcquireError::WouldBlock)
    }

    /// Blocks until a grant is available.
    ///
    /// # Errors
    ///
    /// [`AcquireError::Stopped`] when the limiter is stopped, before or while waiting (the
    /// stop wakes the caller at once).
    pub fn acquire(&self, request: &AcquireRequest) -> Result<ElasticHandle, AcquireError> {
        self.shared.acquire_blocking(request, None)
    }

    /// Blocks until a grant is available or `timeout` has passed (on the limiter's clock).
    ///
    /// # Errors
    ///
    /// [`AcquireError::Timeout`]; the caller's place in the queue is released.
    /// [`AcquireError::Stopped`] when the limiter is stopped, before or while waiting.
    pub fn acquire_timeout(
        &self,
        request: &AcquireRequest,
        timeout: Duration,
    ) -> Result<ElasticHandle, AcquireError> {
        self.shared.acquire_blocking(request, Some(timeout))
    }

    /// Waits for a grant without blocking the thread. Dropping the future releases its place
    /// (and returns a grant it was handed but did not collect). Built on std wakers only.
    ///
    /// Waiters are woken when tokens come back, on ticks, and — with [`LimiterBuilder::start`]
    /// — as soon as the bucket refills enough. The future resolves to
    /// [`AcquireError::Stopped`] when the limiter is stopped, before or while it waits.
    ///
    /// Awaited inside an [`ElasticTask`] (see [`elastic`](Self::elastic)), the grant is
    /// charged with that task's running time; elsewhere with the CPU clock of the thread that
    /// uses it.
    pub fn acquire_async(&self, request: &AcquireRequest) -> AcquireFuture {
        AcquireFuture {
            shared: self.shared.clone(),
            request: *request,
            seq: None,
            deadline: None,
            done: false,
        }
    }

    /// [`acquire_async`](Self::acquire_async) that gives up `timeout` after this call (on the
    /// limiter's clock) with [`AcquireError::Timeout`], whether or not a grant ever arrives:
    /// the limiter's thread wakes the waiter at its deadline (without
    /// [`LimiterBuilder::start`], at the first [`tick`](Self::tick) or settled grant after it).
    pub fn acquire_async_timeout(&self, request: &AcquireRequest, timeout: Duration) -> AcquireFuture {
        let deadline = self.shared.clock.now_nanos().saturating_add(duration_nanos(timeout));
        AcquireFuture {
            shared: self.shared.clone(),
            request: *request,
            seq: None,
            deadline: Some((deadline, timeout)),
            done: false,
        }
    }

    /// Wraps `future` to run as elastic work in the caller's async runtime: every grant taken
    /// inside it is charged with the time the task itself runs (inside its own polls), not
    /// with its worker thread's CPU clock, which would also count the foreground tasks that
    /// run on that worker while the elastic task awaits. See [`ElasticTask`].
    ///
    /// ```
    /// use tailguard::elastic::{AcquireRequest, ControllerKind, Limiter, Pacer};
    ///
    /// let limiter = Limiter::builder().cores(1.0).controller(ControllerKind::Fixed(0.5)).build()?;
    /// let mut pacer = Pacer::new(limiter.clone(), AcquireRequest::new());
    /// let backup = limiter.elastic(async move {
    ///     for _chunk in 0..100 {
    ///         pacer.pace_async().await?; // a new grant when one is used up, a yield per quantum
    ///         // ... export one chunk ...
    ///     }
    ///     Ok::<(), tailguard::elastic::AcquireError>(())
    /// });
    /// tokio::runtime::Builder::new_current_thread().build()?.block_on(backup)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn elastic<F: Future>(&self, future: F) -> ElasticTask<F> {
        ElasticTask::new(future, Arc::clone(&self.shared.clock))
    }

    /// A point-in-time view.
    pub fn snapshot(&self) -> LimiterSnapshot {
        let now = self.shared.clock.now_nanos();
        let mut state = self.shared.lock();
        state.bucket.refill(now);
        let balance_nanos = state.bucket.balance_nanos();
        LimiterSnapshot {
            share: state.bucket.rate() / self.shared.config.cores,
            cores: self.shared.config.cores,
            balance_nanos,
            debt: Duration::from_nanos(balance_nanos.min(0).unsigned_abs()),
            waiters: state.queue.len(),
            total_granted: Duration::from_nanos(self.shared.total_granted_nanos.load(Ordering::Relaxed)),
            total_used: Duration::from_nanos(self.shared.total_used_nanos.load(Ordering::Relaxed)),
            latest_p99: state.latest_p99,
            warm: state.warm,
            controller: self.shared.config.controller,
            ticks: state.ticks,
            signal: state.signal,
        }
    }

    pub(crate) fn config_clock_now(&self) -> u64 {
        self.shared.clock.now_nanos()
    }

    /// Spawns a thread for elastic work, at the configured [`LimiterConfig::elastic_priority`]
    /// if one is set (a refused priority change is ignored: tokens still bound the work).
    ///
    /// # Errors
    ///
    /// The OS error if the thread cannot be spawned.
    pub fn spawn_elastic_thread<F, T>(
        &self,
        name: &str,
        work: F,
    ) -> std::io::Result<std::thread::JoinHandle<T>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let priority = self.shared.config.elastic_priority;
        std::thread::Builder::new().name(name.to_owned()).spawn(move || {
            if let Some(priority) = priority {
                let _ignored = super::priority::set_current_thread_priority(priority);
            }
            work()
        })
    }

    /// CPU granted to `tenant` so far (grants handed out but never collected are taken back).
    pub fn tenant_granted(&self, tenant: u64) -> Duration {
        Duration::from_nanos(self.shared.lock().tenant_granted_nanos.get(&tenant).copied().unwrap_or(0))
    }

    /// Whether the state lock is free now (tests check that wakers run outside it).
    #[cfg(test)]
    pub(crate) fn lock_is_free(&self) -> bool {
        self.shared.state.try_lock().is_ok()
    }

    /// The most recent ticks, oldest first (at most [`HISTORY_TICKS`]).
    pub fn history(&self) -> Vec<TickRecord> {
        self.shared.lock().history.iter().copied().collect()
    }
}

impl Shared {
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

    fn grant_nanos(&self, request: &AcquireRequest) -> u64 {
        let grant = request.grant.unwrap_or(self.config.grant);
        duration_nanos(grant.clamp(Duration::from_millis(1), Duration::from_secs(1)))
    }

    /// Refuses further grants and wakes every waiter (see [`Limiter::stop`]).
    ///
    /// The flag is set under the state lock, and every waiter checks it under that lock before
    /// it sleeps, so no waiter can miss the stop: it either sees the flag or is in the queue
    /// that is drained here.
    fn stop(&self) {
        let wakers: Vec<Waker> = {
            let mut state = self.lock();
            self.stopped.store(true, Ordering::Release);
            let now = self.clock.now_nanos();
            let queue = std::mem::take(&mut state.queue);
            Self::note_queue(&mut state, now);
            self.waiters.store(0, Ordering::Relaxed);
            self.changed.notify_all();
            queue.into_values().filter_map(|waiter| waiter.waker).collect()
        };
        for waker in wakers {
            waker.wake();
        }
    }

    /// `Err(Stopped)` once [`stop`](Self::stop) ran. Takes the locked state so that the answer
    /// cannot change before the caller enqueues or sleeps.
    fn check_running(&self, _locked: &State) -> Result<(), AcquireError> {
        if self.stopped.load(Ordering::Acquire) { Err(AcquireError::Stopped) } else { Ok(()) }
    }

    fn note_granted(&self, state: &mut State, grant_nanos: u64, tenant: Option<u64>) {
        state.granted_in_tick_nanos += grant_nanos;
        if let Some(tenant) = tenant {
            *state.tenant_granted_nanos.entry(tenant).or_default() += grant_nanos;
        }
        self.total_granted_nanos.fetch_add(grant_nanos, Ordering::Relaxed);
    }

    /// Takes back a grant that was never collected: from the totals, the tick's figures and
    /// its tenant's granted CPU (so fair sharing does not count it against the tenant).
    fn unnote_granted(&self, state: &mut State, uncollected: Uncollected) {
        let grant_nanos = uncollected.grant_nanos;
        self.total_granted_nanos.fetch_sub(grant_nanos, Ordering::Relaxed);
        state.granted_in_tick_nanos = state.granted_in_tick_nanos.saturating_sub(grant_nanos);
        if let Some(granted) =
            uncollected.tenant.and_then(|tenant| state.tenant_granted_nanos.get_mut(&tenant))
        {
            *granted = granted.saturating_sub(grant_nanos);
        }
    }

    /// Moves queued async waiters whose deadline passed to `expired` and wakes them (after the
    /// lock), so each resolves to [`AcquireError::Timeout`] when polled.
    fn expire_waiters(&self, state: &mut State, now: u64) {
        if state.earliest_deadline_nanos.is_none_or(|earliest| earliest > now) {
            return;
        }
        let due: Vec<(Reverse<i32>, u64)> = state
            .queue
            .iter()
            .filter(|(_, waiter)| waiter.deadline_nanos.is_some_and(|deadline| deadline <= now))
            .map(|(&key, _)| key)
            .collect();
        for key in due {
            let waiter = state.queue.remove(&key).expect("found in the queue");
            state.expired.insert(key.1);
            state.to_wake.extend(waiter.waker);
        }
        state.earliest_deadline_nanos = state.queue.values().filter_map(|waiter| waiter.deadline_nanos).min();
        Self::note_queue(state, now);
        self.waiters.store(state.queue.len(), Ordering::Relaxed);
    }

    /// Tracks for how long the queue was non-empty (the demand signal).
    fn note_queue(state: &mut State, now: u64) {
        match (state.queue.is_empty(), state.waiting_since_nanos) {
            (false, None) => state.waiting_since_nanos = Some(now),
            (true, Some(since)) => {
                state.waited_in_tick_nanos += now.saturating_sub(since);
                state.waiting_since_nanos = None;
            }
            _ => {}
        }
    }

    /// Picks the next waiter: highest priority, then least-served tenant (by weight), then
    /// arrival.
    fn next_waiter(&self, state: &State) -> Option<(Reverse<i32>, u64)> {
        let (&first, head) = state.queue.iter().next()?;
        if head.tenant.is_none() {
            return Some(first);
        }
        // CPU granted so far divided by weight: the least-served tenant goes first.
        let served = |tenant: u64| {
            let granted = state.tenant_granted_nanos.get(&tenant).copied().unwrap_or(0);
            let weight = self.tenant_weights.get(&tenant).map_or(1, |w| w.get());
            granted as f64 / f64::from(weight)
        };
        state
            .queue
            .range((first.0, 0)..=(first.0, u64::MAX))
            .filter_map(|(&key, waiter)| waiter.tenant.map(|tenant| (served(tenant), key)))
            .min_by(|a, b| a.0.total_cmp(&b.0).then(a.1.1.cmp(&b.1.1)))
            .map(|(_, key)| key)
    }

    /// Times out expired async waiters, then grants queued waiters while the bucket is
    /// positive. Returns whether any was granted. Wakers are collected in `state.to_wake`, for
    /// [`unlock`](Self::unlock) to call.
    pub(crate) fn grant_waiters(&self, state: &mut State, now: u64) -> bool {
        let mut any = false;
        self.expire_waiters(state, now);
        state.bucket.refill(now);
        while let Some(key) = self.next_waiter(state) {
            let grant_nanos = state.queue[&key].grant_nanos;
            if !state.bucket.try_take(grant_nanos, now) {
                break;
            }
            let waiter = state.queue.remove(&key).expect("picked from the queue");
            self.note_granted(state, grant_nanos, waiter.tenant);
            state.granted.insert(key.1, Uncollected { grant_nanos, tenant: waiter.tenant });
            state.to_wake.extend(waiter.waker);
            any = true;
        }
        Self::note_queue(state, now);
        self.waiters.store(state.queue.len(), Ordering::Relaxed);
        any
    }

    /// Settles a finished handle and passes returned tokens on.
    pub(crate) fn settle(&self, granted_nanos: u64, used_nanos: u64) {
        self.total_used_nanos.fetch_add(used_nanos, Ordering::Relaxed);
        let now = self.clock.now_nanos();
        let mut state = self.lock();
        state.bucket.settle(granted_nanos, used_nanos, now);
        if self.grant_waiters(&mut state, now) {
            self.changed.notify_all();
        }
        self.unlock(state);
    }

    fn enqueue(
        &self,
        state: &mut State,
        request: &AcquireRequest,
        waker: Option<Waker>,
        deadline_nanos: Option<u64>,
        now: u64,
    ) -> u64 {
        let seq = state.next_seq;
        state.next_seq += 1;
        let waiter =
            Waiter { grant_nanos: self.grant_nanos(request), tenant: request.tenant, waker, deadline_nanos };
        if let Some(deadline) = deadline_nanos {
            state.earliest_deadline_nanos =
                Some(state.earliest_deadline_nanos.map_or(deadline, |earliest| earliest.min(deadline)));
        }
        state.queue.insert((Reverse(request.priority), seq), waiter);
        Self::note_queue(state, now);
        self.waiters.store(state.queue.len(), Ordering::Relaxed);
        seq
    }

    /// Removes a waiter that gives up; a grant it was handed but did not collect is refunded,
    /// to the bucket and to its tenant's granted total.
    fn cancel(&self, state: &mut State, priority: i32, seq: u64, now: u64) {
        state.expired.remove(&seq);
        if state.queue.remove(&(Reverse(priority), seq)).is_none() {
            if let Some(uncollected) = state.granted.remove(&seq) {
                state.bucket.refund(uncollected.grant_nanos, now);
                self.unnote_granted(state, uncollected);
            }
        } else {
            Self::note_queue(state, now);
            self.waiters.store(state.queue.len(), Ordering::Relaxed);
        }
        if self.grant_waiters(state, now) {
            self.changed.notify_all();
        }
    }

    fn acquire_blocking(
        self: &Arc<Self>,
        request: &AcquireRequest,
        timeout: Option<Duration>,
    ) -> Result<ElasticHandle, AcquireError> {
        let start = self.clock.now_nanos();
        let deadline = timeout.map(|t| start.saturating_add(duration_nanos(t)));
        let mut state = self.lock();
        self.check_running(&state)?;
        let grant_nanos = self.grant_nanos(request);
        if state.queue.is_empty() && state.bucket.try_take(grant_nanos, start) {
            self.note_granted(&mut state, grant_nanos, request.tenant);
            drop(state);
            return Ok(ElasticHandle::new(self.clone(), grant_nanos, request.yield_every));
        }
        let seq = self.enqueue(&mut state, request, None, None, start);
        loop {
            if let Some(uncollected) = state.granted.remove(&seq) {
                self.unlock(state);
                return Ok(ElasticHandle::new(self.clone(), uncollected.grant_nanos, request.yield_every));
            }
            // Stopped: `stop` drained the queue and nothing was granted to this waiter.
            if let Err(stopped) = self.check_running(&state) {
                self.unlock(state);
                return Err(stopped);
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
                    self.cancel(&mut state, request.priority, seq, now);
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

    fn tick(&self) -> f64 {
        let window = self.signal.as_ref().map(|signal| signal.window_snapshot_with_recent(RECENT_SPAN));
        let now = self.clock.now_nanos();
        let mut state = self.lock();
        let elapsed_nanos = now.saturating_sub(state.last_tick_nanos).max(1);
        if let Some(since) = state.waiting_since_nanos {
            state.waited_in_tick_nanos += now.saturating_sub(since.max(state.last_tick_nanos));
            state.waiting_since_nanos = Some(now);
        }
        let waiting_now = !state.queue.is_empty() || state.refused_in_tick;
        let waiting_fraction = if state.refused_in_tick {
            1.0
        } else {
            (state.waited_in_tick_nanos as f64 / elapsed_nanos as f64).min(1.0)
        };
        let allowed = state.bucket.rate() * elapsed_nanos as f64;
        let used_fraction = state.granted_in_tick_nanos as f64 / allowed.max(1.0);
        let fixed = matches!(self.config.controller, ControllerKind::Fixed(_));
        let mut recent_p99 = None;
        if let Some((window, recent)) = &window {
            // Warm: the window has covered WARM_SPAN (or its whole length) and holds samples.
            state.warm |= (window.warm || window.span >= WARM_SPAN) && window.histogram.count() > 0;
            state.latest_p99 = window.histogram.quantile(self.config.quantile).ok().flatten();
            recent_p99 = recent
                .as_ref()
                .filter(|recent| recent.count() >= MIN_RECENT_SAMPLES)
                .and_then(|recent| recent.quantile(self.config.quantile).ok().flatten());
            // Heard from: samples in the recent part, or in the window for a signal that keeps
            // no recent part.
            if recent.as_ref().map_or(window.histogram.count() > 0, |recent| recent.count() > 0) {
                state.last_heard_nanos = now;
            }
        }
        let silent_for = now.saturating_sub(state.last_heard_nanos);
        let silent = window.is_some() && !fixed && silent_for >= duration_nanos(self.config.silence);
        state.signal = match (&window, fixed) {
            (None, _) | (_, true) => SignalState::None,
            _ if silent => SignalState::Silent { since: Duration::from_nanos(silent_for) },
            _ if !state.warm => SignalState::Warming,
            _ => SignalState::Live,
        };
        let (p99, recent_p99) =
            if state.warm && !silent { (state.latest_p99, recent_p99) } else { (None, None) };
        let input = ControllerInput {
            p99,
            recent_p99,
            waiting_now,
            waiting_fraction,
            used_fraction,
            elapsed: Duration::from_nanos(elapsed_nanos),
            silent,
        };
        let controlled = state.controller.tick(input);
        // Blind start grants at the floor, silent or not; once warm, a silent signal makes the
        // controller fall to the floor.
        let share = if state.warm || fixed { controlled } else { self.config.floor };
        let previous = state.bucket.rate() / self.config.cores;
        state.bucket.set_rate(share * self.config.cores, now);
        if share < previous * (1.0 - CUT_FORFEITS) {
            // A real cut (not a reference-sized trim): unspent tokens of the old share would let
            // elastic work run on at that share for up to a second after latency went over.
            state.bucket.forfeit(now);
        }
        state.ticks += 1;
        state.last_tick_nanos = now;
        state.waited_in_tick_nanos = 0;
        state.granted_in_tick_nanos = 0;
        state.refused_in_tick = false;
        if state.history.len() == HISTORY_TICKS {
            state.history.pop_front();
        }
        let at = Duration::from_nanos(now.saturating_sub(self.created_nanos));
        let p99 = state.latest_p99;
        state.history.push_back(TickRecord { at, share, p99, waiting_fraction, used_fraction });
        #[cfg(feature = "metrics")]
        super::metrics::record(&super::metrics::TickMetrics {
            share,
            p99,
            waiters: state.queue.len(),
            balance_nanos: state.bucket.balance_nanos(),
            total_granted_nanos: self.total_granted_nanos.load(Ordering::Relaxed),
            total_used_nanos: self.total_used_nanos.load(Ordering::Relaxed),
            silent,
        });
        if self.grant_waiters(&mut state, now) {
            self.changed.notify_all();
        }
        self.unlock(state);
        share
    }

    /// The background loop of [`LimiterBuilder::start`].
    fn run(self: Arc<Self>) {
        let tick_nanos = duration_nanos(self.config.tick);
        let mut next_tick = self.clock.now_nanos().saturating_add(tick_nanos);
        while !self.stopped.load(Ordering::Acquire) {
            let now = self.clock.now_nanos();
            if now >= next_tick {
                self.tick();
                next_tick = next_tick.saturating_add(tick_nanos).max(now);
                continue;
            }
            let mut state = self.lock();
            if self.grant_waiters(&mut state, now) {
                self.changed.notify_all();
            }
            if !state.to_wake.is_empty() {
                self.unlock(state);
                continue;
            }
            let mut wait = next_tick - now;
            if !state.queue.is_empty() {
                wait = wait.min(state.bucket.nanos_until_positive().max(MIN_WAIT_NANOS));
            }
            if let Some(deadline) = state.earliest_deadline_nanos {
                // An async waiter's deadline: wake it then, not at the next tick.
                wait = wait.min(deadline.saturating_sub(now).max(MIN_WAIT_NANOS));
            }
            if self.stopped.load(Ordering::Acquire) {
                break;
            }
            drop(self.changed.wait_timeout(state, Duration::from_nanos(wait)));
        }
    }
}

/// The future of [`Limiter::acquire_async`] and [`Limiter::acquire_async_timeout`]: a grant,
/// [`AcquireError::Timeout`] once its deadline passed, or [`AcquireError::Stopped`] once the
/// limiter is stopped. Dropping it leaves the queue clean (a grant it was handed but did not
/// collect goes back).
///
/// # Panics
///
/// Polling it again after it returned `Ready` panics, as futures conventionally do: a second
/// grant would be taken silently otherwise.
#[must_use = "futures do nothing unless polled"]
pub struct AcquireFuture {
    shared: Arc<Shared>,
    request: AcquireRequest,
    seq: Option<u64>,
    /// When to give up, on the limiter's clock, and the timeout it came from.
    deadline: Option<(u64, Duration)>,
    done: bool,
}

impl AcquireFuture {
    fn ready(
        &mut self,
        result: Result<ElasticHandle, AcquireError>,
    ) -> Poll<Result<ElasticHandle, AcquireError>> {
        self.seq = None;
        self.done = true;
        Poll::Ready(result)
    }
}

impl Future for AcquireFuture {
    type Output = Result<ElasticHandle, AcquireError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        assert!(
            !self.done,
            "AcquireFuture polled after it completed: call acquire_async again for another grant"
        );
        let shared = Arc::clone(&self.shared);
        let now = shared.clock.now_nanos();
        let mut state = shared.lock();
        let timed_out = self.deadline.and_then(|(deadline, timeout)| (now >= deadline).then_some(timeout));
        let Some(seq) = self.seq else {
            if let Err(stopped) = shared.check_running(&state) {
                drop(state);
                return self.ready(Err(stopped));
            }
            let grant_nanos = shared.grant_nanos(&self.request);
            if state.queue.is_empty() && state.bucket.try_take(grant_nanos, now) {
                shared.note_granted(&mut state, grant_nanos, self.request.tenant);
                drop(state);
                let handle = ElasticHandle::new(Arc::clone(&shared), grant_nanos, self.request.yield_every);
                return self.ready(Ok(handle));
            }
            if let Some(timeout) = timed_out {
                state.refused_in_tick = true;
                drop(state);
                return self.ready(Err(AcquireError::Timeout(timeout)));
            }
            let deadline = self.deadline.map(|(deadline, _)| deadline);
            self.seq =
                Some(shared.enqueue(&mut state, &self.request, Some(cx.waker().clone()), deadline, now));
            shared.changed.notify_all(); // let the limiter thread arm a refill or deadline timer
            return Poll::Pending;
        };
        if shared.grant_waiters(&mut state, now) {
            shared.changed.notify_all();
        }
        if let Some(uncollected) = state.granted.remove(&seq) {
            shared.unlock(state);
            let handle =
                ElasticHandle::new(Arc::clone(&shared), uncollected.grant_nanos, self.request.yield_every);
            return self.ready(Ok(handle));
        }
        let expired = state.expired.remove(&seq);
        if let (true, _) | (_, Some(_)) = (expired, timed_out) {
            // Only waiters with a deadline expire or time out.
            let timeout = self.deadline.map_or(Duration::ZERO, |(_, timeout)| timeout);
            shared.cancel(&mut state, self.request.priority, seq, now);
            shared.unlock(state);
            return self.ready(Err(AcquireError::Timeout(timeout)));
        }
        if let Err(stopped) = shared.check_running(&state) {
            // `stop` drained the queue; nothing was granted to this waiter.
            shared.unlock(state);
            return self.ready(Err(stopped));
        }
        if let Some(waiter) = state.queue.get_mut(&(Reverse(self.request.priority), seq)) {
            waiter.waker = Some(cx.waker().clone());
        }
        shared.unlock(state);
        Poll::Pending
    }
}

impl Drop for AcquireFuture {
    fn drop(&mut self) {
        if let Some(seq) = self.seq.take() {
            let now = self.shared.clock.now_nanos();
            let mut state = self.shared.lock();
            self.shared.cancel(&mut state, self.request.priority, seq, now);
            self.shared.unlock(state);
        }
    }
}
