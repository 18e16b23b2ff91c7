//! Foreground load at one node over HTTP: an open-loop, evenly paced stream of GETs and PUTs
//! (each PUT writes the key's canonical value, so the store never drifts from the keyspace
//! the backup is verified against), latency measured from each request's scheduled time so
//! queueing is never hidden; and the closed-loop burst that measures a node's capacity.
//!
//! The open-loop clients may run at a real-time priority (`--generator-priority`, as the demo's
//! generator): on the nodes' own CPUs they then never wait behind a node's threads to send a
//! request or to read its answer, as clients on other machines do not.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use tailguard::elastic::ThreadPriority;

use super::http::Client;
use crate::workload::dispatch::Dispatcher;
use crate::workload::keyspace::{Key, KeyspaceConfig};

/// Share of requests that are PUTs.
const PUT_FRACTION: f64 = 0.2;
/// Pause after a failed request (a node being restarted), so a client does not spin.
const ERROR_PAUSE: Duration = Duration::from_millis(50);

/// One request's outcome: when it was due (seconds since the run's start) and its latency.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    /// Scheduled time, seconds since the run's start.
    pub at: f64,
    /// From the scheduled time to the end of the response, seconds; `None` when it failed.
    pub latency: Option<f64>,
}

/// One request to `client`: a GET, or a PUT of the canonical value.
fn one_request(client: &mut Client, keyspace: &KeyspaceConfig, rng: &mut ChaCha8Rng) -> bool {
    let key = Key(rng.random_range(0..keyspace.keys.max(1)));
    let path = format!("/kv/{}", key.0);
    let reply = if rng.random_bool(PUT_FRACTION) {
        client.request("PUT", &path, &keyspace.value_of(key))
    } else {
        client.request("GET", &path, b"")
    };
    reply.is_ok_and(|r| r.status == 200)
}

/// Requests per second the node at `addr` completes with `connections` clients back to back for
/// `duration`.
pub fn measure_capacity(
    addr: SocketAddr,
    keyspace: &KeyspaceConfig,
    connections: usize,
    duration: Duration,
) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let end = Instant::now() + duration;
    let threads: Vec<JoinHandle<()>> = (0..connections.max(1))
        .map(|i| {
            let (done, keyspace) = (Arc::clone(&done), *keyspace);
            std::thread::spawn(move || {
                let mut client = Client::new(addr);
                let mut rng = ChaCha8Rng::seed_from_u64(i as u64);
                while Instant::now() < end {
                    if one_request(&mut client, &keyspace, &mut rng) {
                        done.fetch_add(1, Relaxed);
                    } else {
                        std::thread::sleep(ERROR_PAUSE);
                    }
                }
            })
        })
        .collect();
    for thread in threads {
        let _ = thread.join();
    }
    done.load(Relaxed) as f64 / duration.as_secs_f64()
}

/// Open-loop load at one node, running until stopped.
#[derive(Debug)]
pub struct Load {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    samples: Arc<Mutex<Vec<Sample>>>,
}

