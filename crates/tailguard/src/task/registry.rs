//! The live-task registry and the tracked-future wrapper.
//!
//! Tasks live in power-of-two shards of small locks (like tokio's `OwnedTasks`), so spawns and
//! exits on different workers rarely meet, and a sweep walks the registry shard by shard without
//! ever holding more than one small lock.

use std::cell::Cell;
use std::future::Future;
use std::marker::PhantomData;
use std::panic::Location;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::task::{Context, Poll, Wake, Waker};

use crossbeam_utils::CachePadded;

use super::gate::{self, lock};
use super::record::{Claim, TaskCell, TaskRecord, published};
use crate::clock::{SharedClock, SystemClock};

/// A profile in progress (low-pause variant): what the barrier records into.
#[derive(Debug)]
pub(crate) struct Run {
    pub(crate) generation: u64,
    /// Tasks with an id at or above this were spawned after the cut and are excluded.
    pub(crate) cut_id: u64,
    pub(crate) cut_nanos: u64,
    pub(crate) sinks: Box<[Mutex<Vec<TaskRecord>>]>,
}

impl Run {
    /// Records `cell` into this run unless it is already recorded or excluded.
    pub(crate) fn record(&self, cell: &TaskCell) {
        self.record_with(cell, |record| {
            lock(&self.sinks[record.id as usize & (self.sinks.len() - 1)]).push(record);
        });
    }

    /// Like [`record`](Self::record), handing a won record to `sink` (the sweeper's own list).
    #[inline]
    pub(crate) fn record_with(&self, cell: &TaskCell, sink: impl FnOnce(TaskRecord)) {
        if cell.id >= self.cut_id {
            cell.word.exclude(self.generation);
        } else if cell.word.claim(self.generation) == Claim::Won {
            sink(cell.snapshot(self.cut_nanos));
            cell.word.publish(self.generation);
        }
    }
}

/// One shard of the registry: its tasks, in no particular order.
pub(crate) type Shard = CachePadded<Mutex<Vec<Arc<TaskCell>>>>;

#[derive(Debug)]
pub(crate) struct RegistryInner {
    pub(crate) clock: SharedClock,
    pub(crate) shards: Box<[Shard]>,
    pub(crate) next_id: AtomicU64,
    /// `published(generation)` of the latest profile: a task whose word equals it needs nothing.
    pub(crate) target: AtomicU64,
    /// The low-pause profile in progress, if any.
    pub(crate) current: RwLock<Option<Arc<Run>>>,
}

impl RegistryInner {
    pub(crate) fn new(clock: SharedClock, shards: usize) -> Self {
        let shards = shards.max(1).next_power_of_two();
        Self {
            clock,
            shards: (0..shards).map(|_| CachePadded::new(Mutex::new(Vec::new()))).collect(),
            next_id: AtomicU64::new(1),
            target: AtomicU64::new(published(0)),
            current: RwLock::new(None),
        }
    }

    /// Adds a task; its id is assigned under the shard lock (see `profile::low_pause` for why).
    pub(crate) fn insert(
        &self,
        name: Option<Arc<str>>,
        location: &'static Location<'static>,
    ) -> Arc<TaskCell> {
        let now = self.clock.now_nanos();
        // Read the target before taking an id: if this reads a new generation's target, the id
        // below is past that generation's cut, so "already seen" is right for it.
        let word = self.target.load(Ordering::SeqCst);
        // Pick a shard from the next id, then take the id inside that shard's lock (the id may
        // have moved on meanwhile: the cell remembers its shard).
        let shard = self.next_id.load(Ordering::Relaxed) as usize & (self.shards.len() - 1);
        let mut tasks = lock(&self.shards[shard]);
        let id = self.next_id.fetch_add(1, Ordering::SeqCst);
        let cell = Arc::new(TaskCell::new(id, shard, name, location, now, word));
        cell.shard_index.store(tasks.len(), Ordering::Relaxed);
        tasks.push(Arc::clone(&cell));
        drop(tasks);
        cell
    }

    /// Removes a task (idempotent).
    pub(crate) fn remove(&self, cell: &TaskCell) {
        let mut tasks = lock(&self.shards[cell.shard]);
        let index = cell.shard_index.load(Ordering::Relaxed);
        if index < tasks.len() && std::ptr::eq(Arc::as_ptr(&tasks[index]), cell) {
            tasks.swap_remove(index);
            if let Some(moved) = tasks.get(index) {
                moved.shard_index.store(index, Ordering::Relaxed);
            }
            // Give memory back as the population shrinks, so a burst leaves nothing behind.
            if tasks.len() * 4 < tasks.capacity() {
                let keep = tasks.len() * 2;
                tasks.shrink_to(keep);
            }
        }
    }

