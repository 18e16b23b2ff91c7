//! The future of [`Limiter::acquire_async`](super::Limiter::acquire_async) and
//! [`Limiter::acquire_async_timeout`](super::Limiter::acquire_async_timeout).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use super::handle::ElasticHandle;
use super::request::{AcquireError, AcquireRequest};
use super::shared::Shared;
use super::waiters::Outcome;
use crate::waitlist::WaiterKey;

/// The future of [`Limiter::acquire_async`](super::Limiter::acquire_async) and
/// [`Limiter::acquire_async_timeout`](super::Limiter::acquire_async_timeout): a grant,
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
    /// Its waiter while it waits or has an uncollected outcome.
    key: Option<WaiterKey>,
    /// When to give up, on the limiter's clock, and the timeout it came from.
    deadline: Option<(u64, Duration)>,
    done: bool,
}

impl AcquireFuture {
    pub(super) fn new(
        shared: Arc<Shared>,
        request: AcquireRequest,
        deadline: Option<(u64, Duration)>,
    ) -> Self {
        AcquireFuture { shared, request, key: None, deadline, done: false }
    }

    fn ready(
        &mut self,
        result: Result<ElasticHandle, AcquireError>,
    ) -> Poll<Result<ElasticHandle, AcquireError>> {
        self.key = None;
        self.done = true;
        Poll::Ready(result)
    }

    /// The timeout this future gives up after (zero without one).
    fn timeout(&self) -> Duration {
        self.deadline.map_or(Duration::ZERO, |(_, timeout)| timeout)
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
        let timed_out = self.deadline.is_some_and(|(deadline, _)| now >= deadline);
        let Some(key) = self.key else {
            if let Err(stopped) = shared.check_running(&state) {
                drop(state);
                return self.ready(Err(stopped));
            }
            if let Some(grant_nanos) = shared.grant_now(&mut state, &self.request, now) {
                drop(state);
                let handle = ElasticHandle::new(Arc::clone(&shared), grant_nanos, self.request.yield_every);
                return self.ready(Ok(handle));
            }
            if timed_out {
                shared.refused(&mut state, now);
                drop(state);
                let timeout = self.timeout();
                return self.ready(Err(AcquireError::Timeout(timeout)));
            }
            let deadline = self.deadline.map(|(deadline, _)| deadline);
            self.key =
                Some(shared.enqueue(&mut state, &self.request, Some(cx.waker().clone()), deadline, now));
            shared.changed.notify_all(); // let the limiter thread arm a refill or deadline timer
            return Poll::Pending;
        };
        if shared.grant_waiters(&mut state, now) {
            shared.changed.notify_all();
        }
        let result = match state.queue.outcome(key) {
            Outcome::Granted(grant_nanos) => {
                Ok(ElasticHandle::new(Arc::clone(&shared), grant_nanos, self.request.yield_every))
            }
            // Only waiters with a deadline expire or time out.
            Outcome::Expired => Err(AcquireError::Timeout(self.timeout())),
            _ if timed_out => Err(AcquireError::Timeout(self.timeout())),
            // `stop` took it out of line; nothing was granted to it.
            Outcome::Stopped => Err(AcquireError::Stopped),
            Outcome::Waiting => {
                state.queue.set_waker(key, cx.waker());
                shared.unlock(state);
                return Poll::Pending;
            }
        };
        if matches!(result, Err(AcquireError::Timeout(_))) {
            shared.cancel(&mut state, key, now);
        }
        shared.unlock(state);
        self.ready(result)
    }
}

impl Drop for AcquireFuture {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            let now = self.shared.clock.now_nanos();
            let mut state = self.shared.lock();
            self.shared.cancel(&mut state, key, now);
            self.shared.unlock(state);
        }
    }
}
