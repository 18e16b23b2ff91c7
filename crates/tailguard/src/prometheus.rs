//! Prometheus text exposition of what the `metrics` facade cannot carry: latency histograms
//! rendered straight from a [`HistogramSnapshot`], and counters in fractional seconds.
//!
//! # Why a writer of its own
//!
//! - **Histograms.** A tailguard [`Histogram`](crate::histogram::Histogram) already is what a
//!   Prometheus histogram is: cumulative bucket counts that only grow. Handing it to the facade
//!   means re-recording every sample (`metrics::Histogram::record_many` falls back to one
//!   `record` per sample, and `metrics-exporter-prometheus` stores each one with an
//!   `Instant::now()` until its next upkeep, then buckets it). That is a cost per sample, paid
//!   again for work the histogram has done, and it grows with the request rate: the clock read
//!   alone is ~30 ns (`CLOCK_MONOTONIC` on the project's VMs, DESIGN.md §3), plus the push and,
//!   at upkeep, a search of the bounds; at an estimated ~50 ns a sample, 200 000 admissions a
//!   second would cost 1 % of a core (reasoned from those parts, not benchmarked), and the
//!   samples pile up in memory between upkeeps. Rendering instead costs one
//!   snapshot (one relaxed load per bucket, [`BUCKETS`](crate::histogram::BUCKETS) of them) and
//!   one pass over the non-empty buckets per scrape, whatever the sample rate, and keeps no
//!   second copy of the data.
//! - **Counters in seconds.** The facade's counters are `u64` (metrics-rs/metrics#367), so CPU
//!   time in seconds would lose everything below a second; a tenant's 0.44 CPU-seconds would
//!   read 0. Here counters are `f64`, as Prometheus has them.
//!
//! A service appends this text to its exporter's own rendering (`tailguard serve` does:
//! `PrometheusHandle::render()` followed by an [`Exposition`]). Names written here must not
//! also be registered through the facade, or the scrape would hold a family twice.
//!
//! # Buckets
//!
//! Histograms use [`LATENCY_BOUNDS`]: 1–2.5–5 steps from 10 µs to 10 s, in seconds. A sample is
//! counted under the smallest bound at or above the midpoint of its tailguard bucket, so a
//! bound is exact to within one tailguard bucket (at most 3.1 % of the value); `_sum` adds the
//! same midpoints (capped by the largest sample), so it is within 1.6 % of the true sum.
//!
//! # Examples
//!
//! ```
//! use std::time::Duration;
//! use tailguard::histogram::Histogram;
//! use tailguard::prometheus::{Exposition, Kind};
//!
//! let latency = Histogram::new();
//! latency.record_duration(Duration::from_micros(300));
//! let mut out = Exposition::new();
//! out.family("app_latency_seconds", Kind::Histogram, "Time to serve a request.")
//!     .histogram(&[("op", "get")], &latency.snapshot());
//! out.family("app_cpu_seconds_total", Kind::Counter, "CPU used by requests.").value(&[], 0.25);
//! let text = out.finish();
//! assert!(text.contains("# TYPE app_latency_seconds histogram\n"));
//! assert!(text.contains("app_latency_seconds_bucket{op=\"get\",le=\"0.0005\"} 1\n"));
//! assert!(text.contains("app_latency_seconds_count{op=\"get\"} 1\n"));
//! assert!(text.contains("app_cpu_seconds_total 0.25\n"));
//! ```

use std::fmt::Write as _;

use crate::histogram::HistogramSnapshot;

/// Histogram bounds in seconds: 10 µs to 10 s in 1–2.5–5 steps (a sample above 10 s counts
/// only in `+Inf`).
pub const LATENCY_BOUNDS: [f64; 19] = [
    1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// The type of a metric family, as its `# TYPE` line states it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up (name ends in `_total`).
    Counter,
    /// Goes up and down.
    Gauge,
    /// Cumulative `_bucket{le}` counts with `_sum` and `_count`.
    Histogram,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// Prometheus text (format 0.0.4) being written, family by family.
#[derive(Debug, Default)]
pub struct Exposition {
    text: String,
}

/// One family: its `# HELP` and `# TYPE` lines are written; add its series.
#[derive(Debug)]
pub struct Family<'a> {
    text: &'a mut String,
    name: &'a str,
    kind: Kind,
}

