//! Outlier trace capture: the span trees of slow requests, sampled by a `tracing` layer.
//!
//! Stack a [`CaptureLayer`] on a [`tracing_subscriber::Registry`] and keep its
//! [`CaptureHandle`]. [`arm`](CaptureHandle::arm) it with a [`CaptureSpec`]: requests whose root
//! span is named `fingerprint` are sampled with probability `probability`; the whole span tree of
//! a sampled request is recorded (every span created under the root, on any thread), and kept as
//! a [`Trace`] only if the root took at least `threshold`. Sampling stops once `window` has
//! passed since arming or `max_captures` traces were kept. [`traces`](CaptureHandle::traces)
//! lists summaries, [`trace`](CaptureHandle::trace) gives one tree (`Display` renders it as an
//! indented text tree), [`status`](CaptureHandle::status) tells whether the arming still
//! samples and what it sampled, kept and dropped, [`histogram`](CaptureHandle::histogram)
//! counts kept traces per minute since arming, and
//! [`minute_of_hour_histogram`](CaptureHandle::minute_of_hour_histogram) per minute of the hour
//! (0–59, wall clock, UTC), across hours: slow requests caused by work scheduled at fixed
//! minutes, such as backups at :00 and :35, pile up in those minutes however long ago the
//! capture was armed.
//!
//! Install the subscriber as the global default, or as the default of every thread that runs
//! the request's tasks (e.g. from tokio's `on_thread_start`): the registry releases a span that
//! was entered on a thread through that thread's default dispatcher, so a span entered on a
//! thread where the subscriber is not the default never closes, and neither does its request.
//!
//! # What is measured, per span
//!
//! All times come from the layer's [`Clock`](crate::clock::Clock) (monotonic wall time), and
//! so does each trace's wall-clock start ([`Trace::started_at_wall`], read once per sampled
//! root from [`Clock::unix_nanos`](crate::clock::Clock::unix_nanos)) that the minute-of-hour
//! histogram groups by:
//!
//! - **start** and **duration**: from the span's creation (`on_new_span`) to its close, the start
//!   as an offset from the root's creation. The registry closes a span only once its children
//!   have closed, so a request ends — and is compared with the threshold — when its last span
//!   closes: background work that carries a child span of the request extends it (give such
//!   work a root of its own, `parent: None`, and link it with `follows_from` instead). A span
//!   that is never closed (leaked) keeps its request in flight for good.
//! - **busy**: wall time while the span was entered on at least one thread. For a future
//!   instrumented with a span, `tracing` enters the span for each poll, so this is the time its
//!   polls ran — including time the OS descheduled the thread in the middle of a poll.
//! - **idle** = duration − busy: the span was open but not entered — waiting on I/O, a timer, a
//!   lock, another task, or to be scheduled.
//! - **scheduling delay**: of that idle time, the wake→poll delays of the polls in which the span
//!   was entered: the time its task had been woken but not yet polled. `tracing` does not see
//!   wakes, so this is known only where the task runs under a [`Scheduled`] wrapper (or
//!   whatever opens a [`PollScope`] around its polls); elsewhere it is zero and only the
//!   busy/idle split is measured. Every span entered in a poll is charged that poll's delay (they
//!   all waited); the trace's own total counts each poll once.
//! - **fields**: recorded at creation and by `Span::record`, as `Debug` text.
//!
//! Events inside spans are not recorded.
//!
//! # Costs
//!
//! Spans that belong to no sampled request pay almost nothing: while no sampled request is being
//! recorded, `on_enter`, `on_exit`, `on_record` and `on_close` are one relaxed atomic load each,
//! and `on_new_span` adds a second load (the armed generation) and, while armed, a thread-local
//! read and a comparison of the span's name with the fingerprint. A root candidate adds one draw
//! of a per-thread SplitMix64 generator: no lock, no allocation, no clock read. While some
//! request is being recorded, every span event also looks up the span's extensions in the
//! registry (a read lock on that span only) to see whether it belongs to it.
//!
//! A sampled request reads the clock once per span event, allocates its spans and their fields,
//! and takes one lock of its own per event.
//!
//! Measured with `cargo bench -p tailguard --features tracing --bench capture` on the project's
//! 2-core VM, in thread CPU time per request (a root and four child spans, each entered once;
//! criterion estimates, two runs):
//!
//! | request | registry + no-op layer | layer unarmed | layer armed, p = 0 | p = 0 while another request is recorded | every request sampled |
//! |---|---|---|---|---|---|
//! | spans only | 0.52–0.53 µs | 0.55 µs | 0.56–0.58 µs | 1.14–1.20 µs | 2.4–2.7 µs |
//! | spans + ~20 µs of work | 20.5 µs | 20.7 µs | 20.6–20.7 µs | 21.3 µs | 22.4–23.2 µs |
//!
//! Interleaving the ~20 µs request under the bare registry and under the layer armed at p = 0
//! (40 rounds of 2000 requests) gave median per-round ratios of 1.005–1.008 in three runs: an
//! unsampled request pays under 1 %, ~40 ns per 5 spans. A sampled request costs ~1.8–2.5 µs more
//! (~400 ns per span); while another request is being recorded, an unsampled one pays ~0.6 µs
//! (~3 % of the 20 µs request) for the extension lookups.
//!
//! # Memory
//!
//! Bounded by the spec: at most `max_captures` kept traces of at most `max_spans` spans each
//! (further spans and their descendants are counted in [`Trace::dropped_spans`]), and at most
//! `max_in_flight` requests recorded at once (further sampled roots are skipped and counted).
//! A span holds at most [`MAX_FIELDS`] fields of at most [`MAX_FIELD_LEN`] bytes each.
//!
//! # Examples
//!
//! ```
//! use std::time::Duration;
//! use tailguard::capture::{CaptureLayer, CaptureSpec, CaptureState};
//! use tailguard::clock::ManualClock;
//! use tracing_subscriber::layer::SubscriberExt;
//!
//! let clock = ManualClock::new();
//! clock.set_unix_time(Duration::from_secs(1_704_105_300)); // 2024-01-01T10:35:00Z
//! let layer = CaptureLayer::with_clock(clock.shared());
//! let capture = layer.handle();
//! let subscriber = tracing_subscriber::registry().with(layer);
//!
//! // Sample every request named "request"; keep those that take at least 5 ms.
//! let spec = CaptureSpec::new("request").probability(1.0).threshold(Duration::from_millis(5));
//! let id = capture.arm(spec)?;
//! tracing::subscriber::with_default(subscriber, || {
//!     for (n, millis) in [(1, 2), (2, 9)] {
//!         let request = tracing::info_span!("request", n);
//!         let _request = request.enter();
//!         let query = tracing::info_span!("query", table = "users");
//!         let _query = query.enter();
//!         clock.advance(Duration::from_millis(millis)); // the query's work
//!     }
//! });
//!
//! let status = capture.status().expect("armed");
//! assert_eq!((status.id, status.state), (id, CaptureState::Armed));
//! assert_eq!((status.sampled, status.kept, status.below_threshold), (2, 1, 1));
//! let list = capture.traces();
//! assert_eq!(list[0].duration, Duration::from_millis(9));
//! let trace = capture.trace(list[0].id).expect("kept");
//! assert_eq!(trace.spans[1].parent, Some(0));
//! assert!(trace.to_string().contains("  query {table=users}"));
//! assert_eq!(capture.histogram().to_string(), "minute | freq\n00:00  | * 1\n");
//! assert_eq!(capture.minute_of_hour_histogram().counts[35], 1);
//! assert!(capture.minute_of_hour_histogram().to_string().contains("\n:35    | * 1\n"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod building;
mod handle;
mod layer;
mod scheduling;
mod shared;
pub(crate) mod slot;
mod trace;

