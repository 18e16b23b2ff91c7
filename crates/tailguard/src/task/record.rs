//! Per-task state, and the state machine that records a task into a profile exactly once.
//!
//! # The record word
//!
//! Each task owns one atomic word, `generation << 1 | BUSY`: the last profile generation it was
//! recorded into, and whether a recording is being written right now. Recording into generation
//! `g` moves the word `(<g, idle) → (g, busy) → (g, idle)`; the first transition is a
//! compare-and-swap, so of the task's own barrier, a waker, a peer changing its value and the
//! sweeper, exactly one wins and writes the record; the others wait until the winner has
//! published it (the word is idle again) before they change the task's state. The pure decision
//! functions [`decide_claim`] and [`decide_exclude`] are what the atomic loops run, and what the
//! model test in this module explores exhaustively.

use std::panic::Location;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use super::gate::lock;

/// The low bit of a record word: a recording is being written.
const BUSY: u64 = 1;

/// What a claimant should do, given the word it loaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ClaimStep {
    /// Already recorded for this generation (or a later one): nothing to do.
    Done,
    /// Someone is writing the record for this generation: wait until it is published.
    Wait,
    /// Try to install this word with a compare-and-swap; on success the caller records.
    Try(u64),
}

/// The claim decision for generation `generation`, given the current word.
#[inline]
pub(crate) fn decide_claim(word: u64, generation: u64) -> ClaimStep {
    let recorded = word >> 1;
    if recorded > generation || (recorded == generation && word & BUSY == 0) {
        ClaimStep::Done
    } else if word & BUSY != 0 {
        // Busy for this generation, or busy for an older one (an earlier profile's straggler
        // cannot exist: a profile ends only after every claim was published; kept for safety).
        ClaimStep::Wait
    } else {
        ClaimStep::Try(generation << 1 | BUSY)
    }
}

/// The decision for a task excluded from generation `generation` (born after its cut): mark it
/// as seen so its fast path passes, without recording it.
#[inline]
pub(crate) fn decide_exclude(word: u64, generation: u64) -> ClaimStep {
    if word >> 1 >= generation {
        ClaimStep::Done
    } else if word & BUSY != 0 {
        ClaimStep::Wait
    } else {
        ClaimStep::Try(generation << 1)
    }
}

/// The word of a task recorded (or excluded) for `generation`, with no recording under way.
#[inline]
pub(crate) const fn published(generation: u64) -> u64 {
    generation << 1
}

/// Outcome of [`RecordWord::claim`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Claim {
    /// The caller won and must write the record, then call [`RecordWord::publish`].
    Won,
    /// The record exists (it was published, possibly after waiting for its writer).
    Recorded,
}

/// A task's record word (see the module docs).
#[derive(Debug)]
pub(crate) struct RecordWord(AtomicU64);

impl RecordWord {
    pub(crate) fn new(word: u64) -> Self {
        Self(AtomicU64::new(word))
    }

    #[inline]
    pub(crate) fn load(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }

    /// Claims the right to record generation `generation`, waiting out a concurrent writer.
    pub(crate) fn claim(&self, generation: u64) -> Claim {
        self.run(generation, decide_claim)
    }

    /// Marks the task as excluded from `generation`, waiting out a concurrent writer.
    pub(crate) fn exclude(&self, generation: u64) {
        let _ = self.run(generation, decide_exclude);
    }

    fn run(&self, generation: u64, decide: fn(u64, u64) -> ClaimStep) -> Claim {
        let mut spins = 0u32;
        let mut word = self.0.load(Ordering::Acquire);
        loop {
            match decide(word, generation) {
                ClaimStep::Done => return Claim::Recorded,
                ClaimStep::Wait => {
                    spins += 1;
                    if spins < 64 {
                        std::hint::spin_loop();
                    } else {
                        std::thread::yield_now();
                    }
                    word = self.0.load(Ordering::Acquire);
                }
                ClaimStep::Try(next) => {
                    match self.0.compare_exchange_weak(word, next, Ordering::AcqRel, Ordering::Acquire) {
                        Ok(_) if next & BUSY != 0 => return Claim::Won,
                        Ok(_) => return Claim::Recorded,
                        Err(actual) => word = actual,
                    }
                }
            }
        }
    }

    /// Publishes the record written after a [`Claim::Won`] for `generation`.
    pub(crate) fn publish(&self, generation: u64) {
        self.0.store(published(generation), Ordering::Release);
    }
}

/// Where a task is in its life cycle, as seen by a profile.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum TaskState {
    /// Waiting for a wake-up.
    Idle,
    /// Woken (or just spawned), waiting for a worker to poll it.
    Scheduled,
    /// Being polled (in a profile, only a task that requested the profile itself).
    Running,
}

