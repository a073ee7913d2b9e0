//! `touchtone detect`: DTMF digits in a WAV or Ogg Opus recording.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;

use touchtone_capture::{OpusDigits, WavDigit, WavDigits, WavOptions};

use crate::Failure;
use crate::output::outln;
use crate::output::{Format, json_line};
use crate::progress::Progress;

/// Arguments of `touchtone detect`.
#[derive(clap::Args)]
pub struct Args {
    /// The WAV or Ogg Opus (`.opus`) file (`-` reads standard input).
    file: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    /// Only this channel (0-based); all channels by default.
    #[arg(long)]
    channel: Option<u16>,
}

/// Runs `touchtone detect`.
pub fn run(args: Args) -> Result<(), Failure> {
    let input = crate::input::open(&args.file)?;
    let name = input.name;
    let options = WavOptions {
        channel: args.channel,
        ..WavOptions::default()
    };
    let mut reader = BufReader::new(input.reader);
    // Ogg pages start with "OggS", WAV files with "RIFF": the content decides, not the file name.
    let ogg = reader.fill_buf().is_ok_and(|b| b.starts_with(b"OggS"));
    if ogg {
        let digits =
            OpusDigits::new(reader, options).map_err(|e| Failure::input(format!("{name}: {e}")))?;
        let multi = digits.head().channels > 1;
        let mut progress = Progress::new("detecting", input.size);
        let result = report(
            args.format,
            multi,
            digits.with_progress(|done| progress.update(done)),
        );
        progress.finish();
        return result.map_err(|e| Failure::input(format!("{name}: {e}")));
    }
    let digits =
        WavDigits::new(reader, options).map_err(|e| Failure::input(format!("{name}: {e}")))?;
    let multi = digits.format().channels > 1;
    let mut progress = Progress::new("detecting", digits.data_len().unwrap_or(input.size));
    let result = report(
        args.format,
        multi,
        digits.with_progress(|done| progress.update(done)),
    );
    progress.finish();
    result.map_err(|e| Failure::input(format!("{name}: {e}")))
}

/// Prints the digits as they are found (those before a damaged part too), then says when there were
/// none; returns the error that ended the reading, if one did.
fn report<E>(
    format: Format,
    multi: bool,
    digits: impl Iterator<Item = Result<WavDigit, E>>,
) -> Result<(), E> {
    let mut found = 0usize;
    let mut result = Ok(());
    for item in digits {
        match item {
            Ok(d) => {
                found += 1;
                print(format, multi, &d);
            }
            Err(e) => result = Err(e),
        }
    }
    if format == Format::Text && found == 0 && result.is_ok() {
        eprintln!("no DTMF digits found");
    }
    result
}

fn print(format: Format, multi: bool, d: &WavDigit) {
    match format {
        Format::Json => json_line(&d.record()),
        Format::Text => {
            let prefix = if multi {
                format!("channel {}: ", d.channel)
            } else {
                String::new()
            };
            outln!(
                "{prefix}{}  {:>10.1} ms  {:>10.1} ms  ({:.1} ms)",
                d.digit,
                d.start_ms,
                d.end_ms,
                d.duration_ms()
            );
        }
    }
}
