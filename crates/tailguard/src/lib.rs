//! tailguard keeps a service's tail latency safe from its own background work.
//!
//! Work in progress: see the repository's README and `DESIGN.md` for the architecture.

pub mod clock;
pub mod elastic;
pub mod histogram;
<<<<<<< HEAD
pub mod observe;
pub mod sim;
=======
mod sync;
>>>>>>> elastic2
