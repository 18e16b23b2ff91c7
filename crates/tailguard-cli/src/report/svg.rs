//! A small SVG line-chart renderer: axes with round ticks, one polyline per series, a legend.
//! Enough for the report's plots without a plotting dependency.

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

/// How an axis maps values to positions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scale {
    /// Evenly spaced values.
    Linear,
    /// Evenly spaced powers of ten; values must be positive (others are skipped).
    Log,
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
}

impl Axis {
    fn fit(scale: Scale, values: impl Iterator<Item = f64>) -> Axis {
        let (mut low, mut high) = (f64::INFINITY, f64::NEG_INFINITY);
        for v in values.filter(|v| v.is_finite() && (scale == Scale::Linear || *v > 0.0)) {
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
                Axis { scale, low: (low / step).floor() * step, high: (high / step).ceil() * step }
            }
            Scale::Log => Axis {
                scale,
                low: 10f64.powf(low.log10().floor()),
                high: 10f64.powf(high.log10().ceil().max(low.log10().floor() + 1.0)),
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
                let step = nice_step((self.high - self.low) / 5.0);
                let n = ((self.high - self.low) / step).round() as i64;
                (0..=n).map(|i| self.low + i as f64 * step).collect()
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
    let m = raw / magnitude;
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

fn tick_label(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 {
        "0".to_owned()
    } else if !(1e-3..1e4).contains(&a) {
        format!("{v:.0e}")
    } else if a >= 10.0 || v.fract() == 0.0 {
        format!("{v:.0}")
    } else if a >= 1.0 {
        format!("{v:.1}")
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').to_owned()
    }
}

impl Chart<'_> {
    /// Renders the chart as an `<svg>` element.
    pub fn render(&self) -> String {
        let points = || self.series.iter().flat_map(|line| line.points.iter());
        let x = Axis::fit(self.x_scale, points().map(|p| p.0));
        let y = Axis::fit(self.y_scale, points().filter_map(|p| p.1).chain(self.reference.map(|(v, _)| v)));
        let plot_w = WIDTH - LEFT - RIGHT;
        let plot_h = HEIGHT - TOP - BOTTOM;
        let px = |v: f64| LEFT + x.frac(v) * plot_w;
        let py = |v: f64| TOP + (1.0 - y.frac(v)) * plot_h;
        let mut s = open_svg(self.title);
        y_grid(&mut s, &y, py, plot_w);
        for t in x.ticks() {
            let xx = px(t);
            let _ = write!(
                s,
                r##"<line x1="{xx:.1}" x2="{xx:.1}" y1="{TOP}" y2="{:.1}" stroke="#eee"/><text x="{xx:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
                TOP + plot_h,
                TOP + plot_h + 16.0,
                tick_label(t)
            );
        }
        let _ = write!(
            s,
            r##"<rect x="{LEFT}" y="{TOP}" width="{plot_w:.1}" height="{plot_h:.1}" fill="none" stroke="#888"/>"##
        );
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            LEFT + plot_w / 2.0,
            HEIGHT - 8.0,
            escape(self.x_label)
        );
        let _ = write!(
            s,
            r#"<text transform="translate(14 {:.1}) rotate(-90)" text-anchor="middle">{}</text>"#,
            TOP + plot_h / 2.0,
            escape(self.y_label)
        );
        if let Some((value, label)) = self.reference {
            let yy = py(value);
            let _ = write!(
                s,
                r##"<line x1="{LEFT}" x2="{:.1}" y1="{yy:.1}" y2="{yy:.1}" stroke="#c00" stroke-dasharray="5 4"/><text x="{:.1}" y="{:.1}" fill="#c00">{}</text>"##,
                LEFT + plot_w,
                LEFT + 4.0,
                yy - 4.0,
                escape(label)
            );
        }
        for (i, line) in self.series.iter().enumerate() {
            let (name, pts) = (&line.name, &line.points);
            let colour = PALETTE[line.colour % PALETTE.len()];
            let mut path = String::new();
            let mut pen_down = false;
            for &(xv, yv) in pts {
                let usable = |v: f64, scale: Scale| v.is_finite() && (scale == Scale::Linear || v > 0.0);
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
                escape(name)
            );
            let ly = TOP + 10.0 + i as f64 * 16.0;
            let lx = LEFT + plot_w + 12.0;
            let _ = write!(
                s,
                r#"<line x1="{lx:.1}" x2="{:.1}" y1="{ly:.1}" y2="{ly:.1}" stroke="{colour}" stroke-width="3"/><text x="{:.1}" y="{:.1}">{}</text>"#,
                lx + 16.0,
                lx + 20.0,
                ly + 4.0,
                escape(name)
            );
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
        let usable = |v: f64| v.is_finite() && (self.y_scale == Scale::Linear || v > 0.0);
        let values = self.series.iter().flat_map(|bars| bars.values.iter().flatten().copied());
        let y = Axis::fit(self.y_scale, values);
        let plot_w = WIDTH - LEFT - RIGHT;
        let plot_h = HEIGHT - TOP - BOTTOM;
        let py = |v: f64| TOP + (1.0 - y.frac(v).clamp(0.0, 1.0)) * plot_h;
        let mut s = open_svg(self.title);
        y_grid(&mut s, &y, py, plot_w);
        let _ = write!(
            s,
            r##"<rect x="{LEFT}" y="{TOP}" width="{plot_w:.1}" height="{plot_h:.1}" fill="none" stroke="#888"/>"##
        );
        let _ = write!(
            s,
            r#"<text transform="translate(14 {:.1}) rotate(-90)" text-anchor="middle">{}</text>"#,
            TOP + plot_h / 2.0,
            escape(self.y_label)
        );
        let groups = self.categories.len().max(1) as f64;
        let group_w = plot_w / groups;
        let bar_w = group_w * 0.8 / self.series.len().max(1) as f64;
        let base = py(y.low);
        for (c, category) in self.categories.iter().enumerate() {
            let group_x = LEFT + c as f64 * group_w;
            let _ = write!(
                s,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
                group_x + group_w / 2.0,
                TOP + plot_h + 16.0,
                escape(category)
            );
            for (i, bars) in self.series.iter().enumerate() {
                let Some(value) = bars.values.get(c).copied().flatten().filter(|&v| usable(v)) else {
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
            let ly = TOP + 10.0 + i as f64 * 16.0;
            let lx = LEFT + plot_w + 12.0;
            let _ = write!(
                s,
                r#"<rect x="{lx:.1}" y="{:.1}" width="14" height="8" fill="{colour}"/><text x="{:.1}" y="{:.1}">{}</text>"#,
                ly - 4.0,
                lx + 20.0,
                ly + 4.0,
                escape(&bars.name)
            );
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
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" font-family="sans-serif" font-size="11" role="img">"#
    );
    let _ = write!(s, "<title>{}</title>", escape(title));
    let _ =
        write!(s, r#"<text x="{LEFT}" y="16" font-size="13" font-weight="bold">{}</text>"#, escape(title));
    s
}

/// Horizontal grid lines across the plot at `y`'s ticks, with their labels.
fn y_grid(s: &mut String, y: &Axis, py: impl Fn(f64) -> f64, plot_w: f64) {
    for t in y.ticks() {
        let yy = py(t);
        let _ = write!(
            s,
            r##"<line x1="{LEFT}" x2="{:.1}" y1="{yy:.1}" y2="{yy:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            LEFT + plot_w,
            LEFT - 6.0,
            yy + 4.0,
            tick_label(t)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_steps() {
        assert_eq!(nice_step(0.13), 0.2);
        assert_eq!(nice_step(3.0), 5.0);
        assert_eq!(nice_step(7.0), 10.0);
        assert_eq!(nice_step(0.0), 1.0);
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
        assert!(chart.render().contains("</svg>"));
    }
}
