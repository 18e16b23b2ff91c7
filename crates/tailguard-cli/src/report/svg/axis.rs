//! Axes: how values map to positions, and round ticks with short, distinct labels.

use super::*;

pub(super) struct Axis {
    pub(super) scale: Scale,
    pub(super) low: f64,
    pub(super) high: f64,
    /// Distance between ticks on a linear axis (a log axis has one per power of ten).
    pub(super) step: f64,
}

impl Axis {
    /// The axis with round ends that covers `values`; values the scale cannot show are ignored.
    pub(super) fn fit(scale: Scale, values: impl Iterator<Item = f64>) -> Axis {
        let (mut low, mut high) = (f64::INFINITY, f64::NEG_INFINITY);
        for v in values.filter(|&v| usable(v, scale)) {
            low = low.min(v);
            high = high.max(v);
        }
        if !low.is_finite() {
            (low, high) = if scale == Scale::Log { (1.0, 10.0) } else { (0.0, 1.0) };
        }
        match scale {
            Scale::Linear => {
                // Linear axes start at zero when the data are all positive: shares and latencies
                // read honestly from zero.
                let low = if low >= 0.0 { 0.0 } else { low };
                let high = if high <= low { low + 1.0 } else { high };
                let step = nice_step((high - low) / 5.0);
                // Less a hair each way, so that 0.000025 / 5e-6 = 5.000000000000001 ends the axis
                // at five steps, not six.
                let (first, last) = ((low / step + 1e-9).floor(), (high / step - 1e-9).ceil());
                Axis { scale, low: first * step, high: last * step, step }
            }
            Scale::Log => Axis {
                scale,
                low: 10f64.powf(low.log10().floor()),
                high: 10f64.powf(high.log10().ceil().max(low.log10().floor() + 1.0)),
                step: 10.0,
            },
        }
    }

    /// Position of `v` in [0, 1] along the axis.
    pub(super) fn frac(&self, v: f64) -> f64 {
        match self.scale {
            Scale::Linear => (v - self.low) / (self.high - self.low),
            Scale::Log => (v.log10() - self.low.log10()) / (self.high.log10() - self.low.log10()),
        }
    }

    pub(super) fn ticks(&self) -> Vec<f64> {
        match self.scale {
            Scale::Linear => {
                // Whole multiples of the step, so that zero is zero and not low + 3 × step.
                let first = (self.low / self.step).round();
                let n = ((self.high - self.low) / self.step).round() as i64;
                (0..=n).map(|i| (first + i as f64) * self.step).collect()
            }
            Scale::Log => {
                let (a, b) = (self.low.log10().round() as i32, self.high.log10().round() as i32);
                (a..=b).map(|e| 10f64.powi(e)).collect()
            }
        }
    }
}

/// The round step (1, 2 or 5 times a power of ten) nearest above `raw`.
pub(super) fn nice_step(raw: f64) -> f64 {
    if raw.is_nan() || raw <= 0.0 || !raw.is_finite() {
        return 1.0;
    }
    let magnitude = 10f64.powf(raw.log10().floor());
    // Less a hair, so that 0.2 / 0.1 = 2.0000000000000004 counts as 2.
    let m = raw / magnitude * (1.0 - 1e-9);
    let nice = if m <= 1.0 {
        1.0
    } else if m <= 2.0 {
        2.0
    } else if m <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * magnitude
}

