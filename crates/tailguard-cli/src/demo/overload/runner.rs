//! One mode of the overload scenario on its schedule: the dispatcher, the request tasks, the
//! queue's sampler, and the readings at the window's two ends.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use tailguard::admission::{Deadline, Permit, Request, WorkQueue, WorkQueueConfig, WorkQueueSnapshot};
use tailguard::clock::{Clock, SystemClock, duration_nanos, process_cpu_time};
use tailguard::histogram::Histogram;

use super::{DRAIN, LATE, QueueMode, SIGNAL_SAMPLE, SLOT_SAMPLE};
use crate::demo::bench::Bench;
use crate::demo::progress::Progress;
use crate::error::CliError;
use crate::report::{OverloadClass, OverloadMode, QueueStats, TenantShare, fmt_ms};
use crate::workload::arrivals::{Class, OverloadSchedule};
use crate::workload::dispatch::Dispatcher;
use crate::workload::generator::Arrival;
use crate::workload::service::Service;

/// One class's counters over a mode's window. Monotonically increasing, never reset.
#[derive(Debug, Default)]
pub(super) struct ClassCounters {
    offered: AtomicU64,
    completed: AtomicU64,
    rejected: AtomicU64,
    busy_nanos: AtomicU64,
    /// Dispatched and not yet finished (a gauge, counted over the whole mode).
    in_flight: AtomicU64,
    latency: Histogram,
}

/// What the dispatcher and the request tasks of one mode share.
pub(super) struct Shared {
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
pub(super) struct Boundary {
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
pub(super) struct QueueSamples {
    slots_sum: u64,
    slots_count: u64,
    max_slots: u32,
    runnable_sum: f64,
    runnable_count: u64,
}

/// The run's settings that shape each mode.
pub(super) struct Setup<'a> {
    pub(super) bench: &'a Bench,
    pub(super) schedule: &'a OverloadSchedule,
    pub(super) warmup: Duration,
    pub(super) duration: Duration,
    pub(super) max_wait: Duration,
    pub(super) threshold: f64,
    pub(super) interval: Duration,
    pub(super) quiet: bool,
}

/// Runs one mode on `setup`'s schedule; `shown` is `(index, modes)` for progress output.
/// `None` when Ctrl-C came before the window began.
pub(super) fn measure(
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
                cores: bench.cores,
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
pub(super) struct Dispatched {
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
    // As the generator's: clients on other machines do not wait behind the service's threads.
    let (_priority, slack) = Dispatcher::enter(setup.bench.dispatch_priority);
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
            std::thread::sleep(Duration::from_nanos(at - now).min(Duration::from_millis(10)) + slack);
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
    let machine_nanos = secs * 1e9 * setup.bench.cores;
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
