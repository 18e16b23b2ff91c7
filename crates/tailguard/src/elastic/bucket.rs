//! The CPU-time token bucket, now in [`crate::budget`]; this path re-exports it.

pub use crate::budget::TokenBucket;
