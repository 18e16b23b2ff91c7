//! Tests of the histogram: bucket bounds and quantiles, snapshots and their differences, and
//! the windowed histogram on an injected clock.

use super::*;
use crate::clock::ManualClock;
use proptest::prelude::*;

#[test]
fn buckets_are_contiguous_and_cover_their_values() {
    let mut expected_low = 0;
    for i in 0..BUCKETS {
        let (low, high) = bucket_bounds(i);
        assert_eq!(low, expected_low, "bucket {i} leaves a hole");
        assert!(high > low);
        assert_eq!(bucket_index(low), i);
        assert_eq!(bucket_index(high - 1), i);
        expected_low = high;
    }
    assert_eq!(bucket_index(u64::MAX), BUCKETS - 1);
}

#[test]
fn relative_width_is_bounded_above_the_exact_range() {
    for i in SUB_BUCKETS..BUCKETS {
        let (low, high) = bucket_bounds(i);
        assert!((high - low) * SUB_BUCKETS as u64 <= low, "bucket {i} too wide");
    }
}

#[test]
fn empty_histogram_has_no_quantiles() {
    let s = Histogram::new().snapshot();
    assert_eq!(s.count(), 0);
    assert_eq!(s.p99(), None);
    assert_eq!(s.max(), None);
    assert_eq!(s.quantile(0.5), Ok(None));
}

#[test]
fn invalid_quantiles_are_refused() {
    let s = Histogram::new().snapshot();
    assert_eq!(s.quantile(1.5), Err(InvalidQuantile(1.5)));
    assert!(s.quantile(f64::NAN).is_err());
    assert!(s.quantile(-0.1).unwrap_err().to_string().contains("outside [0, 1]"));
}

#[test]
fn small_values_are_exact() {
    let h = Histogram::new();
    for v in [3, 3, 7, 31] {
        h.record(v);
    }
    let s = h.snapshot();
    assert_eq!(s.p50(), Some(Duration::from_nanos(3)));
    assert_eq!(s.quantile(0.75).unwrap(), Some(Duration::from_nanos(7)));
    assert_eq!(s.max(), Some(Duration::from_nanos(31)));
}

#[test]
fn since_subtracts_and_merge_adds() {
    let h = Histogram::new();
    h.record(1_000);
    let first = h.snapshot();
    h.record(2_000_000);
    h.record_n(5_000, 3);
    let later = h.snapshot();
    let diff = later.since(&first);
    assert_eq!(diff.count(), 4);
    let mut merged = first.clone();
    merged.merge(&diff);
    assert_eq!(merged.count(), later.count());
    assert_eq!(merged.p50(), later.p50());
    let max = diff.max().unwrap();
    assert!(max <= Duration::from_nanos(2_000_000) && max >= Duration::from_nanos(1_950_000));
}

#[test]
fn window_rotates_on_the_clock() {
    let clock = ManualClock::new();
    let config = WindowConfig { slot: Duration::from_millis(100), slots: 3 };
    let w = WindowedHistogram::with_clock(config, clock.shared()).unwrap();
    w.record(Duration::from_micros(10)); // slot 0
    clock.advance(Duration::from_millis(100));
    assert_eq!(w.snapshot().histogram.count(), 1); // the read places slot 1's boundary
    w.record(Duration::from_micros(20)); // slot 1
    let s = w.snapshot();
    assert_eq!(s.histogram.count(), 2);
    assert!(!s.warm);
    assert_eq!(s.span, Duration::from_millis(100));
    clock.advance(Duration::from_millis(150)); // 250 ms: slot 2; window = slots 0..=2
    assert_eq!(w.snapshot().histogram.count(), 2);
    w.record(Duration::from_micros(30));
    assert_eq!(w.snapshot().histogram.count(), 3);
    clock.advance(Duration::from_millis(100)); // 350 ms: slot 3; slot 0 leaves
    let s = w.snapshot();
    assert_eq!(s.histogram.count(), 2);
    assert!(s.warm);
    assert_eq!(s.span, Duration::from_millis(250));
    assert_eq!(s.histogram.p50().map(|d| d.as_micros()), Some(20));
    clock.advance(Duration::from_millis(200)); // 550 ms: slot 5; only slots 3..=5 remain
    assert_eq!(w.snapshot().histogram.count(), 0);
}

