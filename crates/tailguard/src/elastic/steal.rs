//! Time the hypervisor stole from the machine, so that the adaptive controller does not cut
//! elastic work for latency a virtual machine's host caused.
//!
//! On the project's 2-core VMs, scheduling latency follows steal: in one `demo` run's 500 ms
//! intervals (every mode, baseline included), the probe's p99 had a median of 0.31 ms where
//! steal was under 5 % of the machine's CPU time and 1.16–1.23 ms where it was over 14 %; 5 %
//! of the calm intervals were over the 1 ms target against 64–70 % of the stolen ones. A
//! controller that cuts fast and climbs slowly, cut by every stolen interval, ratchets to its
//! floor: `elastic+os-priority` used 13 % of the idle CPU in that run, at the floor's 5 % share.
//!
//! So the adaptive controller reads the machine's steal over the newest [`STEAL_SPAN`] (the span
//! its latency reading covers) from a [`StealSource`] — `/proc/stat` by default
//! ([`MachineSteal`], ~18 µs a read, once a tick) — and while at least
//! [`LimiterConfig::steal_hold`](super::LimiterConfig::steal_hold) (5 %) of it was stolen, a
//! p99 over target up to [`STEAL_CUT_ABOVE`] times it holds the share instead of cutting, and
//! sets no knee. Latency further over still cuts: steal does not excuse everything. Climbs are
//! unchanged. Where nothing is stolen (bare metal, or no `/proc/stat`), nothing changes.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::duration_nanos;

/// The span steal is measured over: the newest part of the window the controller reads
/// ([`RECENT_SPAN`](super::RECENT_SPAN)). `/proc/stat` counts in 10 ms jiffies, a twentieth
/// of a 100 ms tick on 2 CPUs; over 500 ms, a hundredth.
pub const STEAL_SPAN: Duration = super::signal::RECENT_SPAN;
/// Default [`LimiterConfig::steal_hold`](super::LimiterConfig::steal_hold).
pub const DEFAULT_STEAL_HOLD: f64 = 0.05;
/// Latency more than this many times the working target cuts even while the machine is being
/// stolen from. The baseline's worst 500 ms intervals in the run above reached 3.2 × the target.
pub const STEAL_CUT_ABOVE: f64 = 4.0;

/// A source of the machine's CPU time: `(stolen, total)` so far, in any unit, both
/// monotonically increasing.
pub trait StealSource: Send + Sync + 'static {
    /// Stolen and total CPU time so far; `None` when it cannot be read now.
    fn read(&self) -> Option<(u64, u64)>;
}

/// Any `Fn() -> Option<(u64, u64)>` is a source (e.g. a closure over counters in tests).
impl<F> StealSource for F
where
    F: Fn() -> Option<(u64, u64)> + Send + Sync + 'static,
{
    fn read(&self) -> Option<(u64, u64)> {
        self()
    }
}

/// The machine's steal from `/proc/stat` (Linux); `None` elsewhere.
#[derive(Clone, Copy, Debug, Default)]
pub struct MachineSteal;

impl MachineSteal {
    /// The source, shared.
    pub fn shared() -> Arc<dyn StealSource> {
        Arc::new(MachineSteal)
    }
}

impl StealSource for MachineSteal {
    fn read(&self) -> Option<(u64, u64)> {
        parse_proc_stat(&std::fs::read_to_string("/proc/stat").ok()?)
    }
}

/// `(steal, total)` jiffies from `/proc/stat`'s `cpu` line: `user nice system idle iowait irq
/// softirq steal` (guest time is already inside user time).
pub fn parse_proc_stat(text: &str) -> Option<(u64, u64)> {
    let line = text.lines().find(|line| line.starts_with("cpu "))?;
    let fields: Vec<u64> =
        line.split_whitespace().skip(1).take(8).map(|f| f.parse().ok()).collect::<Option<_>>()?;
    (fields.len() == 8).then(|| (fields[7], fields.iter().sum()))
}

