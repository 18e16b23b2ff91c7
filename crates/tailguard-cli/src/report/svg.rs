//! A small SVG chart renderer: line charts and grouped bar charts on axes with round ticks, each
//! with a legend. Enough for the report's plots without a plotting dependency.

use std::fmt::Write as _;

/// Colours of successive series (colour-blind-safe palette).
const PALETTE: [&str; 8] =
    ["#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9", "#000000", "#f0e442"];

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 300.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 150.0;
const TOP: f64 = 28.0;
const BOTTOM: f64 = 44.0;
const PLOT_W: f64 = WIDTH - LEFT - RIGHT;
const PLOT_H: f64 = HEIGHT - TOP - BOTTOM;

/// Font size of the charts' text, unless an element says otherwise.
const FONT_SIZE: f64 = 11.0;

/// Colour of reference (goal) lines and their labels.
const REFERENCE: &str = "#c00";

/// How an axis maps values to positions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scale {
    /// Evenly spaced values.
    Linear,
    /// Evenly spaced powers of ten; values must be positive (others are skipped).
    Log,
}

/// Whether `v` can be placed on an axis of this scale.
fn usable(v: f64, scale: Scale) -> bool {
    v.is_finite() && (scale == Scale::Linear || v > 0.0)
}

/// A named series of points; `None` y values break the line.
#[derive(Clone, Debug)]
pub struct Series {
    /// Legend text.
    pub name: String,
    /// Index into the palette, so one mode keeps its colour across charts.
    pub colour: usize,
    /// `(x, y)` points in order of x.
    pub points: Vec<(f64, Option<f64>)>,
}

/// A line chart.
#[derive(Clone, Debug)]
pub struct Chart<'a> {
    /// Title above the plot.
    pub title: &'a str,
    /// Label under the x axis.
    pub x_label: &'a str,
    /// Label beside the y axis.
    pub y_label: &'a str,
    /// Scale of the x axis.
    pub x_scale: Scale,
    /// Scale of the y axis.
    pub y_scale: Scale,
    /// Named series; `None` y values break the line.
    pub series: Vec<Series>,
    /// A horizontal reference line (e.g. the target), with its label.
    pub reference: Option<(f64, &'a str)>,
}

/// Escapes text for inclusion in HTML or SVG.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

struct Axis {
    scale: Scale,
    low: f64,
    high: f64,
    /// Distance between ticks on a linear axis (a log axis has one per power of ten).
    step: f64,
}

