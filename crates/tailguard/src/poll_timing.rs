//! Poll timing: the clock readings at the edges of a poll and at a wake, shared by the poll
//! wrappers stacked on one task — [`Instrumented`](crate::observe::Instrumented), `task::Tracked`,
//! `capture::Scheduled` and [`ElasticTask`](crate::elastic::ElasticTask).
//!
//! Each wrapper reads the monotonic clock around the future it wraps. Stacked directly (the
//! future a wrapper polls *is* the next wrapper, as in `Tracked` around `Scheduled`), they
//! would read it at the same instants. Instead, the outermost wrapper that reads the start of a
//! poll leaves it in a thread-local for the wrapper it polls; the innermost wrapper that reads
//! the end leaves it for the wrapper that polled it; and a waker that read the time of a wake
//! leaves it for the waker it calls. A stack thus reads the clock once per edge.
//!
//! A reading is reused only on the same clock (the same [`SharedClock`]; every
//! [`SystemClock::shared`](crate::clock::SystemClock::shared) is one), and at a poll's edges only
//! by the wrapper that the outer one polls directly, which the outer one names by the address
//! and size of the future it polls. (A future type of your own holding nothing but one of these
//! wrappers, that did work before polling it, would be taken for it: that wrapper's poll would
//! then start when the outer one's did.) At a wake only the waker called directly, named by its
//! data pointer, reuses the reading.
//!
//! Costs: a few thread-local reads and writes per poll and per wake (~1–2 ns), against one
//! monotonic clock read (~30 ns) saved per edge of every wrapper under the outermost.

use std::cell::Cell;
use std::sync::Arc;
use std::task::Waker;

use crate::clock::SharedClock;

/// Names a value by its address and size: a future being polled, or a wrapper.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Identity {
    address: usize,
    size: usize,
}

impl Identity {
    /// The identity of `value` where it is now (a pinned future stays there while polled).
    #[inline]
    pub(crate) fn of<T>(value: &T) -> Self {
        Identity { address: std::ptr::from_ref(value) as usize, size: size_of::<T>() }
    }
}

/// The poll under way on this thread, as the wrapper polling it left it.
#[derive(Clone, Copy, Debug)]
struct Edge {
    /// The clock of the readings (its data pointer).
    clock: usize,
    /// The poll's start, once some wrapper read it.
    start_nanos: Option<u64>,
    /// The future that wrapper polls.
    inner: Identity,
    /// The end of that future's poll, left by it if it is a wrapper that read it.
    end_nanos: Option<u64>,
}

/// A wake under way on this thread, as the waker calling the next one left it.
#[derive(Clone, Copy, Debug)]
struct WakeEdge {
    clock: usize,
    /// The waker called (its data pointer).
    target: usize,
    now_nanos: u64,
}

thread_local! {
    static POLL: Cell<Option<Edge>> = const { Cell::new(None) };
    static WAKE: Cell<Option<WakeEdge>> = const { Cell::new(None) };
}

#[inline]
fn clock_id(clock: &SharedClock) -> usize {
    Arc::as_ptr(clock).cast::<()>() as usize
}

#[inline]
fn current() -> Option<Edge> {
    POLL.try_with(Cell::get).ok().flatten()
}

#[inline]
fn set_current(edge: Option<Edge>) {
    // Only fails while the thread is being torn down: nothing is timed then.
    let _ = POLL.try_with(|cell| cell.set(edge));
}

/// The timing of one poll of a wrapper: made before it polls its future, ended after.
///
/// Restores the enclosing wrapper's poll when it ends or is dropped (also on unwinding).
#[must_use = "a poll's timing ends when it is dropped"]
pub(crate) struct PollTiming<'a> {
    clock: &'a SharedClock,
    clock_id: usize,
    me: Identity,
    start_nanos: Option<u64>,
    /// The poll of the wrapper that polls this one, to restore.
    previous: Option<Edge>,
    ended: bool,
}

impl<'a> PollTiming<'a> {
    /// Starts timing a poll of the wrapper `me`, which is about to poll `inner`: reads the
    /// start now (or reuses the one the wrapper polling `me` read).
    #[inline]
    pub(crate) fn begin(clock: &'a SharedClock, me: Identity, inner: Identity) -> Self {
        let mut timing = Self::begin_lazy(clock, me, inner);
        timing.start_nanos();
        timing
    }