impl TaskState {
    /// The lower-case name used in text and JSON output.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Idle => "idle",
            TaskState::Scheduled => "scheduled",
            TaskState::Running => "running",
        }
    }
}

const IDLE: u8 = 0;
const SCHEDULED: u8 = 1;
const RUNNING: u8 = 2;
/// Running, and woken during the poll: scheduled again when the poll returns.
const RUNNING_WOKEN: u8 = 3;

/// Marker for "never polled" in `last_poll_end_nanos`.
const NEVER: u64 = u64::MAX;

/// One task's state, as a profile records it.
///
/// Times are read from the registry's [`Clock`](crate::clock::Clock) at the profile's cut.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TaskRecord {
    /// The task's id: unique within its registry, increasing in spawn order, starting at 1.
    pub id: u64,
    /// The name given with [`Builder::name`](super::Builder::name), if any.
    pub name: Option<Arc<str>>,
    /// Where the task was spawned.
    pub location: &'static Location<'static>,
    /// Idle, scheduled or running at the cut.
    pub state: TaskState,
    /// Polls completed or begun before the cut.
    pub polls: u64,
    /// Total wall time spent inside this task's polls (like Go's `grunning.Time()`, it includes
    /// time the OS descheduled the worker mid-poll).
    pub running: Duration,
    /// Total time from wake-up (or spawn) to the start of the poll it caused.
    pub total_scheduling_delay: Duration,
    /// The longest single wake-up-to-poll delay.
    pub max_scheduling_delay: Duration,
    /// Time since the last poll returned; `None` if the task was never polled.
    pub since_last_poll: Option<Duration>,
    /// Time since the task was spawned.
    pub age: Duration,
    /// The task's label stack, outermost first (see [`frame`](super::frame)).
    pub frames: Vec<&'static str>,
    /// The task's user value (see [`set_value`](super::set_value)).
    pub value: u64,
}

/// The live state of one tracked task.
#[derive(Debug)]
pub(crate) struct TaskCell {
    pub(crate) id: u64,
    /// The registry shard holding this task.
    pub(crate) shard: usize,
    pub(crate) name: Option<Arc<str>>,
    pub(crate) location: &'static Location<'static>,
    spawned_at_nanos: u64,
    pub(crate) word: RecordWord,
    /// Position in its registry shard; changed only under that shard's lock.
    pub(crate) shard_index: AtomicUsize,
    sched: AtomicU8,
    scheduled_at_nanos: AtomicU64,
    last_poll_end_nanos: AtomicU64,
    polls: AtomicU64,
    running_nanos: AtomicU64,
    total_delay_nanos: AtomicU64,
    max_delay_nanos: AtomicU64,
    value: AtomicU64,
    frames: Mutex<Vec<&'static str>>,
}

impl TaskCell {
    pub(crate) fn new(
        id: u64,
        shard: usize,
        name: Option<Arc<str>>,
        location: &'static Location<'static>,
        now_nanos: u64,
        word: u64,
    ) -> Self {
        Self {
            id,
            shard,
            name,
            location,
            spawned_at_nanos: now_nanos,
            word: RecordWord::new(word),
            shard_index: AtomicUsize::new(0),
            sched: AtomicU8::new(SCHEDULED),
            scheduled_at_nanos: AtomicU64::new(now_nanos),
            last_poll_end_nanos: AtomicU64::new(NEVER),
            polls: AtomicU64::new(0),
            running_nanos: AtomicU64::new(0),
            total_delay_nanos: AtomicU64::new(0),
            max_delay_nanos: AtomicU64::new(0),
            value: AtomicU64::new(0),
            frames: Mutex::new(Vec::new()),
        }
    }

    /// Copies the task's state; `now_nanos` is the cut's time.
    pub(crate) fn snapshot(&self, now_nanos: u64) -> TaskRecord {
        let state = match self.sched.load(Ordering::Acquire) {
            IDLE => TaskState::Idle,
            SCHEDULED => TaskState::Scheduled,
            _ => TaskState::Running,
        };
        let last = self.last_poll_end_nanos.load(Ordering::Relaxed);
        TaskRecord {
            id: self.id,
            name: self.name.clone(),
            location: self.location,
            state,
            polls: self.polls.load(Ordering::Relaxed),
            running: Duration::from_nanos(self.running_nanos.load(Ordering::Relaxed)),
            total_scheduling_delay: Duration::from_nanos(self.total_delay_nanos.load(Ordering::Relaxed)),
            max_scheduling_delay: Duration::from_nanos(self.max_delay_nanos.load(Ordering::Relaxed)),
            since_last_poll: (last != NEVER).then(|| Duration::from_nanos(now_nanos.saturating_sub(last))),
            age: Duration::from_nanos(now_nanos.saturating_sub(self.spawned_at_nanos)),
            frames: lock(&self.frames).clone(),
            value: self.value.load(Ordering::Relaxed),
        }
    }

