//! Elastic CPU limiting: decide how much CPU background work may use, and enforce it.
//!
//! - [`controller`]: the share rule (reference and adaptive variants) and its constants.
//! - [`utilization`]: a peer for comparison, TiKV's utilisation rule
//!   ([`ControllerKind::Utilization`]), which sets the share from the CPU the foreground leaves
//!   free, read from a [`CpuUsage`] source.
//! - [`Limiter`]: the façade ([`LimiterBuilder`], [`LimiterSnapshot`]); each tick reads the
//!   [`LatencySignal`], runs the controller and sets the rate of the CPU budget
//!   ([`crate::budget`]); waiters are granted in the crate's one order ([`crate::order`]).
//! - [`ElasticHandle`]: a grant, with the cheap `over_limit()` check.
//! - [`ElasticTask`]: elastic work as a task of the service's own runtime
//!   ([`Limiter::elastic`]), its grants charged with its own running time.
//! - [`Pacer`]: run-to-completion work, sync and async.
//! - [`priority`]: OS priority (`SCHED_IDLE`, nice) for elastic threads; `SCHED_FIFO` for a
//!   thread that must come first.
//! - With the `metrics` feature, each tick exports share, p99, waiters and debt
//!   (`tailguard_elastic_*`) through the `metrics` facade, and [`metrics::write`] renders the
//!   granted/used CPU counters in seconds as Prometheus text.

pub mod bucket;
mod builder;
pub mod config;
pub mod controller;
mod demand;
mod future;
mod handle;
mod knee;
mod limiter;
#[cfg(feature = "metrics")]
pub mod metrics;
mod pacer;
pub mod priority;
mod quiet;
mod request;
mod shared;
mod signal;
mod snapshot;
pub mod steal;
mod task;
mod tick;
pub mod utilization;
mod waiters;

pub use bucket::TokenBucket;
pub use builder::LimiterBuilder;
pub use config::{ConfigError, ControllerKind, DEFAULT_BURST, LimiterConfig};
pub use controller::{Controller, ControllerInput, MIN_WORKING_TARGET};
pub use demand::USE_SPAN;
pub use future::AcquireFuture;
pub use handle::ElasticHandle;
pub use limiter::Limiter;
pub use pacer::{DEFAULT_QUANTUM, Pacer};
pub use priority::{PriorityGuard, ThreadPriority, current_thread_priority, set_current_thread_priority};
pub use quiet::{DRAIN_EVERY, DRAIN_TICKS, MIN_QUIET_SAMPLES, QUIET_MEMORY};
pub use request::{AcquireError, AcquireRequest};
pub use signal::{LatencySignal, MIN_RECENT_SAMPLES, MergedSignal, RECENT_SPAN, SignalState, WARM_SPAN};
pub use snapshot::{HISTORY_TICKS, LimiterSnapshot, TickRecord};
pub use steal::{DEFAULT_STEAL_HOLD, MachineSteal, STEAL_CUT_ABOVE, STEAL_SPAN, StealSource};
pub use task::{ElasticTask, RunningTime};
pub use tick::CUT_FORFEITS;
pub use utilization::{CpuReading, CpuUsage, ProcessCpu};

#[cfg(test)]
mod tests;

#[cfg(all(test, loom))]
mod loom_tests;
