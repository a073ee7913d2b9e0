//! Output formats shared by the subcommands: human text or JSON Lines.

use std::io::Write;

use serde::Serialize;
pub use touchtone_whip::{EventLine, digit_str, ms};

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Lines for people.
    Text,
    /// JSON Lines: one object per event.
    Json,
}

/// Prints one line of text to stdout (see [`write_line`]).
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::output::write_line(format_args!($($arg)*))
    };
}
pub(crate) use outln;

/// Writes one line to stdout and flushes it. A closed pipe (`touchtone detect x.wav | head -1`) ends the
/// program quietly with status 0, as ripgrep does; any other write error ends it with status 2.
pub fn write_line(args: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    let result = out
        .write_fmt(args)
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.flush());
    if let Err(e) = result {
        stdout_failed(&e);
    }
}

/// Ends the program after stdout failed: quietly on a closed pipe, else with a message and status 2.
pub fn stdout_failed(e: &std::io::Error) -> ! {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(0);
    }
    eprintln!("touchtone: cannot write the output: {e}");
    std::process::exit(2);
}

/// Prints one JSON object on its own line to stdout.
pub fn json_line<T: Serialize>(value: &T) {
    match serde_json::to_string(value) {
        Ok(line) => write_line(format_args!("{line}")),
        Err(e) => eprintln!("touchtone: cannot encode an event: {e}"),
    }
}

/// What a negotiation settled on, in words: `opus/48000, telephone-event 110/48000 (0-15)`.
pub fn negotiated_str(n: &touchtone_rtc::Negotiated) -> String {
    let codec = format!("{}/{}", n.codec, n.codec.clock_rate());
    match (n.tele_pt, n.tele_clock_rate) {
        (Some(pt), Some(rate)) => {
            format!(
                "{codec}, telephone-event {}/{rate} ({})",
                *pt, n.tele_events
            )
        }
        _ => format!("{codec}, no telephone-event in common: DTMF unavailable"),
    }
}
