//! Tail at microscale: how per-hop scheduling tails show up in requests that cross many tasks.
//!
//! (One file: the hop distribution, the simulation and its exact result are one computation;
//! more than a third of the file is its tests against the closed form.)
//!
//! A request that hops across `N` tasks in series waits to be scheduled at every hop. If a hop's
//! scheduling latency exceeds `v` with probability `1 - q` (`v` is the hop's `q`-quantile), a
//! request escapes every slow hop only with probability `q^N`: the hop's p99 shows up at the
//! request's `p(0.99^N)` — at p90.4 for ten hops. Tails that look rare per task are common per
//! request. The same holds for a fan-out that waits for the slowest of `N` parallel tasks.
//!
//! [`simulate`] draws hop latencies from a [`HopDistribution`] given by percentiles (or taken from
//! a recorded histogram) and reports the request latencies exactly, as a count per distinct
//! latency ([`SimResult`]), so every quantile it gives is a latency some simulated request had;
//! [`request_quantile`] is the closed form the simulation is checked against.
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
//! // The hop p99 (1 s) first shows at the request's p90.4: a little past it, requests take one
//! // 1 s hop and nine 1 ms hops.
//! assert!((request_quantile(0.99, 10) - 0.904).abs() < 0.001);
//! assert_eq!(result.quantile(0.92)?, Some(Duration::from_millis(1_009)));
//! assert_eq!(result.quantile(0.5)?, Some(Duration::from_millis(10)));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::num::NonZeroU32;
use std::time::Duration;

use crate::clock::duration_nanos;
use crate::histogram::{BUCKETS, HistogramSnapshot, InvalidQuantile, bucket_index};

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

/// The simulated request latencies, exactly: every distinct latency and how many requests took
/// it.
///
/// Hop latencies are a step function, so request latencies take few distinct values (a serial
/// request's is a sum of `N` of the steps, a parallel one's the largest): memory grows with the
/// number of distinct latencies, not with the number of requests.
///
/// Quantiles follow the nearest-rank definition: the `q`-quantile is the smallest latency `L`
/// such that at least a fraction `q` of the requests took at most `L`, so every quantile is a
/// latency some simulated request had (`q = 0` gives the smallest, `q = 1` the largest).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimResult {
    /// `(latency_nanos, requests at or below it)` per distinct latency, latency increasing.
    cumulative: Vec<(u64, u64)>,
}

impl SimResult {
    /// The result of exact counts per distinct latency, in any order.
    fn from_counts(mut counts: Vec<(u64, u64)>) -> Self {
        counts.sort_unstable_by_key(|&(latency, _)| latency);
        let mut total = 0u64;
        let cumulative = counts
            .into_iter()
            .map(|(latency, count)| {
                total += count;
                (latency, total)
            })
            .collect();
        Self { cumulative }
    }

    /// Number of requests simulated.
    pub fn count(&self) -> u64 {
        self.cumulative.last().map_or(0, |&(_, total)| total)
    }

    /// Whether no request was simulated.
    pub fn is_empty(&self) -> bool {
        self.cumulative.is_empty()
    }

