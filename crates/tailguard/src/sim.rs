//! Tail at microscale: how per-hop scheduling tails show up in requests that cross many tasks.
//!
//! A request that hops across `N` tasks in series waits to be scheduled at every hop. If a hop's
//! scheduling latency exceeds `v` with probability `1 - q` (`v` is the hop's `q`-quantile), a
//! request escapes every slow hop only with probability `q^N`: the hop's p99 shows up at the
//! request's `p(0.99^N)` — at p90.4 for ten hops. Tails that look rare per task are common per
//! request. The same holds for a fan-out that waits for the slowest of `N` parallel tasks.
//!
//! [`simulate`] draws hop latencies from a [`HopDistribution`] given by percentiles (or taken from
//! a recorded histogram) and reports the request latency distribution; [`request_quantile`] is the
//! closed form the simulation is checked against.
//!
//! ```
//! use std::num::NonZeroU32;
//! use std::time::Duration;
//! use tailguard::sim::{Composition, HopDistribution, SimConfig, request_quantile, simulate};
//!
//! // Hops take 1 ms, except 1 % that take 1 s and 0.1 % that take 1 min.
//! let hops = HopDistribution::from_percentiles(
//!     Duration::from_millis(1),
//!     &[(0.99, Duration::from_secs(1)), (0.999, Duration::from_secs(60))],
//! )?;
//! let config = SimConfig { hops: NonZeroU32::new(10).unwrap(), requests: 200_000, seed: 1, composition: Composition::Serial };
//! let result = simulate(&hops, &config);
//! // The hop p99 (1 s) appears at the request's p90.4.
//! assert!((request_quantile(0.99, 10) - 0.904).abs() < 0.001);
//! assert!(result.histogram.quantile(0.95)?.unwrap() >= Duration::from_secs(1));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::num::NonZeroU32;
use std::time::Duration;

use crate::clock::duration_nanos;
use crate::histogram::{BUCKETS, HistogramSnapshot, bucket_index};

/// A hop latency distribution that cannot be used.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum InvalidDistribution {
    /// A percentile must lie strictly between 0 and 1.
    #[error("percentile {0} must lie strictly between 0 and 1 (write 0.99 for p99)")]
    Quantile(f64),
    /// Percentiles must be given in increasing order, each once.
    #[error("percentiles must increase: {0} comes after {1}")]
    NotIncreasing(f64, f64),
    /// A higher percentile cannot have a lower latency.
    #[error("latency at p{} ({:?}) is below a lower percentile's ({:?})", .0 * 100.0, .1, .2)]
    Decreasing(f64, Duration, Duration),
    /// An empty histogram has nothing to draw from.
    #[error("the histogram has no samples to draw hop latencies from")]
    Empty,
}

/// Hop latencies as a step function of the quantile: `base` below the first given percentile,
/// then each given latency from its percentile up to the next.
#[derive(Clone, Debug, PartialEq)]
pub struct HopDistribution {
    /// `(threshold, nanos)`: a uniform 53-bit draw at or above `threshold` takes at least
    /// `nanos`. The first entry has threshold 0 (the base).
    steps: Vec<(u64, u64)>,
}

/// 2^53: draws are uniform integers in `[0, 2^53)`.
const DRAW_RANGE: f64 = (1u64 << 53) as f64;

impl HopDistribution {
    /// Hops take `base`, except from each given percentile on, where they take its latency.
    ///
    /// # Errors
    ///
    /// [`InvalidDistribution`] when a percentile is outside (0, 1), the percentiles do not
    /// increase, or the latencies decrease.
    pub fn from_percentiles(base: Duration, points: &[(f64, Duration)]) -> Result<Self, InvalidDistribution> {
        let mut steps = vec![(0, duration_nanos(base))];
        let mut previous: Option<(f64, Duration)> = None;
        for &(q, latency) in points {
            if !(q > 0.0 && q < 1.0) {
                return Err(InvalidDistribution::Quantile(q));
            }
            let floor = previous.map_or(base, |p| p.1);
            if let Some((pq, _)) = previous {
                if q <= pq {
                    return Err(InvalidDistribution::NotIncreasing(q, pq));
                }
            }
            if latency < floor {
                return Err(InvalidDistribution::Decreasing(q, latency, floor));
            }
            steps.push(((q * DRAW_RANGE) as u64, duration_nanos(latency)));
            previous = Some((q, latency));
        }
        Ok(Self { steps })
    }