impl Load {
    /// Starts `rate` requests per second at `addr`, spread over `connections` clients, each at
    /// `priority` (`None`: as the coordinator runs); times are taken from `epoch`.
    pub fn start(
        addr: SocketAddr,
        keyspace: KeyspaceConfig,
        rate: f64,
        connections: usize,
        priority: Option<ThreadPriority>,
        epoch: Instant,
    ) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let next = Arc::new(AtomicU64::new(0));
        let start = Instant::now();
        let interval = Duration::from_secs_f64(1.0 / rate.max(1.0));
        let threads = (0..connections.max(1))
            .map(|i| {
                let (stop, samples, next) = (Arc::clone(&stop), Arc::clone(&samples), Arc::clone(&next));
                std::thread::spawn(move || {
                    // One request at a time per client, so nothing to batch: no slack is added.
                    let _dispatcher = Dispatcher::enter(priority).0;
                    let mut client = Client::new(addr);
                    let mut rng = ChaCha8Rng::seed_from_u64(0x10ad ^ i as u64);
                    while !stop.load(Relaxed) {
                        let due = start + interval.mul_f64(next.fetch_add(1, Relaxed) as f64);
                        if let Some(wait) = due.checked_duration_since(Instant::now()) {
                            std::thread::sleep(wait);
                        }
                        let ok = one_request(&mut client, &keyspace, &mut rng);
                        let sample = Sample {
                            at: due.duration_since(epoch).as_secs_f64(),
                            latency: ok.then(|| due.elapsed().as_secs_f64()),
                        };
                        samples.lock().unwrap_or_else(PoisonError::into_inner).push(sample);
                        if !ok {
                            std::thread::sleep(ERROR_PAUSE);
                        }
                    }
                })
            })
            .collect();
        Load { stop, threads, samples }
    }

    /// Stops the clients and returns every sample, in no particular order.
    pub fn finish(self) -> Vec<Sample> {
        self.stop.store(true, Relaxed);
        for thread in self.threads {
            let _ = thread.join();
        }
        std::mem::take(&mut *self.samples.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// Latency statistics of the samples due in `from..to` seconds.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct WindowStats {
    /// Requests that succeeded.
    pub requests: u64,
    /// Requests that failed (a node down, an error status).
    pub errors: u64,
    /// Successful requests per second.
    pub throughput: f64,
    /// 99th percentile latency, seconds (`None` without requests).
    pub p99_seconds: Option<f64>,
    /// The median of the p99s of the window's [`INTERVAL_SECONDS`] intervals, seconds: the
    /// demo's `intervals` statistic, which one bad second moves little (`None` without an
    /// interval of at least [`MIN_INTERVAL_REQUESTS`] requests).
    pub interval_p99_seconds: Option<f64>,
}

/// Length of the intervals whose p99s [`WindowStats::interval_p99_seconds`] takes the median
/// of: the demo's interval.
pub const INTERVAL_SECONDS: f64 = 0.5;
/// Fewest successful requests an interval needs for its p99 to count.
pub const MIN_INTERVAL_REQUESTS: usize = 20;

/// The nearest-rank 99th percentile of `latencies`, which it sorts.
fn p99(latencies: &mut [f64]) -> Option<f64> {
    latencies.sort_by(f64::total_cmp);
    let rank = ((latencies.len() as f64 * 0.99).ceil() as usize).clamp(1, latencies.len().max(1));
    latencies.get(rank - 1).copied()
}

/// Statistics of `samples` due in `from..to` seconds.
pub fn window(samples: &[Sample], from: f64, to: f64) -> WindowStats {
    let inside = samples.iter().filter(|s| s.at >= from && s.at < to);
    let errors = inside.clone().filter(|s| s.latency.is_none()).count() as u64;
    let intervals = ((to - from) / INTERVAL_SECONDS).ceil().max(0.0) as usize;
    let mut by_interval: Vec<Vec<f64>> = vec![Vec::new(); intervals];
    for sample in inside {
        if let Some(latency) = sample.latency {
            let i = ((sample.at - from) / INTERVAL_SECONDS) as usize;
            by_interval[i.min(intervals - 1)].push(latency);
        }
    }
    let interval_p99s: Vec<f64> = by_interval
        .iter_mut()
        .filter(|latencies| latencies.len() >= MIN_INTERVAL_REQUESTS)
        .filter_map(|latencies| p99(latencies))
        .collect();
    let mut latencies: Vec<f64> = by_interval.concat();
    WindowStats {
        requests: latencies.len() as u64,
        errors,
        throughput: if to > from { latencies.len() as f64 / (to - from) } else { 0.0 },
        p99_seconds: p99(&mut latencies),
        interval_p99_seconds: (!interval_p99s.is_empty()).then(|| crate::demo::stats::median(&interval_p99s)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_windows_p99_is_the_nearest_rank_of_its_samples() {
        let mut samples: Vec<Sample> = (1..=200)
            .map(|i| Sample { at: 1.0 + f64::from(i) / 1000.0, latency: Some(f64::from(i)) })
            .collect();
        samples.push(Sample { at: 1.5, latency: None });
        samples.push(Sample { at: 5.0, latency: Some(1e9) }); // outside the window
        let stats = window(&samples, 1.0, 2.0);
        assert_eq!((stats.requests, stats.errors, stats.p99_seconds), (200, 1, Some(198.0)));
        assert_eq!(stats.throughput, 200.0);
        assert_eq!(window(&samples, 10.0, 11.0).p99_seconds, None);
        // All 200 fall in the first 500 ms interval; the second has none.
        assert_eq!(stats.interval_p99_seconds, Some(198.0));
    }

    #[test]
    fn one_bad_interval_sets_the_pooled_p99_but_not_the_median_of_interval_p99s() {
        // Five intervals of 100 requests at 1 ms, then one whose 100 requests all took 50 ms.
        let samples: Vec<Sample> = (0..600)
            .map(|i| Sample { at: f64::from(i) / 200.0, latency: Some(if i >= 500 { 0.05 } else { 0.001 }) })
            .collect();
        let stats = window(&samples, 0.0, 3.0);
        assert_eq!(stats.p99_seconds, Some(0.05));
        assert_eq!(stats.interval_p99_seconds, Some(0.001));
        // An interval under MIN_INTERVAL_REQUESTS does not count; none at all gives none.
        assert_eq!(window(&samples[..10], 0.0, 0.5).interval_p99_seconds, None);
    }
}
