//! A small SVG chart renderer: line charts, grouped bar charts and scatter charts with error bars,
//! on axes with round ticks, each with a legend. Enough for the report's plots without a plotting
//! dependency.

/// Colours of successive series (colour-blind-safe palette).
pub(super) const PALETTE: [&str; 8] =
    ["#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9", "#000000", "#f0e442"];

pub(super) const WIDTH: f64 = 640.0;
pub(super) const HEIGHT: f64 = 300.0;
pub(super) const LEFT: f64 = 64.0;
pub(super) const RIGHT: f64 = 150.0;
pub(super) const TOP: f64 = 28.0;
pub(super) const BOTTOM: f64 = 44.0;
pub(super) const PLOT_W: f64 = WIDTH - LEFT - RIGHT;
pub(super) const PLOT_H: f64 = HEIGHT - TOP - BOTTOM;

/// Font size of the charts' text, unless an element says otherwise.
pub(super) const FONT_SIZE: f64 = 11.0;

/// Colour of reference (goal) lines and their labels.
pub(super) const REFERENCE: &str = "#c00";

/// How an axis maps values to positions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scale {
    /// Evenly spaced values.
    Linear,
    /// Evenly spaced powers of ten; values must be positive (others are skipped).
    Log,
}

/// Whether `v` can be placed on an axis of this scale.
pub(super) fn usable(v: f64, scale: Scale) -> bool {
    v.is_finite() && (scale == Scale::Linear || v > 0.0)
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

mod axis;
mod bar;
mod frame;
mod line;
mod scatter;

pub use self::bar::{BarChart, Bars};
pub use self::line::{Chart, Series};
pub use self::scatter::{Point, Scatter};

#[cfg(test)]
mod test_support {
    /// The tick labels of one axis (`class="x-tick"` or `"y-tick"`) in a rendered chart.
    pub(super) fn tick_texts(svg: &str, class: &str) -> Vec<String> {
        svg.split(&format!(r#"class="{class}""#))
            .skip(1)
            .map(|rest| rest.split_once('>').unwrap().1.split('<').next().unwrap().to_owned())
            .collect()
    }

    /// Asserts that each axis of a rendered chart labels its ticks without repeating itself.
    pub(super) fn assert_distinct_ticks(svg: &str) {
        for class in ["x-tick", "y-tick"] {
            let labels = tick_texts(svg, class);
            for (i, label) in labels.iter().enumerate() {
                assert!(!labels[..i].contains(label), "{class} labels repeat: {labels:?}");
            }
        }
    }
}
