//! Linux pressure stall information for the CPU (`/proc/pressure/cpu`), an auxiliary signal.
//!
//! `some` is the share of wall time in which at least one runnable task was waiting for a CPU,
//! averaged by the kernel over 10 s, 60 s and 300 s; `total` is the cumulative stall time. PSI
//! exists on Linux ≥ 4.20 with `CONFIG_PSI` (and not disabled by `psi=0`); where it is absent
//! every reader returns `None`, never an error or a panic.
//!
//! # Examples
//!
//! ```
//! use tailguard::observe::psi;
//!
//! match psi::read_cpu_pressure() {
//!     Some(p) => println!("CPU some avg10 = {:.2} %", p.some.avg10),
//!     None => println!("no PSI on this machine"),
//! }
//! let p = psi::parse_pressure("some avg10=1.50 avg60=0.20 avg300=0.00 total=12345\n").unwrap();
//! assert_eq!(p.some.avg10, 1.5);
//! assert!(p.full.is_none());
//! ```

use std::path::Path;
use std::time::Duration;

/// Where Linux publishes CPU pressure.
pub const CPU_PRESSURE_PATH: &str = "/proc/pressure/cpu";

/// One line of a pressure file.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PressureLine {
    /// Percentage of the last 10 s spent stalled (0–100).
    pub avg10: f64,
    /// Percentage of the last 60 s spent stalled.
    pub avg60: f64,
    /// Percentage of the last 300 s spent stalled.
    pub avg300: f64,
    /// Cumulative stall time since boot (monotonically increasing, never reset).
    pub total: Duration,
}

/// The contents of a pressure file.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Pressure {
    /// Time in which at least one task was stalled.
    pub some: PressureLine,
    /// Time in which all non-idle tasks were stalled; absent on kernels before 5.13 for the CPU
    /// (and reported as zero at the system level on later ones).
    pub full: Option<PressureLine>,
}

/// Reads [`CPU_PRESSURE_PATH`]; `None` when the file is absent, unreadable or malformed.
pub fn read_cpu_pressure() -> Option<Pressure> {
    read_pressure(CPU_PRESSURE_PATH)
}

/// Reads a pressure file at `path` (e.g. a cgroup's `cpu.pressure`); `None` when it is absent,
/// unreadable or malformed.
pub fn read_pressure(path: impl AsRef<Path>) -> Option<Pressure> {
    parse_pressure(&std::fs::read_to_string(path).ok()?)
}

/// Parses the text of a pressure file; `None` when it has no well-formed `some` line.
pub fn parse_pressure(text: &str) -> Option<Pressure> {
    let mut some = None;
    let mut full = None;
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        match fields.next() {
            Some("some") => some = Some(parse_line(fields)?),
            Some("full") => full = Some(parse_line(fields)?),
            _ => {}
        }
    }
    Some(Pressure { some: some?, full })
}

fn parse_line<'a>(fields: impl Iterator<Item = &'a str>) -> Option<PressureLine> {
    let (mut avg10, mut avg60, mut avg300, mut total) = (None, None, None, None);
    for field in fields {
        let (key, value) = field.split_once('=')?;
        match key {
            "avg10" => avg10 = value.parse::<f64>().ok(),
            "avg60" => avg60 = value.parse::<f64>().ok(),
            "avg300" => avg300 = value.parse::<f64>().ok(),
            // The kernel reports total stall time in microseconds.
            "total" => total = value.parse::<u64>().ok().map(Duration::from_micros),
            _ => {}
        }
    }
    Some(PressureLine { avg10: avg10?, avg60: avg60?, avg300: avg300?, total: total? })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_some_and_full() {
        let text = "some avg10=2.04 avg60=0.75 avg300=0.40 total=157656722\n\
                    full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n";
        let p = parse_pressure(text).unwrap();
        assert_eq!(p.some.avg10, 2.04);
        assert_eq!(p.some.avg300, 0.40);
        assert_eq!(p.some.total, Duration::from_micros(157_656_722));
        assert_eq!(p.full.unwrap().total, Duration::ZERO);
    }

    #[test]
    fn malformed_or_missing_input_is_none() {
        assert_eq!(parse_pressure(""), None);
        assert_eq!(parse_pressure("full avg10=0.00 avg60=0.00 avg300=0.00 total=0"), None);
        assert_eq!(parse_pressure("some avg10=x avg60=0.00 avg300=0.00 total=0"), None);
        assert_eq!(parse_pressure("some avg10=1.0 avg60=0.00"), None);
        assert_eq!(read_pressure("/nonexistent/tailguard/pressure"), None);
        // Whatever this machine has, reading it never panics.
        let _ = read_cpu_pressure();
    }
}
