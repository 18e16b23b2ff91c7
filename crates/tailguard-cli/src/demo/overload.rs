//! `tailguard demo --scenario overload`: foreground offered above capacity, without and with
//! the admission work queue ([`tailguard::admission`]).
//!
//! Three seeded Poisson streams, merged by time, offer the key-value service more than it can
//! serve: heartbeats (tenant 0, [`Priority::HIGH`], 1 % of capacity) and two tenants at normal
//! priority, A (tenant 1, weight 2) and B (tenant 2, weight 1), each offered half of
//! `--overload` times the calibrated capacity (65 % each by default). The same schedule runs
//! once per mode:
//!
//! - `no-queue`: each arrival spawns a task that calls the service at once. The runtime's
//!   queues grow without bound and every class waits in them alike.
//! - `queue`: each arrival is [submitted](WorkQueue::submit) to a [`WorkQueue`] and becomes a
//!   task only once admitted, at most `--max-wait` after its scheduled arrival; past that it is
//!   refused (counted as rejected, never as completed). A worker that finishes a request thus
//!   starts the next one, in the queue's order, on its own run queue. The slots follow the
//!   runnable tasks per worker: tokio's global queue plus the admitted requests
//!   ([`WorkQueueConfig::count_admitted`]), sampled every 1 ms. Tenants are weighted 2:1, and
//!   the permit is charged with the time the request's hops ran.
//!
//! Each mode runs `--warmup` and then its measured window of `--duration` on one continuous
//! schedule, so the backlog the warm-up builds is part of the overload. Every figure covers
//! events inside the window: arrivals scheduled in it (offered), completions and refusals that
//! happen in it, the latencies of those completions from their *scheduled* arrival (no
//! coordinated omission), and the requests left in flight when it ends (backlog). After the
//! window, dispatching stops, requests not yet started are dropped, and the mode waits (at most
//! [`DRAIN`]) for those in flight, so that modes never overlap.

use std::iter::Peekable;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use tailguard::admission::{
    Deadline, Permit, Priority, Request, TenantId, WorkQueue, WorkQueueConfig, WorkQueueSnapshot,
};
use tailguard::clock::{Clock, SystemClock, duration_nanos, process_cpu_time};
use tailguard::histogram::Histogram;

use super::progress::Progress;
use super::{Bench, DemoArgs};
use crate::CliError;
use crate::report::{self, OverloadClass, OverloadMode, QueueStats, TenantShare, fmt_ms, fmt_pct};
use crate::workload::generator::{Arrival, Arrivals, GeneratorConfig, RateSchedule, ScheduleError};
use crate::workload::service::Service;

/// Offered load of the two tenants together, as a multiple of capacity (65 % each).
pub const DEFAULT_TENANT_LOAD: f64 = 1.3;
/// Offered load of the heartbeats, as a fraction of capacity.
pub const HEARTBEAT_LOAD: f64 = 0.01;
/// The queue's overload threshold when `--admission-threshold` is not given: 32 runnable tasks
/// per worker, the library's default (CockroachDB's 32 goroutines per CPU). The scenario's
/// signal counts the admitted requests as runnable ([`WorkQueueConfig::count_admitted`]), so
/// the slot count settles just above the threshold times the workers over two (the adjuster
/// adds slots up to half the threshold and takes none away below it): 34 slots on 2 workers. On the 2-core VM, thresholds 16, 32 and 64 (18, 34 and 66 slots) all kept
/// throughput within a few percent of no queue; heartbeat p99 was ~3, ~4 and ~7 ms.
pub const DEFAULT_THRESHOLD: f64 = 32.0;
/// Bytes hashed per hop when `--hop-bytes` is not given: 16 KiB, ~90 µs of CPU per request on
/// the 2-core VM. Under overload every arrival queues: with the other scenarios' 4 KiB hops
/// (~25 µs per request, ~100 000 arrivals per second) the queue cost 11 % of the throughput in
/// one run, with 16 KiB a few percent.
pub const DEFAULT_HOP_BYTES: usize = 16 << 10;
/// Measured window per mode when `--duration` is not given.
pub const DEFAULT_DURATION: Duration = Duration::from_secs(10);
/// A capacity trial whose completions fall below this fraction of its offered rate found the
/// service saturated.
const SATURATED: f64 = 0.95;
/// Factor by which each capacity trial offers more than the previous one.
const TRIAL_STEP: f64 = 1.5;
/// Most capacity trials.
const TRIAL_ROUNDS: u64 = 3;
/// Unmeasured start of the capacity trial, long enough to build a backlog.
const TRIAL_WARMUP: Duration = Duration::from_millis(500);
/// Measured part of the capacity trial.
const TRIAL_WINDOW: Duration = Duration::from_secs(1);
/// Longest wait for the requests in flight after a mode's window.
pub const DRAIN: Duration = Duration::from_secs(5);
/// A request dispatched later than this after its scheduled arrival is a late start.
const LATE: Duration = Duration::from_millis(1);
/// How often the sampler reads the queue's slot count.
const SLOT_SAMPLE: Duration = Duration::from_millis(10);
/// How often the sampler reads the queue's run-queue signal (a snapshot takes its lock).
const SIGNAL_SAMPLE: Duration = Duration::from_millis(100);

/// A class of requests: who sends it and how the queue treats it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Class {
    /// Liveness traffic: tenant 0, high priority, a small constant rate.
    Heartbeat,
    /// Tenant 1, weight 2.
    TenantA,
    /// Tenant 2, weight 1.
    TenantB,
}