impl Exposition {
    /// Empty text.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts a family: writes its `# HELP` (with `help`) and `# TYPE` lines. Call it once per
    /// name, then add every series of the family to what it returns.
    pub fn family<'a>(&'a mut self, name: &'a str, kind: Kind, help: &str) -> Family<'a> {
        debug_assert!(kind != Kind::Counter || name.ends_with("_total"), "counter {name} needs _total");
        self.text.push_str("# HELP ");
        self.text.push_str(name);
        self.text.push(' ');
        for c in help.chars() {
            match c {
                '\\' => self.text.push_str("\\\\"),
                '\n' => self.text.push_str("\\n"),
                c => self.text.push(c),
            }
        }
        self.text.push('\n');
        let _ = writeln!(self.text, "# TYPE {name} {}", kind.name());
        Family { text: &mut self.text, name, kind }
    }

    /// The text written so far.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The text.
    pub fn finish(self) -> String {
        self.text
    }
}

impl Family<'_> {
    /// Adds one series of a counter or gauge.
    pub fn value(&mut self, labels: &[(&str, &str)], value: f64) -> &mut Self {
        debug_assert!(self.kind != Kind::Histogram, "{} is a histogram", self.name);
        sample(self.text, self.name, "", labels, None, value);
        self
    }

    /// Adds one series of a histogram: `histogram` in seconds over [`LATENCY_BOUNDS`].
    pub fn histogram(&mut self, labels: &[(&str, &str)], histogram: &HistogramSnapshot) -> &mut Self {
        debug_assert!(self.kind == Kind::Histogram, "{} is not a histogram", self.name);
        let buckets = cumulative_buckets(histogram, &LATENCY_BOUNDS);
        let mut bound = String::new();
        for (le, count) in LATENCY_BOUNDS.iter().zip(&buckets.counts) {
            bound.clear();
            let _ = write!(bound, "{le}");
            sample(self.text, self.name, "_bucket", labels, Some(&bound), *count as f64);
        }
        sample(self.text, self.name, "_bucket", labels, Some("+Inf"), histogram.count() as f64);
        sample(self.text, self.name, "_sum", labels, None, buckets.sum_seconds);
        sample(self.text, self.name, "_count", labels, None, histogram.count() as f64);
        self
    }
}

/// Writes `name{labels,le="…"} value`.
fn sample(
    text: &mut String,
    name: &str,
    suffix: &str,
    labels: &[(&str, &str)],
    le: Option<&str>,
    value: f64,
) {
    text.push_str(name);
    text.push_str(suffix);
    let le = le.map(|le| ("le", le));
    let mut all = labels.iter().copied().chain(le).peekable();
    if all.peek().is_some() {
        text.push('{');
        for (i, (key, value)) in all.enumerate() {
            if i > 0 {
                text.push(',');
            }
            text.push_str(key);
            text.push_str("=\"");
            for c in value.chars() {
                match c {
                    '\\' => text.push_str("\\\\"),
                    '"' => text.push_str("\\\""),
                    '\n' => text.push_str("\\n"),
                    c => text.push(c),
                }
            }
            text.push('"');
        }
        text.push('}');
    }
    let _ = writeln!(text, " {value}");
}

/// A snapshot folded onto Prometheus bounds.
#[derive(Debug, PartialEq)]
pub(crate) struct Buckets {
    /// Samples at or below each bound (cumulative).
    pub(crate) counts: Vec<u64>,
    /// Sum of the samples' bucket midpoints, in seconds.
    pub(crate) sum_seconds: f64,
}