/// Steal over the newest [`STEAL_SPAN`], from readings taken at each tick: the highest
/// fraction of any tick in it, as the latency's p99 over the same span rises with any tick's
/// spikes (the span's mean would still be low for the first stolen ticks, which the latency
/// already shows).
#[derive(Debug, Default)]
pub(super) struct StealMeter {
    /// `(at, stolen, total)`, oldest first; the oldest is at least a span before the newest
    /// once there are enough.
    readings: VecDeque<(u64, u64, u64)>,
    /// What the last [`observe`](Self::observe) returned.
    latest: Option<f64>,
}

impl StealMeter {
    /// Adds the reading taken at `now` and returns the highest fraction stolen in a tick of
    /// about the last span (`None` without two readings, or when the totals did not move).
    pub(super) fn observe(&mut self, now: u64, reading: Option<(u64, u64)>) -> Option<f64> {
        self.latest = self.highest(now, reading);
        self.latest
    }

    /// The fraction the last tick steered by.
    pub(super) fn latest(&self) -> Option<f64> {
        self.latest
    }

    fn highest(&mut self, now: u64, reading: Option<(u64, u64)>) -> Option<f64> {
        let (stolen, total) = reading?;
        if self.readings.back().is_some_and(|&(_, s, t)| stolen < s || total < t) {
            // The counters went back (a different source?): start again.
            self.readings.clear();
        }
        self.readings.push_back((now, stolen, total));
        let span = duration_nanos(STEAL_SPAN);
        while self.readings.len() > 2 && self.readings[1].0 + span <= now {
            self.readings.pop_front();
        }
        self.readings
            .iter()
            .zip(self.readings.iter().skip(1))
            .filter(|(a, b)| b.2 > a.2)
            .map(|(a, b)| (b.1 - a.1) as f64 / (b.2 - a.2) as f64)
            .reduce(f64::max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_machine_line_of_proc_stat() {
        let text = "cpu  100 5 50 800 10 0 5 30 7 0\ncpu0 50 2 25 400 5 0 2 15 3 0\nintr 1\n";
        assert_eq!(parse_proc_stat(text), Some((30, 1000)));
        assert_eq!(parse_proc_stat("cpu0 1 2 3 4 5 6 7 8\n"), None);
        assert_eq!(parse_proc_stat("cpu  1 2 3\n"), None);
        assert_eq!(parse_proc_stat("cpu  1 2 3 x 5 6 7 8\n"), None);
    }

    #[test]
    fn the_meter_measures_the_newest_span() {
        const TICK: u64 = 100_000_000;
        let mut meter = StealMeter::default();
        assert_eq!(meter.observe(0, Some((0, 0))), None);
        // 20 jiffies a tick (2 CPUs), 2 of them stolen: 10 %.
        assert_eq!(meter.observe(TICK, Some((2, 20))), Some(0.1));
        for i in 2..=5 {
            meter.observe(i * TICK, Some((2 * i, 20 * i)));
        }
        // Then nothing stolen: the stolen ticks count until they leave the span.
        assert_eq!(meter.observe(6 * TICK, Some((10, 120))), Some(0.1));
        for i in 7..=10 {
            meter.observe(i * TICK, Some((10, 20 * i)));
        }
        assert_eq!(meter.observe(11 * TICK, Some((10, 220))), Some(0.0));
        // No reading, or counters that went back: no figure, then a fresh start.
        assert_eq!(meter.observe(12 * TICK, None), None);
        assert_eq!(meter.observe(13 * TICK, Some((0, 10))), None);
        assert_eq!(meter.observe(14 * TICK, Some((5, 20))), Some(0.5));
        // One stolen tick among calm ones is enough.
        assert_eq!(meter.observe(15 * TICK, Some((5, 40))), Some(0.5));
        assert_eq!(meter.observe(16 * TICK, Some((6, 60))), Some(0.5));
    }

    #[test]
    fn reads_this_machine() {
        if std::path::Path::new("/proc/stat").exists() {
            let (stolen, total) = MachineSteal.read().expect("/proc/stat has a cpu line");
            assert!(stolen <= total && total > 0);
        }
    }
}