/// A tick's label: the value in the fewest digits that stand for it (to a millionth), with k, M, G
/// or T from a thousand up (`15k`, `1.5M`) and a power of ten below `plain_from` or from 1e15
/// (`5e-5`).
pub(super) fn tick_label(v: f64, plain_from: f64) -> String {
    /// SI multipliers, largest first.
    const UNITS: [(f64, &str); 4] = [(1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")];
    let a = v.abs();
    if a == 0.0 {
        return "0".to_owned();
    }
    if !a.is_finite() {
        return v.to_string();
    }
    // A hair of slack, so that a value a rounding error short of a round one (999.9999999) reads
    // as `1k`, not `1000`, and 9.999999999999999e-5 as `1e-4`.
    let a = a * (1.0 + 1e-9);
    if !(plain_from..1e15).contains(&a) {
        let exponent = a.log10().floor() as i32;
        return format!("{}e{exponent}", shortest(v / 10f64.powi(exponent)));
    }
    let (unit, suffix) = UNITS.into_iter().find(|&(unit, _)| a >= unit).unwrap_or((1.0, ""));
    format!("{}{suffix}", shortest(v / unit))
}

/// `v` with the fewest decimals (at most six) that keep it within a millionth of itself.
pub(super) fn shortest(v: f64) -> String {
    for decimals in 0..6 {
        let text = format!("{v:.decimals$}");
        if text.parse::<f64>().is_ok_and(|r| (r - v).abs() <= 1e-6 * v.abs()) {
            return text;
        }
    }
    format!("{v:.6}")
}

/// Labels of an axis' ticks, distinct where the ticks are: the short forms of [`tick_label`], or
/// every value in full (Rust's shortest round-trip form) where two short forms would repeat.
/// Decimals from 0.0001 up; an axis that ends below 0.001 writes all its ticks as powers of ten
/// (`5e-5`, `1e-4`, `1.5e-4`), not some each way.
pub(super) fn tick_labels(ticks: &[f64]) -> Vec<String> {
    let largest = ticks.iter().fold(0f64, |m, t| m.max(t.abs()));
    let plain_from = if largest < 1e-3 { 1e-3 } else { 1e-4 };
    let labels: Vec<String> = ticks.iter().map(|&t| tick_label(t, plain_from)).collect();
    if labels.iter().enumerate().all(|(i, label)| !labels[..i].contains(label)) {
        labels
    } else {
        ticks.iter().map(f64::to_string).collect()
    }
}

/// A value in a tooltip: three significant digits, or a power of ten where that reads better.
pub(super) fn value_label(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 || !a.is_finite() {
        return if a == 0.0 { "0".to_owned() } else { v.to_string() };
    }
    if !(1e-3..1e6).contains(&a) {
        return format!("{v:.2e}");
    }
    let decimals = (2 - a.log10().floor() as i32).max(0) as usize;
    let text = format!("{v:.decimals$}");
    if text.contains('.') { text.trim_end_matches('0').trim_end_matches('.').to_owned() } else { text }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(scale: Scale, values: &[f64]) -> Vec<String> {
        tick_labels(&Axis::fit(scale, values.iter().copied()).ticks())
    }

    fn distinct(labels: &[String]) -> bool {
        labels.iter().enumerate().all(|(i, label)| !labels[..i].contains(label))
    }

    #[test]
    fn nice_steps() {
        assert_eq!(nice_step(0.13), 0.2);
        assert_eq!(nice_step(3.0), 5.0);
        assert_eq!(nice_step(7.0), 10.0);
        assert_eq!(nice_step(0.0), 1.0);
        assert_eq!(nice_step(0.2), 0.2);
    }

    #[test]
    fn axes_cover_the_data() {
        let a = Axis::fit(Scale::Linear, [0.3, 7.2].into_iter());
        assert!(a.low <= 0.3 && a.high >= 7.2);
        let l = Axis::fit(Scale::Log, [0.05, 0.0, 120.0].into_iter());
        assert_eq!((l.low, l.high), (0.01, 1000.0));
        assert_eq!(l.ticks().len(), 6);
    }

    #[test]
    fn tick_labels_are_short_and_exact() {
        assert_eq!(labels(Scale::Linear, &[0.0, 25_000.0]), ["0", "5k", "10k", "15k", "20k", "25k"]);
        assert_eq!(labels(Scale::Linear, &[0.0, 0.0003]), ["0", "1e-4", "2e-4", "3e-4"]);
        assert_eq!(labels(Scale::Linear, &[0.0, 0.0018]), ["0", "0.0005", "0.001", "0.0015", "0.002"]);
        assert_eq!(
            labels(Scale::Linear, &[0.0, 0.000_025]),
            ["0", "5e-6", "1e-5", "1.5e-5", "2e-5", "2.5e-5"]
        );
        assert_eq!(labels(Scale::Linear, &[0.0, 1.2]), ["0", "0.5", "1", "1.5"]);
        assert_eq!(labels(Scale::Linear, &[0.0, 0.9]), ["0", "0.2", "0.4", "0.6", "0.8", "1"]);
        // Ticks are whole multiples of the step: zero is exactly zero, not 5.55e-17.
        assert_eq!(labels(Scale::Linear, &[-0.3, 0.7]), ["-0.4", "-0.2", "0", "0.2", "0.4", "0.6", "0.8"]);
        assert_eq!(labels(Scale::Linear, &[0.0, 2.4e6]), ["0", "500k", "1M", "1.5M", "2M", "2.5M"]);
        assert_eq!(labels(Scale::Linear, &[-30.0, 12.0]), ["-30", "-20", "-10", "0", "10", "20"]);
        assert_eq!(
            labels(Scale::Log, &[2e-6, 3e4]).join(" "),
            "1e-6 1e-5 0.0001 0.001 0.01 0.1 1 10 100 1k 10k 100k"
        );
        assert_eq!(labels(Scale::Log, &[5e14, 2e16]), ["100T", "1e15", "1e16", "1e17"]);
        // A tick built by repeated addition reads as the round number it stands for.
        assert_eq!(tick_label(0.1 + 0.2, 1e-4), "0.3");
        assert_eq!(tick_label(999.999_999_9, 1e-4), "1k");
        assert_eq!(tick_label(-0.0, 1e-4), "0");
    }

    #[test]
    fn tick_labels_never_repeat() {
        // The axes the other tests build, and the two that used to repeat (2e4, 2e4).
        let mut axes: Vec<(Scale, Vec<f64>)> = vec![
            (Scale::Linear, vec![0.3, 7.2]),
            (Scale::Log, vec![0.05, 0.0, 120.0]),
            (Scale::Linear, vec![0.0, 25_000.0]),
            (Scale::Linear, vec![0.0, 0.0003]),
            (Scale::Linear, vec![15_000.0, 20_000.0]),
        ];
        // And every range from 1e-9 to 1e16 at two significant digits, linear from zero, linear
        // around zero and log.
        for exponent in -9..=16 {
            for mantissa in 10..100 {
                let high = f64::from(mantissa) * 10f64.powi(exponent - 1);
                axes.push((Scale::Linear, vec![0.0, high]));
                axes.push((Scale::Linear, vec![-high / 3.0, high]));
                axes.push((Scale::Log, vec![high / 1e3, high]));
            }
        }
        for (scale, values) in axes {
            let labels = labels(scale, &values);
            assert!(distinct(&labels), "{scale:?} axis over {values:?}: {labels:?}");
        }
        // Ticks too close for the short form fall back to every value in full.
        let close = tick_labels(&[1.0, 1.000_000_01]);
        assert!(distinct(&close), "{close:?}");
    }
}
