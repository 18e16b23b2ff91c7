//! The latency the machine has without elastic work: the working target's lower bound.
//!
//! A fixed target assumes the machine meets it when elastic work is idle. A virtual machine
//! whose host takes its cores away now and then may not: on the project's 2-core VMs the
//! scheduling p99 of 100 ms intervals without any elastic work was over 1 ms in a quarter to a
//! third of them. A controller steering by such a target cuts on every stall of the host, which
//! elastic work did not cause and cutting it cannot help, and sits at the floor.
//!
//! [`QuietLatency`] keeps the signal's samples of *quiet* ticks — no elastic grant held at any
//! time during the tick or the one before (elastic work that just stopped may have left a
//! queue behind it) — over the last [`QUIET_MEMORY`]. The adaptive controller's working target is
//! then `max(target, quiet_factor × quiet p99)`
//! ([`LimiterConfig::quiet_factor`](super::LimiterConfig::quiet_factor)): elastic work may
//! add that much to what the machine does on its own, and is not blamed for the rest. With no
//! quiet tick for [`QUIET_MEMORY`] (elastic work holds grants all the time) the configured
//! target alone applies.
//!
//! Elastic work that holds grants all the time leaves no quiet tick: then, as BBR drains its
//! queue for 200 ms every 10 s to measure the path's own round trip, the limiter *drains*: once
//! no quiet tick has been seen for [`DRAIN_EVERY`] while work asks for CPU, it grants nothing
//! for [`DRAIN_TICKS`] ticks and ends the grants in flight at their next check (their unused
//! rest forfeited, as after a cut). The last two ticks of a drain are quiet. It costs elastic
//! work about 0.35 s of every 10 s and the rest of the grants it cut short.

use std::collections::VecDeque;
use std::time::Duration;

use crate::clock::duration_nanos;
use crate::histogram::HistogramSnapshot;

/// How long quiet samples are remembered.
pub const QUIET_MEMORY: Duration = Duration::from_secs(30);
/// Fewest quiet samples for their quantile to count (half a second of the 1 kHz probe).
pub const MIN_QUIET_SAMPLES: u64 = 500;
/// Quiet samples are kept in slots of this length (a histogram each, ~10 KiB).
const SLOT: Duration = Duration::from_secs(5);
/// How long without a quiet tick, while work asks for CPU, before the limiter drains.
pub const DRAIN_EVERY: Duration = Duration::from_secs(10);
/// Ticks a drain lasts: grants in flight end in the first, the second is the first quiet one
/// but follows a busy tick, the last two are kept.
pub const DRAIN_TICKS: u32 = 4;

/// Samples of the quiet ticks of the last [`QUIET_MEMORY`].
#[derive(Debug, Default)]
pub(super) struct QuietLatency {
    /// The signal's running total at the last tick.
    last_total: Option<HistogramSnapshot>,
    /// Whether the previous tick was quiet.
    was_quiet: bool,
    /// Closed slots, oldest first, each with when it began.
    slots: VecDeque<(u64, HistogramSnapshot)>,
    /// The slot being filled, and when it began.
    current: Option<(u64, HistogramSnapshot)>,
    /// All samples of `slots` and `current`.
    sum: Option<HistogramSnapshot>,
    /// When the last quiet tick was kept, or the last drain began.
    last_quiet_nanos: u64,
    /// Grants are withheld until then.
    drain_until_nanos: u64,
}

impl QuietLatency {
    /// Records a tick ending at `now`: the signal's running `total` (`None`: the signal keeps
    /// none, and nothing is learnt) and whether no grant was held during it.
    pub(super) fn observe(&mut self, total: Option<HistogramSnapshot>, quiet: bool, now: u64) {
        self.forget_before(now.saturating_sub(duration_nanos(QUIET_MEMORY)));
        let Some(total) = total else { return };
        let samples = self.last_total.as_ref().map(|last| total.since(last));
        self.last_total = Some(total);
        let keep = std::mem::replace(&mut self.was_quiet, quiet) && quiet;
        let Some(samples) = samples.filter(|samples| keep && samples.count() > 0) else { return };
        self.last_quiet_nanos = now;
        if self.current.as_ref().is_some_and(|(start, _)| now.saturating_sub(*start) >= duration_nanos(SLOT))
        {
            self.slots.extend(self.current.take());
        }
        self.current.get_or_insert_with(|| (now, HistogramSnapshot::empty())).1.merge(&samples);
        self.sum.get_or_insert_with(HistogramSnapshot::empty).merge(&samples);
    }