impl Class {
    /// Every class, in the order reports list them.
    pub const ALL: [Class; 3] = [Class::Heartbeat, Class::TenantA, Class::TenantB];

    /// The name reports use.
    pub fn name(self) -> &'static str {
        match self {
            Class::Heartbeat => "heartbeat",
            Class::TenantA => "tenant-a",
            Class::TenantB => "tenant-b",
        }
    }

    /// The class's tenant in the queue.
    pub fn tenant(self) -> TenantId {
        TenantId(self.index() as u64)
    }

    /// The class's priority within its tenant.
    pub fn priority(self) -> Priority {
        match self {
            Class::Heartbeat => Priority::HIGH,
            Class::TenantA | Class::TenantB => Priority::NORMAL,
        }
    }

    /// The tenant's weight in the queue's order.
    pub fn weight(self) -> NonZeroU32 {
        match self {
            Class::TenantA => NonZeroU32::MIN.saturating_add(1),
            Class::Heartbeat | Class::TenantB => NonZeroU32::MIN,
        }
    }

    /// Offered load as a fraction of capacity, when the two tenants together offer
    /// `tenant_load` times capacity.
    pub fn load(self, tenant_load: f64) -> f64 {
        match self {
            Class::Heartbeat => HEARTBEAT_LOAD,
            Class::TenantA | Class::TenantB => tenant_load / 2.0,
        }
    }

    fn index(self) -> usize {
        self as usize
    }

    /// The seed of this class's stream: distinct per class, fixed by the run's seed.
    fn seed(self, seed: u64) -> u64 {
        seed ^ (0x6f76_6572_6c6f_6164_u64.wrapping_mul(self.index() as u64 + 1))
    }
}

/// The merged request schedule of the three classes. The same schedule gives the same
/// arrivals.
#[derive(Clone, Debug, PartialEq)]
pub struct OverloadSchedule {
    streams: Vec<(Class, GeneratorConfig)>,
    rates: [f64; 3],
}

impl OverloadSchedule {
    /// Poisson streams over `length` at `rates[class]` per second (in [`Class::ALL`] order),
    /// keys drawn from `0..keys`, each class seeded from `seed`.
    ///
    /// # Errors
    ///
    /// [`ScheduleError::BadRate`] for a negative or non-finite rate.
    pub fn new(rates: [f64; 3], length: Duration, seed: u64, keys: u64) -> Result<Self, ScheduleError> {
        let streams = Class::ALL
            .into_iter()
            .map(|class| {
                let schedule = RateSchedule::constant(rates[class.index()])?;
                Ok((class, GeneratorConfig::new(schedule, length, class.seed(seed), keys)))
            })
            .collect::<Result<_, ScheduleError>>()?;
        Ok(OverloadSchedule { streams, rates })
    }

    /// The schedule of the overload scenario: capacity `capacity_rps` at full load, the two
    /// tenants offering `tenant_load` times it together, heartbeats [`HEARTBEAT_LOAD`].
    ///
    /// # Errors
    ///
    /// [`ScheduleError::BadRate`] for a negative or non-finite rate.
    pub fn for_load(
        capacity_rps: f64,
        tenant_load: f64,
        length: Duration,
        seed: u64,
        keys: u64,
    ) -> Result<Self, ScheduleError> {
        let rates = Class::ALL.map(|class| class.load(tenant_load) * capacity_rps);
        Self::new(rates, length, seed, keys)
    }

    /// The arrival rate of `class`, per second.
    pub fn rate(&self, class: Class) -> f64 {
        self.rates[class.index()]
    }

    /// Every arrival of every class, in order of time (ties in [`Class::ALL`] order).
    pub fn arrivals(&self) -> MergedArrivals {
        MergedArrivals {
            streams: self
                .streams
                .iter()
                .map(|(class, config)| (*class, config.arrivals().peekable()))
                .collect(),
        }
    }
}

/// Iterator over the merged arrivals of an [`OverloadSchedule`].
#[derive(Debug)]
pub struct MergedArrivals {
    streams: Vec<(Class, Peekable<Arrivals>)>,
}

impl Iterator for MergedArrivals {
    type Item = (Class, Arrival);

    fn next(&mut self) -> Option<(Class, Arrival)> {
        let mut earliest: Option<(usize, u64)> = None;
        for (i, (_, stream)) in self.streams.iter_mut().enumerate() {
            if let Some(arrival) = stream.peek() {
                if earliest.is_none_or(|(_, at)| arrival.offset_nanos < at) {
                    earliest = Some((i, arrival.offset_nanos));
                }
            }
        }
        let (i, _) = earliest?;
        let (class, stream) = &mut self.streams[i];
        stream.next().map(|arrival| (*class, arrival))
    }
}

/// How the foreground meets the overload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueueMode {
    /// Every arrival calls the service at once.
    NoQueue,
    /// Every arrival waits for a slot of the work queue first.
    Queue,
}

impl QueueMode {
    /// Both modes, in the order they run.
    pub const ALL: [QueueMode; 2] = [QueueMode::NoQueue, QueueMode::Queue];

    /// The name reports use.
    pub fn name(self) -> &'static str {
        match self {
            QueueMode::NoQueue => "no-queue",
            QueueMode::Queue => "queue",
        }
    }
}

