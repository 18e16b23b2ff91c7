//! The demo's workload: a foreground key-value service and elastic background jobs.
#![allow(dead_code)] // wired into the demo by the integrator

pub mod backup;
pub mod generator;
pub mod keyspace;
pub mod scan;
pub mod service;
pub mod store;
