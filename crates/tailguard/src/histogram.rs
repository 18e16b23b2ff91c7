//! Latency histograms: a lock-free log-linear [`Histogram`] and a sliding [`WindowedHistogram`].
//!
//! (One file: the window is copies of the histogram's counts at slot boundaries, so both share
//! one bucket layout and its index arithmetic; a third of the file is their tests against an
//! exact oracle.)
//!
//! # Buckets
//!
//! Values are nanoseconds. Values below 32 ns have a bucket each; above, every power of two
//! (an *octave*) is split into 32 equal sub-buckets, as Go's runtime time histogram splits its
//! octaves. A bucket is therefore at most 1/32 (3.1 %) of its lower bound wide, everywhere from
//! 32 ns up to 2^43 ns (~2.4 h); larger values land in the last bucket. Near the default 1 ms
//! target a bucket is ~31 µs wide at its widest and there are no holes, unlike Go's histogram.
//!
//! # Costs
//!
//! [`Histogram::record`] computes an index from the value's leading zeros and does one relaxed
//! atomic add, plus a relaxed load (and, rarely, an update) of the maximum: no lock, no
//! allocation. Memory is fixed: [`BUCKETS`] counters (~10 KiB) per histogram.
//!
//! # Windows
//!
//! A [`WindowedHistogram`] records into one cumulative histogram and keeps, in a ring, copies of
//! its counts taken at each slot boundary (default 25 slots of 100 ms). The window's contents are
//! the live counts minus the oldest boundary's, so recording never touches the ring and rotation
//! never races with recorders. Rotation is lazy: it happens when the window is read, from the
//! injected clock, so a [`ManualClock`](crate::clock::ManualClock) drives it in tests.

use std::fmt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::clock::{SharedClock, SystemClock, duration_nanos};

/// log2 of the number of sub-buckets per octave.
const SUB_BITS: u32 = 5;
/// Sub-buckets per octave (and the count of exact buckets below the first octave).
const SUB_BUCKETS: usize = 1 << SUB_BITS;
/// One past the largest tracked octave exponent: values >= 2^MAX_EXP ns saturate.
const MAX_EXP: u32 = 43;
/// Number of buckets in every histogram.
pub const BUCKETS: usize = SUB_BUCKETS + (MAX_EXP - SUB_BITS) as usize * SUB_BUCKETS;

/// The bucket index of a value in nanoseconds.
#[inline]
pub(crate) fn bucket_index(nanos: u64) -> usize {
    if nanos < SUB_BUCKETS as u64 {
        return nanos as usize;
    }
    let exp = 63 - nanos.leading_zeros();
    if exp >= MAX_EXP {
        return BUCKETS - 1;
    }
    let sub = (nanos >> (exp - SUB_BITS)) as usize & (SUB_BUCKETS - 1);
    SUB_BUCKETS + (exp - SUB_BITS) as usize * SUB_BUCKETS + sub
}

/// The half-open range `[low, high)` of values, in nanoseconds, that land in bucket `index`.
fn bucket_bounds(index: usize) -> (u64, u64) {
    if index < SUB_BUCKETS {
        return (index as u64, index as u64 + 1);
    }
    let k = index - SUB_BUCKETS;
    let exp = (k / SUB_BUCKETS) as u32 + SUB_BITS;
    let sub = (k % SUB_BUCKETS) as u64;
    let width = 1u64 << (exp - SUB_BITS);
    let low = (SUB_BUCKETS as u64 + sub) * width;
    (low, low + width)
}

/// A quantile outside `[0, 1]` (or NaN) was asked for.
#[derive(Clone, Copy, Debug, PartialEq, thiserror::Error)]
#[error("quantile {0} is outside [0, 1]: ask for e.g. 0.99 for p99")]
pub struct InvalidQuantile(pub f64);

/// A lock-free, fixed-size, cumulative latency histogram.
///
/// Counts only grow (monotonically increasing, never reset); windows are taken by subtracting
/// [`snapshot`](Histogram::snapshot)s, as [`WindowedHistogram`] does.
pub struct Histogram {
    counts: Box<[AtomicU64]>,
    max_nanos: AtomicU64,
}

