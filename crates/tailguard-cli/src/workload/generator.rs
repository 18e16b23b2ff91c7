//! The open-loop generator: a seeded Poisson schedule over a piecewise-constant rate,
//! latency measured from each request's *scheduled* arrival, and rate calibration.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tailguard::clock::{SharedClock, SystemClock, duration_nanos, process_cpu_time};
use tailguard::elastic::ThreadPriority;
use tailguard::histogram::{Histogram, HistogramSnapshot, Quantiles};

use super::dispatch::Dispatcher;
use super::keyspace::Key;
use super::service::{Op, Service};

/// A schedule that cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ScheduleError {
    /// No phase.
    #[error("a rate schedule needs at least one phase")]
    Empty,
    /// A phase weight is not a positive finite number.
    #[error("phase {index} has length weight {weight}; use a positive finite number")]
    BadWeight {
        /// Phase index.
        index: usize,
        /// The weight given.
        weight: f64,
    },
    /// A phase rate is negative or not finite.
    #[error("phase {index} has rate {rate}/s; use a finite rate >= 0")]
    BadRate {
        /// Phase index.
        index: usize,
        /// The rate given.
        rate: f64,
    },
}

/// A piecewise-constant arrival rate over the run: phases with relative lengths, scaled to the
/// run's duration. `[(1.0, 1000.0)]` is a constant 1000/s; `[(1,a),(1,b),(1,a)]` is `a`, `b`, `a`
/// in thirds of the run.
#[derive(Clone, Debug, PartialEq)]
pub struct RateSchedule {
    /// `(length weight, rate per second)` per phase, in order.
    phases: Vec<(f64, f64)>,
}

impl RateSchedule {
    /// A constant rate for the whole run.
    ///
    /// # Errors
    /// [`ScheduleError::BadRate`] if the rate is negative or not finite.
    pub fn constant(rate_per_sec: f64) -> Result<Self, ScheduleError> {
        Self::piecewise(vec![(1.0, rate_per_sec)])
    }

    /// Phases of relative lengths `weight` at `rate_per_sec`.
    ///
    /// # Errors
    /// [`ScheduleError`] for an empty list, a non-positive weight or a negative rate.
    pub fn piecewise(phases: Vec<(f64, f64)>) -> Result<Self, ScheduleError> {
        if phases.is_empty() {
            return Err(ScheduleError::Empty);
        }
        for (index, &(weight, rate)) in phases.iter().enumerate() {
            if !(weight.is_finite() && weight > 0.0) {
                return Err(ScheduleError::BadWeight { index, weight });
            }
            if !(rate.is_finite() && rate >= 0.0) {
                return Err(ScheduleError::BadRate { index, rate });
            }
        }
        Ok(Self { phases })
    }

    /// Equal-length phases at the given machine loads, each turned into a rate by
    /// `rate_at_full_load` (e.g. [`Calibration::rate_for_load`] with load 1.0):
    /// `from_loads(&[0.2, 0.6, 0.2], r)` is 20 % → 60 % → 20 % in thirds of the run.
    ///
    /// # Errors
    /// As [`piecewise`](Self::piecewise).
    pub fn from_loads(loads: &[f64], rate_at_full_load: f64) -> Result<Self, ScheduleError> {
        Self::piecewise(loads.iter().map(|load| (1.0, load * rate_at_full_load)).collect())
    }

    /// The phases as `(start, end, rate per second)` in nanoseconds from the run's start.
    pub fn segments(&self, run: Duration) -> Vec<(u64, u64, f64)> {
        let total_weight: f64 = self.phases.iter().map(|p| p.0).sum();
        let run_nanos = duration_nanos(run);
        let mut acc = 0.0;
        let mut out = Vec::with_capacity(self.phases.len());
        for (i, &(weight, rate)) in self.phases.iter().enumerate() {
            let start = (acc / total_weight * run_nanos as f64) as u64;
            acc += weight;
            let end = if i + 1 == self.phases.len() {
                run_nanos
            } else {
                (acc / total_weight * run_nanos as f64) as u64
            };
            out.push((start, end, rate));
        }
        out
    }

    /// Mean scheduled rate over `[from, to)` of a run of length `run`, per second.
    pub fn mean_rate(&self, run: Duration, from: Duration, to: Duration) -> f64 {
        let (from, to) = (duration_nanos(from), duration_nanos(to));
        if to <= from {
            return 0.0;
        }
        let arrivals: f64 = self
            .segments(run)
            .iter()
            .map(|&(s, e, rate)| rate * e.min(to).saturating_sub(s.max(from)) as f64)
            .sum();
        arrivals / (to - from) as f64
    }
}

