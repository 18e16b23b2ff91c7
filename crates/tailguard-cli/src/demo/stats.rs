//! Statistics over rounds: medians, and intervals from a bootstrap over the rounds.
//!
//! Every figure a verdict rests on is a median over rounds with a 95 % percentile-bootstrap
//! interval: the rounds are resampled with replacement [`RESAMPLES`] times, the statistic is
//! computed on each resample, and the interval is the 2.5th to 97.5th percentile of the
//! results. For five rounds the interval of a median is close to the rounds' min–max (a
//! resample's median falls below the smallest value with probability 5.8 %). The resampling is
//! seeded, so the same runs always give the same interval.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::report::Estimate;

/// Bootstrap resamples per interval.
pub const RESAMPLES: usize = 2000;

/// Seed of the resampling: intervals are a function of the data alone.
const SEED: u64 = 0x7461_696c_6775_6172;

/// The median of the finite values (the mean of the middle two for an even count); NaN when
/// there are none.
pub fn median(values: &[f64]) -> f64 {
    let mut finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if finite.is_empty() {
        return f64::NAN;
    }
    finite.sort_by(f64::total_cmp);
    let mid = finite.len() / 2;
    if finite.len() % 2 == 1 { finite[mid] } else { (finite[mid - 1] + finite[mid]) / 2.0 }
}

/// The `q`-quantile (0..=1) of sorted values, interpolated linearly between ranks.
fn quantile_of_sorted(sorted: &[f64], q: f64) -> f64 {
    match sorted.len() {
        0 => f64::NAN,
        1 => sorted[0],
        n => {
            let rank = q.clamp(0.0, 1.0) * (n - 1) as f64;
            let (low, frac) = (rank.floor() as usize, rank.fract());
            let high = (low + 1).min(n - 1);
            sorted[low] + (sorted[high] - sorted[low]) * frac
        }
    }
}

/// A 95 % percentile-bootstrap interval of `statistic` over `n` rounds: each resample draws
/// `n` round indices with replacement and hands them to `statistic`. Resamples whose statistic
/// is not finite are left out. `(NaN, NaN)` when no resample gives a finite value.
pub fn bootstrap(n: usize, statistic: impl Fn(&[usize]) -> f64) -> (f64, f64) {
    if n == 0 {
        return (f64::NAN, f64::NAN);
    }
    let mut rng = ChaCha8Rng::seed_from_u64(SEED);
    let mut draw = vec![0; n];
    let mut results = Vec::with_capacity(RESAMPLES);
    for _ in 0..RESAMPLES {
        for slot in &mut draw {
            *slot = rng.random_range(0..n);
        }
        let value = statistic(&draw);
        if value.is_finite() {
            results.push(value);
        }
    }
    results.sort_by(f64::total_cmp);
    (quantile_of_sorted(&results, 0.025), quantile_of_sorted(&results, 0.975))
}

/// The median of one value per round, with its bootstrap interval.
pub fn median_estimate(values: &[f64]) -> Estimate {
    let finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    let (low, high) =
        bootstrap(finite.len(), |draw| median(&draw.iter().map(|&i| finite[i]).collect::<Vec<_>>()));
    Estimate { median: median(&finite), low, high, rounds: finite.len() as u32 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(&[f64::NAN, 5.0]), 5.0);
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn quantiles_interpolate_between_ranks() {
        let sorted = [1.0, 2.0, 3.0, 4.0, 5.0];
        assert_eq!(quantile_of_sorted(&sorted, 0.0), 1.0);
        assert_eq!(quantile_of_sorted(&sorted, 0.5), 3.0);
        assert_eq!(quantile_of_sorted(&sorted, 0.625), 3.5);
        assert_eq!(quantile_of_sorted(&sorted, 1.0), 5.0);
    }

    #[test]
    fn interval_of_a_median_of_five_spans_about_their_range() {
        let e = median_estimate(&[1.0, 1.1, 1.2, 1.3, 2.0]);
        assert_eq!(e.median, 1.2);
        assert_eq!(e.rounds, 5);
        assert!(e.low >= 1.0 && e.low <= 1.1, "{e:?}");
        assert!(e.high >= 1.3 && e.high <= 2.0, "{e:?}");
        assert!(e.low <= e.median && e.median <= e.high);
    }

    #[test]
    fn intervals_are_deterministic_and_collapse_for_one_round() {
        let values = [0.5, 0.9, 0.7, 0.6];
        assert_eq!(median_estimate(&values), median_estimate(&values));
        let one = median_estimate(&[0.42]);
        assert_eq!((one.median, one.low, one.high, one.rounds), (0.42, 0.42, 0.42, 1));
        let none = median_estimate(&[f64::NAN]);
        assert!(none.median.is_nan() && none.low.is_nan() && none.rounds == 0);
    }

    #[test]
    fn identical_rounds_give_a_point_interval() {
        let e = median_estimate(&[2.0; 6]);
        assert_eq!((e.low, e.median, e.high), (2.0, 2.0, 2.0));
    }

    #[test]
    fn bootstrap_of_a_paired_ratio_uses_the_same_rounds_on_both_sides() {
        // The ratio is 2 in every round whatever the level: a paired resample sees only 2.
        let (a, b) = ([1.0, 10.0, 100.0], [2.0, 20.0, 200.0]);
        let (low, high) = bootstrap(3, |draw| {
            draw.iter().map(|&i| b[i]).sum::<f64>() / draw.iter().map(|&i| a[i]).sum::<f64>()
        });
        assert!((low - 2.0).abs() < 1e-12 && (high - 2.0).abs() < 1e-12, "{low} {high}");
    }
}