#[test]
fn unread_slots_keep_their_samples_together() {
    let clock = ManualClock::new();
    let config = WindowConfig { slot: Duration::from_millis(10), slots: 4 };
    let w = WindowedHistogram::with_clock(config, clock.shared()).unwrap();
    w.record(Duration::from_micros(1));
    clock.advance(Duration::from_millis(25)); // two boundaries pass unread
    w.record(Duration::from_micros(2));
    assert_eq!(w.snapshot().histogram.count(), 2);
    // The boundary at 10 ms passed unread: it holds what the read at 0 ms saw (nothing), so
    // the first sample stays in the window until 20 ms's boundary leaves.
    clock.advance(Duration::from_millis(20)); // 45 ms: window = 10..50 ms
    assert_eq!(w.snapshot().histogram.count(), 2);
    clock.advance(Duration::from_millis(30)); // 75 ms: window = 40..80 ms
    assert_eq!(w.snapshot().histogram.count(), 0);
    // A gap longer than the whole window: samples that cannot be placed count as recent.
    w.record(Duration::from_micros(3));
    clock.advance(Duration::from_secs(5));
    let s = w.snapshot();
    assert_eq!(s.histogram.count(), 1);
    assert!(s.span <= Duration::from_millis(10));
    clock.advance(Duration::from_millis(40));
    assert_eq!(w.snapshot().histogram.count(), 0);
}

#[test]
fn window_config_is_validated() {
    let bad_slot = WindowConfig { slot: Duration::ZERO, slots: 25 };
    assert_eq!(WindowedHistogram::new(bad_slot).err(), Some(InvalidWindow::Slot(Duration::ZERO)));
    let bad_slots = WindowConfig { slot: Duration::from_millis(100), slots: 0 };
    let err = WindowedHistogram::new(bad_slots).unwrap_err();
    assert!(err.to_string().contains("1 ..= 1000"));
    assert_eq!(WindowConfig::DEFAULT.length(), Duration::from_millis(2500));
}

fn exact_quantile(sorted: &[u64], q: f64) -> u64 {
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

proptest! {
    #[test]
    fn quantiles_are_within_one_bucket_of_exact(
        values in proptest::collection::vec(0u64..50_000_000_000, 1..400),
        q in 0.0f64..=1.0,
    ) {
        let h = Histogram::new();
        for &v in &values {
            h.record(v);
        }
        let mut sorted = values.clone();
        sorted.sort_unstable();
        let exact = exact_quantile(&sorted, q);
        let got = h.snapshot().quantile(q).unwrap().unwrap().as_nanos() as u64;
        let (low, high) = bucket_bounds(bucket_index(exact));
        prop_assert!(got >= low && got < high, "q={q} exact={exact} got={got}");
        // Relative error at most one bucket width: 1/32 of the value above 32 ns.
        prop_assert!(got.abs_diff(exact) * SUB_BUCKETS as u64 <= exact.max(SUB_BUCKETS as u64));
    }

    #[test]
    fn quantiles_are_monotone(
        values in proptest::collection::vec(0u64..u64::MAX, 1..200),
        mut qs in proptest::collection::vec(0.0f64..=1.0, 2..20),
    ) {
        let h = Histogram::new();
        for &v in &values {
            h.record(v);
        }
        let s = h.snapshot();
        qs.sort_by(f64::total_cmp);
        let got: Vec<_> = qs.iter().map(|&q| s.quantile(q).unwrap().unwrap()).collect();
        prop_assert!(got.windows(2).all(|w| w[0] <= w[1]));
        prop_assert!(*got.last().unwrap() <= s.max().unwrap());
        prop_assert_eq!(s.count(), values.len() as u64);
    }
}
