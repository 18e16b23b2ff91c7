//! Plain data of captured traces, and their text forms.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{CaptureId, CaptureSpec};

/// Identifies one kept trace (unique within a layer, never reused).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct TraceId(pub u64);

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// One field of a span: its name and its value, as `Debug` formats it (strings unquoted),
/// cut to [`MAX_FIELD_LEN`](super::MAX_FIELD_LEN) bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct SpanField {
    /// The field's name.
    pub name: String,
    /// The field's value.
    pub value: String,
}

/// One span of a captured request.
///
/// All times are wall time from the layer's clock. `busy + idle == duration`;
/// `scheduling_delay` is the part of `idle` during which the span's task had been woken but
/// not yet polled, known only where the task runs under a [`Scheduled`](super::Scheduled)
/// wrapper (or another [`PollScope`](super::PollScope)); the rest of `idle` is waiting for
/// something else (I/O, a timer, a lock, another task), or time before the span was first
/// entered.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct SpanRecord {
    /// The span's name (its callsite's).
    pub name: String,
    /// The span's target (by default its module path).
    pub target: String,
    /// Index of the parent in [`Trace::spans`]; `None` for the root.
    pub parent: Option<usize>,
    /// Fields recorded at creation and later with `Span::record`.
    pub fields: Vec<SpanField>,
    /// When the span was created, from the root's creation.
    pub start: Duration,
    /// From creation to close.
    pub duration: Duration,
    /// Wall time while entered on some thread (for a future: while polled). Includes time the
    /// OS descheduled the thread mid-poll.
    pub busy: Duration,
    /// `duration − busy`: open but not entered.
    pub idle: Duration,
    /// Times the span was entered.
    pub enters: u64,
    /// Distinct polls (within a [`PollScope`](super::PollScope)) during which the span was entered.
    pub polls: u64,
    /// Of those, polls that followed a wake.
    pub scheduled_polls: u64,
    /// Sum of the wake→poll delays of those polls: time the span's task waited to be scheduled.
    pub scheduling_delay: Duration,
    /// The longest of those delays.
    pub max_scheduling_delay: Duration,
}

/// A kept request: the whole span tree of one sampled root that took at least the threshold.
///
/// `Display` renders it as an indented tree, one line per span:
///
/// ```text
/// trace 1 (capture 1): request took 22.00ms, started +0:00:00.000 after arming; 3 spans; waited 4.00ms to be scheduled in 1 of 4 polls
///     start   duration       busy       idle      sched  span
///    +0.000    22.00ms     0.00ms    22.00ms   0.00ms/0  request {id=7}
///    +0.000    17.00ms     3.00ms    14.00ms   4.00ms/1    hop
///   +17.000     5.00ms     2.00ms     3.00ms   0.00ms/0    unscheduled
/// ```
///
/// `start` is in milliseconds from the root's creation; `sched` is the scheduling delay and
/// the number of polls that followed a wake.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Trace {
    /// This trace.
    pub id: TraceId,
    /// The arming that captured it.
    pub capture: CaptureId,
    /// When the root was created, from the arming.
    pub started_at: Duration,
    /// When the root was created, by the wall clock (the layer's clock's
    /// [`unix_nanos`](crate::clock::Clock::unix_nanos)).
    pub started_at_wall: SystemTime,
    /// The root's duration.
    pub duration: Duration,
    /// Spans in creation order; `spans[0]` is the root.
    pub spans: Vec<SpanRecord>,
    /// Spans (and their descendants) not recorded because the trace already held
    /// [`CaptureSpec::max_spans`].
    pub dropped_spans: u64,
    /// Wake→poll delays of the polls in which the request's spans were entered, each poll
    /// counted once: the request's total time waiting to be scheduled.
    pub scheduling_delay: Duration,
    /// Polls counted in `scheduling_delay` (those that followed a wake).
    pub scheduled_polls: u64,
    /// Distinct polls in which the request's spans were entered.
    pub polls: u64,
}

impl Trace {
    /// The root span.
    pub fn root(&self) -> Option<&SpanRecord> {
        self.spans.first()
    }

    /// The summary shown in a list of traces.
    pub fn summary(&self) -> TraceSummary {
        let root = self.root();
        TraceSummary {
            id: self.id,
            capture: self.capture,
            root: root.map(|r| r.name.clone()).unwrap_or_default(),
            root_fields: root.map(|r| r.fields.clone()).unwrap_or_default(),
            started_at: self.started_at,
            started_at_wall: self.started_at_wall,
            duration: self.duration,
            spans: self.spans.len(),
            dropped_spans: self.dropped_spans,
            busy: root.map_or(Duration::ZERO, |r| r.busy),
            scheduling_delay: self.scheduling_delay,
            scheduled_polls: self.scheduled_polls,
        }
    }

