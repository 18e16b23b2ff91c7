//! The latency signal the limiter steers by, and its reading each tick: the quantile of the
//! window and of its recent part, whether the window is warm, and whether the signal went
//! silent.

use std::sync::Arc;
use std::time::Duration;

use super::config::LimiterConfig;
use crate::clock::duration_nanos;
use crate::histogram::{HistogramSnapshot, WindowSnapshot, WindowedHistogram};
use crate::observe::ProbeSignal;

/// The controller acts once its window holds this much time of samples (or is full, if
/// shorter): enough for a steady p99 at the sampling rates of a runtime probe, well before a
/// 2.5 s window fills.
pub const WARM_SPAN: Duration = Duration::from_secs(1);
/// The newest part of the window the controller also reads, to tell a latency that is still
/// high from one the window still remembers.
pub const RECENT_SPAN: Duration = Duration::from_millis(500);
/// Fewest samples in the recent part for its p99 to count.
pub const MIN_RECENT_SAMPLES: u64 = 200;

/// A source of the latency the controller keeps under its target.
pub trait LatencySignal: Send + Sync + 'static {
    /// The current window of latency samples.
    fn window_snapshot(&self) -> WindowSnapshot;

    /// The window, and the samples of about its newest `recent` if the source keeps them
    /// apart (default: it does not).
    fn window_snapshot_with_recent(&self, recent: Duration) -> (WindowSnapshot, Option<HistogramSnapshot>) {
        let _ = recent;
        (self.window_snapshot(), None)
    }

    /// Tells the source whether the limiter needs it now (`true` while elastic work asks for
    /// CPU). A source that samples on demand ([`ProbeSignal`]) lowers its rate while it is not
    /// needed; the default ignores it.
    fn set_wanted(&self, wanted: bool) {
        let _ = wanted;
    }

    /// Every sample the source has taken since it began (a running total), if it keeps one
    /// (default: it does not). The limiter takes the samples of the ticks no elastic work ran
    /// in from it (`elastic/quiet.rs`); without it the configured target alone applies.
    fn total_snapshot(&self) -> Option<HistogramSnapshot> {
        None
    }

    /// Whether the window is fit to steer by (default: always). A source whose demand just rose
    /// is not, until it has sampled at its full rate for a while: the limiter holds its share
    /// until then.
    fn is_primed(&self) -> bool {
        true
    }
}

impl LatencySignal for ProbeSignal {
    fn window_snapshot(&self) -> WindowSnapshot {
        self.window.snapshot()
    }

    fn window_snapshot_with_recent(&self, recent: Duration) -> (WindowSnapshot, Option<HistogramSnapshot>) {
        self.window.window_snapshot_with_recent(recent)
    }

    fn set_wanted(&self, wanted: bool) {
        self.demand.set_wanted(wanted);
    }

    fn is_primed(&self) -> bool {
        self.demand.is_primed()
    }

    fn total_snapshot(&self) -> Option<HistogramSnapshot> {
        Some(self.window.cumulative().snapshot())
    }
}

impl LatencySignal for WindowedHistogram {
    fn window_snapshot(&self) -> WindowSnapshot {
        self.snapshot()
    }

    fn window_snapshot_with_recent(&self, recent: Duration) -> (WindowSnapshot, Option<HistogramSnapshot>) {
        let (window, recent) = self.snapshot_with_recent(recent);
        (window, Some(recent))
    }

    fn total_snapshot(&self) -> Option<HistogramSnapshot> {
        Some(self.cumulative().snapshot())
    }
}

/// Several latency sources read as one: each tick's window holds the samples of all of them.
///
/// Made to steer by the scheduling delays of the service's own tasks
/// ([`PollMonitor::scheduling_window`](crate::observe::PollMonitor::scheduling_window) of
/// futures wrapped by [`instrument_runnable`](crate::observe::PollMonitor::instrument_runnable))
/// beside the runtime probe: while requests run, their samples outnumber the probe's and set the
/// quantile; while none do, the probe's samples keep the signal alive (a signal of requests
/// alone falls silent in an idle service, and the limiter then falls to its floor).
///
/// The window is warm once any source's is; it is primed once every source is; demand reaches
/// every source. The recent part merges the sources that keep one, and so does the running
/// total.
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use tailguard::elastic::{LatencySignal, MergedSignal};
/// use tailguard::histogram::{WindowConfig, WindowedHistogram};
///
/// let probe = Arc::new(WindowedHistogram::new(WindowConfig::DEFAULT)?);
/// let tasks = Arc::new(WindowedHistogram::new(WindowConfig::DEFAULT)?);
/// probe.record(Duration::from_micros(100));
/// tasks.record(Duration::from_micros(900));
/// let signal = MergedSignal::new(vec![probe, tasks]);
/// assert_eq!(signal.window_snapshot().histogram.count(), 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct MergedSignal {
    sources: Vec<Arc<dyn LatencySignal>>,
}

impl MergedSignal {
    /// The sources read together.
    pub fn new(sources: Vec<Arc<dyn LatencySignal>>) -> Self {
        Self { sources }
    }
}

impl std::fmt::Debug for MergedSignal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MergedSignal").field("sources", &self.sources.len()).finish()
    }
}

/// The merge of `parts` (`None` when there are none).
fn merged(parts: impl Iterator<Item = HistogramSnapshot>) -> Option<HistogramSnapshot> {
    parts.reduce(|mut all, part| {
        all.merge(&part);
        all
    })
}

