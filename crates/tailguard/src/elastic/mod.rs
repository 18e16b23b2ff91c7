//! Elastic CPU limiting: decide how much CPU background work may use, and enforce it.
//!
//! - [`controller`]: the share rule (reference and adaptive variants) and its constants.
//! - [`bucket`]: the CPU-nanosecond token bucket.
//! - [`Limiter`]: the façade — builder, control loop, wait queue, snapshots.
//! - [`ElasticHandle`]: a grant, with the cheap `over_limit()` check.
//! - [`ElasticTask`]: elastic work as a task of the service's own runtime
//!   ([`Limiter::elastic`]), its grants charged with its own running time.
//! - [`Pacer`]: run-to-completion work, sync and async.
//! - [`priority`]: OS priority (`SCHED_IDLE`, nice) for elastic threads.
//! - With the `metrics` feature, each tick exports share, p99, waiters, debt and granted/used
//!   CPU (`tailguard_elastic_*`) through the `metrics` facade.

pub mod bucket;
pub mod config;
pub mod controller;
mod handle;
mod limiter;
#[cfg(feature = "metrics")]
mod metrics;
mod pacer;
pub mod priority;
mod request;
mod task;

pub use bucket::TokenBucket;
pub use config::{ConfigError, ControllerKind, LimiterConfig};
pub use controller::{Controller, ControllerInput};
pub use handle::{CHECK_INTERVAL_NANOS, ElasticHandle};
pub use limiter::{
    AcquireFuture, CUT_FORFEITS, HISTORY_TICKS, LatencySignal, Limiter, LimiterBuilder, LimiterSnapshot,
    MIN_RECENT_SAMPLES, RECENT_SPAN, SignalState, TickRecord, WARM_SPAN,
};
pub use pacer::{DEFAULT_QUANTUM, Pacer};
pub use priority::{ThreadPriority, set_current_thread_priority};
pub use request::{AcquireError, AcquireRequest};
pub use task::{ElasticTask, RunningTime};

#[cfg(test)]
mod async_tests;
#[cfg(test)]
mod signal_tests;
#[cfg(test)]
mod tests;

#[cfg(all(test, loom))]
mod loom_tests;
