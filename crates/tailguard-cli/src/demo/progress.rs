//! Progress on stderr while the experiment runs: which mode, elapsed and remaining time.

use std::io::{IsTerminal, Write};
use std::time::Duration;

/// Prints progress lines; on a terminal the current line is rewritten in place.
#[derive(Debug)]
pub struct Progress {
    total_modes: usize,
    tty: bool,
    quiet: bool,
}

impl Progress {
    /// Progress for a run of `total_modes` modes; `quiet` prints nothing.
    pub fn new(total_modes: usize, quiet: bool) -> Self {
        Self { total_modes, tty: std::io::stderr().is_terminal(), quiet }
    }

    /// Number of modes in the run.
    pub fn total(&self) -> usize {
        self.total_modes
    }

    /// Reports that mode number `index` (0-based) started, on a line of its own (also when
    /// stderr is not a terminal, so that logs and scripts see which mode runs).
    pub fn start(&self, index: usize, mode: &str, detail: &str) {
        if self.quiet {
            return;
        }
        let mut err = std::io::stderr().lock();
        if self.tty {
            let _ = write!(err, "\r\x1b[2K");
        }
        let _ = writeln!(err, "[{}/{}] {mode:<22} started: {detail}", index + 1, self.total_modes);
    }

    /// Reports that mode number `index` (0-based) is `elapsed` into its `duration`.
    pub fn update(&self, index: usize, mode: &str, elapsed: Duration, duration: Duration, detail: &str) {
        if self.quiet || !self.tty {
            return;
        }
        let remaining = duration.saturating_sub(elapsed);
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "\r\x1b[2K[{}/{}] {mode:<22} {:>5.1}s / {:.0}s  ({:.0}s left)  {detail}",
            index + 1,
            self.total_modes,
            elapsed.as_secs_f64(),
            duration.as_secs_f64(),
            remaining.as_secs_f64()
        );
        let _ = err.flush();
    }

    /// Reports that a mode finished, with a one-line summary.
    pub fn finish(&self, index: usize, mode: &str, summary: &str) {
        if self.quiet {
            return;
        }
        let mut err = std::io::stderr().lock();
        if self.tty {
            let _ = write!(err, "\r\x1b[2K");
        }
        let _ = writeln!(err, "[{}/{}] {mode:<22} done: {summary}", index + 1, self.total_modes);
    }

    /// Prints a free-form status line.
    pub fn note(&self, text: &str) {
        if !self.quiet {
            eprintln!("{text}");
        }
    }
}