/// The windows of `parts` as one: every sample, the longest span, warm if any is.
fn merged_window(parts: impl Iterator<Item = WindowSnapshot>) -> WindowSnapshot {
    let empty = WindowSnapshot { histogram: HistogramSnapshot::empty(), span: Duration::ZERO, warm: false };
    parts.fold(empty, |mut all, part| {
        all.histogram.merge(&part.histogram);
        all.span = all.span.max(part.span);
        all.warm |= part.warm;
        all
    })
}

impl LatencySignal for MergedSignal {
    fn window_snapshot(&self) -> WindowSnapshot {
        merged_window(self.sources.iter().map(|source| source.window_snapshot()))
    }

    fn window_snapshot_with_recent(&self, recent: Duration) -> (WindowSnapshot, Option<HistogramSnapshot>) {
        let mut recents = Vec::with_capacity(self.sources.len());
        let window = merged_window(self.sources.iter().map(|source| {
            let (part, part_recent) = source.window_snapshot_with_recent(recent);
            recents.extend(part_recent);
            part
        }));
        (window, merged(recents.into_iter()))
    }

    fn set_wanted(&self, wanted: bool) {
        for source in &self.sources {
            source.set_wanted(wanted);
        }
    }

    fn total_snapshot(&self) -> Option<HistogramSnapshot> {
        merged(self.sources.iter().filter_map(|source| source.total_snapshot()))
    }

    fn is_primed(&self) -> bool {
        self.sources.iter().all(|source| source.is_primed())
    }
}

/// What the latency signal is doing, as of the last tick.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignalState {
    /// The limiter reads no signal: a fixed share.
    None,
    /// The window does not hold [`WARM_SPAN`] of samples yet (grants go out at the floor), or
    /// its source just resumed its full rate and is not
    /// [primed](LatencySignal::is_primed) (the share is held).
    Warming,
    /// Samples arrive; the controller steers by them.
    Live,
    /// No samples for at least [`LimiterConfig::silence`]: the probe stopped or stalled. The
    /// share falls to the floor until samples return.
    Silent {
        /// How long the signal has been silent.
        since: Duration,
    },
}

/// A window snapshot taken for one tick (before the limiter's lock), with its recent part.
pub(super) type Window = (WindowSnapshot, Option<HistogramSnapshot>);

/// What the controller steers by this tick.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Reading {
    /// The window's quantile, once warm and while not silent.
    pub(super) p99: Option<Duration>,
    /// The recent part's quantile, under the same conditions and with enough samples.
    pub(super) recent_p99: Option<Duration>,
    /// No samples for the configured silence span (feedback controllers only).
    pub(super) silent: bool,
}

/// What the limiter remembers of its signal from tick to tick.
pub(super) struct SignalMemory {
    /// When the signal last delivered samples.
    last_heard_nanos: u64,
    pub(super) state: SignalState,
    /// The window's quantile at the last tick, warm or not.
    pub(super) latest_p99: Option<Duration>,
    /// Whether the window has been warm (a fixed share is warm from the start).
    pub(super) warm: bool,
}

impl SignalMemory {
    /// Memory at `now` for a limiter with or without a signal and a fixed share or not.
    pub(super) fn new(has_signal: bool, fixed: bool, now: u64) -> Self {
        let state = if fixed || !has_signal { SignalState::None } else { SignalState::Warming };
        SignalMemory { last_heard_nanos: now, state, latest_p99: None, warm: fixed }
    }

    /// Reads this tick's `window` (`None`: the limiter has no signal) at `now`; a window that
    /// is not `primed` counts as warming.
    pub(super) fn read(
        &mut self,
        window: Option<&Window>,
        primed: bool,
        config: &LimiterConfig,
        now: u64,
    ) -> Reading {
        // A fixed share and the utilisation peer do not steer by the signal.
        let fixed = !config.controller.reads_latency();
        let mut recent_p99 = None;
        if let Some((window, recent)) = window {
            // Warm: the window has covered WARM_SPAN (or its whole length) and holds samples.
            self.warm |= (window.warm || window.span >= WARM_SPAN) && window.histogram.count() > 0;
            self.latest_p99 = window.histogram.quantile(config.quantile).ok().flatten();
            recent_p99 = recent
                .as_ref()
                .filter(|recent| recent.count() >= MIN_RECENT_SAMPLES)
                .and_then(|recent| recent.quantile(config.quantile).ok().flatten());
            // Heard from: samples in the recent part, or in the window for a signal that keeps
            // no recent part.
            if recent.as_ref().map_or(window.histogram.count() > 0, |recent| recent.count() > 0) {
                self.last_heard_nanos = now;
            }
        }
        let silent_for = now.saturating_sub(self.last_heard_nanos);
        let silent = window.is_some() && !fixed && silent_for >= duration_nanos(config.silence);
        self.state = match (window, fixed) {
            (None, _) | (_, true) => SignalState::None,
            _ if silent => SignalState::Silent { since: Duration::from_nanos(silent_for) },
            _ if !self.warm || !primed => SignalState::Warming,
            _ => SignalState::Live,
        };
        if self.warm && primed && !silent {
            Reading { p99: self.latest_p99, recent_p99, silent }
        } else {
            Reading { p99: None, recent_p99: None, silent }
        }
    }
}
