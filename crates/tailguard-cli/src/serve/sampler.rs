//! The server's sampler thread: every [`INTERVAL`] it publishes the signals as metrics and
//! appends one point to the time series the live page draws; and the `/metrics` text
//! ([`render_metrics`]).
//!
//! `/metrics` is the `metrics-exporter-prometheus` rendering of the facade (gauges, integer
//! counters, and the request-latency histogram recorded per request), followed by the
//! library's Prometheus text: the histograms rendered from tailguard's own cumulative
//! histograms, and the counters in CPU seconds, which the facade cannot carry (see
//! `tailguard::prometheus`). Every metric, its type, unit and meaning: `docs/metrics.md`.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use metrics::{Unit, describe_counter, describe_gauge, describe_histogram, gauge};
use serde::Serialize;
use tailguard::Tailguard;
use tailguard::observe::export::{publish_pressure, publish_run_queue, publish_window};
use tailguard::observe::psi;
use tailguard::prometheus::{Exposition, Kind};

use super::App;
use super::jobs::JobKind;

/// Time between two points.
pub const INTERVAL: Duration = Duration::from_millis(250);
/// Points kept: two minutes.
const POINTS: usize = 480;

/// One point of the live series.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Point {
    /// Seconds since the server started.
    pub t: f64,
    /// Elastic share of all cores the limiter allows (`null` without control).
    pub share: Option<f64>,
    /// p99 scheduling latency of the server's runtime over the window, milliseconds.
    pub scheduling_p99_ms: Option<f64>,
    /// p99 server-side latency of key-value requests over the window, milliseconds.
    pub request_p99_ms: Option<f64>,
    /// Key-value requests per second over the interval.
    pub requests_per_sec: f64,
    /// CPU used by elastic jobs over the interval, as a share of all cores.
    pub elastic_cpu: f64,
    /// OS runnable threads (average over the interval), where readable.
    pub os_runnable: Option<f64>,
}

/// The bounded time series, and the elastic jobs' CPU total.
#[derive(Debug, Default)]
pub struct Series {
    points: Mutex<VecDeque<Point>>,
    /// CPU used by elastic jobs since the server started, nanoseconds: the sum of the
    /// sampler's deltas, so it never goes back when a finished job is forgotten.
    elastic_cpu_nanos: AtomicU64,
}

impl Series {
    fn push(&self, point: Point) {
        let mut points = self.points.lock().unwrap_or_else(PoisonError::into_inner);
        if points.len() == POINTS {
            points.pop_front();
        }
        points.push_back(point);
    }

    /// Every point kept, oldest first; with `since`, only points after that time.
    pub fn points(&self, since: Option<f64>) -> Vec<Point> {
        let points = self.points.lock().unwrap_or_else(PoisonError::into_inner);
        points.iter().filter(|p| since.is_none_or(|s| p.t > s)).copied().collect()
    }
}

fn millis(d: Option<Duration>) -> Option<f64> {
    d.map(|d| d.as_secs_f64() * 1e3)
}

/// Describes every facade metric of the server (units and `# HELP` text) to the installed
/// recorder.
fn describe() {
    tailguard::observe::export::describe();
    tailguard::elastic::metrics::describe();
    tailguard::admission::export::describe();
    describe_histogram!(
        "tailguard_request_latency_seconds",
        Unit::Seconds,
        "Server-side latency of key-value requests, admission included, by operation."
    );
    describe_gauge!(
        "tailguard_elastic_balance_seconds",
        Unit::Seconds,
        "CPU-seconds balance of the elastic CPU bucket (negative: debt)."
    );
    describe_gauge!("tailguard_job_running", "1 while the latest job of the kind runs, else 0.");
    describe_gauge!("tailguard_job_keys", Unit::Count, "Keys the latest job of the kind has processed.");
    describe_gauge!(
        "tailguard_job_fraction",
        "Fraction of the keyspace the latest job of the kind has processed (0..1)."
    );
    describe_gauge!(
        "tailguard_job_compressed_bytes",
        Unit::Bytes,
        "Compressed bytes the latest job of the kind has written."
    );
    describe_counter!(
        "tailguard_connections_timed_out_total",
        Unit::Count,
        "Connections closed at a deadline, by deadline (header-read, idle). Never reset."
    );
}

