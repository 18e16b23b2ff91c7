//! A small SVG chart renderer: line charts, grouped bar charts and scatter charts with error bars,
//! on axes with round ticks, each with a legend. Enough for the report's plots without a plotting
//! dependency.

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

/// A value in a tooltip: three significant digits, or a power of ten where that reads better.
fn value_label(v: f64) -> String {
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

/// One point of a scatter chart: a median with optional intervals on each axis.
#[derive(Clone, Debug)]
pub struct Point {
    /// Legend and label text.
    pub name: String,
    /// Index into the palette, like [`Series::colour`].
    pub colour: usize,
    /// Position on the x axis.
    pub x: f64,
    /// Position on the y axis.
    pub y: f64,
    /// `(low, high)` of an error bar along x, drawn when present.
    pub x_range: Option<(f64, f64)>,
    /// `(low, high)` of an error bar along y, drawn when present.
    pub y_range: Option<(f64, f64)>,
}

/// A scatter chart: one marker per [`Point`] with its error bars and a label beside it, an
/// optional dashed frontier through given points, and optional goal lines on either axis.
#[derive(Clone, Debug)]
pub struct Scatter<'a> {
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
    /// The points; those the axes' scales cannot show (≤ 0 on a log axis, not finite) are
    /// skipped.
    pub points: Vec<Point>,
    /// A dashed line through these (x, y) points in the given order, with its legend text.
    pub frontier: Option<(String, Vec<(f64, f64)>)>,
    /// A vertical goal line at this x, with its label (e.g. "70 % of idle").
    pub x_reference: Option<(f64, &'a str)>,
    /// A horizontal goal line at this y, with its label (e.g. "1.5× baseline").
    pub y_reference: Option<(f64, &'a str)>,
}

/// Colour of text in palette colour `colour`: the colour itself, but a darker yellow, which reads
/// on white.
fn text_colour(colour: usize) -> &'static str {
    match PALETTE[colour % PALETTE.len()] {
        "#f0e442" => "#8a7f00",
        other => other,
    }
}

/// With more points than this, a scatter chart names them in its legend only.
const MAX_LABELLED_POINTS: usize = 12;

/// Colour of a scatter chart's frontier.
const FRONTIER: &str = "#555";

/// Half the length of an error bar's end cap.
const CAP: f64 = 3.0;

/// A rectangle in SVG coordinates.
#[derive(Clone, Copy, Debug)]
struct Bounds {
    left: f64,
    top: f64,
    right: f64,
    bottom: f64,
}

impl Bounds {
    fn overlaps(&self, other: &Bounds) -> bool {
        self.left < other.right
            && other.left < self.right
            && self.top < other.bottom
            && other.top < self.bottom
    }

    fn inside(&self, outer: &Bounds) -> bool {
        self.left >= outer.left
            && self.right <= outer.right
            && self.top >= outer.top
            && self.bottom <= outer.bottom
    }
}

/// A point's label as placed: where its text starts, its anchor, and the space it takes.
#[derive(Clone, Copy, Debug)]
struct Placed {
    x: f64,
    y: f64,
    anchor: &'static str,
    bounds: Bounds,
}

/// Where a line of text at font size `size` lies: its anchor at `x`, its baseline at `baseline`.
/// The width is a rough estimate (0.6 em a character), which is all label placement needs.
fn text_bounds(x: f64, baseline: f64, anchor: &str, text: &str, size: f64) -> Bounds {
    let w = text.chars().count() as f64 * 0.6 * size;
    let left = match anchor {
        "start" => x,
        "end" => x - w,
        _ => x - w / 2.0,
    };
    Bounds { left, top: baseline - 0.9 * size, right: left + w, bottom: baseline + 0.2 * size }
}

/// Places a label beside each marker (at `(x, y)`, with its text): right of it, above or below
/// on the right, then the same on the left, then straight above or below; the first spot that
/// stays in the plot and clear of every marker, every `obstacle` (error bars, goal-line labels)
/// and every earlier label. A label that fits nowhere is left out (`None`); its point keeps its
/// name in the legend and tooltip.
fn place_labels(markers: &[(f64, f64, &str)], mut obstacles: Vec<Bounds>) -> Vec<Option<Placed>> {
    /// Half the side of the square a marker (radius 4) keeps clear.
    const MARKER: f64 = 5.0;
    /// Font size of the labels.
    const SIZE: f64 = 10.0;
    let plot = Bounds { left: LEFT, top: TOP, right: LEFT + PLOT_W, bottom: TOP + PLOT_H };
    obstacles.extend(markers.iter().map(|&(x, y, _)| Bounds {
        left: x - MARKER,
        top: y - MARKER,
        right: x + MARKER,
        bottom: y + MARKER,
    }));
    let mut placed = Vec::with_capacity(markers.len());
    for &(x, y, text) in markers {
        // Beside the marker the text sits on the marker's middle; diagonal spots clear the
        // error bars' caps.
        let spots = [
            (x + 7.0, y + 4.0, "start"),
            (x + 5.0, y - 7.0, "start"),
            (x + 5.0, y + 15.0, "start"),
            (x - 7.0, y + 4.0, "end"),
            (x - 5.0, y - 7.0, "end"),
            (x - 5.0, y + 15.0, "end"),
            (x, y - 9.0, "middle"),
            (x, y + 17.0, "middle"),
        ];
        let spot = spots
            .into_iter()
            .map(|(x, y, anchor)| Placed { x, y, anchor, bounds: text_bounds(x, y, anchor, text, SIZE) })
            .find(|spot| spot.bounds.inside(&plot) && !obstacles.iter().any(|o| o.overlaps(&spot.bounds)));
        if let Some(spot) = spot {
            obstacles.push(spot.bounds);
        }
        placed.push(spot);
    }
    placed
}

impl Scatter<'_> {
    /// The points the axes can show.
    fn drawn(&self) -> impl Iterator<Item = &Point> {
        self.points.iter().filter(|p| usable(p.x, self.x_scale) && usable(p.y, self.y_scale))
    }

    /// Axes that fit the drawn points, their error bars, the frontier and the goal lines.
    fn axes(&self) -> (Axis, Axis) {
        let ends = |range: Option<(f64, f64)>| range.into_iter().flat_map(|(low, high)| [low, high]);
        let frontier = || self.frontier.iter().flat_map(|(_, line)| line.iter().copied());
        let x = Axis::fit(
            self.x_scale,
            self.drawn()
                .flat_map(|p| ends(p.x_range).chain([p.x]))
                .chain(frontier().map(|(x, _)| x))
                .chain(self.x_reference.map(|(x, _)| x)),
        );
        let y = Axis::fit(
            self.y_scale,
            self.drawn()
                .flat_map(|p| ends(p.y_range).chain([p.y]))
                .chain(frontier().map(|(_, y)| y))
                .chain(self.y_reference.map(|(y, _)| y)),
        );
        (x, y)
    }

    /// Renders the chart as an `<svg>` element.
    pub fn render(&self) -> String {
        let (x, y) = self.axes();
        let px = |v: f64| LEFT + x.frac(v) * PLOT_W;
        let py = |v: f64| TOP + (1.0 - y.frac(v)) * PLOT_H;
        let mut s = open_svg(self.title);
        y_grid(&mut s, &y, py);
        x_grid(&mut s, &x, px);
        frame(&mut s, Some(self.x_label), self.y_label);
        // What point labels must keep clear of: goal-line labels, then error bars.
        let mut obstacles = Vec::new();
        if let Some((value, label)) = self.x_reference.filter(|&(v, _)| usable(v, self.x_scale)) {
            obstacles.push(vertical_reference(&mut s, px(value), label));
        }
        if let Some((value, label)) = self.y_reference.filter(|&(v, _)| usable(v, self.y_scale)) {
            obstacles.push(horizontal_reference(&mut s, py(value), label));
        }
        if let Some((name, line)) = &self.frontier {
            let mut path = String::new();
            let mut pen_down = false;
            for &(xv, yv) in line {
                if usable(xv, self.x_scale) && usable(yv, self.y_scale) {
                    let _ = write!(path, "{}{:.1},{:.1} ", if pen_down { 'L' } else { 'M' }, px(xv), py(yv));
                    pen_down = true;
                } else {
                    pen_down = false;
                }
            }
            let _ = write!(
                s,
                r#"<path class="frontier" d="{}" fill="none" stroke="{FRONTIER}" stroke-width="1.4" stroke-dasharray="6 4"><title>{}</title></path>"#,
                path.trim_end(),
                escape(name)
            );
        }
        let drawn: Vec<&Point> = self.drawn().collect();
        for p in &drawn {
            let colour = PALETTE[p.colour % PALETTE.len()];
            let (cx, cy) = (px(p.x), py(p.y));
            if let Some((low, high)) = span(&x, p.x_range) {
                let (x0, x1) = (LEFT + low * PLOT_W, LEFT + high * PLOT_W);
                obstacles.push(Bounds { left: x0, top: cy - CAP, right: x1, bottom: cy + CAP });
                error_bar(
                    &mut s,
                    colour,
                    format_args!(
                        "M{x0:.1},{cy:.1} L{x1:.1},{cy:.1} M{x0:.1},{:.1} L{x0:.1},{:.1} M{x1:.1},{:.1} L{x1:.1},{:.1}",
                        cy - CAP,
                        cy + CAP,
                        cy - CAP,
                        cy + CAP
                    ),
                );
            }
            if let Some((low, high)) = span(&y, p.y_range) {
                let (y0, y1) = (TOP + (1.0 - low) * PLOT_H, TOP + (1.0 - high) * PLOT_H);
                obstacles.push(Bounds { left: cx - CAP, top: y1, right: cx + CAP, bottom: y0 });
                error_bar(
                    &mut s,
                    colour,
                    format_args!(
                        "M{cx:.1},{y0:.1} L{cx:.1},{y1:.1} M{:.1},{y0:.1} L{:.1},{y0:.1} M{:.1},{y1:.1} L{:.1},{y1:.1}",
                        cx - CAP,
                        cx + CAP,
                        cx - CAP,
                        cx + CAP
                    ),
                );
            }
        }
        for p in &drawn {
            let colour = PALETTE[p.colour % PALETTE.len()];
            let _ = write!(
                s,
                r##"<circle class="point" cx="{:.1}" cy="{:.1}" r="4" fill="{colour}" stroke="#fff"><title>{}</title></circle>"##,
                px(p.x),
                py(p.y),
                escape(&self.tooltip(p))
            );
        }
        if drawn.len() <= MAX_LABELLED_POINTS {
            let markers: Vec<(f64, f64, &str)> =
                drawn.iter().map(|p| (px(p.x), py(p.y), p.name.as_str())).collect();
            for (p, spot) in drawn.iter().zip(place_labels(&markers, obstacles)) {
                let Some(spot) = spot else { continue };
                // A white halo keeps the label legible over grid and frontier lines.
                let _ = write!(
                    s,
                    r##"<text class="point-label" x="{:.1}" y="{:.1}" text-anchor="{}" font-size="10" fill="{}" stroke="#fff" stroke-width="3" paint-order="stroke">{}</text>"##,
                    spot.x,
                    spot.y,
                    spot.anchor,
                    text_colour(p.colour),
                    escape(&p.name)
                );
            }
        }
        let rows = drawn.len() + usize::from(self.frontier.is_some());
        for (i, p) in drawn.iter().enumerate() {
            legend_entry(&mut s, i, rows, PALETTE[p.colour % PALETTE.len()], Swatch::Marker, &p.name);
        }
        if let Some((name, _)) = &self.frontier {
            legend_entry(&mut s, drawn.len(), rows, FRONTIER, Swatch::Dashed, name);
        }
        s.push_str("</svg>");
        s
    }

    /// A point's tooltip: its name, then each axis' value with its interval.
    fn tooltip(&self, p: &Point) -> String {
        let line = |label: &str, fallback: &str, v: f64, range: Option<(f64, f64)>| {
            let label = if label.is_empty() { fallback } else { label };
            match range {
                Some((low, high)) => {
                    format!("{label}: {} ({} – {})", value_label(v), value_label(low), value_label(high))
                }
                None => format!("{label}: {}", value_label(v)),
            }
        };
        format!(
            "{}\n{}\n{}",
            p.name,
            line(self.x_label, "x", p.x, p.x_range),
            line(self.y_label, "y", p.y, p.y_range)
        )
    }
}

