//! The loom shim: synchronisation primitives of the shipped code, swapped for loom's under
//! `cfg(loom)` so the model checker explores the code that ships.
//!
//! Run the model tests with
//! `RUSTFLAGS="--cfg loom" cargo test -p tailguard --release --lib loom`.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicBool, AtomicU64};
#[cfg(loom)]
pub(crate) use loom::sync::{Condvar, Mutex, MutexGuard};

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicBool, AtomicU64};
#[cfg(not(loom))]
pub(crate) use std::sync::{Condvar, Mutex, MutexGuard};