/// The `/metrics` text: the facade's rendering, then tailguard's histograms and CPU counters.
pub fn render_metrics(app: &App) -> String {
    let mut out = Exposition::new();
    tailguard::observe::export::write_scheduling_latency(&mut out, &[("runtime", &app.scheduling)]);
    if let Some(pressure) = psi::read_cpu_pressure() {
        tailguard::observe::export::write_pressure(&mut out, &pressure);
    }
    if let Some(limiter) = &app.limiter {
        tailguard::elastic::metrics::write(&mut out, &limiter.snapshot());
    }
    out.family(
        "tailguard_elastic_job_cpu_seconds_total",
        Kind::Counter,
        "CPU seconds used by the server's elastic jobs (backups, scans). Never reset.",
    )
    .value(&[], app.series.elastic_cpu_nanos.load(Ordering::Relaxed) as f64 / 1e9);
    out.family(
        "process_cpu_seconds_total",
        Kind::Counter,
        "Total user and system CPU time spent by the server process, in seconds.",
    )
    .value(&[], tailguard::clock::process_cpu_time().as_secs_f64());
    if let Some(queue) = &app.queue {
        tailguard::admission::export::write(&mut out, &queue.snapshot());
    }
    let mut text = app.prometheus.render();
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(out.as_str());
    text
}

/// Starts the sampler, reading run-queue depths from `guard`'s probe; it ends once `stop` is set
/// (unpark the thread to end it at once). Describes the metrics first (the recorder is
/// installed by then).
pub fn start(app: Arc<App>, guard: Arc<Tailguard>, stop: Arc<AtomicBool>) -> std::io::Result<JoinHandle<()>> {
    describe();
    std::thread::Builder::new().name("tailguard-sampler".into()).spawn(move || {
        let start = Instant::now();
        let mut run_queue = guard.probe().run_queue_totals().unwrap_or_default();
        let mut requests = app.requests.cumulative().snapshot().count();
        let mut elastic_cpu = app.jobs.cpu_nanos();
        let mut last = Instant::now();
        let mut next = last + INTERVAL;
        while !stop.load(Ordering::Relaxed) {
            let now = Instant::now();
            if now < next {
                std::thread::park_timeout(next - now);
                continue;
            }
            next += INTERVAL;
            let secs = now.duration_since(last).as_secs_f64().max(1e-9);
            last = now;

            publish_window("runtime", &app.scheduling);
            let totals = guard.probe().run_queue_totals().unwrap_or_default();
            let tick = totals.since(&run_queue);
            run_queue = totals;
            if let Some(tick) = &tick {
                publish_run_queue(tick);
            }
            if let Some(pressure) = psi::read_cpu_pressure() {
                publish_pressure(&pressure);
            }
            let share = app.limiter.as_ref().map(|limiter| {
                let snapshot = limiter.snapshot();
                gauge!("tailguard_elastic_balance_seconds").set(snapshot.balance_nanos as f64 / 1e9);
                snapshot.share
            });
            let cpu = app.jobs.cpu_nanos();
            // A forgotten finished job makes the sum drop: count nothing for that interval.
            let cpu_delta = cpu.saturating_sub(elastic_cpu);
            elastic_cpu = cpu;
            app.series.elastic_cpu_nanos.fetch_add(cpu_delta, Ordering::Relaxed);
            for kind in [JobKind::Backup, JobKind::Scan] {
                let name = kind.name();
                let latest = app.jobs.list().into_iter().rev().find(|j| j.kind() == kind);
                let status = latest.map(|j| j.status());
                gauge!("tailguard_job_running", "kind" => name).set(f64::from(u8::from(
                    status.as_ref().is_some_and(|s| s.state == super::jobs::JobState::Running),
                )));
                if let Some(status) = status {
                    gauge!("tailguard_job_keys", "kind" => name).set(status.keys as f64);
                    gauge!("tailguard_job_fraction", "kind" => name).set(status.fraction);
                    gauge!("tailguard_job_compressed_bytes", "kind" => name)
                        .set(status.compressed_bytes as f64);
                }
            }
            let count = app.requests.cumulative().snapshot().count();
            let served = count.saturating_sub(requests);
            requests = count;
            app.prometheus.run_upkeep();

            app.series.push(Point {
                t: now.duration_since(start).as_secs_f64(),
                share,
                scheduling_p99_ms: millis(app.scheduling.snapshot().histogram.p99()),
                request_p99_ms: millis(app.requests.snapshot().histogram.p99()),
                requests_per_sec: served as f64 / secs,
                elastic_cpu: cpu_delta as f64 / (secs * 1e9 * app.cores),
                os_runnable: tick.and_then(|t| t.os_runnable),
            });
        }
        drop(guard);
    })
}
