//! Foreground admission control: a [`WorkQueue`] that lets at most `slots` requests run at
//! once, moves the slot count with the run queue, and admits waiters in the crate's one order
//! ([`crate::order`]: tenant, priority, arrival).
//!
//! The elastic limiter ([`crate::elastic`]) bounds background work by CPU time; the work queue
//! bounds foreground work by concurrency, so that a burst waits in an ordered queue — where
//! priorities, tenant weights and deadlines apply — instead of in the OS or runtime scheduler.
//! It is CockroachDB's KV admission work queue with its slot adjuster:
//!
//! - **Slots** ([`slots`]): each run-queue sample (every 1 ms, 250 ms while idle) moves the slot
//!   count by at most one, down while runnable work per CPU is at or above 32, up while at or
//!   below 16 and every slot is used. Feed it a [`RunQueueSignal`] or
//!   [`WorkQueue::record_sample`].
//! - **Order**: the least usage (admissions since the last reset, every second) per
//!   [weight](WorkQueue::set_tenant_weight), then [`Priority`], then arrival (or
//!   [the newest first under overload](QueueOrder::LifoUnderOverload)).
//! - **Deadlines**: a request that would wait past its [`Deadline`] fails with
//!   [`AdmitError::DeadlineExceeded`] instead of running late; one that finds a free slot runs
//!   whatever its deadline (a deadline bounds the wait, not the request).
//! - **Tenant CPU caps** ([`WorkQueue::set_tenant_cap`]): a CPU budget per capped tenant
//!   ([`TokenBucket`](crate::budget::TokenBucket)), charged with the CPU its requests used.
//! - **Admission** blocking ([`admit`](WorkQueue::admit)), async
//!   ([`admit_async`](WorkQueue::admit_async)), as a job run once admitted
//!   ([`submit`](WorkQueue::submit)), or only if free now ([`try_admit`](WorkQueue::try_admit)).
//!   A dropped wait leaves the queue; a dropped [`Permit`] returns its slot.
//! - **HTTP** (feature `tower`): [`AdmissionLayer`] admits every
//!   request of a `tower`/axum service, tenant, priority and deadline read from its
//!   [`headers`]; refused ones get `503` with `Retry-After`.
//! - **Metrics**: [`WorkQueue::snapshot`]; with the `metrics` feature the sampler thread exports
//!   them (`admission::export`).
//!
//! # Costs
//!
//! `cargo bench -p tailguard --bench admission`, medians on the project's shared 2-core VM:
//!
//! | per admission + release | |
//! |---|---|
//! | a slot free, nobody waiting (`admit`, `try_admit`, `admit_async`) | 20–24 ns: one CAS, one `fetch_sub`, no lock, no clock read |
//! | the same with a deadline | the same: a free slot does not read the deadline (it was 43 ns, one clock read, while it did) |
//! | `submit`, a slot free | 60 ns (the boxed job, a thread-local) |
//! | 4 threads on 2 slots, 2 µs held | 1.2–1.3 µs wall per admission (1 µs is the floor) |
//! | queued behind 1000 waiters (enqueue, release, collect: the lock three times) | 170–180 ns |
//! | the same with one expiry per step | 330–360 ns |
//!
//! How these were measured, and why the locked path is built as it is: `docs/design-notes.md`,
//! "Foreground admission".
//!
//! # Examples
//!
//! A queue driven by a scripted signal on a manual clock: a long run queue takes a slot away,
//! and a queued request fails at its deadline instead of running late.
//!
//! ```
//! use std::future::Future;
//! use std::pin::pin;
//! use std::task::{Context, Poll, Waker};
//! use std::time::Duration;
//! use tailguard::admission::{AdmitError, Priority, Request, TenantId, WorkQueue, WorkQueueConfig};
//! use tailguard::clock::ManualClock;
//!
//! let clock = ManualClock::new();
//! let config = WorkQueueConfig { initial_slots: 2, min_slots: 1, max_slots: 8, ..Default::default() };
//! let queue = WorkQueue::new(config, clock.shared())?;
//!
//! // Both slots busy; the run queue is long (40 runnable per CPU): one slot fewer.
//! let a = queue.admit(&Request::new())?;
//! let b = queue.admit(&Request::new())?;
//! assert_eq!(queue.record_sample(40.0), 1);
//!
//! // A request that may wait 10 ms, queued behind them.
//! let late = Request::new()
//!     .tenant(TenantId(1))
//!     .priority(Priority::HIGH)
//!     .deadline(queue.deadline_in(Duration::from_millis(10)));
//! let mut waiting = pin!(queue.admit_async(&late));
//! let mut cx = Context::from_waker(Waker::noop());
//! assert!(waiting.as_mut().poll(&mut cx).is_pending());
//! assert_eq!(queue.snapshot().waiting, 1);
//!
//! // 10 ms later nobody has finished: it fails fast instead of running late.
//! clock.advance(Duration::from_millis(10));
//! queue.tick();
//! let Poll::Ready(Err(AdmitError::DeadlineExceeded { waited })) = waiting.as_mut().poll(&mut cx) else {
//!     panic!("expected a deadline failure");
//! };
//! assert_eq!(waited, Duration::from_millis(10));
//! drop((a, b));
//! let snapshot = queue.snapshot();
//! assert_eq!((snapshot.used, snapshot.waiting, snapshot.total_rejected.deadline_exceeded), (0, 0, 1));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! For real use, [`WorkQueue::start_os`] (thread pools), `WorkQueue::start_with_runtime`
//! (tokio) or [`WorkQueue::start`] with any [`RunQueueSignal`] add the sampler thread.

mod caps;
pub mod config;
#[cfg(feature = "metrics")]
pub mod export;
mod future;
#[cfg(feature = "tower")]
pub mod headers;
#[cfg(feature = "tower")]
pub mod layer;
mod permit;
mod queue;
mod request;
mod retired;
pub mod signal;
pub mod slots;
mod snapshot;
mod wakeups;
mod word;
mod work_queue;

pub use config::{ConfigError, QueueOrder, WorkQueueConfig};
pub use future::AdmitFuture;
#[cfg(feature = "tower")]
pub use layer::AdmissionLayer;
pub use permit::Permit;
pub use request::{AdmitError, Deadline, Priority, Request, TenantId};
#[cfg(feature = "tokio")]
pub use signal::TokioRunQueue;
pub use signal::{OsRunQueue, RunQueueSignal, SampledRunQueue};
pub use slots::{SlotChange, SlotController, SlotInput};
pub use snapshot::{EvictedTotals, Rejections, TenantSnapshot, TenantTotals, WorkQueueSnapshot};
pub use work_queue::WorkQueue;

#[cfg(test)]
mod tests;

#[cfg(all(test, loom))]
mod loom_tests;