/// One class's counters over a mode's window. Monotonically increasing, never reset.
#[derive(Debug, Default)]
struct ClassCounters {
    offered: AtomicU64,
    completed: AtomicU64,
    rejected: AtomicU64,
    busy_nanos: AtomicU64,
    /// Dispatched and not yet finished (a gauge, counted over the whole mode).
    in_flight: AtomicU64,
    latency: Histogram,
}

/// What the dispatcher and the request tasks of one mode share.
struct Shared {
    service: Arc<Service>,
    queue: Option<WorkQueue>,
    clock: SystemClock,
    start_nanos: u64,
    window_start_nanos: u64,
    /// End of the window from the mode's start; brought forward by Ctrl-C.
    window_end_nanos: AtomicU64,
    max_wait_nanos: u64,
    /// Set after the window: requests not yet started are dropped.
    stopped: AtomicBool,
    classes: [ClassCounters; 3],
}

impl Shared {
    /// Nanoseconds since the mode's start.
    fn now(&self) -> u64 {
        self.clock.now_nanos().saturating_sub(self.start_nanos)
    }

    fn in_window(&self, at: u64) -> bool {
        at >= self.window_start_nanos && at < self.window_end_nanos.load(Relaxed)
    }

    fn in_flight(&self) -> u64 {
        self.classes.iter().map(|c| c.in_flight.load(Relaxed)).sum()
    }

    /// Dispatches one arrival: no queue, a task that calls the service at once; with the queue,
    /// a submitted job that becomes such a task only once admitted (or counts the refusal).
    fn dispatch(self: &Arc<Self>, runtime: &tokio::runtime::Handle, class: Class, arrival: Arrival) {
        let Some(queue) = &self.queue else {
            runtime.spawn(Arc::clone(self).request(class, arrival, None));
            return;
        };
        // The deadline counts from the scheduled arrival, like the latency.
        let deadline = self.start_nanos + arrival.offset_nanos + self.max_wait_nanos;
        let request = Request::new()
            .tenant(class.tenant())
            .priority(class.priority())
            .deadline(Deadline::at_nanos(deadline));
        let (shared, runtime) = (Arc::clone(self), runtime.clone());
        queue.submit(&request, move |admitted| match admitted {
            // On the thread that freed the slot: a worker spawns onto its own run queue.
            Ok(permit) => {
                runtime.spawn(shared.request(class, arrival, Some(permit)));
            }
            Err(_) => {
                let counters = &shared.classes[class.index()];
                if shared.in_window(shared.now()) {
                    counters.rejected.fetch_add(1, Relaxed);
                }
                counters.in_flight.fetch_sub(1, Relaxed);
            }
        });
    }

    /// One request, from its task: the service call (admitted already in queue mode), the
    /// accounting.
    async fn request(self: Arc<Self>, class: Class, arrival: Arrival, mut permit: Option<Permit>) {
        let counters = &self.classes[class.index()];
        if self.stopped.load(Relaxed) {
            counters.in_flight.fetch_sub(1, Relaxed);
            return;
        }
        let result = self.service.call(arrival.op).await;
        let done = self.now();
        if let Ok(response) = result {
            if let Some(permit) = permit.as_mut() {
                // The hops ran on other tasks: charge the tenant the time they ran.
                permit.charge_cpu(response.busy);
            }
            drop(permit);
            if self.in_window(done) {
                counters.latency.record(done.saturating_sub(arrival.offset_nanos));
                counters.completed.fetch_add(1, Relaxed);
                counters.busy_nanos.fetch_add(duration_nanos(response.busy), Relaxed);
            }
        }
        counters.in_flight.fetch_sub(1, Relaxed);
    }
}

/// Readings taken at a window boundary.
struct Boundary {
    process_cpu: Duration,
    queue: Option<WorkQueueSnapshot>,
}

impl Boundary {
    fn read(shared: &Shared) -> Boundary {
        Boundary { process_cpu: process_cpu_time(), queue: shared.queue.as_ref().map(WorkQueue::snapshot) }
    }
}

/// What the sampler thread saw of the queue over the window.
#[derive(Debug, Default)]
struct QueueSamples {
    slots_sum: u64,
    slots_count: u64,
    max_slots: u32,
    runnable_sum: f64,
    runnable_count: u64,
}

/// The run's settings that shape each mode.
struct Setup<'a> {
    bench: &'a Bench,
    schedule: &'a OverloadSchedule,
    warmup: Duration,
    duration: Duration,
    max_wait: Duration,
    threshold: f64,
    interval: Duration,
    quiet: bool,
}

/// Checks the scenario's own flags.
///
/// # Errors
///
/// The first flag out of range, named.
pub(super) fn validate(args: &DemoArgs) -> Result<(), CliError> {
    if !(args.overload > 0.0 && args.overload <= 10.0) {
        return Err(format!(
            "--overload {} is out of range: give the tenants' load as a multiple of capacity in (0, 10]",
            args.overload
        )
        .into());
    }
    if !(Duration::from_millis(1)..=Duration::from_secs(60)).contains(&args.max_wait) {
        return Err("--max-wait must be within 1ms ..= 60s".into());
    }
    if !(args.admission_threshold.is_finite() && args.admission_threshold > 0.0) {
        return Err(format!(
            "--admission-threshold {} is invalid: give a positive number of runnable tasks per CPU",
            args.admission_threshold
        )
        .into());
    }
    Ok(())
}