    /// Drops the slots (the current one included) that began before `cutoff`.
    fn forget_before(&mut self, cutoff: u64) {
        let expired =
            |slot: Option<&(u64, HistogramSnapshot)>| slot.is_some_and(|(start, _)| *start < cutoff);
        let mut forget = |old: HistogramSnapshot| self.sum = self.sum.take().map(|sum| sum.since(&old));
        while expired(self.slots.front()) {
            forget(self.slots.pop_front().expect("checked above").1);
        }
        if expired(self.current.as_ref()) {
            forget(self.current.take().expect("checked above").1);
        }
    }

    /// Whether grants are withheld at `now`.
    #[inline]
    pub(super) fn draining(&self, now: u64) -> bool {
        now < self.drain_until_nanos
    }

    /// Nanoseconds from `now` until the drain under way ends (0: none).
    pub(super) fn drain_left(&self, now: u64) -> u64 {
        self.drain_until_nanos.saturating_sub(now)
    }

    /// At a tick ending at `now`, with work asking for CPU or not (`demand`) and ticks of
    /// `tick_nanos`: whether to begin a drain (no quiet tick for [`DRAIN_EVERY`]). A drain
    /// begun lasts until the middle of the [`DRAIN_TICKS`]th tick from now.
    pub(super) fn begin_drain(&mut self, demand: bool, now: u64, tick_nanos: u64) -> bool {
        if self.last_total.is_none() {
            return false;
        }
        // Without demand no grant is held: the tick is quiet and kept, and the clock restarts.
        if !demand
            || self.draining(now)
            || now.saturating_sub(self.last_quiet_nanos) < duration_nanos(DRAIN_EVERY)
        {
            return false;
        }
        self.last_quiet_nanos = now;
        self.drain_until_nanos = now + tick_nanos * u64::from(DRAIN_TICKS) - tick_nanos / 2;
        true
    }

    /// The `quantile` of the remembered quiet samples, once there are [`MIN_QUIET_SAMPLES`].
    pub(super) fn quantile(&self, quantile: f64) -> Option<Duration> {
        let sum = self.sum.as_ref().filter(|sum| sum.count() >= MIN_QUIET_SAMPLES)?;
        sum.quantile(quantile).ok().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::histogram::Histogram;

    const TICK: u64 = 100_000_000;

    /// A running total and a way to add `n` samples of `micros` to it.
    struct Source(Histogram);

    impl Source {
        fn add(&self, n: u64, micros: u64) -> Option<HistogramSnapshot> {
            self.0.record_n(micros * 1_000, n);
            Some(self.0.snapshot())
        }
    }

    #[test]
    fn learns_only_from_ticks_quiet_twice_in_a_row() {
        let source = Source(Histogram::new());
        let mut quiet = QuietLatency::default();
        quiet.observe(source.add(0, 1), true, 0);
        // Busy ticks at 5 ms, then a first quiet tick (after work) at 3 ms: neither counts.
        for i in 1..=10 {
            quiet.observe(source.add(100, 5_000), false, i * TICK);
        }
        quiet.observe(source.add(100, 3_000), true, 11 * TICK);
        assert_eq!(quiet.quantile(0.99), None);
        // Quiet ticks at 200 µs: too few at first, then their p99.
        for i in 12..=15 {
            quiet.observe(source.add(100, 200), true, i * TICK);
        }
        assert_eq!(quiet.quantile(0.99), None, "400 samples are too few");
        quiet.observe(source.add(100, 200), true, 16 * TICK);
        let p99 = quiet.quantile(0.99).unwrap();
        assert!(p99 >= Duration::from_micros(190) && p99 <= Duration::from_micros(210), "{p99:?}");
    }

    #[test]
    fn forgets_after_its_memory_and_without_a_total() {
        let source = Source(Histogram::new());
        let mut quiet = QuietLatency::default();
        quiet.observe(source.add(0, 1), true, 0);
        // 10 s of quiet ticks at 800 µs, then 10 s at 300 µs (slots of 5 s).
        for i in 1..=200 {
            quiet.observe(source.add(100, if i <= 100 { 800 } else { 300 }), true, i * TICK);
        }
        assert!(quiet.quantile(0.99).unwrap() >= Duration::from_micros(780));
        // Busy from then on: 30 s after they began, the 800 µs slots have left.
        for i in 201..=352 {
            quiet.observe(source.add(100, 5_000), false, i * TICK);
        }
        let p99 = quiet.quantile(0.99).unwrap();
        assert!(p99 <= Duration::from_micros(310), "{p99:?}");
        // A signal without a running total teaches nothing; the rest ages out.
        for i in 353..=452 {
            quiet.observe(None, true, i * TICK);
        }
        assert_eq!(quiet.quantile(0.99), None, "everything is older than the memory");
    }
}
