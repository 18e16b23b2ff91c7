//! Time sources: monotonic wall time, the calling thread's CPU time, and the time of day.
//!
//! Everything in this crate that depends on time reads it through a [`Clock`], so tests drive
//! time by hand with a [`ManualClock`] and never sleep to make a point.
//!
//! # Costs
//!
//! Measured on the project's 2-core VMs (see `benches/clock.rs`): [`SystemClock::now_nanos`]
//! (`CLOCK_MONOTONIC`, served by the vDSO) costs ~25–30 ns, while
//! [`SystemClock::thread_cpu_nanos`] (`CLOCK_THREAD_CPUTIME_ID`, a real system call) costs
//! ~500–700 ns. Hot paths (every poll, every `over_limit()` call) therefore read only the
//! monotonic clock, or nothing at all, and the CPU clock is read where its cost is amortised:
//! grant boundaries, periodic checks every ~1 ms of work, sampled polls.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A source of time, injected into every time-dependent part of the crate.
///
/// The monotonic and CPU readings are in nanoseconds from an arbitrary, fixed origin: only
/// differences between two readings of the same kind mean anything. The time of day,
/// [`unix_nanos`](Self::unix_nanos), counts from the Unix epoch and is only for telling the
/// time.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// Monotonic wall time in nanoseconds. Never goes backwards.
    fn now_nanos(&self) -> u64;

    /// CPU time consumed so far by the calling thread, in nanoseconds.
    ///
    /// Time during which the OS has descheduled the thread is not counted: this is true on-CPU
    /// time, unlike the "running time" of a task measured with the monotonic clock.
    fn thread_cpu_nanos(&self) -> u64;

    /// Wall-clock time of day: nanoseconds since the Unix epoch, UTC (0 before it).
    ///
    /// Unlike [`now_nanos`](Self::now_nanos) it may jump, back or forward, when the system
    /// time is set: use it to tell the time of day (outlier capture groups slow requests by
    /// minute of the hour with it), never to measure a duration. Defaults to the system's
    /// real-time clock; a test clock overrides it, as [`ManualClock`] does.
    fn unix_nanos(&self) -> u64 {
        system_unix_nanos()
    }
}

/// A shared, dynamically dispatched clock, as stored by the crate's components.
pub type SharedClock = Arc<dyn Clock>;

/// The operating system's clocks: `CLOCK_MONOTONIC` and `CLOCK_THREAD_CPUTIME_ID`.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl SystemClock {
    /// The system clock as a [`SharedClock`].
    pub fn shared() -> SharedClock {
        Arc::new(SystemClock)
    }
}

impl Clock for SystemClock {
    #[inline]
    fn now_nanos(&self) -> u64 {
        sys::monotonic_nanos()
    }

    #[inline]
    fn thread_cpu_nanos(&self) -> u64 {
        sys::thread_cpu_nanos()
    }

    fn unix_nanos(&self) -> u64 {
        system_unix_nanos()
    }
}

/// Reads the calling thread's CPU time from the operating system.
///
/// The analogue of Go's `grunning.Time()`, but true CPU time: time the OS deschedules the thread
/// is not counted. Costs a system call (~500–700 ns on the project's VMs); call it at grant
/// boundaries or every few milliseconds of work, not per iteration.
pub fn thread_cpu_time() -> Duration {
    Duration::from_nanos(sys::thread_cpu_nanos())
}

/// Reads the CPU time consumed so far by the whole process (all threads).
pub fn process_cpu_time() -> Duration {
    Duration::from_nanos(sys::process_cpu_nanos())
}

/// The CPU clock of one thread, taken on that thread and readable from any thread of the
/// process.
///
/// [`thread_cpu_time`] reads the calling thread's own clock. A `ThreadCpuClock` lets a sampler
/// tell what a pool of worker threads has used at any instant, to the nanosecond, without the
/// workers publishing counters as they go: a counter a worker bumps once per grant moves in
/// steps of a grant, so an interval shorter than a few grants shows more, or less, than was
/// used in it. A read costs a system call, as [`thread_cpu_time`] does.
///
/// Read it only while its thread lives. Once the thread has exited a read fails, or, should the
/// OS have given the thread's id to a new thread by then, reads the new one.
///
/// # Examples
///
/// ```
/// use tailguard::clock::ThreadCpuClock;
///
/// let (tx, rx) = std::sync::mpsc::channel();
/// let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
/// let worker = std::thread::spawn(move || {
///     tx.send(ThreadCpuClock::current()).unwrap();
///     let mut x = 0u64;
///     for i in 0..1_000_000u64 {
///         x = x.wrapping_mul(31).wrapping_add(i);
///     }
///     std::hint::black_box(x);
///     done_rx.recv().unwrap(); // stays alive until its clock has been read
/// });
/// if let Some(clock) = rx.recv().unwrap() {
///     // Read from this thread while the worker runs or waits.
///     let used = clock.elapsed().expect("the worker is alive");
///     assert!(used.as_nanos() > 0);
/// }
/// done_tx.send(()).unwrap();
/// worker.join().unwrap();
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ThreadCpuClock(sys::CpuClockId);