/// The note of a run cut short by Ctrl-C.
pub(super) fn interrupted_note(overload: &report::Overload) -> String {
    let ran = match overload.modes.iter().find(|m| m.cut_short) {
        Some(mode) => format!("{} was cut short (its figures cover the window it ran)", mode.name),
        None => "no mode was cut short".to_owned(),
    };
    format!(
        "interrupted by Ctrl-C: {ran}, {} of {} modes did not run",
        QueueMode::ALL.len() - overload.modes.len(),
        QueueMode::ALL.len()
    )
}

/// Runs both modes of the overload scenario.
///
/// # Errors
///
/// An invalid schedule or queue setting, or a failure to start the sampler thread.
pub(super) fn run(
    bench: &Bench,
    args: &DemoArgs,
    duration: Duration,
    progress: &Progress,
) -> Result<report::Overload, CliError> {
    progress.note("measuring the capacity of the saturated service…");
    let capacity = measure_capacity(bench, args, progress)?;
    let schedule =
        OverloadSchedule::for_load(capacity, args.overload, args.warmup + duration, args.seed, args.keys)?;
    progress.note(&format!(
        "capacity {capacity:.0} req/s saturated ({:.0} calibrated at 40 % load); offered: heartbeats {:.0}/s, \
         tenant A {:.0}/s, tenant B {:.0}/s",
        bench.rate_at_full_load,
        schedule.rate(Class::Heartbeat),
        schedule.rate(Class::TenantA),
        schedule.rate(Class::TenantB),
    ));
    let setup = Setup {
        bench,
        schedule: &schedule,
        warmup: args.warmup,
        duration,
        max_wait: args.max_wait,
        threshold: args.admission_threshold,
        interval: args.interval,
        quiet: args.quiet,
    };
    let mut overload = report::Overload {
        tenant_load: args.overload,
        heartbeat_load: HEARTBEAT_LOAD,
        capacity_rps: capacity,
        calibrated_rps: bench.rate_at_full_load,
        hop_bytes: bench.service.work().hash_bytes_per_hop,
        request_cpu_us: bench.cores as f64 / capacity.max(1e-9) * 1e6,
        max_wait_ms: args.max_wait.as_secs_f64() * 1e3,
        admission_threshold: args.admission_threshold,
        modes: Vec::new(),
    };
    for (index, mode) in QueueMode::ALL.into_iter().enumerate() {
        if bench.cancelled.load(Relaxed) {
            break;
        }
        if let Some(result) = run_mode(&setup, mode, index, progress)? {
            progress.finish(index, mode.name(), &summary_line(&result));
            overload.modes.push(result);
        }
    }
    Ok(overload)
}

/// Runs one mode; `None` when Ctrl-C came before its window began.
fn run_mode(
    setup: &Setup<'_>,
    mode: QueueMode,
    index: usize,
    progress: &Progress,
) -> Result<Option<OverloadMode>, CliError> {
    let started = match mode {
        QueueMode::NoQueue => "every request calls the service at once".to_owned(),
        QueueMode::Queue => format!(
            "requests wait for a queue slot, at most {} ms",
            fmt_ms(setup.max_wait.as_secs_f64() * 1e3)
        ),
    };
    progress.start(index, mode.name(), &started);
    measure(setup, mode, Some((index, progress.total())))
}

/// Measures the service's capacity: requests of every class completed per second with no
/// queue while a backlog exists.
///
/// The calibration's per-request cost is taken at 40 % load, where workers park and wake
/// between requests (a saturated runtime never parks and serves about a fifth more on the
/// 2-core VM), and it assumes the process gets every core (on a shared machine it may get half).
/// So the trial starts at the calibrated rate and, while the service keeps up (completes more
/// than [`SATURATED`] of what is offered), offers [`TRIAL_STEP`] times more, at most
/// [`TRIAL_ROUNDS`] times; the last round's completion rate is the capacity. Offering far more
/// than the capacity would understate it: the dispatcher's own CPU grows with the offered rate.
/// Falls back to the calibrated capacity if Ctrl-C cuts a trial short.
fn measure_capacity(bench: &Bench, args: &DemoArgs, progress: &Progress) -> Result<f64, CliError> {
    let calibrated = bench.rate_at_full_load;
    let mut offered_load = 1.0;
    let mut capacity = calibrated;
    for round in 0..TRIAL_ROUNDS {
        let schedule = OverloadSchedule::for_load(
            calibrated,
            offered_load - HEARTBEAT_LOAD,
            TRIAL_WARMUP + TRIAL_WINDOW,
            (!args.seed).wrapping_add(round),
            args.keys,
        )?;
        let setup = Setup {
            bench,
            schedule: &schedule,
            warmup: TRIAL_WARMUP,
            duration: TRIAL_WINDOW,
            max_wait: args.max_wait,
            threshold: args.admission_threshold,
            interval: args.interval,
            quiet: true,
        };
        let Some(trial) = measure(&setup, QueueMode::NoQueue, None)? else { break };
        if trial.cut_short || trial.throughput_rps <= 0.0 {
            break;
        }
        capacity = trial.throughput_rps;
        let offered: f64 = trial.classes.iter().map(|c| c.offered_rps).sum();
        progress.note(&format!("  offered {offered:.0} req/s: completed {capacity:.0} req/s"));
        if capacity < SATURATED * offered {
            break;
        }
        offered_load *= TRIAL_STEP;
    }
    Ok(capacity)
}