    /// Hops drawn from a recorded histogram (e.g. the runtime probe's window): each bucket is
    /// drawn in proportion to its count and stands for its midpoint.
    ///
    /// # Errors
    ///
    /// [`InvalidDistribution::Empty`] when the histogram has no samples.
    pub fn from_histogram(histogram: &HistogramSnapshot) -> Result<Self, InvalidDistribution> {
        let total = histogram.count();
        if total == 0 {
            return Err(InvalidDistribution::Empty);
        }
        let mut steps = Vec::new();
        let mut below = 0u64;
        for (low, high, count) in histogram.buckets() {
            let threshold = (below as f64 / total as f64 * DRAW_RANGE) as u64;
            steps.push((threshold, low + (high - low) / 2));
            below += count;
        }
        Ok(Self { steps })
    }

    /// The latency of a hop whose uniform draw in `[0, 2^53)` is `draw`.
    #[inline]
    fn latency_nanos(&self, draw: u64) -> u64 {
        // The last step whose threshold is at or below the draw.
        let index = self.steps.partition_point(|&(threshold, _)| threshold <= draw);
        self.steps[index.saturating_sub(1)].1
    }
}

/// How a request combines its hops.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Composition {
    /// The request visits the hops one after another: its latency is their sum.
    Serial,
    /// The request fans out to all hops at once and waits for the slowest: the maximum.
    Parallel,
}

/// What to simulate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SimConfig {
    /// Hops (tasks) per request.
    pub hops: NonZeroU32,
    /// Requests to simulate.
    pub requests: u64,
    /// Seed of the draws: the same seed gives the same result.
    pub seed: u64,
    /// How hops combine into a request.
    pub composition: Composition,
}

/// The simulated request latencies.
#[derive(Clone, Debug)]
pub struct SimResult {
    /// Request latencies.
    pub histogram: HistogramSnapshot,
}

/// The request quantile at which a hop's `hop_quantile` latency first shows up: `q^N`, the
/// probability that none of `N` hops is that slow (the same for serial and parallel requests).
pub fn request_quantile(hop_quantile: f64, hops: u32) -> f64 {
    hop_quantile.powi(hops.min(i32::MAX as u32) as i32)
}

/// Simulates `config.requests` requests of `config.hops` hops each.
///
/// Runs at roughly 2–3 ns per hop on one core (see `benches/sim.rs`).
pub fn simulate(hops: &HopDistribution, config: &SimConfig) -> SimResult {
    let mut rng = SplitMix64(config.seed);
    let mut counts = vec![0u64; BUCKETS];
    let mut max_nanos = 0;
    for _ in 0..config.requests {
        let mut latency = 0u64;
        for _ in 0..config.hops.get() {
            let hop = hops.latency_nanos(rng.next() >> 11);
            latency = match config.composition {
                Composition::Serial => latency.saturating_add(hop),
                Composition::Parallel => latency.max(hop),
            };
        }
        counts[bucket_index(latency)] += 1;
        max_nanos = max_nanos.max(latency);
    }
    SimResult { histogram: HistogramSnapshot::from_counts(counts, max_nanos) }
}

/// SplitMix64 (Steele, Lea and Flood, 2014): a tiny, fast generator with a full 64-bit period,
/// good enough for drawing quantiles and deterministic for a seed.
struct SplitMix64(u64);

impl SplitMix64 {
    #[inline]
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::histogram::Histogram;

    fn example() -> HopDistribution {
        HopDistribution::from_percentiles(
            Duration::from_millis(1),
            &[(0.99, Duration::from_secs(1)), (0.999, Duration::from_secs(60))],
        )
        .unwrap()
    }