/// The default foreground load: the fraction of the machine's cores that requests keep busy.
pub const DEFAULT_LOAD: f64 = 0.4;

/// One scheduled request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Arrival {
    /// Scheduled time, in nanoseconds from the run's start.
    pub offset_nanos: u64,
    /// The request.
    pub op: Op,
}

/// Everything that fixes the request schedule; the same config gives the same arrivals.
#[derive(Clone, Debug, PartialEq)]
pub struct GeneratorConfig {
    /// The arrival rate over the run.
    pub schedule: RateSchedule,
    /// Length of the run.
    pub duration: Duration,
    /// Seed of the arrival times and request mix.
    pub seed: u64,
    /// Keys are drawn uniformly from `Key(0)..Key(keys)`.
    pub keys: u64,
    /// Fraction of requests that are puts, in `[0, 1]`.
    pub put_fraction: f64,
    /// Length of one interval of the time series.
    pub interval: Duration,
    /// A request dispatched later than this after its scheduled time counts as a late start.
    pub late_threshold: Duration,
    /// The priority the dispatching thread runs at while it dispatches (its own is put back
    /// after); `None`: as it is. At `Realtime` the dispatch never waits for a CPU behind the
    /// service's own threads, as clients on other machines would not.
    pub dispatch_priority: Option<ThreadPriority>,
}

impl GeneratorConfig {
    /// A config with the defaults: 10 % puts, 1 s intervals, late after 1 ms.
    pub fn new(schedule: RateSchedule, duration: Duration, seed: u64, keys: u64) -> Self {
        Self {
            schedule,
            duration,
            seed,
            keys,
            put_fraction: 0.1,
            interval: Duration::from_secs(1),
            late_threshold: Duration::from_millis(1),
            dispatch_priority: None,
        }
    }

    /// The arrival schedule, in order.
    pub fn arrivals(&self) -> Arrivals {
        Arrivals {
            rng: ChaCha8Rng::seed_from_u64(self.seed),
            segments: self.schedule.segments(self.duration),
            segment: 0,
            now_nanos: 0,
            keys: self.keys.max(1),
            put_fraction: self.put_fraction,
        }
    }
}

/// Iterator over a run's arrivals: exponential gaps at each phase's rate (restarted at a phase
/// boundary, which is exact for a Poisson process because it is memoryless).
#[derive(Debug, Clone)]
pub struct Arrivals {
    rng: ChaCha8Rng,
    segments: Vec<(u64, u64, f64)>,
    segment: usize,
    now_nanos: u64,
    keys: u64,
    put_fraction: f64,
}

impl Iterator for Arrivals {
    type Item = Arrival;

    fn next(&mut self) -> Option<Arrival> {
        loop {
            let &(start, end, rate) = self.segments.get(self.segment)?;
            self.now_nanos = self.now_nanos.max(start);
            if rate > 0.0 {
                let uniform: f64 = self.rng.random();
                let gap_nanos = -(1.0 - uniform).ln() / rate * 1e9;
                let at = self.now_nanos as f64 + gap_nanos;
                if at < end as f64 {
                    self.now_nanos = at as u64;
                    let key = Key(self.rng.random_range(0..self.keys));
                    let put = self.rng.random::<f64>() < self.put_fraction;
                    let op = if put { Op::Put(key) } else { Op::Get(key) };
                    return Some(Arrival { offset_nanos: self.now_nanos, op });
                }
            }
            self.now_nanos = end;
            self.segment += 1;
        }
    }
}

/// The three consecutive parts of a request's latency, recorded apart.
#[derive(Debug, Default)]
struct PartHistograms {
    lag: Histogram,
    queue: Histogram,
    served: Histogram,
}

impl PartHistograms {
    fn record(&self, [lag, queue, served]: [u64; 3]) {
        self.lag.record(lag);
        self.queue.record(queue);
        self.served.record(served);
    }

    fn p99s(&self) -> LatencyParts {
        LatencyParts {
            lag: self.lag.snapshot().p99(),
            queue: self.queue.snapshot().p99(),
            served: self.served.snapshot().p99(),
        }
    }
}