/// Runs one mode on `setup`'s schedule; `shown` is `(index, modes)` for progress output.
/// `None` when Ctrl-C came before the window began.
fn measure(
    setup: &Setup<'_>,
    mode: QueueMode,
    shown: Option<(usize, usize)>,
) -> Result<Option<OverloadMode>, CliError> {
    let bench = setup.bench;
    let queue = match mode {
        QueueMode::NoQueue => None,
        QueueMode::Queue => {
            // Waiting requests are submitted jobs, not tasks, and each admitted one has one
            // runnable task at a time (its current hop, all CPU), in a worker-local queue that
            // stable tokio metrics cannot read: the signal counts the admitted requests.
            let config = WorkQueueConfig {
                overload_threshold: setup.threshold,
                cores: bench.cores as f64,
                count_admitted: true,
                ..WorkQueueConfig::default()
            };
            let queue = WorkQueue::start_with_runtime(config, bench.runtime.handle())
                .map_err(|e| format!("admission settings: {e}"))?;
            for class in Class::ALL {
                queue.set_tenant_weight(class.tenant(), class.weight());
            }
            Some(queue)
        }
    };
    let warmup_nanos = duration_nanos(setup.warmup);
    let clock = SystemClock;
    let shared = Arc::new(Shared {
        service: Arc::clone(&bench.service),
        queue,
        clock,
        start_nanos: clock.now_nanos(),
        window_start_nanos: warmup_nanos,
        window_end_nanos: AtomicU64::new(warmup_nanos + duration_nanos(setup.duration)),
        max_wait_nanos: duration_nanos(setup.max_wait),
        stopped: AtomicBool::new(false),
        classes: Default::default(),
    });
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = spawn_sampler(setup, &shared, &sampling, mode, shown)?;

    let dispatched = dispatch(setup, &shared);
    let window_nanos = dispatched.window_end_nanos.saturating_sub(shared.window_start_nanos);
    let backlog: Vec<u64> = shared.classes.iter().map(|c| c.in_flight.load(Relaxed)).collect();
    shared.stopped.store(true, Relaxed);
    sampling.store(false, Relaxed);
    let samples = sampler.join().map_err(|_| "the overload sampler thread panicked")?;
    // Drain: requests not yet started return at once; the rest finish or meet their deadline.
    let drain_until = Instant::now() + DRAIN;
    while shared.in_flight() > 0 && Instant::now() < drain_until {
        std::thread::sleep(Duration::from_millis(1));
    }
    let (Some(first), Some(last)) = (dispatched.first, dispatched.last) else {
        return Ok(None);
    };
    let window = Duration::from_nanos(window_nanos);
    let mut result = assemble(setup, mode, &shared, &first, &last, window, &backlog, &samples);
    result.cut_short = dispatched.cut_short;
    result.late_starts = dispatched.late_starts;
    result.max_start_lag_ms = dispatched.max_lag_nanos as f64 / 1e6;
    result.left_in_flight = shared.in_flight();
    Ok(Some(result))
}

/// How the dispatcher went.
struct Dispatched {
    /// Readings at the window's start and end; `None` when Ctrl-C came before it began.
    first: Option<Boundary>,
    last: Option<Boundary>,
    window_end_nanos: u64,
    cut_short: bool,
    late_starts: u64,
    max_lag_nanos: u64,
}

/// Dispatches the schedule open-loop on the calling thread, each arrival a task on the
/// service's runtime, and takes the readings at the window's start and end.
fn dispatch(setup: &Setup<'_>, shared: &Arc<Shared>) -> Dispatched {
    let cancelled = || setup.bench.cancelled.load(Relaxed);
    let late_nanos = duration_nanos(LATE);
    let planned_end = shared.window_end_nanos.load(Relaxed);
    let mut out = Dispatched {
        first: None,
        last: None,
        window_end_nanos: planned_end,
        cut_short: false,
        late_starts: 0,
        max_lag_nanos: 0,
    };
    let sleep_until = |at: u64| {
        // In short steps, so that Ctrl-C is seen within 10 ms even in a quiet stretch.
        loop {
            let now = shared.now();
            if now >= at || cancelled() {
                return;
            }
            std::thread::sleep(Duration::from_nanos(at - now).min(Duration::from_millis(10)));
        }
    };
    for (class, arrival) in setup.schedule.arrivals() {
        if arrival.offset_nanos >= planned_end {
            break;
        }
        if out.first.is_none() && arrival.offset_nanos >= shared.window_start_nanos {
            sleep_until(shared.window_start_nanos);
            if cancelled() {
                break;
            }
            out.first = Some(Boundary::read(shared));
        }
        sleep_until(arrival.offset_nanos);
        if cancelled() {
            break;
        }
        let lag = shared.now().saturating_sub(arrival.offset_nanos);
        let counters = &shared.classes[class.index()];
        if arrival.offset_nanos >= shared.window_start_nanos {
            out.max_lag_nanos = out.max_lag_nanos.max(lag);
            if lag > late_nanos {
                out.late_starts += 1;
            }
            counters.offered.fetch_add(1, Relaxed);
        }
        counters.in_flight.fetch_add(1, Relaxed);
        shared.dispatch(setup.bench.runtime.handle(), class, arrival);
    }
    if out.first.is_none() {
        sleep_until(shared.window_start_nanos);
        if !cancelled() {
            out.first = Some(Boundary::read(shared));
        }
    }
    sleep_until(planned_end);
    if cancelled() {
        out.cut_short = true;
        out.window_end_nanos = shared.now().clamp(shared.window_start_nanos, planned_end);
        shared.window_end_nanos.store(out.window_end_nanos, Relaxed);
    }
    if out.first.is_some() {
        out.last = Some(Boundary::read(shared));
    }
    out
}