use std::fmt;
use std::num::NonZeroUsize;
use std::time::Duration;

pub use handle::CaptureHandle;
pub use layer::CaptureLayer;
pub use scheduling::{PollScope, Scheduled};
pub use trace::{
    CaptureState, CaptureStatus, MinuteHistogram, MinuteOfHourHistogram, SpanField, SpanRecord, Trace,
    TraceId, TraceSummary,
};

/// The most fields recorded per span; later ones are ignored.
pub const MAX_FIELDS: usize = 16;

/// The longest field value kept, in bytes; longer values are cut (at a character boundary) and
/// end with `…`.
pub const MAX_FIELD_LEN: usize = 256;

/// Identifies one arming of a layer (unique within the layer, never reused).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct CaptureId(pub u64);

impl fmt::Display for CaptureId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// What to capture: which requests, how often, which to keep, for how long, and how much.
///
/// Build one with [`CaptureSpec::new`] and the setters, or fill the fields.
///
/// ```
/// use std::num::NonZeroUsize;
/// use std::time::Duration;
/// use tailguard::capture::CaptureSpec;
///
/// let spec = CaptureSpec::new("GET /kv")
///     .probability(0.05)
///     .threshold(Duration::from_millis(10))
///     .window(Duration::from_secs(300))
///     .max_captures(NonZeroUsize::new(20).unwrap());
/// assert_eq!(spec.max_spans, CaptureSpec::DEFAULT_MAX_SPANS);
/// ```
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct CaptureSpec {
    /// The name of the root span of the requests to capture (e.g. `"request"`, or the name of
    /// an `#[instrument]`ed handler function). A span of that name inside a request that is
    /// already sampled is recorded as part of it, not as a new root.
    pub fingerprint: String,
    /// The chance that a root is sampled, `0.0 ..= 1.0`. Default [`DEFAULT_PROBABILITY`](Self::DEFAULT_PROBABILITY).
    pub probability: f64,
    /// A sampled request is kept only if its root took at least this long. Default zero (keep
    /// every sampled request).
    pub threshold: Duration,
    /// No root is sampled once this much time has passed since arming; requests already sampled
    /// are still recorded. Default [`DEFAULT_WINDOW`](Self::DEFAULT_WINDOW).
    pub window: Duration,
    /// Sampling stops once this many traces were kept. Default
    /// [`DEFAULT_MAX_CAPTURES`](Self::DEFAULT_MAX_CAPTURES).
    pub max_captures: NonZeroUsize,
    /// The most spans recorded per trace, the root included. Default
    /// [`DEFAULT_MAX_SPANS`](Self::DEFAULT_MAX_SPANS).
    pub max_spans: NonZeroUsize,
    /// The most requests recorded at once; roots sampled beyond it are skipped. Default
    /// [`DEFAULT_MAX_IN_FLIGHT`](Self::DEFAULT_MAX_IN_FLIGHT).
    pub max_in_flight: NonZeroUsize,
    /// Seeds the per-thread sampling generators (mixed with each thread's order of arrival), so
    /// that a single-threaded run samples the same requests every time.
    pub seed: u64,
}