    /// Number of tasks in the registry.
    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(s).len()).sum()
    }

    /// Bytes held by the registry's shard tables and live task cells.
    pub(crate) fn memory_bytes(&self) -> usize {
        self.shards
            .iter()
            .map(|s| {
                let tasks = lock(s);
                tasks.capacity() * size_of::<Arc<TaskCell>>()
                    + tasks.len() * size_of::<TaskCell>()
                    + tasks.iter().map(|t| t.name.as_ref().map_or(0, |n| n.len())).sum::<usize>()
            })
            .sum::<usize>()
            + self.shards.len() * size_of::<Shard>()
    }

    /// The barrier: before `cell`'s state changes, record it into the profile in progress if
    /// it is not yet recorded. One acquire load and a compare when no profile has started since
    /// the task last passed here.
    #[inline]
    pub(crate) fn barrier(&self, cell: &TaskCell) {
        if cell.word.load() != self.target.load(Ordering::Acquire) {
            self.barrier_slow(cell);
        }
    }

    #[cold]
    #[inline(never)]
    fn barrier_slow(&self, cell: &TaskCell) {
        loop {
            let target = self.target.load(Ordering::SeqCst);
            let run = self.current.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
            match run {
                Some(run) => run.record(cell),
                // The profile that set `target` has finished, and it recorded every task of its
                // cut before finishing: this task was born after the cut, or is recorded.
                None => cell.word.exclude(target >> 1),
            }
            // A caller outside any poll (a waker on a timer thread) is not held back by the
            // gate, so a new profile may have started meanwhile: then pass it too.
            if self.target.load(Ordering::SeqCst) == target {
                return;
            }
        }
    }
}

/// The task being polled (or finished) on this thread: pointers to the `Arc`s inside the
/// `Tracked` being polled, set by a [`CurrentGuard`] that borrows them.
type CurrentPtrs = Option<(*const Arc<RegistryInner>, *const Arc<TaskCell>)>;

thread_local! {
    static CURRENT: Cell<CurrentPtrs> = const { Cell::new(None) };
}

/// Runs `f` with the task being polled on this thread, if any.
pub(crate) fn with_current<R>(f: impl FnOnce(&Arc<RegistryInner>, &Arc<TaskCell>) -> R) -> Option<R> {
    let (registry, cell) = CURRENT.try_with(Cell::get).ok().flatten()?;
    // SAFETY: the pointers were set by a `CurrentGuard` that is still alive (guards restore
    // the previous value when dropped, in stack order, also on unwind), and that guard borrows
    // both `Arc`s for its whole life, so they point to live, unmoved, unmutated `Arc`s.
    let (registry, cell) = unsafe { (&*registry, &*cell) };
    Some(f(registry, cell))
}

/// Makes a task current until dropped (also on unwind), then restores the previous one.
///
/// Raw pointers instead of `Arc` clones: cloning two `Arc`s per poll cost four atomic
/// read-modify-writes (measured ~15 ns of a ~85 ns tracked poll, see `benches/task_profile.rs`).
struct CurrentGuard<'a> {
    previous: CurrentPtrs,
    _borrow: PhantomData<&'a Arc<TaskCell>>,
}

impl<'a> CurrentGuard<'a> {
    #[inline]
    fn set(registry: &'a Arc<RegistryInner>, cell: &'a Arc<TaskCell>) -> Self {
        let ptrs = Some((registry as *const _, cell as *const _));
        let previous = CURRENT.try_with(|c| c.replace(ptrs)).ok().flatten();
        Self { previous, _borrow: PhantomData }
    }
}

impl Drop for CurrentGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        let _ = CURRENT.try_with(|c| c.set(self.previous));
    }
}

/// Wraps the runtime's waker: a wake-up is a state change, so it passes the barrier first.
struct WakeShim {
    registry: Arc<RegistryInner>,
    cell: Arc<TaskCell>,
    inner: Waker,
}

impl Wake for WakeShim {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.registry.barrier(&self.cell);
        self.cell.note_wake(self.registry.clock.now_nanos());
        self.inner.wake_by_ref();
    }
}

/// A future tracked in a task registry: created by [`Registry::track`](super::Registry::track)
/// (and by the spawn functions, which hand it to tokio).
///
/// The task is registered when this is created, and removed when the future completes,
/// panics, or is dropped.
#[must_use = "futures do nothing unless polled"]
pub struct Tracked<F> {
    registry: Arc<RegistryInner>,
    cell: Arc<TaskCell>,
    future: Option<Pin<Box<F>>>,
    /// The runtime's waker we last saw, and our wrapper around it.
    wakers: Option<(Waker, Waker)>,
}

