//! `touchtone detect`: DTMF digits in a WAV recording.

use std::io::BufReader;
use std::path::PathBuf;

use touchtone_capture::{WavDigit, WavDigits, WavOptions};

use crate::Failure;
use crate::output::outln;
use crate::output::{Format, json_line};
use crate::progress::Progress;

/// Arguments of `touchtone detect`.
#[derive(clap::Args)]
pub struct Args {
    /// The WAV file (`-` reads standard input).
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
    let digits = WavDigits::new(BufReader::new(input.reader), options)
        .map_err(|e| Failure::input(format!("{name}: {e}")))?;
    let multi = digits.format().channels > 1;
    let mut progress = Progress::new("detecting", digits.data_len().unwrap_or(input.size));
    let mut found = 0usize;
    let mut result = Ok(());
    // Digits are printed as they are found, and those before a truncation are still printed.
    for item in digits.with_progress(|done| progress.update(done)) {
        match item {
            Ok(d) => {
                found += 1;
                print(args.format, multi, &d);
            }
            Err(e) => result = Err(e),
        }
    }
    progress.finish();
    if args.format == Format::Text && found == 0 && result.is_ok() {
        eprintln!("no DTMF digits found");
    }
    result.map_err(|e| Failure::input(format!("{name}: {e}")))
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