    /// Notes a wake-up at `now_nanos` (call after the barrier).
    pub(crate) fn note_wake(&self, now_nanos: u64) {
        let mut state = self.sched.load(Ordering::Acquire);
        loop {
            let next = match state {
                IDLE => {
                    self.scheduled_at_nanos.store(now_nanos, Ordering::Relaxed);
                    SCHEDULED
                }
                RUNNING => RUNNING_WOKEN,
                _ => return,
            };
            match self.sched.compare_exchange_weak(state, next, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return,
                Err(actual) => state = actual,
            }
        }
    }

    /// Notes the start of a poll at `now_nanos` (the task's barrier has run).
    #[inline]
    pub(crate) fn begin_poll(&self, now_nanos: u64) {
        if self.sched.swap(RUNNING, Ordering::AcqRel) == SCHEDULED {
            let delay = now_nanos.saturating_sub(self.scheduled_at_nanos.load(Ordering::Relaxed));
            // Only the polling task writes these: load + store, no read-modify-write.
            let total = self.total_delay_nanos.load(Ordering::Relaxed);
            self.total_delay_nanos.store(total.saturating_add(delay), Ordering::Relaxed);
            if delay > self.max_delay_nanos.load(Ordering::Relaxed) {
                self.max_delay_nanos.store(delay, Ordering::Relaxed);
            }
        }
    }

    /// Notes the end of a poll that began at `start_nanos`.
    #[inline]
    pub(crate) fn end_poll(&self, start_nanos: u64, now_nanos: u64) {
        let polls = self.polls.load(Ordering::Relaxed);
        self.polls.store(polls + 1, Ordering::Relaxed);
        let running = self.running_nanos.load(Ordering::Relaxed);
        self.running_nanos
            .store(running.saturating_add(now_nanos.saturating_sub(start_nanos)), Ordering::Relaxed);
        self.last_poll_end_nanos.store(now_nanos, Ordering::Relaxed);
        if self.sched.compare_exchange(RUNNING, IDLE, Ordering::AcqRel, Ordering::Acquire).is_err() {
            // Woken during the poll.
            self.scheduled_at_nanos.store(now_nanos, Ordering::Relaxed);
            self.sched.store(SCHEDULED, Ordering::Release);
        }
    }

    /// Adds `delta` (wrapping) to the user value (call after the barrier).
    pub(crate) fn add_value(&self, delta: i64) {
        self.value.fetch_add(delta as u64, Ordering::Relaxed);
    }

    /// Sets the user value (call after the barrier).
    pub(crate) fn set_value(&self, value: u64) {
        self.value.store(value, Ordering::Relaxed);
    }

    /// Reads the user value.
    pub(crate) fn value(&self) -> u64 {
        self.value.load(Ordering::Relaxed)
    }

    /// Pushes a frame (call after the barrier).
    pub(crate) fn push_frame(&self, frame: &'static str) {
        lock(&self.frames).push(frame);
    }