impl<F> std::fmt::Debug for Tracked<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracked").field("id", &self.cell.id).field("name", &self.cell.name).finish()
    }
}

impl<F> Tracked<F> {
    pub(crate) fn new(
        registry: &Arc<RegistryInner>,
        future: F,
        name: Option<Arc<str>>,
        location: &'static Location<'static>,
    ) -> Self {
        let cell = registry.insert(name, location);
        Self { registry: Arc::clone(registry), cell, future: Some(Box::pin(future)), wakers: None }
    }

    /// The task's id in its registry.
    pub fn id(&self) -> u64 {
        self.cell.id
    }

    /// A reference to this task, e.g. to set its value before it is spawned.
    pub fn task(&self) -> super::TaskRef {
        super::TaskRef { registry: Arc::clone(&self.registry), cell: Arc::clone(&self.cell) }
    }

    /// Makes sure `wakers` wraps the runtime's current waker.
    fn refresh_waker(&mut self, cx: &Context<'_>) {
        if !matches!(&self.wakers, Some((inner, _)) if inner.will_wake(cx.waker())) {
            let shim = Waker::from(Arc::new(WakeShim {
                registry: Arc::clone(&self.registry),
                cell: Arc::clone(&self.cell),
                inner: cx.waker().clone(),
            }));
            self.wakers = Some((cx.waker().clone(), shim));
        }
    }

    /// Removes the task and drops its future, inside the gate and after the barrier.
    fn finish(&mut self) {
        if let Some(future) = self.future.take() {
            let _gate = gate::enter();
            self.registry.barrier(&self.cell);
            let _current = CurrentGuard::set(&self.registry, &self.cell);
            drop(future);
            self.registry.remove(&self.cell);
            // Break the waker's reference to the cell early.
            self.wakers = None;
        }
    }
}

impl<F: Future> Future for Tracked<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // `Tracked` is `Unpin`: the inner future is boxed.
        let this = self.get_mut();
        assert!(this.future.is_some(), "`Tracked` polled after completion");
        this.refresh_waker(cx);
        let Tracked { registry, cell, future, wakers } = &mut *this;
        let (Some(future), Some((_, shim))) = (future.as_mut(), wakers.as_ref()) else {
            unreachable!("future and waker set above");
        };
        let poll = {
            let _gate = gate::enter();
            registry.barrier(cell);
            let start = registry.clock.now_nanos();
            cell.begin_poll(start);
            let _current = CurrentGuard::set(registry, cell);
            let poll = future.as_mut().poll(&mut Context::from_waker(shim));
            cell.end_poll(start, registry.clock.now_nanos());
            poll
        };
        if poll.is_ready() {
            this.finish();
        }
        poll
    }
}

impl<F> Drop for Tracked<F> {
    fn drop(&mut self) {
        self.finish();
    }
}

/// A task registry with its clock: the set of live tracked tasks that a profile walks.
///
/// Most programs use the process-wide [`Registry::global`] through [`spawn`](super::spawn);
/// separate registries (e.g. one per test, with a [`ManualClock`](crate::clock::ManualClock))
/// are profiled independently, but all registries share one poll gate: stopping the world
/// stops every tracked task in the process, as in Go.
#[derive(Clone, Debug)]
pub struct Registry {
    pub(crate) inner: Arc<RegistryInner>,
}

impl Registry {
    /// A registry timed by the system clock.
    pub fn new() -> Self {
        Self::with_clock(SystemClock::shared())
    }

    /// A registry timed by `clock`.
    pub fn with_clock(clock: SharedClock) -> Self {
        let shards = std::thread::available_parallelism().map_or(4, |n| n.get()) * 4;
        Self { inner: Arc::new(RegistryInner::new(clock, shards.clamp(4, 256))) }
    }

    /// The process-wide registry used by [`spawn`](super::spawn) and [`Builder`](super::Builder)
    /// unless told otherwise.
    pub fn global() -> &'static Registry {
        static GLOBAL: std::sync::OnceLock<Registry> = std::sync::OnceLock::new();
        GLOBAL.get_or_init(Registry::new)
    }

    /// Registers `future` as a task (spawned here, at the caller's location) without spawning
    /// it: poll the returned future on any executor.
    #[track_caller]
    pub fn track<F: Future>(&self, future: F) -> Tracked<F> {
        Tracked::new(&self.inner, future, None, Location::caller())
    }

    /// Number of live tasks.
    pub fn len(&self) -> usize {
        self.inner.len()
    }

    /// Whether no task is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes held by the registry for its live tasks (shard tables and task cells, not the
    /// futures): back to its starting level once every task has gone.
    pub fn memory_bytes(&self) -> usize {
        self.inner.memory_bytes()
    }
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}