/// The p99 of each part of the completed requests' latency. Each is its own part's p99: they
/// do not add up to the latency's p99, but each is at most that (a part of every request is at
/// most its whole latency).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LatencyParts {
    /// From the scheduled arrival to the dispatch: the generator's own lag behind its schedule
    /// (its thread waking from its sleep, competing for a CPU).
    pub lag: Option<Duration>,
    /// From the dispatch to the request task's first poll: its wait for a worker of the runtime.
    pub queue: Option<Duration>,
    /// From the first poll to the response: the service's own latency.
    pub served: Option<Duration>,
}

/// Counters and histograms of one interval, filled while the run goes on.
#[derive(Debug, Default)]
struct IntervalSlot {
    latency: Histogram,
    parts: PartHistograms,
    offered: AtomicU64,
    completed: AtomicU64,
    late_starts: AtomicU64,
}

/// Latency recording shared by the dispatcher and the request tasks.
#[derive(Debug)]
struct Recorder {
    clock: SharedClock,
    start_nanos: u64,
    interval_nanos: u64,
    total: Histogram,
    parts: PartHistograms,
    slots: Vec<IntervalSlot>,
    failed: AtomicU64,
    in_flight: AtomicU64,
}

impl Recorder {
    fn slot(&self, offset_nanos: u64) -> &IntervalSlot {
        let i = (offset_nanos / self.interval_nanos) as usize;
        &self.slots[i.min(self.slots.len() - 1)]
    }
}

/// One interval of the time series.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct IntervalReport {
    /// Start, from the run's start.
    pub start: Duration,
    /// Length.
    pub length: Duration,
    /// The schedule's mean offered rate over the interval, per second.
    pub offered_rate_per_sec: f64,
    /// Requests scheduled in the interval.
    pub offered: u64,
    /// Requests completed in the interval.
    pub completed: u64,
    /// Completions per second.
    pub throughput_per_sec: f64,
    /// Requests dispatched more than the late threshold after their scheduled time.
    pub late_starts: u64,
    /// Latency (completion − scheduled arrival) of the requests completed in the interval.
    pub latency: Quantiles,
    /// The p99 of each part of their latency.
    pub parts: LatencyParts,
}

/// The result of a run.
#[derive(Clone, Debug)]
pub struct GeneratorReport {
    /// Latency of every completed request, from its scheduled arrival.
    pub latency: HistogramSnapshot,
    /// Requests scheduled (and dispatched).
    pub offered: u64,
    /// Requests completed.
    pub completed: u64,
    /// Requests that failed (runtime shutdown).
    pub failed: u64,
    /// Requests dispatched later than the late threshold: the generator fell behind.
    pub late_starts: u64,
    /// Largest dispatch lag behind the schedule.
    pub max_start_lag: Duration,
    /// Whether the run was cut short by the cancel hook.
    pub cancelled: bool,
    /// Wall time from the start to the last completion.
    pub elapsed: Duration,
    /// The time series.
    pub intervals: Vec<IntervalReport>,
    /// The p99 of each part of every completed request's latency.
    pub parts: LatencyParts,
}

/// Runs the open-loop generator on the calling (blocking) thread: dispatches each arrival at
/// its scheduled time as a client task on the service's runtime, records each latency from the
/// scheduled time, then waits up to `drain` for the requests still in flight.
/// `cancelled()` is checked before each dispatch.
pub fn run(
    service: &Arc<Service>,
    config: &GeneratorConfig,
    drain: Duration,
    cancelled: &dyn Fn() -> bool,
) -> GeneratorReport {
    run_with_clock(service, config, drain, cancelled, SystemClock::shared())
}