/// Folds `histogram` onto `bounds` (seconds, ascending): each tailguard bucket counts under the
/// smallest bound at or above its midpoint (capped by the largest sample), cumulatively.
pub(crate) fn cumulative_buckets(histogram: &HistogramSnapshot, bounds: &[f64]) -> Buckets {
    let bounds_nanos: Vec<u64> = bounds.iter().map(|b| (b * 1e9).round() as u64).collect();
    let max = histogram.max().map_or(0, crate::clock::duration_nanos);
    let mut counts = vec![0u64; bounds.len()];
    let mut sum_nanos: u128 = 0;
    let mut at = 0;
    for (low, high, count) in histogram.buckets() {
        let mid = (low + (high - low) / 2).min(max).max(low);
        sum_nanos += u128::from(mid) * u128::from(count);
        while at < bounds_nanos.len() && bounds_nanos[at] < mid {
            at += 1;
        }
        if let Some(slot) = counts.get_mut(at) {
            *slot += count;
        }
    }
    let mut running = 0;
    for count in &mut counts {
        running += *count;
        *count = running;
    }
    Buckets { counts, sum_seconds: sum_nanos as f64 / 1e9 }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::histogram::Histogram;

    /// Every sample value and how many of it, against the exact count at or below each bound.
    #[test]
    fn buckets_are_cumulative_and_within_one_tailguard_bucket_of_exact() {
        let histogram = Histogram::new();
        let samples: Vec<u64> = (0..2000u64).map(|i| 1_000 + i * i * 2_600).collect(); // 1 µs .. ~10.4 s
        for &s in &samples {
            histogram.record(s);
        }
        let snapshot = histogram.snapshot();
        let buckets = cumulative_buckets(&snapshot, &LATENCY_BOUNDS);
        assert!(buckets.counts.windows(2).all(|w| w[0] <= w[1]), "{:?}", buckets.counts);
        assert!(*buckets.counts.last().unwrap() <= snapshot.count());
        for (bound, counted) in LATENCY_BOUNDS.iter().zip(&buckets.counts) {
            let nanos = bound * 1e9;
            let at_most = |f: f64| samples.iter().filter(|&&s| (s as f64) <= nanos * f).count() as u64;
            // A bound is exact to within one tailguard bucket (1/32 of the value).
            assert!(
                (at_most(1.0 - 1.0 / 32.0)..=at_most(1.0 + 1.0 / 32.0)).contains(counted),
                "le={bound}: {counted}"
            );
        }
        let exact: f64 = samples.iter().map(|&s| s as f64 / 1e9).sum();
        assert!((buckets.sum_seconds - exact).abs() <= exact / 64.0, "{} vs {exact}", buckets.sum_seconds);
    }

    #[test]
    fn a_sample_counts_under_the_next_bound_and_one_above_ten_seconds_only_in_inf() {
        let histogram = Histogram::new();
        histogram.record_duration(Duration::from_micros(990)); // bucket [983 040, 999 424) ns
        histogram.record_duration(Duration::from_secs(30));
        let mut out = Exposition::new();
        out.family("t_seconds", Kind::Histogram, "test").histogram(&[], &histogram.snapshot());
        let text = out.finish();
        assert!(text.contains("t_seconds_bucket{le=\"0.0005\"} 0\n"), "{text}");
        assert!(text.contains("t_seconds_bucket{le=\"0.001\"} 1\n"), "{text}");
        assert!(text.contains("t_seconds_bucket{le=\"10\"} 1\n"), "{text}");
        assert!(text.contains("t_seconds_bucket{le=\"+Inf\"} 2\n"), "{text}");
        assert!(text.contains("t_seconds_count 2\n"), "{text}");
    }

    #[test]
    fn an_empty_histogram_has_every_bucket_at_zero() {
        let mut out = Exposition::new();
        out.family("e_seconds", Kind::Histogram, "empty")
            .histogram(&[("a", "b")], &HistogramSnapshot::empty());
        let text = out.finish();
        assert_eq!(
            text.lines().filter(|l| l.starts_with("e_seconds_bucket")).count(),
            LATENCY_BOUNDS.len() + 1
        );
        assert!(text.lines().filter(|l| !l.starts_with('#')).all(|l| l.ends_with(" 0")), "{text}");
    }

    #[test]
    fn help_and_label_values_are_escaped() {
        let mut out = Exposition::new();
        out.family("x_total", Kind::Counter, "a \\ b\nc").value(&[("k", "q\"\\\n")], 1.5);
        assert_eq!(
            out.finish(),
            "# HELP x_total a \\\\ b\\nc\n# TYPE x_total counter\nx_total{k=\"q\\\"\\\\\\n\"} 1.5\n"
        );
    }
}