    /// The `q`-quantile (0.99 for p99) of the request latencies, exactly: the smallest latency
    /// `L` such that at least a fraction `q` of the requests took at most `L`. `Ok(None)` when
    /// no request was simulated.
    ///
    /// "At least a fraction `q`" compares `k / n` (rounded to the nearest `f64`, as division
    /// rounds) with `q`, so a decimal quantile such as 0.92 splits 100 requests after the
    /// 92nd, as it reads.
    ///
    /// # Errors
    ///
    /// [`InvalidQuantile`] when `q` is not within `[0, 1]`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::num::NonZeroU32;
    /// use std::time::Duration;
    /// use tailguard::sim::{Composition, HopDistribution, SimConfig, simulate};
    ///
    /// // One hop in ten takes 5 ms: a single-hop request takes 1 ms or 5 ms, nothing between.
    /// let hops = HopDistribution::from_percentiles(
    ///     Duration::from_millis(1),
    ///     &[(0.9, Duration::from_millis(5))],
    /// )?;
    /// let config = SimConfig { hops: NonZeroU32::MIN, requests: 1_000, seed: 7, composition: Composition::Serial };
    /// let result = simulate(&hops, &config);
    /// assert_eq!(result.quantile(0.5)?, Some(Duration::from_millis(1)));
    /// assert_eq!(result.quantile(0.99)?, Some(Duration::from_millis(5)));
    /// assert_eq!(result.quantile(1.0)?, result.max());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn quantile(&self, q: f64) -> Result<Option<Duration>, InvalidQuantile> {
        if !(0.0..=1.0).contains(&q) {
            return Err(InvalidQuantile(q));
        }
        Ok(self.quantile_nanos(q).map(Duration::from_nanos))
    }

    fn quantile_nanos(&self, q: f64) -> Option<u64> {
        let rank = nearest_rank(q, self.count())?;
        let index = self.cumulative.partition_point(|&(_, at_or_below)| at_or_below < rank);
        self.cumulative.get(index).map(|&(latency, _)| latency)
    }

    /// The fastest request's latency. `None` when no request was simulated.
    pub fn min(&self) -> Option<Duration> {
        self.cumulative.first().map(|&(latency, _)| Duration::from_nanos(latency))
    }

    /// The slowest request's latency. `None` when no request was simulated.
    pub fn max(&self) -> Option<Duration> {
        self.cumulative.last().map(|&(latency, _)| Duration::from_nanos(latency))
    }

    /// Every distinct request latency with the number of requests that took it, fastest first.
    pub fn latencies(&self) -> impl Iterator<Item = (Duration, u64)> + '_ {
        let mut below = 0;
        self.cumulative.iter().map(move |&(latency, at_or_below)| {
            let count = at_or_below - below;
            below = at_or_below;
            (Duration::from_nanos(latency), count)
        })
    }

    /// The latencies in a log-linear histogram (within 3.1 %, see [`crate::histogram`]), e.g. to
    /// use simulated requests as the hops of a larger request with
    /// [`HopDistribution::from_histogram`].
    pub fn histogram(&self) -> HistogramSnapshot {
        let mut counts = vec![0u64; BUCKETS];
        for (latency, count) in self.latencies() {
            counts[bucket_index(duration_nanos(latency))] += count;
        }
        HistogramSnapshot::from_counts(counts, self.max().map_or(0, duration_nanos))
    }
}

/// The 1-based rank the `q`-quantile of `n` values names: the smallest `k` in `1..=n` with
/// `k / n >= q` (as `f64` division rounds), so `q = 0` names the first value. `None` when
/// `n` is 0.
fn nearest_rank(q: f64, n: u64) -> Option<u64> {
    if n == 0 {
        return None;
    }
    let total = n as f64;
    // ceil(q * n) is within a rounding of the answer; step to it exactly.
    let mut rank = ((q * total).ceil() as u64).clamp(1, n);
    while rank > 1 && (rank - 1) as f64 / total >= q {
        rank -= 1;
    }
    while rank < n && (rank as f64 / total) < q {
        rank += 1;
    }
    Some(rank)
}

/// The request quantile at which a hop's `hop_quantile` latency first shows up: `q^N`, the
/// probability that none of `N` hops is that slow (the same for serial and parallel requests).
pub fn request_quantile(hop_quantile: f64, hops: u32) -> f64 {
    hop_quantile.powi(hops.min(i32::MAX as u32) as i32)
}