impl Histogram {
    /// An empty histogram.
    pub fn new() -> Self {
        Self { counts: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(), max_nanos: AtomicU64::new(0) }
    }

    /// Records one value in nanoseconds.
    #[inline]
    pub fn record(&self, nanos: u64) {
        self.counts[bucket_index(nanos)].fetch_add(1, Ordering::Relaxed);
        if nanos > self.max_nanos.load(Ordering::Relaxed) {
            self.max_nanos.fetch_max(nanos, Ordering::Relaxed);
        }
    }

    /// Records one duration.
    #[inline]
    pub fn record_duration(&self, value: Duration) {
        self.record(duration_nanos(value));
    }

    /// Records `count` occurrences of one value.
    pub fn record_n(&self, nanos: u64, count: u64) {
        if count == 0 {
            return;
        }
        self.counts[bucket_index(nanos)].fetch_add(count, Ordering::Relaxed);
        self.max_nanos.fetch_max(nanos, Ordering::Relaxed);
    }

    /// A copy of the counts as of now. Concurrent records may or may not be included.
    pub fn snapshot(&self) -> HistogramSnapshot {
        let counts: Box<[u64]> = self.counts.iter().map(|c| c.load(Ordering::Relaxed)).collect();
        let total = counts.iter().sum();
        HistogramSnapshot { counts, total, max_nanos: self.max_nanos.load(Ordering::Relaxed) }
    }
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Histogram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Histogram").field("snapshot", &self.snapshot().summary()).finish()
    }
}

/// An immutable copy of a histogram's counts, on which quantiles are computed.
#[derive(Clone, PartialEq, Eq)]
pub struct HistogramSnapshot {
    counts: Box<[u64]>,
    total: u64,
    max_nanos: u64,
}

impl HistogramSnapshot {
    /// A snapshot with no samples.
    pub fn empty() -> Self {
        Self { counts: vec![0; BUCKETS].into_boxed_slice(), total: 0, max_nanos: 0 }
    }

    /// A snapshot from plain counts indexed like the buckets (for single-threaded producers).
    pub(crate) fn from_counts(counts: Vec<u64>, max_nanos: u64) -> Self {
        debug_assert_eq!(counts.len(), BUCKETS);
        let total = counts.iter().sum();
        Self { counts: counts.into_boxed_slice(), total, max_nanos }
    }

    /// Number of samples.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// The largest sample, exactly (or, for a difference of snapshots, the upper bound of the
    /// highest non-empty bucket, capped by the larger snapshot's maximum). `None` when empty.
    pub fn max(&self) -> Option<Duration> {
        (!self.is_empty()).then(|| Duration::from_nanos(self.max_nanos))
    }

    /// The approximate mean, from bucket midpoints. `None` when empty.
    pub fn mean(&self) -> Option<Duration> {
        if self.is_empty() {
            return None;
        }
        let sum: u128 = self
            .counts
            .iter()
            .enumerate()
            .filter(|&(_, &c)| c > 0)
            .map(|(i, &c)| u128::from(self.representative(i)) * u128::from(c))
            .sum();
        Some(Duration::from_nanos((sum / u128::from(self.total)) as u64))
    }

    /// The `q`-quantile (0.99 for p99), within one bucket (≤ 3.1 %) of the exact sample
    /// quantile. `Ok(None)` when empty.
    ///
    /// # Errors
    ///
    /// [`InvalidQuantile`] when `q` is not within `[0, 1]`.
    pub fn quantile(&self, q: f64) -> Result<Option<Duration>, InvalidQuantile> {
        if !(0.0..=1.0).contains(&q) {
            return Err(InvalidQuantile(q));
        }
        Ok(self.quantile_nanos(q).map(Duration::from_nanos))
    }

    /// The median, p50. `None` when empty.
    pub fn p50(&self) -> Option<Duration> {
        self.quantile_nanos(0.50).map(Duration::from_nanos)
    }

    /// p90. `None` when empty.
    pub fn p90(&self) -> Option<Duration> {
        self.quantile_nanos(0.90).map(Duration::from_nanos)
    }