/// [`run`] timed by `clock` (waits use real sleeps; the clock stamps arrivals and completions).
pub fn run_with_clock(
    service: &Arc<Service>,
    config: &GeneratorConfig,
    drain: Duration,
    cancelled: &dyn Fn() -> bool,
    clock: SharedClock,
) -> GeneratorReport {
    let interval_nanos = duration_nanos(config.interval).max(1);
    let slots = duration_nanos(config.duration).div_ceil(interval_nanos).max(1) as usize;
    let recorder = Arc::new(Recorder {
        start_nanos: clock.now_nanos(),
        clock: Arc::clone(&clock),
        interval_nanos,
        total: Histogram::new(),
        parts: PartHistograms::default(),
        slots: (0..slots).map(|_| IntervalSlot::default()).collect(),
        failed: AtomicU64::new(0),
        in_flight: AtomicU64::new(0),
    });
    let late_nanos = duration_nanos(config.late_threshold);
    // Refused, the run goes on at the thread's own priority: callers that must know ask first
    // (`GeneratorPriority::granted`).
    let (_priority, slack) = Dispatcher::enter(config.dispatch_priority);
    let (mut offered, mut late_starts, mut max_lag_nanos, mut was_cancelled) = (0u64, 0u64, 0u64, false);
    for arrival in config.arrivals() {
        if cancelled() {
            was_cancelled = true;
            break;
        }
        let now = clock.now_nanos().saturating_sub(recorder.start_nanos);
        if arrival.offset_nanos > now {
            std::thread::sleep(Duration::from_nanos(arrival.offset_nanos - now) + slack);
        }
        let lag = clock.now_nanos().saturating_sub(recorder.start_nanos).saturating_sub(arrival.offset_nanos);
        max_lag_nanos = max_lag_nanos.max(lag);
        let slot = recorder.slot(arrival.offset_nanos);
        slot.offered.fetch_add(1, Relaxed);
        if lag > late_nanos {
            late_starts += 1;
            slot.late_starts.fetch_add(1, Relaxed);
        }
        offered += 1;
        recorder.in_flight.fetch_add(1, Relaxed);
        let (service2, recorder2) = (Arc::clone(service), Arc::clone(&recorder));
        let dispatched = clock.now_nanos();
        service.spawn_request(async move {
            let first_poll = recorder2.clock.now_nanos();
            let result = service2.call(arrival.op).await;
            let done_at = recorder2.clock.now_nanos();
            let done = done_at.saturating_sub(recorder2.start_nanos);
            match result {
                Ok(_) => {
                    let latency = done.saturating_sub(arrival.offset_nanos);
                    let parts =
                        [lag, first_poll.saturating_sub(dispatched), done_at.saturating_sub(first_poll)];
                    recorder2.total.record(latency);
                    recorder2.parts.record(parts);
                    let slot = recorder2.slot(done);
                    slot.latency.record(latency);
                    slot.parts.record(parts);
                    slot.completed.fetch_add(1, Relaxed);
                }
                Err(_) => {
                    recorder2.failed.fetch_add(1, Relaxed);
                }
            }
            recorder2.in_flight.fetch_sub(1, Relaxed);
        });
    }
    let drain_until = clock.now_nanos().saturating_add(duration_nanos(drain));
    while recorder.in_flight.load(Relaxed) > 0 && clock.now_nanos() < drain_until {
        std::thread::sleep(Duration::from_millis(1));
    }
    let elapsed = Duration::from_nanos(clock.now_nanos().saturating_sub(recorder.start_nanos));
    let intervals = recorder
        .slots
        .iter()
        .enumerate()
        .map(|(i, slot)| {
            let start = Duration::from_nanos(i as u64 * interval_nanos);
            let end = (start + config.interval).min(config.duration.max(config.interval));
            let length = end.saturating_sub(start);
            let completed = slot.completed.load(Relaxed);
            IntervalReport {
                start,
                length,
                offered_rate_per_sec: config.schedule.mean_rate(config.duration, start, end),
                offered: slot.offered.load(Relaxed),
                completed,
                throughput_per_sec: if length.is_zero() {
                    0.0
                } else {
                    completed as f64 / length.as_secs_f64()
                },
                late_starts: slot.late_starts.load(Relaxed),
                latency: slot.latency.snapshot().summary(),
                parts: slot.parts.p99s(),
            }
        })
        .collect();
    let latency = recorder.total.snapshot();
    GeneratorReport {
        completed: latency.count(),
        latency,
        offered,
        failed: recorder.failed.load(Relaxed),
        late_starts,
        max_start_lag: Duration::from_nanos(max_lag_nanos),
        cancelled: was_cancelled,
        elapsed,
        intervals,
        parts: recorder.parts.p99s(),
    }
}

/// The measured CPU cost of one request, and the rates it implies.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Calibration {
    /// Process CPU time per request, runtime overhead included.
    pub cpu_per_request: Duration,
    /// Cores of the machine.
    pub cores: f64,
    /// Requests measured.
    pub requests: u64,
}

impl Calibration {
    /// The arrival rate (per second) that keeps `load × cores` busy with requests.
    pub fn rate_for_load(&self, load: f64) -> f64 {
        let cpu_secs = self.cpu_per_request.as_secs_f64();
        if cpu_secs > 0.0 { load * self.cores / cpu_secs } else { 0.0 }
    }
}

