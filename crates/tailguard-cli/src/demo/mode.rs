//! The experiment's modes: how elastic work runs beside the foreground.

use std::fmt;
use std::str::FromStr;

/// How the elastic work is run in one mode of the experiment.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Mode {
    /// The foreground alone: no elastic work.
    Baseline,
    /// Elastic work runs flat out beside the foreground.
    Uncontrolled,
    /// Elastic work is held to a fixed share of all cores by the token bucket, without feedback.
    Static(f64),
    /// Elastic threads run at the lowest OS priority (SCHED_IDLE), without tokens.
    OsPriority,
    /// Elastic work is admitted by tailguard's feedback controller, optionally also at the lowest
    /// OS priority.
    Elastic {
        /// Whether elastic threads also run at SCHED_IDLE.
        os_priority: bool,
    },
    /// A peer for comparison: elastic work under a limiter steered by TiKV's utilisation rule
    /// (`ControllerKind::Utilization`: the CPU the foreground leaves free × 0.8, at least 10 %,
    /// re-adjusted every `--utilization-period`), not by latency.
    Utilization,
}

impl Mode {
    /// The modes of the default run: every mode, with a sweep of three static shares and the
    /// utilisation peer.
    pub const DEFAULTS: &'static str = "baseline,uncontrolled,static:0.1,static:0.25,static:0.5,os-priority,elastic,elastic+os-priority,utilization";

    /// Whether this mode runs elastic work.
    pub fn runs_elastic(self) -> bool {
        self != Mode::Baseline
    }

    /// Whether elastic work goes through a limiter (and so holds grants).
    pub fn uses_limiter(self) -> bool {
        matches!(self, Mode::Static(_) | Mode::Elastic { .. } | Mode::Utilization)
    }

    /// Whether elastic threads run at the lowest OS priority.
    pub fn os_priority(self) -> bool {
        matches!(self, Mode::OsPriority | Mode::Elastic { os_priority: true })
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mode::Baseline => f.write_str("baseline"),
            Mode::Uncontrolled => f.write_str("uncontrolled"),
            Mode::Static(share) => write!(f, "static:{share}"),
            Mode::OsPriority => f.write_str("os-priority"),
            Mode::Elastic { os_priority: false } => f.write_str("elastic"),
            Mode::Elastic { os_priority: true } => f.write_str("elastic+os-priority"),
            Mode::Utilization => f.write_str("utilization"),
        }
    }
}

/// A mode that could not be parsed: the text and what was wrong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "bad mode {0:?}: {1}; modes are baseline, uncontrolled, static:<share in (0, 1]>, os-priority, elastic, elastic+os-priority, utilization"
)]
pub struct ModeError(pub String, pub &'static str);

impl FromStr for Mode {
    type Err = ModeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |why| ModeError(s.to_owned(), why);
        Ok(match s {
            "baseline" => Mode::Baseline,
            "uncontrolled" => Mode::Uncontrolled,
            "os-priority" => Mode::OsPriority,
            "elastic" => Mode::Elastic { os_priority: false },
            "elastic+os-priority" | "os-priority+elastic" => Mode::Elastic { os_priority: true },
            "utilization" => Mode::Utilization,
            _ => {
                let share = s.strip_prefix("static:").ok_or_else(|| bad("unknown mode"))?;
                let share: f64 = share.parse().map_err(|_| bad("the share is not a number"))?;
                if !(share > 0.0 && share <= 1.0) {
                    return Err(bad("the share must be within (0, 1]"));
                }
                Mode::Static(share)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_and_print_back() {
        for text in Mode::DEFAULTS.split(',') {
            assert_eq!(text.parse::<Mode>().unwrap().to_string(), text);
        }
        assert_eq!("os-priority+elastic".parse::<Mode>().unwrap(), Mode::Elastic { os_priority: true });
    }

    #[test]
    fn bad_modes_say_why() {
        let err = "static:2".parse::<Mode>().unwrap_err();
        assert!(err.to_string().contains("within (0, 1]"), "{err}");
        assert!("fast".parse::<Mode>().unwrap_err().to_string().contains("unknown mode"));
        assert!("static:x".parse::<Mode>().unwrap_err().to_string().contains("not a number"));
    }

    #[test]
    fn mode_properties() {
        assert!(!Mode::Baseline.runs_elastic());
        assert!(Mode::Static(0.1).uses_limiter());
        assert!(!Mode::OsPriority.uses_limiter());
        assert!(Mode::OsPriority.os_priority());
        assert!(Mode::Elastic { os_priority: true }.os_priority());
        assert!(!Mode::Elastic { os_priority: false }.os_priority());
        assert!(Mode::Utilization.uses_limiter() && Mode::Utilization.runs_elastic());
        assert!(!Mode::Utilization.os_priority());
    }

    #[test]
    fn the_utilization_peer_parses_and_is_in_the_default_run() {
        assert_eq!("utilization".parse::<Mode>().unwrap(), Mode::Utilization);
        assert_eq!(Mode::Utilization.to_string(), "utilization");
        assert!(Mode::DEFAULTS.split(',').any(|m| m == "utilization"));
        assert!("fast".parse::<Mode>().unwrap_err().to_string().contains("utilization"));
    }
}
