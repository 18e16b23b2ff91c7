//! The `tracing` layer, its shared state, and the handle that arms and reads it.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tracing::span::{Attributes, Id, Record};
use tracing::{Subscriber, span};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

use super::building::{Building, Captured};
use super::slot::ArmSlot;
use super::trace::{
    CaptureState, CaptureStatus, MinuteHistogram, MinuteOfHourHistogram, Trace, TraceId, TraceSummary,
};
use super::{ArmError, CaptureId, CaptureSpec, scheduling};
use crate::clock::{SharedClock, SystemClock, duration_nanos};

/// Generations of armed specs, unique in the process (so that one thread-local cache serves
/// every layer). 0 means "none".
static NEXT_GENERATION: AtomicU64 = AtomicU64::new(1);

/// An arming: its spec, its sampling threshold and its counters.
pub(crate) struct Armed {
    pub(crate) id: CaptureId,
    generation: u64,
    pub(crate) spec: CaptureSpec,
    /// A root is sampled when its draw is below this (`probability × 2^64`), ...
    sample_below: u64,
    /// ... or always, for a probability of 1.
    sample_all: bool,
    pub(crate) armed_at_nanos: u64,
    deadline_nanos: u64,
    /// Threads that have cached this arming, to seed their generators apart.
    threads: AtomicU64,
    /// 0 while sampling, else the [`CaptureState`] code it ended with.
    ended: AtomicU8,
    pub(crate) counters: Counters,
}

/// Counters of an arming, all monotonically increasing, never reset.
#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) sampled: AtomicU64,
    pub(crate) kept: AtomicU64,
    pub(crate) below_threshold: AtomicU64,
    pub(crate) dropped: AtomicU64,
    pub(crate) skipped_in_flight: AtomicU64,
}

const ENDED_EXPIRED: u8 = 1;
const ENDED_FULL: u8 = 2;
const ENDED_DISARMED: u8 = 3;

impl Armed {
    fn new(id: CaptureId, generation: u64, spec: CaptureSpec, now_nanos: u64) -> Self {
        let sample_all = spec.probability >= 1.0;
        // Saturating float-to-int cast; `probability` is in 0.0 ..= 1.0 (validated).
        let sample_below = (spec.probability * 18_446_744_073_709_551_616.0) as u64;
        let deadline_nanos = now_nanos.saturating_add(duration_nanos(spec.window));
        Self {
            id,
            generation,
            spec,
            sample_below,
            sample_all,
            armed_at_nanos: now_nanos,
            deadline_nanos,
            threads: AtomicU64::new(0),
            ended: AtomicU8::new(0),
            counters: Counters::default(),
        }
    }

    #[inline]
    fn samples(&self, draw: u64) -> bool {
        draw < self.sample_below || self.sample_all
    }

    /// Ends sampling with `code` unless it already ended; true when this call ended it.
    fn end(&self, code: u8) -> bool {
        self.ended.compare_exchange(0, code, Ordering::AcqRel, Ordering::Acquire).is_ok()
    }

    fn state(&self) -> CaptureState {
        match self.ended.load(Ordering::Acquire) {
            0 => CaptureState::Armed,
            ENDED_EXPIRED => CaptureState::Expired,
            ENDED_FULL => CaptureState::Full,
            _ => CaptureState::Disarmed,
        }
    }
}

/// Kept traces and id counters, behind the layer's one lock (taken by sampled requests when
/// they finish, and by the handle).
#[derive(Default)]
struct Store {
    traces: Vec<Trace>,
    next_capture: u64,
    next_trace: u64,
}

/// State shared by the layer and its handles.
pub(crate) struct Shared {
    pub(crate) clock: SharedClock,
    slot: ArmSlot<Armed>,
    /// Sampled requests being recorded (of any arming). While 0, span events skip the lookup of
    /// the span's extensions altogether.
    pub(crate) in_flight: AtomicUsize,
    store: Mutex<Store>,
}