    /// As [`begin`](Self::begin), but reads the start only when
    /// [`start_nanos`](Self::start_nanos) asks for it, which it must do before the wrapper
    /// polls its future or not at all (later, it would read a later time).
    #[inline]
    pub(crate) fn begin_lazy(clock: &'a SharedClock, me: Identity, inner: Identity) -> Self {
        let clock_id = clock_id(clock);
        let previous = current();
        let start_nanos = previous
            .filter(|edge| edge.clock == clock_id && edge.inner == me && edge.end_nanos.is_none())
            .and_then(|edge| edge.start_nanos);
        set_current(Some(Edge { clock: clock_id, start_nanos, inner, end_nanos: None }));
        PollTiming { clock, clock_id, me, start_nanos, previous, ended: false }
    }

    /// The poll's start on the clock: read now if no wrapper read it yet.
    #[inline]
    pub(crate) fn start_nanos(&mut self) -> u64 {
        if let Some(start) = self.start_nanos {
            return start;
        }
        let start = self.clock.now_nanos();
        self.start_nanos = Some(start);
        if let Some(mut edge) = current() {
            edge.start_nanos = Some(start);
            set_current(Some(edge));
        }
        start
    }

    /// Ends the poll and returns its end on the clock: left by the wrapper polled directly, or
    /// read now. Leaves it for the wrapper that polled this one.
    #[inline]
    pub(crate) fn end(mut self) -> u64 {
        let end = match current() {
            Some(Edge { clock, end_nanos: Some(end), .. }) if clock == self.clock_id => end,
            _ => self.clock.now_nanos(),
        };
        self.restore(Some(end));
        end
    }

    /// Ends the poll without reading its end; one left by the wrapper polled directly is
    /// passed on to the wrapper that polled this one.
    #[inline]
    pub(crate) fn finish(mut self) {
        let end = current().and_then(|edge| edge.end_nanos);
        self.restore(end);
    }

    #[inline]
    fn restore(&mut self, end_nanos: Option<u64>) {
        self.ended = true;
        let mut previous = self.previous;
        if let (Some(edge), Some(end)) = (previous.as_mut(), end_nanos) {
            if edge.clock == self.clock_id && edge.inner == self.me {
                edge.end_nanos = Some(end);
            }
        }
        set_current(previous);
    }
}

impl Drop for PollTiming<'_> {
    #[inline]
    fn drop(&mut self) {
        if !self.ended {
            self.restore(None);
        }
    }
}

/// The time of a wake of the waker whose data pointer is `me`, on `clock`: left by the waker
/// that calls it, or read now.
#[inline]
pub(crate) fn wake_nanos(clock: &SharedClock, me: *const ()) -> u64 {
    match WAKE.try_with(Cell::get).ok().flatten() {
        Some(edge) if edge.clock == clock_id(clock) && edge.target == me as usize => edge.now_nanos,
        _ => clock.now_nanos(),
    }
}

