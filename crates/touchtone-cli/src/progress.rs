//! A progress line on stderr for long inputs, shown only when stderr is a terminal.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// Reports how far through a known total the work is.
pub struct Progress {
    total: u64,
    enabled: bool,
    last: Instant,
    label: &'static str,
    shown: bool,
}

impl Progress {
    /// A progress line for `total` units of work (bytes); silent unless stderr is a terminal.
    pub fn new(label: &'static str, total: u64) -> Self {
        Progress {
            total,
            enabled: std::io::stderr().is_terminal() && total > 4 << 20,
            last: Instant::now(),
            label,
            shown: false,
        }
    }

    /// Updates the line with the work done so far (at most ten times a second).
    pub fn update(&mut self, done: u64) {
        if !self.enabled || self.last.elapsed() < Duration::from_millis(100) {
            return;
        }
        self.last = Instant::now();
        self.shown = true;
        let pct = done as f64 * 100.0 / self.total.max(1) as f64;
        let width = 30;
        let filled = ((pct / 100.0) * width as f64) as usize;
        eprint!(
            "\r{} [{}{}] {:5.1}%",
            self.label,
            "#".repeat(filled.min(width)),
            " ".repeat(width - filled.min(width)),
            pct.min(100.0)
        );
        let _ = std::io::stderr().flush();
    }

    /// Clears the line.
    pub fn finish(&mut self) {
        if self.shown {
            eprint!("\r{}\r", " ".repeat(50));
            self.shown = false;
        }
    }
}