impl Axis {
    /// The axis with round ends that covers `values`; values the scale cannot show are ignored.
    fn fit(scale: Scale, values: impl Iterator<Item = f64>) -> Axis {
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
    fn frac(&self, v: f64) -> f64 {
        match self.scale {
            Scale::Linear => (v - self.low) / (self.high - self.low),
            Scale::Log => (v.log10() - self.low.log10()) / (self.high.log10() - self.low.log10()),
        }
    }

    fn ticks(&self) -> Vec<f64> {
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
fn nice_step(raw: f64) -> f64 {
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
fn tick_label(v: f64, plain_from: f64) -> String {
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
fn shortest(v: f64) -> String {
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
fn tick_labels(ticks: &[f64]) -> Vec<String> {
    let largest = ticks.iter().fold(0f64, |m, t| m.max(t.abs()));
    let plain_from = if largest < 1e-3 { 1e-3 } else { 1e-4 };
    let labels: Vec<String> = ticks.iter().map(|&t| tick_label(t, plain_from)).collect();
    if labels.iter().enumerate().all(|(i, label)| !labels[..i].contains(label)) {
        labels
    } else {
        ticks.iter().map(f64::to_string).collect()
    }
}

impl Chart<'_> {
    /// Renders the chart as an `<svg>` element.
    pub fn render(&self) -> String {
        let points = || self.series.iter().flat_map(|line| line.points.iter());
        let x = Axis::fit(self.x_scale, points().map(|p| p.0));
        let y = Axis::fit(self.y_scale, points().filter_map(|p| p.1).chain(self.reference.map(|(v, _)| v)));
        let px = |v: f64| LEFT + x.frac(v) * PLOT_W;
        let py = |v: f64| TOP + (1.0 - y.frac(v)) * PLOT_H;
        let mut s = open_svg(self.title);
        y_grid(&mut s, &y, py);
        x_grid(&mut s, &x, px);
        frame(&mut s, Some(self.x_label), self.y_label);
        if let Some((value, label)) = self.reference.filter(|&(v, _)| usable(v, self.y_scale)) {
            horizontal_reference(&mut s, py(value), label);
        }
        for (i, line) in self.series.iter().enumerate() {
            let colour = PALETTE[line.colour % PALETTE.len()];
            let mut path = String::new();
            let mut pen_down = false;
            for &(xv, yv) in &line.points {
                match yv {
                    Some(yv) if usable(xv, self.x_scale) && usable(yv, self.y_scale) => {
                        let _ =
                            write!(path, "{}{:.1},{:.1} ", if pen_down { 'L' } else { 'M' }, px(xv), py(yv));
                        pen_down = true;
                    }
                    _ => pen_down = false,
                }
            }
            let _ = write!(
                s,
                r#"<path d="{}" fill="none" stroke="{colour}" stroke-width="1.6"><title>{}</title></path>"#,
                path.trim_end(),
                escape(&line.name)
            );
            legend_entry(&mut s, i, self.series.len(), colour, Swatch::Line, &line.name);
        }
        s.push_str("</svg>");
        s
    }
}

/// Bars of one series in a [`BarChart`]: one value per category (`None`: no bar).
#[derive(Clone, Debug)]
pub struct Bars {
    /// Legend text.
    pub name: String,
    /// Index into the palette.
    pub colour: usize,
    /// One value per category, in the chart's category order.
    pub values: Vec<Option<f64>>,
}

/// A grouped bar chart: one group per category, one bar per series within each group, each
/// bar labelled with its value.
#[derive(Clone, Debug)]
pub struct BarChart<'a> {
    /// Title above the plot.
    pub title: &'a str,
    /// Label beside the y axis.
    pub y_label: &'a str,
    /// Scale of the y axis (log bars rise from the axis' lowest power of ten).
    pub y_scale: Scale,
    /// Category names under the groups.
    pub categories: Vec<String>,
    /// The series, drawn side by side in each group.
    pub series: Vec<Bars>,
    /// How to print a bar's value above it.
    pub label: fn(f64) -> String,
}

impl BarChart<'_> {
    /// Renders the chart as an `<svg>` element.
    pub fn render(&self) -> String {
        let values = self.series.iter().flat_map(|bars| bars.values.iter().flatten().copied());
        let y = Axis::fit(self.y_scale, values);
        let py = |v: f64| TOP + (1.0 - y.frac(v).clamp(0.0, 1.0)) * PLOT_H;
        let mut s = open_svg(self.title);
        y_grid(&mut s, &y, py);
        frame(&mut s, None, self.y_label);
        let groups = self.categories.len().max(1) as f64;
        let group_w = PLOT_W / groups;
        let bar_w = group_w * 0.8 / self.series.len().max(1) as f64;
        let base = py(y.low);
        for (c, category) in self.categories.iter().enumerate() {
            let group_x = LEFT + c as f64 * group_w;
            let _ = write!(
                s,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
                group_x + group_w / 2.0,
                TOP + PLOT_H + 16.0,
                escape(category)
            );
            for (i, bars) in self.series.iter().enumerate() {
                let Some(value) = bars.values.get(c).copied().flatten().filter(|&v| usable(v, self.y_scale))
                else {
                    continue;
                };
                let colour = PALETTE[bars.colour % PALETTE.len()];
                let x = group_x + group_w * 0.1 + i as f64 * bar_w;
                let top = py(value);
                let _ = write!(
                    s,
                    r#"<rect x="{x:.1}" y="{top:.1}" width="{:.1}" height="{:.1}" fill="{colour}"><title>{}: {}</title></rect><text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="10">{}</text>"#,
                    (bar_w - 2.0).max(1.0),
                    (base - top).max(0.0),
                    escape(&bars.name),
                    escape(&(self.label)(value)),
                    x + bar_w / 2.0,
                    top - 3.0,
                    escape(&(self.label)(value))
                );
            }
        }
        for (i, bars) in self.series.iter().enumerate() {
            let colour = PALETTE[bars.colour % PALETTE.len()];
            legend_entry(&mut s, i, self.series.len(), colour, Swatch::Bar, &bars.name);
        }
        s.push_str("</svg>");
        s
    }
}

/// An `<svg>` of the standard size, opened with its title (the caller closes it).
fn open_svg(title: &str) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" font-family="sans-serif" font-size="{FONT_SIZE}" role="img">"#
    );
    let _ = write!(s, "<title>{}</title>", escape(title));
    let _ =
        write!(s, r#"<text x="{LEFT}" y="16" font-size="13" font-weight="bold">{}</text>"#, escape(title));
    s
}

/// Horizontal grid lines across the plot at `y`'s ticks, with their labels.
fn y_grid(s: &mut String, y: &Axis, py: impl Fn(f64) -> f64) {
    let ticks = y.ticks();
    for (&t, label) in ticks.iter().zip(tick_labels(&ticks)) {
        let yy = py(t);
        let _ = write!(
            s,
            r##"<line x1="{LEFT}" x2="{:.1}" y1="{yy:.1}" y2="{yy:.1}" stroke="#ddd"/><text class="y-tick" x="{:.1}" y="{:.1}" text-anchor="end">{label}</text>"##,
            LEFT + PLOT_W,
            LEFT - 6.0,
            yy + 4.0,
        );
    }
}

/// Vertical grid lines across the plot at `x`'s ticks, with their labels under the plot.
fn x_grid(s: &mut String, x: &Axis, px: impl Fn(f64) -> f64) {
    let ticks = x.ticks();
    for (&t, label) in ticks.iter().zip(tick_labels(&ticks)) {
        let xx = px(t);
        let _ = write!(
            s,
            r##"<line x1="{xx:.1}" x2="{xx:.1}" y1="{TOP}" y2="{:.1}" stroke="#eee"/><text class="x-tick" x="{xx:.1}" y="{:.1}" text-anchor="middle">{label}</text>"##,
            TOP + PLOT_H,
            TOP + PLOT_H + 16.0,
        );
    }
}

/// The plot's frame, the x axis' title under it (where there is one) and the y axis' beside it.
fn frame(s: &mut String, x_label: Option<&str>, y_label: &str) {
    let _ = write!(
        s,
        r##"<rect x="{LEFT}" y="{TOP}" width="{PLOT_W:.1}" height="{PLOT_H:.1}" fill="none" stroke="#888"/>"##
    );
    if let Some(x_label) = x_label {
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            LEFT + PLOT_W / 2.0,
            HEIGHT - 8.0,
            escape(x_label)
        );
    }
    let _ = write!(
        s,
        r#"<text transform="translate(14 {:.1}) rotate(-90)" text-anchor="middle">{}</text>"#,
        TOP + PLOT_H / 2.0,
        escape(y_label)
    );
}

/// A dashed horizontal goal line across the plot at `yy`, labelled above its left end.
fn horizontal_reference(s: &mut String, yy: f64, label: &str) {
    let _ = write!(
        s,
        r#"<line class="reference" x1="{LEFT}" x2="{:.1}" y1="{yy:.1}" y2="{yy:.1}" stroke="{REFERENCE}" stroke-dasharray="5 4"/><text x="{:.1}" y="{:.1}" fill="{REFERENCE}">{}</text>"#,
        LEFT + PLOT_W,
        LEFT + 4.0,
        yy - 4.0,
        escape(label)
    );
}

/// How a legend entry shows its colour.
#[derive(Clone, Copy, Debug)]
enum Swatch {
    /// A short solid line (a line chart's series).
    Line,
    /// A small filled rectangle (a bar chart's series).
    Bar,
}

/// Row `row` of `rows` in the legend right of the plot; rows close up when there are more than
/// fit at the usual spacing.
fn legend_entry(s: &mut String, row: usize, rows: usize, colour: &str, swatch: Swatch, name: &str) {
    let spacing = (PLOT_H / rows.max(1) as f64).min(16.0);
    let ly = TOP + 10.0 + row as f64 * spacing;
    let lx = LEFT + PLOT_W + 12.0;
    let _ = match swatch {
        Swatch::Line => write!(
            s,
            r#"<line x1="{lx:.1}" x2="{:.1}" y1="{ly:.1}" y2="{ly:.1}" stroke="{colour}" stroke-width="3"/>"#,
            lx + 16.0
        ),
        Swatch::Bar => {
            write!(s, r#"<rect x="{lx:.1}" y="{:.1}" width="14" height="8" fill="{colour}"/>"#, ly - 4.0)
        }
    };
    let _ = write!(s, r#"<text x="{:.1}" y="{:.1}">{}</text>"#, lx + 20.0, ly + 4.0, escape(name));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tick labels of one axis (`class="x-tick"` or `"y-tick"`) in a rendered chart.
    fn tick_texts(svg: &str, class: &str) -> Vec<String> {
        svg.split(&format!(r#"class="{class}""#))
            .skip(1)
            .map(|rest| rest.split_once('>').unwrap().1.split('<').next().unwrap().to_owned())
            .collect()
    }

    /// Asserts that each axis of a rendered chart labels its ticks without repeating itself.
    fn assert_distinct_ticks(svg: &str) {
        for class in ["x-tick", "y-tick"] {
            let labels = tick_texts(svg, class);
            for (i, label) in labels.iter().enumerate() {
                assert!(!labels[..i].contains(label), "{class} labels repeat: {labels:?}");
            }
        }
    }

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

    #[test]
    fn chart_draws_a_path_per_series_and_breaks_on_gaps() {
        let chart = Chart {
            title: "p99 <latency>",
            x_label: "s",
            y_label: "ms",
            x_scale: Scale::Linear,
            y_scale: Scale::Log,
            series: vec![
                Series {
                    name: "a".into(),
                    colour: 0,
                    points: vec![(0.0, Some(1.0)), (1.0, None), (2.0, Some(3.0)), (3.0, Some(4.0))],
                },
                Series { name: "b&c".into(), colour: 1, points: vec![(0.0, Some(0.5))] },
            ],
            reference: Some((1.0, "target")),
        };
        let svg = chart.render();
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert_eq!(svg.matches("<path").count(), 2);
        assert!(svg.contains("p99 &lt;latency&gt;"));
        assert!(svg.contains("b&amp;c"));
        // The gap at x=1 starts a new sub-path: two moves in series a.
        let a_path = svg.split("<path d=\"").nth(1).unwrap();
        assert_eq!(a_path.split('"').next().unwrap().matches('M').count(), 2);
        assert_eq!(tick_texts(&svg, "y-tick"), ["0.1", "1", "10"]);
        assert_distinct_ticks(&svg);
    }

    #[test]
    fn chart_labels_a_throughput_axis_in_thousands() {
        let chart = Chart {
            title: "throughput",
            x_label: "requests/s",
            y_label: "ms",
            x_scale: Scale::Linear,
            y_scale: Scale::Linear,
            series: vec![Series {
                name: "a".into(),
                colour: 0,
                points: vec![(15_000.0, Some(0.0001)), (20_000.0, Some(0.0003))],
            }],
            reference: None,
        };
        let svg = chart.render();
        assert_eq!(tick_texts(&svg, "x-tick"), ["0", "5k", "10k", "15k", "20k"]);
        assert_eq!(tick_texts(&svg, "y-tick"), ["0", "1e-4", "2e-4", "3e-4"]);
        assert_distinct_ticks(&svg);
    }

    #[test]
    fn bar_chart_draws_a_bar_per_value_and_skips_unusable_ones() {
        let chart = BarChart {
            title: "p99 <per class>",
            y_label: "ms",
            y_scale: Scale::Log,
            categories: vec!["heartbeat".into(), "tenant-a".into()],
            series: vec![
                Bars { name: "no-queue".into(), colour: 0, values: vec![Some(800.0), Some(900.0)] },
                // Zero cannot stand on a log axis, and None is no bar.
                Bars { name: "queue".into(), colour: 1, values: vec![Some(0.0), None] },
            ],
            label: |v| format!("{v:.0}"),
        };
        let svg = chart.render();
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        // Two bars and two legend swatches, plus the plot frame.
        assert_eq!(svg.matches("<rect").count(), 2 + 2 + 1);
        assert!(svg.contains("p99 &lt;per class&gt;") && svg.contains(">900<"));
        assert!(svg.contains(">tenant-a<"));
        assert_distinct_ticks(&svg);
    }

    #[test]
    fn empty_chart_still_renders() {
        let chart = Chart {
            title: "empty",
            x_label: "",
            y_label: "",
            x_scale: Scale::Log,
            y_scale: Scale::Linear,
            series: vec![],
            reference: None,
        };
        let svg = chart.render();
        assert!(svg.contains("</svg>"));
        assert_distinct_ticks(&svg);
    }
}