    /// Children of each span, in creation order.
    fn children(&self) -> Vec<Vec<usize>> {
        let mut children = vec![Vec::new(); self.spans.len()];
        for (i, span) in self.spans.iter().enumerate() {
            if let Some(p) = span.parent.filter(|&p| p < i) {
                children[p].push(i);
            }
        }
        children
    }

    /// Span indices in depth-first order (parents before children), with their depths.
    pub fn tree_order(&self) -> Vec<(usize, usize)> {
        let children = self.children();
        let mut order = Vec::with_capacity(self.spans.len());
        let mut stack: Vec<(usize, usize)> = (0..self.spans.len())
            .rev()
            .filter(|&i| self.spans[i].parent.is_none_or(|p| p >= i))
            .map(|i| (i, 0))
            .collect();
        while let Some((i, depth)) = stack.pop() {
            order.push((i, depth));
            stack.extend(children[i].iter().rev().map(|&c| (c, depth + 1)));
        }
        order
    }
}

impl fmt::Display for Trace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let root = self.root().map_or("?", |r| r.name.as_str());
        write!(
            f,
            "trace {} (capture {}): {root} took {}, started +{} after arming; {} spans",
            self.id,
            self.capture,
            Millis(self.duration),
            Elapsed(self.started_at),
            self.spans.len(),
        )?;
        if self.dropped_spans > 0 {
            write!(f, " ({} more dropped)", self.dropped_spans)?;
        }
        if self.polls == 0 {
            writeln!(f, "; scheduling delay not measured (no poll scope)")?;
        } else {
            writeln!(
                f,
                "; waited {} to be scheduled in {} of {} polls",
                Millis(self.scheduling_delay),
                self.scheduled_polls,
                self.polls
            )?;
        }
        writeln!(f, "{:>9} {:>10} {:>10} {:>10} {:>10}  span", "start", "duration", "busy", "idle", "sched")?;
        for (i, depth) in self.tree_order() {
            let s = &self.spans[i];
            let sched = format!("{}/{}", Millis(s.scheduling_delay), s.scheduled_polls);
            write!(
                f,
                "{:>9} {:>10} {:>10} {:>10} {:>10}  {:indent$}{}",
                format!("+{:.3}", s.start.as_secs_f64() * 1e3),
                Millis(s.duration).to_string(),
                Millis(s.busy).to_string(),
                Millis(s.idle).to_string(),
                sched,
                "",
                s.name,
                indent = depth * 2,
            )?;
            if !s.fields.is_empty() {
                f.write_str(" {")?;
                for (k, field) in s.fields.iter().enumerate() {
                    if k > 0 {
                        f.write_str(" ")?;
                    }
                    write!(f, "{}={}", field.name, field.value)?;
                }
                f.write_str("}")?;
            }
            writeln!(f)?;
        }
        Ok(())
    }
}

/// One line of a list of traces.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct TraceSummary {
    /// The trace.
    pub id: TraceId,
    /// The arming that captured it.
    pub capture: CaptureId,
    /// The root span's name (the fingerprint).
    pub root: String,
    /// The root span's fields (e.g. a request id).
    pub root_fields: Vec<SpanField>,
    /// When the root was created, from the arming.
    pub started_at: Duration,
    /// When the root was created, by the wall clock ([`Trace::started_at_wall`]).
    pub started_at_wall: SystemTime,
    /// The root's duration.
    pub duration: Duration,
    /// Spans recorded.
    pub spans: usize,
    /// Spans dropped for the per-trace bound.
    pub dropped_spans: u64,
    /// The root span's busy time.
    pub busy: Duration,
    /// The request's total time waiting to be scheduled ([`Trace::scheduling_delay`]).
    pub scheduling_delay: Duration,
    /// Polls that followed a wake.
    pub scheduled_polls: u64,
}

impl fmt::Display for TraceSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:>5}  +{}  {:>10}  {:>10} sched  {:>4} spans  {}",
            self.id.0,
            Elapsed(self.started_at),
            Millis(self.duration).to_string(),
            Millis(self.scheduling_delay).to_string(),
            self.spans,
            self.root
        )?;
        for field in &self.root_fields {
            write!(f, " {}={}", field.name, field.value)?;
        }
        Ok(())
    }
}

/// Why an arming stops sampling, or that it still samples.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum CaptureState {
    /// Sampling roots.
    Armed,
    /// The window has passed since arming.
    Expired,
    /// [`CaptureSpec::max_captures`] traces were kept.
    Full,
    /// Disarmed by hand, or replaced by a later arming.
    Disarmed,
}

impl fmt::Display for CaptureState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Armed => "armed",
            Self::Expired => "expired",
            Self::Full => "full",
            Self::Disarmed => "disarmed",
        })
    }
}

