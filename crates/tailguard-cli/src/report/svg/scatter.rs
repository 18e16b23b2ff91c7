//! Scatter charts: points with error bars in both directions, a dashed frontier, goal lines,
//! and labels placed clear of each other.

use std::fmt::Write as _;

use super::axis::{Axis, value_label};
use super::frame::*;
use super::*;

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
pub(super) fn text_colour(colour: usize) -> &'static str {
    match PALETTE[colour % PALETTE.len()] {
        "#f0e442" => "#8a7f00",
        other => other,
    }
}

/// With more points than this, a scatter chart names them in its legend only.
pub(super) const MAX_LABELLED_POINTS: usize = 12;

/// Colour of a scatter chart's frontier.
pub(super) const FRONTIER: &str = "#555";

/// Half the length of an error bar's end cap.
pub(super) const CAP: f64 = 3.0;

/// A point's label as placed: where its text starts, its anchor, and the space it takes.
#[derive(Clone, Copy, Debug)]
pub(super) struct Placed {
    x: f64,
    y: f64,
    anchor: &'static str,
    bounds: Bounds,
}

/// Places a label beside each marker (at `(x, y)`, with its text): right of it, above or below
/// on the right, then the same on the left, then straight above or below; the first spot that
/// stays in the plot and clear of every marker, every `obstacle` (error bars, goal-line labels)
/// and every earlier label. A label that fits nowhere is left out (`None`); its point keeps its
/// name in the legend and tooltip.
pub(super) fn place_labels(markers: &[(f64, f64, &str)], mut obstacles: Vec<Bounds>) -> Vec<Option<Placed>> {
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
pub(super) fn span(axis: &Axis, range: Option<(f64, f64)>) -> Option<(f64, f64)> {
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

pub(super) fn error_bar(s: &mut String, colour: &str, path: std::fmt::Arguments<'_>) {
    let _ =
        write!(s, r#"<path class="error-bar" d="{path}" fill="none" stroke="{colour}" stroke-width="1.2"/>"#);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::svg::test_support::assert_distinct_ticks;

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
