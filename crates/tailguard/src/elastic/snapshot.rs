//! What the limiter shows: a point-in-time [`LimiterSnapshot`] and the bounded history of
//! ticks ([`TickRecord`]).

use std::collections::VecDeque;
use std::time::Duration;

use super::config::ControllerKind;
use super::signal::SignalState;

/// Ticks kept in [`Limiter::history`](super::Limiter::history) (one minute at the default
/// 100 ms tick).
pub const HISTORY_TICKS: usize = 600;

/// One controller tick, as kept in the bounded history.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TickRecord {
    /// Wall time since the limiter was built.
    pub at: Duration,
    /// Share after the tick.
    pub share: f64,
    /// The latency quantile read (`None` before the window is warm or while empty).
    pub p99: Option<Duration>,
    /// The same quantile over the window's recent part, which the adaptive controller steers
    /// by (`None` while that part is empty).
    pub recent_p99: Option<Duration>,
    /// Fraction of the tick during which work waited for a grant.
    pub waiting_fraction: f64,
    /// CPU granted during the ticks of the last [`USE_SPAN`](super::USE_SPAN) as a fraction of
    /// what the share allowed in them.
    pub used_fraction: f64,
    /// The adaptive controller's knee after the tick, while it holds the share under it or
    /// remembers it (`elastic/knee.rs`); `None` otherwise.
    pub knee: Option<f64>,
}

/// A point-in-time view of the limiter. Totals are monotonically increasing, never reset.
#[derive(Clone, Debug, PartialEq)]
pub struct LimiterSnapshot {
    /// Elastic share of all cores currently enforced (the floor during blind start).
    pub share: f64,
    /// Cores the share is a fraction of.
    pub cores: f64,
    /// Bucket balance in CPU nanoseconds (negative: debt).
    pub balance_nanos: i64,
    /// Debt (the negative part of the balance).
    pub debt: Duration,
    /// Callers waiting for a grant.
    pub waiters: usize,
    /// CPU granted in total.
    pub total_granted: Duration,
    /// CPU actually used by settled grants in total.
    pub total_used: Duration,
    /// Latest latency quantile the controller read.
    pub latest_p99: Option<Duration>,
    /// The target the controller steered by at its last tick: the configured one, or for the
    /// adaptive controller [`quiet_factor`](super::LimiterConfig::quiet_factor) × `quiet_p99`
    /// when that is higher.
    pub working_target: Duration,
    /// The latency quantile of recent ticks without elastic work, once enough were seen
    /// (adaptive controller only; `elastic/quiet.rs`).
    pub quiet_p99: Option<Duration>,
    /// The highest fraction of the machine's CPU time a hypervisor stole in a tick of the
    /// newest half second, as of the last tick (adaptive controller with
    /// [`steal_hold`](super::LimiterConfig::steal_hold) on; `elastic/steal.rs`).
    pub steal: Option<f64>,
    /// The share at which the adaptive controller last saw latency go over target, while it
    /// holds the share under it or remembers it (`elastic/knee.rs`); `None` for the other
    /// controllers and when no knee is remembered. A share that does not climb though latency
    /// is far under target is most often held here.
    pub knee: Option<f64>,
    /// Whether the latency window has held [`WARM_SPAN`](super::WARM_SPAN) of samples, or its full length if
    /// shorter (before: blind start).
    pub warm: bool,
    /// The controller variant.
    pub controller: ControllerKind,
    /// Controller ticks so far.
    pub ticks: u64,
    /// Whether the latency signal is feeding the controller, and if not, why.
    pub signal: SignalState,
}

/// The last [`HISTORY_TICKS`] ticks, oldest first.
#[derive(Debug, Default)]
pub(super) struct History(VecDeque<TickRecord>);

impl History {
    /// Keeps `record`, dropping the oldest beyond [`HISTORY_TICKS`].
    pub(super) fn push(&mut self, record: TickRecord) {
        if self.0.len() == HISTORY_TICKS {
            self.0.pop_front();
        }
        self.0.push_back(record);
    }

    pub(super) fn to_vec(&self) -> Vec<TickRecord> {
        self.0.iter().copied().collect()
    }
}