    fn fraction_at_least(result: &SimResult, nanos: u64) -> f64 {
        let slow: u64 = result.histogram.buckets().filter(|&(_, high, _)| high > nanos).map(|b| b.2).sum();
        slow as f64 / result.histogram.count() as f64
    }

    #[test]
    fn serial_and_parallel_tails_follow_the_closed_form() {
        let n = 200_000u64;
        for composition in [Composition::Serial, Composition::Parallel] {
            for hops in [1u32, 5, 10] {
                let config =
                    SimConfig { hops: NonZeroU32::new(hops).unwrap(), requests: n, seed: 42, composition };
                let result = simulate(&example(), &config);
                assert_eq!(result.histogram.count(), n);
                for (q, latency) in [(0.99, 1_000_000_000u64), (0.999, 60_000_000_000)] {
                    let expected = 1.0 - request_quantile(q, hops);
                    let seen = fraction_at_least(&result, latency);
                    // Five standard deviations of a binomial proportion: fails only on a bug.
                    let sigma = (expected * (1.0 - expected) / n as f64).sqrt();
                    assert!(
                        (seen - expected).abs() <= 5.0 * sigma,
                        "{composition:?} hops={hops} q={q}: saw {seen}, closed form {expected}"
                    );
                }
            }
        }
    }

    #[test]
    fn serial_latency_adds_up_and_parallel_takes_the_slowest() {
        let only_base = HopDistribution::from_percentiles(Duration::from_millis(2), &[]).unwrap();
        let config =
            |composition| SimConfig { hops: NonZeroU32::new(4).unwrap(), requests: 10, seed: 1, composition };
        let serial = simulate(&only_base, &config(Composition::Serial));
        assert_eq!(serial.histogram.max(), Some(Duration::from_millis(8)));
        let parallel = simulate(&only_base, &config(Composition::Parallel));
        assert_eq!(parallel.histogram.max(), Some(Duration::from_millis(2)));
    }

    #[test]
    fn same_seed_same_result() {
        let config = SimConfig {
            hops: NonZeroU32::new(3).unwrap(),
            requests: 5_000,
            seed: 9,
            composition: Composition::Serial,
        };
        let a = simulate(&example(), &config);
        let b = simulate(&example(), &config);
        assert_eq!(a.histogram, b.histogram);
        let c = simulate(&example(), &SimConfig { seed: 10, ..config });
        assert_ne!(a.histogram, c.histogram);
    }

    #[test]
    fn bad_distributions_are_refused() {
        let ms = Duration::from_millis;
        assert_eq!(
            HopDistribution::from_percentiles(ms(1), &[(1.0, ms(5))]),
            Err(InvalidDistribution::Quantile(1.0))
        );
        assert!(matches!(
            HopDistribution::from_percentiles(ms(1), &[(0.99, ms(5)), (0.9, ms(9))]),
            Err(InvalidDistribution::NotIncreasing(..))
        ));
        let err = HopDistribution::from_percentiles(ms(1), &[(0.9, ms(5)), (0.99, ms(2))]).unwrap_err();
        assert!(err.to_string().contains("below a lower percentile"), "{err}");
        assert_eq!(
            HopDistribution::from_histogram(&HistogramSnapshot::empty()),
            Err(InvalidDistribution::Empty)
        );
    }

    #[test]
    fn histogram_distribution_reproduces_its_source() {
        let source = Histogram::new();
        for _ in 0..900 {
            source.record(50_000);
        }
        for _ in 0..100 {
            source.record(5_000_000);
        }
        let hops = HopDistribution::from_histogram(&source.snapshot()).unwrap();
        let config = SimConfig {
            hops: NonZeroU32::new(1).unwrap(),
            requests: 100_000,
            seed: 3,
            composition: Composition::Serial,
        };
        let result = simulate(&hops, &config);
        let slow = fraction_at_least(&result, 4_000_000);
        assert!((slow - 0.1).abs() < 0.01, "{slow}");
    }
}