/// Starts the thread that samples the queue's slots and signal over the window and prints
/// progress once per interval.
fn spawn_sampler(
    setup: &Setup<'_>,
    shared: &Arc<Shared>,
    sampling: &Arc<AtomicBool>,
    mode: QueueMode,
    shown: Option<(usize, usize)>,
) -> Result<std::thread::JoinHandle<QueueSamples>, CliError> {
    let (shared, sampling) = (Arc::clone(shared), Arc::clone(sampling));
    let (interval, duration) = (setup.interval, setup.duration);
    let (index, total_modes) = shown.unwrap_or((0, 0));
    let quiet = setup.quiet || shown.is_none();
    let handle = std::thread::Builder::new().name("overload-sampler".into()).spawn(move || {
        let progress = Progress::new(total_modes, quiet);
        let mut samples = QueueSamples::default();
        let (mut next_signal, mut next_progress) = (0u64, 0u64);
        let mut last_completed = 0u64;
        while sampling.load(Relaxed) {
            std::thread::sleep(SLOT_SAMPLE);
            let now = shared.now();
            let measuring = shared.in_window(now);
            if let (Some(queue), true) = (&shared.queue, measuring) {
                let slots = queue.slots();
                samples.slots_sum += u64::from(slots);
                samples.slots_count += 1;
                samples.max_slots = samples.max_slots.max(slots);
                if now >= next_signal {
                    next_signal = now + duration_nanos(SIGNAL_SAMPLE);
                    if let Some(runnable) = queue.snapshot().runnable_per_cpu {
                        samples.runnable_sum += runnable;
                        samples.runnable_count += 1;
                    }
                }
            }
            if now < next_progress {
                continue;
            }
            next_progress = now + duration_nanos(interval);
            if !measuring {
                progress.update(index, mode.name(), Duration::ZERO, duration, "warming up");
                continue;
            }
            let completed: u64 = shared.classes.iter().map(|c| c.completed.load(Relaxed)).sum();
            let rate = (completed - last_completed) as f64 / interval.as_secs_f64();
            last_completed = completed;
            let heartbeat = shared.classes[Class::Heartbeat.index()].latency.snapshot().p99();
            let mut detail = format!(
                "{rate:.0} req/s  heartbeat p99 {} ms",
                heartbeat.map_or_else(|| "-".to_owned(), |d| fmt_ms(d.as_secs_f64() * 1e3))
            );
            if let Some(queue) = &shared.queue {
                detail.push_str(&format!("  slots {}  in use {}", queue.slots(), queue.used()));
            }
            let elapsed = Duration::from_nanos(now - shared.window_start_nanos);
            progress.update(index, mode.name(), elapsed, duration, &detail);
        }
        samples
    })?;
    Ok(handle)
}

#[allow(clippy::too_many_arguments)] // one call site; the pieces of one mode's result
fn assemble(
    setup: &Setup<'_>,
    mode: QueueMode,
    shared: &Shared,
    first: &Boundary,
    last: &Boundary,
    window: Duration,
    backlog: &[u64],
    samples: &QueueSamples,
) -> OverloadMode {
    let secs = window.as_secs_f64().max(1e-9);
    let machine_nanos = secs * 1e9 * setup.bench.cores as f64;
    let ms = |d: Option<Duration>| d.map(|d| d.as_secs_f64() * 1e3);
    let classes: Vec<OverloadClass> = Class::ALL
        .into_iter()
        .map(|class| {
            let counters = &shared.classes[class.index()];
            let latency = counters.latency.snapshot();
            let (offered, completed) = (counters.offered.load(Relaxed), counters.completed.load(Relaxed));
            OverloadClass {
                name: class.name().to_owned(),
                tenant: class.tenant().0,
                priority: class.priority().level(),
                offered,
                offered_rps: offered as f64 / secs,
                completed,
                throughput_rps: completed as f64 / secs,
                rejected: counters.rejected.load(Relaxed),
                backlog: backlog[class.index()],
                p50_ms: ms(latency.p50()),
                p99_ms: ms(latency.p99()),
                max_ms: ms(latency.max()),
                cpu_share: counters.busy_nanos.load(Relaxed) as f64 / machine_nanos,
            }
        })
        .collect();
    let weighted = [Class::TenantA, Class::TenantB];
    let total_weight: u32 = weighted.iter().map(|c| c.weight().get()).sum();
    let tenants_cpu: f64 = weighted.iter().map(|c| classes[c.index()].cpu_share).sum();
    let tenants = weighted
        .into_iter()
        .map(|class| {
            let cpu_share = classes[class.index()].cpu_share;
            TenantShare {
                name: class.name().trim_start_matches("tenant-").to_owned(),
                tenant: class.tenant().0,
                weight: class.weight().get(),
                weight_share: f64::from(class.weight().get()) / f64::from(total_weight),
                cpu_share,
                tenants_cpu_fraction: if tenants_cpu > 0.0 { cpu_share / tenants_cpu } else { 0.0 },
            }
        })
        .collect();
    let queue = match (&first.queue, &last.queue) {
        (Some(a), Some(b)) => Some(QueueStats {
            final_slots: b.slots,
            mean_slots: if samples.slots_count > 0 {
                samples.slots_sum as f64 / samples.slots_count as f64
            } else {
                f64::from(b.slots)
            },
            max_slots: samples.max_slots.max(b.slots),
            mean_runnable_per_cpu: (samples.runnable_count > 0)
                .then(|| samples.runnable_sum / samples.runnable_count as f64),
            admitted: b.total_admitted - a.total_admitted,
            admitted_after_queueing: b.total_admitted_after_queueing - a.total_admitted_after_queueing,
            rejected_deadline: b.total_rejected.deadline_exceeded - a.total_rejected.deadline_exceeded,
            slot_increases: b.total_slot_increases - a.total_slot_increases,
            slot_decreases: b.total_slot_decreases - a.total_slot_decreases,
            wait_p99_ms: ms(b.wait_time.since(&a.wait_time).p99()),
        }),
        _ => None,
    };
    let completed: u64 = classes.iter().map(|c| c.completed).sum();
    let process_cpu = last.process_cpu.saturating_sub(first.process_cpu).as_secs_f64();
    OverloadMode {
        name: mode.name().to_owned(),
        window_secs: window.as_secs_f64(),
        cut_short: false,
        throughput_rps: completed as f64 / secs,
        cpu_share: classes.iter().map(|c| c.cpu_share).sum(),
        process_cpu_share: process_cpu * 1e9 / machine_nanos,
        requests_per_cpu_second: if process_cpu > 0.0 { completed as f64 / process_cpu } else { 0.0 },
        late_starts: 0,
        max_start_lag_ms: 0.0,
        left_in_flight: 0,
        classes,
        tenants,
        queue,
    }
}