impl Shared {
    fn store(&self) -> MutexGuard<'_, Store> {
        // Every update of the store is a single push, clear or counter step.
        self.store.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The state of `armed` at `now_nanos`; notices the end of its window.
    fn state_at(&self, armed: &Armed, now_nanos: u64) -> CaptureState {
        if armed.state() == CaptureState::Armed && now_nanos >= armed.deadline_nanos {
            self.stop(armed, ENDED_EXPIRED);
        }
        armed.state()
    }

    fn stop(&self, armed: &Armed, code: u8) {
        armed.end(code);
        self.slot.retire(armed.generation);
    }

    /// Keeps a finished trace of `armed`, if it is still the latest arming and has room.
    pub(crate) fn keep(&self, armed: &Arc<Armed>, mut trace: Trace) {
        let mut store = self.store();
        let latest = self.slot.latest().is_some_and(|latest| Arc::ptr_eq(&latest, armed));
        let kept = armed.counters.kept.load(Ordering::Relaxed);
        if !latest || kept >= armed.spec.max_captures.get() as u64 {
            armed.counters.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        trace.id = TraceId(store.next_trace);
        store.next_trace += 1;
        store.traces.push(trace);
        armed.counters.kept.store(kept + 1, Ordering::Relaxed);
        if kept + 1 >= armed.spec.max_captures.get() as u64 {
            self.stop(armed, ENDED_FULL);
        }
    }
}

/// This thread's cache of the armed spec, and its sampling generator.
struct Local {
    generation: Cell<u64>,
    rng: Cell<u64>,
    armed: RefCell<Option<Arc<Armed>>>,
}

thread_local! {
    static LOCAL: Local = const {
        Local { generation: Cell::new(0), rng: Cell::new(0), armed: RefCell::new(None) }
    };
}

/// SplitMix64: one add and a few multiply-xorshifts.
#[inline]
fn next_random(state: &Cell<u64>) -> u64 {
    let s = state.get().wrapping_add(0x9E37_79B9_7F4A_7C15);
    state.set(s);
    mix(s)
}

#[inline]
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A `tracing` layer that captures the span trees of sampled requests; see the
/// [module docs](super).
///
/// Stack it on a [`tracing_subscriber::Registry`] (it stores its per-span state in the
/// registry's span extensions) and keep a [`CaptureHandle`] to arm and read it.
pub struct CaptureLayer {
    shared: Arc<Shared>,
}

impl CaptureLayer {
    /// A layer timed by the system clock, with nothing armed.
    pub fn new() -> Self {
        Self::with_clock(SystemClock::shared())
    }

    /// A layer timed by `clock` (for span times, the window and the traces' start times).
    pub fn with_clock(clock: SharedClock) -> Self {
        let shared = Shared {
            clock,
            slot: ArmSlot::new(),
            in_flight: AtomicUsize::new(0),
            store: Mutex::new(Store { next_capture: 1, next_trace: 1, ..Store::default() }),
        };
        Self { shared: Arc::new(shared) }
    }

    /// A handle to arm the layer and read its traces; clones share the layer.
    pub fn handle(&self) -> CaptureHandle {
        CaptureHandle { shared: Arc::clone(&self.shared) }
    }

    /// Draws the sampling decision for a root candidate named `name` under `generation`.
    #[inline]
    fn draw(&self, generation: u64, name: &str) -> Option<Arc<Armed>> {
        LOCAL
            .try_with(|local| {
                if local.generation.get() != generation && !self.refresh(local, generation) {
                    return None;
                }
                let armed = local.armed.borrow();
                let armed = armed.as_ref()?;
                if armed.spec.fingerprint != name {
                    return None;
                }
                armed.samples(next_random(&local.rng)).then(|| Arc::clone(armed))
            })
            .ok()
            .flatten()
    }

    /// Caches the spec of `generation` in this thread and seeds its generator.
    #[cold]
    fn refresh(&self, local: &Local, generation: u64) -> bool {
        let Some(armed) = self.shared.slot.fetch(generation) else { return false };
        let ordinal = armed.threads.fetch_add(1, Ordering::Relaxed);
        local.rng.set(mix(armed.spec.seed ^ mix(ordinal.wrapping_add(1))));
        local.generation.set(generation);
        *local.armed.borrow_mut() = Some(armed);
        true
    }

