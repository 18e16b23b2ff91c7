//! A sampled request whose span tree is being recorded.
//!
//! Only sampled requests reach this code: it takes a lock (one per request, contended only by
//! the request's own spans on other threads) and allocates.

use std::fmt::{self, Write as _};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, UNIX_EPOCH};

use tracing::field::{Field, Visit};

use super::scheduling::{self, PollNote};
use super::shared::{Armed, Shared};
use super::trace::{SpanField, SpanRecord, Trace};
use super::{MAX_FIELD_LEN, MAX_FIELDS};

/// The extension the layer puts on every span of a sampled request.
pub(crate) struct Captured {
    pub(crate) trace: Arc<Building>,
    /// Index in the trace's spans; `None` for a span dropped for the per-trace bound (its
    /// descendants are dropped too, and counted).
    pub(crate) index: Option<u32>,
}

/// A request being recorded: created when its root is sampled, finished when the root closes.
pub(crate) struct Building {
    shared: Arc<Shared>,
    pub(crate) armed: Arc<Armed>,
    root_start_nanos: u64,
    /// The root's creation by the wall clock, nanoseconds since the Unix epoch.
    root_start_unix_nanos: u64,
    state: Mutex<BuildState>,
}

struct BuildState {
    spans: Vec<Draft>,
    dropped_spans: u64,
    /// The root has closed: later events are ignored.
    finished: bool,
    polls: u64,
    scheduled_polls: u64,
    scheduling_nanos: u64,
    /// The last poll counted in `polls`, so that spans entered in the same poll count it once.
    last_poll_seq: u64,
}

/// A span as it is being recorded.
struct Draft {
    name: &'static str,
    target: &'static str,
    parent: Option<u32>,
    fields: Vec<(&'static str, String)>,
    start_nanos: u64,
    end_nanos: Option<u64>,
    /// Threads on which the span is entered now.
    entered: u32,
    busy_since_nanos: u64,
    busy_nanos: u64,
    enters: u64,
    polls: u64,
    scheduled_polls: u64,
    scheduling_nanos: u64,
    max_scheduling_nanos: u64,
    last_poll_seq: u64,
}

impl Draft {
    fn new(attrs: &tracing::span::Attributes<'_>, parent: Option<u32>, now_nanos: u64) -> Self {
        let meta = attrs.metadata();
        let mut fields = FieldVisitor(Vec::new());
        attrs.record(&mut fields);
        Self {
            name: meta.name(),
            target: meta.target(),
            parent,
            fields: fields.0,
            start_nanos: now_nanos,
            end_nanos: None,
            entered: 0,
            busy_since_nanos: 0,
            busy_nanos: 0,
            enters: 0,
            polls: 0,
            scheduled_polls: 0,
            scheduling_nanos: 0,
            max_scheduling_nanos: 0,
            last_poll_seq: 0,
        }
    }
}

impl Building {
    /// Starts recording a sampled root at `now_nanos` (`unix_nanos` by the wall clock); the
    /// caller has counted it in flight.
    pub(crate) fn start(
        shared: Arc<Shared>,
        armed: Arc<Armed>,
        attrs: &tracing::span::Attributes<'_>,
        now_nanos: u64,
        unix_nanos: u64,
    ) -> Self {
        let root = Draft::new(attrs, None, now_nanos);
        let capacity = armed.spec.max_spans.get().min(16);
        let mut spans = Vec::with_capacity(capacity);
        spans.push(root);
        let state = BuildState {
            spans,
            dropped_spans: 0,
            finished: false,
            polls: 0,
            scheduled_polls: 0,
            scheduling_nanos: 0,
            last_poll_seq: 0,
        };
        Self {
            shared,
            armed,
            root_start_nanos: now_nanos,
            root_start_unix_nanos: unix_nanos,
            state: Mutex::new(state),
        }
    }

    fn lock(&self) -> MutexGuard<'_, BuildState> {
        // A panic while holding the lock leaves consistent (if partial) counters.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records a new span under `parent` (`None`: the parent was dropped for the bound) and
    /// returns the new span's extension — without an index when the span is dropped for the
    /// bound, so that its descendants are counted as dropped too — or `None` once the trace is
    /// finished.
    pub(crate) fn add_child(
        self: &Arc<Self>,
        parent: Option<u32>,
        attrs: &tracing::span::Attributes<'_>,
        now_nanos: u64,
    ) -> Option<Captured> {
        // Fields are formatted before the lock is taken: a field's `Debug` may open spans.
        let draft = parent.map(|parent| Draft::new(attrs, Some(parent), now_nanos));
        let mut state = self.lock();
        if state.finished {
            return None;
        }
        let index = match draft {
            Some(draft) if state.spans.len() < self.armed.spec.max_spans.get() => {
                // The bound keeps the length far below u32::MAX in practice; saturate anyway.
                let index = u32::try_from(state.spans.len()).unwrap_or(u32::MAX);
                state.spans.push(draft);
                Some(index)
            }
            _ => {
                state.dropped_spans += 1;
                None
            }
        };
        Some(Captured { trace: Arc::clone(self), index })
    }

    /// The span was entered on some thread at `now_nanos`, during `poll`.
    pub(crate) fn enter(&self, index: u32, now_nanos: u64, poll: PollNote) {
        let mut state = self.lock();
        let state = &mut *state;
        if state.finished {
            return;
        }
        let Some(span) = state.spans.get_mut(index as usize) else { return };
        span.enters += 1;
        if span.entered == 0 {
            span.busy_since_nanos = now_nanos;
        }
        span.entered += 1;
        if poll.seq == 0 || poll.seq == span.last_poll_seq {
            return;
        }
        span.last_poll_seq = poll.seq;
        span.polls += 1;
        if let Some(delay) = poll.delay_nanos {
            span.scheduled_polls += 1;
            span.scheduling_nanos += delay;
            span.max_scheduling_nanos = span.max_scheduling_nanos.max(delay);
        }
        if state.last_poll_seq != poll.seq {
            state.last_poll_seq = poll.seq;
            state.polls += 1;
            // Counted once per poll across every trace: the first trace to see it claims it.
            if let Some(delay) = scheduling::claim_poll_delay() {
                state.scheduled_polls += 1;
                state.scheduling_nanos += delay;
            }
        }
    }