    /// p99. `None` when empty.
    pub fn p99(&self) -> Option<Duration> {
        self.quantile_nanos(0.99).map(Duration::from_nanos)
    }

    /// p99.9. `None` when empty.
    pub fn p999(&self) -> Option<Duration> {
        self.quantile_nanos(0.999).map(Duration::from_nanos)
    }

    /// The usual quantiles at once.
    pub fn summary(&self) -> Quantiles {
        Quantiles {
            count: self.total,
            p50: self.p50(),
            p90: self.p90(),
            p99: self.p99(),
            p999: self.p999(),
            max: self.max(),
        }
    }

    /// The samples in `self` that are not in `earlier`: bucket-wise `self - earlier`.
    ///
    /// `earlier` must be an earlier snapshot of the same cumulative histogram.
    pub fn since(&self, earlier: &HistogramSnapshot) -> HistogramSnapshot {
        let counts: Box<[u64]> =
            self.counts.iter().zip(earlier.counts.iter()).map(|(a, b)| a.saturating_sub(*b)).collect();
        let total = counts.iter().sum();
        let max_nanos =
            counts.iter().rposition(|&c| c > 0).map_or(0, |i| (bucket_bounds(i).1 - 1).min(self.max_nanos));
        HistogramSnapshot { counts, total, max_nanos }
    }

    /// Adds another snapshot's samples into this one.
    pub fn merge(&mut self, other: &HistogramSnapshot) {
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a += *b;
        }
        self.total += other.total;
        self.max_nanos = self.max_nanos.max(other.max_nanos);
    }

    /// Non-empty buckets as `(low_nanos, high_nanos, count)`, `high` exclusive, in order.
    pub fn buckets(&self) -> impl Iterator<Item = (u64, u64, u64)> + '_ {
        self.counts.iter().enumerate().filter(|&(_, &c)| c > 0).map(|(i, &c)| {
            let (low, high) = bucket_bounds(i);
            (low, high, c)
        })
    }

    fn quantile_nanos(&self, q: f64) -> Option<u64> {
        if self.is_empty() {
            return None;
        }
        // The rank of the sample the quantile names, 1-based: ceil(q * n), at least 1.
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Some(self.representative(i));
            }
        }
        Some(self.max_nanos)
    }

    /// The value reported for samples in bucket `i`: its midpoint, never above the maximum.
    fn representative(&self, i: usize) -> u64 {
        let (low, high) = bucket_bounds(i);
        (low + (high - low) / 2).min(self.max_nanos).max(low)
    }
}

impl Default for HistogramSnapshot {
    fn default() -> Self {
        Self::empty()
    }
}

impl fmt::Debug for HistogramSnapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.summary(), f)
    }
}

/// The usual quantiles of a snapshot; each is `None` when there were no samples.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Quantiles {
    /// Number of samples.
    pub count: u64,
    /// Median.
    pub p50: Option<Duration>,
    /// 90th percentile.
    pub p90: Option<Duration>,
    /// 99th percentile.
    pub p99: Option<Duration>,
    /// 99.9th percentile.
    pub p999: Option<Duration>,
    /// Largest sample.
    pub max: Option<Duration>,
}

/// Shape of a sliding window: `slots` slots of `slot` each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WindowConfig {
    /// Length of one slot; the window advances by this much at a time. Default 100 ms.
    pub slot: Duration,
    /// Number of slots in the window. Default 25 (a 2.5 s window: CockroachDB found p99 over
    /// 50 ms windows too jagged to steer by).
    pub slots: usize,
}

impl WindowConfig {
    /// The default window: 25 slots of 100 ms.
    pub const DEFAULT: WindowConfig = WindowConfig { slot: Duration::from_millis(100), slots: 25 };

    /// Checks the shape.
    ///
    /// # Errors
    ///
    /// [`InvalidWindow`] when the slot is shorter than 1 ms or longer than 1 h, or the slot count
    /// is not within 1..=1000.
    pub fn validate(&self) -> Result<(), InvalidWindow> {
        if self.slot < Duration::from_millis(1) || self.slot > Duration::from_secs(3600) {
            return Err(InvalidWindow::Slot(self.slot));
        }
        if !(1..=1000).contains(&self.slots) {
            return Err(InvalidWindow::Slots(self.slots));
        }
        Ok(())
    }

