//! What a caller asks for, and why it may be refused.

use std::time::Duration;

use thiserror::Error;

use crate::order::{Priority, TenantId};

/// A request for a grant of elastic CPU.
///
/// Waiters are served in the crate's one order ([`crate::order`]): the tenant granted the
/// least CPU so far per [weight](super::LimiterBuilder::tenant_weight) first, then within a
/// tenant the higher priority, then arrival.
///
/// ```
/// use tailguard::elastic::AcquireRequest;
/// use tailguard::order::{Priority, TenantId};
///
/// let request = AcquireRequest::new().tenant(7).priority(Priority::HIGH);
/// assert_eq!((request.tenant, request.priority), (TenantId(7), Priority::HIGH));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AcquireRequest {
    /// Higher is served first within the tenant. Default [`Priority::NORMAL`].
    pub priority: Priority,
    /// Tenant for fair sharing. Default [`TenantId::DEFAULT`].
    pub tenant: TenantId,
    /// CPU to grant; `None` uses the limiter's configured grant (default 100 ms). Clamped to
    /// 1 ms ..= 1 s.
    pub grant: Option<Duration>,
    /// Give the CPU away (`sched_yield`) after every this much CPU under the grant, from
    /// [`ElasticHandle::over_limit`](super::ElasticHandle::over_limit): for elastic work on
    /// threads of its own that shares cores with foreground threads, so that a foreground thread
    /// made runnable behind it waits at most about this long instead of the OS's whole time
    /// slice. Not for work running inside an async runtime's worker (yield the task instead).
    /// `None` (the default): never.
    pub yield_every: Option<Duration>,
}

impl AcquireRequest {
    /// A request of the default tenant at normal priority, with the configured grant size.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the priority (a [`Priority`], or its `i8` level; higher first).
    pub fn priority(mut self, priority: impl Into<Priority>) -> Self {
        self.priority = priority.into();
        self
    }

    /// Sets the tenant for fair sharing (a [`TenantId`], or its number).
    pub fn tenant(mut self, tenant: impl Into<TenantId>) -> Self {
        self.tenant = tenant.into();
        self
    }

    /// Sets the grant size.
    pub fn grant(mut self, grant: Duration) -> Self {
        self.grant = Some(grant);
        self
    }

    /// Yields the OS thread after every `interval` of CPU under each grant (see
    /// [`yield_every`](Self::yield_every)); clamped to 10 µs ..= 1 ms.
    pub fn yield_every(mut self, interval: Duration) -> Self {
        self.yield_every = Some(interval.clamp(Duration::from_micros(10), Duration::from_millis(1)));
        self
    }
}

/// Why no grant was handed out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum AcquireError {
    /// `try_acquire` found no tokens (or others waiting ahead): retry later or use `acquire`.
    #[error("no elastic CPU available now: retry later, or wait with acquire()")]
    WouldBlock,
    /// `acquire_timeout` waited the whole timeout: raise the timeout or the share ceiling.
    #[error("timed out after {0:?} waiting for elastic CPU: raise the timeout or the share")]
    Timeout(Duration),
    /// The limiter was stopped ([`Limiter::stop`](super::Limiter::stop), or its last clone was
    /// dropped): it hands out no more grants. Stop the elastic work at its next resumption point,
    /// or build a new limiter to go on.
    #[error("the elastic limiter was stopped and hands out no more grants: stop the elastic work")]
    Stopped,
}
