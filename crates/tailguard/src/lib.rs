//! tailguard keeps a service's tail latency safe from its own background work.
//!
//! Work in progress: see the repository's README and `DESIGN.md` for the architecture.

pub mod clock;
pub mod histogram;
pub mod observe;
pub mod sim;
#[cfg(feature = "tokio")]
pub mod task;