    /// Total length of the window.
    pub fn length(&self) -> Duration {
        self.slot * self.slots as u32
    }
}

impl Default for WindowConfig {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// A window shape that cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvalidWindow {
    /// The slot length must be within 1 ms ..= 1 h.
    #[error("window slot of {0:?} is out of range: use 1 ms ..= 1 h (default 100 ms)")]
    Slot(Duration),
    /// The number of slots must be within 1 ..= 1000.
    #[error("window of {0} slots is out of range: use 1 ..= 1000 (default 25)")]
    Slots(usize),
}

/// The contents of a window as read at one moment.
#[derive(Clone, Debug)]
pub struct WindowSnapshot {
    /// Samples recorded within the window.
    pub histogram: HistogramSnapshot,
    /// How much time the window covers so far: it grows from zero after creation until it
    /// reaches the configured length. A window not yet full is *warming up*.
    pub span: Duration,
    /// Whether the window has covered its full configured length at least once.
    pub warm: bool,
}

/// A latency histogram over a sliding window of time.
///
/// ```
/// use std::time::Duration;
/// use tailguard::clock::ManualClock;
/// use tailguard::histogram::{WindowConfig, WindowedHistogram};
///
/// let clock = ManualClock::new();
/// let window = WindowedHistogram::with_clock(WindowConfig::DEFAULT, clock.shared())?;
/// window.record(Duration::from_micros(250));
/// clock.advance(Duration::from_secs(1));
/// assert_eq!(window.snapshot().histogram.count(), 1);
/// clock.advance(Duration::from_secs(3)); // a whole window later: gone
/// assert_eq!(window.snapshot().histogram.count(), 0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct WindowedHistogram {
    live: Histogram,
    clock: SharedClock,
    config: WindowConfig,
    ring: Mutex<Ring>,
}

struct Ring {
    /// Cumulative counts at the start of each slot still inside the window, oldest first; the
    /// last one is the start of the current slot. Never empty.
    boundaries: std::collections::VecDeque<HistogramSnapshot>,
    /// Clock reading at which the current slot started.
    current_start_nanos: u64,
    /// Clock reading at creation.
    created_nanos: u64,
    /// The live counts at the last read.
    last_read: HistogramSnapshot,
    warm: bool,
}

impl WindowedHistogram {
    /// A window on the system clock.
    ///
    /// # Errors
    ///
    /// [`InvalidWindow`] when the shape is out of range (see [`WindowConfig::validate`]).
    pub fn new(config: WindowConfig) -> Result<Self, InvalidWindow> {
        Self::with_clock(config, SystemClock::shared())
    }

    /// A window on the given clock.
    ///
    /// # Errors
    ///
    /// [`InvalidWindow`] when the shape is out of range (see [`WindowConfig::validate`]).
    pub fn with_clock(config: WindowConfig, clock: SharedClock) -> Result<Self, InvalidWindow> {
        config.validate()?;
        let now = clock.now_nanos();
        let ring = Ring {
            boundaries: std::iter::once(HistogramSnapshot::empty()).collect(),
            current_start_nanos: now,
            created_nanos: now,
            last_read: HistogramSnapshot::empty(),
            warm: false,
        };
        Ok(Self { live: Histogram::new(), clock, config, ring: Mutex::new(ring) })
    }

    /// Records one value in nanoseconds. Lock-free; see [`Histogram::record`].
    #[inline]
    pub fn record(&self, value: Duration) {
        self.live.record(duration_nanos(value));
    }

    /// Records one value in nanoseconds.
    #[inline]
    pub fn record_nanos(&self, nanos: u64) {
        self.live.record(nanos);
    }

    /// The cumulative histogram behind the window: every sample since creation.
    pub fn cumulative(&self) -> &Histogram {
        &self.live
    }

    /// The window's shape.
    pub fn config(&self) -> WindowConfig {
        self.config
    }

