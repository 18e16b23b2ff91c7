//! One mode to run in a window: what the compare and adapt scenarios plan, and what a window
//! and its elastic work read.

use tailguard::elastic::ControllerKind;

use super::mode::Mode;
use crate::choices::Placement;

/// One mode to run: how, under which name, and at what foreground load.
pub struct Plan {
    pub name: String,
    pub mode: Mode,
    /// Where its elastic work runs.
    pub placement: Placement,
    pub controller: ControllerKind,
    pub loads: Vec<f64>,
}