    /// Pops the innermost frame (call after the barrier).
    pub(crate) fn pop_frame(&self) {
        lock(&self.frames).pop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The actors of the model: each is a sequence of steps over one shared word, run by the
    /// same decision functions as [`RecordWord`]. The checker explores every interleaving.
    #[derive(Clone, Debug)]
    enum Actor {
        /// Claims generation `gen`; when it wins it "writes" (one step, noting the task's
        /// mutable value) and publishes (one step); then, if `mutates`, it changes the value
        /// (the task's own poll, a peer's transfer, or a wake-up).
        Claimant { generation: u64, mutates: bool, pc: u8 },
        /// Marks the task excluded from `generation` (a task born after that cut).
        Excluder { generation: u64, pc: u8 },
    }

    #[derive(Clone, Debug, Default)]
    struct World {
        word: u64,
        value: u64,
        /// (generation, value recorded)
        records: Vec<(u64, u64)>,
    }

    /// Runs one step of actor `a`; returns false when the actor is finished or blocked.
    fn step(a: &mut Actor, w: &mut World) -> bool {
        match a {
            Actor::Claimant { generation, mutates, pc } => match *pc {
                0 => match decide_claim(w.word, *generation) {
                    ClaimStep::Done => {
                        *pc = 3;
                        true
                    }
                    ClaimStep::Wait => false,
                    ClaimStep::Try(next) => {
                        // An uncontended CAS in a sequentially consistent model always succeeds:
                        // the decision and the swap happen in this one step.
                        w.word = next;
                        *pc = 1;
                        true
                    }
                },
                1 => {
                    w.records.push((*generation, w.value));
                    *pc = 2;
                    true
                }
                2 => {
                    w.word = published(*generation);
                    *pc = 3;
                    true
                }
                3 => {
                    if *mutates {
                        w.value += 1;
                    }
                    *pc = 4;
                    true
                }
                _ => false,
            },
            Actor::Excluder { generation, pc } => match *pc {
                0 => match decide_exclude(w.word, *generation) {
                    ClaimStep::Done => {
                        *pc = 1;
                        true
                    }
                    ClaimStep::Wait => false,
                    ClaimStep::Try(next) => {
                        w.word = next;
                        *pc = 1;
                        true
                    }
                },
                _ => false,
            },
        }
    }

    fn finished(a: &Actor) -> bool {
        match a {
            Actor::Claimant { pc, .. } => *pc == 4,
            Actor::Excluder { pc, .. } => *pc == 1,
        }
    }

    /// Explores every interleaving; calls `check` on each final world. Returns the number of
    /// complete executions.
    fn explore(actors: &[Actor], w: &World, check: &dyn Fn(&World)) -> usize {
        if actors.iter().all(finished) {
            check(w);
            return 1;
        }
        let mut executions = 0;
        let mut any = false;
        for i in 0..actors.len() {
            let mut next = actors.to_vec();
            let mut world = w.clone();
            if step(&mut next[i], &mut world) {
                any = true;
                executions += explore(&next, &world, check);
            }
        }
        assert!(any, "deadlock: {actors:?} in {w:?}");
        executions
    }

    #[test]
    fn every_interleaving_records_exactly_once_with_the_state_at_the_cut() {
        // Generation 1 profile: the task's own barrier (then its poll mutates), a peer's
        // transfer (mutates), a waker (mutates) and the sweeper (does not) all race.
        let actors = vec![
            Actor::Claimant { generation: 1, mutates: true, pc: 0 },
            Actor::Claimant { generation: 1, mutates: true, pc: 0 },
            Actor::Claimant { generation: 1, mutates: true, pc: 0 },
            Actor::Claimant { generation: 1, mutates: false, pc: 0 },
        ];
        let start = World { word: published(0), value: 7, records: Vec::new() };
        let n = explore(&actors, &start, &|w| {
            assert_eq!(w.records, vec![(1, 7)], "one record, holding the value at the cut");
            assert_eq!(w.word, published(1));
            assert_eq!(w.value, 10);
        });
        assert!(n > 1000, "explored only {n} executions");
    }

    #[test]
    fn a_later_generation_is_recorded_again_and_an_excluded_task_never() {
        // Already recorded for generation 1: a second claim for 1 is a no-op, generation 2
        // records once more.
        let actors = vec![
            Actor::Claimant { generation: 1, mutates: true, pc: 0 },
            Actor::Claimant { generation: 2, mutates: false, pc: 0 },
            Actor::Claimant { generation: 2, mutates: true, pc: 0 },
        ];
        let start = World { word: published(1), value: 0, records: Vec::new() };
        explore(&actors, &start, &|w| {
            assert_eq!(w.records.len(), 1);
            assert_eq!(w.records[0].0, 2);
            assert_eq!(w.word, published(2));
        });
        // Born after generation 3's cut: excluded, then its own barrier must not record it.
        let actors = vec![Actor::Excluder { generation: 3, pc: 0 }, Actor::Excluder { generation: 3, pc: 0 }];
        let start = World { word: published(2), value: 0, records: Vec::new() };
        explore(&actors, &start, &|w| {
            assert!(w.records.is_empty());
            assert_eq!(w.word, published(3));
            assert_eq!(decide_claim(w.word, 3), ClaimStep::Done);
        });
    }

    #[test]
    fn decisions_table() {
        assert_eq!(decide_claim(published(0), 1), ClaimStep::Try(published(1) | BUSY));
        assert_eq!(decide_claim(published(1) | BUSY, 1), ClaimStep::Wait);
        assert_eq!(decide_claim(published(1), 1), ClaimStep::Done);
        assert_eq!(decide_claim(published(2), 1), ClaimStep::Done);
        assert_eq!(decide_exclude(published(0), 1), ClaimStep::Try(published(1)));
        assert_eq!(decide_exclude(published(0) | BUSY, 1), ClaimStep::Wait);
        let word = RecordWord::new(published(0));
        assert_eq!(word.claim(1), Claim::Won);
        word.publish(1);
        assert_eq!(word.claim(1), Claim::Recorded);
        word.exclude(2);
        assert_eq!(word.load(), published(2));
    }
}
