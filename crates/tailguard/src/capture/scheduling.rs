//! Scheduling delay handed from a future wrapper to the capture layer.
//!
//! `tracing` tells a layer when a span is entered and exited (for an instrumented future: at
//! the start and end of each poll), but not when the task was woken. Whoever polls the task
//! knows that: [`Scheduled`] stamps each wake and, around each poll, opens a [`PollScope`]
//! carrying the wake→poll delay in a thread-local. The layer reads it when a captured span is
//! entered during that poll, and so charges the delay to every span entered in a poll that
//! followed a wake.
//!
//! Any executor or wrapper that knows the delay can open a [`PollScope`] itself: one
//! thread-local write on entry and one on exit.

use std::cell::Cell;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use crate::clock::{SharedClock, SystemClock, duration_nanos};

/// The poll under way on this thread, as seen by the layer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct PollNote {
    /// Unique per poll across threads; 0 outside any [`PollScope`].
    pub(crate) seq: u64,
    /// Wake→poll delay of this poll, `None` when the poll did not follow a wake.
    pub(crate) delay_nanos: Option<u64>,
    /// Whether a capture has already counted this poll's delay in its trace-wide total.
    pub(crate) claimed: bool,
}

thread_local! {
    static POLL: Cell<PollNote> = const { Cell::new(PollNote { seq: 0, delay_nanos: None, claimed: false }) };
    static NEXT_SEQ: Cell<u64> = const { Cell::new(0) };
}

/// Threads get disjoint ranges of poll sequence numbers: 2^40 polls each.
static NEXT_THREAD: AtomicU64 = AtomicU64::new(1);
const SEQ_BITS: u32 = 40;

fn next_seq() -> u64 {
    NEXT_SEQ
        .try_with(|next| {
            let mut seq = next.get();
            if seq == 0 {
                seq = NEXT_THREAD.fetch_add(1, Ordering::Relaxed) << SEQ_BITS;
            }
            seq += 1;
            next.set(seq);
            seq
        })
        .unwrap_or(0)
}

/// The poll under way on this thread (seq 0 outside any scope).
#[inline]
pub(crate) fn current_poll() -> PollNote {
    POLL.try_with(Cell::get).unwrap_or_default()
}

/// Marks the current poll's delay as counted; returns the delay if it was not counted before.
#[inline]
pub(crate) fn claim_poll_delay() -> Option<u64> {
    POLL.try_with(|cell| {
        let mut note = cell.get();
        if note.claimed || note.seq == 0 {
            return None;
        }
        note.claimed = true;
        cell.set(note);
        note.delay_nanos
    })
    .ok()
    .flatten()
}

/// Tells the capture layer that a poll is under way on this thread, and how long the task
/// waited to be scheduled before it; closes on drop (also on unwind) and restores the scope it
/// was opened in.
///
/// Open it around the inner future's `poll`, outside the span's `enter` (wrap the
/// `tracing`-instrumented future, not the other way round), so that the layer sees it when the
/// span is entered.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use tailguard::capture::PollScope;
///
/// let _scope = PollScope::enter(Some(Duration::from_micros(250))); // woken 250 µs ago
/// // ... poll the task: spans entered now are charged 250 µs of scheduling delay ...
/// ```
#[must_use = "the scope closes when dropped"]
pub struct PollScope {
    previous: PollNote,
    /// The scope is a thread-local's save slot: it must close on the thread that opened it.
    _not_send: PhantomData<*const ()>,
}

impl PollScope {
    /// Opens a poll scope; `scheduling_delay` is the time from the wake that made the task
    /// runnable to the start of this poll, `None` when the poll did not follow a wake (the
    /// first poll of a task).
    #[inline]
    pub fn enter(scheduling_delay: Option<Duration>) -> Self {
        let note =
            PollNote { seq: next_seq(), delay_nanos: scheduling_delay.map(duration_nanos), claimed: false };
        let previous = POLL.try_with(|cell| cell.replace(note)).unwrap_or_default();
        Self { previous, _not_send: PhantomData }
    }
}

impl Drop for PollScope {
    #[inline]
    fn drop(&mut self) {
        let _ = POLL.try_with(|cell| cell.set(self.previous));
    }
}

impl fmt::Debug for PollScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PollScope").field("current", &current_poll()).finish_non_exhaustive()
    }
}

/// Wake stamp shared by a [`Scheduled`] future and the waker it hands out.
struct WakeStamp {
    /// Time of the first wake since the last poll; 0 when not woken.
    woken_at_nanos: AtomicU64,
    /// The executor's waker, woken after stamping.
    waker: Mutex<Option<Waker>>,
    clock: SharedClock,
}

impl Wake for WakeStamp {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        // `max(1)`: 0 means "not woken". The first wake since the last poll wins.
        let now = self.clock.now_nanos().max(1);
        let _ = self.woken_at_nanos.compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed);
        // Cloned out so that the executor's waker is never woken under our lock; a poisoned lock
        // only means a waker's clone panicked, the slot is still valid.
        let waker = self.waker.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