/// Simulates `config.requests` requests of `config.hops` hops each.
///
/// Runs at roughly 2–3 ns per hop on one core of a quiet machine. `benches/sim.rs` (10 M
/// requests of 10 hops) measured 0.72–0.80 s serial and 0.68–0.73 s parallel on the project's
/// 2-core VM while other jobs ran (~7–8 ns per hop; criterion, two runs), no slower than the
/// log-linear histogram the exact counts replaced (0.75–0.78 s and 0.68–0.77 s, interleaved
/// runs).
pub fn simulate(hops: &HopDistribution, config: &SimConfig) -> SimResult {
    let mut rng = SplitMix64(config.seed);
    let mut counts = LatencyCounts::new();
    for _ in 0..config.requests {
        let mut latency = 0u64;
        for _ in 0..config.hops.get() {
            let hop = hops.latency_nanos(rng.next() >> 11);
            latency = match config.composition {
                Composition::Serial => latency.saturating_add(hop),
                Composition::Parallel => latency.max(hop),
            };
        }
        counts.add(latency);
    }
    SimResult::from_counts(counts.into_counts())
}

/// Requests per distinct latency: an open-addressing hash table with linear probing and
/// Fibonacci hashing, at most half full.
///
/// Measured against the alternatives on 10 M requests of 10 hops, serial and parallel (median
/// user CPU time of two sets of 21 interleaved runs on the project's busy 2-core VM), the bare
/// loop taking ~47 ns per request: this table added ~1–1.5 ns per request, a sort + dedupe of
/// all latencies ~4–6 ns (and 8 bytes per request: 80 MB), a std `HashMap` with a
/// multiplicative hasher ~6–8 ns, one with the default SipHash ~18 ns.
struct LatencyCounts {
    /// `(latency_nanos, requests)`; a count of 0 marks an empty slot (so every latency, `u64::MAX`
    /// included, can be a key).
    slots: Vec<(u64, u64)>,
    /// `64 - log2(slots.len())`: the hash is the top bits of the product.
    shift: u32,
    /// Occupied slots.
    len: usize,
}

impl LatencyCounts {
    /// 2^64 / φ, odd: multiplying by it spreads nearby keys over the top bits (Knuth's
    /// multiplicative hashing).
    const FIBONACCI: u64 = 0x9e37_79b9_7f4a_7c15;
    /// log2 of the first table size: 64 slots hold the few latencies of most distributions.
    const INITIAL_BITS: u32 = 6;

    fn new() -> Self {
        Self { slots: vec![(0, 0); 1 << Self::INITIAL_BITS], shift: 64 - Self::INITIAL_BITS, len: 0 }
    }

    #[inline]
    fn slot_of(&self, latency: u64) -> usize {
        // The top `64 - shift` bits: below the table size.
        (latency.wrapping_mul(Self::FIBONACCI) >> self.shift) as usize
    }

    /// Counts one request of `latency` nanoseconds.
    #[inline]
    fn add(&mut self, latency: u64) {
        let mask = self.slots.len() - 1;
        let mut i = self.slot_of(latency);
        loop {
            let (key, count) = &mut self.slots[i];
            if *count == 0 {
                return self.insert_new(i, latency);
            }
            if *key == latency {
                *count += 1;
                return;
            }
            i = (i + 1) & mask;
        }
    }

    /// A latency not seen before, into the empty slot `i`.
    #[cold]
    fn insert_new(&mut self, i: usize, latency: u64) {
        self.slots[i] = (latency, 1);
        self.len += 1;
        if self.len * 2 > self.slots.len() {
            self.grow();
        }
    }

    #[cold]
    fn grow(&mut self) {
        let size = self.slots.len() * 2;
        let old = std::mem::replace(&mut self.slots, vec![(0, 0); size]);
        self.shift -= 1;
        let mask = self.slots.len() - 1;
        for (latency, count) in old.into_iter().filter(|&(_, count)| count > 0) {
            let mut i = self.slot_of(latency);
            while self.slots[i].1 != 0 {
                i = (i + 1) & mask;
            }
            self.slots[i] = (latency, count);
        }
    }

