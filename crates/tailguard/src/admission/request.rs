//! What a caller asks for — tenant, priority, deadline — and why it may be refused.

use std::time::Duration;

use thiserror::Error;

pub use crate::order::{Priority, TenantId};

/// A point in time on the work queue's clock after which a request must not start.
///
/// A deadline bounds the wait only: a request that finds a free slot (and no waiter ahead of it)
/// is admitted whatever its deadline, even one already passed; one that would wait past it fails
/// with [`AdmitError::DeadlineExceeded`].
///
/// Build one with [`WorkQueue::deadline_in`](super::WorkQueue::deadline_in) (now plus a
/// duration), or from a clock reading with [`Deadline::at_nanos`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Deadline(u64);

impl Deadline {
    /// The deadline at `nanos` of the queue's clock ([`Clock::now_nanos`](crate::clock::Clock)).
    pub const fn at_nanos(nanos: u64) -> Self {
        Deadline(nanos)
    }

    /// The clock reading, in nanoseconds.
    pub const fn nanos(self) -> u64 {
        self.0
    }
}

/// A request for admission: who asks, how urgently, and until when it is worth running.
///
/// Waiters are served in the crate's one order ([`crate::order`]): tenant first (the least
/// usage per weight), then priority (higher first), then arrival (first come, or last come
/// under overload with [`QueueOrder::LifoUnderOverload`](super::QueueOrder::LifoUnderOverload)).
///
/// ```
/// use tailguard::admission::{Priority, Request, TenantId};
///
/// let request = Request::new().tenant(TenantId(7)).priority(Priority::HIGH);
/// assert_eq!(request.tenant, TenantId(7));
/// assert_eq!(request.deadline, None);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Request {
    /// The tenant (default [`TenantId::DEFAULT`]).
    pub tenant: TenantId,
    /// The priority within the tenant (default [`Priority::NORMAL`]).
    pub priority: Priority,
    /// When waiting must stop: past it, admission fails with
    /// [`AdmitError::DeadlineExceeded`] instead of running late. `None` waits as long as it
    /// takes.
    pub deadline: Option<Deadline>,
}

impl Request {
    /// A request of the default tenant at normal priority, without a deadline.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the tenant (a [`TenantId`], or its number).
    #[must_use]
    pub fn tenant(mut self, tenant: impl Into<TenantId>) -> Self {
        self.tenant = tenant.into();
        self
    }

    /// Sets the priority (a [`Priority`], or its `i8` level).
    #[must_use]
    pub fn priority(mut self, priority: impl Into<Priority>) -> Self {
        self.priority = priority.into();
        self
    }

    /// Sets the deadline.
    #[must_use]
    pub fn deadline(mut self, deadline: Deadline) -> Self {
        self.deadline = Some(deadline);
        self
    }
}

/// Why a request was not admitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum AdmitError {
    /// [`try_admit`](super::WorkQueue::try_admit) found every slot in use, or others waiting
    /// ahead: retry later, or wait with `admit` / `admit_async`.
    #[error("no admission slot free now: retry later, or wait with admit()/admit_async()")]
    WouldBlock,
    /// The request's deadline passed before it could be admitted (`waited` is how long it
    /// queued; zero when it arrived past its deadline). Fail the request: running it now
    /// would only answer late.
    #[error(
        "deadline exceeded after waiting {waited:?} for an admission slot: the service is \
         overloaded; fail the request or give it a later deadline"
    )]
    DeadlineExceeded {
        /// Time spent in the queue.
        waited: Duration,
    },
    /// The queue already holds its configured maximum of waiters: shed the request, or raise
    /// [`WorkQueueConfig::queue_limit`](super::WorkQueueConfig::queue_limit).
    #[error("admission queue full ({limit} waiting): shed the request or raise queue_limit")]
    QueueFull {
        /// The configured limit.
        limit: usize,
    },
}
