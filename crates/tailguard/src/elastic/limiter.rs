//! The limiter's façade: [`Limiter`], what elastic work holds to take grants, and what a
//! service holds to tick, stop and observe it.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::config::LimiterConfig;
use super::future::AcquireFuture;
use super::handle::ElasticHandle;
use super::request::{AcquireError, AcquireRequest};
use super::shared::Shared;
use super::snapshot::{LimiterSnapshot, TickRecord};
use super::task::ElasticTask;
use crate::clock::duration_nanos;
use crate::order::TenantId;

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

impl Limiter {
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
    /// let held = limiter.try_acquire(&AcquireRequest::new())?; // 100 ms from a 10 ms fill
    /// limiter.stop();
    /// assert_eq!(limiter.acquire(&AcquireRequest::new()).unwrap_err(), AcquireError::Stopped);
    /// drop(held); // a grant from before the stop still settles
    /// assert_eq!(limiter.snapshot().balance_nanos, 10_000_000);
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
        let now = self.shared.clock.now_nanos();
        let mut state = self.shared.lock();
        self.shared.check_running(&state)?;
        if let Some(grant_nanos) = self.shared.grant_now(&mut state, request, now) {
            drop(state);
            return Ok(ElasticHandle::new(self.shared.clone(), grant_nanos, request.yield_every));
        }
        self.shared.refused(&mut state, now);
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
    /// Waiters are woken when tokens come back, on ticks, and — with [`LimiterBuilder::start`](super::LimiterBuilder::start)
    /// — as soon as the bucket refills enough. The future resolves to
    /// [`AcquireError::Stopped`] when the limiter is stopped, before or while it waits.
    ///
    /// Awaited inside an [`ElasticTask`] (see [`elastic`](Self::elastic)), the grant is
    /// charged with that task's running time; elsewhere with the CPU clock of the thread that
    /// uses it.
    pub fn acquire_async(&self, request: &AcquireRequest) -> AcquireFuture {
        AcquireFuture::new(self.shared.clone(), *request, None)
    }

    /// [`acquire_async`](Self::acquire_async) that gives up `timeout` after this call (on the
    /// limiter's clock) with [`AcquireError::Timeout`], whether or not a grant ever arrives:
    /// the limiter's thread wakes the waiter at its deadline (without
    /// [`LimiterBuilder::start`](super::LimiterBuilder::start), at the first [`tick`](Self::tick) or settled grant after it).
    pub fn acquire_async_timeout(&self, request: &AcquireRequest, timeout: Duration) -> AcquireFuture {
        let deadline = self.shared.clock.now_nanos().saturating_add(duration_nanos(timeout));
        AcquireFuture::new(self.shared.clone(), *request, Some((deadline, timeout)))
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
            share: state.share(&self.shared.config),
            cores: self.shared.config.cores,
            balance_nanos,
            debt: Duration::from_nanos(balance_nanos.min(0).unsigned_abs()),
            waiters: state.queue.len(),
            total_granted: Duration::from_nanos(self.shared.total_granted_nanos.load(Ordering::Relaxed)),
            total_used: Duration::from_nanos(self.shared.total_used_nanos.load(Ordering::Relaxed)),
            latest_p99: state.signal.latest_p99,
            working_target: state.controller.working_target(),
            quiet_p99: state.quiet.quantile(self.shared.config.quantile),
            steal: state.steal.latest(),
            knee: state.controller.knee(),
            warm: state.signal.warm,
            controller: self.shared.config.controller,
            ticks: state.ticks,
            signal: state.signal.state,
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
    pub fn tenant_granted(&self, tenant: impl Into<TenantId>) -> Duration {
        Duration::from_nanos(self.shared.lock().queue.granted_to(tenant.into()))
    }

    /// Whether the state lock is free now (tests check that wakers run outside it).
    #[cfg(test)]
    pub(crate) fn lock_is_free(&self) -> bool {
        self.shared.lock_is_free()
    }

    /// The most recent ticks, oldest first (at most [`HISTORY_TICKS`](super::HISTORY_TICKS)).
    pub fn history(&self) -> Vec<TickRecord> {
        self.shared.lock().history.to_vec()
    }

    /// A limiter on `shared`, owning it: the last clone stops it.
    pub(super) fn from_shared(shared: Arc<Shared>) -> Self {
        Limiter { _owner: Arc::new(Owner { shared: Arc::clone(&shared) }), shared }
    }

    pub(super) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }
}