/// The state and counters of the latest arming. Counters are monotonically increasing over
/// the arming's life, never reset (not even by [`clear`](super::CaptureHandle::clear)).
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct CaptureStatus {
    /// The arming.
    pub id: CaptureId,
    /// What it captures.
    pub spec: CaptureSpec,
    /// Whether it still samples.
    pub state: CaptureState,
    /// Time since arming.
    pub elapsed: Duration,
    /// Time left in the window (zero once expired).
    pub remaining: Duration,
    /// Roots sampled (their span trees were recorded).
    pub sampled: u64,
    /// Traces kept: sampled roots that took at least the threshold.
    pub kept: u64,
    /// Sampled roots discarded for taking less than the threshold.
    pub below_threshold: u64,
    /// Sampled roots that took long enough but found the arming full or replaced.
    pub dropped: u64,
    /// Roots drawn for sampling but skipped because [`CaptureSpec::max_in_flight`] sampled
    /// requests were already being recorded.
    pub skipped_in_flight: u64,
}

impl fmt::Display for CaptureStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "capture {} ({}): {}, p={}, threshold {}, window {} ({} left); sampled {}, kept {}/{}, \
             below threshold {}, dropped {}, skipped in flight {}",
            self.id,
            self.state,
            self.spec.fingerprint,
            self.spec.probability,
            Millis(self.spec.threshold),
            Elapsed(self.spec.window),
            Elapsed(self.remaining),
            self.sampled,
            self.kept,
            self.spec.max_captures,
            self.below_threshold,
            self.dropped,
            self.skipped_in_flight,
        )
    }
}

/// Kept traces per minute since arming, by the minute their root was created.
///
/// `Display` draws one row per minute from the arming to the last trace's, empty minutes
/// included, labelled `HH:MM` since arming, with one `*` per trace (scaled down when a minute
/// holds more than 60):
///
/// ```text
/// minute | freq
/// 00:00  | ** 2
/// 00:01  |  0
/// 00:02  | *** 3
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct MinuteHistogram {
    /// Traces per minute: `counts[m]` for minute `m` since arming.
    pub counts: Vec<u64>,
}

/// The longest bar drawn, in stars.
const MAX_BAR: u64 = 60;

impl MinuteHistogram {
    /// Counts traces by the minute since arming at which their root was created.
    pub fn from_start_times(starts: impl IntoIterator<Item = Duration>) -> Self {
        let mut counts: Vec<u64> = Vec::new();
        for start in starts {
            // A minute index fits a usize for any window that fits a u64 of seconds / 60.
            let minute = (start.as_secs() / 60) as usize;
            if counts.len() <= minute {
                counts.resize(minute + 1, 0);
            }
            counts[minute] += 1;
        }
        Self { counts }
    }

    /// Total traces counted.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }
}

impl fmt::Display for MinuteHistogram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "minute | freq")?;
        let max = self.counts.iter().copied().max().unwrap_or(0);
        let per_star = max.div_ceil(MAX_BAR).max(1);
        for (minute, &count) in self.counts.iter().enumerate() {
            let stars = count.div_ceil(per_star) as usize;
            writeln!(f, "{:02}:{:02}  | {} {count}", minute / 60, minute % 60, "*".repeat(stars))?;
        }
        if per_star > 1 {
            writeln!(f, "(* = {per_star} traces)")?;
        }
        Ok(())
    }
}

/// Kept traces per minute of the hour, by the wall-clock time (UTC) their root was created:
/// what groups slow requests by the schedule of whatever slowed them (a backup at :00, another
/// at :35), across hours and whenever the capture was armed.
///
/// `Display` draws all 60 minutes, `:00` to `:59`, empty ones included, with one `*` per
/// trace (scaled down when a minute holds more than 60):
///
/// ```text
/// minute | freq
/// :00    | ** 2
/// :01    |  0
/// …
/// :35    | *** 3
/// …
/// :59    |  0
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct MinuteOfHourHistogram {
    /// Traces per minute of the hour: `counts[m]` for minute `m`, 60 entries.
    pub counts: Vec<u64>,
}

impl Default for MinuteOfHourHistogram {
    fn default() -> Self {
        Self { counts: vec![0; MINUTES_PER_HOUR] }
    }
}

/// Minutes in an hour: rows of a [`MinuteOfHourHistogram`].
const MINUTES_PER_HOUR: usize = 60;

impl MinuteOfHourHistogram {
    /// Counts traces by the minute of the hour (UTC) of their wall-clock start times.
    pub fn from_wall_times(times: impl IntoIterator<Item = SystemTime>) -> Self {
        let mut histogram = Self::default();
        for time in times {
            histogram.counts[minute_of_hour(time)] += 1;
        }
        histogram
    }

    /// Total traces counted.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }
}

