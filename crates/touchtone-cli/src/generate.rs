//! `touchtone generate`: DTMF tones to a WAV file.

use std::io::{Cursor, Write};
use std::path::PathBuf;

use touchtone::inband::ToneGenerator;

use crate::Failure;

/// Arguments of `touchtone generate`.
#[derive(clap::Args)]
pub struct Args {
    /// The tones: 0-9, A-D, #, * and `,` for a 2 s pause.
    tones: String,
    /// Output WAV file (`-` writes to standard output).
    #[arg(short, long)]
    output: PathBuf,
    /// Tone duration in ms.
    #[arg(long, default_value_t = 400)]
    duration: u32,
    /// Silence after each tone in ms.
    #[arg(long, default_value_t = 50)]
    gap: u32,
    /// Sample rate in Hz (8000, 16000, 44100, 48000, ...).
    #[arg(long, default_value_t = 8000)]
    rate: u32,
    /// Level of each tone in dBm0.
    #[arg(long, default_value_t = -10.0, allow_hyphen_values = true)]
    level: f32,
    /// Level of the high-group tone relative to the low-group tone, in dB.
    #[arg(long, default_value_t = 0.0, allow_hyphen_values = true)]
    twist: f32,
}

/// Runs `touchtone generate`.
pub fn run(args: Args) -> Result<(), Failure> {
    if !(-60.0..=3.0).contains(&args.level) {
        return Err(Failure::input(format!(
            "--level {} is outside -60..=3 dBm0",
            args.level
        )));
    }
    if !(1..=60_000).contains(&args.duration) || args.gap > 60_000 {
        return Err(Failure::input(
            "--duration must be 1..=60000 ms and --gap at most 60000 ms",
        ));
    }
    let mut g = ToneGenerator::new(args.rate).map_err(|e| Failure::input(e.to_string()))?;
    g.set_level(args.level, args.twist);
    g.push_tones(&args.tones, args.duration, args.gap)
        .map_err(|e| Failure::input(e.to_string()))?;
    let samples = g.render();
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: args.rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut bytes = Cursor::new(Vec::new());
    {
        let mut w =
            hound::WavWriter::new(&mut bytes, spec).map_err(|e| Failure::input(e.to_string()))?;
        for s in &samples {
            w.write_sample(*s)
                .map_err(|e| Failure::input(e.to_string()))?;
        }
        w.finalize().map_err(|e| Failure::input(e.to_string()))?;
    }
    let bytes = bytes.into_inner();
    if args.output.as_os_str() == "-" {
        let mut out = std::io::stdout().lock();
        out.write_all(&bytes)
            .and_then(|_| out.flush())
            .map_err(|e| Failure::input(format!("stdout: {e}")))?;
    } else {
        std::fs::write(&args.output, &bytes)
            .map_err(|e| Failure::input(format!("{}: {e}", args.output.display())))?;
        eprintln!(
            "wrote {} ({:.2} s at {} Hz)",
            args.output.display(),
            samples.len() as f64 / f64::from(args.rate),
            args.rate
        );
    }
    Ok(())
}