impl ThreadCpuClock {
    /// The calling thread's CPU clock; `None` where the OS offers none that another thread can
    /// read (Linux does).
    pub fn current() -> Option<Self> {
        sys::current_cpu_clock().map(ThreadCpuClock)
    }

    /// The CPU time the thread has used so far; `None` when the clock cannot be read (the
    /// thread has exited).
    pub fn elapsed(&self) -> Option<Duration> {
        sys::read_cpu_clock(self.0).map(Duration::from_nanos)
    }
}

/// A clock moved by hand, for deterministic tests.
///
/// Clones share the same time: advancing one advances all. The CPU reading is a single counter
/// shared by every thread (tests advance it to script how much CPU "the current thread" used).
/// The wall clock ([`Clock::unix_nanos`]) starts at the Unix epoch and moves with
/// [`advance`](Self::advance); [`set_unix_time`](Self::set_unix_time) sets it.
///
/// ```
/// use std::time::Duration;
/// use tailguard::clock::{Clock, ManualClock};
///
/// let clock = ManualClock::new();
/// let seen_by_component = clock.clone();
/// clock.advance(Duration::from_millis(5));
/// assert_eq!(seen_by_component.now_nanos(), 5_000_000);
/// // 2024-01-01T10:34:00Z, then a minute later.
/// clock.set_unix_time(Duration::from_secs(1_704_105_240));
/// clock.advance(Duration::from_secs(60));
/// assert_eq!(seen_by_component.unix_nanos(), 1_704_105_300_000_000_000);
/// ```
#[derive(Clone, Debug, Default)]
pub struct ManualClock {
    inner: Arc<ManualInner>,
}

#[derive(Debug, Default)]
struct ManualInner {
    now_nanos: AtomicU64,
    cpu_nanos: AtomicU64,
    /// The wall clock's reading minus `now_nanos` (wrapping: the wall clock may be set behind).
    unix_offset_nanos: AtomicU64,
}

impl ManualClock {
    /// A clock at time zero with zero CPU time used.
    pub fn new() -> Self {
        Self::default()
    }

    /// This clock as a [`SharedClock`] (sharing time with `self`).
    pub fn shared(&self) -> SharedClock {
        Arc::new(self.clone())
    }

    /// Moves wall time forward.
    pub fn advance(&self, by: Duration) {
        self.inner.now_nanos.fetch_add(duration_nanos(by), Ordering::SeqCst);
    }

    /// Moves CPU time forward (and wall time by the same amount, as a running thread would).
    pub fn run_for(&self, by: Duration) {
        self.advance(by);
        self.advance_cpu(by);
    }

    /// Moves CPU time forward without moving wall time.
    pub fn advance_cpu(&self, by: Duration) {
        self.inner.cpu_nanos.fetch_add(duration_nanos(by), Ordering::SeqCst);
    }

    /// Sets wall time.
    ///
    /// # Panics
    ///
    /// Panics if `nanos` is earlier than the current reading: monotonic time never goes back.
    pub fn set_nanos(&self, nanos: u64) {
        let previous = self.inner.now_nanos.swap(nanos, Ordering::SeqCst);
        assert!(previous <= nanos, "ManualClock moved backwards: {previous} -> {nanos}");
    }

