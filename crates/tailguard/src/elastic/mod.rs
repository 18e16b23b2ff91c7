//! Elastic CPU limiting: decide how much CPU background work may use, and enforce it.
//!
//! See [`controller`] for the control rule and its constants.

pub mod bucket;
pub mod config;
pub mod controller;

pub use bucket::TokenBucket;
pub use config::{ConfigError, ControllerKind, LimiterConfig};
pub use controller::{Controller, ControllerInput};