    /// `(latency_nanos, requests)` per distinct latency, in no particular order.
    fn into_counts(self) -> Vec<(u64, u64)> {
        self.slots.into_iter().filter(|&(_, count)| count > 0).collect()
    }
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
        let at_least = Duration::from_nanos(nanos);
        let slow: u64 = result.latencies().filter(|&(latency, _)| latency >= at_least).map(|l| l.1).sum();
        slow as f64 / result.count() as f64
    }

    #[test]
    fn serial_and_parallel_tails_follow_the_closed_form() {
        let n = 200_000u64;
        for composition in [Composition::Serial, Composition::Parallel] {
            for hops in [1u32, 5, 10] {
                let config =
                    SimConfig { hops: NonZeroU32::new(hops).unwrap(), requests: n, seed: 42, composition };
                let result = simulate(&example(), &config);
                assert_eq!(result.count(), n);
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

    /// Every request latency of a run, drawn as [`simulate`] draws them, sorted.
    fn brute_force(hops: &HopDistribution, config: &SimConfig) -> Vec<u64> {
        let mut rng = SplitMix64(config.seed);
        let mut all: Vec<u64> = (0..config.requests)
            .map(|_| {
                let draws = (0..config.hops.get()).map(|_| hops.latency_nanos(rng.next() >> 11));
                match config.composition {
                    Composition::Serial => draws.fold(0, u64::saturating_add),
                    Composition::Parallel => draws.max().unwrap_or(0),
                }
            })
            .collect();
        all.sort_unstable();
        all
    }

    /// The nearest-rank quantile by its definition, scanning every rank.
    fn oracle_quantile(sorted: &[u64], q: f64) -> u64 {
        let n = sorted.len() as f64;
        let rank = (1..=sorted.len()).find(|&k| k as f64 / n >= q).unwrap_or(sorted.len());
        sorted[rank - 1]
    }

    #[test]
    fn quantiles_are_exact_and_each_is_a_latency_some_request_had() {
        let ms = Duration::from_millis;
        // Many distinct latencies: five steps, up to seven hops.
        let hops = HopDistribution::from_percentiles(
            ms(1),
            &[(0.5, ms(2)), (0.8, ms(7)), (0.95, ms(30)), (0.99, ms(1_000))],
        )
        .unwrap();
        for composition in [Composition::Serial, Composition::Parallel] {
            for (n_hops, requests) in [(1, 1), (1, 7), (3, 100), (7, 999), (7, 1_000)] {
                let config =
                    SimConfig { hops: NonZeroU32::new(n_hops).unwrap(), requests, seed: 5, composition };
                let result = simulate(&hops, &config);
                let sorted = brute_force(&hops, &config);
                assert_eq!(result.count(), requests);
                assert_eq!(result.min(), Some(Duration::from_nanos(sorted[0])));
                assert_eq!(result.max(), Some(Duration::from_nanos(sorted[sorted.len() - 1])));
                let mut distinct = sorted.clone();
                distinct.dedup();
                let listed: Vec<u64> = result.latencies().map(|(l, _)| duration_nanos(l)).collect();
                assert_eq!(listed, distinct);
                assert_eq!(result.latencies().map(|l| l.1).sum::<u64>(), requests);

                // 0 and 1, common percentiles, every rank boundary k/n and the floats just
                // either side of it, and points in between.
                let mut qs = vec![0.0, 1.0, 0.5, 0.9, 0.92, 0.99, 0.999, 1e-12, 1.0 - 1e-12];
                for k in 0..=requests.min(200) {
                    let boundary = k as f64 / requests as f64;
                    qs.extend([boundary, (boundary + 0.3 / requests as f64).min(1.0)]);
                    if k > 0 {
                        qs.push(f64::from_bits(boundary.to_bits() - 1));
                    }
                    if k < requests {
                        qs.push(f64::from_bits(boundary.to_bits() + 1));
                    }
                }
                for q in qs {
                    let exact = result.quantile(q).unwrap().unwrap();
                    let nanos = duration_nanos(exact);
                    assert_eq!(
                        nanos,
                        oracle_quantile(&sorted, q),
                        "{composition:?} hops={n_hops} n={requests} q={q}"
                    );
                    assert!(sorted.binary_search(&nanos).is_ok(), "q={q}: {exact:?} is no request's latency");
                }
            }
        }
    }

    #[test]
    fn decimal_quantiles_split_where_they_read() {
        assert_eq!(nearest_rank(0.0, 100), Some(1));
        assert_eq!(nearest_rank(0.92, 100), Some(92));
        assert_eq!(nearest_rank(0.920_000_1, 100), Some(93));
        assert_eq!(nearest_rank(1.0, 100), Some(100));
        assert_eq!(nearest_rank(0.914, 10_000_000), Some(9_140_000));
        assert_eq!(nearest_rank(0.9911, 10_000_000), Some(9_911_000));
        assert_eq!(nearest_rank(1.0 / 3.0, 3), Some(1));
        assert_eq!(nearest_rank(0.5, 0), None);
    }

    #[test]
    fn no_requests_no_quantiles() {
        let config =
            SimConfig { hops: NonZeroU32::MIN, requests: 0, seed: 1, composition: Composition::Serial };
        let result = simulate(&example(), &config);
        assert!(result.is_empty());
        assert_eq!(result.count(), 0);
        assert_eq!(result.quantile(0.5), Ok(None));
        assert_eq!((result.min(), result.max()), (None, None));
        assert!(result.histogram().is_empty());
        assert_eq!(result.quantile(1.5), Err(InvalidQuantile(1.5)));
        assert!(result.quantile(f64::NAN).is_err());
    }

    #[test]
    fn latency_counts_grow_and_keep_every_key() {
        let mut counts = LatencyCounts::new();
        // 0 and u64::MAX are latencies like any other (a saturated serial sum is u64::MAX).
        let keys: Vec<u64> = (0..5_000u64).map(|k| k * 1_000_000).chain([u64::MAX, 1, 7]).collect();
        for (times, key) in keys.iter().enumerate() {
            for _ in 0..=(times % 3) {
                counts.add(*key);
            }
        }
        let mut got = counts.into_counts();
        got.sort_unstable();
        let mut expected: Vec<(u64, u64)> =
            keys.iter().enumerate().map(|(times, &key)| (key, (times % 3) as u64 + 1)).collect();
        expected.sort_unstable();
        assert_eq!(got, expected);
    }

    #[test]
    fn the_histogram_view_holds_every_request() {
        let config = SimConfig {
            hops: NonZeroU32::new(4).unwrap(),
            requests: 10_000,
            seed: 2,
            composition: Composition::Serial,
        };
        let result = simulate(&example(), &config);
        let histogram = result.histogram();
        assert_eq!(histogram.count(), result.count());
        assert_eq!(histogram.max(), result.max());
        let p50 = result.quantile(0.5).unwrap().unwrap().as_secs_f64();
        let approx = histogram.quantile(0.5).unwrap().unwrap().as_secs_f64();
        assert!((approx - p50).abs() <= p50 / 32.0, "{approx} vs {p50}");
    }

    #[test]
    fn serial_latency_adds_up_and_parallel_takes_the_slowest() {
        let only_base = HopDistribution::from_percentiles(Duration::from_millis(2), &[]).unwrap();
        let config =
            |composition| SimConfig { hops: NonZeroU32::new(4).unwrap(), requests: 10, seed: 1, composition };
        let serial = simulate(&only_base, &config(Composition::Serial));
        assert_eq!(serial.max(), Some(Duration::from_millis(8)));
        assert_eq!(serial.latencies().collect::<Vec<_>>(), [(Duration::from_millis(8), 10)]);
        let parallel = simulate(&only_base, &config(Composition::Parallel));
        assert_eq!(parallel.max(), Some(Duration::from_millis(2)));
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
        assert_eq!(a, b);
        let c = simulate(&example(), &SimConfig { seed: 10, ..config });
        assert_ne!(a, c);
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