    /// Sets the wall clock to `since_epoch` after the Unix epoch (UTC), without moving
    /// monotonic time; it then moves with [`advance`](Self::advance). Like a system clock, it
    /// may be set back.
    pub fn set_unix_time(&self, since_epoch: Duration) {
        let offset = duration_nanos(since_epoch).wrapping_sub(self.now_nanos());
        self.inner.unix_offset_nanos.store(offset, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_nanos(&self) -> u64 {
        self.inner.now_nanos.load(Ordering::SeqCst)
    }

    fn thread_cpu_nanos(&self) -> u64 {
        self.inner.cpu_nanos.load(Ordering::SeqCst)
    }

    fn unix_nanos(&self) -> u64 {
        self.inner.unix_offset_nanos.load(Ordering::SeqCst).wrapping_add(self.now_nanos())
    }
}

/// Converts a duration to nanoseconds, saturating at `u64::MAX` (~584 years).
#[inline]
pub fn duration_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// The system's real-time clock, in nanoseconds since the Unix epoch (0 before it).
fn system_unix_nanos() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, duration_nanos)
}

#[cfg(unix)]
mod sys {

    /// Reads `clock`; `None` when the OS refuses (a thread's clock after the thread exited).
    pub(super) fn read_cpu_clock(clock: libc::clockid_t) -> Option<u64> {
        let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: `ts` is a valid, writable timespec; clock_gettime writes only into it, and
        // for a clock id that names no clock (or a thread that is gone) it fails with EINVAL.
        let rc = unsafe { libc::clock_gettime(clock, &mut ts) };
        // Both fields are non-negative for these clocks.
        (rc == 0).then(|| (ts.tv_sec as u64).wrapping_mul(1_000_000_000).wrapping_add(ts.tv_nsec as u64))
    }

    fn read(clock: libc::clockid_t) -> u64 {
        read_cpu_clock(clock).unwrap_or(0)
    }

    pub(super) type CpuClockId = libc::clockid_t;

    #[cfg(target_os = "linux")]
    pub(super) fn current_cpu_clock() -> Option<CpuClockId> {
        let mut id: libc::clockid_t = 0;
        // SAFETY: pthread_self() names the calling thread, alive for the whole call, and
        // pthread_getcpuclockid writes only into `id`, a valid, writable clockid_t.
        let rc = unsafe { libc::pthread_getcpuclockid(libc::pthread_self(), &mut id) };
        (rc == 0).then_some(id)
    }

    #[cfg(not(target_os = "linux"))]
    pub(super) fn current_cpu_clock() -> Option<CpuClockId> {
        None
    }

    #[inline]
    pub(super) fn monotonic_nanos() -> u64 {
        read(libc::CLOCK_MONOTONIC)
    }

    #[inline]
    pub(super) fn thread_cpu_nanos() -> u64 {
        read(libc::CLOCK_THREAD_CPUTIME_ID)
    }

    pub(super) fn process_cpu_nanos() -> u64 {
        read(libc::CLOCK_PROCESS_CPUTIME_ID)
    }
}

#[cfg(not(unix))]
mod sys {

    use std::sync::OnceLock;
    use std::time::Instant;

    fn origin() -> Instant {
        static ORIGIN: OnceLock<Instant> = OnceLock::new();
        *ORIGIN.get_or_init(Instant::now)
    }

    pub(super) fn monotonic_nanos() -> u64 {
        super::duration_nanos(origin().elapsed())
    }

    /// No portable per-thread CPU clock: fall back to wall time, which over-counts.
    pub(super) fn thread_cpu_nanos() -> u64 {
        monotonic_nanos()
    }

    /// No thread's CPU clock can be read from another thread here.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub(super) enum CpuClockId {}

    pub(super) fn current_cpu_clock() -> Option<CpuClockId> {
        None
    }

    pub(super) fn read_cpu_clock(id: CpuClockId) -> Option<u64> {
        match id {}
    }

    pub(super) fn process_cpu_nanos() -> u64 {
        monotonic_nanos()
    }
}