/// A future whose wake→poll delays are handed to the capture layer: each poll runs inside a
/// [`PollScope`] carrying the delay since the wake that preceded it.
///
/// Wrap the outermost future of a task, around its `tracing` instrumentation:
/// `tokio::spawn(Scheduled::new(work.instrument(span)))`. Costs one monotonic clock read per
/// poll that follows a wake and one per wake, and one allocation when made (the inner future is
/// boxed).
///
/// # Examples
///
/// ```
/// use tailguard::capture::Scheduled;
///
/// let runtime = tokio::runtime::Builder::new_current_thread().build()?;
/// assert_eq!(runtime.block_on(Scheduled::new(async { 40 + 2 })), 42);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use = "futures do nothing unless polled"]
pub struct Scheduled<F> {
    future: Pin<Box<F>>,
    stamp: Arc<WakeStamp>,
    /// Our waker, made once.
    own_waker: Waker,
    /// The executor waker last stored in `stamp.waker`, compared without the lock.
    registered: Option<Waker>,
}

impl<F: Future> Scheduled<F> {
    /// Wraps `future`, timing wakes with the system clock.
    pub fn new(future: F) -> Self {
        Self::with_clock(future, SystemClock::shared())
    }

    /// Wraps `future`, timing wakes with `clock` (use the capture layer's clock).
    pub fn with_clock(future: F, clock: SharedClock) -> Self {
        let stamp = Arc::new(WakeStamp { woken_at_nanos: AtomicU64::new(0), waker: Mutex::new(None), clock });
        let own_waker = Waker::from(Arc::clone(&stamp));
        Self { future: Box::pin(future), stamp, own_waker, registered: None }
    }
}

impl<F> Scheduled<F> {
    #[cold]
    fn register(&mut self, waker: &Waker) {
        *self.stamp.waker.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(waker.clone());
        self.registered = Some(waker.clone());
    }
}

impl<F: Future> Future for Scheduled<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // `Scheduled` is `Unpin`: the inner future is boxed.
        let this = self.get_mut();
        if !this.registered.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            this.register(cx.waker());
        }
        let woken_at = this.stamp.woken_at_nanos.swap(0, Ordering::Relaxed);
        let delay = (woken_at != 0)
            .then(|| Duration::from_nanos(this.stamp.clock.now_nanos().saturating_sub(woken_at)));
        let _scope = PollScope::enter(delay);
        this.future.as_mut().poll(&mut Context::from_waker(&this.own_waker))
    }
}

impl<F> fmt::Debug for Scheduled<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scheduled")
            .field("woken_at_nanos", &self.stamp.woken_at_nanos.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    #[test]
    fn scheduled_is_send_when_its_future_is() {
        fn assert_send<T: Send>(_: &T) {}
        assert_send(&Scheduled::new(async { 1 }));
    }

    #[test]
    fn scopes_nest_and_restore() {
        assert_eq!(current_poll().seq, 0);
        {
            let _outer = PollScope::enter(Some(Duration::from_nanos(5)));
            let outer = current_poll();
            assert_ne!(outer.seq, 0);
            assert_eq!(outer.delay_nanos, Some(5));
            {
                let _inner = PollScope::enter(None);
                let inner = current_poll();
                assert_ne!(inner.seq, outer.seq);
                assert_eq!(inner.delay_nanos, None);
                assert_eq!(claim_poll_delay(), None);
            }
            assert_eq!(current_poll(), outer);
            assert_eq!(claim_poll_delay(), Some(5));
            assert_eq!(claim_poll_delay(), None, "a poll's delay is claimed once");
        }
        assert_eq!(current_poll().seq, 0);
        assert_eq!(claim_poll_delay(), None);
    }

    #[test]
    fn scheduled_reports_wake_to_poll_delay() {
        let clock = ManualClock::new();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let slot: Arc<Mutex<Option<Waker>>> = Arc::new(Mutex::new(None));
        let (seen2, slot2, clock2) = (Arc::clone(&seen), Arc::clone(&slot), clock.clone());
        let mut polls = 0;
        let mut task = Scheduled::with_clock(
            std::future::poll_fn(move |cx| {
                seen2.lock().unwrap().push(current_poll().delay_nanos);
                *slot2.lock().unwrap() = Some(cx.waker().clone());
                clock2.advance(Duration::from_millis(1));
                polls += 1;
                if polls == 3 { Poll::Ready(()) } else { Poll::Pending }
            }),
            clock.shared(),
        );
        let mut cx = Context::from_waker(Waker::noop());
        assert!(Pin::new(&mut task).poll(&mut cx).is_pending());
        clock.advance(Duration::from_millis(10)); // idle, not woken
        slot.lock().unwrap().take().unwrap().wake();
        clock.advance(Duration::from_millis(3)); // woken, waiting
        assert!(Pin::new(&mut task).poll(&mut cx).is_pending());
        slot.lock().unwrap().take().unwrap().wake();
        assert!(Pin::new(&mut task).poll(&mut cx).is_ready());
        assert_eq!(*seen.lock().unwrap(), [None, Some(3_000_000), Some(0)]);
        assert_eq!(current_poll().seq, 0);
    }
}