fn summary_line(mode: &OverloadMode) -> String {
    let heartbeat = mode.class(Class::Heartbeat.name()).and_then(|c| c.p99_ms);
    format!(
        "{:.0} req/s, heartbeat p99 {} ms, A:B CPU {}",
        mode.throughput_rps,
        heartbeat.map_or_else(|| "-".to_owned(), fmt_ms),
        mode.tenant_cpu_ratio().map_or_else(|| "-".to_owned(), |r| format!("{r:.2}:1"))
    )
}

/// The first tenant's over the second's completions that weighted max-min fairness gives when
/// the two together complete `capacity` requests per second, offering `offered` with `weights`:
/// a tenant offering less than its weighted share gets what it offers, and the other the rest.
pub fn weighted_fair_ratio(capacity: f64, offered: [f64; 2], weights: [f64; 2]) -> Option<f64> {
    let share_a = capacity * weights[0] / (weights[0] + weights[1]);
    let share_b = capacity - share_a;
    let (a, b) = if offered[0] <= share_a {
        (offered[0], (capacity - offered[0]).min(offered[1]))
    } else if offered[1] <= share_b {
        ((capacity - offered[1]).min(offered[0]), offered[1])
    } else {
        (share_a, share_b)
    };
    (b > 0.0).then(|| a / b)
}

