//! Each node's limiter, sampled over time from `/debug/elastic`: the elastic share and the
//! scheduling-latency p99 of its latest controller tick.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::http::Client;

/// One reading of a node's limiter.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct LimiterPoint {
    /// Seconds since the run's start.
    pub at: f64,
    /// Elastic share of the node's capacity, 0..=1.
    pub share: f64,
    /// Scheduling-latency p99 of the latest tick, seconds (`None` before the first window).
    pub p99_seconds: Option<f64>,
    /// The same over the window's recent part, which the adaptive controller steers by.
    pub recent_p99_seconds: Option<f64>,
    /// CPU seconds the node's process has used since it started (`None` from a node that does
    /// not report it).
    pub cpu_seconds: Option<f64>,
    /// CPU seconds elastic work has used under its grants since the node started.
    pub elastic_cpu_seconds: Option<f64>,
}

/// A node's capacity as it reports it.
#[derive(Clone, Debug, Serialize)]
pub struct Capacity {
    /// Cores its limiter is sized to.
    pub cores: f64,
    /// Where that figure came from (affinity, a cgroup quota, a cpuset).
    pub source: String,
}

/// Reads the capacity from a node's `/debug/elastic`.
///
/// # Errors
/// A message when the node cannot be reached or runs without control (`--no-control`).
pub fn capacity(client: &mut Client) -> Result<Capacity, String> {
    let elastic = client.get_json("/debug/elastic")?;
    if elastic["control"] != true {
        return Err("the node runs without the limiter (--no-control): a cluster run needs control".into());
    }
    let config = &elastic["config"];
    Ok(Capacity {
        cores: config["cores"].as_f64().ok_or("/debug/elastic has no config.cores")?,
        source: config["cores_source"].as_str().unwrap_or("unknown").to_owned(),
    })
}

fn point(client: &mut Client, at: f64) -> Option<LimiterPoint> {
    let elastic = client.get_json("/debug/elastic").ok()?;
    let share = elastic["state"]["share"].as_f64()?;
    let tick = elastic["history"].as_array()?.last();
    Some(LimiterPoint {
        at,
        share,
        p99_seconds: tick.and_then(|tick| tick["p99_seconds"].as_f64()),
        recent_p99_seconds: tick.and_then(|tick| tick["recent_p99_seconds"].as_f64()),
        cpu_seconds: elastic["state"]["process_cpu_seconds"].as_f64(),
        elastic_cpu_seconds: elastic["state"]["used_cpu_seconds"].as_f64(),
    })
}

/// One reading of the node at `client`, now; `None` when it does not answer.
pub fn read(client: &mut Client, epoch: Instant) -> Option<LimiterPoint> {
    point(client, epoch.elapsed().as_secs_f64())
}

/// Samples one node's limiter every `interval` until finished (a node that does not answer
/// — killed, restarting — is skipped until it does).
#[derive(Debug)]
pub struct Watch {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
    points: Arc<Mutex<Vec<LimiterPoint>>>,
}

