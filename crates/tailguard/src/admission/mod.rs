//! Foreground admission control: a [`WorkQueue`] that lets at most `slots` requests run at
//! once, moves the slot count with the run queue, and orders waiters by tenant, priority and
//! arrival.
//!
//! The elastic limiter ([`crate::elastic`]) bounds background work by CPU time; the work queue
//! bounds foreground work by concurrency, so that a burst of requests waits in an ordered
//! queue — where priorities, tenant weights and deadlines apply — instead of in the OS or
//! runtime scheduler, where nothing can be ordered. It is CockroachDB's KV admission work
//! queue with its slot adjuster:
//!
//! - **Slots** ([`slots`]): every sample of the run-queue signal (runnable tasks per CPU,
//!   every 1 ms; every 250 ms while idle) moves the slot count by at most one: down while
//!   runnable work per CPU is at or above the threshold (32) and slots are in use, up while it
//!   is at or below half of it and every slot is in use. The signal is injectable
//!   ([`RunQueueSignal`], or call [`WorkQueue::record_sample`] yourself).
//! - **Order**: among waiting tenants, the one with the least usage (admissions through the
//!   queue since the last reset, every second) per [weight](WorkQueue::set_tenant_weight);
//!   within a tenant the highest [`Priority`]; then arrival — first in, first out, or
//!   [last in, first out under overload](QueueOrder::LifoUnderOverload).
//! - **Deadlines**: a request whose [`Deadline`] passes while it waits fails with
//!   [`AdmitError::DeadlineExceeded`] instead of running late.
//! - **Tenant CPU caps** ([`WorkQueue::set_tenant_cap`]): the elastic limiter's CPU-time
//!   [`TokenBucket`](crate::elastic::TokenBucket) per capped tenant, charged with the thread
//!   CPU a request used, as elastic grants are.
//! - **Admission** blocking ([`WorkQueue::admit`]), async ([`WorkQueue::admit_async`], a
//!   future built on std wakers only), by a job that runs once admitted
//!   ([`WorkQueue::submit`]: the waiting request holds no thread or task, and the thread that
//!   frees a slot starts the next request), or not at all ([`WorkQueue::try_admit`]).
//!   Cancellation is safe: a dropped wait leaves the queue, a dropped [`Permit`] returns its
//!   slot.
//! - **Metrics**: [`WorkQueue::snapshot`] (slots, use, waiters per priority and tenant, wait
//!   histogram, rejections); with the `metrics` feature, the sampler thread exports them
//!   (`admission::export`).
//!
//! # Costs
//!
//! Measured on the project's 2-core VM, shared with other builds
//! (`cargo bench -p tailguard --bench admission`; contended figures vary with the load, the
//! range covers two runs):
//!
//! | benchmark | per admission + release |
//! |---|---|
//! | `admit_release/free_slot` (blocking `admit`, a slot free, nobody waiting) | 20 ns |
//! | `try_admit_release/free_slot` | 21 ns |
//! | `admit_async_release/free_slot` (one poll) | 24 ns |
//! | `admit_release/free_slot_with_deadline` (adds one monotonic clock read) | 43 ns |
//! | `submit_release/free_slot` (the job boxed, run at once; adds the box and a thread-local) | 60 ns |
//! | `admit_release/4_threads_free_slots` (wall time per admission, 4 threads) | 42–77 ns |
//! | `admit_release/4_threads_2_slots` | 37–79 ns |
//! | `admit_release/4_threads_2_slots_2us_work` (2 µs held; 1 µs is the floor) | 1.16–1.31 µs |
//! | `queued/enqueue_grant_collect_release` (see below) | 168–177 ns |
//! | `queued/enqueue_expire_grant_collect_release` | 330–356 ns |
//!
//! The free-slot path is one compare-and-swap and one `fetch_sub` on the admission word, a
//! relaxed counter and the `Arc` clone a permit holds: no lock, and no clock read unless the
//! request carries a deadline. With two cores, at most two of the four threads run at once, so
//! `4_threads_2_slots` mostly still finds a slot free; with 2 µs of work per request, threads
//! preempted while holding a slot make the others queue and be handed slots under the lock.
//!
//! The `queued` benchmarks run the locked path on one thread, on a manual clock: one slot,
//! held, and a standing backlog of 1000 async waiters over three tenants and two priorities.
//! Each step queues a new request (the lock once), releases the held permit (the lock once:
//! the queue picks the next waiter, admits it and, after unlocking, wakes it) and polls the
//! admitted future (the lock once: it collects its permit, which becomes the held one). In
//! the `expire` variant each step queues two requests, one of which nothing admits: it
//! expires 500 steps later, at the queue's next event. Neither allocates in steady state.
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
mod permit;
mod queue;
mod request;
pub mod signal;
pub mod slots;
mod snapshot;
mod wakeups;
mod word;
mod work_queue;

pub use config::{ConfigError, QueueOrder, WorkQueueConfig};
pub use future::AdmitFuture;
pub use permit::Permit;
pub use request::{AdmitError, Deadline, Priority, Request, TenantId};
#[cfg(feature = "tokio")]
pub use signal::TokioRunQueue;
pub use signal::{OsRunQueue, RunQueueSignal, SampledRunQueue};
pub use slots::{SlotChange, SlotController, SlotInput};
pub use snapshot::{Rejections, TenantSnapshot, WorkQueueSnapshot};
pub use work_queue::WorkQueue;

#[cfg(test)]
mod tests;

#[cfg(all(test, loom))]
mod loom_tests;
