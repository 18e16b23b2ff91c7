//! The poll gate: the "world" that a profile stops.
//!
//! Every poll (and the drop) of a tracked task passes the gate in *read* mode; a profiler closes
//! it in *write* mode. While the gate is closed no tracked task can start a poll, and closing
//! waits until every poll already under way has returned. That interval — from closing to
//! reopening — is what this module calls a **pause**.
//!
//! The read side is built so that an open gate costs no shared-cache-line traffic: each thread
//! owns a cache-padded slot holding its poll nesting depth. Entering stores `depth + 1` into the
//! thread's own slot with a sequentially consistent swap and then reads the global `closed` flag;
//! the writer sets `closed` and then reads every slot. This is Dekker's handshake: at least one
//! side sees the other's store, so either the reader waits or the writer waits for the reader.
//!
//! A thread already inside a poll (nesting depth above zero) passes without checking, so a poll
//! that drops another tracked future cannot deadlock against a waiting writer. The thread that
//! closes the gate never waits for its own slot: a profile requested from inside a tracked poll
//! sees that poll as paused at the call.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use crossbeam_utils::CachePadded;

/// One thread's read-side state.
#[derive(Debug, Default)]
struct Slot {
    /// How many tracked polls (or drops) this thread is inside of, nested.
    depth: AtomicU32,
}

#[derive(Debug)]
struct Gate {
    closed: AtomicBool,
    /// Every thread's slot, registered on the thread's first tracked poll.
    slots: Mutex<Vec<Arc<CachePadded<Slot>>>>,
    /// Depth of polls on threads whose thread-local slot is gone (polls during thread teardown).
    orphan: CachePadded<Slot>,
    /// Readers that found the gate closed wait here.
    reopened_lock: Mutex<()>,
    reopened: Condvar,
    /// One writer at a time.
    writer: Mutex<()>,
}

static GATE: Gate = Gate {
    closed: AtomicBool::new(false),
    slots: Mutex::new(Vec::new()),
    orphan: CachePadded::new(Slot { depth: AtomicU32::new(0) }),
    reopened_lock: Mutex::new(()),
    reopened: Condvar::new(),
    writer: Mutex::new(()),
};

/// Owns this thread's slot and unregisters it when the thread exits.
struct LocalSlot {
    slot: Arc<CachePadded<Slot>>,
}

impl LocalSlot {
    fn register() -> Self {
        let slot = Arc::new(CachePadded::new(Slot::default()));
        lock(&GATE.slots).push(Arc::clone(&slot));
        Self { slot }
    }
}

impl Drop for LocalSlot {
    fn drop(&mut self) {
        lock(&GATE.slots).retain(|s| !Arc::ptr_eq(s, &self.slot));
    }
}

thread_local! {
    static LOCAL: LocalSlot = LocalSlot::register();
}

/// Locks a mutex, ignoring poisoning: every structure guarded here stays valid across a panic.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Runs `f` with this thread's slot and `false`, or during thread teardown with the orphan slot
/// (shared between threads, so updated with read-modify-writes) and `true`.
#[inline]
fn with_slot<R>(f: impl FnOnce(&Slot, bool) -> R) -> R {
    let mut f = Some(f);
    match LOCAL.try_with(|local| (f.take().expect("called once"))(&local.slot, false)) {
        Ok(r) => r,
        Err(_) => (f.take().expect("not called yet"))(&GATE.orphan, true),
    }
}

/// Proof that this thread is inside the gate; leaving it on drop (also on unwind).
#[derive(Debug)]
pub(crate) struct ReadGuard {
    _not_send: std::marker::PhantomData<*const ()>,
}

/// Enters the gate in read mode, waiting while a writer holds it.
#[inline]
pub(crate) fn enter() -> ReadGuard {
    with_slot(|slot, shared| {
        // SeqCst read-modify-write, then SeqCst load: one half of the Dekker handshake with
        // `close`. A thread that is already inside (depth > 0) passes without checking.
        let depth = if shared {
            slot.depth.fetch_add(1, Ordering::SeqCst)
        } else {
            let depth = slot.depth.load(Ordering::Relaxed);
            slot.depth.swap(depth + 1, Ordering::SeqCst);
            depth
        };
        if depth == 0 && GATE.closed.load(Ordering::SeqCst) {
            enter_slow(slot);
        }
    });
    ReadGuard { _not_send: std::marker::PhantomData }
}

