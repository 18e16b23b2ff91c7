//! The future of [`WorkQueue::admit_async`](super::WorkQueue::admit_async).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use super::permit::Permit;
use super::queue::{Shared, WaiterState};
use super::request::{AdmitError, Request};
use super::wakeups::{Notify, Wakeups};
use crate::waitlist::WaiterKey;

/// The future of [`WorkQueue::admit_async`](super::WorkQueue::admit_async). Dropping it leaves the queue clean.
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

impl AdmitFuture {
    pub(super) fn new(shared: Arc<Shared>, request: Request) -> Self {
        AdmitFuture { shared, request, key: None, done: false }
    }
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
                // A free slot admits whatever the deadline: it bounds the wait only.
                if shared.try_fast(tenant) {
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