    /// Starts recording a sampled root.
    #[cold]
    fn start_root<S>(&self, armed: Arc<Armed>, attrs: &Attributes<'_>, id: &Id, ctx: &Context<'_, S>)
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let shared = &self.shared;
        let now = shared.clock.now_nanos();
        if shared.state_at(&armed, now) != CaptureState::Armed {
            return;
        }
        let Some(span) = ctx.span(id) else { return };
        if shared.in_flight.fetch_add(1, Ordering::Relaxed) >= armed.spec.max_in_flight.get() {
            shared.in_flight.fetch_sub(1, Ordering::Relaxed);
            armed.counters.skipped_in_flight.fetch_add(1, Ordering::Relaxed);
            return;
        }
        armed.counters.sampled.fetch_add(1, Ordering::Relaxed);
        // From here the trace's `Drop` gives back the in-flight count.
        let unix_nanos = shared.clock.unix_nanos();
        let trace = Arc::new(Building::start(Arc::clone(shared), armed, attrs, now, unix_nanos));
        span.extensions_mut().insert(Captured { trace, index: Some(0) });
    }

    /// Records a new span if its parent belongs to a sampled request; true when it does.
    fn join_parent<S>(&self, attrs: &Attributes<'_>, id: &Id, ctx: &Context<'_, S>) -> bool
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let Some(span) = ctx.span(id) else { return false };
        let Some(parent) = span.parent() else { return false };
        let (trace, parent_index) = match parent.extensions().get::<Captured>() {
            Some(captured) => (Arc::clone(&captured.trace), captured.index),
            None => return false,
        };
        let now = self.shared.clock.now_nanos();
        match trace.add_child(parent_index, attrs, now) {
            Some(captured) => {
                span.extensions_mut().insert(captured);
                true
            }
            None => false,
        }
    }

    /// Runs `f` on the recorded span `id`, if it is one. While no sampled request is being
    /// recorded this is one atomic load.
    #[inline]
    fn with_captured<S>(&self, id: &Id, ctx: &Context<'_, S>, f: impl FnOnce(&Building, u32, u64))
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        if self.shared.in_flight.load(Ordering::Relaxed) == 0 {
            return;
        }
        let Some(span) = ctx.span(id) else { return };
        let (trace, index) = match span.extensions().get::<Captured>() {
            Some(Captured { trace, index: Some(index) }) => (Arc::clone(trace), *index),
            _ => return,
        };
        // The span's extensions are released first: `f` may format fields, whose `Debug` may
        // open spans.
        f(&trace, index, self.shared.clock.now_nanos());
    }
}

impl Default for CaptureLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for CaptureLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CaptureLayer").field("status", &self.handle().status()).finish_non_exhaustive()
    }
}

impl<S> Layer<S> for CaptureLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if self.shared.in_flight.load(Ordering::Relaxed) != 0 && self.join_parent(attrs, id, &ctx) {
            return;
        }
        let generation = self.shared.slot.generation();
        if generation == 0 {
            return;
        }
        if let Some(armed) = self.draw(generation, attrs.metadata().name()) {
            self.start_root(armed, attrs, id, &ctx);
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        self.with_captured(id, &ctx, |trace, index, _| trace.record(index, values));
    }

    fn on_enter(&self, id: &Id, ctx: Context<'_, S>) {
        self.with_captured(id, &ctx, |trace, index, now| trace.enter(index, now, scheduling::current_poll()));
    }

    fn on_exit(&self, id: &Id, ctx: Context<'_, S>) {
        self.with_captured(id, &ctx, |trace, index, now| trace.exit(index, now));
    }

    fn on_close(&self, id: span::Id, ctx: Context<'_, S>) {
        self.with_captured(
            &id,
            &ctx,
            |trace, index, now| {
                if index == 0 { trace.finish(now) } else { trace.close(index, now) }
            },
        );
    }
}

/// Arms a [`CaptureLayer`] and reads what it captured. Cheap to clone; clones share the layer.
#[derive(Clone)]
pub struct CaptureHandle {
    shared: Arc<Shared>,
}