#[cold]
#[inline(never)]
fn enter_slow(slot: &Slot) {
    loop {
        // Step back out so the writer can finish draining, wait for it to reopen, retry.
        slot.depth.fetch_sub(1, Ordering::Release);
        let mut guard = lock(&GATE.reopened_lock);
        while GATE.closed.load(Ordering::SeqCst) {
            guard = GATE.reopened.wait(guard).unwrap_or_else(PoisonError::into_inner);
        }
        drop(guard);
        slot.depth.fetch_add(1, Ordering::SeqCst);
        if !GATE.closed.load(Ordering::SeqCst) {
            return;
        }
    }
}

impl Drop for ReadGuard {
    #[inline]
    fn drop(&mut self) {
        // Release: the writer that reads this slot as zero sees everything the poll wrote.
        // Only the owning thread writes its slot, so a plain store suffices (no locked RMW).
        with_slot(|slot, shared| {
            if shared {
                slot.depth.fetch_sub(1, Ordering::Release);
            } else {
                let depth = slot.depth.load(Ordering::Relaxed);
                slot.depth.store(depth.saturating_sub(1), Ordering::Release);
            }
        });
    }
}

/// The writer's exclusive right to close the gate; held for a whole profile.
#[derive(Debug)]
pub(crate) struct Writer {
    _guard: MutexGuard<'static, ()>,
    /// This thread's poll depth when the profile was requested, restored at the end.
    saved_depth: u32,
}

/// Becomes the (only) writer. A thread inside a tracked poll steps out of the gate while it
/// waits, so two profiles requested from inside polls cannot wait for each other.
pub(crate) fn writer() -> Writer {
    // The orphan slot is shared: leave it alone (a thread being torn down keeps its depth).
    let saved_depth = with_slot(|slot, shared| if shared { 0 } else { slot.depth.swap(0, Ordering::SeqCst) });
    let guard = lock(&GATE.writer);
    Writer { _guard: guard, saved_depth }
}

impl Writer {
    /// Closes the gate and waits until no other thread is inside a tracked poll. From the
    /// return of this call until [`Closed`] is dropped, no tracked task runs (except one that
    /// called the profiler itself, which is blocked in that call).
    pub(crate) fn close(&mut self) -> Closed<'_> {
        GATE.closed.store(true, Ordering::SeqCst);
        let own = LOCAL.try_with(|local| Arc::as_ptr(&local.slot)).ok();
        let slots = lock(&GATE.slots);
        for slot in slots.iter() {
            if Some(Arc::as_ptr(slot)) != own {
                drain(slot);
            }
        }
        drop(slots);
        drain(&GATE.orphan);
        Closed { _writer: self }
    }
}

fn drain(slot: &Slot) {
    let mut spins = 0u32;
    while slot.depth.load(Ordering::SeqCst) != 0 {
        spins += 1;
        if spins < 64 {
            std::hint::spin_loop();
        } else {
            std::thread::yield_now();
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // Step back in (the mutex guard is released after this body runs, but the gate is open:
        // `Closed` borrowed us mutably and is gone).
        let depth = self.saved_depth;
        if depth > 0 {
            with_slot(|slot, shared| {
                if !shared {
                    slot.depth.swap(depth, Ordering::SeqCst);
                }
            });
        }
    }
}

/// The gate is closed while this lives.
#[derive(Debug)]
pub(crate) struct Closed<'w> {
    _writer: &'w mut Writer,
}

impl Drop for Closed<'_> {
    fn drop(&mut self) {
        {
            let _g = lock(&GATE.reopened_lock);
            GATE.closed.store(false, Ordering::SeqCst);
        }
        GATE.reopened.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    #[test]
    fn closing_waits_for_polls_and_blocks_new_ones() {
        // A counter that readers bump twice inside the gate: the writer must never see it odd.
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let stop = Arc::new(AtomicBool::new(false));
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let stop = Arc::clone(&stop);
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        let _g = enter();
                        COUNTER.fetch_add(1, Ordering::Relaxed);
                        std::hint::spin_loop();
                        COUNTER.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        for _ in 0..200 {
            let mut w = writer();
            let closed = w.close();
            let a = COUNTER.load(Ordering::Relaxed);
            std::hint::spin_loop();
            let b = COUNTER.load(Ordering::Relaxed);
            assert_eq!(a % 2, 0, "a reader was inside the gate while it was closed");
            assert_eq!(a, b, "a reader entered the closed gate");
            drop(closed);
        }
        stop.store(true, Ordering::Relaxed);
        for r in readers {
            r.join().unwrap();
        }
    }

    #[test]
    fn nested_entry_and_writer_inside_a_poll_do_not_deadlock() {
        let outer = enter();
        let inner = enter();
        let mut w = writer();
        drop(w.close());
        drop(w);
        drop(inner);
        drop(outer);
        with_slot(|slot, _| assert_eq!(slot.depth.load(Ordering::Relaxed), 0));
    }
}