/// Measures the CPU cost of a request: runs `requests` requests through the service in a
/// closed loop, `concurrency` at a time, and divides the process CPU time spent by the count.
/// Call it from a thread outside the runtime, before any other work starts (the process CPU
/// clock counts every thread).
pub fn calibrate(service: &Arc<Service>, requests: u64, concurrency: usize, keys: u64) -> Calibration {
    let concurrency = concurrency.max(1) as u64;
    let requests = requests.max(concurrency);
    let cpu_before = process_cpu_time();
    service.handle().block_on(async {
        let mut workers = Vec::new();
        for w in 0..concurrency {
            let service = Arc::clone(service);
            workers.push(tokio::spawn(async move {
                let mut rng = ChaCha8Rng::seed_from_u64(w);
                for _ in 0..requests / concurrency {
                    let _ = service.call(Op::Get(Key(rng.random_range(0..keys.max(1))))).await;
                }
            }));
        }
        for worker in workers {
            let _ = worker.await;
        }
    });
    let measured = requests / concurrency * concurrency;
    let cpu = process_cpu_time().saturating_sub(cpu_before);
    Calibration {
        cpu_per_request: Duration::from_nanos(duration_nanos(cpu) / measured.max(1)),
        cores: tailguard::budget::detected_cores(),
        requests: measured,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::keyspace::KeyspaceConfig;
    use crate::workload::service::WorkConfig;
    use crate::workload::store::Store;

    fn config(schedule: RateSchedule, secs: u64, seed: u64) -> GeneratorConfig {
        GeneratorConfig::new(schedule, Duration::from_secs(secs), seed, 1_000)
    }

    #[test]
    fn same_seed_same_schedule_other_seed_differs() {
        let schedule = RateSchedule::constant(5_000.0).unwrap();
        let a: Vec<Arrival> = config(schedule.clone(), 2, 9).arrivals().collect();
        let b: Vec<Arrival> = config(schedule.clone(), 2, 9).arrivals().collect();
        let c: Vec<Arrival> = config(schedule, 2, 10).arrivals().collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(a.windows(2).all(|w| w[0].offset_nanos <= w[1].offset_nanos));
        // Poisson count: mean 10_000, sd 100.
        assert!((9_500..10_500).contains(&a.len()), "{}", a.len());
        let puts = a.iter().filter(|x| matches!(x.op, Op::Put(_))).count();
        assert!((700..1_300).contains(&puts), "{puts} puts, expected ~10 %");
    }

    #[test]
    fn piecewise_schedule_follows_its_phases() {
        let schedule = RateSchedule::from_loads(&[0.2, 0.6, 0.0, 0.2], 10_000.0).unwrap();
        let cfg = config(schedule.clone(), 4, 1);
        let mut per_second = [0u32; 4];
        for arrival in cfg.arrivals() {
            per_second[(arrival.offset_nanos / 1_000_000_000) as usize] += 1;
        }
        let expected = [2_000.0, 6_000.0, 0.0, 2_000.0];
        for (got, want) in per_second.iter().zip(expected) {
            assert!((f64::from(*got) - want).abs() <= 4.0 * want.sqrt() + 1.0, "{per_second:?}");
        }
        let run = Duration::from_secs(4);
        let mean = |a, b| schedule.mean_rate(run, Duration::from_millis(a), Duration::from_millis(b));
        assert!((mean(0, 1_000) - 2_000.0).abs() < 1e-6);
        assert!((mean(500, 1_500) - 4_000.0).abs() < 1e-6);
        assert!((mean(0, 4_000) - 2_500.0).abs() < 1e-6);
    }

    #[test]
    fn bad_schedules_are_refused_with_what_to_change() {
        assert_eq!(RateSchedule::piecewise(vec![]), Err(ScheduleError::Empty));
        assert!(matches!(RateSchedule::constant(-1.0), Err(ScheduleError::BadRate { index: 0, .. })));
        let err = RateSchedule::piecewise(vec![(1.0, 1.0), (0.0, 1.0)]).unwrap_err();
        assert!(err.to_string().contains("positive finite"), "{err}");
        assert!(RateSchedule::constant(f64::NAN).is_err());
    }

    /// A clock whose first reading is 0 and every later one 10 s: the dispatcher sees every
    /// arrival as 10 s late, without sleeping.
    #[derive(Debug, Default)]
    struct JumpClock(AtomicU64);

    impl tailguard::clock::Clock for JumpClock {
        fn now_nanos(&self) -> u64 {
            if self.0.swap(1, Relaxed) == 0 { 0 } else { 10_000_000_000 }
        }
        fn thread_cpu_nanos(&self) -> u64 {
            0
        }
    }

    #[test]
    fn a_generator_that_falls_behind_counts_late_starts_and_charges_the_lag_to_latency() {
        let runtime =
            tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let keyspace = KeyspaceConfig { keys: 100, mean_value_bytes: 16, seed: 2 };
        let store = Arc::new(Store::populate(&keyspace, 1));
        let service =
            Service::new(runtime.handle().clone(), store, keyspace, WorkConfig { hash_bytes_per_hop: 16 });
        let cfg = GeneratorConfig::new(RateSchedule::constant(50.0).unwrap(), Duration::from_secs(2), 5, 100);
        let first = cfg.arrivals().next().unwrap().offset_nanos;
        let report = run_with_clock(
            &service,
            &cfg,
            Duration::from_secs(10),
            &|| false,
            Arc::new(JumpClock::default()),
        );
        assert!(report.offered > 50);
        assert_eq!(report.late_starts, report.offered);
        assert_eq!(report.max_start_lag, Duration::from_nanos(10_000_000_000 - first));
        assert_eq!(report.latency.max().map(|d| d >= Duration::from_secs(8)), Some(true));
        // The clock stood still after the jump: the whole latency was the generator's lag.
        assert!(report.parts.lag.is_some_and(|d| d >= Duration::from_secs(8)), "{:?}", report.parts);
        assert_eq!((report.parts.queue, report.parts.served), (Some(Duration::ZERO), Some(Duration::ZERO)));
        assert_eq!(
            report.intervals[1].completed, report.completed,
            "completions at 10 s land in the last interval"
        );
        assert_eq!(report.intervals.iter().map(|i| i.late_starts).sum::<u64>(), report.offered);
    }

    #[test]
    fn calibration_turns_cpu_cost_into_rate() {
        let cal = Calibration { cpu_per_request: Duration::from_micros(50), cores: 4.0, requests: 1 };
        assert!((cal.rate_for_load(0.4) - 32_000.0).abs() < 1e-6);
        let zero = Calibration { cpu_per_request: Duration::ZERO, ..cal };
        assert_eq!(zero.rate_for_load(0.4), 0.0);
    }

    #[test]
    fn a_short_run_completes_every_request_and_reports_intervals() {
        let runtime =
            tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let keyspace = KeyspaceConfig { keys: 1_000, mean_value_bytes: 64, seed: 2 };
        let store = Arc::new(Store::populate(&keyspace, 4));
        let work = WorkConfig { hash_bytes_per_hop: 256 };
        let service = Service::new(runtime.handle().clone(), store, keyspace, work);
        let schedule = RateSchedule::piecewise(vec![(1.0, 400.0), (1.0, 1_200.0)]).unwrap();
        let mut cfg = GeneratorConfig::new(schedule, Duration::from_millis(400), 3, 1_000);
        cfg.interval = Duration::from_millis(100);
        // Dispatched at SCHED_FIFO where the OS grants it; the thread is itself again after.
        cfg.dispatch_priority = Some(ThreadPriority::Realtime(1));
        let expected = cfg.arrivals().count() as u64;
        let before = tailguard::elastic::current_thread_priority().unwrap();
        let report = run(&service, &cfg, Duration::from_secs(10), &|| false);
        assert_eq!(tailguard::elastic::current_thread_priority().unwrap(), before);
        assert_eq!(report.offered, expected);
        assert_eq!(report.completed + report.failed, expected);
        assert_eq!(report.intervals.len(), 4);
        let rates: Vec<f64> = report.intervals.iter().map(|i| i.offered_rate_per_sec).collect();
        assert_eq!(rates, vec![400.0, 400.0, 1_200.0, 1_200.0]);
        assert_eq!(report.intervals.iter().map(|i| i.offered).sum::<u64>(), expected);
        assert!(report.latency.p99().is_some());
        // Each part of every request is at most its whole latency, and so is each part's p99.
        for (parts, p99) in std::iter::once((report.parts, report.latency.p99()))
            .chain(report.intervals.iter().map(|i| (i.parts, i.latency.p99)))
        {
            for part in [parts.lag, parts.queue, parts.served] {
                assert!(part.is_some() && part <= p99, "{parts:?} against p99 {p99:?}");
            }
        }
        let cal = calibrate(&service, 200, 4, 1_000);
        assert_eq!(cal.requests, 200);
        assert!(cal.cpu_per_request > Duration::ZERO && cal.rate_for_load(0.4) > 0.0, "{cal:?}");
    }
}
