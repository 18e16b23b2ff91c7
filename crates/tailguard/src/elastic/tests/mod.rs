//! Limiter, queue and handle tests on a manual clock.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use super::*;
use crate::clock::{Clock, ManualClock};
use crate::histogram::{WindowConfig, WindowedHistogram};
use crate::order::{Priority, TenantId};

const MS: Duration = Duration::from_millis(1);

/// The token bucket's fill in the tests that count grants against a full bucket: 1 s at the
/// share's rate, so that a quarter of two cores holds five 100 ms grants (the default,
/// [`DEFAULT_BURST`], holds half of one).
pub(crate) const ONE_SECOND_FILL: Duration = Duration::from_secs(1);

/// 25 % of 2 cores: fill 0.5 CPU-s per second, capacity 500 ms of CPU (five 100 ms grants).
fn fixed_limiter(clock: &ManualClock) -> Limiter {
    Limiter::builder()
        .cores(2.0)
        .burst(ONE_SECOND_FILL)
        .controller(ControllerKind::Fixed(0.25))
        .clock(clock.shared())
        .build()
        .unwrap()
}

fn drain(limiter: &Limiter) -> Vec<ElasticHandle> {
    std::iter::from_fn(|| limiter.try_acquire(&AcquireRequest::new()).ok()).collect()
}

/// Polls once; a grant, if any, is kept alive in `kept` (an unused handle dropped at once
/// would hand its tokens straight to the next waiter).
fn poll_keep(future: &mut AcquireFuture, kept: &mut Vec<ElasticHandle>) -> bool {
    match poll(future) {
        Poll::Ready(handle) => {
            kept.push(handle);
            true
        }
        Poll::Pending => false,
    }
}

/// Polls once on a limiter that is not stopped.
fn poll(future: &mut AcquireFuture) -> Poll<ElasticHandle> {
    poll_result(future).map(|result| result.expect("the limiter is not stopped"))
}

fn poll_result(future: &mut AcquireFuture) -> Poll<Result<ElasticHandle, AcquireError>> {
    Pin::new(future).poll(&mut Context::from_waker(Waker::noop()))
}

mod async_wait;
mod cancellation;
mod control;
mod grants;
mod order;
mod over_limit;
mod sampling;
mod signal;
mod stop;
mod utilization;
