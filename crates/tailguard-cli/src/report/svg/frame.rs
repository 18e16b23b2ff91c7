//! What every chart draws around its data: the SVG element and title, grids, axis titles,
//! goal lines and legend rows.

use std::fmt::Write as _;

use super::axis::{Axis, tick_labels};
use super::*;

/// An `<svg>` of the standard size, opened with its title (the caller closes it).
pub(super) fn open_svg(title: &str) -> String {
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
pub(super) fn y_grid(s: &mut String, y: &Axis, py: impl Fn(f64) -> f64) {
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
pub(super) fn x_grid(s: &mut String, x: &Axis, px: impl Fn(f64) -> f64) {
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
pub(super) fn frame(s: &mut String, x_label: Option<&str>, y_label: &str) {
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
pub(super) fn horizontal_reference(s: &mut String, yy: f64, label: &str) -> Bounds {
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
pub(super) fn vertical_reference(s: &mut String, xx: f64, label: &str) -> Bounds {
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
pub(super) enum Swatch {
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
pub(super) fn legend_entry(
    s: &mut String,
    row: usize,
    rows: usize,
    colour: &str,
    swatch: Swatch,
    name: &str,
) {
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

/// A rectangle in SVG coordinates.
#[derive(Clone, Copy, Debug)]
pub(super) struct Bounds {
    pub(super) left: f64,
    pub(super) top: f64,
    pub(super) right: f64,
    pub(super) bottom: f64,
}

impl Bounds {
    pub(super) fn overlaps(&self, other: &Bounds) -> bool {
        self.left < other.right
            && other.left < self.right
            && self.top < other.bottom
            && other.top < self.bottom
    }

    pub(super) fn inside(&self, outer: &Bounds) -> bool {
        self.left >= outer.left
            && self.right <= outer.right
            && self.top >= outer.top
            && self.bottom <= outer.bottom
    }
}

/// Where a line of text at font size `size` lies: its anchor at `x`, its baseline at `baseline`.
/// The width is a rough estimate (0.6 em a character), which is all label placement needs.
pub(super) fn text_bounds(x: f64, baseline: f64, anchor: &str, text: &str, size: f64) -> Bounds {
    let w = text.chars().count() as f64 * 0.6 * size;
    let left = match anchor {
        "start" => x,
        "end" => x - w,
        _ => x - w / 2.0,
    };
    Bounds { left, top: baseline - 0.9 * size, right: left + w, bottom: baseline + 0.2 * size }
}