/// Reads the overload run against the goals: heartbeat p99 with and without the queue,
/// the A:B CPU ratio against the weights, and the change in total throughput.
pub fn assess(overload: &report::Overload) -> Vec<String> {
    let mut notes = Vec::new();
    for mode in &overload.modes {
        let offered: u64 = mode.classes.iter().map(|c| c.offered).sum();
        if offered > 0 && mode.late_starts * 100 > offered {
            notes.push(format!(
                "{}: the dispatcher started {} of {} requests late (up to {:.1} ms); their latency still counts from the schedule",
                mode.name, mode.late_starts, offered, mode.max_start_lag_ms
            ));
        }
        if mode.left_in_flight > 0 {
            notes.push(format!(
                "{}: {} requests were still in flight {} s after the window (they overlapped the next mode)",
                mode.name,
                mode.left_in_flight,
                DRAIN.as_secs()
            ));
        }
    }
    let (Some(plain), Some(queued)) = (overload.mode("no-queue"), overload.mode("queue")) else {
        return notes;
    };
    let heartbeat = |mode: &OverloadMode| mode.class(Class::Heartbeat.name()).and_then(|c| c.p99_ms);
    if let (Some(without), Some(with)) = (heartbeat(plain), heartbeat(queued)) {
        notes.push(format!(
            "overload: heartbeat p99 {} ms with the queue vs {} ms without ({})",
            fmt_ms(with),
            fmt_ms(without),
            if with < without {
                format!("{:.1}x lower", without / with)
            } else {
                format!("NOT lower: {:.2}x", with / without)
            }
        ));
    }
    let ratio =
        |mode: &OverloadMode| mode.tenant_cpu_ratio().map_or_else(|| "-".to_owned(), |r| format!("{r:.2}:1"));
    let weights = [Class::TenantA.weight().get(), Class::TenantB.weight().get()];
    let rate = |mode: &OverloadMode, class: Class, pick: fn(&OverloadClass) -> f64| {
        mode.class(class.name()).map_or(0.0, pick)
    };
    let capacity = rate(queued, Class::TenantA, |c| c.throughput_rps)
        + rate(queued, Class::TenantB, |c| c.throughput_rps);
    let offered =
        [rate(queued, Class::TenantA, |c| c.offered_rps), rate(queued, Class::TenantB, |c| c.offered_rps)];
    let fair = weighted_fair_ratio(capacity, offered, weights.map(f64::from))
        .map_or_else(|| "-".to_owned(), |r| format!("{r:.2}:1"));
    notes.push(format!(
        "overload: tenant A:B CPU {} with the queue (weights {}:{}; weighted max-min fair for these offered rates: {fair}), {} without",
        ratio(queued),
        weights[0],
        weights[1],
        ratio(plain)
    ));
    let signed = |change: f64| format!("{}{}", if change >= 0.0 { "+" } else { "" }, fmt_pct(change));
    if plain.throughput_rps > 0.0 && plain.requests_per_cpu_second > 0.0 {
        notes.push(format!(
            "overload: total throughput {:.0} req/s with the queue vs {:.0} without ({}; goal: no more than a few percent lower); \
             per CPU-second of the process {:.0} vs {:.0} requests ({})",
            queued.throughput_rps,
            plain.throughput_rps,
            signed(queued.throughput_rps / plain.throughput_rps - 1.0),
            queued.requests_per_cpu_second,
            plain.requests_per_cpu_second,
            signed(queued.requests_per_cpu_second / plain.requests_per_cpu_second - 1.0),
        ));
    }
    notes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(seed: u64) -> OverloadSchedule {
        OverloadSchedule::new([500.0, 20_000.0, 10_000.0], Duration::from_secs(2), seed, 1_000).unwrap()
    }

    #[test]
    fn merged_schedule_is_ordered_and_deterministic() {
        let a: Vec<(Class, Arrival)> = schedule(7).arrivals().collect();
        let b: Vec<(Class, Arrival)> = schedule(7).arrivals().collect();
        assert_eq!(a, b, "the same seed gives the same schedule");
        let c: Vec<(Class, Arrival)> = schedule(8).arrivals().collect();
        assert_ne!(a, c, "another seed gives another schedule");
        assert!(a.windows(2).all(|w| w[0].1.offset_nanos <= w[1].1.offset_nanos), "merged by time");
        assert!(a.iter().all(|(_, arrival)| arrival.offset_nanos < 2_000_000_000));
        // The merge keeps each stream whole: every class's arrivals are its own stream's.
        for class in Class::ALL {
            let mine: Vec<&Arrival> =
                a.iter().filter(|(c, _)| *c == class).map(|(_, arrival)| arrival).collect();
            let alone: Vec<Arrival> = schedule(7).streams[class.index()].1.arrivals().collect();
            assert_eq!(mine, alone.iter().collect::<Vec<_>>(), "{class:?}");
        }
    }

    #[test]
    fn class_rates_are_within_statistical_bounds() {
        let length = 2.0_f64;
        let rates = [500.0_f64, 20_000.0, 10_000.0];
        let mut counts = [0u64; 3];
        for (class, _) in schedule(42).arrivals() {
            counts[class.index()] += 1;
        }
        for class in Class::ALL {
            // Poisson: mean and variance rate × length; five standard deviations either way.
            let mean = rates[class.index()] * length;
            let bound = 5.0 * mean.sqrt();
            let count = counts[class.index()] as f64;
            assert!((count - mean).abs() < bound, "{class:?}: {count} arrivals, expected {mean} ± {bound}");
        }
    }

    #[test]
    fn scenario_rates_follow_the_load() {
        let schedule = OverloadSchedule::for_load(10_000.0, 1.3, Duration::from_secs(1), 1, 10).unwrap();
        assert!((schedule.rate(Class::Heartbeat) - 100.0).abs() < 1e-9);
        assert!((schedule.rate(Class::TenantA) - 6_500.0).abs() < 1e-9);
        assert!((schedule.rate(Class::TenantB) - 6_500.0).abs() < 1e-9);
        assert!(OverloadSchedule::for_load(f64::NAN, 1.3, Duration::from_secs(1), 1, 10).is_err());
    }

    #[test]
    fn classes_map_to_tenants_priorities_and_weights() {
        let tenants: Vec<u64> = Class::ALL.iter().map(|c| c.tenant().0).collect();
        assert_eq!(tenants, [0, 1, 2]);
        assert!(Class::Heartbeat.priority() > Class::TenantA.priority());
        assert_eq!(Class::TenantA.priority(), Class::TenantB.priority());
        assert_eq!((Class::TenantA.weight().get(), Class::TenantB.weight().get()), (2, 1));
    }

    #[test]
    fn weighted_max_min_fairness() {
        // Both offer more than their share: the weights decide.
        assert_eq!(weighted_fair_ratio(90.0, [100.0, 100.0], [2.0, 1.0]), Some(2.0));
        // A offers less than its share: it gets what it offers, B the rest.
        assert_eq!(weighted_fair_ratio(100.0, [60.0, 100.0], [2.0, 1.0]), Some(1.5));
        // B offers less than its share: A gets the rest.
        assert_eq!(weighted_fair_ratio(100.0, [100.0, 20.0], [2.0, 1.0]), Some(4.0));
        assert_eq!(weighted_fair_ratio(100.0, [100.0, 0.0], [2.0, 1.0]), None);
    }

    #[test]
    fn assessment_compares_heartbeats_tenants_and_throughput() {
        let overload = crate::report::tests::sample_overload();
        let notes = assess(&overload);
        assert!(
            notes.iter().any(
                |n| n.contains("heartbeat p99 0.400 ms with the queue vs 800 ms without (2000.0x lower)")
            ),
            "{notes:?}"
        );
        assert!(
            notes.iter().any(|n| n.contains("A:B CPU 2.00:1 with the queue") && n.contains("1.00:1 without")),
            "{notes:?}"
        );
        assert!(notes.iter().any(|n| n.contains("(-2.0%;")), "{notes:?}");
        assert!(
            notes.iter().any(|n| n.contains("per CPU-second of the process 5052 vs 5155 requests")),
            "{notes:?}"
        );
    }
}
