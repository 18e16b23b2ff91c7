//! The `tracing` layer: sampling decisions at root spans, and span events recorded into the
//! traces of sampled requests.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tracing::span::{Attributes, Id, Record};
use tracing::{Subscriber, span};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

use super::building::{Building, Captured};
use super::handle::CaptureHandle;
use super::scheduling;
use super::shared::{Armed, Shared, Store};
use super::slot::ArmSlot;
use super::trace::CaptureState;
use crate::clock::{SharedClock, SystemClock};

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