impl CaptureSpec {
    /// Default sampling probability: one request in a hundred.
    pub const DEFAULT_PROBABILITY: f64 = 0.01;
    /// Default capture window: 10 minutes.
    pub const DEFAULT_WINDOW: Duration = Duration::from_secs(600);
    /// Default number of traces kept.
    pub const DEFAULT_MAX_CAPTURES: NonZeroUsize = NonZeroUsize::new(100).expect("non-zero");
    /// Default spans per trace.
    pub const DEFAULT_MAX_SPANS: NonZeroUsize = NonZeroUsize::new(256).expect("non-zero");
    /// Default requests recorded at once.
    pub const DEFAULT_MAX_IN_FLIGHT: NonZeroUsize = NonZeroUsize::new(64).expect("non-zero");
    /// Default seed.
    pub const DEFAULT_SEED: u64 = 0x7a11_6a2d_0ca7_c4e5;

    /// A spec for roots named `fingerprint`, with the defaults.
    pub fn new(fingerprint: impl Into<String>) -> Self {
        Self {
            fingerprint: fingerprint.into(),
            probability: Self::DEFAULT_PROBABILITY,
            threshold: Duration::ZERO,
            window: Self::DEFAULT_WINDOW,
            max_captures: Self::DEFAULT_MAX_CAPTURES,
            max_spans: Self::DEFAULT_MAX_SPANS,
            max_in_flight: Self::DEFAULT_MAX_IN_FLIGHT,
            seed: Self::DEFAULT_SEED,
        }
    }

    /// Sets [`probability`](Self::probability).
    #[must_use]
    pub fn probability(mut self, probability: f64) -> Self {
        self.probability = probability;
        self
    }

    /// Sets [`threshold`](Self::threshold).
    #[must_use]
    pub fn threshold(mut self, threshold: Duration) -> Self {
        self.threshold = threshold;
        self
    }

    /// Sets [`window`](Self::window).
    #[must_use]
    pub fn window(mut self, window: Duration) -> Self {
        self.window = window;
        self
    }

    /// Sets [`max_captures`](Self::max_captures).
    #[must_use]
    pub fn max_captures(mut self, max_captures: NonZeroUsize) -> Self {
        self.max_captures = max_captures;
        self
    }

    /// Sets [`max_spans`](Self::max_spans).
    #[must_use]
    pub fn max_spans(mut self, max_spans: NonZeroUsize) -> Self {
        self.max_spans = max_spans;
        self
    }

    /// Sets [`max_in_flight`](Self::max_in_flight).
    #[must_use]
    pub fn max_in_flight(mut self, max_in_flight: NonZeroUsize) -> Self {
        self.max_in_flight = max_in_flight;
        self
    }

    /// Sets [`seed`](Self::seed).
    #[must_use]
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Checks the spec as [`CaptureHandle::arm`] does.
    ///
    /// # Errors
    ///
    /// [`ArmError`] naming the first field out of range.
    pub fn validate(&self) -> Result<(), ArmError> {
        if self.fingerprint.is_empty() {
            return Err(ArmError::EmptyFingerprint);
        }
        if !(0.0..=1.0).contains(&self.probability) {
            return Err(ArmError::Probability(self.probability));
        }
        if self.window.is_zero() {
            return Err(ArmError::ZeroWindow);
        }
        Ok(())
    }
}

/// Why [`CaptureHandle::arm`] refused a spec.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ArmError {
    /// The fingerprint names no span.
    #[error("the fingerprint is empty: name the root span of the requests to capture")]
    EmptyFingerprint,
    /// The probability is not within `0.0 ..= 1.0` (or is NaN).
    #[error("probability {0} is out of range: use 0.0 ..= 1.0 (default 0.01)")]
    Probability(f64),
    /// A zero window would never sample.
    #[error("the capture window is zero: use a positive duration (default 10 minutes)")]
    ZeroWindow,
    /// Another arming still samples: [`disarm`](CaptureHandle::disarm) it first, or wait until
    /// it expires or fills up. The refused spec is handed back.
    #[error("capture {armed} is still armed: disarm it first")]
    AlreadyArmed {
        /// The arming that still samples.
        armed: CaptureId,
        /// The refused spec.
        spec: Box<CaptureSpec>,
    },
}