/// Wakes `waker` by reference, leaving `now_nanos` (the wake's time on `clock`) for it.
#[inline]
pub(crate) fn forward_wake(clock: &SharedClock, now_nanos: u64, waker: &Waker) {
    let edge = WakeEdge { clock: clock_id(clock), target: waker.data() as usize, now_nanos };
    let previous = WAKE.try_with(|cell| cell.replace(Some(edge))).ok().flatten();
    /// Restores the enclosing wake, also when the waker unwinds.
    struct Restore(Option<WakeEdge>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let _ = WAKE.try_with(|cell| cell.set(self.0));
        }
    }
    let _restore = Restore(previous);
    waker.wake_by_ref();
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::task::Wake;
    use std::time::Duration;

    use super::*;
    use crate::clock::{Clock, ManualClock};

    /// A clock that counts its monotonic reads.
    #[derive(Debug, Default)]
    struct Counting {
        inner: ManualClock,
        reads: AtomicU64,
    }

    impl Clock for Counting {
        fn now_nanos(&self) -> u64 {
            self.reads.fetch_add(1, Ordering::Relaxed);
            self.inner.now_nanos()
        }
        fn thread_cpu_nanos(&self) -> u64 {
            self.inner.thread_cpu_nanos()
        }
    }

    fn counting() -> (Arc<Counting>, SharedClock) {
        let clock = Arc::new(Counting::default());
        let shared: SharedClock = clock.clone();
        (clock, shared)
    }

    #[test]
    fn a_directly_polled_wrapper_reuses_both_edges() {
        let (counter, clock) = counting();
        let (outer, inner, innermost) = (1u64, 2u64, 3u64);
        let mut o = PollTiming::begin(&clock, Identity::of(&outer), Identity::of(&inner));
        counter.inner.advance(Duration::from_nanos(5));
        let mut i = PollTiming::begin(&clock, Identity::of(&inner), Identity::of(&innermost));
        assert_eq!((o.start_nanos(), i.start_nanos()), (0, 0), "the inner poll starts with the outer");
        counter.inner.advance(Duration::from_nanos(7));
        assert_eq!(i.end(), 12);
        assert_eq!(o.end(), 12, "the outer poll ends with the inner");
        assert_eq!(counter.reads.load(Ordering::Relaxed), 2, "one read per edge");
        assert!(current().is_none());
    }

    #[test]
    fn readings_are_not_shared_across_clocks_or_with_futures_polled_indirectly() {
        let (counter, clock) = counting();
        let (_, other) = counting();
        let (outer, inner, elsewhere) = (1u64, 2u64, 3u64);
        let o = PollTiming::begin(&clock, Identity::of(&outer), Identity::of(&inner));
        // Another clock: reads its own.
        let mut other_clock = PollTiming::begin(&other, Identity::of(&inner), Identity::of(&elsewhere));
        other_clock.start_nanos();
        other_clock.end();
        // Not the future the outer one polls (say, awaited inside it after other work).
        counter.inner.advance(Duration::from_nanos(3));
        let mut nested = PollTiming::begin(&clock, Identity::of(&elsewhere), Identity::of(&inner));
        assert_eq!(nested.start_nanos(), 3);
        counter.inner.advance(Duration::from_nanos(4));
        assert_eq!(nested.end(), 7);
        counter.inner.advance(Duration::from_nanos(1));
        assert_eq!(o.end(), 8, "the nested end is not the outer one's");
        assert_eq!(counter.reads.load(Ordering::Relaxed), 4);
    }

    #[test]
    fn a_lazy_start_is_read_once_and_handed_down() {
        let (counter, clock) = counting();
        let (outer, middle, inner, innermost) = (1u64, 2u64, 3u64, 4u64);
        let outer_timing = PollTiming::begin_lazy(&clock, Identity::of(&outer), Identity::of(&middle));
        let mut middle_timing = PollTiming::begin_lazy(&clock, Identity::of(&middle), Identity::of(&inner));
        counter.inner.advance(Duration::from_nanos(2));
        assert_eq!(middle_timing.start_nanos(), 2);
        let inner_timing = PollTiming::begin(&clock, Identity::of(&inner), Identity::of(&innermost));
        counter.inner.advance(Duration::from_nanos(3));
        assert_eq!(inner_timing.end(), 5);
        middle_timing.finish();
        outer_timing.finish();
        assert_eq!(counter.reads.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn a_dropped_timing_restores_the_enclosing_poll() {
        let (_, clock) = counting();
        let (outer, inner) = (1u64, 2u64);
        let o = PollTiming::begin(&clock, Identity::of(&outer), Identity::of(&inner));
        let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _inner = PollTiming::begin(&clock, Identity::of(&inner), Identity::of(&outer));
            panic!("the inner future panics");
        }));
        assert!(unwound.is_err());
        assert_eq!(current().map(|edge| edge.inner), Some(Identity::of(&inner)));
        o.finish();
        assert!(current().is_none());
    }

    /// A waker that records the time it would stamp on `clock`.
    struct Stamp {
        clock: SharedClock,
        seen: AtomicU64,
    }

    impl Wake for Stamp {
        fn wake(self: Arc<Self>) {
            self.wake_by_ref();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            let now = wake_nanos(&self.clock, Arc::as_ptr(self).cast());
            self.seen.store(now, Ordering::Relaxed);
        }
    }

    #[test]
    fn a_forwarded_wake_reuses_the_reading_only_in_the_waker_called() {
        let (counter, clock) = counting();
        counter.inner.advance(Duration::from_nanos(9));
        let stamp = Arc::new(Stamp { clock: clock.clone(), seen: AtomicU64::new(0) });
        let waker = Waker::from(stamp.clone());
        forward_wake(&clock, 4, &waker);
        assert_eq!(stamp.seen.load(Ordering::Relaxed), 4, "reused");
        assert_eq!(counter.reads.load(Ordering::Relaxed), 0);
        waker.wake_by_ref();
        assert_eq!(stamp.seen.load(Ordering::Relaxed), 9, "outside the forward it reads the clock");
        let (_, other) = counting();
        forward_wake(&other, 4, &waker);
        assert_eq!(stamp.seen.load(Ordering::Relaxed), 9, "another clock's reading is not reused");
    }
}