    /// The clock the window rotates by.
    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }

    /// Rotates the window up to the clock's current time and returns its contents.
    ///
    /// A slot boundary is placed at the first read after it passes: samples recorded between
    /// the boundary and that read count in the slot before it. Readers that read once per slot
    /// (the limiter's tick does) keep that error within the time a read takes.
    pub fn snapshot(&self) -> WindowSnapshot {
        self.rotate(None).0
    }

    /// [`snapshot`](Self::snapshot), plus the samples of the newest part of the window: the
    /// current slot and the whole slots before it that make up `recent` (rounded up to whole
    /// slots, at most the window).
    ///
    /// A long window reacts to a rise within a few samples but holds a fall for its whole
    /// length; the recent part tells whether the latency is still high *now*.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tailguard::clock::ManualClock;
    /// use tailguard::histogram::{WindowConfig, WindowedHistogram};
    ///
    /// let clock = ManualClock::new();
    /// let window = WindowedHistogram::with_clock(WindowConfig::DEFAULT, clock.shared())?;
    /// window.record(Duration::from_millis(5)); // a bad spell...
    /// clock.advance(Duration::from_millis(100));
    /// window.snapshot();
    /// clock.advance(Duration::from_secs(1));
    /// window.snapshot();
    /// window.record(Duration::from_micros(100)); // ...that is over
    /// let (whole, recent) = window.snapshot_with_recent(Duration::from_millis(500));
    /// assert_eq!(whole.histogram.count(), 2);
    /// assert_eq!(recent.count(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn snapshot_with_recent(&self, recent: Duration) -> (WindowSnapshot, HistogramSnapshot) {
        let (window, recent) = self.rotate(Some(recent));
        (window, recent.unwrap_or_default())
    }

    /// Rotates the window to now; returns it, and its newest `recent` when asked for.
    fn rotate(&self, recent: Option<Duration>) -> (WindowSnapshot, Option<HistogramSnapshot>) {
        let now = self.clock.now_nanos();
        // A poisoned lock only means a reader panicked mid-rotation; the ring is still valid.
        let mut ring = self.ring.lock().unwrap_or_else(|p| p.into_inner());
        let slot = duration_nanos(self.config.slot);
        let elapsed_slots = now.saturating_sub(ring.current_start_nanos) / slot;
        let live = self.live.snapshot();
        if elapsed_slots > 0 {
            ring.current_start_nanos += elapsed_slots * slot;
            if elapsed_slots as usize >= self.config.slots {
                // Everything before the current slot has left the window. The samples since the
                // last read cannot be placed in time; they are counted in the current slot.
                let last_read = ring.last_read.clone();
                ring.boundaries.clear();
                ring.boundaries.push_back(last_read);
            } else {
                // Boundaries that passed unread hold what the last read saw: samples recorded
                // since then cannot be placed and count in the newest slot.
                for _ in 1..elapsed_slots {
                    let last_read = ring.last_read.clone();
                    ring.boundaries.push_back(last_read);
                }
                ring.boundaries.push_back(live.clone());
            }
            while ring.boundaries.len() > self.config.slots {
                ring.boundaries.pop_front();
            }
        }
        if now.saturating_sub(ring.created_nanos) >= duration_nanos(self.config.length()) {
            ring.warm = true;
        }
        let oldest = ring.boundaries.front().cloned().unwrap_or_default();
        // The current slot's boundary is the last; `whole` more slots go back from there.
        let recent = recent.map(|recent| {
            let whole = duration_nanos(recent).div_ceil(slot) as usize;
            let start = ring.boundaries.len().saturating_sub(whole + 1);
            ring.boundaries.get(start).map(|start| live.since(start)).unwrap_or_default()
        });
        ring.last_read = live.clone();
        let window_start = ring.current_start_nanos - (ring.boundaries.len() as u64 - 1) * slot;
        let span = Duration::from_nanos(now - window_start.max(ring.created_nanos));
        (WindowSnapshot { histogram: live.since(&oldest), span, warm: ring.warm }, recent)
    }
}

impl fmt::Debug for WindowedHistogram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WindowedHistogram").field("config", &self.config).finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
