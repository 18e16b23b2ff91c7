//! tailguard keeps a service's tail latency safe from its own background work.
//!
//! Services run CPU-heavy *elastic* work — backups, compactions, index builds, scans — beside
//! latency-sensitive *foreground* requests. tailguard measures the CPU scheduling latency the
//! foreground sees, steers the share of the machine that elastic work may use so that p99
//! scheduling latency stays under a target (1 ms by default), and enforces that share with a
//! token bucket of CPU time: elastic work takes grants of CPU (100 ms by default), checks
//! [`over_limit()`](elastic::ElasticHandle::over_limit) in its loops at a cost of ~2 ns, and stops
//! with a resumption point when its grant is spent.
//!
//! # Use it in your service
//!
//! One call starts the whole loop for a tokio runtime — the runtime probe, the elastic
//! limiter, the metrics exporter (feature `metrics`) and, if asked for, the foreground work
//! queue — and one handle stops it ([`Tailguard`], module [`guard`]). Background work then
//! takes grants of CPU from the limiter:
//!
//! ```
//! # #[cfg(feature = "tokio")] {
//! use tailguard::Tailguard;
//! use tailguard::elastic::{AcquireRequest, Pacer};
//!
//! let runtime = tokio::runtime::Runtime::new()?;
//! let guard = Tailguard::builder().start(runtime.handle())?;
//! let mut pacer = Pacer::new(guard.limiter().clone(), AcquireRequest::new());
//! let backup = runtime.spawn(guard.limiter().elastic(async move {
//!     for _chunk in 0..1_000 {
//!         pacer.pace_async().await?; // a grant of CPU when one is used up; yields meanwhile
//!         // ... export one chunk ...
//!     }
//!     Ok::<(), tailguard::elastic::AcquireError>(())
//! }));
//! runtime.block_on(backup)??;
//! guard.shutdown(); // stops every part and joins its threads
//! # }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! With the `tower` feature, [`AdmissionLayer`](admission::AdmissionLayer) puts an axum or
//! hyper service's requests through the work queue ([`TailguardBuilder::work_queue`]);
//! `examples/axum_service.rs` is a whole service in under 60 lines.
//!
//! # Contents
//!
//! - [`guard`] (feature `tokio`): the front door, [`Tailguard`].
//! - [`clock`]: injected time — monotonic and per-thread CPU clocks, a manual clock for tests.
//! - [`histogram`]: lock-free log-linear latency histograms and sliding windows of them.
//! - [`observe`]: the signals — a tokio runtime probe, instrumented futures, an OS thread probe,
//!   run-queue depth, Linux PSI, and their export through `metrics`.
//! - [`order`]: who goes first — the tenant and priority both queues share, and their one order.
//! - [`budget`]: the CPU budget — a token bucket of CPU time, and the cores a share is of.
//! - [`elastic`]: the controller, grants, pacers, elastic tasks, OS priority.
//! - [`placement`]: runtime workers pinned one per CPU, so that they never queue behind each
//!   other while idle-priority elastic work has the other CPU.
//! - [`admission`]: foreground admission — a work queue whose slots follow the run queue, with
//!   deadlines and per-tenant CPU caps.
//! - [`prometheus`]: Prometheus text of latency histograms and CPU-second counters, which the
//!   `metrics` facade cannot carry.
//! - [`sim`]: how per-hop scheduling tails show up in requests that cross many tasks.
//! - `task` (feature `tokio`): tracked tasks and a task profile whose pause does not grow with
//!   the number of tasks.
//! - `capture` (feature `tracing`): outlier trace capture — a `tracing` layer that samples
//!   requests, keeps the span trees of slow ones, and splits each span's time into running,
//!   waiting, and waiting to be scheduled.
//!
//! # Features
//!
//! `tokio` (default): the runtime probe and the front door. `metrics`: export of every signal —
//! gauges and integer counters through the `metrics` facade, latency histograms and CPU-second
//! counters as Prometheus text ([`prometheus`]; the list is in `docs/metrics.md`). `tower`: the
//! admission layer for HTTP services. `tracing`: outlier trace capture; `serde` adds
//! `Serialize`/`Deserialize` to its plain data. The core (clock, histogram, controller, bucket,
//! handle, sync pacer, work queue) needs none of them.
//!
//! # The parts, on a scripted clock
//!
//! Build a limiter on a latency window, take a grant, work until `over_limit()` says stop, and
//! read a snapshot. Here time is scripted with a [`ManualClock`](clock::ManualClock); a service
//! would feed the window from a [`RuntimeProbe`](observe::RuntimeProbe) and call `start()`
//! instead of `build()` so that a background thread ticks the controller.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use tailguard::clock::ManualClock;
//! use tailguard::elastic::{AcquireRequest, ControllerKind, Limiter};
//! use tailguard::histogram::{WindowConfig, WindowedHistogram};
//!
//! let clock = ManualClock::new();
//! let window = Arc::new(WindowedHistogram::with_clock(WindowConfig::DEFAULT, clock.shared())?);
//! let limiter = Limiter::builder()
//!     .cores(2.0)
//!     .target(Duration::from_millis(1))
//!     .controller(ControllerKind::Adaptive)
//!     .latency_window(Arc::clone(&window))
//!     .clock(clock.shared())
//!     .build()?;
//!
//! // Elastic work: one export request under one grant, stopping with a resumption key.
//! let grant = limiter.acquire(&AcquireRequest::new())?; // Err(Stopped) once the limiter stops
//! let mut next_key = 0u64;
//! loop {
//!     next_key += 1; // ... export one key ...
//!     clock.run_for(Duration::from_micros(500)); // the work uses CPU
//!     if grant.over_limit() {
//!         break; // resume from `next_key` under a new grant
//!     }
//! }
//! drop(grant); // settles up: unused CPU goes back, over-use becomes debt
//! assert!(next_key > 1);
//!
//! // The foreground's scheduling latency feeds the controller on each tick.
//! window.record(Duration::from_micros(200));
//! clock.advance(Duration::from_millis(100));
//! limiter.tick();
//! let snapshot = limiter.snapshot();
//! assert!(snapshot.share > 0.0 && snapshot.share <= 0.75);
//! assert!(snapshot.total_used >= Duration::from_millis(100));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod admission;
pub mod budget;
#[cfg(feature = "tracing")]
pub mod capture;
// The capture layer's arm slot is lock-free on its read side: model-check it also when the
// `tracing` feature is off (the loom run builds default features).
#[cfg(all(loom, not(feature = "tracing")))]
#[allow(dead_code, reason = "only its loom model uses it without the capture layer")]
#[path = "capture/slot.rs"]
mod capture_slot;
pub mod clock;
pub mod elastic;
#[cfg(feature = "tokio")]
pub mod guard;
pub mod histogram;
pub mod observe;
pub mod order;
pub mod placement;
pub mod prometheus;
pub mod sim;
mod sync;
#[cfg(feature = "tokio")]
pub mod task;
mod waitlist;

#[cfg(feature = "tokio")]
pub use guard::{StartError, Tailguard, TailguardBuilder};