    /// The span was exited on some thread at `now_nanos`.
    pub(crate) fn exit(&self, index: u32, now_nanos: u64) {
        let mut state = self.lock();
        if state.finished {
            return;
        }
        let Some(span) = state.spans.get_mut(index as usize) else { return };
        if span.entered > 0 {
            span.entered -= 1;
            if span.entered == 0 {
                span.busy_nanos += now_nanos.saturating_sub(span.busy_since_nanos);
            }
        }
    }

    /// Fields recorded after creation.
    pub(crate) fn record(&self, index: u32, values: &tracing::span::Record<'_>) {
        let mut visitor = FieldVisitor(Vec::new());
        values.record(&mut visitor);
        let mut state = self.lock();
        if state.finished {
            return;
        }
        let Some(span) = state.spans.get_mut(index as usize) else { return };
        for (name, value) in visitor.0 {
            if let Some(slot) = span.fields.iter_mut().find(|(n, _)| *n == name) {
                slot.1 = value;
            } else if span.fields.len() < MAX_FIELDS {
                span.fields.push((name, value));
            }
        }
    }

    /// A non-root span closed at `now_nanos`.
    pub(crate) fn close(&self, index: u32, now_nanos: u64) {
        let mut state = self.lock();
        if state.finished {
            return;
        }
        if let Some(span) = state.spans.get_mut(index as usize) {
            span.end_nanos = Some(now_nanos);
        }
    }

    /// The root closed at `now_nanos`: keep the trace if it took at least the threshold.
    pub(crate) fn finish(&self, now_nanos: u64) {
        let duration = Duration::from_nanos(now_nanos.saturating_sub(self.root_start_nanos));
        let trace = {
            let mut state = self.lock();
            if state.finished {
                return;
            }
            state.finished = true;
            if duration < self.armed.spec.threshold {
                self.armed.counters.below_threshold.fetch_add(1, Ordering::Relaxed);
                // Free the drafts now; spans that outlive the root still hold `self`.
                state.spans = Vec::new();
                return;
            }
            self.to_trace(&mut state, now_nanos, duration)
        };
        self.shared.keep(&self.armed, trace);
    }

    fn to_trace(&self, state: &mut BuildState, root_end_nanos: u64, duration: Duration) -> Trace {
        let nanos = Duration::from_nanos;
        let spans = std::mem::take(&mut state.spans)
            .into_iter()
            .map(|d| {
                // The registry closes a parent only after its children, so every span has
                // closed and exited by now; stay well-defined should a span not have.
                let end = d.end_nanos.unwrap_or(root_end_nanos).max(d.start_nanos);
                let busy = if d.entered > 0 {
                    d.busy_nanos + root_end_nanos.saturating_sub(d.busy_since_nanos)
                } else {
                    d.busy_nanos
                };
                let total = end - d.start_nanos;
                let busy = busy.min(total);
                SpanRecord {
                    name: d.name.to_owned(),
                    target: d.target.to_owned(),
                    parent: d.parent.map(|p| p as usize),
                    fields: d
                        .fields
                        .into_iter()
                        .map(|(name, value)| SpanField { name: name.to_owned(), value })
                        .collect(),
                    start: nanos(d.start_nanos.saturating_sub(self.root_start_nanos)),
                    duration: nanos(total),
                    busy: nanos(busy),
                    idle: nanos(total - busy),
                    enters: d.enters,
                    polls: d.polls,
                    scheduled_polls: d.scheduled_polls,
                    scheduling_delay: nanos(d.scheduling_nanos),
                    max_scheduling_delay: nanos(d.max_scheduling_nanos),
                }
            })
            .collect();
        Trace {
            id: super::TraceId(0), // assigned when kept
            capture: self.armed.id,
            started_at: nanos(self.root_start_nanos.saturating_sub(self.armed.armed_at_nanos)),
            started_at_wall: UNIX_EPOCH + nanos(self.root_start_unix_nanos),
            duration,
            spans,
            dropped_spans: state.dropped_spans,
            scheduling_delay: nanos(state.scheduling_nanos),
            scheduled_polls: state.scheduled_polls,
            polls: state.polls,
        }
    }
}

impl Drop for Building {
    fn drop(&mut self) {
        // Every span of the request has gone: the layer's gate may close.
        self.shared.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl fmt::Debug for Building {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Building").field("capture", &self.armed.id).finish_non_exhaustive()
    }
}

/// Collects field values as text, bounded in count and length.
struct FieldVisitor(Vec<(&'static str, String)>);

impl FieldVisitor {
    fn push(&mut self, field: &Field, write: impl FnOnce(&mut String) -> fmt::Result) {
        if self.0.len() >= MAX_FIELDS {
            return;
        }
        let mut value = String::new();
        let _ = write(&mut value);
        if value.len() > MAX_FIELD_LEN {
            let mut cut = MAX_FIELD_LEN;
            while !value.is_char_boundary(cut) {
                cut -= 1;
            }
            value.truncate(cut);
            value.push('…');
        }
        self.0.push((field.name(), value));
    }
}

impl Visit for FieldVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.push(field, |s| s.write_str(value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.push(field, |s| write!(s, "{value:?}"));
    }
}
