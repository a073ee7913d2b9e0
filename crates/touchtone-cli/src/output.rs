//! Output formats shared by the subcommands: human text or JSON Lines.

use std::io::Write;

use serde::Serialize;

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Lines for people.
    Text,
    /// JSON Lines: one object per event.
    Json,
}

/// Prints one JSON object on its own line to stdout.
pub fn json_line<T: Serialize>(value: &T) {
    let mut out = std::io::stdout().lock();
    if serde_json::to_writer(&mut out, value).is_ok() {
        let _ = writeln!(out);
        let _ = out.flush();
    }
}

/// Rounds milliseconds to a tenth, for stable output.
pub fn ms(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}