impl CaptureHandle {
    /// Starts sampling requests whose root span is named `spec.fingerprint`, and drops the
    /// traces of any earlier arming.
    ///
    /// # Errors
    ///
    /// [`ArmError`] when the spec is invalid or another arming still samples (hands the spec
    /// back).
    pub fn arm(&self, spec: CaptureSpec) -> Result<CaptureId, ArmError> {
        spec.validate()?;
        let shared = &self.shared;
        let mut store = shared.store();
        let now = shared.clock.now_nanos();
        if let Some(latest) = shared.slot.latest() {
            if shared.state_at(&latest, now) == CaptureState::Armed {
                return Err(ArmError::AlreadyArmed { armed: latest.id, spec: Box::new(spec) });
            }
        }
        let id = CaptureId(store.next_capture);
        store.next_capture += 1;
        store.traces.clear();
        let generation = NEXT_GENERATION.fetch_add(1, Ordering::Relaxed);
        shared.slot.publish(generation, Arc::new(Armed::new(id, generation, spec, now)));
        Ok(id)
    }

    /// Stops the current arming from sampling; its traces stay readable. Requests already
    /// sampled are still recorded and kept. Returns the arming stopped, `None` when none was
    /// sampling.
    pub fn disarm(&self) -> Option<CaptureId> {
        let _store = self.shared.store();
        let latest = self.shared.slot.latest()?;
        if self.shared.state_at(&latest, self.shared.clock.now_nanos()) != CaptureState::Armed {
            return None;
        }
        self.shared.stop(&latest, ENDED_DISARMED);
        Some(latest.id)
    }

    /// The latest arming's state and counters; `None` before the first arming.
    pub fn status(&self) -> Option<CaptureStatus> {
        let latest = self.shared.slot.latest()?;
        let now = self.shared.clock.now_nanos();
        let state = self.shared.state_at(&latest, now);
        let c = &latest.counters;
        Some(CaptureStatus {
            id: latest.id,
            spec: latest.spec.clone(),
            state,
            elapsed: Duration::from_nanos(now.saturating_sub(latest.armed_at_nanos)),
            remaining: Duration::from_nanos(latest.deadline_nanos.saturating_sub(now)),
            sampled: c.sampled.load(Ordering::Relaxed),
            kept: c.kept.load(Ordering::Relaxed),
            below_threshold: c.below_threshold.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            skipped_in_flight: c.skipped_in_flight.load(Ordering::Relaxed),
        })
    }

    /// Summaries of the kept traces, oldest first.
    pub fn traces(&self) -> Vec<TraceSummary> {
        self.shared.store().traces.iter().map(Trace::summary).collect()
    }

    /// One kept trace with its whole span tree.
    pub fn trace(&self, id: TraceId) -> Option<Trace> {
        self.shared.store().traces.iter().find(|t| t.id == id).cloned()
    }

    /// Drops every kept trace (the arming and its counters stay); returns how many.
    pub fn clear(&self) -> usize {
        let mut store = self.shared.store();
        let n = store.traces.len();
        store.traces = Vec::new();
        n
    }

    /// Kept traces per minute since arming.
    pub fn histogram(&self) -> MinuteHistogram {
        MinuteHistogram::from_start_times(self.shared.store().traces.iter().map(|t| t.started_at))
    }

    /// Kept traces per minute of the hour (0–59, UTC, by the layer's clock's
    /// [`unix_nanos`](crate::clock::Clock::unix_nanos)) at which their root was created: work
    /// scheduled at fixed minutes, such as a backup at :00 and another at :35, shows as spikes.
    pub fn minute_of_hour_histogram(&self) -> MinuteOfHourHistogram {
        MinuteOfHourHistogram::from_wall_times(self.shared.store().traces.iter().map(|t| t.started_at_wall))
    }

    /// Sampled requests being recorded now.
    pub fn in_flight(&self) -> usize {
        self.shared.in_flight.load(Ordering::Relaxed)
    }
}

impl fmt::Debug for CaptureHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CaptureHandle").field("status", &self.status()).finish_non_exhaustive()
    }
}
