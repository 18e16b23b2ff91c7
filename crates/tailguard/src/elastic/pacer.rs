//! Pacing for run-to-completion work.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use super::handle::ElasticHandle;
use super::limiter::Limiter;
use super::request::{AcquireError, AcquireRequest};
use crate::clock::duration_nanos;

/// Default time an async pacer runs before yielding to the runtime: 500 µs, short enough that
/// an elastic task never holds a worker long enough to delay foreground tasks noticeably.
pub const DEFAULT_QUANTUM: Duration = Duration::from_micros(500);

/// Paces work that must run to completion: call [`pace`](Self::pace) (or
/// [`pace_async`](Self::pace_async)) once per iteration; it acquires a new grant whenever the
/// current one is used up.
///
/// ```
/// use std::time::Duration;
/// use tailguard::clock::ManualClock;
/// use tailguard::elastic::{AcquireRequest, ControllerKind, Limiter, Pacer};
///
/// let clock = ManualClock::new();
/// let limiter = Limiter::builder()
///     .cores(1.0)
///     .controller(ControllerKind::Fixed(0.5))
///     .clock(clock.shared())
///     .build()?;
/// let mut pacer = Pacer::new(limiter.clone(), AcquireRequest::new());
/// for _ in 0..10 {
///     pacer.pace()?;
///     clock.run_for(Duration::from_millis(10)); // one iteration of work
/// }
/// drop(pacer);
/// assert_eq!(limiter.snapshot().total_used, Duration::from_millis(100));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Pacer {
    limiter: Limiter,
    request: AcquireRequest,
    handle: Option<ElasticHandle>,
    timeout: Option<Duration>,
    quantum_nanos: u64,
    slice_start_nanos: u64,
}

impl Pacer {
    /// A pacer taking grants described by `request` from `limiter`.
    pub fn new(limiter: Limiter, request: AcquireRequest) -> Self {
        let now = limiter.config_clock_now();
        Pacer {
            limiter,
            request,
            handle: None,
            timeout: None,
            quantum_nanos: duration_nanos(DEFAULT_QUANTUM),
            slice_start_nanos: now,
        }
    }

    /// Gives up waiting for a grant after `timeout` (default: wait as long as it takes).
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// How long `pace_async` runs before yielding (default [`DEFAULT_QUANTUM`]).
    #[must_use]
    pub fn with_quantum(mut self, quantum: Duration) -> Self {
        self.quantum_nanos = duration_nanos(quantum);
        self
    }

    /// The grant currently held, if any.
    pub fn handle(&self) -> Option<&ElasticHandle> {
        self.handle.as_ref()
    }

    #[inline]
    fn needs_grant(&self) -> bool {
        self.handle.as_ref().is_none_or(|handle| handle.over_limit())
    }

    /// Call once per iteration; blocks for a new grant when the current one is used up.
    ///
    /// # Errors
    ///
    /// [`AcquireError::Timeout`] if a timeout was set and no grant came in time;
    /// [`AcquireError::Stopped`] when a new grant is needed and the limiter is stopped (a wait
    /// in progress is woken by the stop). The grant in hand, if any, is used up first.
    #[inline]
    pub fn pace(&mut self) -> Result<(), AcquireError> {
        if self.needs_grant() {
            self.regrant()?;
        }
        Ok(())
    }

    #[cold]
    fn regrant(&mut self) -> Result<(), AcquireError> {
        self.handle = None; // settle the spent grant first: its debt or refund counts
        let handle = match self.timeout {
            Some(timeout) => self.limiter.acquire_timeout(&self.request, timeout)?,
            None => self.limiter.acquire(&self.request)?,
        };
        self.handle = Some(handle);
        Ok(())
    }