/// Parses a human duration: a number followed by a unit (`ns`, `us`/`µs`, `ms`, `s`, `m`/`min`,
/// `h`), as in `500ms`, `10s`, `1.5s`, `250us` — the grammar of the CLI's flags and of the
/// `x-tailguard-deadline` header.
///
/// # Errors
///
/// A message saying what was wrong and what a valid duration looks like.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let hint = "write a number and a unit, e.g. 500ms, 10s, 2m (units: ns, us, ms, s, m, h)";
    if number.is_empty() {
        return Err(format!("`{text}` is not a duration: {hint}"));
    }
    let value: f64 = number.parse().map_err(|_| format!("`{number}` is not a number: {hint}"))?;
    let unit_secs = match unit.trim() {
        "ns" => 1e-9,
        "us" | "µs" => 1e-6,
        "ms" => 1e-3,
        "s" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        "" => return Err(format!("`{text}` has no unit: {hint}")),
        other => return Err(format!("`{other}` is not a unit: {hint}")),
    };
    Duration::try_from_secs_f64(value * unit_secs).map_err(|_| format!("`{text}` is too long: {hint}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Another thread's reading of a worker's clock lies between two of the worker's own.
    #[test]
    #[cfg(target_os = "linux")]
    fn thread_cpu_clock_reads_another_thread() {
        use std::sync::mpsc::channel;
        let (to_main, from_worker) = channel();
        let (to_worker, from_main) = channel::<()>();
        let worker = std::thread::spawn(move || {
            let clock = ThreadCpuClock::current().expect("Linux has per-thread CPU clocks");
            let mut x = 0u64;
            for i in 0..200_000u64 {
                x = x.wrapping_mul(31).wrapping_add(i);
            }
            std::hint::black_box(x);
            to_main.send((clock, thread_cpu_time())).unwrap();
            from_main.recv().unwrap();
            thread_cpu_time()
        });
        let (clock, before) = from_worker.recv().unwrap();
        let read = clock.elapsed().expect("the worker is alive");
        to_worker.send(()).unwrap();
        let after = worker.join().unwrap();
        assert!(before <= read && read <= after, "{before:?} <= {read:?} <= {after:?}");
        assert!(before > Duration::ZERO);
        assert_ne!(Some(clock), ThreadCpuClock::current(), "each thread has its own clock");
    }

    #[test]
    fn manual_clock_clones_share_time() {
        let clock = ManualClock::new();
        let other = clock.clone();
        clock.advance(Duration::from_micros(3));
        other.advance_cpu(Duration::from_micros(2));
        assert_eq!(clock.now_nanos(), 3_000);
        assert_eq!(other.now_nanos(), 3_000);
        assert_eq!(clock.thread_cpu_nanos(), 2_000);
        clock.run_for(Duration::from_nanos(10));
        assert_eq!(other.now_nanos(), 3_010);
        assert_eq!(other.thread_cpu_nanos(), 2_010);
    }

    #[test]
    fn manual_wall_clock_moves_with_time_and_can_be_set_back() {
        let clock = ManualClock::new();
        assert_eq!(clock.unix_nanos(), 0, "starts at the epoch");
        clock.advance(Duration::from_secs(5));
        assert_eq!(clock.unix_nanos(), 5_000_000_000);
        let other = clock.clone();
        other.set_unix_time(Duration::from_secs(1_000));
        clock.advance(Duration::from_secs(1));
        assert_eq!(clock.unix_nanos(), 1_001_000_000_000);
        clock.set_unix_time(Duration::from_secs(2));
        assert_eq!(other.unix_nanos(), 2_000_000_000);
        assert_eq!(clock.now_nanos(), 6_000_000_000, "monotonic time stays");
    }

    #[test]
    fn system_wall_clock_reads_the_time_of_day() {
        // After 2020-01-01 and before 2200: a real-time clock, not a monotonic one.
        let secs = SystemClock.unix_nanos() / 1_000_000_000;
        assert!((1_577_836_800..7_258_118_400).contains(&secs), "{secs}");
    }

    #[test]
    #[should_panic(expected = "moved backwards")]
    fn manual_clock_refuses_to_go_back() {
        let clock = ManualClock::new();
        clock.set_nanos(10);
        clock.set_nanos(5);
    }

    #[test]
    fn system_clock_is_monotonic_and_counts_cpu() {
        let clock = SystemClock;
        let t0 = clock.now_nanos();
        let c0 = clock.thread_cpu_nanos();
        // Burn a little CPU so the thread clock must move.
        let mut x = 0u64;
        for i in 0..2_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        assert!(clock.now_nanos() >= t0);
        assert!(clock.thread_cpu_nanos() > c0);
        assert!(process_cpu_time() >= thread_cpu_time());
    }
}

#[cfg(test)]
mod duration_tests {
    use super::*;

    #[test]
    fn parses_common_forms() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("250us"), Ok(Duration::from_micros(250)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
    }

    #[test]
    fn refuses_bad_input_with_a_hint() {
        for bad in ["", "10", "s", "ten s", "10 parsecs", "1.2.3s", "1e300h"] {
            let err = parse_duration(bad).unwrap_err();
            assert!(err.contains("e.g. 500ms"), "{bad}: {err}");
        }
    }
}