/// The minute of the hour (0–59, UTC) of `time`; Unix time has no leap seconds, so every hour
/// is 3600 of its seconds, from the epoch on and before it.
fn minute_of_hour(time: SystemTime) -> usize {
    let nanos: i128 = match time.duration_since(UNIX_EPOCH) {
        Ok(after) => after.as_nanos() as i128,
        // u128 nanoseconds of a SystemTime fit an i128.
        Err(before) => -(before.duration().as_nanos() as i128),
    };
    // Below 60, so it fits.
    nanos.div_euclid(60_000_000_000).rem_euclid(MINUTES_PER_HOUR as i128) as usize
}

impl fmt::Display for MinuteOfHourHistogram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "minute | freq")?;
        let max = self.counts.iter().copied().max().unwrap_or(0);
        let per_star = max.div_ceil(MAX_BAR).max(1);
        for (minute, &count) in self.counts.iter().enumerate() {
            let stars = count.div_ceil(per_star) as usize;
            writeln!(f, ":{minute:02}    | {} {count}", "*".repeat(stars))?;
        }
        if per_star > 1 {
            writeln!(f, "(* = {per_star} traces)")?;
        }
        Ok(())
    }
}

/// A duration in milliseconds with two decimals.
struct Millis(Duration);

impl fmt::Display for Millis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = format!("{:.2}ms", self.0.as_secs_f64() * 1e3);
        f.pad(&text)
    }
}

/// A duration as `H:MM:SS.mmm`.
struct Elapsed(Duration);

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0.as_secs();
        write!(f, "{}:{:02}:{:02}.{:03}", secs / 3600, secs / 60 % 60, secs % 60, self.0.subsec_millis())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_counts_minutes_and_draws_bars() {
        let s = Duration::from_secs;
        let h = MinuteHistogram::from_start_times([s(1), s(59), s(130), s(150), s(170)]);
        assert_eq!(h.counts, [2, 0, 3]);
        assert_eq!(h.total(), 5);
        assert_eq!(h.to_string(), "minute | freq\n00:00  | ** 2\n00:01  |  0\n00:02  | *** 3\n");
        let late = MinuteHistogram::from_start_times([s(3600 * 11 + 4 * 60)]);
        assert!(late.to_string().ends_with("11:04  | * 1\n"));
        let many = MinuteHistogram::from_start_times(std::iter::repeat_n(s(0), 600));
        assert_eq!(
            many.to_string(),
            format!("minute | freq\n00:00  | {} 600\n(* = 10 traces)\n", "*".repeat(60))
        );
        assert_eq!(MinuteHistogram::default().to_string(), "minute | freq\n");
    }

    #[test]
    fn minute_of_hour_histogram_counts_wall_clock_minutes_across_hours() {
        let at = |secs: u64| UNIX_EPOCH + Duration::from_secs(secs);
        // 2024-01-01T10:00:30Z, 11:00:59Z, 10:35:00Z, 13:35:10Z, 10:59:59Z.
        let base = 1_704_103_200;
        let h = MinuteOfHourHistogram::from_wall_times([
            at(base + 30),
            at(base + 3600 + 59),
            at(base + 35 * 60),
            at(base + 3 * 3600 + 35 * 60 + 10),
            at(base + 3599),
        ]);
        assert_eq!(h.counts.len(), 60);
        assert_eq!((h.counts[0], h.counts[35], h.counts[59]), (2, 2, 1));
        assert_eq!(h.total(), 5);
        let text = h.to_string();
        assert!(text.starts_with("minute | freq\n:00    | ** 2\n:01    |  0\n"), "{text}");
        assert!(text.contains("\n:35    | ** 2\n"), "{text}");
        assert!(text.ends_with("\n:59    | * 1\n"), "{text}");
        assert_eq!(text.lines().count(), 61);
        // Before the epoch: 1969-12-31T23:59:30Z is minute 59.
        assert_eq!(minute_of_hour(UNIX_EPOCH - Duration::from_secs(30)), 59);
        assert_eq!(minute_of_hour(UNIX_EPOCH - Duration::from_secs(3600)), 0);
        let many = MinuteOfHourHistogram::from_wall_times(std::iter::repeat_n(at(base + 7 * 60), 120));
        assert!(many.to_string().contains(&format!("\n:07    | {} 120\n", "*".repeat(60))));
        assert!(many.to_string().ends_with("(* = 2 traces)\n"));
        assert_eq!(MinuteOfHourHistogram::default().total(), 0);
    }

    #[test]
    fn formats() {
        assert_eq!(Millis(Duration::from_micros(1500)).to_string(), "1.50ms");
        assert_eq!(format!("{:>8}", Millis(Duration::from_micros(1500))), "  1.50ms");
        assert_eq!(Elapsed(Duration::from_millis(3_723_004)).to_string(), "1:02:03.004");
    }
}