/// Where an error bar over `range` runs along `axis`, as fractions of the axis (clamped to it):
/// `None` without a range, or where the range lies wholly off a log axis. A low end a log axis
/// cannot show (≤ 0) runs to the axis' low end.
fn span(axis: &Axis, range: Option<(f64, f64)>) -> Option<(f64, f64)> {
    let (a, b) = range?;
    if a.is_nan() || b.is_nan() {
        return None;
    }
    let (low, high) = (a.min(b), a.max(b));
    if !usable(high, axis.scale) {
        return None;
    }
    let low = if usable(low, axis.scale) { axis.frac(low) } else { 0.0 };
    Some((low.clamp(0.0, 1.0), axis.frac(high).clamp(0.0, 1.0)))
}

fn error_bar(s: &mut String, colour: &str, path: std::fmt::Arguments<'_>) {
    let _ =
        write!(s, r#"<path class="error-bar" d="{path}" fill="none" stroke="{colour}" stroke-width="1.2"/>"#);
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

/// A dashed horizontal goal line across the plot at `yy`, labelled above its left end; returns
/// where the label lies.
fn horizontal_reference(s: &mut String, yy: f64, label: &str) -> Bounds {
    let _ = write!(
        s,
        r#"<line class="reference" x1="{LEFT}" x2="{:.1}" y1="{yy:.1}" y2="{yy:.1}" stroke="{REFERENCE}" stroke-dasharray="5 4"/><text x="{:.1}" y="{:.1}" fill="{REFERENCE}">{}</text>"#,
        LEFT + PLOT_W,
        LEFT + 4.0,
        yy - 4.0,
        escape(label)
    );
    text_bounds(LEFT + 4.0, yy - 4.0, "start", label, FONT_SIZE)
}

/// A dashed vertical goal line down the plot at `xx`, labelled beside its top end (on the side
/// with more room); returns where the label lies.
fn vertical_reference(s: &mut String, xx: f64, label: &str) -> Bounds {
    let (text_x, anchor) = if xx > LEFT + PLOT_W * 0.6 { (xx - 4.0, "end") } else { (xx + 4.0, "start") };
    let _ = write!(
        s,
        r#"<line class="reference" x1="{xx:.1}" x2="{xx:.1}" y1="{TOP}" y2="{:.1}" stroke="{REFERENCE}" stroke-dasharray="5 4"/><text x="{text_x:.1}" y="{:.1}" text-anchor="{anchor}" fill="{REFERENCE}">{}</text>"#,
        TOP + PLOT_H,
        TOP + 12.0,
        escape(label)
    );
    text_bounds(text_x, TOP + 12.0, anchor, label, FONT_SIZE)
}

/// How a legend entry shows its colour.
#[derive(Clone, Copy, Debug)]
enum Swatch {
    /// A short solid line (a line chart's series).
    Line,
    /// A short dashed line (a scatter chart's frontier).
    Dashed,
    /// A small filled rectangle (a bar chart's series).
    Bar,
    /// A filled circle (a scatter chart's point).
    Marker,
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
        Swatch::Dashed => write!(
            s,
            r#"<line x1="{lx:.1}" x2="{:.1}" y1="{ly:.1}" y2="{ly:.1}" stroke="{colour}" stroke-width="1.4" stroke-dasharray="4 2"/>"#,
            lx + 16.0
        ),
        Swatch::Bar => {
            write!(s, r#"<rect x="{lx:.1}" y="{:.1}" width="14" height="8" fill="{colour}"/>"#, ly - 4.0)
        }
        Swatch::Marker => write!(s, r#"<circle cx="{:.1}" cy="{ly:.1}" r="4" fill="{colour}"/>"#, lx + 8.0),
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

    fn point(name: &str, colour: usize, x: f64, y: f64) -> Point {
        Point { name: name.into(), colour, x, y, x_range: None, y_range: None }
    }

    /// Modes of the demo, as the report's summary figure shows them.
    fn modes() -> Scatter<'static> {
        Scatter {
            title: "Elastic work against <foreground> p99",
            x_label: "elastic CPU, share of idle",
            y_label: "p99 ms",
            x_scale: Scale::Linear,
            y_scale: Scale::Log,
            points: vec![
                Point {
                    x_range: Some((0.55, 0.62)),
                    y_range: Some((3.0, 4.2)),
                    ..point("adaptive", 0, 0.58, 3.5)
                },
                Point { x_range: Some((0.1, 0.14)), ..point("static 10 %", 1, 0.12, 1.6) },
                point("no control", 2, 0.93, 48.0),
            ],
            frontier: Some((
                "static shares".into(),
                vec![(0.0, 1.2), (0.12, 1.6), (0.3, 2.5), (0.6, 9.0), (0.93, 48.0)],
            )),
            x_reference: Some((0.7, "70 % of idle")),
            y_reference: Some((2.0, "1.5× baseline")),
        }
    }

    #[test]
    fn scatter_draws_a_marker_per_point_with_error_bars_where_ranges_are() {
        let chart = modes();
        let svg = chart.render();
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert_eq!(svg.matches(r#"class="point""#).count(), 3);
        // adaptive has both bars, static 10 % one, no control none.
        assert_eq!(svg.matches(r#"class="error-bar""#).count(), 3);
        let mut bare = chart.clone();
        bare.points.iter_mut().for_each(|p| (p.x_range, p.y_range) = (None, None));
        assert_eq!(bare.render().matches(r#"class="error-bar""#).count(), 0);
        // Each marker has a tooltip with its values and intervals, and a label beside it.
        assert!(svg.contains(
            "<title>adaptive\nelastic CPU, share of idle: 0.58 (0.55 – 0.62)\np99 ms: 3.5 (3 – 4.2)</title>"
        ));
        assert!(svg.contains("<title>no control\nelastic CPU, share of idle: 0.93\np99 ms: 48</title>"));
        assert_eq!(svg.matches(r#"class="point-label""#).count(), 3);
        // Legend: three markers and the frontier; two goal lines.
        assert_eq!(svg.matches("<circle").count(), 3 + 3);
        assert!(svg.contains(">static shares</text>"));
        assert_eq!(svg.matches(r#"class="reference""#).count(), 2);
        assert!(svg.contains(">70 % of idle<") && svg.contains(">1.5× baseline<"));
        assert_distinct_ticks(&svg);
    }

    #[test]
    fn scatter_draws_the_frontier_as_one_dashed_path_in_order() {
        let svg = modes().render();
        let frontier = svg.split(r#"<path class="frontier" d=""#).nth(1).unwrap();
        let d = frontier.split('"').next().unwrap();
        assert_eq!(d.matches('M').count(), 1);
        assert_eq!(d.matches('L').count(), 4);
        assert!(frontier.contains("stroke-dasharray"));
        // In the given order: x increases along this one.
        let xs: Vec<f64> = d
            .split(['M', 'L'])
            .filter(|p| !p.trim().is_empty())
            .map(|p| p.split(',').next().unwrap().parse().unwrap())
            .collect();
        assert!(xs.windows(2).all(|w| w[0] < w[1]), "{d}");
    }

    #[test]
    fn scatter_axes_fit_points_ranges_frontier_and_goal_lines() {
        let mut chart = modes();
        chart.points = vec![Point { y_range: Some((0.5, 400.0)), ..point("a", 0, 0.2, 3.0) }];
        chart.frontier = Some(("f".into(), vec![(0.1, 2.0), (1.3, 5.0)]));
        chart.x_reference = Some((0.7, "goal"));
        chart.y_reference = Some((0.03, "goal"));
        let (x, y) = chart.axes();
        assert!(x.low <= 0.1 && x.high >= 1.3, "{} .. {}", x.low, x.high);
        assert_eq!((y.low, y.high), (0.01, 1000.0));
        chart.frontier = None;
        chart.x_reference = Some((2.5, "goal"));
        let (x, _) = chart.axes();
        assert!(x.high >= 2.5);
    }

    #[test]
    fn scatter_skips_what_a_log_axis_cannot_show() {
        let mut chart = modes();
        chart.x_scale = Scale::Log;
        chart.points.push(point("zero", 3, 0.0, 2.0));
        chart.points.push(point("negative", 4, 0.5, -1.0));
        chart.points.push(point("nan", 5, f64::NAN, 2.0));
        chart.points.push(point("infinite", 6, 0.5, f64::INFINITY));
        // A y interval reaching below zero runs to the axis' low end.
        chart.points.push(Point { y_range: Some((-1.0, 5.0)), ..point("wide", 7, 0.4, 2.0) });
        chart.frontier = Some(("f".into(), vec![(0.1, 1.0), (0.0, 2.0), (0.3, 3.0), (0.6, 9.0)]));
        chart.x_reference = Some((-1.0, "off the axis"));
        let svg = chart.render();
        assert_eq!(svg.matches(r#"class="point""#).count(), 4);
        for skipped in ["zero", "negative", "nan", "infinite", "off the axis"] {
            assert!(!svg.contains(&format!(">{skipped}<")), "{skipped} drawn");
        }
        assert!(!svg.contains("NaN") && !svg.contains("inf"), "{svg}");
        assert_eq!(svg.matches(r#"class="error-bar""#).count(), 4);
        // The frontier breaks where its point cannot be shown.
        let d = svg.split(r#"class="frontier" d=""#).nth(1).unwrap().split('"').next().unwrap();
        assert_eq!(d.matches('M').count(), 2, "{d}");
        assert_distinct_ticks(&svg);
    }

    #[test]
    fn scatter_escapes_its_text() {
        let mut chart = modes();
        chart.points[0].name = "a<b & \"c\"".into();
        chart.frontier.as_mut().unwrap().0 = "<shares>".into();
        chart.x_label = "x & y";
        let svg = chart.render();
        assert!(svg.contains("Elastic work against &lt;foreground&gt; p99"));
        assert!(svg.contains(">a&lt;b &amp; &quot;c&quot;<"));
        assert!(svg.contains("<title>a&lt;b &amp; &quot;c&quot;\nx &amp; y: 0.58"));
        assert!(svg.contains(">&lt;shares&gt;<"));
        assert!(!svg.contains("a<b") && !svg.contains("<shares>"));
    }

    #[test]
    fn scatter_labels_stay_apart_and_give_way_to_the_legend_when_crowded() {
        // Three points on one spot: each label finds its own place.
        let mut chart = modes();
        chart.points = (0..3).map(|i| point(&format!("mode {i}"), i, 0.5, 10.0)).collect();
        let svg = chart.render();
        assert_eq!(svg.matches(r#"class="point-label""#).count(), 3);
        let places: Vec<&str> = svg
            .split(r#"class="point-label" "#)
            .skip(1)
            .map(|rest| rest.split(" font-size").next().unwrap())
            .collect();
        assert!(places.iter().enumerate().all(|(i, p)| !places[..i].contains(p)), "{places:?}");
        // Around one marker there is room for six labels, none overlapping another.
        let markers: Vec<(f64, f64, &str)> = (0..10).map(|_| (300.0, 150.0, "a long label")).collect();
        let placed = place_labels(&markers, vec![]);
        let boxes: Vec<Bounds> = placed.iter().flatten().map(|p| p.bounds).collect();
        assert_eq!(boxes.len(), 6, "{placed:?}");
        for (i, a) in boxes.iter().enumerate() {
            assert!(boxes[..i].iter().all(|b| !a.overlaps(b)));
        }
        // A label that would leave the plot goes to the other side; one that would cross an error
        // bar goes above it.
        let edge = place_labels(&[(LEFT + PLOT_W - 2.0, 150.0, "right edge")], vec![]);
        assert_eq!(edge[0].unwrap().anchor, "end");
        let bar = Bounds { left: 250.0, top: 150.0 - CAP, right: 350.0, bottom: 150.0 + CAP };
        let beside_bar = place_labels(&[(300.0, 150.0, "mode")], vec![bar])[0].unwrap();
        assert!(beside_bar.bounds.bottom <= bar.top, "{beside_bar:?}");
        // Many points: names in the legend only.
        chart.points = (0..20).map(|i| point(&format!("m{i}"), i, 0.05 * i as f64, 1.0 + i as f64)).collect();
        let svg = chart.render();
        assert_eq!(svg.matches(r#"class="point""#).count(), 20);
        assert_eq!(svg.matches(r#"class="point-label""#).count(), 0);
        assert!(svg.contains(">m19</text>"));
        assert_distinct_ticks(&svg);
    }

    #[test]
    fn empty_scatter_still_renders() {
        let chart = Scatter {
            title: "empty",
            x_label: "",
            y_label: "",
            x_scale: Scale::Log,
            y_scale: Scale::Log,
            points: vec![],
            frontier: None,
            x_reference: None,
            y_reference: None,
        };
        let svg = chart.render();
        assert!(svg.contains("</svg>") && !svg.contains("<circle"));
        assert_distinct_ticks(&svg);
    }

    #[test]
    fn tooltip_values_have_three_significant_digits() {
        assert_eq!(value_label(0.4234), "0.423");
        assert_eq!(value_label(3.0), "3");
        assert_eq!(value_label(12_345.0), "12345");
        assert_eq!(value_label(0.000_12), "1.20e-4");
        assert_eq!(value_label(0.0), "0");
    }
}
