//! `touchtone detect`: DTMF digits in a WAV recording.

use std::io::BufReader;
use std::path::PathBuf;

use serde::Serialize;
use touchtone::inband::Detector;

use crate::Failure;
use crate::output::outln;
use crate::output::{Format, json_line, ms};
use crate::progress::Progress;
use crate::wav::WavReader;

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

#[derive(Serialize)]
struct DigitLine {
    digit: String,
    start_ms: f64,
    end_ms: f64,
    duration_ms: f64,
    channel: u16,
}

/// Runs `touchtone detect`.
pub fn run(args: Args) -> Result<(), Failure> {
    let crate::input::Input {
        reader: input,
        size,
        name,
    } = crate::input::open(&args.file)?;
    let mut wav = WavReader::new(BufReader::new(input))
        .map_err(|e| Failure::input(format!("{name}: {e}")))?;
    let channels = wav.format.channels;
    if let Some(c) = args.channel.filter(|c| *c >= channels) {
        return Err(Failure::input(format!(
            "{name}: no channel {c} (the file has {channels})"
        )));
    }
    let picked: Vec<u16> = match args.channel {
        Some(c) => vec![c],
        None => (0..channels).collect(),
    };
    let mut detectors: Vec<Detector> = picked
        .iter()
        .map(|_| Detector::new(wav.format.sample_rate))
        .collect();
    let mut block = vec![Vec::new(); usize::from(channels)];
    let mut progress = Progress::new("detecting", wav.data_len.unwrap_or(size));
    let mut found = 0usize;
    let mut report = |det: &mut Detector, ch: u16| {
        while let Some(d) = det.poll_event() {
            if !d.end {
                continue;
            }
            found += 1;
            match args.format {
                Format::Json => json_line(&DigitLine {
                    digit: d.digit.to_string(),
                    start_ms: ms(d.start_ms),
                    end_ms: ms(d.end_ms),
                    duration_ms: ms(d.duration_ms()),
                    channel: ch,
                }),
                Format::Text => {
                    let prefix = if channels > 1 {
                        format!("channel {ch}: ")
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
    };
    let result = loop {
        match wav.next_block(&mut block) {
            Ok(more) => {
                for (det, ch) in detectors.iter_mut().zip(&picked) {
                    det.process(&block[usize::from(*ch)]);
                    report(det, *ch);
                }
                progress.update(wav.bytes_read());
                if !more {
                    break Ok(());
                }
            }
            Err(e) => break Err(e),
        }
    };
    progress.finish();
    for (det, ch) in detectors.iter_mut().zip(&picked) {
        det.flush();
        report(det, *ch);
    }
    if args.format == Format::Text && found == 0 && result.is_ok() {
        eprintln!("no DTMF digits found");
    }
    result.map_err(|e| Failure::input(format!("{name}: {e}")))
}
