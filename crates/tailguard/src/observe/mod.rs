//! Signals: how long runnable work waits for a CPU.
//!
//! Each source feeds a [`WindowedHistogram`](crate::histogram::WindowedHistogram) exposed by a
//! `window()` accessor, which the controller (or a dashboard) reads:
//!
//! | source | what it measures | needs |
//! |---|---|---|
//! | [`instrument`] | wake→poll delay and poll duration of wrapped futures, per task and in aggregate | nothing |
pub mod instrument;