impl Watch {
    /// Starts sampling the node at `addr`; times are taken from `epoch`.
    pub fn start(addr: SocketAddr, interval: Duration, epoch: Instant) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let points = Arc::new(Mutex::new(Vec::new()));
        let thread = {
            let (stop, points) = (Arc::clone(&stop), Arc::clone(&points));
            std::thread::spawn(move || {
                let mut client = Client::new(addr);
                while !stop.load(Relaxed) {
                    if let Some(p) = point(&mut client, epoch.elapsed().as_secs_f64()) {
                        points.lock().unwrap_or_else(PoisonError::into_inner).push(p);
                    }
                    std::thread::sleep(interval);
                }
            })
        };
        Watch { stop, thread, points }
    }

    /// The latest reading.
    pub fn last(&self) -> Option<LimiterPoint> {
        self.points.lock().unwrap_or_else(PoisonError::into_inner).last().copied()
    }

    /// Stops sampling; every reading, in time order.
    pub fn finish(self) -> Vec<LimiterPoint> {
        self.stop.store(true, Relaxed);
        let _ = self.thread.join();
        std::mem::take(&mut *self.points.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// Seconds after `from` at which the share settled: from then on every reading stays within
/// `max(0.02, 20 %)` of the mean of the last third of the readings in `from..to` (`None`
/// with fewer than three readings).
pub fn settled_after(points: &[LimiterPoint], from: f64, to: f64) -> Option<f64> {
    let inside: Vec<&LimiterPoint> = points.iter().filter(|p| p.at >= from && p.at <= to).collect();
    if inside.len() < 3 {
        return None;
    }
    let tail = &inside[inside.len() * 2 / 3..];
    let settled = tail.iter().map(|p| p.share).sum::<f64>() / tail.len() as f64;
    let band = (settled * 0.2).max(0.02);
    let last_outside = inside.iter().rposition(|p| (p.share - settled).abs() > band);
    Some(match last_outside {
        None => inside[0].at - from,
        Some(i) => inside.get(i + 1).map_or(to, |p| p.at) - from,
    })
}

/// How fast a CPU counter of the readings (`counter`) grew over `from..to`, as a fraction of
/// `cores`: from the first reading inside to the last. `None` with fewer than two readings, or
/// when the counter went back (the node was restarted in between).
pub fn cpu_fraction(
    points: &[LimiterPoint],
    from: f64,
    to: f64,
    cores: f64,
    counter: impl Fn(&LimiterPoint) -> Option<f64>,
) -> Option<f64> {
    let mut inside = points.iter().filter(|p| p.at >= from && p.at <= to);
    let first = inside.next()?;
    let last = inside.next_back()?;
    let (used, seconds) = (counter(last)? - counter(first)?, last.at - first.at);
    (used >= 0.0 && seconds > 0.0 && cores > 0.0).then(|| used / (seconds * cores))
}

/// The median of the readings' p99 in `from..to`, seconds.
pub fn median_p99(points: &[LimiterPoint], from: f64, to: f64) -> Option<f64> {
    let mut p99s: Vec<f64> =
        points.iter().filter(|p| p.at >= from && p.at < to).filter_map(|p| p.p99_seconds).collect();
    p99s.sort_by(f64::total_cmp);
    (!p99s.is_empty()).then(|| p99s[p99s.len() / 2])
}

/// The mean share of the readings in `from..to`.
pub fn mean_share(points: &[LimiterPoint], from: f64, to: f64) -> Option<f64> {
    let shares: Vec<f64> = points.iter().filter(|p| p.at >= from && p.at < to).map(|p| p.share).collect();
    (!shares.is_empty()).then(|| shares.iter().sum::<f64>() / shares.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn points(shares: &[f64]) -> Vec<LimiterPoint> {
        shares
            .iter()
            .enumerate()
            .map(|(i, &share)| LimiterPoint {
                at: i as f64,
                share,
                p99_seconds: Some(i as f64 / 1000.0),
                recent_p99_seconds: None,
                cpu_seconds: None,
                elastic_cpu_seconds: None,
            })
            .collect()
    }

    #[test]
    fn the_share_settles_once_it_stays_near_its_final_level() {
        let rising = points(&[0.05, 0.10, 0.20, 0.29, 0.30, 0.31, 0.30, 0.30, 0.29]);
        // The tail's mean is 0.2967; 0.20 is the last reading outside ±0.0593.
        assert_eq!(settled_after(&rising, 0.0, 8.0), Some(3.0));
        assert_eq!(settled_after(&rising, 2.0, 8.0), Some(1.0));
        assert_eq!(settled_after(&points(&[0.5, 0.5, 0.5]), 0.0, 2.0), Some(0.0));
        assert_eq!(settled_after(&points(&[0.5, 0.5]), 0.0, 2.0), None);
        assert_eq!(median_p99(&rising, 0.0, 3.0), Some(0.001));
        assert!((mean_share(&rising, 7.0, 9.0).unwrap() - 0.295).abs() < 1e-9);
    }

    #[test]
    fn cpu_use_is_the_counter_s_growth_over_the_window_per_core() {
        // A node of half a core whose process used 0.2 CPU seconds per second, its elastic work
        // 0.05, until it was restarted at second 4 and its counters began again.
        let mut series = points(&[0.1; 6]);
        for (p, cpu) in series.iter_mut().zip([10.0, 10.2, 10.4, 10.6, 0.1, 0.3]) {
            p.cpu_seconds = Some(cpu);
            p.elastic_cpu_seconds = Some(cpu / 4.0);
        }
        let process = |p: &LimiterPoint| p.cpu_seconds;
        let fraction = cpu_fraction(&series, 0.0, 3.0, 0.5, process).unwrap();
        assert!((fraction - 0.4).abs() < 1e-9, "{fraction}");
        let elastic = cpu_fraction(&series, 1.0, 3.0, 0.5, |p| p.elastic_cpu_seconds).unwrap();
        assert!((elastic - 0.1).abs() < 1e-9, "{elastic}");
        assert_eq!(cpu_fraction(&series, 0.0, 5.0, 0.5, process), None, "the counter went back");
        assert_eq!(cpu_fraction(&series, 2.0, 2.5, 0.5, process), None, "one reading");
        assert_eq!(cpu_fraction(&points(&[0.1, 0.1]), 0.0, 1.0, 0.5, process), None, "not reported");
    }
}