    /// Call once per iteration in async code: awaits a new grant when the current one is used
    /// up, and yields to the runtime once per quantum. Run the work as an
    /// [`ElasticTask`](super::ElasticTask) ([`Limiter::elastic`]) so that its grants are charged
    /// with its own running time, not with the foreground tasks that run on its worker while
    /// it yields.
    ///
    /// # Errors
    ///
    /// [`AcquireError::Timeout`] if a timeout was set and no grant came in time (the limiter
    /// wakes the waiter at its deadline, whether or not a grant ever arrives);
    /// [`AcquireError::Stopped`] when a new grant is needed and the limiter is stopped (a wait
    /// in progress is woken by the stop).
    pub async fn pace_async(&mut self) -> Result<(), AcquireError> {
        if self.needs_grant() {
            self.handle = None;
            let handle = match self.timeout {
                None => self.limiter.acquire_async(&self.request).await?,
                Some(timeout) => self.limiter.acquire_async_timeout(&self.request, timeout).await?,
            };
            self.handle = Some(handle);
            self.slice_start_nanos = self.limiter.config_clock_now();
            return Ok(());
        }
        let now = self.limiter.config_clock_now();
        if now.saturating_sub(self.slice_start_nanos) >= self.quantum_nanos {
            YieldNow(false).await;
            self.slice_start_nanos = self.limiter.config_clock_now();
        }
        Ok(())
    }
}

/// Yields once to the executor (std wakers only, no runtime dependency).
struct YieldNow(bool);

impl Future for YieldNow {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            return Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::elastic::ControllerKind;
    use std::task::Waker;

    const MS: Duration = Duration::from_millis(1);

    fn limiter(clock: &ManualClock) -> Limiter {
        Limiter::builder()
            .cores(1.0)
            .burst(crate::elastic::tests::ONE_SECOND_FILL)
            .controller(ControllerKind::Fixed(0.2))
            .grant(50 * MS)
            .clock(clock.shared())
            .build()
            .unwrap()
    }

    #[test]
    fn pace_reacquires_as_grants_are_spent_and_times_out_when_dry() {
        let clock = ManualClock::new();
        let limiter = limiter(&clock); // capacity 200 ms of CPU: four 50 ms grants
        let mut pacer = Pacer::new(limiter.clone(), AcquireRequest::new()).with_timeout(Duration::ZERO);
        let mut iterations = 0;
        while pacer.pace().is_ok() {
            clock.advance_cpu(5 * MS);
            iterations += 1;
            assert!(iterations < 1_000, "never ran dry");
        }
        // Grants go out while the balance is positive and each 50 ms grant is used fully,
        // so exactly the 200 ms capacity runs: 40 iterations of 5 ms.
        assert_eq!(iterations, 40);
        assert_eq!(limiter.snapshot().total_granted, 200 * MS);
        clock.advance(250 * MS); // refills 50 ms
        assert!(pacer.pace().is_ok());
    }

    #[test]
    fn pace_async_yields_after_a_quantum_and_awaits_grants() {
        let clock = ManualClock::new();
        let limiter = limiter(&clock);
        let mut pacer = Pacer::new(limiter.clone(), AcquireRequest::new()).with_quantum(MS);
        let mut cx = Context::from_waker(Waker::noop());
        // First call: takes a grant at once.
        assert!(std::pin::pin!(pacer.pace_async()).poll(&mut cx).is_ready());
        clock.run_for(Duration::from_micros(400));
        assert!(std::pin::pin!(pacer.pace_async()).poll(&mut cx).is_ready());
        clock.run_for(Duration::from_micros(700)); // quantum passed: yields once
        {
            let mut future = std::pin::pin!(pacer.pace_async());
            assert!(future.as_mut().poll(&mut cx).is_pending());
            assert!(future.as_mut().poll(&mut cx).is_ready());
        }
        // Spend the rest of the bucket, then the pacer waits for refill.
        let held: Vec<_> = std::iter::from_fn(|| limiter.try_acquire(&AcquireRequest::new()).ok()).collect();
        clock.advance_cpu(50 * MS);
        {
            let mut future = std::pin::pin!(pacer.pace_async());
            assert!(future.as_mut().poll(&mut cx).is_pending());
            assert_eq!(limiter.snapshot().waiters, 1);
            // The drain left ~50 ms of debt (grants go out while the balance is positive):
            // 200 ms of wall time refills 40 ms, not enough; 300 ms is.
            clock.advance(200 * MS);
            limiter.tick();
            assert!(future.as_mut().poll(&mut cx).is_pending());
            clock.advance(100 * MS);
            limiter.tick();
            assert!(future.as_mut().poll(&mut cx).is_ready());
        }
        drop(held);
    }
}
